"""aees_gym: neural-network training as a Gymnasium reinforcement-learning problem.

Importing the package registers ``aees_gym/<Task>-v0`` for every built-in task. It imports no
optional dependency (stable-baselines3, torchvision, transformers, datasets, matplotlib, ray).
"""

from aees_gym.core.config import ContextConfig, ControlConfig, RewardConfig
from aees_gym.core.context import CONTEXT_BUCKETS, FEATURES, PHASE_BUCKETS, TREND_BUCKETS, RunHistory
from aees_gym.core.control import EpisodeControl, WindowOutcome
from aees_gym.core.grid import Candidate, CandidateGrid, candidate_name
from aees_gym.core.reward import RewardTerms, compute_reward, register_reward, registered_rewards
from aees_gym.core.version import __version__
from aees_gym.envs.env import AEESEnv
from aees_gym.envs.episode import EpisodeTrace, run_episode
from aees_gym.envs.families import InstanceFamily, get_family, register_family, registered_families
from aees_gym.envs.instances import Instance, InstanceSet, get_instance_set, register_instance_set, registered_instance_sets
from aees_gym.envs.registration import env_id, register_all
from aees_gym.tasks import TaskSpec, TrainingRun, get_task, make_config, register_task, registered_tasks
from aees_gym.tasks.config import EnvConfig

register_all()

__all__ = [
    "AEESEnv",
    "CONTEXT_BUCKETS",
    "Candidate",
    "CandidateGrid",
    "ContextConfig",
    "ControlConfig",
    "EnvConfig",
    "EpisodeControl",
    "EpisodeTrace",
    "FEATURES",
    "Instance",
    "InstanceFamily",
    "InstanceSet",
    "PHASE_BUCKETS",
    "RewardConfig",
    "RewardTerms",
    "RunHistory",
    "TREND_BUCKETS",
    "TaskSpec",
    "TrainingRun",
    "WindowOutcome",
    "__version__",
    "candidate_name",
    "compute_reward",
    "env_id",
    "get_family",
    "get_instance_set",
    "get_task",
    "make_config",
    "register_all",
    "register_family",
    "register_instance_set",
    "register_reward",
    "register_task",
    "registered_families",
    "registered_instance_sets",
    "registered_rewards",
    "registered_tasks",
    "run_episode",
]
