"""AEESEnv: one Gymnasium step is one training window of a real PyTorch model."""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from aees_gym.core import checks
from aees_gym.core import context as ctx
from aees_gym.core.control import EpisodeControl
from aees_gym.core.threads import apply_torch_threads
from aees_gym.core.window import check_info_format, numeric_info
from aees_gym.envs.instances import Instance, resolve_env
from aees_gym.envs.metrics import final_metrics
from aees_gym.tasks import RunSeeds, TrainingRun, get_task
from aees_gym.tasks.base import seeded_torch
from aees_gym.tasks.config import EnvConfig


class UnsupportedRenderMode(ValueError, TypeError):
    """An env was asked for a render mode it does not have.

    Also a ``TypeError`` because SB3's ``make_vec_env`` asks string ids for ``render_mode="rgb_array"``
    and retries without it only on ``TypeError``; the env renders ``ansi`` text only.
    """


class AEESEnv(gym.Env):
    """Neural-network training as an RL problem: choose the (LR multiplier, gradient noise) of each window.

    ## Description
    A Gymnasium *episode* is one whole training run of a real PyTorch model on a real data set (the
    task). Each *step* runs one window of ``window_length`` optimizer steps with the candidate the
    agent picked: the base learning rate (after the task's schedule) is multiplied by the chosen
    multiplier for exactly those steps, and Gaussian noise of the chosen std is added to every
    gradient. This is the control problem of Adaptive Episodic Exploration Scheduling (AEES).

    ## Action Space
    ``Discrete(n_lr * n_noise)``: action ``a`` is the mode id ``lr_idx * n_noise + noise_idx`` of the
    candidate grid (default lr ×{0.5, 1, 2}, noise σ {0, 0.005, 0.01}: 9 actions). The grid is published
    in ``info["candidate_grid"]`` (a :class:`~aees_gym.core.grid.CandidateGrid`). With
    ``action_mode="relative"`` the chosen multiplier instead scales the LR *persistently*
    (cumulative, clamped to ``relative_lr_bounds``). ``step`` also accepts an exact
    :class:`~aees_gym.core.grid.Candidate` inside ``grid.ranges``; a grid with ``momenta`` adds a
    momentum axis (SGD momentum / Adam β1 for the window) and multiplies the mode ids by its size.

    ## Observation Space
    ``Box(float32)`` of the configured features (``env.unwrapped.feature_names``), by default:

    | Num | Feature          | Min  | Max | Meaning                                                    |
    |-----|------------------|------|-----|------------------------------------------------------------|
    | 0   | progress         | 0    | 1   | optimizer steps done / total                                |
    | 1   | trend            | -1   | 1   | relative slope of recent window-end losses                  |
    | 2-4 | trend one-hot    | 0    | 1   | improving / stable / worsening (reference rule, W=3, ε=1e-3)|
    | 5-7 | phase one-hot    | 0    | 1   | early / middle / late third of training                     |
    | 8   | last_reward      | clip_min | clip_max | reward of the previous window                      |
    | 9   | last_lr          | -1   | 1   | previous lr index / (n_lr-1); -1 before the first window    |
    | 10  | last_noise       | -1   | 1   | previous noise index / (n_noise-1); -1 before the first     |
    | 11  | loss_level       | -10  | 10  | ln(last window-end loss / first loss)                       |
    | 12  | instability      | 0    | 10  | ln(1 + instability of the previous window)                  |

    Optional: ``lr_scale``, ``grad_norm``, ``val_loss``, ``val_accuracy`` (see ``aees_gym.core.context.FEATURES``).

    ## Reward
    ``aees`` (default): ``clip(ln(EMA_start+ε) - ln(EMA_end+ε) - λ·instability, -1, 1)`` over the
    window's step losses, exactly as the AEES reference. ``info["reward_terms"]`` holds every term.

    ## Starting State
    ``reset(seed=s)`` builds a fresh model, optimizer and data order from ``s``; the observation is
    the empty-history context.

    ## Episode End
    ``terminated`` when the step budget is used (the last window may be shorter), or when a loss is
    non-finite or exceeds ``divergence_loss_ratio`` × the first loss: then ``info["diverged"]`` is True
    and the reward is ``reward.divergence_reward`` (default ``clip_min``). ``info["final_metrics"]``
    carries the final evaluation. There is no truncation.

    ## Arguments
    ``gymnasium.make("aees_gym/Digits-v0", **overrides)`` accepts any :class:`~aees_gym.core.config.EnvConfig`
    field (``total_steps``, ``window_length``, ``base_lr``, ``schedule``, ``grid``, ``reward``, …) and any
    field of the task's options dataclass.

    ## Version History
    * v0: initial release.
    """

    # render_fps only paces a viewer (Gymnasium's checkers and recorders expect it): a few windows a second.
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        task: str = "Digits",
        config: EnvConfig | None = None,
        render_mode: str | None = None,
        *,
        instance_set: str | None = None,
        split: str = "train",
        instance_descriptors: bool = False,
        torch_threads: int | None = None,
        info_format: str = "full",
        **overrides: Any,
    ) -> None:
        """Build the env; ``overrides`` are EnvConfig fields and task options.

        Args:
            task: Registered task name (the id's task).
            config: A full config to start from instead of the task's defaults.
            render_mode: ``None`` or ``"ansi"``.
            instance_set: Name of an instance set (:mod:`aees_gym.envs.instances`): every reset runs one
                of its instances, the next of a seeded shuffle of ``split`` or the one chosen with
                ``reset(options={"instance": index_or_name})``; ``overrides`` apply to every instance.
            split: ``train`` or ``test``.
            instance_descriptors: Append the run descriptors (normalised log base LR, label-noise
                rate, log budget) to the observation, for contextual agents.
            torch_threads: Torch threads for this process; ``None`` means one inside a worker process
                (async / subprocess vector envs) and unchanged otherwise (see :mod:`aees_gym.core.threads`).
            info_format: ``"full"`` (every info field) or ``"numeric"``: flat numbers only, the same keys at
                reset and every step (:data:`aees_gym.core.window.NUMERIC_INFO`), which TorchRL's
                ``GymEnv(id, num_envs=N)`` needs to read the info.
        """
        if render_mode not in (None, "ansi"):
            raise UnsupportedRenderMode(f"render_mode={render_mode!r} is not supported; choose None or 'ansi'.")
        self.info_format = check_info_format(info_format)
        self.torch_threads = apply_torch_threads(torch_threads)
        self.config, self.instances = resolve_env(
            task, config, overrides, instance_set=instance_set, split=split, descriptors=instance_descriptors
        )
        self.instance: Instance | None = None
        self.render_mode = render_mode
        self.grid = self.config.grid
        low, high = ctx.feature_bounds(self.config)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self.grid.size)
        self.feature_names = tuple(self.config.context.features)
        self._run: TrainingRun | None = None
        self._control: EpisodeControl | None = None
        self._last_info: dict[str, Any] = {}
        self._run_info: dict[str, Any] = {}  # the run's full reset info (its per-run fields)

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        seed = checks.seed("seed", seed)
        options = checks.mapping("reset options", options, fix="; with instance_set=NAME the option is 'instance' (index or name)") or None
        super().reset(seed=seed)
        rng = self.np_random
        if self.instances is not None:
            self.instance, self.config = self.instances.select(options, self.np_random, restart=seed is not None)
            rng = self.instance.rng()  # the run is the instance's: the same as reset(seed=instance.seed)
        elif options:
            raise ValueError(
                f"Unknown reset options {sorted(options)}; AEESEnv.reset accepts none unless the env was made "
                "with instance_set=NAME, which accepts options={'instance': index_or_name}."
            )
        self.run_seed = int(rng.integers(2**31 - 1))
        self.seeds = RunSeeds.derive(self.run_seed)
        spec = get_task(self.config.task)
        self._run = spec.build(self.config, self.seeds)
        if self._run.monitor is None and ctx.uses_validation(self.config):
            raise ValueError(
                f"The observation features {list(ctx.VALIDATION_FEATURES)} are measured on the reward-validation part, and "
                f"this {self.config.task} run keeps none (reward_fraction={self.config.reward_fraction}); set reward_fraction "
                "in (0, 1) or leave those features out."
            )
        self._control = EpisodeControl(
            self._run.optimizer,
            self.config,
            lr_scheduler=self._run.scheduler,
            scheduler_every=self._run.scheduler_every,
            seed=self.seeds.gradient_noise,
            evaluate=self._evaluate,
            reward_eval=self._run.reward_eval,
        )
        self._start_time = time.perf_counter()
        self._train_time = 0.0
        self._eval_time = 0.0
        self._score_curve: list[dict[str, float]] = []  # scoring-part evaluations: final metrics only
        obs, info = self._control.reset()
        info.update(run_seed=self.run_seed, flops_per_step=self._run.flops_per_step, steps_per_epoch=self._run.steps_per_epoch)
        if self.instance is not None:
            info["instance"] = self.instance.name
        self._last_info = self._run_info = info
        return obs, self._published(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        control, run = self._require_run()
        if control.done:
            raise RuntimeError("This training run has ended (terminated=True was returned); call reset() first.")
        control.begin_window(action)
        started, eval_before = time.perf_counter(), self._eval_time
        with seeded_torch(self.seeds.dropout + control.window_index, run.device):  # dropout stays reproducible
            outcome = None
            while outcome is None:
                outcome = control.step_end(run.train_step())
        self._train_time += time.perf_counter() - started - (self._eval_time - eval_before)
        info = outcome.info
        # The scoring part reaches info only once the run is over, as its score (like final_metrics,
        # only at the end: a key never None, since vector wrappers stack infos).
        if outcome.terminated:
            info["eval_curve"] = list(self._score_curve)
            info["final_metrics"] = final_metrics(
                self._score_curve, control.history, diverged=control.diverged,
                target_accuracy=self.config.target_accuracy, flops_per_step=run.flops_per_step,
                monitor=control.eval_curve[-1] if control.eval_curve else None,
            )
        self._last_info = info
        return outcome.observation, outcome.reward, outcome.terminated, False, self._published(info)

    def render(self) -> str | None:
        """In ``ansi`` mode, one line on the last window (or, right after ``reset``, the run about to start)."""
        if self.render_mode != "ansi" or not self._last_info:
            return None
        i = self._last_info
        if "action" not in i:
            return f"window {i['window_index']:>3} (none run yet)   steps {i['steps_done']}/{i['steps_total']} next {i['context_bucket']}"
        return (
            f"window {i['window_index']:>3} {i['candidate_name']:<14} steps {i['steps_done']}/{i['steps_total']} "
            f"loss {i['loss_first']:.4f}->{i['loss_last']:.4f} reward {i['reward_terms']['reward']:+.4f} "
            f"next {i['context_bucket']}"
        )

    # ------------------------------------------------------------------ helpers
    def _published(self, info: dict[str, Any]) -> dict[str, Any]:
        """``info`` in this env's ``info_format`` (render keeps reading the full one)."""
        return info if self.info_format == "full" else numeric_info(info, self._run_info)

    @property
    def control(self) -> EpisodeControl:
        return self._require_run()[0]

    @property
    def training_run(self) -> TrainingRun:
        return self._require_run()[1]

    def describe_features(self) -> list[dict[str, object]]:
        return ctx.describe_features(self.config)

    def _require_run(self) -> tuple[EpisodeControl, TrainingRun]:
        if self._control is None or self._run is None:
            raise RuntimeError("Call reset() before step().")
        return self._control, self._run

    def runtime_metrics(self) -> dict[str, Any]:
        """Timing of the current run (kept out of ``info``: same-seed infos must be identical)."""
        control, _ = self._require_run()
        steps = control.history.steps_done
        return {
            "wall_clock_s": time.perf_counter() - self._start_time,
            "train_time_s": self._train_time,
            "eval_time_s": self._eval_time,
            "optimizer_steps_per_s": steps / self._train_time if self._train_time > 0 else math.nan,
            "window_wall_times_s": list(control.history.wall_times),
        }

    def _evaluate(self, window_index: int, run_over: bool) -> dict[str, float] | None:
        """EpisodeControl's evaluation hook: every ``eval_every`` windows and at the end of the run.

        Evaluates the scoring part into the run's score curve (final metrics, kept from the agent
        until the run is over) and returns the reward-validation part's metrics, which are all the
        agent sees (``val_*`` features, ``info["eval"]``); ``None`` when the run keeps no such part.
        """
        every = self.config.eval_every
        if not run_over and not (every and (window_index + 1) % every == 0):
            return None
        started = time.perf_counter()
        control, run = self._require_run()
        self._score_curve.append({**run.evaluate(), "step": control.history.steps_done})
        metrics = run.monitor() if run.monitor is not None else None
        self._eval_time += time.perf_counter() - started
        return metrics
