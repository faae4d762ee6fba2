"""What EpisodeControl checks about how it is used: steps made outside it, states loaded into it, and
the held-out loss its reward or observation features need (:func:`heldout_eval`), and the loss a
step hands it (:func:`write_loss`).

``EpisodeControl.step_end`` *is* the optimizer step (and the scheduler step). A training loop that
keeps its own ``optimizer.step()`` / ``scheduler.step()`` silently takes two steps per batch, so
:class:`OutsideSteps` counts optimizer steps with a post-step hook (no patching, no host sync) and
compares the scheduler's ``last_epoch`` between two calls. :func:`check_state` compares a state
dict with the control it is loaded into and names every mismatch.
"""

from __future__ import annotations

import numbers
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

import torch

from aees_gym.core import context as ctx
from aees_gym.core.context import RunHistory
from aees_gym.core.reward import reward_uses_heldout

_REMOVE_OPTIMIZER_STEP = (
    "step_end() (ControlledTraining.after_step()) already calls optimizer.step() under the window's "
    "candidate, so this batch was stepped twice. Remove your own `optimizer.step()` line "
    "(with a GradScaler, also `scaler.step(optimizer)` and `scaler.update()`: pass grad_scaler= instead)."
)
_REMOVE_SCHEDULER_STEP = (
    "the control steps the scheduler it was given (every scheduler_every optimizer steps; "
    "ReduceLROnPlateau once per window, with the window's mean loss). Remove your own `scheduler.step()` line."
)


class OutsideSteps:
    """Detect ``optimizer.step()`` or ``scheduler.step()`` calls made between two control steps.

    The optimizer's steps are counted by a post-step hook holding only a counter (removed when this
    object is collected); :meth:`mark` records the counts after the control's own step and
    :meth:`check` raises if they moved since. Optimizers without step hooks are not watched.
    """

    def __init__(self, optimizer: Any) -> None:
        self._count = [0]
        register = getattr(optimizer, "register_step_post_hook", None)
        if callable(register):
            counter = self._count

            def count_step(*_: Any) -> None:
                counter[0] += 1

            weakref.finalize(self, register(count_step).remove)
        self._seen: tuple[int, Any] | None = None

    @staticmethod
    def _epoch(scheduler: Any) -> Any:
        return getattr(scheduler, "last_epoch", None)

    def forget(self) -> None:
        """Stop comparing until the next :meth:`mark` (a new run, a loaded state)."""
        self._seen = None

    def mark(self, scheduler: Any) -> None:
        """Record the step counts right after the control's own step."""
        self._seen = (self._count[0], self._epoch(scheduler))

    def check(self, scheduler: Any) -> None:
        """Raise ``RuntimeError`` if the optimizer or ``scheduler`` stepped since :meth:`mark`."""
        if self._seen is None:
            return
        steps, epoch = self._seen
        extra = self._count[0] - steps
        if extra:
            raise RuntimeError(
                f"optimizer.step() ran {extra} time(s) outside the control since the previous step_end(): "
                + _REMOVE_OPTIMIZER_STEP
            )
        now = self._epoch(scheduler)
        if now != epoch:
            raise RuntimeError(
                f"The LR scheduler was stepped outside the control since the previous step_end() "
                f"(last_epoch {epoch} -> {now}): " + _REMOVE_SCHEDULER_STEP
            )


def heldout_eval(config: Any, reward_eval: Any) -> Any:
    """``reward_eval`` when the config's reward or observation features use the held-out loss, else None.

    Raises:
        ValueError: If they use it and ``reward_eval`` is None; the message names the reward or features.
    """
    needs_heldout = reward_uses_heldout(config.reward.name) or ctx.uses_heldout(config)
    kept = reward_eval if needs_heldout else None
    if kept is None and reward_uses_heldout(config.reward.name):
        raise ValueError(
            f"Reward {config.reward.name!r} needs reward_eval=, the loss on a fixed held-out batch; this run "
            "provides none (the classification tasks do). Choose another reward, e.g. reward={'name': 'aees'}."
        )
    if kept is None and needs_heldout:
        raise ValueError(
            f"Observation features {[f for f in ctx.HELDOUT_FEATURES if f in config.context.features]} need "
            "reward_eval=, the loss on a fixed held-out batch; this run provides none. Pass reward_eval or drop them from context.features."
        )
    return kept


