"""Scripted window outcomes for the heuristic laws' tests (both laws read the same info keys)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

THRESHOLDS = {"instability_threshold": 0.25, "worsen_tolerance": 0.05, "improve_tolerance": 0.01}
OBS_SPACE = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)


def window(change: float = 0.0, trend: str = "stable", instability: float = 0.01, diverged: bool = False,
           before: float = 1.0) -> dict[str, Any]:
    """The info keys of an env step that the law reads, for a window whose loss moved by ``change``."""
    after = before * (1.0 + change)
    return {
        "loss_first": before,
        "loss_last": after,
        "loss_mean": after,
        "trend_bucket": trend,
        "reward_terms": {"instability": instability},
        "diverged": diverged,
    }


class Outcomes:
    """Consecutive window infos whose mean loss moves by the requested relative change."""

    def __init__(self) -> None:
        self.level = 1.0

    def __call__(self, change: float = 0.0, **kwargs: Any) -> dict[str, Any]:
        info = window(change, before=self.level, **kwargs)
        self.level = info["loss_mean"]
        return info
