"""Schedule-Free AdamW and Prodigy as optimizer choices: they train, evaluate at the right point, fail clearly."""

import sys

import gymnasium as gym
import pytest
import torch

import aees_gym  # noqa: F401 - registers the ids
from aees_gym.tasks import get_task, make_config
from aees_gym.tasks.base import RunSeeds, eval_params
from aees_gym.tasks.batched import BatchedClassificationRuns


def plain_run(optimizer, base_lr, steps=300):
    env = gym.make("aees_gym/Digits-v0", optimizer=optimizer, base_lr=base_lr, total_steps=steps, window_length=50)
    _, info = env.reset(seed=0)
    action = info["candidate_grid"].index_of(1.0, 0.0)
    means, terminated = [], False
    while not terminated:
        _, _, terminated, _, info = env.step(action)
        means.append(info["loss_mean"])
    return means, info["final_metrics"]


@pytest.mark.parametrize(("optimizer", "base_lr"), [("schedulefree_adamw", 2.5e-3), ("prodigy", 1.0)])
def test_reference_optimizers_train_digits(optimizer, base_lr):
    means, final = plain_run(optimizer, base_lr)
    assert means[-1] < 0.5 * means[0]
    assert final["val_accuracy"] > 0.8


def test_schedulefree_evaluates_at_its_averaged_point_and_trains_at_its_own():
    config = make_config("Digits", optimizer="schedulefree_adamw", base_lr=2.5e-3, total_steps=100)
    run = get_task("Digits").build(config, RunSeeds.derive(0))
    assert run.optimizer.param_groups[0]["train_mode"] is True
    for _ in range(30):
        run.train_step()
        run.optimizer.step()
    trained = [p.detach().clone() for p in run.model.parameters()]
    metrics, heldout = run.evaluate(), run.reward_eval().item()
    # Both hooks restore train mode and the training point exactly.
    assert run.optimizer.param_groups[0]["train_mode"] is True
    assert all(torch.equal(a, b) for a, b in zip(trained, run.model.parameters(), strict=True))
    run.optimizer.eval()
    averaged = [p.detach().clone() for p in run.model.parameters()]
    expected = run.evaluate()  # eval_params leaves an optimizer already in eval mode alone
    run.optimizer.train()
    assert not all(torch.equal(a, b) for a, b in zip(trained, averaged, strict=True))  # the points differ
    assert metrics == expected
    assert isinstance(heldout, float)


def test_eval_params_leaves_plain_optimizers_alone():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    with eval_params(opt):
        pass
    assert "train_mode" not in opt.param_groups[0]


def test_unknown_optimizer_and_missing_extra_are_clear(monkeypatch):
    with pytest.raises(ValueError, match="schedulefree_adamw"):
        make_config("Digits", optimizer="lion")
    config = make_config("Digits", optimizer="prodigy", base_lr=1.0)
    monkeypatch.setitem(sys.modules, "prodigyopt", None)
    with pytest.raises(ImportError, match=r"aees-gym\[refs\]"):
        get_task("Digits").build(config, RunSeeds.derive(0))


def test_suite_preflight_names_the_refs_extra(monkeypatch):
    from aees_gym.suite import parse_suite
    from aees_gym.suite.extras import MissingExtrasError, check_suite_extras

    spec = parse_suite({
        "name": "refs", "seeds": [0], "env": {"optimizer": "schedulefree_adamw", "total_steps": 20},
        "tasks": [{"name": "Synthetic"}], "agents": [{"name": "fixed"}],
    })
    check_suite_extras(spec)  # installed here
    monkeypatch.setitem(sys.modules, "schedulefree", None)
    with pytest.raises(MissingExtrasError, match="refs"):
        check_suite_extras(spec)


def test_batched_engine_refuses_reference_optimizers():
    with pytest.raises(ValueError, match="separate envs"):
        BatchedClassificationRuns(make_config("Digits", optimizer="schedulefree_adamw"), 2)
