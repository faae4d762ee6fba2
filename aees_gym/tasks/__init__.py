"""Task registry and built-in tasks. Importing this module registers the built-ins."""

from aees_gym.tasks import language as _language  # noqa: F401  (registers GPT2)
from aees_gym.tasks import mlp as _mlp  # noqa: F401  (registers MLP, the families' task)
from aees_gym.tasks import tabular as _tabular  # noqa: F401  (registers Digits*, Synthetic)
from aees_gym.tasks import text as _text  # noqa: F401
from aees_gym.tasks import vision as _vision  # noqa: F401
from aees_gym.tasks.base import (
    RunSeeds,
    TaskSpec,
    TrainingRun,
    get_task,
    make_config,
    on_register,
    register_task,
    registered_tasks,
)

__all__ = ["RunSeeds", "TaskSpec", "TrainingRun", "get_task", "make_config", "on_register", "register_task", "registered_tasks"]
