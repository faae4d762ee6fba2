"""No choice sees scoring data: scramble the scoring part of the validation split and nothing an agent
observes, nothing it is told in ``info`` and no tuned pick changes, while the final metrics do.

The scoring part is scrambled where both engines get it, :func:`split_validation`'s result: every
scoring label is shifted to another class, so any read of it would show in an observation, an info or
a choice. Only the final metrics and the terminal evaluation curve (the score) may move.
"""

from __future__ import annotations

import hashlib
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import aees_gym  # noqa: F401  (registers the ids)
from aees_gym.suite.one_run import run_one
from aees_gym.suite.tuning import TuningInstance, TuningProblem, choose_point, sweep_specs
from aees_gym.tasks import classification
from aees_gym.tasks.batched import run as batched_run

#: What the run's score is made of: delivered once the run is over, never before.
SCORE_KEYS = ("final_metrics", "eval_curve")
ENV = {"total_steps": 60, "window_length": 20, "eval_every": 1, "reward": {"name": "heldout"},
       "context": {"features": ["progress", "trend", "last_reward", "loss_level", "val_loss", "val_accuracy"]}}


@pytest.fixture
def scramble(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """Call ``scramble()`` to shift every scoring-part label by one class in both engines."""
    original = classification.split_validation

    def scrambled(data, reward_fraction):  # noqa: ANN001, ANN202
        scored, x_reward, y_reward = original(data, reward_fraction)
        scored.y_val = (scored.y_val + 1) % scored.n_classes
        return scored, x_reward, y_reward

    def apply() -> None:
        monkeypatch.setattr(classification, "split_validation", scrambled)
        monkeypatch.setattr(batched_run, "split_validation", scrambled)

    return apply


def _plain(value: Any) -> Any:
    """A comparable copy: arrays as lists, timing dropped (same-seed timings differ anyway)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(value.items()) if "time" not in k}
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and np.isnan(value):
        return "nan"
    return value if isinstance(value, int | float | str | bool | type(None)) else repr(value)


def _choose(obs: np.ndarray, info: dict[str, Any], n: int) -> int:
    """An agent whose every choice depends on every bit it observes and every info it is told."""
    digest = hashlib.sha256(obs.tobytes() + repr(_plain(info)).encode()).digest()
    return int.from_bytes(digest[:4], "little") % n


def _single_trace() -> tuple[list[Any], dict[str, Any]]:
    env = gym.make("aees_gym/Digits-v0", **ENV)
    obs, info = env.reset(seed=3)
    trace, done = [(obs.tobytes(), _plain(info))], False
    while not done:
        action = _choose(obs, info, env.action_space.n)
        obs, reward, done, _, info = env.step(action)
        visible = {k: v for k, v in info.items() if k not in SCORE_KEYS}
        trace.append((action, obs.tobytes(), reward, _plain(visible)))
    return trace, info["final_metrics"]


def _batched_trace() -> tuple[list[Any], dict[str, Any]]:
    envs = gym.make_vec("aees_gym/Digits-v0", num_envs=2, vectorization_mode="vector_entry_point", **ENV)
    obs, info = envs.reset(seed=5)
    trace, final = [(obs.tobytes(), _plain(info))], None
    for _ in range(3):  # three windows of 20 steps: the whole budget
        visible = {k: v for k, v in info.items() if k not in SCORE_KEYS}
        actions = np.array([_choose(obs[i], visible, envs.single_action_space.n) for i in range(2)])
        obs, reward, done, _, info = envs.step(actions)
        trace.append((actions.tolist(), obs.tobytes(), reward.tolist(), _plain({k: v for k, v in info.items() if k not in SCORE_KEYS})))
        if done.all():
            final = info["final_metrics"]
    envs.close()
    assert final is not None
    return trace, final


@pytest.mark.parametrize("engine", [_single_trace, _batched_trace], ids=["single", "batched"])
def test_scrambling_the_scoring_part_changes_only_the_score(engine, scramble) -> None:
    trace, final = engine()
    scramble()
    scrambled_trace, scrambled_final = engine()
    assert len(trace) == 4
    for step, (a, b) in enumerate(zip(trace, scrambled_trace, strict=True)):
        assert a == b, f"what the agent saw or chose differs at step {step}"
    # The score moved (so this test can fail), the reward-validation metrics did not.
    assert not np.allclose(np.asarray(final["val_accuracy"]), np.asarray(scrambled_final["val_accuracy"]))
    np.testing.assert_array_equal(np.asarray(final["reward_val_accuracy"]), np.asarray(scrambled_final["reward_val_accuracy"]))


def test_scrambling_the_scoring_part_leaves_tuned_picks_unchanged(scramble) -> None:
    problem = TuningProblem("fixed", base_lr_multipliers=(0.03, 1.0, 30.0))
    instances = [TuningInstance("Digits", "Digits", seed, {"total_steps": 40, "window_length": 20}) for seed in (100, 101)]
    runs = sweep_specs(problem, instances, "isolation")

    def tune() -> tuple[Any, list[float]]:
        results = {r.run_id: run_one(r) for r in runs}
        choice = choose_point(problem, instances, runs, results, "Digits")
        return choice, [results[r.run_id].final_metrics["val_accuracy"] for r in runs]

    choice, scores = tune()
    scramble()
    again, scrambled_scores = tune()
    assert choice.point == again.point and choice.table == again.table and choice.point is not None
    assert scores != scrambled_scores


def test_validation_features_without_a_reward_validation_part_are_refused() -> None:
    from aees_gym.envs.vector_env import AEESVectorEnv

    settings = {**ENV, "reward": {"name": "aees"}, "reward_fraction": 0.0}
    with pytest.raises(ValueError, match="reward-validation part.*set reward_fraction in \\(0, 1\\)"):
        gym.make("aees_gym/Digits-v0", **settings).reset(seed=0)
    with pytest.raises(ValueError, match="reward-validation part.*set reward_fraction in \\(0, 1\\)"):
        AEESVectorEnv("Digits", 2, **settings)
    # Without those features such a run still works; evaluations then show the agent nothing mid-run.
    env = gym.make("aees_gym/Digits-v0", total_steps=40, window_length=20, eval_every=1, reward_fraction=0.0)
    env.reset(seed=0)
    _, _, done, _, info = env.step(0)
    assert not done and "eval" not in info
    _, _, done, _, info = env.step(0)
    assert done and np.isnan(info["final_metrics"]["reward_val_accuracy"]) and 0 <= info["final_metrics"]["val_accuracy"] <= 1
