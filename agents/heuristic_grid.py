"""The grid-cell variant of the heuristic: the simple law, run through the nearest grid cell.

This was the ``heuristic`` agent before exact candidates; :mod:`agents.heuristic` now holds the
full adaptive law. It is kept as ``heuristic_grid`` because it runs on any grid agent's terms
(mode ids only) and its coarse moves are a useful contrast.

The law, applied after every window to the outcome the env reports in ``info``. The window's
*change* is the relative change of its mean step loss against the previous window's mean (the
first window compares its own last and first loss); means over a window are far less noisy than
single minibatch losses.

1. **Cut** (LR factor ``cut_factor`` = 0.8, noise 0) when the window diverged or had a non-finite
   loss, is *worsening* (change > ``worsen_tolerance`` = +5 %), or is *unstable*
   (``info["reward_terms"]["instability"]``, the variance / mean² of its step losses, above
   ``instability_threshold`` = 0.25, i.e. a step-loss standard deviation of half the mean; typical
   minibatch jitter on the built-in tasks is 0.005–0.15).
2. Else **raise** (LR factor ``raise_factor`` = 1.02, noise 0) when it is *improving*
   (change < −``improve_tolerance`` = −1 %).
3. Else, when the trend bucket (``info["trend_bucket"]``, the slope of the last windows' end
   losses) is ``"stable"``, it is a **plateau**: keep the LR and raise the noise one level — the
   ``k``-th consecutive plateau window uses the ``k``-th smallest positive noise of the grid
   (capped at the largest). Any other outcome sets the noise back to 0.
4. Else **hold**: LR factor 1, noise 0 (a change within the tolerances while the trend is not flat).

The first window runs at ×1.0 and σ = 0.

How a factor becomes an action depends on the env's ``action_mode`` (read from ``info``):

* ``"relative"``: grid multipliers are persistent ×/÷ steps of the LR, so the agent picks the cell
  whose multiplier is nearest (in log distance) to the factor. It works best with a grid that
  contains the factors, e.g. ``lr_multipliers=(0.8, 1.0, 1.02)``; with the default (0.5, 1, 2)
  both 0.8 and 1.02 map to ×1.0 and the LR never moves.
* ``"index"`` (AEES's transient multipliers): the agent keeps its own cumulative LR scale
  (product of factors, clamped to the grid's lr range so it can always come back within a few
  windows) and runs the grid cell nearest to (scale, noise) via ``CandidateGrid.nearest``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol

from gymnasium import spaces

from agents.base import BaseAgent, CandidateGridLike, candidate_grid, check_grid_action_space
from agents.heuristic import CUT, HOLD, PLATEAU, RAISE, classify_window

__all__ = ["GridHeuristicAgent"]


class _NearestGrid(CandidateGridLike, Protocol):
    def nearest(self, lr_multiplier: float, noise_std: float) -> int:
        """Mode id closest to a pair (log distance on lr, linear on noise)."""
        ...


class GridHeuristicAgent(BaseAgent):
    """Rule-based LR/noise control: ×1.02 while improving, ×0.8 on trouble, noise on plateaus.

    See the module docstring for the full law. Deterministic; the seed is unused.

    Args:
        raise_factor: LR factor after an improving window (> 1).
        cut_factor: LR factor after an unstable, worsening or diverged window (in (0, 1)).
        instability_threshold: Window instability (variance / mean² of step losses) above which
            the window counts as unstable.
        worsen_tolerance: Relative rise of the window's mean loss that counts as worsening.
        improve_tolerance: Relative drop of the window's mean loss that counts as improving.

    Raises:
        ValueError: If a factor or threshold is outside its range.
    """

    name = "heuristic_grid"
    description = "rule-based on grid cells: LR scale ×1.02 while improving, ×0.8 on trouble, noise level up on plateaus"

    def __init__(
        self,
        *,
        raise_factor: float = 1.02,
        cut_factor: float = 0.8,
        instability_threshold: float = 0.25,
        worsen_tolerance: float = 0.05,
        improve_tolerance: float = 0.01,
    ) -> None:
        if not raise_factor > 1.0:
            raise ValueError(f"raise_factor must be > 1, got {raise_factor!r}.")
        if not 0.0 < cut_factor < 1.0:
            raise ValueError(f"cut_factor must be in (0, 1), got {cut_factor!r}.")
        for name, value in (
            ("instability_threshold", instability_threshold),
            ("worsen_tolerance", worsen_tolerance),
            ("improve_tolerance", improve_tolerance),
        ):
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be finite and non-negative, got {value!r}.")
        self.raise_factor = float(raise_factor)
        self.cut_factor = float(cut_factor)
        self.thresholds = {
            "instability_threshold": float(instability_threshold),
            "worsen_tolerance": float(worsen_tolerance),
            "improve_tolerance": float(improve_tolerance),
        }
        self._grid: _NearestGrid | None = None
        self._relative = False
        self._lr_scale = 1.0
        self._plateaus = 0
        self._previous_mean: float | None = None
        self._action: int | None = None
        self.last_rule = HOLD

    def reset(
        self,
        *,
        seed: int | None,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        info: dict[str, Any],
    ) -> None:
        """Read the grid and action mode; start at ×1.0 and σ = 0."""
        grid = candidate_grid(info)
        check_grid_action_space(action_space, grid)
        if not callable(getattr(grid, "nearest", None)):
            raise TypeError(
                "GridHeuristicAgent maps LR factors to grid cells with CandidateGrid.nearest(); pass "
                "the info of an aees_gym env's reset (info['candidate_grid'])."
            )
        self._grid = grid  # type: ignore[assignment]
        self._relative = info.get("action_mode", "index") == "relative"
        self._lr_scale = 1.0
        self._plateaus = 0
        self._previous_mean = None
        self.last_rule = HOLD
        self._action = self._to_action(1.0, 0.0)

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        """The mode id decided by the last :meth:`update` (×1.0, σ = 0 before the first)."""
        if self._action is None:
            raise RuntimeError("GridHeuristicAgent.reset() must be called first.")
        return self._action

    def update(
        self,
        action: Any,
        reward: float,
        next_obs: Any,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
    ) -> None:
        """Apply the law to the window that just closed and decide the next action."""
        if self._grid is None:
            raise RuntimeError("GridHeuristicAgent.reset() must be called first.")
        rule = classify_window(info, self._previous_mean, **self.thresholds)
        if "loss_mean" in info:
            self._previous_mean = float(info["loss_mean"])
        factor = {CUT: self.cut_factor, RAISE: self.raise_factor}.get(rule, 1.0)
        self._plateaus = self._plateaus + 1 if rule == PLATEAU else 0
        self.last_rule = rule
        self._action = self._to_action(factor, self._noise_level())

    def state(self) -> dict[str, Any]:
        """The cumulative LR scale, the plateau streak and the last rule, for logging."""
        return {"lr_scale": self._lr_scale, "plateau_streak": self._plateaus, "last_rule": self.last_rule}

    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`act` depends on, as JSON-compatible data."""
        return {**self.state(), "previous_mean": self._previous_mean, "action": self._action}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; call after :meth:`reset`."""
        self._lr_scale = float(state["lr_scale"])
        self._plateaus = int(state["plateau_streak"])
        self.last_rule = str(state["last_rule"])
        mean = state["previous_mean"]
        self._previous_mean = None if mean is None else float(mean)
        self._action = None if state["action"] is None else int(state["action"])

    def _noise_level(self) -> float:
        assert self._grid is not None
        positive = sorted(s for s in self._grid.noise_stds if s > 0.0)
        if not self._plateaus or not positive:
            return 0.0
        return positive[min(self._plateaus, len(positive)) - 1]

    def _to_action(self, factor: float, noise: float) -> int:
        grid = self._grid
        assert grid is not None
        if self._relative:
            return int(grid.nearest(factor, noise))
        low, high = min(grid.lr_multipliers), max(grid.lr_multipliers)
        self._lr_scale = min(max(self._lr_scale * factor, low), high)
        return int(grid.nearest(self._lr_scale, noise))
