"""Agents for the aees_gym environments, found by name.

>>> from agents import make_agent
>>> agent = make_agent("ducb", structured="conditional")

Importing this package imports no agent implementation; each is loaded on first use. (The one
exception: an install whose entry points predate the ``learned`` agent registers it here at run
time, so ``make_agent("learned")`` works before ``pip install -e .`` is run again.)
"""

from aees_gym.suite import agent_registry as _registry
from agents.base import Agent, make_agent, register_agent, registered_agents

if "learned" not in _registry.agent_entry_points():
    from agents.learned import LearnedAgent as _LearnedAgent

    register_agent("learned", _LearnedAgent)

__all__ = ["Agent", "make_agent", "register_agent", "registered_agents"]
