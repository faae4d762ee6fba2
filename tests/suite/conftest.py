"""Fixtures of the suite tests: agents declared through a fake installed distribution, suite files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from suite_helpers import write_dist

from aees_gym.suite import agent_registry

HERE = Path(__file__).resolve().parent
FAKE_ENTRY_POINTS = """\
[aees_gym.agents]
crash = suite_fake_agents:CrashAgent
cosine_fixed = suite_fake_agents:CosineFixedAgent
tiny_learner = suite_fake_agents:TinyLearner
not_a_class = suite_fake_agents:not_a_class
"""

# Small enough that one Synthetic run takes a fraction of a second on one core.
TINY_ENV = "[env]\ntotal_steps = 40\nwindow_length = 10\neval_every = 2\n"


@pytest.fixture
def fake_agents(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Declare the agents of ``suite_fake_agents`` for the duration of one test."""
    root = tmp_path_factory.mktemp("site")
    write_dist(root, "suite_fake_agents", FAKE_ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.syspath_prepend(str(HERE))  # the module itself, also for spawned workers
    agent_registry.clear_cache()
    yield root
    agent_registry.clear_cache()


@pytest.fixture
def write_suite(tmp_path: Path):
    """``write_suite(body, name=...)`` → path of a suite TOML with the tiny Synthetic env settings."""

    def write(body: str, name: str = "t", env: str = TINY_ENV, filename: str = "suite.toml") -> Path:
        path = tmp_path / filename
        path.write_text(f'name = "{name}"\n' + textwrap.dedent(body).strip() + "\n\n" + env)
        return path

    return write
