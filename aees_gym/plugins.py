"""Agents found by name through the ``aees_gym.agents`` entry-point group.

``aees_gym`` never imports an agent package: built-in agents are declared as entry points in
``pyproject.toml`` exactly like third-party ones (``mine = mypackage.agents:MyAgent``), and this
module resolves a name to its class on first use. Results are cached; :func:`clear_cache` forgets
them (for example after installing a package in a running process).
"""

from __future__ import annotations

import importlib.metadata
import warnings
from typing import Any

ENTRY_POINT_GROUP = "aees_gym.agents"

_entry_points: dict[str, importlib.metadata.EntryPoint] | None = None
_classes: dict[str, type] = {}


def clear_cache() -> None:
    """Forget discovered entry points and loaded classes; the next lookup scans installed packages."""
    global _entry_points
    _entry_points = None
    _classes.clear()


def agent_entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Every declared agent, by name, sorted by name.

    When two installed distributions declare the same name with different targets, the first one
    found wins and a ``RuntimeWarning`` names both, so an agent is never replaced silently.
    """
    global _entry_points
    if _entry_points is None:
        found: dict[str, importlib.metadata.EntryPoint] = {}
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            known = found.get(entry_point.name)
            if known is None:
                found[entry_point.name] = entry_point
            elif known.value != entry_point.value:
                warnings.warn(
                    f"ignoring agent entry point {entry_point.name!r} = {entry_point.value!r}: the name "
                    f"already refers to {known.value!r}.",
                    RuntimeWarning,
                    stacklevel=2,
                )
        _entry_points = dict(sorted(found.items()))
    return _entry_points


def load_agent_class(name: str) -> type:
    """The agent class declared under ``name``.

    Raises:
        KeyError: If no installed package declares ``name``; the message lists every declared name.
        TypeError: If the entry point does not point at a class with ``reset``/``act``/``update``.
    """
    cached = _classes.get(name)
    if cached is not None:
        return cached
    entry_point = agent_entry_points().get(name)
    if entry_point is None:
        names = ", ".join(agent_entry_points()) or "(none: is aees-gym installed? pip install -e .)"
        raise KeyError(f"unknown agent {name!r}; declared agents ({ENTRY_POINT_GROUP!r} entry points): {names}.")
    cls = entry_point.load()
    missing = [m for m in ("reset", "act", "update") if not callable(getattr(cls, m, None))]
    if not isinstance(cls, type) or missing:
        raise TypeError(
            f"agent entry point {name!r} = {entry_point.value!r} must name a class with reset/act/update; "
            f"got {cls!r}" + (f" missing {missing}." if missing else ".")
        )
    _classes[name] = cls
    return cls


def agent_description(cls: type) -> str:
    """The class's one-line ``description`` (or the first docstring line)."""
    text = getattr(cls, "description", "") or (cls.__doc__ or "").strip().splitlines()[:1]
    return text if isinstance(text, str) else (text[0] if text else "")


def requires_training(cls: type) -> bool:
    """True for offline learners (``requires_training = True``), which the suite trains before evaluating."""
    return bool(getattr(cls, "requires_training", False))


def agent_env_overrides(cls: type) -> dict[str, Any]:
    """Env overrides the agent asks for (schedule baselines); the suite merges them into its runs."""
    return dict(getattr(cls, "env_overrides", None) or {})
