"""stable-baselines3 learners as agents: :class:`SB3Agent` and what it is built from.

Modules: :mod:`.agent` (the agent), :mod:`.algorithms` (supported algorithms), :mod:`.budget`
(timestep budgets and progress reports), :mod:`.checkpoint` (resumable trainings), :mod:`.files`
and :mod:`.json_settings` (safe policy zips), :mod:`.training_envs` and :mod:`.vec` (training envs,
``BatchedVecEnv``). stable-baselines3 itself is imported only when a model is built or loaded.
"""

from typing import Any

from agents.sb3.agent import ALGORITHMS, VEC_ENVS, SB3Agent, full_env_id

__all__ = ["ALGORITHMS", "VEC_ENVS", "BatchedVecEnv", "SB3Agent", "full_env_id"]


def __getattr__(name: str) -> Any:
    # BatchedVecEnv subclasses SB3's VecEnv, so importing it needs stable-baselines3: load it on first use.
    if name == "BatchedVecEnv":
        from agents.sb3.vec import BatchedVecEnv

        return BatchedVecEnv
    raise AttributeError(f"module 'agents.sb3' has no attribute {name!r}")
