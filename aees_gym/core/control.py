"""EpisodeControl: one candidate per window around ``optimizer.step()``, with no per-step host sync.

The env uses it, and so can a user's own training loop::

    control = EpisodeControl(optimizer, window_length=50, total_steps=1000, lr_scheduler=sched, seed=0)
    obs, info = control.reset()
    for step in range(1000):
        if control.needs_action:
            control.begin_window(agent.act(obs, info))
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        outcome = control.step_end(loss)          # None until the window closes
        if outcome is not None:
            agent.update(outcome.action, outcome.reward, outcome.observation,
                         outcome.terminated, False, outcome.info)
            obs, info = outcome.observation, outcome.info

Per optimizer step it only writes the loss into a preallocated device tensor, sets each param
group's lr to ``base * multiplier`` (restored in ``finally``), adds seeded gradient noise with
``torch._foreach_*`` ops, and steps. Losses reach the host once per window.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from aees_gym.core import context as ctx
from aees_gym.core.config import ControlConfig
from aees_gym.core.grid import CandidateGrid
from aees_gym.core.reward import WindowSignals, reward_uses_heldout
from aees_gym.core.window import record_window, start_info, window_info

# The reference seeds one generator per parameter tensor this way; keeping the scheme makes the
# gradient noise, and therefore whole runs, reproducible against it.
_PARAM_SEED_STRIDE = 1009
# normal_(0, σ) draws the same stream as randn() and equals randn()·σ bit for bit from this size on
# (its vectorised path); smaller tensors keep randn()·σ so runs stay identical to the reference.
_FUSED_NORMAL_MIN_NUMEL = 16


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
        self._reward_eval = reward_eval if reward_uses_heldout(self.config.reward.name) else None
        if self._reward_eval is None and reward_uses_heldout(self.config.reward.name):
            raise ValueError(
                f"Reward {self.config.reward.name!r} needs reward_eval=, the loss on a fixed held-out batch; this run "
                "provides none (the classification tasks do). Choose another reward, e.g. reward={'name': 'aees'}."
            )
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
        # Held-out losses at window open/close sit before the step losses: one slice, one transfer.
        self._n_signals = 2 if self._reward_eval is not None else 0
        self._buffer = torch.zeros(self._n_signals + self.config.window_length, dtype=torch.float32, device=device)
        self._losses = self._buffer[self._n_signals :]
        self._grad_norms = torch.zeros_like(self._losses) if ctx.uses_grad_norm(self.config) else None
        self._loss_slots = self._losses.unbind(0)  # views made once; indexing per step costs more
        # (param, generator, buffer) per parameter, built on the first noisy window and reused.
        self._noise_targets: list[tuple[torch.Tensor, torch.Generator, torch.Tensor]] | None = None
        self._generators: dict[tuple[int, int], torch.Generator] = {}
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
        self._window_start_time = 0.0
        return self.observation(), self.base_info()

    def observation(self) -> np.ndarray:
        return ctx.observation(self.history, self.config)

    def base_info(self) -> dict[str, Any]:
        """Buckets and progress for the window about to start (what ``reset`` publishes)."""
        return start_info(self.history, self.config)

    # ------------------------------------------------------------------ window lifecycle
    def begin_window(self, action: Any) -> tuple[float, float]:
        """Freeze the candidate ``action`` for the next window; returns (lr multiplier, noise std)."""
        if self.done:
            raise RuntimeError("The run is over (budget used or diverged); call reset() to start a new one.")
        if self._window_steps:
            raise RuntimeError("A window is already open; finish it with step_end() before choosing again.")
        self._action = self.grid.validate_action(action)
        if any(isinstance(g["lr"], torch.Tensor) for g in self.optimizer.param_groups):
            raise TypeError("EpisodeControl needs float learning rates in param groups (got a Tensor lr).")
        lr_value, self._noise_std = self.grid.values(self._action)
        if self.config.action_mode == "relative":
            low, high = self.config.relative_lr_bounds
            self.history.lr_scale = min(max(self.history.lr_scale * lr_value, low), high)
            self._lr_multiplier = self.history.lr_scale
        else:
            self._lr_multiplier = lr_value
        self._window_steps = min(self.config.window_length, self.config.total_steps - self.history.steps_done)
        self._filled = 0
        self._window_start_time = time.perf_counter()
        self._measure_heldout(0)
        return self._lr_multiplier, self._noise_std

    def step_end(self, loss: torch.Tensor | float) -> WindowOutcome | None:
        """Record ``loss``, step the optimizer under the window's candidate; close the window when full.

        Call after ``loss.backward()`` (and after any gradient clipping). Returns the
        :class:`WindowOutcome` when this step closes the window, else ``None``.
        """
        if not self._window_steps:
            raise RuntimeError("No window is open: call begin_window(action) first (see needs_action).")
        slot = self._filled
        if isinstance(loss, torch.Tensor):
            self._loss_slots[slot].copy_(loss.detach())  # a device-side copy: no host sync
        else:
            self._loss_slots[slot].fill_(float(loss))
        self._optimizer_step(slot)
        self._filled += 1
        self.history.steps_done += 1
        if not self._plateau and self.lr_scheduler is not None and self.history.steps_done % self.scheduler_every == 0:
            self.lr_scheduler.step()
        if self._filled == self._window_steps:
            return self._close_window()
        return None

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
        return self._close_window()

    def _optimizer_step(self, slot: int) -> None:
        groups = self.optimizer.param_groups
        base_lrs = [g["lr"] for g in groups]
        scaler = self.grad_scaler
        noisy = self._noise_std > 0.0
        try:
            for group, base in zip(groups, base_lrs, strict=True):
                group["lr"] = base * self._lr_multiplier
            if scaler is not None and (noisy or self._grad_norms is not None):
                self._unscale_once(scaler)
            if self._grad_norms is not None:
                grads = [p.grad for p in self._params if p.grad is not None]
                if grads:
                    self._grad_norms[slot] = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            if noisy:
                self._add_noise()
            if scaler is None:
                self.optimizer.step()
            else:
                scaler.step(self.optimizer)
                scaler.update()
        finally:
            for group, base in zip(groups, base_lrs, strict=True):
                group["lr"] = base

    def _unscale_once(self, scaler: Any) -> None:
        # GradScaler refuses a second unscale_ in one step; the user may already have unscaled to clip.
        state = scaler._per_optimizer_states[id(self.optimizer)]
        if state["stage"].name != "UNSCALED":
            scaler.unscale_(self.optimizer)

    def _add_noise(self) -> None:
        if self._noise_targets is None:
            self._noise_targets = [
                (p, self._generator(key, p.device), torch.empty_like(p))
                for key, p in zip(self._param_keys, self._params, strict=True)
            ]
        std = self._noise_std
        grads, noises = [], []
        for param, gen, buf in self._noise_targets:
            if param.grad is None:
                continue
            if buf.numel() >= _FUSED_NORMAL_MIN_NUMEL:
                buf.normal_(0.0, std, generator=gen)
            else:
                torch.randn(buf.shape, generator=gen, out=buf)
                buf.mul_(std)
            grads.append(param.grad)
            noises.append(buf)
        torch._foreach_add_(grads, noises)

    def _generator(self, key: tuple[int, int], device: torch.device) -> torch.Generator:
        gen = self._generators.get(key)
        if gen is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed + key[0] * _PARAM_SEED_STRIDE + key[1])
            self._generators[key] = gen
        return gen

    def _measure_heldout(self, slot: int) -> None:
        if self._reward_eval is not None:
            self._buffer[slot].copy_(self._reward_eval().detach())  # device-side: read with the losses

    def _close_window(self) -> WindowOutcome:
        n, k = self._window_steps, self._n_signals
        self._measure_heldout(1)
        values: list[float] = self._buffer[: k + n].tolist()  # the one host transfer of the window
        losses, signals = values[k:], (WindowSignals(values[0], values[1]) if k else None)
        grad_norm = float(self._grad_norms[:n].mean()) if self._grad_norms is not None else None
        lr_idx, noise_idx = self.grid.split(self._action)
        score = record_window(
            self.history, losses, self.config, lr_index=lr_idx, noise_index=noise_idx, grad_norm=grad_norm,
            wall_time=time.perf_counter() - self._window_start_time, signals=signals,
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
            grad_norm=grad_norm,
        )
        if evaluation is not None and not self.done:
            info["eval"] = self.eval_curve[-1]
        self._window_steps = 0
        return WindowOutcome(self._action, self.observation(), score.reward, self.done, info)

    def record_evaluation(self, metrics: Mapping[str, float]) -> None:
        """Record a validation result: the observation's ``val_*`` features and the evaluation curve."""
        entry = {**metrics, "step": self.history.steps_done}
        val_loss = entry.get("val_loss")
        self.history.val_loss = val_loss if val_loss is not None and math.isfinite(val_loss) else None
        self.history.val_accuracy = entry.get("val_accuracy")
        self.eval_curve.append(entry)

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
                "heldout": self._buffer[: self._n_signals].detach().cpu().clone(),
            },
            "generators": {f"{g}:{p}": gen.get_state() for (g, p), gen in self._generators.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
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
        if self._n_signals and "heldout" in w and len(w["heldout"]) == self._n_signals:
            self._buffer[: self._n_signals].copy_(w["heldout"].to(self._buffer.device))
        self._generators = {}
        self._noise_targets = None  # they hold the previous generators
        device = self._losses.device
        for key, gen_state in state["generators"].items():
            g, p = (int(x) for x in key.split(":"))
            gen = torch.Generator(device=device)
            gen.set_state(gen_state)
            self._generators[(g, p)] = gen
