"""Window rewards: pure functions from one window's step losses to a reward and its terms.

The default ``aees`` reward is the AEES method's shaped reward, computed with the same float
operations in the same order as the reference so results agree bit for bit:

* window-local EMA with ``alpha``: ``e_1 = l_1``, ``e_k = alpha*l_k + (1-alpha)*e_{k-1}``;
* ``base = ln(EMA_start + eps) - ln(EMA_end + eps)`` with ``EMA_start = l_1``;
* ``instability = pvar(l) / (mean(l)**2 + eps)``; ``penalty = lambda * instability``;
* ``reward = clip(base - penalty, clip_min, clip_max)``.

``smoothed`` differs only in ``EMA_start``: the mean of the first ``smoothing_steps`` losses, so one
noisy minibatch does not decide the sign of the reward.

``heldout`` scores generalisation instead of fitting: the same shaping with ``EMA_start`` /
``EMA_end`` replaced by the loss on a fixed held-out batch (the task's reward-validation split,
never its scoring split) measured when the window opens and when it closes. The instability
penalty still uses the window's training losses. Cost: two forward passes of that batch per window
(no backward), read back in the window's one host transfer.

Users add rewards with :func:`register_reward`; a reward function receives the window's losses
(Python floats, already checked finite) and the :class:`~aees_gym.core.config.RewardConfig`, and,
when registered with ``uses_heldout=True``, a third argument: the window's :class:`WindowSignals`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: config imports this module to check names when a config is built
    from aees_gym.core.config import RewardConfig


@dataclass(frozen=True)
class RewardTerms:
    """Every term of one window's reward (all plain floats, JSON-ready)."""

    reward: float
    base: float
    instability: float
    penalty: float
    unclipped: float
    ema_start: float
    ema_end: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class WindowSignals:
    """What a window measured besides its step losses (host floats, read with them in one transfer).

    Args:
        heldout_start: Loss on the fixed reward-validation batch when the window opened.
        heldout_end: The same loss when the window closed.
    """

    heldout_start: float
    heldout_end: float

    def is_finite(self) -> bool:
        return math.isfinite(self.heldout_start) and math.isfinite(self.heldout_end)


RewardFn = Callable[..., RewardTerms]
_REWARDS: dict[str, RewardFn] = {}
_USES_HELDOUT: set[str] = set()


def register_reward(name: str, fn: RewardFn, *, overwrite: bool = False, uses_heldout: bool = False) -> None:
    """Make ``fn`` selectable as ``RewardConfig(name=name)``.

    ``fn(losses, config)`` by default; with ``uses_heldout=True`` it is called as
    ``fn(losses, config, signals)`` and the controller measures the held-out loss at both window
    boundaries for it (:class:`~aees_gym.core.control.EpisodeControl` then needs a ``reward_eval``).
    It must return :class:`RewardTerms` with a finite float ``reward``; a window whose reward breaks
    that ends the run flagged, with ``info["reward_error"]`` naming ``fn``.

    Raises:
        TypeError: If ``name`` is not a non-empty string or ``fn`` is not callable.
        ValueError: If another function is registered under ``name`` and ``overwrite`` is False.
    """
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"A reward name must be a non-empty string, got {name!r}.")
    if not callable(fn):
        raise TypeError(f"register_reward({name!r}, fn): fn must be callable fn(losses, config) -> RewardTerms, got {fn!r}.")
    if name in _REWARDS and _REWARDS[name] is not fn and not overwrite:
        raise ValueError(f"A reward named {name!r} is already registered; pass overwrite=True to replace it.")
    _REWARDS[name] = fn
    if uses_heldout:
        _USES_HELDOUT.add(name)
    else:
        _USES_HELDOUT.discard(name)


def reward_uses_heldout(name: str) -> bool:
    """Whether reward ``name`` needs the held-out loss at the window boundaries."""
    get_reward(name)
    return name in _USES_HELDOUT


def get_reward(name: str) -> RewardFn:
    try:
        return _REWARDS[name]
    except KeyError:
        raise KeyError(f"Unknown reward {name!r}; registered rewards: {sorted(_REWARDS)}.") from None


