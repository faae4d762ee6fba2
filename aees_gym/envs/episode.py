"""The agent–env loop: one Gymnasium episode (one training run) driven by an agent.

The suite, ``agents.deploy``, the leaderboard and the tests all run episodes through
:func:`run_episode`, so the order of calls (reset → agent.reset → act → step → update) is written once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: ``on_window(index, agent)`` runs after the agent's update for window ``index``.
WindowHook = Callable[[int, Any], None]


@dataclass
class EpisodeTrace:
    """What one episode of :func:`run_episode` produced.

    Attributes:
        reset_info: The info of ``env.reset``.
        observations: The observation every window's action was chosen on (``observations[i]`` →
            ``actions[i]``); what a policy saw, for tracing its decisions.
        actions: The action of every window.
        rewards: The reward of every window.
        infos: The info of every window's ``step``; ``infos[-1]`` holds ``final_metrics``.
        agent_time_s: Seconds spent in the agent's ``reset``/``act``/``update``.
        env_step_time_s: Seconds spent in ``env.step``.
    """

    reset_info: dict[str, Any] = field(default_factory=dict)
    observations: list[Any] = field(default_factory=list)
    actions: list[Any] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    infos: list[dict[str, Any]] = field(default_factory=list)
    agent_time_s: float = 0.0
    env_step_time_s: float = 0.0

    @property
    def total_reward(self) -> float:
        return math.fsum(self.rewards)

    def info_before(self, index: int) -> dict[str, Any]:
        """The info the agent acted on in window ``index`` (the context the choice was made in)."""
        return self.reset_info if index == 0 else self.infos[index - 1]


def run_episode(
    env: Any,
    agent: Any,
    *,
    seed: int,
    agent_seed: int | None = None,
    on_window: WindowHook | None = None,
) -> EpisodeTrace:
    """One episode of ``env`` driven by ``agent``; the env is reset with ``seed``, the agent with ``agent_seed``.

    ``agent_seed`` defaults to ``seed``. ``on_window(index, agent)`` is called after every window.
    """
    obs, info = env.reset(seed=seed)
    trace = EpisodeTrace(reset_info=info)
    started = time.perf_counter()
    agent.reset(
        seed=seed if agent_seed is None else agent_seed,
        observation_space=env.observation_space,
        action_space=env.action_space,
        info=info,
    )
    trace.agent_time_s += time.perf_counter() - started
    done = False
    while not done:
        trace.observations.append(obs)
        t0 = time.perf_counter()
        action = agent.act(obs, info)
        t1 = time.perf_counter()
        obs, reward, terminated, truncated, info = env.step(action)
        t2 = time.perf_counter()
        agent.update(action, float(reward), obs, terminated, truncated, info)
        trace.agent_time_s += (t1 - t0) + (time.perf_counter() - t2)
        trace.env_step_time_s += t2 - t1
        trace.actions.append(action)
        trace.rewards.append(float(reward))
        trace.infos.append(info)
        done = terminated or truncated
        if on_window is not None:
            on_window(len(trace.rewards) - 1, agent)
    return trace