def write_loss(slot: torch.Tensor, loss: Any) -> None:
    """Write ``step_end``'s ``loss`` (a one-element tensor or a real number) into its device ``slot``.

    Raises:
        TypeError: If ``loss`` is neither a tensor nor a real number.
        ValueError: If ``loss`` is a tensor with more than one element.
    """
    if isinstance(loss, torch.Tensor):
        if loss.dim():
            if loss.numel() != 1:
                raise ValueError(
                    f"step_end(loss) needs the scalar loss, got a tensor of shape {tuple(loss.shape)}; "
                    "reduce it first (e.g. loss.mean())."
                )
            loss = loss.reshape(())
        slot.copy_(loss.detach())  # a device-side copy: no host sync
    elif isinstance(loss, numbers.Real) and not isinstance(loss, bool):
        slot.fill_(float(loss))
    else:
        raise TypeError(
            f"step_end(loss) needs a scalar tensor or a number, got {type(loss).__name__}: {loss!r:.80}."
        )


def layout(window_length: int, total_steps: int, grid: Any, param_groups: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What a saved state depends on: window, budget, grid and the optimizer's parameter shapes."""
    return {
        "window_length": window_length,
        "total_steps": total_steps,
        "grid": grid.to_dict(),
        "param_shapes": [[list(p.shape) for p in g["params"]] for g in param_groups],
    }


def _require(where: str, data: Any, keys: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise TypeError(f"{where} must be a dict (from EpisodeControl.state_dict()), got {type(data).__name__}.")
    missing = [k for k in keys if k not in data]
    if missing:
        raise KeyError(f"{where} lacks the key(s) {missing}; pass the dict EpisodeControl.state_dict() returned.")
    return data


def check_state(state: Any, expected: Mapping[str, Any], capacity: int, grid_size: int) -> None:
    """Raise if ``state`` cannot be loaded into a control with this layout; the message names what differs.

    Raises:
        TypeError: If ``state`` or a part of it is not a dict.
        KeyError: If keys are missing (or the history has unknown ones).
        ValueError: If it was saved under another window length, budget, grid or parameter layout,
            or its open window does not fit.
    """
    _require("state", state, ("seed", "history", "diverged", "window", "generators"))
    history = _require("state['history']", state["history"], ("total_steps",))
    unknown = sorted(set(history) - {f.name for f in fields(RunHistory)})
    if unknown:
        raise KeyError(f"state['history'] has unknown key(s) {unknown}; it was not saved by this version of EpisodeControl.")
    saved = state.get("layout")
    if saved is not None:
        diffs = [
            f"{key}: saved {saved[key]!r}, here {expected[key]!r}"
            for key in expected
            if key in saved and saved[key] != expected[key]
        ]
        if diffs:
            raise ValueError(
                "This state was saved by a control with other settings and cannot continue here: "
                + "; ".join(diffs) + ". Build the control with the settings and optimizer it was saved with."
            )
    if history["total_steps"] != expected["total_steps"]:
        raise ValueError(
            f"This state's run has total_steps={history['total_steps']}, this control {expected['total_steps']}."
        )
    window = _require("state['window']", state["window"], ("steps", "filled", "action", "lr_multiplier", "noise_std", "losses"))
    losses = window["losses"]
    if not isinstance(losses, torch.Tensor) or tuple(losses.shape) != (capacity,):
        shape = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses).__name__
        raise ValueError(
            f"state['window']['losses'] is {shape}, this control's window buffer is ({capacity},) "
            f"(window_length={expected['window_length']}, total_steps={expected['total_steps']}): "
            "the state was saved under another window length."
        )
    steps, filled, action = int(window["steps"]), int(window["filled"]), int(window["action"])
    if not 0 <= filled <= steps <= capacity:
        raise ValueError(f"state['window'] has filled={filled}, steps={steps}; need 0 <= filled <= steps <= {capacity}.")
    if steps and not 0 <= action < grid_size:
        raise ValueError(f"state['window']['action']={action} is outside this grid's mode ids 0..{grid_size - 1}.")
    sizes = [len(g) for g in expected["param_shapes"]]
    for key in state["generators"]:
        g, _, p = str(key).partition(":")
        if not (g.isdigit() and p.isdigit() and int(g) < len(sizes) and int(p) < sizes[int(g)]):
            raise ValueError(
                f"state['generators'] has a noise generator for parameter {key!r} (group:index), but this "
                f"optimizer's param groups hold {sizes} parameters: it was saved with another optimizer."
            )
