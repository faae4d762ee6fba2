"""The ``heldout`` reward: a fixed reward-validation batch, disjoint from the scoring and training data,
measured at both window boundaries without an extra host read; ``aees`` untouched."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import aees_gym  # noqa: F401 - registers the ids
from aees_gym import EpisodeControl, RewardConfig, compute_reward
from aees_gym.core.reward import WindowSignals, reward_uses_heldout
from aees_gym.tasks import get_task, make_config
from aees_gym.tasks.base import RunSeeds
from aees_gym.tasks.batched import BatchedClassificationRuns
from aees_gym.tasks.classification import REWARD_SPLIT_SEED, reward_scoring_split, stratified_split
from aees_gym.tasks.tabular import DigitsOptions, _digits_arrays


def test_heldout_reward_is_positive_when_the_heldout_loss_falls():
    config = RewardConfig(name="heldout")
    rising_train = [1.0, 1.1, 1.2, 1.3]
    falls = compute_reward(rising_train, config, WindowSignals(2.0, 1.0))
    assert falls.reward > 0 and falls.base == pytest.approx(math.log(2.0), rel=1e-6)
    assert (falls.ema_start, falls.ema_end) == (2.0, 1.0)
    rises = compute_reward([1.3, 1.2, 1.1, 1.0], config, WindowSignals(1.0, 1.5))
    assert rises.reward < 0  # falling training loss does not earn anything
    assert compute_reward(rising_train, RewardConfig(), WindowSignals(2.0, 1.0)) == compute_reward(rising_train, RewardConfig())


def test_heldout_reward_without_signals_is_a_clear_error():
    assert reward_uses_heldout("heldout") and not reward_uses_heldout("aees")
    with pytest.raises(ValueError, match="held-out loss"):
        compute_reward([1.0, 0.9], RewardConfig(name="heldout"))
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="reward_eval"):
        EpisodeControl(torch.optim.SGD(model.parameters(), lr=0.1), reward={"name": "heldout"}, window_length=2, total_steps=4)


def test_reward_split_is_fixed_stratified_and_disjoint_from_training_and_scoring():
    options = DigitsOptions()
    _, y = _digits_arrays()
    train, val = stratified_split(y, options.val_fraction, options.split_seed)
    reward, scoring = reward_scoring_split(y[val], 0.2)
    again_reward, again_scoring = reward_scoring_split(y[val], 0.2)
    assert np.array_equal(reward, again_reward) and np.array_equal(scoring, again_scoring)
    reward_ids, scoring_ids = set(val[reward]), set(val[scoring])
    assert not reward_ids & scoring_ids and not reward_ids & set(train) and not scoring_ids & set(train)
    assert reward_ids | scoring_ids == set(val)
    assert len(reward) == pytest.approx(0.2 * len(val), abs=10)
    assert set(np.unique(y[val][reward])) == set(range(10))  # stratified: every class in the reward part
    nothing, everything = reward_scoring_split(y[val], 0.0)
    assert len(nothing) == 0 and len(everything) == len(val)
    assert REWARD_SPLIT_SEED == 0


def test_digits_run_rewards_on_the_reward_part_and_scores_on_the_rest():
    config = make_config("Digits", total_steps=40, window_length=20)
    run = get_task("Digits").build(config, RunSeeds.derive(0))
    x, y = _digits_arrays()
    _, val = stratified_split(y, 0.2, 0)
    reward, scoring = reward_scoring_split(y[val], config.reward_fraction)
    assert run.description["n_val"] == len(scoring) and run.description["n_reward_val"] == len(reward)

    def loss_on(idx):
        with torch.no_grad():
            return F.cross_entropy(run.model(torch.from_numpy(x[val[idx]])), torch.from_numpy(y[val[idx]])).item()

    run.model.eval()
    expected_reward, expected_score = loss_on(reward), loss_on(scoring)
    run.model.train()
    heldout = run.reward_eval()
    assert heldout.dim() == 0 and heldout.device == run.device
    assert heldout.item() == pytest.approx(expected_reward, rel=1e-5)
    assert run.evaluate()["val_loss"] == pytest.approx(expected_score, rel=1e-5)
    assert run.model.training  # evaluation leaves the model in train mode
    assert get_task("Digits").build(config.replace(reward_fraction=0.0), RunSeeds.derive(0)).reward_eval is None


def test_control_reads_heldout_with_the_losses_in_one_transfer(host_reads):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, generator=gen), torch.randint(0, 3, (64,), generator=gen)
    xh, yh = torch.randn(32, 4, generator=gen), torch.randint(0, 3, (32,), generator=gen)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    measured = []

    def reward_eval():
        with torch.no_grad():
            loss = F.cross_entropy(model(xh), yh)
        measured.append(loss)
        return loss

    control = EpisodeControl(opt, window_length=5, total_steps=10, seed=0, reward={"name": "heldout"}, reward_eval=reward_eval)
    calls = host_reads(opt)
    outcomes = []
    for _ in range(2):
        control.begin_window(control.grid.index_of(1.0, 0.0))
        outcome = None
        while outcome is None:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            outcome = control.step_end(F.cross_entropy(model(x), y).detach())
        outcomes.append(outcome)
    assert calls.count("tolist") == 2 and len(calls) == 2, calls  # one transfer per window, nothing else
    values = [float(v) for v in measured]
    assert len(values) == 4
    terms = [o.info["reward_terms"] for o in outcomes]
    assert (terms[0]["ema_start"], terms[0]["ema_end"]) == pytest.approx((values[0], values[1]))
    assert (terms[1]["ema_start"], terms[1]["ema_end"]) == pytest.approx((values[2], values[3]))
    assert outcomes[0].reward == pytest.approx(math.log(values[0] + 1e-8) - math.log(values[1] + 1e-8), rel=1e-5)
    assert outcomes[0].reward > 0  # full-batch SGD on a linear model: the held-out loss falls too


def test_aees_never_calls_reward_eval():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def boom():
        raise AssertionError("reward_eval must not run under the aees reward")

    control = EpisodeControl(opt, window_length=2, total_steps=2, seed=0, reward_eval=boom)
    control.begin_window(0)
    for _ in range(2):
        model.weight.grad = torch.zeros_like(model.weight)
        outcome = control.step_end(torch.tensor(1.0))
    assert outcome is not None and outcome.info["reward_terms"]["ema_start"] == 1.0


def test_env_heldout_reward_telescopes_over_windows():
    env = gym.make("aees_gym/Digits-v0", total_steps=150, window_length=50, reward={"name": "heldout"})
    obs, info = env.reset(seed=0)
    action, terms = info["candidate_grid"].index_of(1.0, 0.0), []
    terminated = False
    while not terminated:
        obs, reward, terminated, _, info = env.step(action)
        terms.append(info["reward_terms"])
    assert len(terms) == 3
    for before, after in zip(terms[:-1], terms[1:], strict=True):  # the model does not change between windows
        assert after["ema_start"] == pytest.approx(before["ema_end"], rel=1e-6)
    assert terms[0]["ema_start"] > terms[-1]["ema_end"]  # early Digits training generalises
    with pytest.raises(ValueError, match="reward_eval"):
        gym.make("aees_gym/Digits-v0", reward={"name": "heldout"}, reward_fraction=0.0).reset(seed=0)


def test_batched_engine_scores_and_rewards_on_the_single_runs_parts():
    config = make_config("Digits", total_steps=20, window_length=20)
    runs = BatchedClassificationRuns(config, 1)
    single = get_task("Digits").build(config, RunSeeds.derive(0)).description
    assert runs.describe()["n_val"] == single["n_val"] and len(runs.x_reward) == single["n_reward_val"] > 0
    heldout = config.replace(reward=RewardConfig(name="heldout"))
    measured = BatchedClassificationRuns(heldout, 1)
    measured.reset_runs([0], [heldout], [0])
    assert measured.run_window([1.0], [0.0], [20], heldout=True).shape == (1, 22)
    with pytest.raises(ValueError, match="reward_fraction"):
        BatchedClassificationRuns(heldout.replace(reward_fraction=0.0), 1)


def test_controlled_training_passes_reward_eval_through():
    from agents import make_agent
    from agents.deploy import ControlledTraining

    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 4, generator=gen), torch.randint(0, 2, (32,), generator=gen)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)

    def reward_eval():
        with torch.no_grad():
            return F.cross_entropy(model(x[:8]), y[:8])

    ct = ControlledTraining(opt, make_agent("fixed"), total_steps=4, window_length=4, seed=0,
                            reward={"name": "heldout"}, reward_eval=reward_eval)
    start = reward_eval().item()
    outcome = None
    for _ in range(4):
        ct.before_step()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        outcome = ct.after_step(loss) or outcome
    assert outcome is not None and outcome.info["reward_terms"]["ema_start"] == pytest.approx(start)
