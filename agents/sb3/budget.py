"""Train an SB3 algorithm for the number of env steps asked, or say why it trains more.

SB3 checks its budget only between rollouts: PPO and A2C collect whole rollouts of
``n_steps × n_envs`` steps and DQN whole ``train_freq`` chunks, so ``learn(128)`` on PPO's default
``n_steps=2048`` trains 2,048 steps without a word. Here:

* on-policy algorithms whose ``n_steps`` the user left unset get a rollout of exactly the budget when
  the budget is smaller than SB3's default rollout (and a mini-batch no larger than it); otherwise the
  budget is rounded up to whole rollouts with a :class:`TimestepsRounded` warning that says why;
* off-policy algorithms stop after the step that reaches the budget (:func:`with_stop_at_budget`); the
  transitions of a cut-short ``train_freq`` chunk stay in the replay buffer;
* with several envs every step counts ``n_envs`` steps, so a budget that is not a multiple of
  ``n_envs`` is rounded up, with the warning.

It also holds the one other callback ``SB3Agent.learn`` adds: :func:`with_progress_file`, which
lets a long background training be watched.
"""

from __future__ import annotations

import inspect
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PROGRESS_EVERY_S", "Budget", "callback_list", "check_algo_kwargs", "check_learn_arguments", "TimestepsRounded", "plan_budget", "progress_bar_default", "warn_if_rounded", "with_progress_file",
           "with_stop_at_budget"]

#: Seconds between two progress reports of one training (:func:`with_progress_file`).
PROGRESS_EVERY_S = 30.0


class TimestepsRounded(UserWarning):
    """SB3 will train more env steps than asked, because it trains in whole rollouts or env batches."""


@dataclass(frozen=True)
class Budget:
    """How a ``learn`` call meets its budget.

    Attributes:
        asked: Env steps asked for.
        total: Env steps that will be trained (``asked`` unless rounded).
        algo_kwargs: Constructor settings chosen here (``n_steps``/``batch_size``) for a new model.
        stop_callback: Whether to stop the algorithm after the step that reaches ``total``.
        reason: Why ``total`` differs from ``asked`` (``None`` when it does not).
    """

    asked: int
    total: int
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    stop_callback: bool = False
    reason: str | None = None


def _default(algorithm_class: type, name: str) -> Any:
    parameter = inspect.signature(algorithm_class.__init__).parameters.get(name)
    return None if parameter is None else parameter.default


def plan_budget(
    algorithm_class: type, asked: int, n_envs: int, algo_kwargs: dict[str, Any], model: Any | None = None
) -> Budget:
    """The plan that trains ``asked`` env steps (or the fewest more) with ``n_envs`` envs.

    Args:
        algorithm_class: The SB3 algorithm.
        asked: ``total_timesteps`` of the ``learn`` call (>= 1).
        n_envs: Parallel envs.
        algo_kwargs: The user's constructor settings (a set ``n_steps`` is kept).
        model: The existing model when training continues (its ``n_steps`` is fixed).

    Raises:
        ValueError: If ``asked`` < 1.
    """
    if asked < 1:
        raise ValueError(f"total_timesteps must be >= 1, got {asked}.")
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

    name = algorithm_class.__name__
    if not issubclass(algorithm_class, OnPolicyAlgorithm):  # off-policy: stop at the budget, in steps of n_envs
        total = math.ceil(asked / n_envs) * n_envs
        reason = None if total == asked else (
            f"{name} with {n_envs} envs trains in steps of {n_envs} env steps, so {total} are trained instead of the "
            f"{asked} asked; ask for a multiple of {n_envs}."
        )
        return Budget(asked, total, stop_callback=True, reason=reason)
    chosen: dict[str, Any] = {}
    if model is not None:
        n_steps = int(model.n_steps)
    elif "n_steps" in algo_kwargs:
        n_steps = int(algo_kwargs["n_steps"])
    else:
        n_steps = int(_default(algorithm_class, "n_steps"))
        per_env = math.ceil(asked / n_envs)
        if per_env < n_steps:  # one rollout of the budget instead of SB3's long default one
            # PPO normalises advantages over the rollout, which needs two samples at least.
            n_steps = chosen["n_steps"] = max(per_env, 1 if name == "A2C" or n_envs > 1 else 2)
            default_batch = _default(algorithm_class, "batch_size")
            if default_batch is not None and "batch_size" not in algo_kwargs and n_steps * n_envs < default_batch:
                chosen["batch_size"] = n_steps * n_envs
    rollout = n_steps * n_envs
    total = math.ceil(asked / rollout) * rollout
    reason = None if total == asked else (
        f"{name} updates on whole rollouts of n_steps × n_envs = {n_steps} × {n_envs} = {rollout} env steps, so "
        f"{total} are trained instead of the {asked} asked; ask for a multiple of {rollout} (or set n_steps to "
        "a divisor of the budget per env) to train exactly."
    )
    return Budget(asked, total, algo_kwargs=chosen, reason=reason)


def warn_if_rounded(budget: Budget, stacklevel: int = 3) -> None:
    """Print the budget's rounding warning, if it rounds; ``stacklevel`` counts from this function."""
    if budget.reason is not None:
        warnings.warn(budget.reason, TimestepsRounded, stacklevel=stacklevel)


