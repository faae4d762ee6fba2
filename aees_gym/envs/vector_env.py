"""AEESVectorEnv: N training runs of one architecture stepped as one batched computation.

``gymnasium.make_vec("aees_gym/Digits-v0", num_envs=64, vectorization_mode="vector_entry_point")``
builds it for every task the batched engine can train (:mod:`aees_gym.tasks.batched`); other tasks
fail with an error naming ``vectorization_mode="async"``. Sub-env ``i`` follows exactly the
semantics of :class:`~aees_gym.envs.env.AEESEnv`:

* ``reset(seed=s)`` resets sub-env ``i`` with seed ``s + i`` (a list gives one seed per sub-env)
  and replays the run a single env reset with that seed trains (same weights, data order, label
  noise, dropout and gradient noise); unseeded resets continue the sub-env's own generator.
* One ``step`` runs one window of every live run at once; the window's step losses of all runs
  (and the held-out losses the ``heldout`` reward needs) reach the host in one transfer. Scoring,
  divergence and infos are :mod:`aees_gym.core.window`'s, so a sub-env's info has the single env's fields.
* Runs end and restart independently: next-step autoreset by default (Gymnasium's), or
  ``autoreset_mode=AutoresetMode.SAME_STEP`` / ``DISABLED`` as a keyword of ``make_vec``. A run
  that diverges ends alone; no operation of the engine mixes runs.
* With ``instance_set=NAME`` each sub-env cycles through the set's instances like a single env
  would; the set's runs must share one architecture (task, options, batch size, optimizer).

The row bookkeeping this env shares with :mod:`aees_gym.envs.family_vector` (reset masks, seed lists,
folding per-row results into batched returns) lives in :mod:`aees_gym.envs.vector_rows`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from aees_gym.core import checks
from aees_gym.core import context as ctx
from aees_gym.core.config import ControlConfig
from aees_gym.core.grid import Candidate
from aees_gym.core.reward import WindowSignals, reward_uses_heldout
from aees_gym.core.threads import apply_torch_threads
from aees_gym.core.window import (
    check_info_format,
    numeric_info,
    plan_window,
    record_evaluation,
    record_window,
    start_info,
    window_info,
)
from aees_gym.envs.instances import Instance, InstanceCycle, resolve_env
from aees_gym.envs.metrics import final_metrics
from aees_gym.envs.vector_rows import (  # noqa: F401 (re-exported: their home before the split)
    _masked_rows,
    _merge_step,
    _seed_list,
    _store_resets,
    _with_column,
    _with_grad_norm_column,
)
from aees_gym.tasks import RunSeeds
from aees_gym.tasks.batched import SHARED_FIELDS, BatchedClassificationRuns, batched_runs, batched_task
from aees_gym.tasks.config import EnvConfig

#: ``(observation, reward, terminated, info)`` of one sub-env after one window.
RowStep = tuple[np.ndarray, float, bool, dict[str, Any]]


@dataclass
class _Row:
    """One sub-env's run: its config, history, evaluation curve and own seed generator."""

    np_random: np.random.Generator | None = None
    cycle: InstanceCycle | None = None
    instance: Instance | None = None
    config: EnvConfig | None = None
    control: ControlConfig | None = None
    history: ctx.RunHistory | None = None
    eval_curve: list[dict[str, float]] = field(default_factory=list)  # scoring part: final metrics only
    monitor_curve: list[dict[str, float]] = field(default_factory=list)  # reward-validation part: what the agent sees
    diverged: bool = False
    run_seed: int = 0
    run_info: dict[str, Any] = field(default_factory=dict)  # the run's full reset info

    @property
    def done(self) -> bool:
        return self.history is not None and (self.diverged or self.history.steps_done >= self.config.total_steps)


#: Controls cached per config object; a family's endless stream of configs only ever keeps this many.
_MAX_CACHED_CONTROLS = 1024

