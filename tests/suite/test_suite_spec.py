"""Suite TOML → SuiteSpec → RunSpecs: validation messages, sweeps, stable run ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from aees_gym.suite import RunSpec, SuiteConfigError, load_suite, plan_suite, task_variants
from aees_gym.tasks import get_task

REPO = Path(__file__).resolve().parents[2]
AGENTS = """
[[agents]]
name = "fixed"
"""


def test_smoke_config_loads_and_plans():
    spec = load_suite(REPO / "experiments" / "smoke.toml")
    assert spec.name == "smoke" and spec.seeds == (0, 1) and spec.executor == "serial"
    assert [a.label for a in spec.agents] == ["random", "fixed ×1.0", "ducb"]
    plan = plan_suite(spec, "/tmp/unused/smoke")
    assert len(plan.runs) == 1 * 3 * 2 and not plan.trainings
    assert len({r.run_id for r in plan.runs}) == 6
    assert all(r.env_overrides == {"total_steps": 40, "window_length": 10, "eval_every": 2} for r in plan.runs)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("seeds = [0]\nexecuter = 'serial'\n[[tasks]]\nname = 'Synthetic'\n" + AGENTS, ["'executer'", "valid keys", "executor"]),
        ("seeds = [0]\n[[tasks]]\nname = 'Synthetic'\n[[agents]]\nname = 'fixd'\n", ["agents[0].name", "'fixd'", "random", "ducb"]),
        ("seeds = [0]\n[[tasks]]\nname = 'Synthetc'\n" + AGENTS, ["tasks[0].name", "Synthetc", "Digits", "Synthetic"]),
        ("seeds = [0]\n[[tasks]]\nname = 'Synthetic'\nlable = 'x'\n" + AGENTS, ["tasks[0]", "'lable'", "label", "overrides"]),
        ("seeds = [0]\n[[tasks]]\nname = 'Synthetic'\noverrides = { windw_length = 5 }\n" + AGENTS, ["windw_length", "window_length"]),
        ("seeds = [0]\n[[tasks]]\nname = 'Synthetic'\n[[agents]]\nname = 'fixed'\nkwargs = { lr_mult = 2.0 }\n", ["agents[0].kwargs", "lr_mult", "lr_multiplier"]),
        ("seeds = [0]\nexecutor = 'threads'\n[[tasks]]\nname = 'Synthetic'\n" + AGENTS, ["executor='threads'", "serial", "local", "ray"]),
        ("seeds = [0, 0]\n[[tasks]]\nname = 'Synthetic'\n" + AGENTS, ["seeds", "duplicates"]),
        ("[[tasks]]\nname = 'Synthetic'\n" + AGENTS, ["missing required key 'seeds'"]),
        ("seeds = [0]\n[[tasks]]\nname = 'Synthetic'\n[[agents]]\nname = 'fixed'\n[[agents]]\nname = 'fixed'\n", ["label 'fixed'", "twice"]),
        ("seeds = [0]\n[[tasks]]\nname = 'Synthetic'\n" + AGENTS + "[sweeps]\ntasks = ['Digits']\n", ["sweeps.tasks", "'Digits'"]),
        ("seeds = [0]\n[[tasks]]\nname = 'Synthetic'\n" + AGENTS + "[sweeps]\nbase_lr_multipliers = [0.1, -1]\n", ["base_lr_multipliers", "positive"]),
    ],
)
def test_validation_errors_name_the_key_and_the_valid_choices(write_suite, body, expected):
    with pytest.raises(SuiteConfigError) as info:
        load_suite(write_suite(body))
    for text in expected:
        assert text in str(info.value), (text, str(info.value))


def test_missing_file_and_bad_toml_are_config_errors(tmp_path):
    with pytest.raises(SuiteConfigError, match="does not exist"):
        load_suite(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(SuiteConfigError, match="not valid TOML"):
        load_suite(bad)


def test_offline_learner_training_block_is_required_and_its_seeds_must_be_held_out(write_suite, fake_agents):
    head = "seeds = [0, 1, 2]\n[[tasks]]\nname = 'Synthetic'\n[[agents]]\nname = 'tiny_learner'\n"
    with pytest.raises(SuiteConfigError, match="offline learner; add a 'training' table"):
        load_suite(write_suite(head))
    with pytest.raises(SuiteConfigError, match=r"training seeds \[2, 3\] overlap the evaluation seeds \[0, 1, 2\] at \[2\]"):
        load_suite(write_suite(head + "training = { total_timesteps = 8, seed = 2, n_envs = 2 }\n"))
    with pytest.raises(SuiteConfigError, match="learns online"):
        load_suite(write_suite("seeds = [0]\n[[tasks]]\nname = 'Synthetic'\n" + AGENTS + "training = { total_timesteps = 8 }\n"))
    spec = load_suite(write_suite(head + "training = { total_timesteps = 8, seed = 3, n_envs = 2 }\n"))
    assert spec.agents[0].training.seeds == (3, 4)


def test_sweeps_expand_into_labelled_task_variants(write_suite):
    spec = load_suite(write_suite("""
        seeds = [0]
        [[tasks]]
        name = "aees_gym/Synthetic-v0"
        [[tasks]]
        name = "Synthetic"
        label = "plain"
        [[agents]]
        name = "fixed"
        [sweeps]
        tasks = ["Synthetic"]
        base_lr_multipliers = [0.1, 1, 10]
        label_noise = [0.0, 0.2]
    """))
    swept, plain = spec.tasks
    assert swept.name == "Synthetic" and swept.label == "Synthetic"
    variants = task_variants(spec, swept)
    base_lr = get_task("Synthetic").default_config().base_lr
    assert [v.label for v in variants] == [
        "Synthetic lr×0.1 label_noise=0", "Synthetic lr×0.1 label_noise=0.2", "Synthetic lr×1 label_noise=0",
        "Synthetic lr×1 label_noise=0.2", "Synthetic lr×10 label_noise=0", "Synthetic lr×10 label_noise=0.2",
    ]
    assert variants[5].overrides["base_lr"] == pytest.approx(10 * base_lr) and variants[5].overrides["label_noise"] == 0.2
    assert variants[1].sweep == {"base_lr_multiplier": 0.1, "label_noise": 0.2}
    assert [v.label for v in task_variants(spec, plain)] == ["plain"]
    assert len(plan_suite(spec, "/tmp/unused/t").runs) == 7


def test_agent_env_overrides_are_merged_into_its_runs(write_suite, fake_agents):
    spec = load_suite(write_suite("seeds = [0]\n[[tasks]]\nname = 'Synthetic'\n[[agents]]\nname = 'cosine_fixed'\n" + AGENTS))
    runs = plan_suite(spec, "/tmp/unused/t").runs
    assert runs[0].env_overrides["schedule"] == "cosine"
    assert "schedule" not in runs[1].env_overrides


def test_run_id_is_a_stable_hash_of_the_spec():
    base = dict(suite="s", task="Synthetic", task_label="Synthetic", agent="fixed", agent_label="fixed", seed=0)
    a = RunSpec(**base, env_overrides={"total_steps": 40, "grid": {"lr_multipliers": (1.0, 2.0)}}, agent_kwargs={"noise_std": 0.0, "lr_multiplier": 1.0})
    b = RunSpec(**base, env_overrides={"grid": {"lr_multipliers": [1.0, 2.0]}, "total_steps": 40}, agent_kwargs={"lr_multiplier": 1.0, "noise_std": 0.0})
    assert a.run_id == b.run_id and len(a.run_id) == 16
    assert RunSpec(**{**base, "seed": 1}).run_id != RunSpec(**base).run_id
    assert RunSpec(**{**base, "agent_label": "other"}).run_id != RunSpec(**base).run_id
    # The model enters by file name (itself a hash of the training settings), not by folder.
    m1 = RunSpec(**base, model_path="/results/s/models/abc.zip")
    m2 = RunSpec(**base, model_path="/elsewhere/models/abc.zip")
    assert m1.run_id == m2.run_id != RunSpec(**base, model_path="/results/s/models/abd.zip").run_id
    with pytest.raises(TypeError):
        RunSpec(**{**base, "seed": "0"})
