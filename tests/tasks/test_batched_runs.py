"""Row i of a batched engine reset with seed s reproduces the single env reset with seed s."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import aees_gym  # noqa: F401  (registers the ids)
from aees_gym import get_task, make_config
from aees_gym.core.control import EpisodeControl
from aees_gym.tasks import RunSeeds
from aees_gym.tasks.base import seeded_torch
from aees_gym.tasks.batched import BatchedClassificationRuns, batchable_tasks
from aees_gym.tasks.batched.nets import RowDropout

SMALL = {"total_steps": 50, "window_length": 20}
# Per row: (task overrides of that run, action per window). Action = lr_idx * 3 + noise_idx on the default grid:
# 4 = (x1, σ .005), 2 = (x0.5, σ .01), 6 = (x2, σ 0); row 2 also changes base LR, weight decay and schedule.
ROWS = [({}, [4, 6, 0]), ({}, [6, 2, 8]), ({"base_lr": 3e-3, "weight_decay": 0.05, "schedule": "cosine"}, [2, 4, 3])]
SEEDS = [3, 7, 11]



def _overrides(task, mnist_dir, extra):
    if task.startswith("MNIST"):
        model = "mnist_mlp" if task == "MNIST-mlp" else "mnist_cnn"
        return {**get_task("MNIST").smoke_overrides, "data_dir": str(mnist_dir), "model": model, "total_steps": 50, **extra}
    return {**SMALL, **extra}


def _single_env(task, overrides, seed, actions):
    """The env's step losses per window, its run seed, and the env (for evaluation afterwards)."""
    env = gym.make(f"aees_gym/{task.split('-')[0]}-v0", **overrides)
    env.reset(seed=seed)
    windows = []
    for a in actions:
        windows.append(env.step(a)[4]["step_losses"])
    return windows, env.unwrapped.run_seed, env.unwrapped


def _batched(task, configs, run_seeds, actions_per_row):
    runs = BatchedClassificationRuns(configs[0], len(configs))
    runs.reset_runs(range(len(configs)), configs, run_seeds)
    grid = configs[0].grid
    windows = []
    for w in range(len(actions_per_row[0])):
        values = [grid.values(acts[w]) for acts in actions_per_row]
        steps = [min(c.window_length, c.total_steps - runs.steps_done[i]) for i, c in enumerate(configs)]
        windows.append(runs.run_window([v[0] for v in values], [v[1] for v in values], steps).cpu())
    return runs, windows


@pytest.mark.parametrize("task", ["Synthetic", "Digits", "DigitsNoisy", "DigitsCNN", "MNIST", "MNIST-mlp"])
def test_each_row_reproduces_the_single_env_with_its_seed(task, mnist_dir):
    singles, configs, run_seeds = [], [], []
    for (extra, actions), seed in zip(ROWS, SEEDS, strict=True):
        overrides = _overrides(task, mnist_dir, extra)
        windows, run_seed, env = _single_env(task, overrides, seed, actions)
        singles.append((windows, env))
        configs.append(make_config(task.split("-")[0], **overrides))
        run_seeds.append(run_seed)
    runs, batched = _batched(task, configs, run_seeds, [acts for _, acts in ROWS])
    for i, (windows, env) in enumerate(singles):
        for w, single in enumerate(windows):
            got = batched[w][i, : len(single)].numpy()
            # Float32 rounding differs (batched vs plain GEMMs); later windows see it amplified by training.
            np.testing.assert_allclose(got, single, rtol=1e-5 if w == 0 else 1e-3, err_msg=f"{task} row {i} window {w}")
            assert np.isnan(batched[w][i, len(single) :].numpy()).all()
        single_params = dict(env.training_run.model.named_parameters())
        for name, value in runs.row_state_dict(i).items():
            key = next(k for k in single_params if k.endswith(name))
            torch.testing.assert_close(value, single_params[key].detach(), rtol=1e-2, atol=1e-3)
            with torch.no_grad():  # evaluate the same weights both ways
                single_params[key].copy_(value)
        want, got_metrics = env.training_run.evaluate(), runs.evaluate([i])[0]
        assert set(got_metrics) == set(want) and len(want) == (5 if task == "DigitsNoisy" else 2)
        for key in want:
            assert got_metrics[key] == pytest.approx(want[key], rel=1e-5, abs=1e-7), key
    assert runs.steps_done == [50, 50, 50]


