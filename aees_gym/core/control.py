"""EpisodeControl: one candidate per window around ``optimizer.step()``, with no per-step host sync.

``step_end`` calls ``optimizer.step()`` and the scheduler's ``step()`` itself, so a loop using it
has neither call of its own (one made outside is detected at the next ``step_end``, which raises).
The env uses it, and so can a user's own training loop::

    control = EpisodeControl(optimizer, window_length=50, total_steps=1000, lr_scheduler=sched, seed=0)
    obs, info = control.reset()
    for step in range(1000):
        if control.needs_action:
            control.begin_window(agent.act(obs, info))
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        outcome = control.step_end(loss)          # steps optimizer and scheduler; None until the window closes
        if outcome is not None:
            agent.update(outcome.action, outcome.reward, outcome.observation,
                         outcome.terminated, False, outcome.info)
            obs, info = outcome.observation, outcome.info

Per optimizer step it only writes the loss into a preallocated device tensor, sets each param
group's lr to ``base * multiplier`` (and, with a momentum axis, its ``momentum`` or β1; both
restored in ``finally``), adds seeded gradient noise with ``torch._foreach_*`` ops, and steps.
Losses reach the host once per window.

An action is a grid mode id or an exact :class:`~aees_gym.core.grid.Candidate` inside the grid's
ranges (continuous agents). With ``freeze_threshold`` set, tensors whose gradient-norm EMA has
faded skip their updates for a window (:mod:`aees_gym.core.freezing`); the decision travels to the
host with the window's losses, in the same transfer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from aees_gym.core import context as ctx
from aees_gym.core.config import ControlConfig
from aees_gym.core.control_checks import OutsideSteps, check_state, heldout_eval, layout, write_loss
from aees_gym.core.freezing import GradientFreezer
from aees_gym.core.grid import Candidate, CandidateGrid
from aees_gym.core.noise import GradientNoise
from aees_gym.core.param_groups import momentum_keys, window_hyperparameters
from aees_gym.core.reward import WindowSignals
from aees_gym.core.window import plan_window, record_evaluation, record_window, start_info, window_info


@dataclass(frozen=True)
class WindowOutcome:
    """What closing a window produced: the Gymnasium ``step`` return values plus the action."""

    action: int
    observation: np.ndarray
    reward: float
    terminated: bool
    info: dict[str, Any]


class EpisodeControl:
    """Apply the chosen (lr multiplier, noise std) to ``optimizer`` for one window at a time.

    :meth:`step_end` is the optimizer step and the scheduler step: do not call
    ``optimizer.step()`` or ``lr_scheduler.step()`` yourself.

    Args:
        optimizer: Any ``torch.optim.Optimizer`` whose param-group ``lr`` values are floats.
        config: Window length, budget, grid, reward, context and action mode: a
            :class:`~aees_gym.core.config.ControlConfig`, or any object with those fields (an
            ``EnvConfig`` hands over its own).
        lr_scheduler: Optional scheduler of the base LR. ``ReduceLROnPlateau`` is stepped once per
            window with the window's mean loss; any other scheduler every ``scheduler_every`` steps.
        scheduler_every: Optimizer steps between scheduler steps (e.g. steps per epoch).
        grad_scaler: Optional ``torch.amp.GradScaler``; gradients are unscaled before noise is added.
        seed: Seed of the gradient-noise generators (``None``: fresh entropy, never a fixed default).
        evaluate: Optional ``evaluate(window_index, run_over) -> metrics or None``, called as each
            window closes and before its observation is built; returned metrics (``val_loss``,
            ``val_accuracy``, …) are recorded with :meth:`record_evaluation` and put in ``info["eval"]``.
        reward_eval: Optional ``reward_eval() -> device scalar``: the loss on a fixed held-out batch
            (eval mode, no grad), needed by rewards registered ``uses_heldout`` (``heldout``). It is
            called when each window opens and closes, into the window's loss buffer, so its values
            reach the host with the step losses; ignored by the other rewards.
        **overrides: Any :class:`ControlConfig` field, e.g. ``window_length=50, total_steps=1000``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        config: ControlConfig | Any | None = None,
        *,
        lr_scheduler: Any | None = None,
        scheduler_every: int = 1,
        grad_scaler: Any | None = None,
        seed: int | None = None,
        evaluate: Callable[[int, bool], Mapping[str, float] | None] | None = None,
        reward_eval: Callable[[], torch.Tensor] | None = None,
        **overrides: Any,
    ) -> None:
        self.config = ControlConfig.of(config if config is not None else ControlConfig(), **overrides)
        self._evaluate = evaluate
        self._reward_eval = heldout_eval(self.config, reward_eval)
        if scheduler_every < 1:
            raise ValueError(f"scheduler_every must be >= 1, got {scheduler_every}.")
        ctx.validate_features(self.config.context.features)
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.scheduler_every = scheduler_every
        self.grad_scaler = grad_scaler
        self._plateau = isinstance(lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        self.seed = int(np.random.SeedSequence().generate_state(1)[0]) if seed is None else int(seed)
        self._params = [p for g in optimizer.param_groups for p in g["params"]]
        self._param_keys = [(gi, pi) for gi, g in enumerate(optimizer.param_groups) for pi in range(len(g["params"]))]
        device = self._params[0].device if self._params else torch.device("cpu")
        # A window never runs more steps than the budget, so a window_length beyond it allocates nothing more.
        capacity = min(self.config.window_length, self.config.total_steps)
        # Held-out losses at window open/close sit before the step losses: one slice, one transfer.
        self._n_signals = 2 if self._reward_eval is not None else 0
        self._buffer = torch.zeros(self._n_signals + capacity, dtype=torch.float32, device=device)
        self._losses = self._buffer[self._n_signals :]
        self._grad_norms = torch.zeros_like(self._losses) if ctx.uses_grad_norm(self.config) else None
        self._loss_slots = self._losses.unbind(0)  # views made once; indexing per step costs more
        self._momentum_keys = momentum_keys(optimizer) if self.grid.has_momentum else []
        threshold = self.config.freeze_threshold
        self._freezer = None if threshold is None else GradientFreezer(self._params, threshold, self.config.freeze_beta, device)
        # (param, generator, buffer) per parameter, built on the first noisy window and reused.
        self._noise = GradientNoise(self.seed, self._params, self._param_keys)
        self._outside = OutsideSteps(optimizer)
        self.reset()

    @property
    def grid(self) -> CandidateGrid:
        return self.config.grid

    @property
    def needs_action(self) -> bool:
        """True when the next optimizer step starts a new window (and the run is not over)."""
        return self._window_steps == 0 and not self.done

    @property
    def window_index(self) -> int:
        """Index of the window about to run (= windows closed so far in this run)."""
        return len(self.history.rewards)

    @property
    def done(self) -> bool:
        return self.diverged or self.history.steps_done >= self.config.total_steps

    def reset(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new run: clear the history; the noise generators keep their streams."""
        self.history = ctx.RunHistory(total_steps=self.config.total_steps)
        self.eval_curve: list[dict[str, float]] = []
        self.diverged = False
        self._window_steps = 0
        self._filled = 0
        self._action = -1
        self._lr_multiplier = 1.0
        self._noise_std = 0.0
        self._momentum: float | None = None
        self._candidate: Candidate | None = None
        self._exact = False
        if self._freezer is not None:
            self._freezer.reset()
        self._window_start_time = 0.0
        self._outside.forget()
        return self.observation(), self.base_info()

    def observation(self) -> np.ndarray:
        return ctx.observation(self.history, self.config)

    def base_info(self) -> dict[str, Any]:
        """Buckets and progress for the window about to start (what ``reset`` publishes)."""
        return start_info(self.history, self.config)

    # ------------------------------------------------------------------ window lifecycle
    @property
    def window_action(self) -> int:
        """Mode id of the open (or last) window's cell: the nearest cell for an exact candidate; -1 before any."""
        return self._action

    @property
    def frozen_fraction(self) -> float:
        """Share of the parameters (by element count) frozen for the open or next window."""
        return 0.0 if self._freezer is None else self._freezer.fraction

    def begin_window(self, action: Any) -> tuple[float, float]:
        """Fix the candidate for the next window; returns (lr multiplier, noise std).

        ``action`` is a mode id of the grid or an exact :class:`Candidate` inside ``grid.ranges``.
        """
        if self.done:
            raise RuntimeError("The run is over (budget used or diverged); call reset() to start a new one.")
        if self._window_steps:
            raise RuntimeError("A window is already open; finish it with step_end() before choosing again.")
        if any(isinstance(g["lr"], torch.Tensor) for g in self.optimizer.param_groups):
            raise TypeError("EpisodeControl needs float learning rates in param groups (got a Tensor lr).")
        plan = plan_window(self.history, self.config, action)
        self._action, self._candidate, self._exact = plan.action_id, plan.candidate, plan.exact
        self._noise_std, self._momentum = plan.candidate.noise_std, plan.candidate.momentum
        self._lr_multiplier = plan.lr_multiplier
        self._window_steps = min(self.config.window_length, self.config.total_steps - self.history.steps_done)
        self._filled = 0
        self._window_start_time = time.perf_counter()
        self._measure_heldout(0)
        return self._lr_multiplier, self._noise_std

    def step_end(self, loss: torch.Tensor | float) -> WindowOutcome | None:
        """Record ``loss``, step the optimizer (and scheduler) under the window's candidate.

        **This call is the optimizer step**: do not call ``optimizer.step()`` or the scheduler's
        ``step()`` yourself. A step of either made outside the control since the previous call is
        detected here and raises a ``RuntimeError`` naming the line to remove.

        Call after ``loss.backward()`` (and after any gradient clipping). Returns the
        :class:`WindowOutcome` when this step closes the window, else ``None``.

        Raises:
            TypeError: If ``loss`` is neither a tensor nor a real number.
            ValueError: If ``loss`` is a tensor with more than one element.
            RuntimeError: If no window is open, or the optimizer/scheduler was stepped outside.
        """
        if not self._window_steps:
            raise RuntimeError("No window is open: call begin_window(action) first (see needs_action).")
        self._outside.check(self.lr_scheduler)
        slot = self._filled
        write_loss(self._loss_slots[slot], loss)
        try:
            self._optimizer_step(slot)
            self._filled += 1
            self.history.steps_done += 1
            if not self._plateau and self.lr_scheduler is not None and self.history.steps_done % self.scheduler_every == 0:
                self.lr_scheduler.step()
            return self._close_window() if self._filled == self._window_steps else None
        finally:
            self._outside.mark(self.lr_scheduler)

    def close_window(self) -> WindowOutcome | None:
        """Close the open window now, after the steps it has run (e.g. when a user's loop ends).

        The outcome is computed exactly as for a full window of that many steps. Returns ``None``
        when no window is open; a window opened by ``begin_window`` that ran no step is discarded.
        """
        if not self._window_steps:
            return None
        if not self._filled:
            self._window_steps = 0
            return None
        self._window_steps = self._filled
        try:
            return self._close_window()
        finally:
            self._outside.mark(self.lr_scheduler)

    def _optimizer_step(self, slot: int) -> None:
        scaler = self.grad_scaler
        noisy = self._noise_std > 0.0
        with window_hyperparameters(self.optimizer, self._lr_multiplier, self._momentum, self._momentum_keys):
            if scaler is not None and (noisy or self._grad_norms is not None or self._freezer is not None):
                self._unscale_once(scaler)
            if self._grad_norms is not None:
                grads = [p.grad for p in self._params if p.grad is not None]
                if grads:
                    self._grad_norms[slot] = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            if self._freezer is not None:
                self._freezer.step()
            if noisy:
                self._noise.add_(self._noise_std)
            if scaler is None:
                self.optimizer.step()
            else:
                scaler.step(self.optimizer)
                scaler.update()

    def _unscale_once(self, scaler: Any) -> None:
        # GradScaler refuses a second unscale_ in one step; the user may already have unscaled to clip.
        state = scaler._per_optimizer_states[id(self.optimizer)]
        if state["stage"].name != "UNSCALED":
            scaler.unscale_(self.optimizer)

    def _measure_heldout(self, slot: int) -> None:
        if self._reward_eval is not None:
            self._buffer[slot].copy_(self._reward_eval().detach())  # device-side: read with the losses

    def _close_window(self) -> WindowOutcome:
        n, k = self._window_steps, self._n_signals
        frozen_fraction = self.frozen_fraction  # of the window that ran
        self._measure_heldout(1)
        window = self._buffer[: k + n]
        # Everything the host needs from the window crosses in one transfer (one sync on a GPU):
        # the losses, then the mean gradient norm and the next window's frozen set when tracked.
        extra = [self._grad_norms[:n].mean().reshape(1)] if self._grad_norms is not None else []
        if self._freezer is not None:
            extra.append(self._freezer.below_threshold())
        host: list[float] = (torch.cat([window, *extra]) if extra else window).tolist()  # the one host transfer
        values = host[: k + n]
        grad_norm = host[k + n] if self._grad_norms is not None else None
        if self._freezer is not None:
            self._freezer.decide(host[k + n + (grad_norm is not None) :])
        losses, signals = values[k:], (WindowSignals(values[0], values[1]) if k else None)
        lr_idx, noise_idx, momentum_idx = self.grid.indices(self._action)
        candidate = self._candidate
        score = record_window(
            self.history, losses, self.config, lr_index=lr_idx, noise_index=noise_idx, grad_norm=grad_norm,
            wall_time=time.perf_counter() - self._window_start_time, momentum_index=momentum_idx,
            positions=self.grid.positions(candidate) if self._exact and candidate is not None else None,
            signals=signals,
        )
        self.diverged = score.diverged
        if self._plateau and not score.diverged:
            self.lr_scheduler.step(sum(losses) / n)
        evaluation = self._evaluate(len(self.history.rewards) - 1, self.done) if self._evaluate is not None else None
        if evaluation is not None:
            self.record_evaluation(evaluation)
        info = window_info(
            self.history, self.config, score, losses, action=self._action, lr_multiplier=self._lr_multiplier,
            noise_std=self._noise_std, effective_lr=self.optimizer.param_groups[0]["lr"] * self._lr_multiplier,
            grad_norm=grad_norm, momentum=self._momentum, frozen_fraction=frozen_fraction,
            candidate_name=candidate.label if self._exact and candidate is not None else None,
        )
        if evaluation is not None and not self.done:
            info["eval"] = self.eval_curve[-1]
        self._window_steps = self._filled = 0
        return WindowOutcome(self._action, self.observation(), score.reward, self.done, info)

    def record_evaluation(self, metrics: Mapping[str, float]) -> None:
        """Record a validation result: the observation's ``val_*`` features and the evaluation curve."""
        record_evaluation(self.history, self.eval_curve, metrics)

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly (generators and an open window included)."""
        return {
            "seed": self.seed,
            "history": {k: (list(v) if isinstance(v, list) else v) for k, v in vars(self.history).items()},
            "diverged": self.diverged,
            "eval_curve": [dict(e) for e in self.eval_curve],
            "window": {
                "steps": self._window_steps,
                "filled": self._filled,
                "action": self._action,
                "lr_multiplier": self._lr_multiplier,
                "noise_std": self._noise_std,
                "losses": self._losses.detach().cpu().clone(),
                "candidate": None if self._candidate is None else list(vars(self._candidate).values()),
                "exact": self._exact,
                "heldout": self._buffer[: self._n_signals].detach().cpu().clone(),
            },
            "freezing": None if self._freezer is None else self._freezer.state_dict(),
            "generators": self._noise.state_dict(),
            "layout": self._layout(),
        }

    def _layout(self) -> dict[str, Any]:
        return layout(self.config.window_length, self.config.total_steps, self.grid, self.optimizer.param_groups)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the run saved by :meth:`state_dict` (same settings, grid and optimizer layout).

        Raises:
            KeyError: If keys are missing.
            ValueError: If the state was saved under another window length, budget, grid or
                optimizer parameter layout; the message names each difference.
        """
        check_state(state, self._layout(), self._losses.numel(), self.grid.size)
        self._outside.forget()
        self.seed = int(state["seed"])
        history = dict(state["history"])
        history["actions"] = [tuple(a) for a in history["actions"]]
        self.history = ctx.RunHistory(**history)
        self.diverged = bool(state["diverged"])
        self.eval_curve = [dict(e) for e in state.get("eval_curve", [])]
        w = state["window"]
        self._window_steps, self._filled, self._action = int(w["steps"]), int(w["filled"]), int(w["action"])
        self._lr_multiplier, self._noise_std = float(w["lr_multiplier"]), float(w["noise_std"])
        self._losses.copy_(w["losses"].to(self._losses.device))
        self._load_candidate_and_freezing(w, state.get("freezing"))
        if self._n_signals and "heldout" in w and len(w["heldout"]) == self._n_signals:
            self._buffer[: self._n_signals].copy_(w["heldout"].to(self._buffer.device))
        self._noise.load_state_dict(self.seed, state["generators"], self._losses.device)

    def _load_candidate_and_freezing(self, window: Mapping[str, Any], freezing: Mapping[str, Any] | None) -> None:
        candidate = window.get("candidate")
        self._candidate = None if candidate is None else Candidate(*candidate)
        self._momentum = None if self._candidate is None else self._candidate.momentum
        self._exact = bool(window.get("exact", False))
        if self._freezer is not None and freezing is not None:
            self._freezer.load_state_dict(freezing)
