"""Leaderboard and suite settings are checked when the file is loaded, with the suite file's messages."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from aees_gym.suite import SuiteConfigError
from aees_gym.suite.leaderboard import load_leaderboard, parse_leaderboard
from aees_gym.suite.suite_file import load_suite, parse_suite

BOARD: dict[str, Any] = {"sets": [{"name": "synthetic-mix-v0"}], "agents": [{"name": "random"}]}
SUITE: dict[str, Any] = {"name": "s", "tasks": [{"name": "Synthetic"}], "agents": [{"name": "random"}], "seeds": [0]}


@pytest.mark.parametrize(("change", "match"), [
    ({"workers": "2"}, r"<b>: workers must be an integer, got the string '2' \(write the number without quotes\)"),
    ({"workers": 2.5}, r"<b>: workers must be an integer, got 2\.5 of type float"),
    ({"workers": 0}, r"<b>: workers must be an integer in \[1, 1024\], got 0"),
    ({"workers": True}, r"<b>: workers must be an integer, got True"),
    ({"n_boot": -1}, r"<b>: n_boot must be an integer in \[1, 1000000\], got -1"),
    ({"n_boot": "2000"}, r"<b>: n_boot must be an integer, got the string '2000'"),
    ({"results_dir": 5}, r"<b>: results_dir must be a non-empty string, got 5"),
    ({"results_dir": "runs\x00x"}, r"<b>: results_dir 'runs\\x00x' contains the control character '\\x00'; write a plain folder path"),
])
def test_leaderboard_settings_are_checked_at_load(change: dict[str, Any], match: str) -> None:
    with pytest.raises(SuiteConfigError, match=match):
        parse_leaderboard({**BOARD, **change}, "<b>")


def test_a_results_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("x")
    with pytest.raises(SuiteConfigError, match=r"results_dir '.*taken' is an existing file, not a folder; name a folder"):
        parse_leaderboard({**BOARD, "results_dir": str(taken)}, "<b>")
    with pytest.raises(SuiteConfigError, match=r"<s>: results_dir '.*taken' is an existing file"):
        parse_suite({**SUITE, "results_dir": str(taken)}, "<s>")
    with pytest.raises(SuiteConfigError, match=r"<s>: workers must be an integer in \[1, 1024\], got 5000"):
        parse_suite({**SUITE, "workers": 5000}, "<s>")
    spec = parse_leaderboard({**BOARD, "workers": 3, "n_boot": 500, "results_dir": str(tmp_path)}, "<b>")
    assert (spec.workers, spec.n_boot, spec.results_dir) == (3, 500, str(tmp_path))


@pytest.mark.parametrize("loader", [load_leaderboard, load_suite])
def test_a_fifo_or_binary_settings_file_is_refused_without_blocking(tmp_path: Path, loader: Any) -> None:
    fifo = tmp_path / "f.toml"
    os.mkfifo(fifo)
    with pytest.raises(SuiteConfigError, match=r"f\.toml: is a pipe, socket or device, not a regular file"):
        loader(fifo)
    binary = tmp_path / "b.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(SuiteConfigError, match=r"b\.toml: not UTF-8 text .*save the .* as UTF-8"):
        loader(binary)
    with pytest.raises(SuiteConfigError, match="does not exist"):
        loader(tmp_path / "none.toml")


@pytest.mark.parametrize(("argv", "message"), [
    (["suite", "SUITE", "--workers", "0"], "--workers must be at least 1, got 0"),
    (["report", "DIR", "--n-boot", "0"], "--n-boot must be at least 1, got 0"),
    (["run", "--task", "Synthetic", "--agent", "random", "--seed", "-1"], "--seed must be at least 0, got -1"),
])
def test_cli_counts_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    from aees_gym.cli import main

    suite = tmp_path / "s.toml"
    suite.write_text('name = "s"\nseeds = [0]\n[[tasks]]\nname = "Synthetic"\n[[agents]]\nname = "random"\n')
    code = main([str(suite) if a == "SUITE" else str(tmp_path) if a == "DIR" else a for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "results").exists()


def test_the_leaderboard_script_reports_a_bad_file_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from experiments.leaderboard import main

    board = tmp_path / "board.toml"
    board.write_text('workers = "2"\n[[sets]]\nname = "synthetic-mix-v0"\n[[agents]]\nname = "random"\n')
    assert main([str(board), "--table-only", "--out", str(tmp_path / "b.md")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "workers must be an integer, got the string '2'" in err, err


@pytest.mark.parametrize(("change", "match"), [
    ({"sets": [{"name": "synthetic-mix-v0", "env": {"eval_every": "0"}}]},
     r"<b>: sets\[0\]\.env on set 'synthetic-mix-v0' \(Synthetic\): eval_every must be an integer, got the string '0'"),
    ({"agents": [{"name": "random", "env": {"eval_every": 1.5}}]}, r"<b>: agents\[0\]\.env \(random\) on set .*eval_every must be an integer"),
    ({"agents": [{"name": "random", "env": {"nope": 1}}]}, r"<b>: agents\[0\]\.env \(random\) .*Unknown setting\(s\) \['nope'\]"),
    ({"sets": [{"name": "synthetic-mix-v0", "env": {"total_steps": 10}}]}, r"sets\[0\]\.env .*define instance .* cannot be overridden"),
])
def test_leaderboard_env_settings_are_checked_at_load(change: dict[str, Any], match: str) -> None:
    with pytest.raises(SuiteConfigError, match=match):
        parse_leaderboard({**BOARD, **change}, "<b>")


def test_an_unregistered_reward_still_loads_to_stay_pending() -> None:
    board = {**BOARD, "agents": [{"name": "random"}, {"name": "random", "label": "r2", "env": {"reward": {"name": "no-such"}}}]}
    assert [e.reward for e in parse_leaderboard(board, "<b>").entries] == ["aees", "no-such"]
