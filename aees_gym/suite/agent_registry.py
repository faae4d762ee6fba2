"""The one agent registry: ``aees_gym.agents`` entry points plus run-time registration.

``make_agent``, the suite, the CLI, ``agents.deploy.load_agent`` and the tests all resolve names
here. ``aees_gym`` never imports an agent package: built-in agents are declared as entry points in
``pyproject.toml`` exactly like third-party ones (``mine = mypackage.agents:MyAgent``), and a name
is resolved to its class on first use. :func:`register_agent` adds a class at run time; it is then
visible everywhere, the suite and the CLI included. Entry points of this distribution are the
built-ins: a third-party package cannot take over one of their names.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Mapping
from typing import Any

ENTRY_POINT_GROUP = "aees_gym.agents"
DISTRIBUTION = "aees-gym"
_AGENT_METHODS = ("reset", "act", "update")

_explicit: dict[str, type] = {}  # register_agent() calls; they survive clear_cache()
_loaded: dict[str, type] = {}  # discovered names whose class has been imported
_discovered: dict[str, importlib.metadata.EntryPoint] | None = None


def clear_cache() -> None:
    """Forget discovered entry points and loaded classes; the next lookup scans installed packages."""
    global _discovered
    _discovered = None
    _loaded.clear()


def _is_builtin(entry_point: importlib.metadata.EntryPoint) -> bool:
    dist = getattr(entry_point, "dist", None)
    return dist is not None and dist.name == DISTRIBUTION


def agent_entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Every declared agent, by name, sorted by name.

    Built-ins are taken first; when another distribution declares a taken name with a different
    target, a ``RuntimeWarning`` names both and the first one stays, so no agent is replaced silently.
    """
    global _discovered
    if _discovered is None:
        declared = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: not _is_builtin(ep))
        found: dict[str, importlib.metadata.EntryPoint] = {}
        for entry_point in declared:
            known = found.get(entry_point.name)
            if known is None:
                found[entry_point.name] = entry_point
            elif known.value != entry_point.value:
                warnings.warn(
                    f"ignoring entry point {entry_point.name!r} = {entry_point.value!r} in group {ENTRY_POINT_GROUP!r}: "
                    f"the name already refers to {known.value!r}.",
                    RuntimeWarning,
                    stacklevel=2,
                )
        _discovered = dict(sorted(found.items()))
    return _discovered


def builtin_agent_names() -> list[str]:
    """Names this distribution declares (the built-in agents)."""
    return [name for name, ep in agent_entry_points().items() if _is_builtin(ep)]


def _known_names() -> list[str]:
    return sorted(set(_explicit) | set(agent_entry_points()))


def _check_agent_class(name: str, cls: object, origin: str) -> type:
    missing = [m for m in _AGENT_METHODS if not callable(getattr(cls, m, None))]
    if not isinstance(cls, type) or missing:
        raise TypeError(
            f"agent {name!r} ({origin}) must be a class with reset/act/update methods; "
            f"got {cls!r}" + (f" missing {missing}." if missing else ".")
        )
    return cls


def load_agent_class(name: str) -> type:
    """The agent class registered or declared under ``name``.

    Raises:
        KeyError: If no agent has that name; the message lists every known name.
        TypeError: If the entry point does not point at a class with ``reset``/``act``/``update``.
    """
    if name in _explicit:
        return _explicit[name]
    if name in _loaded:
        return _loaded[name]
    entry_point = agent_entry_points().get(name)
    if entry_point is None:
        names = ", ".join(_known_names()) or "(none: is aees-gym installed? pip install -e .)"
        raise KeyError(f"unknown agent {name!r}; registered agents: {names}.")
    cls = _check_agent_class(name, entry_point.load(), origin=entry_point.value)
    _loaded[name] = cls
    return cls


def register_agent(name: str, cls: type) -> None:
    """Register ``cls`` under ``name`` for this process; registering the same class again is a no-op.

    Raises:
        ValueError: If ``name`` is empty or already refers to a different class.
        TypeError: If ``cls`` is not a class with ``reset``/``act``/``update`` methods.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"agent name must be a non-empty string, got {name!r}.")
    _check_agent_class(name, cls, origin=getattr(cls, "__qualname__", repr(cls)))
    existing = load_agent_class(name) if name in _explicit or name in agent_entry_points() else None
    if existing is not None and existing is not cls:
        raise ValueError(
            f"agent name {name!r} already refers to {existing.__module__}.{existing.__qualname__}; "
            f"choose another name for {cls.__module__}.{cls.__qualname__}."
        )
    _explicit[name] = cls


def make_agent(name: str, **kwargs: Any) -> Any:
    """Construct the agent registered under ``name`` with ``kwargs``."""
    return load_agent_class(name)(**kwargs)


def registered_agents() -> dict[str, type]:
    """Every agent that can be constructed, by name (importing each one's module).

    A third-party entry point that fails to import is skipped with a warning, so one broken package
    does not hide the others; :func:`make_agent` on that name raises the underlying error.
    """
    builtins = set(builtin_agent_names())
    agents: dict[str, type] = {}
    for name in _known_names():
        try:
            agents[name] = load_agent_class(name)
        except (ImportError, AttributeError, TypeError) as exc:
            if name in builtins:
                raise
            warnings.warn(f"skipping agent {name!r}: {exc}", RuntimeWarning, stacklevel=2)
    return agents


def agent_description(cls: type) -> str:
    """The class's one-line ``description`` (or the first docstring line)."""
    text = getattr(cls, "description", "") or (cls.__doc__ or "").strip().splitlines()[:1]
    return text if isinstance(text, str) else (text[0] if text else "")


def requires_training(cls: type) -> bool:
    """True for offline learners (``requires_training = True``), which the suite trains before evaluating."""
    return bool(getattr(cls, "requires_training", False))


def agent_env_overrides(cls: type, kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Env overrides the agent asks for (schedule baselines, a learned policy's control track); the suite merges them into its runs.

    An agent whose settings depend on what it is constructed with (``learned``: the policy file's own
    track) defines ``env_overrides_for(**kwargs)``; others give the class attribute ``env_overrides``.
    """
    hook = getattr(cls, "env_overrides_for", None)
    if callable(hook):
        return dict(hook(**dict(kwargs or {})))
    return dict(getattr(cls, "env_overrides", None) or {})


def agent_missing_input(cls: type, kwargs: Mapping[str, Any] | None = None) -> str | None:
    """Why an agent cannot run yet (e.g. its policy file is still being trained: which file, what writes it), or ``None``."""
    hook = getattr(cls, "missing_input", None)
    return hook(**dict(kwargs or {})) if callable(hook) else None


def agent_run_record(cls: type, kwargs: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """What decides an agent's runs beyond its kwargs (a policy file's hash and provenance), recorded in each run, or ``None``."""
    hook = getattr(cls, "run_record", None)
    return dict(hook(**dict(kwargs or {}))) if callable(hook) else None
