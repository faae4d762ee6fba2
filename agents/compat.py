"""Drop-in replacement for ``pulseopt.AEES``: change one import, keep the training loop.

>>> from agents.compat import AEES          # was: from pulseopt import AEES

Same constructor arguments, the same ``step_start`` / ``step_end`` / ``finalize`` / ``get_logs``
loop and, for the same seed, the same decisions and rewards as pulseopt 0.3.0 (tested end to end).
It is built on :class:`aees_gym.EpisodeControl` with the ``ducb`` / ``contextual`` / ``random``
agents, and differs where the reference has known defects:

* **No per-step host syncs or clones.** ``step_end`` never calls ``.item()``; a window's losses
  reach the host once, when it closes. The reference's ``mean_update_norms`` log (a parameter clone
  and a sync per tensor per step) is therefore not produced.
* **NaN safety.** A non-finite loss does not raise. It cannot be seen without a sync, so it is
  detected when its window closes: that window gets the divergence reward (``reward_clip_min``),
  ``episode_diverged`` is ``True`` in the logs, its reward terms and EMAs are NaN, and the agent
  learns that reward. Afterwards training goes on and windows keep opening as usual — with a
  ``GradScaler`` the offending steps were skipped and nothing is lost; without one the parameters
  may be non-finite, so check :attr:`AEES.diverged` and restore a checkpoint (model, optimizer and
  this object's :meth:`~AEES.state_dict`).
* **Seeding.** ``seed=None`` draws fresh entropy for the noise (the reference reuses one fixed
  generator seed); with a seed the per-parameter noise generators are seeded exactly as the
  reference seeds them.
* **Checkpoints.** :meth:`~AEES.state_dict` / :meth:`~AEES.load_state_dict` (for ``torch.save``).
* ``control_mode="random"`` draws uniformly over the grid from the ``random`` agent's generator:
  the same distribution as the reference, not the same draws.

``total_steps`` (not in pulseopt) is the run's length in optimizer steps. It only feeds the
training-progress and phase features of the observation, which these controllers do not use;
when omitted it is effectively unbounded and those features are meaningless. When given, the last
window ends at ``total_steps`` and further ``step_start`` calls raise.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from aees_gym.core.config import ContextConfig, RewardConfig
from aees_gym.core.control import WindowOutcome
from aees_gym.core.grid import CandidateGrid
from aees_gym.tasks.config import EnvConfig
from agents.bandits import ContextualUCBAgent, DiscountedUCBAgent
from agents.base import BaseAgent
from agents.baselines import RandomAgent
from agents.deploy import ControlledTraining
from agents.structured_ucb import STRUCTURED_MODES

__all__ = ["AEES", "Candidate", "UNBOUNDED_STEPS"]

#: ``total_steps`` used when none is given: no real run reaches it.
UNBOUNDED_STEPS = 2**62

_CONTROL_MODES = ("adaptive", "random")
_CONTEXT_MODES = ("none", "trend")
_WINDOW_LOG_KEYS = (
    "selected_lr_indices",
    "selected_noise_indices",
    "selected_lr_values",
    "selected_noise_values",
    "selected_combined_names",
    "episode_rewards",
    "episode_start_steps",
    "episode_end_steps",
    "episode_start_losses",
    "episode_end_losses",
    "episode_ema_loss_starts",
    "episode_ema_loss_ends",
    "reward_base",
    "reward_instability",
    "reward_penalty",
    "reward_final_unclipped",
    "reward_final_clipped",
    "episode_diverged",
)


@dataclass(frozen=True)
class Candidate:
    """The candidate of the current window, as ``step_start`` returns it (pulseopt's CandidateConfig)."""

    name: str
    lr_multiplier: float = 1.0
    noise_std: float = 0.0


def _choice(name: str, value: str, valid: Sequence[str]) -> None:
    if value not in valid:
        raise ValueError(f"{name} must be one of {sorted(valid)}, got {value!r}.")


def _agent(control_mode: str, context_mode: str, structured: str) -> BaseAgent:
    if control_mode == "random":
        return RandomAgent()
    if context_mode == "trend":
        return ContextualUCBAgent(bucketing="trend", structured=structured)
    return DiscountedUCBAgent(structured=structured)


class AEES:
    """pulseopt's ``AEES`` wrapper on aees_gym's control: one candidate per episode of steps.

    Args:
        optimizer: Any ``torch.optim.Optimizer``.
        lr_candidates: LR multipliers (one value: a fixed axis without a controller).
        noise_candidates: Gradient-noise stds (one value: a fixed axis).
        episode_length: Optimizer steps per episode (window).
        lr_scheduler: Optional scheduler, stepped after every optimizer step on the base LR.
        control_mode: ``"adaptive"`` (discounted UCB) or ``"random"``.
        structured_control_mode: ``"independent"`` or ``"conditional"``.
        context_mode: ``"none"`` or ``"trend"`` (bucketed contextual UCB).
        context_trend_window: Windows whose end losses decide the trend bucket.
        context_trend_epsilon: Absolute slope below which the trend is stable.
        reward_instability_lambda: Weight of the instability penalty.
        reward_epsilon: Stabiliser inside the reward's logarithms.
        reward_clip_min: Lower reward clip; also the reward of a diverged window.
        reward_clip_max: Upper reward clip.
        ema_alpha: Weight of the newest loss in the window-local EMA.
        seed: Seed of the controllers and of the gradient noise.
        total_steps: Optional run length (see the module docstring).
        grad_scaler: Optional ``torch.amp.GradScaler`` (not in pulseopt): gradients are unscaled
            before noise, and ``scaler.step``/``update`` replace ``optimizer.step``.

    Raises:
        ValueError: If a mode is unknown (the message lists the valid ones) or a candidate list or
            number is invalid.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        lr_candidates: Sequence[float] = (1.0,),
        noise_candidates: Sequence[float] = (0.0,),
        episode_length: int = 100,
        lr_scheduler: Any | None = None,
        control_mode: str = "adaptive",
        structured_control_mode: str = "independent",
        context_mode: str = "none",
        context_trend_window: int = 3,
        context_trend_epsilon: float = 1e-3,
        reward_instability_lambda: float = 0.0,
        reward_epsilon: float = 1e-8,
        reward_clip_min: float = -1.0,
        reward_clip_max: float = 1.0,
        ema_alpha: float = 0.1,
        seed: int | None = None,
        total_steps: int | None = None,
        grad_scaler: Any | None = None,
    ) -> None:
        _choice("control_mode", control_mode, _CONTROL_MODES)
        _choice("context_mode", context_mode, _CONTEXT_MODES)
        _choice("structured_control_mode", structured_control_mode, STRUCTURED_MODES)
        config = EnvConfig(
            total_steps=UNBOUNDED_STEPS if total_steps is None else total_steps,
            window_length=episode_length,
            grid=CandidateGrid(tuple(lr_candidates), tuple(noise_candidates)),
            reward=RewardConfig(
                ema_alpha=ema_alpha,
                epsilon=reward_epsilon,
                instability_lambda=reward_instability_lambda,
                clip_min=reward_clip_min,
                clip_max=reward_clip_max,
            ),
            context=ContextConfig(trend_window=context_trend_window, trend_epsilon=context_trend_epsilon),
            divergence_loss_ratio=None,  # the reference reacts to non-finite losses only
        )
        self._context_mode = context_mode
        self._training = ControlledTraining(
            optimizer,
            _agent(control_mode, context_mode, structured_control_mode),
            total_steps=config.total_steps,
            window_length=config.window_length,
            lr_scheduler=lr_scheduler,
            grad_scaler=grad_scaler,
            seed=seed,
            continue_after_divergence=True,
            config=config,
        )
        self._optimizer = optimizer
        self._logs: dict[str, list[Any]] = {key: [] for key in self._log_keys()}
        self._current: Candidate | None = None
        self._window_candidate: Candidate | None = None
        self._window_start_step = 0
        self._window_bucket: str | None = None

    # ------------------------------------------------------------------ training loop
    def step_start(self, global_step: int) -> Candidate:
        """The candidate of this step; a new one is chosen when a window starts.

        Call once per step, before ``optimizer.zero_grad()``.

        Raises:
            ValueError: If ``global_step`` is negative.
            RuntimeError: If called twice without ``step_end``, or past ``total_steps``.
        """
        if global_step < 0:
            raise ValueError("global_step must be non-negative.")
        if self._current is not None:
            raise RuntimeError("step_start() called twice without an intervening step_end().")
        training = self._training
        if training.control.needs_action:
            self._window_start_step = int(global_step)
            self._window_bucket = training.info["trend_bucket"]
        if training.before_step() is not None or self._window_candidate is None:
            grid, action = training.control.grid, training.current_action
            self._window_candidate = Candidate(grid.name(action), *grid.values(action))
        self._current = self._window_candidate
        return self._current

    def step_end(self, loss: torch.Tensor | float) -> None:
        """Step the optimizer (and scheduler) under the current candidate and record ``loss``.

        Call after ``loss.backward()`` and any clipping. Never syncs with the device and never
        raises for a non-finite loss (see the module docstring).

        Raises:
            RuntimeError: If called without a preceding :meth:`step_start`.
        """
        if self._current is None:
            raise RuntimeError("step_end() called without a preceding step_start().")
        outcome = self._training.after_step(loss)
        self._current = None
        if outcome is not None:
            self._record(outcome)

    def finalize(self) -> None:
        """Close a trailing partial window (if it ran any step), as the reference does.

        Raises:
            RuntimeError: If a step is open (``step_start`` without ``step_end``).
        """
        if self._current is not None:
            raise RuntimeError("finalize() called with an open step — call step_end() first.")
        outcome = self._training.close_window()
        if outcome is not None:
            self._record(outcome)

    # ------------------------------------------------------------------ introspection
    def get_logs(self) -> dict[str, list[Any]]:
        """Per-window logs with pulseopt's keys, plus ``episode_diverged``."""
        return {key: list(values) for key, values in self._logs.items()}

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The wrapped optimizer."""
        return self._optimizer

    @property
    def current_candidate(self) -> Candidate | None:
        """The candidate between ``step_start`` and ``step_end``, else ``None``."""
        return self._current

    @property
    def diverged(self) -> bool:
        """Whether any window so far saw a non-finite loss."""
        return self._training.diverged_windows > 0

    @property
    def agent(self) -> BaseAgent:
        """The controlling agent (its ``state()`` has the bandit statistics)."""
        return self._training.agent  # type: ignore[return-value]

    @property
    def control(self) -> ControlledTraining:
        """The underlying agent-driven control."""
        return self._training

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (for ``torch.save``; save model/optimizer too).

        Raises:
            RuntimeError: If a step is open.
        """
        if self._current is not None:
            raise RuntimeError("state_dict() needs a closed step: call it after step_end().")
        return {
            "training": self._training.state_dict(),
            "logs": copy.deepcopy(self._logs),
            "window_start_step": self._window_start_step,
            "window_bucket": self._window_bucket,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output into an AEES built with the same arguments."""
        self._training.load_state_dict(state["training"])
        self._logs = copy.deepcopy(dict(state["logs"]))
        self._window_start_step = int(state["window_start_step"])
        self._window_bucket = state["window_bucket"]
        self._current = None
        self._window_candidate = None

    # ------------------------------------------------------------------ helpers
    def _log_keys(self) -> tuple[str, ...]:
        return _WINDOW_LOG_KEYS + (("context_buckets",) if self._context_mode != "none" else ())

    def _record(self, outcome: WindowOutcome) -> None:
        info = outcome.info
        terms = info["reward_terms"]
        nan = math.nan
        grid = self._training.control.grid
        lr_idx, noise_idx = int(info["lr_index"]), int(info["noise_index"])
        entry = {
            "selected_lr_indices": lr_idx,
            "selected_noise_indices": noise_idx,
            "selected_lr_values": grid.lr_multipliers[lr_idx],
            "selected_noise_values": grid.noise_stds[noise_idx],
            "selected_combined_names": info["candidate_name"],
            "episode_rewards": outcome.reward,
            "episode_start_steps": self._window_start_step,
            "episode_end_steps": self._window_start_step + int(info["window_steps"]) - 1,
            "episode_start_losses": info["loss_first"],
            "episode_end_losses": info["loss_last"],
            "episode_ema_loss_starts": info["ema_start"],
            "episode_ema_loss_ends": info["ema_end"],
            "reward_base": terms.get("base", nan),
            "reward_instability": terms.get("instability", nan),
            "reward_penalty": terms.get("penalty", nan),
            "reward_final_unclipped": terms.get("unclipped", nan),
            "reward_final_clipped": outcome.reward,
            "episode_diverged": bool(info["diverged"]),
            "context_buckets": self._window_bucket,
        }
        for key in self._logs:
            self._logs[key].append(entry[key])