@pytest.mark.parametrize("task", ["DigitsNoisy", "MNIST"])
def test_heldout_columns_are_the_single_runs_reward_eval_and_draw_nothing(task, mnist_dir):
    # MNIST's CNN has dropout: measuring in eval mode must leave its masks (and the noise) untouched.
    overrides = _overrides(task, mnist_dir, {"reward": {"name": "heldout"}})
    actions, seeds = [8, 5], [3, 7]
    singles = [gym.make(f"aees_gym/{task}-v0", **overrides) for _ in seeds]
    infos = []
    for env, seed, action in zip(singles, seeds, actions, strict=True):
        env.reset(seed=seed)
        infos.append(env.step(action)[4])
    config = make_config(task, **overrides)
    run_seeds = [env.unwrapped.run_seed for env in singles]
    values = [config.grid.values(a) for a in actions]
    steps = [config.window_length] * len(seeds)
    out = []
    for heldout in (False, True):
        runs = BatchedClassificationRuns(config, len(seeds))
        runs.reset_runs(range(len(seeds)), [config] * len(seeds), run_seeds)
        out.append(runs.run_window([v[0] for v in values], [v[1] for v in values], steps, heldout=heldout).cpu())
    plain, measured = out
    assert measured.shape == (len(seeds), 2 + plain.shape[1])
    torch.testing.assert_close(measured[:, 2:], plain, rtol=0, atol=0)  # bit for bit: no draw, no update
    for i, info in enumerate(infos):
        assert measured[i, 0].item() == pytest.approx(info["ema_start"], rel=1e-5)
        assert measured[i, 1].item() == pytest.approx(info["ema_end"], rel=1e-5)
        np.testing.assert_allclose(measured[i, 2:].numpy(), info["step_losses"], rtol=1e-5)
    with pytest.raises(ValueError, match="reward_fraction"):
        BatchedClassificationRuns(make_config(task, **{**overrides, "reward_fraction": 0.0}), 1)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_sgd_and_adam_rows_with_their_own_momentum_and_weight_decay(optimizer):
    rows = [{"momentum": 0.9, "weight_decay": 0.0}, {"momentum": 0.5, "weight_decay": 0.01}]
    base = {**SMALL, "optimizer": optimizer, "base_lr": 0.05 if optimizer == "sgd" else 1e-3}
    singles = [_single_env("Digits", {**base, **r}, s, [4, 2, 7]) for r, s in zip(rows, SEEDS, strict=False)]
    configs = [make_config("Digits", **base, **r) for r in rows]
    _, batched = _batched("Digits", configs, [s[1] for s in singles], [[4, 2, 7], [4, 2, 7]])
    for i, (windows, _, _) in enumerate(singles):
        for w, single in enumerate(windows):
            np.testing.assert_allclose(batched[w][i, : len(single)].numpy(), single, rtol=1e-5)


def test_rows_end_and_restart_independently():
    """Different budgets in one batch; a row restarted mid-way replays a fresh single env, the others go on."""
    short = make_config("Digits", total_steps=30, window_length=20)
    long = make_config("Digits", total_steps=60, window_length=20)
    runs = BatchedClassificationRuns(long, 2)
    s0, s1 = 5, 6
    runs.reset_runs([0, 1], [long, short], [s0, s1])
    first = runs.run_window([1.0, 2.0], [0.0, 0.01], [20, 20]).cpu()
    second = runs.run_window([1.0, 1.0], [0.0, 0.0], [20, 10]).cpu()
    assert np.isnan(second[1, 10:].numpy()).all() and np.isfinite(second[1, :10].numpy()).all()
    with pytest.raises(ValueError, match="0 of its 30 steps left"):
        runs.run_window([1.0, 1.0], [0.0, 0.0], [20, 1])
    runs.reset_runs([1], [short], [s1 + 100])
    third = runs.run_window([1.0, 0.5], [0.0, 0.005], [20, 20]).cpu()
    assert runs.steps_done == [60, 20]

    def losses(config, seed, multiplier_std_steps):
        """The single run (task build + EpisodeControl, as AEESEnv drives them) of run seed ``seed``."""
        seeds = RunSeeds.derive(seed)
        run = get_task("Digits").build(config, seeds)
        ctl = EpisodeControl(run.optimizer, config, lr_scheduler=run.scheduler, seed=seeds.gradient_noise)
        out = []
        for w, (mult, std, _) in enumerate(multiplier_std_steps):
            grid = config.grid
            action = grid.lr_multipliers.index(mult) * len(grid.noise_stds) + grid.noise_stds.index(std)
            ctl.begin_window(action)
            with seeded_torch(seeds.dropout + w, run.device):
                outcome = None
                while outcome is None:
                    outcome = ctl.step_end(run.train_step())
            out.append(outcome.info["step_losses"])
        return out

    row0 = losses(long, s0, [(1.0, 0.0, 20), (1.0, 0.0, 20), (1.0, 0.0, 20)])
    row1 = losses(short, s1, [(2.0, 0.01, 20), (1.0, 0.0, 10)])
    row1_new = losses(short, s1 + 100, [(0.5, 0.005, 20)])
    for got, want in ((first[0], row0[0]), (second[0], row0[1]), (third[0], row0[2]), (first[1], row1[0]),
                      (second[1, :10], row1[1]), (third[1], row1_new[0])):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)


