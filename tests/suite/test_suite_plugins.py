"""Agents are found through the ``aees_gym.agents`` entry-point group, never by importing ``agents``."""

from __future__ import annotations

import subprocess
import sys

import pytest
from suite_helpers import write_dist

from aees_gym.suite import agent_registry


def test_builtin_agents_are_declared_entry_points():
    names = agent_registry.agent_entry_points()
    assert {"random", "fixed", "ducb", "contextual"} <= set(names)
    assert agent_registry.load_agent_class("fixed").__name__ == "FixedAgent"
    assert agent_registry.agent_description(agent_registry.load_agent_class("ducb"))


def test_third_party_dist_is_found_after_clear_cache(tmp_path, monkeypatch):
    agent_registry.clear_cache()
    assert "late_agent" not in agent_registry.agent_entry_points()
    write_dist(tmp_path, "late_pkg", "[aees_gym.agents]\nlate_agent = suite_fake_agents:CrashAgent\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "late_agent" not in agent_registry.agent_entry_points(), "the cache must hold until clear_cache()"
    agent_registry.clear_cache()
    try:
        cls = agent_registry.load_agent_class("late_agent")
        assert cls.__name__ == "CrashAgent" and agent_registry.load_agent_class("late_agent") is cls
    finally:
        agent_registry.clear_cache()


def test_unknown_agent_error_lists_every_name(fake_agents):
    with pytest.raises(KeyError) as info:
        agent_registry.load_agent_class("no_such_agent")
    message = info.value.args[0]
    for name in ("random", "fixed", "ducb", "contextual", "crash", "tiny_learner"):
        assert name in message


def test_entry_point_that_is_not_a_class_is_rejected(fake_agents):
    with pytest.raises(TypeError, match="not_a_class"):
        agent_registry.load_agent_class("not_a_class")


def test_offline_learner_and_env_override_attributes(fake_agents):
    assert agent_registry.requires_training(agent_registry.load_agent_class("tiny_learner"))
    assert not agent_registry.requires_training(agent_registry.load_agent_class("fixed"))
    assert agent_registry.agent_env_overrides(agent_registry.load_agent_class("cosine_fixed")) == {"schedule": "cosine"}


def test_importing_the_package_imports_no_agent_and_no_optional_dependency():
    code = (
        "import sys, aees_gym, aees_gym.cli, aees_gym.suite, aees_gym.reporting.report, aees_gym.suite.results, aees_gym.reporting.plots, aees_gym.suite.agent_registry\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('agents', 'matplotlib', 'ray', 'stable_baselines3'))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
