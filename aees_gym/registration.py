"""The only place Gymnasium ids are registered: ``aees_gym/<Task>-v0`` for every registered task."""

from __future__ import annotations

import gymnasium as gym

ENTRY_POINT = "aees_gym.env:AEESEnv"


def env_id(task: str) -> str:
    return f"aees_gym/{task}-v0"


def register_env(task: str) -> str:
    """Register ``aees_gym/<task>-v0`` once (re-registering the same id is a no-op)."""
    env = env_id(task)
    if env not in gym.registry:
        # A string entry point keeps the id usable from spawned workers that only import aees_gym.
        gym.register(id=env, entry_point=ENTRY_POINT, kwargs={"task": task})
    return env


def register_all() -> list[str]:
    from aees_gym.tasks import registered_tasks

    return [register_env(name) for name in registered_tasks()]
