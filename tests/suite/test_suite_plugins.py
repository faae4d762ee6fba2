"""Agents are found through the ``aees_gym.agents`` entry-point group, never by importing ``agents``."""

from __future__ import annotations

import subprocess
import sys

import pytest
from suite_helpers import write_dist

from aees_gym import plugins


def test_builtin_agents_are_declared_entry_points():
    names = plugins.agent_entry_points()
    assert {"random", "fixed", "ducb", "contextual"} <= set(names)
    assert plugins.load_agent_class("fixed").__name__ == "FixedAgent"
    assert plugins.agent_description(plugins.load_agent_class("ducb"))


def test_third_party_dist_is_found_after_clear_cache(tmp_path, monkeypatch):
    plugins.clear_cache()
    assert "late_agent" not in plugins.agent_entry_points()
    write_dist(tmp_path, "late_pkg", "[aees_gym.agents]\nlate_agent = suite_fake_agents:CrashAgent\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "late_agent" not in plugins.agent_entry_points(), "the cache must hold until clear_cache()"
    plugins.clear_cache()
    try:
        cls = plugins.load_agent_class("late_agent")
        assert cls.__name__ == "CrashAgent" and plugins.load_agent_class("late_agent") is cls
    finally:
        plugins.clear_cache()


def test_unknown_agent_error_lists_every_name(fake_agents):
    with pytest.raises(KeyError) as info:
        plugins.load_agent_class("no_such_agent")
    message = info.value.args[0]
    for name in ("random", "fixed", "ducb", "contextual", "crash", "tiny_learner"):
        assert name in message


def test_entry_point_that_is_not_a_class_is_rejected(fake_agents):
    with pytest.raises(TypeError, match="not_a_class"):
        plugins.load_agent_class("not_a_class")


def test_offline_learner_and_env_override_attributes(fake_agents):
    assert plugins.requires_training(plugins.load_agent_class("tiny_learner"))
    assert not plugins.requires_training(plugins.load_agent_class("fixed"))
    assert plugins.agent_env_overrides(plugins.load_agent_class("cosine_fixed")) == {"schedule": "cosine"}


def test_importing_the_package_imports_no_agent_and_no_optional_dependency():
    code = (
        "import sys, aees_gym, aees_gym.cli, aees_gym.suite, aees_gym.report, aees_gym.results, aees_gym.plots, aees_gym.plugins\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('agents', 'matplotlib', 'ray', 'stable_baselines3'))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
