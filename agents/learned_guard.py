"""A divergence guard for learned LR controllers: ``make_agent("learned", guard=0.0)``.

The learned policies of the first round fail in one way (docs/learned-controller.md, "Why"): on some
runs they keep a raised LR scale (×4–×64) while the held-out loss climbs above where the run started,
and the run ends at chance accuracy. Their observation says so — ``heldout_level``, the log of the
reward-validation loss against its value before the first window, is positive on exactly those runs
and strongly negative on the runs that learn — but the policy has not learned to act on it.

The guard is one stateless rule on the observation the policy already gets: while
``heldout_level > threshold`` it replaces the policy's action by the track's largest LR decrease
(×0.5 per window, no gradient noise); once the held-out loss is back below the threshold the policy
acts again. ``threshold = 0`` means "the model is worse on held-out data than before training": the
one setting declared for it (not tuned on any split), so a run that learns never triggers it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.learned_policy import MLPPolicy

__all__ = ["GUARD_FEATURE", "GuardedPolicy", "check_guard", "guard_policy", "guard_validation"]

#: The observation feature the guard reads.
GUARD_FEATURE = "heldout_level"


def check_guard(guard: Any) -> float | None:
    """``guard`` as a threshold (``None``: no guard).

    Raises:
        ValueError: If it is not a finite number (a bool is refused: ``guard=True`` is not a threshold).
    """
    if guard is None:
        return None
    if isinstance(guard, bool) or not isinstance(guard, int | float) or not math.isfinite(guard):
        raise ValueError(f"guard must be a finite held-out log-loss level (0.0: the loss before training) or None, got {guard!r}.")
    return float(guard)


@dataclass(frozen=True)
class GuardedPolicy:
    """A policy whose action is replaced by ``fallback`` on rows where observation ``level_index`` exceeds ``threshold``.

    Acts like the :class:`~agents.learned_policy.MLPPolicy` it wraps (``act``, ``discrete``,
    ``n_inputs``, ``n_actions``), so validation and the agent use it unchanged.
    """

    policy: MLPPolicy
    level_index: int
    threshold: float
    fallback: np.ndarray

    @property
    def discrete(self) -> bool:
        return self.policy.discrete

    @property
    def n_inputs(self) -> int:
        return self.policy.n_inputs

    @property
    def n_actions(self) -> int:
        return self.policy.n_actions

    def guarded(self, obs: np.ndarray) -> np.ndarray:
        """Which rows of ``obs`` (``[n, features]`` or one row) the guard takes over."""
        return np.atleast_2d(np.asarray(obs, dtype=np.float32))[:, self.level_index] > self.threshold

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The policy's actions, with the guard's ``fallback`` on the rows whose held-out loss is above the threshold."""
        actions = np.array(self.policy.act(obs), copy=True)
        actions[self.guarded(obs)] = self.fallback
        return actions


def guard_policy(policy: MLPPolicy, features: Sequence[str], env_overrides: Mapping[str, Any], threshold: float) -> GuardedPolicy:
    """Wrap ``policy`` (trained on the track of ``env_overrides``, observing ``features``) with the guard.

    Raises:
        ValueError: If the policy does not observe :data:`GUARD_FEATURE` or acts in relative mode
            (the guard's ×0.5 steps need a persistent LR scale).
    """
    if GUARD_FEATURE not in features:
        raise ValueError(f"the guard reads {GUARD_FEATURE!r}, which this policy does not observe (it observes {list(features)}).")
    if env_overrides.get("action_mode") != "relative":
        raise ValueError("the guard steps a persistent LR scale down: it needs a policy of a relative track "
                         f"(action_mode 'relative'), this one has {env_overrides.get('action_mode')!r}.")
    if policy.discrete:
        from aees_gym.core.grid import CandidateGrid

        grid = CandidateGrid.from_dict(dict(env_overrides["grid"]))
        fallback = np.asarray(grid.nearest(min(grid.lr_multipliers), min(grid.noise_stds)))
    else:  # Box: u = -1 is the lowest LR step (×2^-1), v = -1 the lowest noise std
        fallback = -np.ones(policy.n_actions, dtype=np.float32)
    return GuardedPolicy(policy, list(features).index(GUARD_FEATURE), check_guard(threshold), fallback)  # type: ignore[arg-type]


def guard_validation(training: Any, threshold: float = 0.0) -> dict[str, Any]:
    """Score an archived training's policy with the guard on its validation runs, beside its recorded unguarded score.

    ``training`` is a training's folder (``results/learned/<training>/`` with ``spec.json`` and
    ``policy.npz``). The runs are the ones the policy was chosen on (the tuning split), never a test split.

    Returns:
        ``training``, ``threshold``, ``guarded`` (the :func:`~agents.learned_training.validate` record with
        the guard) and ``unguarded`` (the record written when the policy was exported, same runs).
    """
    import json
    from pathlib import Path

    from agents.learned_policy import load_policy
    from agents.learned_training import TrainingSpec, validate

    folder = Path(training)
    spec = TrainingSpec.from_json(json.loads((folder / "spec.json").read_text(encoding="utf-8")))
    policy, provenance = load_policy(folder / "policy.npz")
    guarded = guard_policy(policy, provenance["env_overrides"]["context"]["features"], provenance["env_overrides"], threshold)
    return {"training": folder.name, "threshold": float(threshold), "guarded": validate(guarded, spec),  # type: ignore[arg-type]
            "unguarded": provenance.get("validation"), "constant_x1": provenance.get("validation_constant_x1")}