def registered_rewards() -> tuple[str, ...]:
    return tuple(sorted(_REWARDS))


def compute_reward(losses: Sequence[float], config: RewardConfig, signals: WindowSignals | None = None) -> RewardTerms:
    """Reward of one window under ``config.name`` (``signals``: for rewards registered ``uses_heldout``)."""
    if not losses:
        raise ValueError("A window needs at least one step loss to be rewarded.")
    fn = get_reward(config.name)
    if config.name not in _USES_HELDOUT:
        return fn(losses, config)
    if signals is None:
        raise ValueError(
            f"Reward {config.name!r} needs the held-out loss at the window's start and end: give EpisodeControl a "
            "reward_eval (the classification tasks provide one), or choose another reward, e.g. 'aees'."
        )
    return fn(losses, config, signals)


def reward_error(terms: object, name: str) -> str | None:
    """Why a reward function's result cannot be used (``None`` when it can): not :class:`RewardTerms`,
    or a ``reward`` that is not a finite real number."""
    fn = _REWARDS.get(name)
    who = f"reward {name!r} ({getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))})"
    if not isinstance(terms, RewardTerms):
        return f"{who} returned {type(terms).__name__} {terms!r}; it must return RewardTerms."
    value = terms.reward
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"{who} returned reward={value!r} of type {type(value).__name__}; it must be a finite float."
    return None


def window_ema(losses: Sequence[float], alpha: float) -> tuple[float, float]:
    """First and last value of the window-local EMA trace (the EMA restarts every window)."""
    ema = float(losses[0])
    start = ema
    for loss in losses[1:]:
        ema = alpha * float(loss) + (1.0 - alpha) * ema
    return start, ema


def instability(losses: Sequence[float], eps: float) -> float:
    """Population variance over squared mean: a scale-free measure of a window's jitter."""
    mean = sum(losses) / len(losses)
    variance = sum((loss - mean) ** 2 for loss in losses) / len(losses)
    return variance / (mean * mean + eps)


def shaped_terms(losses: Sequence[float], config: RewardConfig, ema_start: float, ema_end: float) -> RewardTerms:
    """Log EMA improvement minus the instability penalty, clipped: the AEES shaping."""
    eps = config.epsilon
    if ema_start + eps <= 0.0 or ema_end + eps <= 0.0:
        raise ValueError(
            f"The log reward needs positive losses (EMA start {ema_start}, end {ema_end}); "
            "use a non-negative training loss or register a reward for signed objectives."
        )
    base = math.log(ema_start + eps) - math.log(ema_end + eps)
    instab = instability(losses, eps)
    penalty = config.instability_lambda * instab
    unclipped = base - penalty
    clipped = min(max(unclipped, config.clip_min), config.clip_max)
    return RewardTerms(clipped, base, instab, penalty, unclipped, ema_start, ema_end)


def aees_reward(losses: Sequence[float], config: RewardConfig) -> RewardTerms:
    """The reference reward: EMA start is the raw first loss of the window."""
    start, end = window_ema(losses, config.ema_alpha)
    return shaped_terms(losses, config, start, end)


def smoothed_reward(losses: Sequence[float], config: RewardConfig) -> RewardTerms:
    """Like ``aees`` but starting from the mean of the first ``smoothing_steps`` losses."""
    head = losses[: max(1, min(config.smoothing_steps, len(losses)))]
    _, end = window_ema(losses, config.ema_alpha)
    return shaped_terms(losses, config, sum(head) / len(head), end)


def heldout_reward(losses: Sequence[float], config: RewardConfig, signals: WindowSignals) -> RewardTerms:
    """Log improvement of the held-out loss over the window, minus the training-loss instability penalty.

    ``ema_start`` / ``ema_end`` of the terms hold the held-out losses at the window's start and end.
    """
    return shaped_terms(losses, config, signals.heldout_start, signals.heldout_end)


register_reward("aees", aees_reward)
register_reward("smoothed", smoothed_reward)
register_reward("heldout", heldout_reward, uses_heldout=True)
