"""Agents that exist only for the suite tests; ``conftest.py`` declares them through a dist-info.

They are found exactly like third-party agents: entry points in the ``aees_gym.agents`` group of an
installed distribution (here a ``*.dist-info`` folder written into a temporary ``sys.path`` entry).
"""

from __future__ import annotations

import json
import os
from typing import Any

import gymnasium as gym
import numpy as np


class CrashAgent:
    """Raises in its second ``act`` call, to test that a failing run is recorded and others go on."""

    description = "raises in window 1 (suite tests)"

    def reset(self, *, seed: int | None, observation_space: Any, action_space: Any, info: dict[str, Any]) -> None:
        self.calls = 0

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("CrashAgent fails on purpose in window 1")
        return 0

    def update(self, *args: Any) -> None:
        pass


class CosineFixedAgent:
    """The plain optimizer, asking the suite for a cosine base schedule through ``env_overrides``."""

    description = "lr ×1.0, σ 0 over a cosine schedule (suite tests)"
    env_overrides = {"schedule": "cosine"}

    def reset(self, *, seed: int | None, observation_space: Any, action_space: Any, info: dict[str, Any]) -> None:
        self.action = info["candidate_grid"].index_of(1.0, 0.0)

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        return self.action

    def update(self, *args: Any) -> None:
        pass


class TinyLearner:
    """An offline learner: ``learn`` plays every arm round-robin on the training seeds and keeps each
    arm's mean reward; evaluation plays the best arm. Each ``learn`` call appends one JSON line to the
    file named by ``$TINY_LEARNER_LOG`` so tests can count trainings and see the seeds used."""

    description = "offline learner: best mean-reward arm on training seeds (suite tests)"
    requires_training = True

    def __init__(self, bonus: float = 0.0) -> None:
        self.bonus = bonus
        self.values: list[float] | None = None
        self.trained_seeds: list[int] = []

    def learn(self, env_id: str, total_timesteps: int, *, seed: int, n_envs: int = 1, env_kwargs: dict | None = None, **kw: Any) -> None:
        env = gym.make(env_id, **(env_kwargs or {}))
        n = env.action_space.n
        sums, counts = np.zeros(n), np.zeros(n)
        steps = episode = 0
        while steps < total_timesteps:
            env_seed = seed + episode % n_envs
            self.trained_seeds.append(env_seed)
            env.reset(seed=env_seed)
            terminated = False
            while not terminated and steps < total_timesteps:
                action = steps % n
                _, reward, terminated, _, _ = env.step(action)
                sums[action] += reward
                counts[action] += 1
                steps += 1
            episode += 1
        self.values = (sums / np.maximum(counts, 1) + self.bonus).tolist()
        log = os.environ.get("TINY_LEARNER_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"seed": seed, "n_envs": n_envs, "env_seeds": sorted(set(self.trained_seeds)), "env_kwargs": env_kwargs}) + "\n")

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"values": self.values, "trained_seeds": self.trained_seeds, "bonus": self.bonus}, handle)

    @classmethod
    def load(cls, path: str, **kwargs: Any) -> TinyLearner:
        agent = cls(**kwargs)
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        agent.values, agent.trained_seeds = data["values"], data["trained_seeds"]
        return agent

    def reset(self, *, seed: int | None, observation_space: Any, action_space: Any, info: dict[str, Any]) -> None:
        if self.values is None:
            raise RuntimeError("TinyLearner must be trained (learn) or loaded before use.")

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        return int(np.argmax(self.values))

    def update(self, *args: Any) -> None:
        pass

    def state(self) -> dict[str, Any]:
        return {"values": self.values}


def not_a_class() -> None:
    """Declared as an agent to test that a non-class entry point is rejected."""
