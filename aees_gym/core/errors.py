"""Exceptions of the package (standard library only, so that any module may import them)."""

from __future__ import annotations

__all__ = ["UnknownSettingError"]


class UnknownSettingError(KeyError, TypeError):
    """A setting (an ``EnvConfig`` field or task option) that the task does not have.

    It is a ``KeyError`` (an unknown name, as before) and a ``TypeError``, which is what Python raises
    for an unexpected keyword argument: wrappers such as TorchRL's ``GymEnv`` pass optional keywords
    (``frameskip``) to ``gymnasium.make`` and drop the ones an env refuses with a ``TypeError`` whose
    message says "unexpected keyword argument '<name>'", so the message (unchanged otherwise) ends
    with that phrase.

    Attributes:
        names: The unknown setting names, sorted.
    """

    def __init__(self, message: str, names: list[str] | tuple[str, ...] = ()) -> None:
        self.names = tuple(sorted(names))
        phrases = ", ".join(f"unexpected keyword argument {name!r}" for name in self.names)
        super().__init__(f"{message} ({phrases})" if phrases else message)

    def __str__(self) -> str:
        # The message as written: KeyError would print its repr, escaping the quotes that wrappers
        # match on (gymnasium.make re-raises a TypeError as type(e)(f"{e} ...")).
        return str(self.args[0]) if self.args else ""
