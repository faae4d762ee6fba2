"""Any agent in a user's own training loop: ``before_step`` → forward/backward → ``after_step``.

``after_step`` calls ``optimizer.step()`` and the scheduler's ``step()`` itself: remove those calls
from your loop (a step of either made outside is detected at the next ``after_step``, which raises).

A bandit or a trained SB3 policy drives :class:`aees_gym.EpisodeControl` around the user's
optimizer exactly as it drives the env, so a policy trained on cheap tasks deploys on expensive
ones::

    agent, state = load_agent("policy.zip")          # or a bandit's state-dict JSON
    ct = ControlledTraining(optimizer, agent, total_steps=len(loader) * epochs, window_length=50,
                            lr_scheduler=scheduler, seed=0, agent_state=state)
    for x, y in batches:
        ct.before_step()                              # opens a window (agent.act) when one is due
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        outcome = ct.after_step(loss)                 # optimizer.step under the window's candidate
        if ct.done:
            break

Per optimizer step nothing crosses to the host; each window's losses do, once, when it closes.
:func:`run_episode` is the same loop for a Gymnasium env.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from aees_gym.core import checks
from aees_gym.core.context import feature_bounds
from aees_gym.core.control import EpisodeControl, WindowOutcome
from aees_gym.core.fileio import FileCheckError, atomic_write_text, json_field, json_object, read_json_checked
from aees_gym.tasks.config import EnvConfig
from agents.base import Agent, make_agent

#: An agent state is the bandits' statistics: kilobytes, even for many buckets.
MAX_STATE_BYTES = 4 * 2**20

__all__ = ["ControlledTraining", "load_agent", "save_agent_state"]


class ControlledTraining:
    """An agent choosing the candidate of every window of a user's training loop.

    :meth:`after_step` *is* the optimizer step and the scheduler step: do not call
    ``optimizer.step()`` or ``scheduler.step()`` yourself (a ``RuntimeError`` at the next
    :meth:`after_step` names the line to remove).

    Args:
        optimizer: The user's optimizer (float learning rates in its param groups).
        agent: Any agent (``reset``/``act``/``update``), e.g. ``make_agent("ducb")`` or
            ``SB3Agent.load(path)``. It is reset here with the control's spaces and info.
        total_steps: Optimizer steps in the run (sets the phase features and the last window).
        window_length: Optimizer steps per window.
        lr_scheduler: Optional scheduler of the base LR (see :class:`EpisodeControl`).
        scheduler_every: Optimizer steps between scheduler steps.
        grad_scaler: Optional ``torch.amp.GradScaler``.
        seed: Seed of the gradient noise and (unless ``agent_seed`` is given) of the agent.
        agent_seed: Seed passed to ``agent.reset``.
        agent_state: Output of the agent's ``state_dict`` to restore right after its reset (e.g. a
            bandit's statistics from an earlier run, see :func:`load_agent`).
        continue_after_divergence: After a window with a non-finite loss (reward = the divergence
            reward, ``info["diverged"]``), keep opening windows instead of ending the run.
        config: Base :class:`EnvConfig` (grid, reward, context, action mode …).
        reward_eval: Loss on your fixed held-out batch as a device scalar, for the ``heldout``
            reward (see :class:`EpisodeControl`).
        **overrides: Any :class:`EnvConfig` field, e.g. ``grid={"lr_multipliers": [0.5, 1, 2]}``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        agent: Agent,
        *,
        total_steps: int,
        window_length: int = 50,
        lr_scheduler: Any | None = None,
        scheduler_every: int = 1,
        grad_scaler: Any | None = None,
        seed: int | None = None,
        agent_seed: int | None = None,
        agent_state: Mapping[str, Any] | None = None,
        continue_after_divergence: bool = False,
        config: EnvConfig | None = None,
        reward_eval: Callable[[], torch.Tensor] | None = None,
        **overrides: Any,
    ) -> None:
        self.control = EpisodeControl(
            optimizer,
            config,
            lr_scheduler=lr_scheduler,
            scheduler_every=scheduler_every,
            grad_scaler=grad_scaler,
            seed=seed,
            total_steps=total_steps,
            window_length=window_length,
            reward_eval=reward_eval,
            **overrides,
        )
        self.agent = agent
        self.continue_after_divergence = continue_after_divergence
        low, high = feature_bounds(self.control.config)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = spaces.Discrete(self.control.grid.size)
        self.obs, self.info = self.control.reset()
        self.diverged_windows = 0
        self.last_outcome: WindowOutcome | None = None
        self.current_action: int | None = None  # mode id of the open (or last) window
        agent.reset(
            seed=seed if agent_seed is None else agent_seed,
            observation_space=self.observation_space,
            action_space=self.action_space,
            info=self.info,
        )
        if agent_state is not None:
            _load_agent_state(agent, agent_state)

    @property
    def done(self) -> bool:
        """True once the step budget is used, or after a divergence unless continuing."""
        return self.control.done

    def before_step(self) -> tuple[float, float] | None:
        """Open the next window when one is due: ask the agent, freeze its candidate.

        Returns:
            ``(lr multiplier, noise std)`` when a window opened, else ``None``.

        Raises:
            RuntimeError: If the run is over (see :attr:`done`).
        """
        if self.control.done:
            raise RuntimeError(
                f"the run is over after {self.control.history.steps_done} of "
                f"{self.control.config.total_steps} steps"
                + (" (a window diverged)" if self.control.diverged else "")
                + "; check ct.done in the loop or construct it with a larger total_steps."
            )
        if not self.control.needs_action:
            return None
        action = self.agent.act(self.obs, self.info)
        values = self.control.begin_window(action)  # a mode id or an exact Candidate
        self.current_action = self.control.window_action
        return values

    def after_step(self, loss: torch.Tensor | float) -> WindowOutcome | None:
        """Record ``loss`` and step the optimizer (and scheduler); when the window closes, the agent learns.

        Do not call ``optimizer.step()`` or ``scheduler.step()`` yourself: this call does both, and
        a step of either made outside since the previous call raises ``RuntimeError`` here.
        Call after ``loss.backward()`` (and any clipping). Returns the window's outcome when this
        step closed it, else ``None``. ``loss`` is a scalar tensor or a number.
        """
        outcome = self.control.step_end(loss)
        return None if outcome is None else self._finish(outcome)

    def close_window(self) -> WindowOutcome | None:
        """Close a partly run window now (end of the loop); ``None`` if none is open."""
        outcome = self.control.close_window()
        return None if outcome is None else self._finish(outcome)

    def state_dict(self) -> dict[str, Any]:
        """Control (history, noise generators, open window) and agent state, for ``torch.save``."""
        state_dict = getattr(self.agent, "state_dict", None)
        return {
            "control": self.control.state_dict(),
            "agent": state_dict() if callable(state_dict) else {},
            "diverged_windows": self.diverged_windows,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue exactly where :meth:`state_dict` left off (same optimizer, agent class, config)."""
        self.control.load_state_dict(dict(state["control"]))
        _load_agent_state(self.agent, state["agent"])
        self.diverged_windows = int(state["diverged_windows"])
        self.obs, self.info = self.control.observation(), self.control.base_info()
        action = int(state["control"]["window"]["action"])
        self.current_action = action if action >= 0 else None

    def _finish(self, outcome: WindowOutcome) -> WindowOutcome:
        diverged = bool(outcome.info["diverged"])
        if diverged:
            self.diverged_windows += 1
        if diverged and self.continue_after_divergence:
            # The divergence is recorded in the window's info and reward; clearing the flag lets
            # the control open further windows (a GradScaler, for one, skips non-finite steps).
            self.control.diverged = False
            outcome = replace(outcome, terminated=self.control.done)
        self.agent.update(outcome.action, outcome.reward, outcome.observation, outcome.terminated, False, outcome.info)
        self.obs, self.info = outcome.observation, outcome.info
        self.last_outcome = outcome
        return outcome


def _load_agent_state(agent: Agent, state: Mapping[str, Any]) -> None:
    loader = getattr(agent, "load_state_dict", None)
    if not callable(loader):
        raise TypeError(f"{type(agent).__name__} has no load_state_dict(); it cannot restore a state.")
    loader(state)


# ------------------------------------------------------------------ agents on disk
def save_agent_state(agent: Agent, path: str | Path) -> Path:
    """Write an online agent's ``state_dict`` (bandits, heuristic) as JSON, atomically.

    The file records the agent name and constructor config when the state has them (as the
    bandits' states do), so :func:`load_agent` can rebuild the agent from the file alone.
    """
    state_dict = getattr(agent, "state_dict", None)
    if not callable(state_dict):
        raise TypeError(f"{type(agent).__name__} has no state_dict(); save SB3 policies with save().")
    state = dict(state_dict())
    state.setdefault("agent", getattr(agent, "name", ""))
    return atomic_write_text(path, json.dumps(state, sort_keys=True))


def load_agent(path: str | Path, **kwargs: Any) -> tuple[Agent, dict[str, Any] | None]:
    """An agent from disk: an SB3 zip, or a state-dict JSON written by :func:`save_agent_state`.

    Args:
        path: ``*.zip`` (``SB3Agent.load``) or ``*.json`` (agent name + config + state).
        **kwargs: Extra constructor arguments.

    Returns:
        ``(agent, state)``: pass ``state`` as ``agent_state`` to :class:`ControlledTraining`
        (``None`` for SB3 policies, whose weights are loaded already).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the suffix is neither ``.zip`` nor ``.json`` or the JSON names no agent.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no agent file at {path}.")
    if path.suffix == ".zip":
        from agents.sb3 import SB3Agent

        return SB3Agent.load(path, **kwargs), None
    if path.suffix != ".json":
        raise ValueError(f"{path}: expected an SB3 policy (.zip) or an agent state (.json).")
    fix = "; write it with agents.deploy.save_agent_state()"
    state = json_object(read_json_checked(path, max_bytes=MAX_STATE_BYTES, what="an agent state"), path, fix=fix)
    if not state.get("agent"):
        raise FileCheckError(path, "agent", f"names no agent{fix}")
    name = json_field(state, "agent", checks.text, path, fix=fix)
    config = json_object(state.get("config", {}), path, "config", fix=fix)
    return make_agent(name, **{**config, **kwargs}), state