def callback_list(callback: Any) -> list[Any]:
    """``learn``'s ``callback`` argument (None, a callable, a callback or a list of them) as a list of SB3 callbacks."""
    from stable_baselines3.common.callbacks import BaseCallback, ConvertCallback

    items = list(callback) if isinstance(callback, list) else ([] if callback is None else [callback])
    return [c if isinstance(c, BaseCallback) else ConvertCallback(c) for c in items]


def with_stop_at_budget(callback: Any) -> list[Any]:
    """The user's SB3 callback(s) plus one that ends ``learn`` on the step that reaches SB3's target.

    SB3 sets ``_total_timesteps`` to the budget (plus the steps done before when
    ``reset_num_timesteps=False``), so the stop honours both.
    """
    from stable_baselines3.common.callbacks import BaseCallback

    class StopAtBudget(BaseCallback):
        def _on_step(self) -> bool:
            return self.model.num_timesteps < self.model._total_timesteps

    return [*callback_list(callback), StopAtBudget()]


def with_progress_file(callback: Any, path: str | Path, every_s: float | None = None,
                       checkpointed: Callable[[], int | None] | None = None) -> list[Any]:
    """The user's SB3 callback(s) plus one that writes the training's progress to ``path`` as JSON.

    Written atomically at the start, every ``every_s`` seconds (default :data:`PROGRESS_EVERY_S`,
    read at the call) and at the end:
    ``{"windows_trained", "total_timesteps", "started_utc", "updated_utc"}``, so a long training
    run in the background can be watched (the leaderboard's table reads it). With ``checkpointed``
    (the window of the checkpoint on disk, or ``None``) the report also says ``checkpoint_windows``:
    where a restart after a kill would resume.
    """
    from stable_baselines3.common.callbacks import BaseCallback

    from aees_gym.core.fileio import atomic_write_json
    from aees_gym.core.hostinfo import utc_now

    every_s = PROGRESS_EVERY_S if every_s is None else every_s

    class ProgressFile(BaseCallback):
        def _write(self) -> None:
            self._last = time.monotonic()
            report = {
                "windows_trained": int(self.model.num_timesteps), "total_timesteps": int(self.model._total_timesteps),
                "started_utc": self._started, "updated_utc": utc_now(),
            }
            saved_at = checkpointed() if checkpointed is not None else None
            if saved_at is not None:
                report["checkpoint_windows"] = int(saved_at)
            atomic_write_json(path, report)

        def _on_training_start(self) -> None:
            self._started = utc_now()
            self._write()

        def _on_step(self) -> bool:
            if time.monotonic() - self._last >= every_s:
                self._write()
            return True

        def _on_training_end(self) -> None:
            self._write()

    return [*callback_list(callback), ProgressFile()]


def progress_bar_default() -> bool:
    """Show SB3's progress bar when stderr is a terminal and tqdm and rich are installed."""
    import importlib.util

    tty = getattr(sys.stderr, "isatty", lambda: False)()
    return bool(tty) and all(importlib.util.find_spec(m) is not None for m in ("tqdm", "rich"))


def check_learn_arguments(total_timesteps: Any, n_envs: Any, seed: Any, env_kwargs: Any) -> tuple[int, int, int, dict[str, Any]]:
    """The arguments of a learner's ``learn``, checked where they enter (a budget of 0 is an error, not a no-op).

    Raises:
        TypeError: If a count or the seed is not an integer, or ``env_kwargs`` is not a dict.
        ValueError: If ``total_timesteps`` or ``n_envs`` is below 1, or ``seed`` below 0.
    """
    from aees_gym.core import checks

    return (checks.positive_int("total_timesteps", total_timesteps), checks.positive_int("n_envs", n_envs),
            checks.non_negative_int("seed", seed), checks.mapping("env_kwargs", env_kwargs))


#: Integer settings of SB3 algorithms that size buffers or batches: checked when the agent is made.
_INT_SETTINGS = ("n_steps", "batch_size", "n_epochs", "buffer_size", "learning_starts", "gradient_steps", "target_update_interval")
#: Float settings that must be finite numbers (SB3 would otherwise fail or train on NaN much later).
_FLOAT_SETTINGS = ("learning_rate", "gamma", "gae_lambda", "ent_coef", "vf_coef", "tau",
                   "exploration_fraction", "exploration_initial_eps", "exploration_final_eps")


def check_algo_kwargs(algo_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``algo_kwargs`` with its common SB3 sizes and rates type-checked (a number as a string is refused).

    A learning rate or ``ent_coef`` may also be a schedule (a callable) or SB3's ``"auto"`` string, which pass as they are.
    """
    from aees_gym.core import checks

    for name in _INT_SETTINGS:
        if name in algo_kwargs and not (name == "gradient_steps" and algo_kwargs[name] == -1):
            algo_kwargs[name] = checks.positive_int(f"algo_kwargs[{name!r}]", algo_kwargs[name])
    for name in _FLOAT_SETTINGS:
        value = algo_kwargs.get(name)
        if name in algo_kwargs and not callable(value) and not (isinstance(value, str) and value.startswith("auto")):
            algo_kwargs[name] = checks.real(f"algo_kwargs[{name!r}]", value)
    return algo_kwargs
