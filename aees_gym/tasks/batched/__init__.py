"""Batched training engine: N independent runs of one task's network trained as one stacked computation.

* :class:`BatchedClassificationRuns` (:mod:`.run`): reset rows, run one window for all rows, evaluate rows;
  :class:`BatchedLanguageRuns` (:mod:`.lm_runs`) the same for ``GPT2-v0``; :func:`batched_runs` picks one.
* Rows per task: :mod:`.registry` (images, tabular), :mod:`.text_nets` (the text tasks' LSTM), :mod:`.lm_runs` (GPT-2).
* :class:`BatchedOptimizer` (:mod:`.optim`): AdamW / Adam / SGD with per-run LR, momentum and weight decay.
* :func:`batched_task` / :func:`register_batched_task` (:mod:`.registry`): which tasks can be batched.

Row ``i`` reset with seed ``s`` reproduces the single env reset with seed ``s``: same initial
weights, data order, label noise, dropout and gradient-noise streams.
"""

from aees_gym.tasks.batched.lm_runs import BatchedLanguageRuns, register_gpt2_rows
from aees_gym.tasks.batched.optim import BatchedOptimizer
from aees_gym.tasks.batched.registry import BatchedTaskSpec, batchable_tasks, batched_task, register_batched_task
from aees_gym.tasks.batched.run import SHARED_FIELDS, BatchedClassificationRuns, batched_runs, batching_problem
from aees_gym.tasks.batched.text_nets import register_text_rows

register_text_rows()
register_gpt2_rows()

__all__ = [
    "SHARED_FIELDS",
    "BatchedClassificationRuns",
    "BatchedLanguageRuns",
    "BatchedOptimizer",
    "BatchedTaskSpec",
    "batchable_tasks",
    "batched_runs",
    "batched_task",
    "batching_problem",
    "register_batched_task",
]
