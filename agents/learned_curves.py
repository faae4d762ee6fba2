"""Learning curves of a learned-controller training, kept across sittings.

:func:`curve_callback` is an SB3 callback that writes ``curve.json`` atomically: every
``spec.curve_every`` windows the mean return of the episodes (training runs) that ended since the
last point, and every ``spec.validate_every`` windows the validation score of the policy as it is
then. A resumed training keeps the points up to the window its checkpoint holds and goes on from
there, so the curve of a training split over sittings is one curve.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["curve_callback", "read_curve"]


def read_curve(path: Path | str) -> dict[str, Any]:
    """The curve file at ``path`` (empty curves when there is none)."""
    path = Path(path)
    if not path.is_file():
        return {"reward_curve": [], "validation_curve": []}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("reward_curve"), list) or not isinstance(data.get("validation_curve"), list):
        raise ValueError(f"{path} is not a learning-curve file (reward_curve and validation_curve lists); move it away and resume.")
    return data


def _next_multiple(done: int, every: int) -> int:
    return (done // every + 1) * every


def curve_callback(path: Path | str, spec: Any, validate: Callable[[Any], dict[str, Any]]) -> Any:
    """The SB3 callback writing the curves of ``spec`` (a ``TrainingSpec``) to ``path``; ``validate(model)`` scores the policy."""
    from stable_baselines3.common.callbacks import BaseCallback

    from aees_gym.core.fileio import atomic_write_json

    class LearningCurves(BaseCallback):
        def _on_training_start(self) -> None:
            done = int(self.model.num_timesteps)
            curve = read_curve(path)
            # Points past the checkpoint were written by a sitting whose later windows are lost: drop them.
            self.reward_curve = [p for p in curve["reward_curve"] if p["windows"] <= done]
            self.validation_curve = [p for p in curve["validation_curve"] if p["windows"] <= done]
            self.returns: list[float] = []
            self.next_point = _next_multiple(done, spec.curve_every)
            self.next_validation = _next_multiple(done, spec.validate_every) if spec.validate_every else math.inf

        def _write(self) -> None:
            atomic_write_json(path, {"training": spec.name, "reward": spec.reward, "reward_curve": self.reward_curve,
                                     "validation_curve": self.validation_curve})

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", ()):
                episode = info.get("episode")
                if episode is not None:
                    self.returns.append(float(episode["r"]))
            windows = int(self.model.num_timesteps)
            if windows >= self.next_point:
                mean = sum(self.returns) / len(self.returns) if self.returns else None
                self.reward_curve.append({"windows": windows, "mean_episode_reward": mean, "episodes": len(self.returns)})
                self.returns, self.next_point = [], _next_multiple(windows, spec.curve_every)
                self._write()
            if windows >= self.next_validation:
                self.validation_curve.append({"windows": windows, **validate(self.model)})
                self.next_validation = _next_multiple(windows, spec.validate_every)
                self._write()
            return True

        def _on_training_end(self) -> None:
            self._write()

    return LearningCurves()