def test_a_diverging_row_never_touches_the_others():
    config = make_config("DigitsCNN", **SMALL)
    blowup = config.replace(base_lr=10.0)

    def batch(middle):
        runs = BatchedClassificationRuns(config, 3)
        runs.reset_runs(range(3), [config, middle, config], [1, 2, 3])
        out = [runs.run_window([1.0, 1e4 if middle is blowup else 1.0, 2.0], [0.01, 0.01, 0.0], [20, 20, 20]) for _ in range(2)]
        return torch.cat(out, dim=1), runs

    calm, calm_runs = batch(config)
    wild, wild_runs = batch(blowup)
    assert not torch.isfinite(wild[1]).all()
    assert torch.equal(calm[0], wild[0]) and torch.equal(calm[2], wild[2])
    for a, b in zip(calm_runs.params, wild_runs.params, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2])
    assert all(math.isfinite(v) for m in wild_runs.evaluate([0, 2]) for v in m.values())


def test_no_host_read_inside_a_window(host_reads):
    config = make_config("DigitsNoisy", total_steps=40, window_length=20)
    runs = BatchedClassificationRuns(config, 3, track_grad_norms=True)
    runs.reset_runs(range(3), [config] * 3, [0, 1, 2])
    calls = host_reads(runs.optimizer)
    losses = runs.run_window([1.0, 2.0, 0.5], [0.0, 0.01, 0.005], [20, 20, 13])  # masked tail in row 2
    assert calls == []
    assert losses.shape == (3, 20) and runs.grad_norms.shape == (3, 20)
    assert torch.isfinite(losses[:, :13]).all() and torch.isnan(losses[2, 13:]).all()


def test_row_dropout_is_f_dropout_under_the_seeded_global_rng_bit_for_bit():
    x = torch.randn(3, 16, 64, 12, 12)
    drop = RowDropout(3, torch.device("cpu"))
    seeds = [10, 20, 30]
    for i, s in enumerate(seeds):
        drop.reseed(i, s)
    got = [drop(x, 0.25), drop(x[:, :, :5].flatten(2), 0.5)]
    for i, s in enumerate(seeds):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            want = [F.dropout(x[i], 0.25, training=True), F.dropout(x[i, :, :5].flatten(1), 0.5, training=True)]
        assert torch.equal(got[0][i], want[0]) and torch.equal(got[1][i], want[1])
    drop.rows = [0, 2]  # row 1 does not step: its activations pass, its stream does not move
    state = drop.generators[1].get_state()
    out = drop(x, 0.25)
    assert torch.equal(out[1], x[1]) and torch.equal(drop.generators[1].get_state(), state)


def test_bad_inputs_raise_clear_errors(mnist_dir):
    config = make_config("Digits", **SMALL)
    runs = BatchedClassificationRuns(config, 2)
    with pytest.raises(ValueError, match="options"):
        runs.reset_runs([0], [make_config("Digits", hidden=64)], [0])
    with pytest.raises(ValueError, match="batch_size"):
        runs.reset_runs([0], [config.replace(batch_size=32)], [0])
    with pytest.raises(ValueError, match="task"):
        runs.reset_runs([0], [make_config("Synthetic")], [0])
    with pytest.raises(ValueError, match="one config and one seed per row"):
        runs.reset_runs([0, 1], [config], [0, 1])
    with pytest.raises(ValueError, match=r"distinct indices in \[0, 2\)"):
        runs.reset_runs([2], [config], [0])
    with pytest.raises(ValueError, match="no run yet"):
        runs.run_window([1.0, 1.0], [0.0, 0.0], [5, 5])
    runs.reset_runs([0, 1], [config, config], [0, 1])
    with pytest.raises(ValueError, match=r"lr_multipliers needs one value per run \(2\)"):
        runs.run_window([1.0], [0.0, 0.0], [5, 5])
    with pytest.raises(ValueError, match="non-negative integer"):
        runs.run_window([1.0, 1.0], [0.0, 0.0], [5, -1])
    with pytest.raises(ValueError, match="finite and >= 0"):
        runs.run_window([float("nan"), 1.0], [0.0, 0.0], [5, 5])
    with pytest.raises(ValueError, match='vectorization_mode="async"'):
        BatchedClassificationRuns(make_config("CIFAR10"), 2)
    mnist = make_config("MNIST", **get_task("MNIST").smoke_overrides, data_dir=str(mnist_dir), augment=True)
    with pytest.raises(ValueError, match="augment=False"):
        BatchedClassificationRuns(mnist, 2)
    with pytest.raises(ValueError, match="positive integer"):
        BatchedClassificationRuns(config, 0)
    assert {"Digits", "DigitsNoisy", "DigitsCNN", "Synthetic", "MNIST"} <= set(batchable_tasks())


