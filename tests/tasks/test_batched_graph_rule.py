"""Which windows a CUDA graph may replay: never one with a momentum axis or a freezing row.

A graph re-reads the buffers it captured; a momentum axis and the freezer bring per-window inputs
the captured steps would read stale, so those windows must run eagerly. The rule and the engine's
use of it are checked here on the CPU (the replays themselves in tests/test_cuda.py, on a GPU).
"""

from __future__ import annotations

import torch

from aees_gym import make_config
from aees_gym.tasks.batched import BatchedClassificationRuns
from aees_gym.tasks.batched.cuda_graph import WindowGraphs

TINY = {"total_steps": 40, "window_length": 10, "n_train": 128, "n_val": 64}


def _rule() -> WindowGraphs:
    return WindowGraphs(torch.device("cuda"))  # only stores the device: the rule needs no GPU


def test_the_rule_refuses_momentum_axes_and_freezing():
    graphs = _rule()
    assert graphs.eligible([5, 5], [0.0, 0.0], False)
    assert not graphs.eligible([5, 5], [0.0, 0.0], False, momentum_axis=True)
    assert not graphs.eligible([5, 5], [0.0, 0.0], False, freezing=True)
    assert not graphs.eligible([5, 4], [0.0, 0.0], False)
    assert not graphs.eligible([5, 5], [0.0, 0.01], False)
    assert not graphs.eligible([5, 5], [0.0, 0.0], True)
    assert not WindowGraphs(torch.device("cpu")).eligible([5, 5], [0.0, 0.0], False)


class _Recorder(WindowGraphs):
    """The real rule on a would-be GPU, recorded; the engine is told no, so it trains eagerly on the CPU."""

    def __init__(self) -> None:
        super().__init__(torch.device("cuda"))
        self.answers: list[bool] = []

    def eligible(self, *args, **kwargs) -> bool:
        self.answers.append(super().eligible(*args, **kwargs))
        return False


def _engine(**overrides) -> tuple[BatchedClassificationRuns, _Recorder]:
    config = make_config("Synthetic", **TINY, **overrides)
    runs = BatchedClassificationRuns(config, 2)
    runs.reset_runs([0, 1], [config, config], [1, 2])
    runs.graphs = _Recorder()
    return runs, runs.graphs


def test_the_engine_asks_the_rule_with_its_momentum_axis():
    runs, graphs = _engine(optimizer="sgd", base_lr=0.05, momentum=0.9)
    runs.run_window([1.0, 1.0], [0.0, 0.0], [5, 5])
    runs.run_window([1.0, 1.0], [0.0, 0.0], [5, 5], momenta=[None, None])  # no row has its own: no axis
    runs.run_window([1.0, 1.0], [0.0, 0.0], [5, 5], momenta=[0.0, 0.9])
    assert graphs.answers == [True, True, False]


def test_the_engine_asks_the_rule_with_its_freezing_rows():
    runs, graphs = _engine(freeze_threshold=1e-3)
    runs.run_window([1.0, 1.0], [0.0, 0.0], [5, 5])
    assert graphs.answers == [False]
    plain, plain_graphs = _engine()
    plain.run_window([1.0, 1.0], [0.0, 0.0], [5, 5])
    assert plain_graphs.answers == [True]
