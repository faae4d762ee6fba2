"""Gymnasium ids: the one place they are built, parsed and registered (``aees_gym/<Task>-v0``)."""

from __future__ import annotations

import gymnasium as gym

from aees_gym.tasks import on_register

NAMESPACE = "aees_gym"
VERSION = 0
ENTRY_POINT = "aees_gym.envs.env:AEESEnv"
#: ``gymnasium.make_vec(id, num_envs)`` builds the batched env (one per architecture for a family); tasks
#: the batched engine cannot train raise there an error naming ``vectorization_mode="async"`` (or ``"sync"``), which always work.
VECTOR_ENTRY_POINT = "aees_gym.envs.family_vector:make_vector_env"


def env_id(task: str) -> str:
    """``aees_gym/<task>-v0``."""
    return f"{NAMESPACE}/{task}-v{VERSION}"


def task_of(name: str) -> str:
    """The task of an env id (``aees_gym/Digits-v0``, ``aees_gym:aees_gym/Digits-v0``) or of a bare task name.

    Raises:
        ValueError: If ``name`` is an id of another namespace or version.
    """
    module, _, rest = name.rpartition(":")
    if module and module != NAMESPACE:
        raise ValueError(f"{name!r} names module {module!r}; aees_gym ids look like {env_id('Digits')!r}.")
    if "/" not in rest and not rest.endswith(f"-v{VERSION}"):
        return rest
    namespace, task, version = gym.envs.registration.parse_env_id(rest)
    if namespace != NAMESPACE or version != VERSION:
        raise ValueError(f"{name!r} is not an aees_gym id; they look like {env_id('Digits')!r}.")
    return task


def importable_env_id(name: str) -> str:
    """``Digits``, ``Digits-v0`` or ``aees_gym/Digits-v0`` → ``aees_gym:aees_gym/Digits-v0``.

    The ``module:`` prefix makes ``gymnasium.make`` import ``aees_gym`` first, which registers the
    ids in a freshly spawned worker process. Ids that already name a module are kept.
    """
    if ":" in name:
        return name
    task = name.rpartition("/")[2].removesuffix(f"-v{VERSION}")
    return f"{NAMESPACE}:{env_id(task)}"


def register_env(task: str) -> str:
    """Register ``aees_gym/<task>-v0`` once (re-registering the same id is a no-op)."""
    env = env_id(task)
    if env not in gym.registry:
        # A string entry point keeps the id usable from spawned workers that only import aees_gym.
        gym.register(id=env, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT, kwargs={"task": task})
    return env


def register_all() -> None:
    """Register every task's id now and every task registered later."""
    on_register(register_env)
