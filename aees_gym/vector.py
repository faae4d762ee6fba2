"""Vectorised execution: torch threads per env copy, and the autoreset/seeding contract.

Every vectoriser works with the registered ids (the string entry point imports ``aees_gym`` in
spawned workers)::

    envs = gymnasium.make_vec("aees_gym/Digits-v0", num_envs=2, vectorization_mode="async")
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv
    venv = make_vec_env("aees_gym:aees_gym/Digits-v0", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)

**Threads.** Each env copy trains its own model; copies in worker processes that each use every
core oversubscribe the CPU (a second busy process can slow a step 3×). The env's
``torch_threads`` argument decides: ``None`` (default) sets one torch thread when the env is built
inside a ``multiprocessing`` worker (Gymnasium's ``AsyncVectorEnv``, SB3's ``SubprocVecEnv``,
process pools) and leaves the main process alone (a ``sync`` vector env steps its copies one after
another, so they never compete); an integer sets that many threads in whatever process builds the
env, e.g. ``make_vec(..., vectorization_mode="async", torch_threads=2)``.

**Seeding.** ``envs.reset(seed=s)`` seeds copy ``i`` with ``s + i`` (Gymnasium and SB3 alike), so
copy ``i`` replays exactly the run of a single env reset with ``seed=s + i``; later episodes of a
copy continue that copy's generator, exactly like a single env reset without a seed.

**Autoreset.** Gymnasium 1.x vector envs default to *next-step* autoreset: the step that ends a
copy's run returns ``terminated=True`` with the final observation and ``info["final_metrics"]``;
the *next* ``step`` call resets that copy (its action is ignored) and returns the new run's first
observation with reward 0. Pass ``vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP}``
to ``make_vec`` for same-step resets. SB3's VecEnvs reset in the same step and put the final
observation in ``info["terminal_observation"]``.

**Infos.** Gymnasium merges the copies' infos into arrays typed by the first copy's value, so
every info field keeps one type across copies: a missing number in ``info["final_metrics"]`` is
NaN, never ``None`` (e.g. ``steps_to_target`` of a run that never reached ``target_accuracy``).
"""

from __future__ import annotations

import multiprocessing

import torch


class UnsupportedRenderMode(ValueError, TypeError):
    """An env was asked for a render mode it does not have.

    Also a ``TypeError`` because SB3's ``make_vec_env`` asks string ids for ``render_mode="rgb_array"``
    and retries without it only on ``TypeError``; the env renders ``ansi`` text only.
    """


def in_worker_process() -> bool:
    """True inside a process started by ``multiprocessing`` (fork, spawn or forkserver)."""
    return multiprocessing.parent_process() is not None


def apply_torch_threads(threads: int | None) -> int:
    """Apply the env's ``torch_threads`` policy (see the module docstring); returns the thread count in use."""
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"torch_threads must be a positive integer or None (automatic), got {threads!r}.")
        torch.set_num_threads(threads)
    elif in_worker_process():
        torch.set_num_threads(1)
    return torch.get_num_threads()