def _check_batchable(task: str, configs: Sequence[EnvConfig], where: str) -> None:
    batched_task(task)  # names vectorization_mode="async" for tasks without a batched recipe
    first = configs[0]
    for c in configs[1:]:
        batched_task(c.task)
        for name in SHARED_FIELDS:
            if getattr(c, name) != getattr(first, name):
                raise ValueError(
                    f"{where} mixes runs that differ in {name} ({getattr(first, name)!r} vs {getattr(c, name)!r}); one batched env "
                    f"trains one architecture (shared {', '.join(SHARED_FIELDS)}). Use an instance set of one architecture, or "
                    'gymnasium.make_vec(..., vectorization_mode="async") for mixed runs.'
                )


class AEESVectorEnv(VectorEnv):
    """``num_envs`` AEES training runs of one task trained together (see the module docstring).

    Args:
        task: Registered, batchable task name.
        num_envs: Number of sub-envs (runs trained at once), at least 1.
        config: A full config to start from instead of the task's defaults.
        instance_set: Name of an instance set of one architecture; each sub-env cycles through it.
        split: ``train`` or ``test`` split of the instance set.
        instance_descriptors: Append the run descriptors to the observation.
        torch_threads: Torch threads for this process (``None``: unchanged in the main process).
        autoreset_mode: ``AutoresetMode.NEXT_STEP`` (default), ``SAME_STEP`` or ``DISABLED``.
        info_format: ``"full"`` or ``"numeric"`` (flat numbers only, as for :class:`~aees_gym.envs.env.AEESEnv`).
        **overrides: EnvConfig fields and task options, as for ``gymnasium.make`` (``device`` included).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        task: str = "Digits",
        num_envs: int = 1,
        config: EnvConfig | None = None,
        *,
        instance_set: str | None = None,
        split: str = "train",
        instance_descriptors: bool = False,
        torch_threads: int | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
        info_format: str = "full",
        **overrides: Any,
    ) -> None:
        self.info_format = check_info_format(info_format)
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer (one sub-env per training run), got {num_envs!r}.")
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r} is not supported by the batched env; use None.")
        try:
            self.autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError:
            raise ValueError(f"autoreset_mode={autoreset_mode!r} is not valid; choose one of {[m.value for m in AutoresetMode]}.") from None
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.torch_threads = apply_torch_threads(torch_threads)
        self.config, cycle = resolve_env(task, config, overrides, instance_set=instance_set, split=split, descriptors=instance_descriptors)
        configs = list(cycle.configs) if cycle is not None else [self.config]
        _check_batchable(task, configs, f"instance set {instance_set!r}" if instance_set else f"task {task!r}")
        self.num_envs = int(num_envs)
        if self.config.reward_fraction == 0 and ctx.uses_validation(self.config):
            raise ValueError(
                f"The observation features {list(ctx.VALIDATION_FEATURES)} are measured on the reward-validation part, and "
                "reward_fraction=0 keeps none; set reward_fraction in (0, 1) or leave those features out."
            )
        self.runs: BatchedClassificationRuns = batched_runs(self.config, self.num_envs, track_grad_norms=ctx.uses_grad_norm(self.config))
        if not self.runs.has_monitor and ctx.uses_validation(self.config):  # as the single env refuses it (GPT2)
            raise ValueError(
                f"The observation features {list(ctx.VALIDATION_FEATURES)} are measured on the reward-validation part, and "
                f"this {self.config.task} run keeps none; leave those features out."
            )
        self.grid = self.config.grid
        self.feature_names = tuple(self.config.context.features)
        low, high = ctx.feature_bounds(self.config)
        self.single_observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.single_action_space = gym.spaces.Discrete(self.grid.size)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._rows = [_Row(cycle=None if cycle is None else cycle.copy()) for _ in range(self.num_envs)]
        self._controls: dict[int, tuple[EnvConfig, ControlConfig]] = {}
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._obs = np.zeros(self.observation_space.shape, dtype=np.float32)
        #: Seconds spent in windows (training and evaluation) and in evaluations, over all runs together.
        self.train_time_s = 0.0
        self.eval_time_s = 0.0

    # ------------------------------------------------------------------ per-row API
    def row_done(self, row: int) -> bool:
        """Whether sub-env ``row``'s run has ended (budget used or diverged)."""
        return self._rows[row].done

    def row_config(self, row: int) -> EnvConfig:
        config = self._rows[row].config
        if config is None:
            raise RuntimeError(f"Sub-env {row} has not been reset yet; call reset() first.")
        return config

    def reset_rows(self, rows: Sequence[int], seeds: Sequence[int | None], options: Mapping[str, Any] | None = None) -> list[tuple[np.ndarray, dict[str, Any]]]:
        """Start a new run in each of ``rows`` (like ``AEESEnv.reset(seed=...)`` on each), returning (obs, info) per row."""
        picked = []
        for row, seed in zip(rows, seeds, strict=True):
            r = self._rows[row]
            if seed is not None or r.np_random is None:
                r.np_random = seeding.np_random(None if seed is None else int(seed))[0]
            rng = r.np_random
            if r.cycle is not None:
                r.instance, r.config = r.cycle.select(options, r.np_random, restart=seed is not None)
                rng = r.instance.rng()
            elif options:
                raise ValueError(f"Unknown reset options {sorted(options)}; only 'reset_mask' (and 'instance' with instance_set=NAME).")
            else:
                r.config = self.config
            r.run_seed = int(rng.integers(2**31 - 1))
            picked.append((row, r.config, RunSeeds.derive(r.run_seed)))
        if picked:
            self.runs.reset_runs([p[0] for p in picked], [p[1] for p in picked], [p[2] for p in picked])
        out = []
        for row, config, _ in picked:
            r = self._rows[row]
            r.control = self._control(config)
            r.history, r.eval_curve, r.monitor_curve, r.diverged = ctx.RunHistory(total_steps=config.total_steps), [], [], False
            info = start_info(r.history, r.control)
            info.update(run_seed=r.run_seed, flops_per_step=self.runs.flops_per_step, steps_per_epoch=self.runs.steps_per_epoch)
            if r.instance is not None:
                info["instance"] = r.instance.name
            r.run_info = info
            out.append((ctx.observation(r.history, r.control), self._published(info, r)))
        return out

    def _published(self, info: dict[str, Any], row: _Row) -> dict[str, Any]:
        """A row's ``info`` in this env's ``info_format``."""
        return info if self.info_format == "full" else numeric_info(info, row.run_info)

    def step_rows(self, actions: Mapping[int, Any]) -> dict[int, RowStep]:
        """Run one window of each run in ``actions`` (row → action) together; other rows stay untouched."""
        plans = {}
        for row, action in actions.items():
            r = self._rows[row]
            if r.history is None:
                raise RuntimeError(f"Sub-env {row} has not been reset yet; call reset() first.")
            if r.done:
                raise RuntimeError(f"Sub-env {row}'s run has ended; reset it before stepping it again.")
            try:
                plan = plan_window(r.history, r.control, action)
            except (ValueError, TypeError) as exc:
                raise type(exc)(f"sub-env {row}: {exc}") from None
            steps = min(r.control.window_length, r.control.total_steps - r.history.steps_done)
            plans[row] = (plan, steps)
        if not plans:
            return {}
        n = self.num_envs
        started = time.perf_counter()
        heldout = {row for row in plans if _measures_heldout(self._rows[row].control)}
        losses = self.runs.run_window(
            [plans[i][0].lr_multiplier if i in plans else 1.0 for i in range(n)],
            [plans[i][0].candidate.noise_std if i in plans else 0.0 for i in range(n)],
            [plans[i][1] if i in plans else 0 for i in range(n)],
            heldout=bool(heldout),
            momenta=[plans[i][0].candidate.momentum if i in plans else None for i in range(n)],
        )
        if self.runs.grad_norms is not None:
            losses = _with_grad_norm_column(losses, self.runs.grad_norms)
        frozen = self.runs.frozen_fractions if self.runs.freezer.active else None
        if frozen is not None:  # each run's frozen share crosses in the same transfer, as the last column
            losses = _with_column(losses, frozen)
        host = losses.tolist()  # the one host transfer of the window (held-out losses included), for every run
        wall = time.perf_counter() - started
        first = 2 if heldout else 0  # run_window puts the held-out columns first
        scored = {}
        for row, (plan, k) in plans.items():
            r = self._rows[row]
            row_losses = host[row][first : first + k]
            signals = WindowSignals(host[row][0], host[row][1]) if row in heldout else None
            grad_norm = host[row][-1 - (frozen is not None)] if self.runs.grad_norms is not None else None
            lr_idx, noise_idx, momentum_idx = r.control.grid.indices(plan.action_id)
            r.history.steps_done += k  # EpisodeControl counts the steps before it closes the window
            score = record_window(
                r.history, row_losses, r.control, lr_index=lr_idx, noise_index=noise_idx, grad_norm=grad_norm, wall_time=wall,
                positions=r.control.grid.positions(plan.candidate) if plan.exact else None, signals=signals,
                momentum_index=momentum_idx,
            )
            r.diverged = score.diverged
            scored[row] = (score, row_losses, grad_norm, host[row][-1] if frozen is not None else 0.0)
        evaluations = self._evaluate([row for row in plans if self._wants_eval(row)])
        out = {}
        for row, (score, row_losses, grad_norm, frozen_fraction) in scored.items():
            r, (plan, k) = self._rows[row], plans[row]
            evaluation = evaluations.get(row)
            if evaluation is not None:
                score_part, evaluation = evaluation
                r.eval_curve.append({**score_part, "step": r.history.steps_done})
                evaluation = evaluation or None  # an engine without a reward part shows the agent nothing
                if evaluation is not None:
                    record_evaluation(r.history, r.monitor_curve, evaluation)
            effective = self.runs.base_lr(row, r.history.steps_done) * plan.lr_multiplier
            info = window_info(
                r.history, r.control, score, row_losses, action=plan.action_id, lr_multiplier=plan.lr_multiplier,
                noise_std=plan.candidate.noise_std, effective_lr=effective, grad_norm=grad_norm,
                candidate_name=plan.candidate.label if plan.exact else None, momentum=plan.candidate.momentum,
                frozen_fraction=frozen_fraction,
            )
            done = r.done
            if evaluation is not None and not done:
                info["eval"] = r.monitor_curve[-1]
            if done:  # the scoring part, once the run is over (like final_metrics; a key never None)
                info["eval_curve"] = list(r.eval_curve)
                info["final_metrics"] = final_metrics(
                    r.eval_curve, r.history, diverged=r.diverged, target_accuracy=r.config.target_accuracy,
                    flops_per_step=self.runs.flops_per_step, monitor=r.monitor_curve[-1] if r.monitor_curve else None,
                )
            out[row] = (ctx.observation(r.history, r.control), score.reward, done, self._published(info, r))
        self.train_time_s += time.perf_counter() - started
        return out

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env (or those of ``options["reset_mask"]``); sub-env ``i`` gets seed ``seed + i``."""
        seeds = _seed_list(seed, self.num_envs)
        options = checks.mapping("reset options", options, fix="; the options are 'reset_mask' and, with instance_set=NAME, 'instance'")
        mask = options.pop("reset_mask", None)
        unknown = sorted(set(options) - ({"instance"} if any(r.cycle is not None for r in self._rows) else set()))
        if unknown:  # before any sub-env changes
            raise ValueError(f"Unknown reset options {unknown}; only 'reset_mask' (and 'instance' with instance_set=NAME).")
        rows = _masked_rows(mask, self.num_envs)
        return _store_resets(self, zip(rows, self.reset_rows(rows, [seeds[i] for i in rows], options or None), strict=True), rows)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = self._check_actions(actions)
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        infos: dict[str, Any] = {}
        restart = [i for i in range(self.num_envs) if self._autoreset[i]]
        if restart and self.autoreset_mode == AutoresetMode.DISABLED:
            raise RuntimeError(f"Sub-envs {restart} have ended; with autoreset_mode=DISABLED reset them with options={{'reset_mask': ...}}.")
        reset_infos = dict(zip(restart, self.reset_rows(restart, [None] * len(restart)), strict=True))
        results = self.step_rows({i: actions[i] for i in range(self.num_envs) if i not in reset_infos})
        ended = [i for i, res in results.items() if res[2]]
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            for i in ended:
                infos = self._add_info(infos, {"final_obs": results[i][0], "final_info": results[i][3]}, i)
            reset_infos.update(zip(ended, self.reset_rows(ended, [None] * len(ended)), strict=True))
        infos = _merge_step(self, results, reset_infos, rewards, terminated, infos)
        self._autoreset = terminated.copy() if self.autoreset_mode != AutoresetMode.SAME_STEP else np.zeros(self.num_envs, dtype=bool)
        return self._obs.copy(), rewards, terminated, np.zeros(self.num_envs, dtype=bool), infos

    def close_extras(self, **kwargs: Any) -> None:
        self.runs = None  # type: ignore[assignment]  # frees the stacked parameters and data

    # ------------------------------------------------------------------ helpers
    def _check_actions(self, actions: Any) -> Any:
        if isinstance(actions, list) and any(isinstance(a, Candidate) for a in actions):
            # Exact candidates (Box views, aees_gym.envs.tracks); plan_window checks each against the grid.
            if len(actions) != self.num_envs:
                raise ValueError(f"actions must hold one action per sub-env ({self.num_envs}), got {len(actions)}.")
            return actions
        array = np.asarray(actions)
        if array.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},) (one action per sub-env), got shape {array.shape}.")
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"actions must be integers in [0, {self.grid.size}), got dtype {array.dtype}.")
        bad = np.flatnonzero((array < 0) | (array >= self.grid.size))
        if bad.size:
            raise ValueError(f"actions of sub-envs {bad.tolist()} are {array[bad].tolist()}; each must be in [0, {self.grid.size}).")
        return array

    def _control(self, config: EnvConfig) -> ControlConfig:
        # Keyed by identity, so the entry keeps its config alive and is checked against it: a family draws a
        # new config at every reset, and a freed config's id can come back for another one with another budget.
        cached = self._controls.get(id(config))
        if cached is None or cached[0] is not config:
            if len(self._controls) >= _MAX_CACHED_CONTROLS:
                self._controls.clear()
            cached = self._controls[id(config)] = (config, ControlConfig.of(config))
        return cached[1]

    def _wants_eval(self, row: int) -> bool:
        """``AEESEnv``'s cadence: every ``eval_every`` windows and at the end of the run."""
        r = self._rows[row]
        every = r.config.eval_every
        return r.done or bool(every and len(r.history.rewards) % every == 0)

    def _evaluate(self, rows: list[int]) -> dict[int, tuple[dict[str, float], dict[str, float]]]:
        """Each row's (scoring-part metrics, reward-validation-part metrics); only the latter reach the agent mid-run."""
        if not rows:
            return {}
        started = time.perf_counter()
        metrics = zip(self.runs.evaluate(rows), self.runs.monitor(rows), strict=True)
        self.eval_time_s += time.perf_counter() - started
        return dict(zip(rows, metrics, strict=True))


def _measures_heldout(control: ControlConfig) -> bool:
    """The reward-validation loss is measured for the ``heldout`` reward and for the ``heldout_*`` features."""
    return reward_uses_heldout(control.reward.name) or ctx.uses_heldout(control)



def make_vector_env(num_envs: int = 1, **kwargs: Any) -> AEESVectorEnv:
    """One batched env of one architecture (the ids' vector entry point, :func:`aees_gym.envs.family_vector.make_vector_env`, adds families)."""
    return AEESVectorEnv(num_envs=num_envs, **kwargs)
