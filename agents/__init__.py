"""Agents for the aees_gym environments, found by name.

>>> from agents import make_agent
>>> agent = make_agent("ducb", structured="conditional")

Importing this package imports no agent implementation; each is loaded on first use.
"""

from agents.base import Agent, make_agent, register_agent, registered_agents

__all__ = ["Agent", "make_agent", "register_agent", "registered_agents"]
