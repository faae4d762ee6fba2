"""The aees-gym command: --help everywhere and exit codes scripts can trust (0 ok, 1 failures, 2 usage)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aees_gym.cli import build_parser, main, parse_assignment
from aees_gym.suite.results import read_result

TINY = ["--set", "total_steps=40", "--set", "window_length=10"]
COMMANDS = ["list", "check", "run", "suite", "report", "train-agent", "data", "data prepare", "data list"]


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_everywhere_exits_zero(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([*command.split(), "--help"])
    assert info.value.code == 0
    assert "usage: aees-gym" in capsys.readouterr().out


def test_every_subcommand_is_covered_by_the_help_test():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {c.split()[0] for c in COMMANDS}


def test_console_module_runs_and_reports_usage_errors_with_code_2(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "aees_gym.cli", "suite", str(tmp_path / "missing.toml")], capture_output=True, text=True)
    assert bad.returncode == 2 and "missing.toml does not exist" in bad.stderr


def test_parse_assignment_reads_toml_values():
    assert parse_assignment("total_steps=40") == ("total_steps", 40)
    assert parse_assignment("base_lr=3e-3") == ("base_lr", 3e-3)
    assert parse_assignment("schedule=cosine") == ("schedule", "cosine")
    assert parse_assignment("grid={lr_multipliers=[1e6],noise_stds=[0.0]}") == ("grid", {"lr_multipliers": [1e6], "noise_stds": [0.0]})


def test_list_shows_tasks_env_ids_and_agents_with_descriptions(capsys):
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tasks"]["Synthetic"]["env_id"] == "aees_gym/Synthetic-v0"
    assert data["agents"]["fixed"] and data["agents"]["ducb"]
    assert main(["list"]) == 0
    assert "aees_gym/Digits-v0" in capsys.readouterr().out


def test_run_exit_codes(tmp_path, capsys, fake_agents):
    assert main(["run", "--task", "Synthetic", "--agent", "fixed", "--seed", "1", *TINY, "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("*.json")
    result = read_result(path)
    assert result.status == "ok" and result.seed == 1 and result.config["total_steps"] == 40
    assert "status=ok" in capsys.readouterr().out
    assert main(["run", "--task", "Synthetic", "--agent", "crash", *TINY]) == 1
    assert "fails on purpose" in capsys.readouterr().err
    assert main(["run", "--task", "Synthetic", "--agent", "nope", *TINY]) == 2
    assert "unknown agent 'nope'" in capsys.readouterr().err
    assert main(["run", "--task", "Nope", "--agent", "fixed"]) == 2
    assert main(["run", "--task", "Synthetic", "--agent", "fixed", "--set", "windw=3"]) == 2
    assert "window_length" in capsys.readouterr().err
    assert main(["run", "--task", "Synthetic", "--agent", "fixed", "--agent-kw", "lr_mult=2"]) == 2
    assert main(["run", "--task", "Synthetic", "--agent", "fixed", "--set", "nokeyvalue"]) == 2


def test_diverging_run_exits_zero_and_is_recorded(tmp_path):
    args = ["run", "--task", "Synthetic", "--agent", "fixed", "--agent-kw", "lr_multiplier=1e6", *TINY,
            "--set", "grid={lr_multipliers=[1e6],noise_stds=[0.0]}", "--set", "optimizer='sgd'", "--set", "base_lr=1.0", "--out", str(tmp_path)]
    assert main(args) == 0
    (path,) = tmp_path.glob("*.json")
    assert read_result(path).status == "diverged"


def test_suite_and_report_exit_codes(write_suite, tmp_path, fake_agents, capsys):
    good = write_suite("seeds = [0]\n[[tasks]]\nname = 'Synthetic'\n[[agents]]\nname = 'fixed'\n", name="clig")
    assert main(["suite", str(good), "--results-dir", str(tmp_path / "r"), "--no-progress", "--report"]) == 0
    out = capsys.readouterr().out
    assert "1 runs planned" in out and "report.md" in out
    failing = write_suite("seeds = [0]\n[[tasks]]\nname = 'Synthetic'\n[[agents]]\nname = 'crash'\n[[agents]]\nname = 'fixed'\n",
                          name="clif", filename="failing.toml")
    assert main(["suite", str(failing), "--results-dir", str(tmp_path / "r"), "--no-progress"]) == 1
    bad = write_suite("seeds = [0]\n[[tasks]]\nname = 'Synthetic'\n[[agents]]\nname = 'fixd'\n", filename="bad.toml")
    assert main(["suite", str(bad), "--results-dir", str(tmp_path / "r")]) == 2
    assert "agents[0].name" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "r"), "--no-plots"]) == 0
    assert Path(tmp_path / "r" / "report" / "report.md").exists()
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_check_runs_both_env_checkers(capsys):
    assert main(["check", "aees_gym/Synthetic-v0", *TINY]) == 0
    out = capsys.readouterr().out
    assert "gymnasium env checker: passed" in out and "stable-baselines3 env checker: passed" in out
    assert main(["check", "aees_gym/Nope-v0"]) == 2


def test_data_list_and_unknown_data_set(capsys, tmp_path):
    assert main(["data", "list"]) == 0
    assert main(["data", "prepare", "no-such-data", "--data-dir", str(tmp_path)]) == 2
    assert "no-such-data" in capsys.readouterr().err
