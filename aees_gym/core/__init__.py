"""Core mechanics: candidate grid, reward, context, EpisodeControl, their configs, file I/O, threads.

Knows nothing of tasks, envs, suites or agents: users drive :class:`~aees_gym.core.control.EpisodeControl`
from their own training loops.
"""
