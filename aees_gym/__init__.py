"""aees_gym: neural-network training as a Gymnasium reinforcement-learning problem.

Importing the package registers ``aees_gym/<Task>-v0`` for every built-in task. It imports no
optional dependency (stable-baselines3, torchvision, transformers, datasets, matplotlib, ray).
"""

from aees_gym.config import ContextConfig, EnvConfig, RewardConfig
from aees_gym.context import CONTEXT_BUCKETS, FEATURES, PHASE_BUCKETS, TREND_BUCKETS, RunHistory
from aees_gym.control import EpisodeControl, WindowOutcome
from aees_gym.env import AEESEnv, make_config
from aees_gym.grid import CandidateGrid, candidate_name
from aees_gym.instances import Instance, InstanceSet, get_instance_set, register_instance_set, registered_instance_sets
from aees_gym.registration import env_id, register_all
from aees_gym.reward import RewardTerms, compute_reward, register_reward, registered_rewards
from aees_gym.tasks import TaskSpec, TrainingRun, get_task, register_task, registered_tasks

__version__ = "0.1.0"

register_all()

__all__ = [
    "AEESEnv",
    "CONTEXT_BUCKETS",
    "CandidateGrid",
    "ContextConfig",
    "EnvConfig",
    "EpisodeControl",
    "FEATURES",
    "Instance",
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
    "get_instance_set",
    "get_task",
    "make_config",
    "register_all",
    "register_instance_set",
    "register_reward",
    "register_task",
    "registered_instance_sets",
    "registered_rewards",
    "registered_tasks",
]
