"""Errors before work: missing data, bad agent keywords, unwritable outputs and missing Ray are one line
(exit 2) before anything trains or any folder is created."""

from __future__ import annotations

import pytest

from aees_gym.cli import main
from aees_gym.suite import load_suite, run_suite
from aees_gym.suite.extras import MissingDataError, importable
from aees_gym.suite.suite_file import SuiteConfigError
from aees_gym.tasks import registered_tasks

FILE_TASKS = sorted(name for name, spec in registered_tasks().items() if spec.requires_files)


def test_every_task_that_reads_files_checks_its_data_first():
    assert FILE_TASKS and all(registered_tasks()[name].check_data is not None for name in FILE_TASKS)


@pytest.mark.parametrize("task", FILE_TASKS)
def test_missing_data_is_one_line_before_the_run(task, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "--task", task, "--agent", "random", "--set", f"data_dir={tmp_path / 'empty'}", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert str(tmp_path / "empty") in err and not out.exists()


def test_a_suite_with_missing_data_creates_no_folder(write_suite, tmp_path):
    config = write_suite(f'seeds = [0]\n[[tasks]]\nname = "MNIST"\noverrides = {{ data_dir = "{tmp_path / "none"}" }}\n'
                         '[[agents]]\nname = "random"\n', name="nodata")
    with pytest.raises(MissingDataError, match="mnist_5k"):
        run_suite(load_suite(config), results_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("agent", "kw", "message"), [
    ("fixed", "lr_multiplier=7.0", "not in the candidate grid"),
    ("fixed", "lr_multiplier=abc", "must be a number"),
    ("ducb", "gamma=5", "gamma"),
    ("random", "colour=1", "colour"),
])
def test_bad_agent_keyword_values_are_usage_errors(agent, kw, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--task", "Synthetic", "--agent", agent, "--agent-kw", kw, "--set", "total_steps=20", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--agent-kw" in err and message in err, err
    assert not out.exists()


def test_train_agent_checks_its_output_and_keywords_before_training(tmp_path, capsys):
    args = ["train-agent", "--agent", "sb3", "--task", "Synthetic", "--total-timesteps", "8", "--set", "total_steps=20"]
    assert main([*args, "--agent-kw", "algo=foo", "--out", str(tmp_path / "m.zip")]) == 2
    assert "unknown algo 'foo'" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main([*args, "--out", str(tmp_path / "file" / "m.zip")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_ray_is_checked_before_the_suite_folder_exists(write_suite, tmp_path, monkeypatch, capsys):
    """Without Ray: the extra is named; with Ray: an unreachable $RAY_ADDRESS is named. Either way, no folder."""
    config = write_suite('seeds = [0]\n[[tasks]]\nname = "Synthetic"\n[[agents]]\nname = "random"\n', name="rayless")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # the batched executor honours it
    code = main(["suite", str(config), "--results-dir", str(tmp_path / "out"), "--executor", "batched", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert ("aees-gym[ray]" in err) if not importable("ray") else ("127.0.0.1:1" in err)
    assert not (tmp_path / "out").exists()


def test_suite_file_ray_address_is_checked_on_load(write_suite):
    body = 'seeds = [0]\n[[tasks]]\nname = "Synthetic"\n[[agents]]\nname = "random"\n'
    assert load_suite(write_suite(f'ray_address = "ray://head:10001"\n{body}')).ray_address == "ray://head:10001"
    assert load_suite(write_suite(f'ray_address = "auto"\n{body}')).ray_address == "auto"
    assert load_suite(write_suite(body)).ray_address is None
    for bad in ('"head"', '"head:port"', "6379", '""'):
        with pytest.raises(SuiteConfigError, match="ray_address"):
            load_suite(write_suite(f"ray_address = {bad}\n{body}"))