def test_mnist_mlp_is_a_model_choice_of_the_single_env(mnist_dir):
    env = gym.make("aees_gym/MNIST-v0", **get_task("MNIST").smoke_overrides, data_dir=str(mnist_dir), model="mnist_mlp")
    env.reset(seed=0)
    info = env.step(4)[4]
    assert len(info["step_losses"]) == 20 and all(math.isfinite(v) for v in info["step_losses"])
    with pytest.raises(ValueError, match="mnist_mlp"):
        make_config("MNIST", model="resnet8")


def test_an_mlp_rows_results_do_not_depend_on_its_batch_size() -> None:
    # The same three runs alone and among 37 others: bit for bit the same held-out and step losses and
    # final val_loss (evaluation chunks are fixed in examples, not derived from N). The CNN tasks'
    # grouped convolution changes its arithmetic with the number of groups, so they agree only to
    # float tolerance (the equivalence tests above).
    results = []
    for n in (3, 40):
        config = make_config("Digits", **SMALL, reward={"name": "heldout"})
        runs = BatchedClassificationRuns(config, n)
        runs.reset_runs(range(n), [config] * n, [RunSeeds.derive(s) for s in range(n)])
        losses = runs.run_window([1.0] * n, [0.005] * n, [20] * n, heldout=True)[:3]
        results.append((losses, [m["val_loss"] for m in runs.evaluate([0, 1, 2])]))
    assert torch.equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]


def test_window_plan_packs_and_unpacks_every_field():
    from aees_gym.tasks.batched.window_plan import host_plan, send, unpack

    host = host_plan(3, 2, 4, torch.device("cpu"))
    host.lr[:] = [[1e-3, 2.5e-4], [1e-3, 2.5e-4], [0.0, 7e-5]]
    host.active[:2] = 1
    host.index[:] = np.arange(24).reshape(3, 2, 4)
    host.momentum[:] = [0.0, 0.95]
    plan = unpack(send(host, torch.device("cpu")), 3, 2, 4)
    assert plan.lr.dtype == torch.float64 and plan.lr[2, 1].item() == 7e-5 and plan.lr[0, 1].item() == 2.5e-4
    assert plan.active.tolist() == [[True, True], [True, True], [False, False]]
    assert torch.equal(plan.index, torch.arange(24).view(3, 2, 4))
    assert plan.momentum.dtype == torch.float64 and plan.momentum.tolist() == [0.0, 0.95]


def test_prefetched_permutations_give_the_same_batches():
    from aees_gym.tasks.batched.streams import RowBatches

    def batches(prefetch):
        rows = RowBatches(2, 50, 8)  # 6 steps per epoch
        for r in range(2):
            rows.reset(r, 100 + r)
        out = []
        for steps in ([4, 5], [4, 0], [6, 3], [2, 7]):
            out.append(rows.plan(steps, max(steps)).clone())
            if prefetch:
                rows.prefetch(steps)
        return out

    for a, b in zip(batches(True), batches(False), strict=True):
        assert torch.equal(a, b)


def test_gemm_digits_cnn_forward_matches_the_grouped_convolution():
    from aees_gym.tasks.batched.conv_gemm import digits_cnn_gemm_forward
    from aees_gym.tasks.batched.nets import digits_cnn_forward

    gen = torch.Generator().manual_seed(0)
    n, b = 3, 5
    shapes = [(n, 16, 1, 3, 3), (n, 16), (n, 32, 16, 3, 3), (n, 32), (n, 10, 512), (n, 10)]
    params = [(torch.randn(s, generator=gen) * 0.3).requires_grad_() for s in shapes]
    x = torch.randn(n, b, 64, generator=gen)
    grouped, gemm = digits_cnn_forward(params, x), digits_cnn_gemm_forward(params, x)
    torch.testing.assert_close(gemm, grouped, rtol=1e-5, atol=1e-5 * grouped.abs().max().item())
    for g_ref, g in zip(torch.autograd.grad(grouped.square().sum(), params), torch.autograd.grad(gemm.square().sum(), params), strict=True):
        torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-5 * g_ref.abs().max().item())
