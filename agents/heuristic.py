"""The adaptive law as an agent: LR, momentum and exploration noise steered by the loss, with bounded gains.

After every window the agent reads the outcome the env reports in ``info`` and sets the exact
candidate of the next window (an :class:`aees_gym.Candidate`, not a grid cell, so a ×1.02 step
really moves the LR). The window's *change* Δ is the relative change of its mean step loss against
the previous window's mean (the first window compares its own last and first loss); its variance
``v`` is ``info["reward_terms"]["instability"]`` (variance / mean² of its step losses).

The window is classified (:func:`classify_window`) as **trouble** (diverged, non-finite, Δ >
``worsen_tolerance`` = +5 % or ``v`` > ``instability_threshold`` = 0.25), **improving** (Δ <
−``improve_tolerance`` = −1 %), a **plateau** (within the tolerances, trend bucket ``stable``) or a
**hold** (within the tolerances, trend not flat). Plateaus and holds are *stalled* windows.

| window | α (LR multiplier) | μ (momentum, with the axis) | σ (gradient noise) |
|---|---|---|---|
| trouble | α·d/(1 + λ·min(v, 1)); starts the cooldown | μ − ``momentum_decay`` | σ·``noise_cut`` |
| improving | α·(1 + (u − 1)/(1 + λ·v)), held during the cooldown | μ + ``momentum_step`` after ``momentum_streak`` improving windows in a row | back to σ₀ |
| plateau | held; the ``patience``-th stalled window in a row cuts α·d once (cooldown) | μ − ``momentum_decay`` | max(σ, σ₀)·``noise_raise`` |
| hold | as plateau | μ − ``momentum_decay`` | unchanged |

Defaults: u = ``raise_factor`` = 1.02, d = ``cut_factor`` = 0.8, λ = ``variance_damping`` = 1,
``patience`` = 3, ``cooldown`` = 2 windows (no raise and no patience cut; trouble still cuts),
σ₀ = ``noise_std`` = 1e-3, ``noise_raise`` = 2, ``noise_cut`` = 0.5, μ₀ = ``momentum`` = 0.9,
``momentum_step`` = 0.01, ``momentum_decay`` = 0.02, ``momentum_streak`` = 2. Every gain is
clipped to its bounds after each update: α to ``lr_bounds``, σ to ``noise_bounds``, μ to
``momentum_bounds``, each defaulting to (and required to lie within) the grid's range of that axis,
so every candidate is one the env accepts. The first window runs α = 1, σ₀ and μ₀ (clipped).

In ``action_mode="relative"`` the env's LR scale is persistent, so the agent sends the step
α_new/α_old (clipped into the grid's lr range) instead of α itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gymnasium import spaces

from aees_gym.core import checks as value_checks
from aees_gym.core.grid import Candidate
from agents.base import BaseAgent, candidate_grid, check_grid_action_space, momentum_axis

__all__ = ["CUT", "HOLD", "PATIENCE_CUT", "PLATEAU", "RAISE", "HeuristicAgent", "classify_window"]

RAISE, CUT, PLATEAU, HOLD = "raise", "cut", "plateau", "hold"
#: The patience rule: improvement stalled for ``patience`` windows, so the LR is cut once.
PATIENCE_CUT = "patience_cut"


def classify_window(
    info: Mapping[str, Any],
    previous_mean: float | None,
    *,
    instability_threshold: float,
    worsen_tolerance: float,
    improve_tolerance: float,
) -> str:
    """Which rule of the law the window described by ``info`` triggers.

    Args:
        info: The env's step info of the window (``loss_mean``, ``loss_first``, ``loss_last``,
            ``trend_bucket``, ``reward_terms``, ``diverged``).
        previous_mean: Mean step loss of the window before (``None`` for the first window, which
            is then judged by its own first and last loss).
        instability_threshold: See :class:`HeuristicAgent`.
        worsen_tolerance: See :class:`HeuristicAgent`.
        improve_tolerance: See :class:`HeuristicAgent`.

    Returns:
        ``"cut"``, ``"raise"``, ``"plateau"`` or ``"hold"`` (no window yet, or a change within the
        tolerances while the trend bucket is not ``"stable"``).
    """
    if "loss_mean" not in info:
        return HOLD
    if info.get("diverged", False):
        return CUT
    if previous_mean is None:
        before, now = float(info["loss_first"]), float(info["loss_last"])
    else:
        before, now = previous_mean, float(info["loss_mean"])
    if not (math.isfinite(before) and math.isfinite(now)):
        return CUT
    change = (now - before) / max(abs(before), 1e-12)
    instability = float(info.get("reward_terms", {}).get("instability", 0.0))
    if change > worsen_tolerance or instability > instability_threshold:
        return CUT
    if change < -improve_tolerance:
        return RAISE
    return PLATEAU if info.get("trend_bucket", "stable") == "stable" else HOLD


def _bounds(name: str, given: tuple[float, float] | None, extent: tuple[float, float]) -> tuple[float, float]:
    if given is None:
        return extent
    low, high = (float(b) for b in given)
    if not (extent[0] <= low <= high <= extent[1]):
        raise ValueError(f"{name} {given} must satisfy {extent[0]} <= low <= high <= {extent[1]} (the grid's range).")
    return low, high


def _clip(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])


class HeuristicAgent(BaseAgent):
    """The adaptive law: α ← clip(α·u) on improvement, clip(α·d) on trouble, momentum and noise adapted.

    See the module docstring for the law as a table. Deterministic; the seed is unused.

    Args:
        raise_factor: u, the LR factor after an improving window (> 1), damped by the variance.
        cut_factor: d, the LR factor after trouble or exhausted patience, in (0, 1).
        variance_damping: λ, how strongly the window's loss variance damps raises and deepens cuts (>= 0).
        instability_threshold: Window variance / mean² above which the window is trouble.
        worsen_tolerance: Relative rise of the window's mean loss that is trouble.
        improve_tolerance: Relative drop of the window's mean loss that is improving.
        patience: Stalled windows in a row before one LR cut (>= 1).
        cooldown: Windows after any cut without raises or patience cuts (>= 0).
        noise_std: σ₀, the baseline gradient-noise std.
        noise_raise: Factor raising σ on a plateau (>= 1).
        noise_cut: Factor cutting σ on trouble, in [0, 1].
        momentum: μ₀, the starting momentum (used only with the grid's momentum axis).
        momentum_step: Rise of μ after consistent gains (>= 0).
        momentum_decay: Fall of μ when stalled or in trouble (>= 0).
        momentum_streak: Improving windows in a row that count as consistent gains (>= 1).
        lr_bounds: (α_min, α_max); default and limit: the grid's lr range.
        noise_bounds: (σ_min, σ_max); default and limit: the grid's noise range.
        momentum_bounds: (μ_min, μ_max); default and limit: the grid's momentum range.

    Raises:
        ValueError: If a factor, threshold or bound is outside its range (the message names it).
    """

    name = "heuristic"
    description = "adaptive law on exact candidates: LR ×1.02 on gains, ×0.8 on trouble, momentum and noise adapted"

    def __init__(
        self,
        *,
        raise_factor: float = 1.02,
        cut_factor: float = 0.8,
        variance_damping: float = 1.0,
        instability_threshold: float = 0.25,
        worsen_tolerance: float = 0.05,
        improve_tolerance: float = 0.01,
        patience: int = 3,
        cooldown: int = 2,
        noise_std: float = 1e-3,
        noise_raise: float = 2.0,
        noise_cut: float = 0.5,
        momentum: float = 0.9,
        momentum_step: float = 0.01,
        momentum_decay: float = 0.02,
        momentum_streak: int = 2,
        lr_bounds: tuple[float, float] | None = None,
        noise_bounds: tuple[float, float] | None = None,
        momentum_bounds: tuple[float, float] | None = None,
    ) -> None:
        # Types first, so that a number given as a string is named, not compared.
        for name, value in (
            ("raise_factor", raise_factor), ("cut_factor", cut_factor), ("variance_damping", variance_damping),
            ("instability_threshold", instability_threshold), ("worsen_tolerance", worsen_tolerance),
            ("improve_tolerance", improve_tolerance), ("noise_std", noise_std), ("noise_raise", noise_raise),
            ("noise_cut", noise_cut), ("momentum", momentum), ("momentum_step", momentum_step), ("momentum_decay", momentum_decay),
        ):
            value_checks.real(name, value)
        for name, value in (("patience", patience), ("cooldown", cooldown), ("momentum_streak", momentum_streak)):
            value_checks.integer(name, value)
        checks = {
            "raise_factor": (raise_factor, raise_factor > 1.0, "> 1"),
            "cut_factor": (cut_factor, 0.0 < cut_factor < 1.0, "in (0, 1)"),
            "noise_raise": (noise_raise, noise_raise >= 1.0, ">= 1"),
            "noise_cut": (noise_cut, 0.0 <= noise_cut <= 1.0, "in [0, 1]"),
            "momentum": (momentum, 0.0 <= momentum < 1.0, "in [0, 1)"),
            "patience": (patience, isinstance(patience, int) and patience >= 1, "an integer >= 1"),
            "cooldown": (cooldown, isinstance(cooldown, int) and cooldown >= 0, "an integer >= 0"),
            "momentum_streak": (momentum_streak, isinstance(momentum_streak, int) and momentum_streak >= 1, "an integer >= 1"),
        }
        for name, value in (
            ("variance_damping", variance_damping), ("instability_threshold", instability_threshold),
            ("worsen_tolerance", worsen_tolerance), ("improve_tolerance", improve_tolerance),
            ("noise_std", noise_std), ("momentum_step", momentum_step), ("momentum_decay", momentum_decay),
        ):
            checks[name] = (value, value >= 0.0, "finite and >= 0")
        for name, (value, ok, valid) in checks.items():
            if isinstance(value, bool) or not (math.isfinite(value) and ok):
                raise ValueError(f"{name} must be {valid}, got {value!r}.")
        self.raise_factor, self.cut_factor = float(raise_factor), float(cut_factor)
        self.variance_damping = float(variance_damping)
        self.thresholds = {
            "instability_threshold": float(instability_threshold),
            "worsen_tolerance": float(worsen_tolerance),
            "improve_tolerance": float(improve_tolerance),
        }
        self.patience, self.cooldown = patience, cooldown
        self.noise_std, self.noise_raise, self.noise_cut = float(noise_std), float(noise_raise), float(noise_cut)
        self.momentum = float(momentum)
        self.momentum_step, self.momentum_decay = float(momentum_step), float(momentum_decay)
        self.momentum_streak = momentum_streak
        self._requested_bounds = (lr_bounds, noise_bounds, momentum_bounds)
        self._reset_state()

    def _reset_state(self) -> None:
        self._ready = False
        self._relative = False
        self.lr_bounds = self.noise_bounds = (0.0, 0.0)
        self.momentum_bounds: tuple[float, float] | None = None
        self._alpha, self._sigma, self._mu = 1.0, 0.0, None
        self._lr_step = 1.0  # the factor sent in relative mode
        self._stalled = self._cooling = self._streak = 0
        self._previous_mean: float | None = None
        self.last_rule = HOLD

    def reset(
        self,
        *,
        seed: int | None,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        info: dict[str, Any],
    ) -> None:
        """Read the grid's ranges and the action mode; start at α = 1, σ₀ and μ₀ (clipped)."""
        grid = candidate_grid(info)
        check_grid_action_space(action_space, grid)
        ranges = getattr(grid, "ranges", None)
        if not isinstance(ranges, Mapping):
            raise TypeError(
                "HeuristicAgent runs exact candidates inside the grid's ranges (CandidateGrid.ranges); pass "
                "the info of an aees_gym env's reset (info['candidate_grid'])."
            )
        self._reset_state()
        lr_bounds, noise_bounds, momentum_bounds = self._requested_bounds
        self.lr_bounds = _bounds("lr_bounds", lr_bounds, tuple(ranges["lr_multiplier"]))
        self.noise_bounds = _bounds("noise_bounds", noise_bounds, tuple(ranges["noise_std"]))
        if momentum_axis(grid) is not None:
            self.momentum_bounds = _bounds("momentum_bounds", momentum_bounds, tuple(ranges["momentum"]))
            self._mu = _clip(self.momentum, self.momentum_bounds)
        self._grid_lr_range = tuple(ranges["lr_multiplier"])
        self._relative = info.get("action_mode", "index") == "relative"
        self._alpha = _clip(1.0, self.lr_bounds)
        self._lr_step = _clip(1.0, self._grid_lr_range)
        self._sigma = _clip(self.noise_std, self.noise_bounds)
        self._ready = True

    def act(self, obs: Any, info: dict[str, Any]) -> Candidate:
        """The exact candidate decided by the last :meth:`update`."""
        if not self._ready:
            raise RuntimeError("HeuristicAgent.reset() must be called first.")
        lr = self._lr_step if self._relative else self._alpha
        return Candidate(lr, self._sigma, self._mu)

    def update(
        self,
        action: Any,
        reward: float,
        next_obs: Any,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
    ) -> None:
        """Apply the law to the window that just closed and decide the next candidate."""
        if not self._ready:
            raise RuntimeError("HeuristicAgent.reset() must be called first.")
        rule = classify_window(info, self._previous_mean, **self.thresholds)
        if "loss_mean" in info:
            self._previous_mean = float(info["loss_mean"])
        variance = float(info.get("reward_terms", {}).get("instability", 0.0))
        variance = variance if math.isfinite(variance) and variance >= 0 else 1.0
        damping = 1.0 + self.variance_damping * min(variance, 1.0)
        alpha, cooling = self._alpha, self._cooling
        self._cooling = max(cooling - 1, 0)
        if rule == CUT:
            alpha *= self.cut_factor / damping
            self._cooling, self._stalled, self._streak = self.cooldown, 0, 0
            self._sigma *= self.noise_cut
            self._decay_momentum()
        elif rule == RAISE:
            self._stalled, self._streak = 0, self._streak + 1
            if not cooling:
                alpha *= 1.0 + (self.raise_factor - 1.0) / damping
            self._sigma = self.noise_std
            if self._mu is not None and self._streak >= self.momentum_streak:
                self._mu += self.momentum_step
        elif rule in (PLATEAU, HOLD) and "loss_mean" in info:
            self._stalled, self._streak = self._stalled + 1, 0
            if self._stalled >= self.patience and not cooling:
                alpha *= self.cut_factor
                self._cooling, self._stalled = self.cooldown, 0
                rule = PATIENCE_CUT
            if rule == PLATEAU:
                self._sigma = max(self._sigma, self.noise_std) * self.noise_raise
            self._decay_momentum()
        self.last_rule = rule
        self._set_gains(alpha)

    def _decay_momentum(self) -> None:
        if self._mu is not None:
            self._mu -= self.momentum_decay

    def _set_gains(self, alpha: float) -> None:
        new_alpha = _clip(alpha, self.lr_bounds)
        self._lr_step = _clip(new_alpha / self._alpha, self._grid_lr_range)
        self._alpha = self._alpha * self._lr_step if self._relative else new_alpha
        self._sigma = _clip(self._sigma, self.noise_bounds)
        if self._mu is not None and self.momentum_bounds is not None:
            self._mu = _clip(self._mu, self.momentum_bounds)

    def state(self) -> dict[str, Any]:
        """The gains, counters and last rule, for logging."""
        return {
            "lr_multiplier": self._alpha, "noise_std": self._sigma, "momentum": self._mu,
            "last_rule": self.last_rule, "stalled": self._stalled, "cooldown_left": self._cooling,
            "improving_streak": self._streak,
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`act` and :meth:`update` depend on, as JSON-compatible data."""
        return {**self.state(), "previous_mean": self._previous_mean, "lr_step": self._lr_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; call after :meth:`reset`."""
        if not self._ready:
            raise RuntimeError("HeuristicAgent.reset() must be called first.")
        self._alpha, self._sigma, self._lr_step = float(state["lr_multiplier"]), float(state["noise_std"]), float(state["lr_step"])
        self._mu = None if state["momentum"] is None else float(state["momentum"])
        self.last_rule = str(state["last_rule"])
        self._stalled, self._cooling = int(state["stalled"]), int(state["cooldown_left"])
        self._streak = int(state["improving_streak"])
        mean = state["previous_mean"]
        self._previous_mean = None if mean is None else float(mean)
