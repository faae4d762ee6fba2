"""BatchedClassificationRuns: N independent training runs of one network as one stacked computation.

Row ``i`` reset with run seed ``s`` is the run that :class:`~aees_gym.envs.env.AEESEnv` trains after
``reset`` drew ``s``: the same initial weights (the task's module built under the model seed, then
stacked), data order, label noise, dropout masks and gradient noise. Rows differ in base LR,
weight decay, momentum, label noise, schedule, budget and seed; they share the task, its options
(so the data and architecture), the batch size, the optimizer kind and the device.

One :meth:`~BatchedClassificationRuns.run_window` call trains every row for its own number of
steps under its own LR multiplier and noise std, reads nothing back to the host and returns the
step losses ``[N, W]`` on the device — one vector-env step. With ``heldout=True`` (the ``heldout``
reward) two columns come first: each row's loss on the reward-validation part when the window
opened and when it closed, so they cross to the host with the losses. Rows restart independently with
:meth:`~BatchedClassificationRuns.reset_runs` (autoreset), and
:meth:`~BatchedClassificationRuns.evaluate` gives each row the single run's ``evaluate()`` metrics::

    runs = BatchedClassificationRuns(make_config("Digits"), n_runs=64)
    runs.reset_runs(range(64), [runs.config] * 64, seeds=range(64))
    losses = runs.run_window(lr_multipliers=[1.0] * 64, noise_stds=[0.0] * 64, steps=[50] * 64)
    losses.cpu()  # the one host transfer of the window, done by the caller
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from aees_gym.core.reward import reward_uses_heldout
from aees_gym.tasks.base import RunSeeds, estimate_forward_flops, resolve_device, schedule_factor, seeded_torch
from aees_gym.tasks.batched.cuda_graph import WindowGraphs
from aees_gym.tasks.batched.evaluation import RowEvaluation
from aees_gym.tasks.batched.freezing import RowFreezer
from aees_gym.tasks.batched.nets import RowDropout, scratch
from aees_gym.tasks.batched.optim import OPTIMIZER_KINDS, BatchedOptimizer
from aees_gym.tasks.batched.registry import batched_task
from aees_gym.tasks.batched.streams import RowBatches, RowGradientNoise
from aees_gym.tasks.batched.window_axes import Axes, begin_axes, end_axes, window_momenta
from aees_gym.tasks.batched.window_plan import host_plan, send, unpack
from aees_gym.tasks.classification import corrupt_labels, split_validation
from aees_gym.tasks.config import EnvConfig

#: Fields every row's config must share with the engine's: they fix the data, the network and the step.
SHARED_FIELDS = ("task", "options", "batch_size", "optimizer", "device", "reward_fraction")
_ADAM_BETA1 = 0.9  # torch.optim.Adam/AdamW default, what the single run uses


_SEPARATE = 'or run such runs as separate envs, e.g. gymnasium.make_vec(..., vectorization_mode="async").'


def batching_problem(config: EnvConfig) -> str | None:
    """Why a run with ``config`` cannot be a row of the batched engine, or ``None`` when it can.

    The suite's batched executor asks this per run and sends the others through ``run_one``.
    """
    try:
        spec = batched_task(config.task)
    except ValueError as exc:
        return str(exc)
    problem = spec.problem(config)
    if problem is not None:
        return problem
    if config.optimizer not in OPTIMIZER_KINDS:
        return f"The batched engine implements the optimizers {list(OPTIMIZER_KINDS)}, not {config.optimizer!r}; {_SEPARATE}"
    if reward_uses_heldout(config.reward.name) and config.reward_fraction == 0:
        return (
            f"Reward {config.reward.name!r} needs a reward-validation part of the validation split; "
            f"reward_fraction=0 keeps none. Set reward_fraction in (0, 1) or choose another reward, e.g. 'aees'."
        )
    return None


def batched_runs(config: EnvConfig, n_runs: int, *, track_grad_norms: bool = False, cuda_graphs: bool = True) -> BatchedClassificationRuns:
    """The batched engine of ``config``'s task (its spec's ``engine``, by default :class:`BatchedClassificationRuns`)."""
    engine = batched_task(config.task).engine or BatchedClassificationRuns
    return engine(config, n_runs, track_grad_norms=track_grad_norms, cuda_graphs=cuda_graphs)


class BatchedClassificationRuns(RowEvaluation):
    """``n_runs`` classification runs of one task trained together.

    Args:
        config: The engine's config: its task, task options, batch size, optimizer and device are
            shared by every row (see :data:`SHARED_FIELDS`); other fields are per-row defaults.
        n_runs: Number of rows (N).
        track_grad_norms: Also record each row's gradient norm per step (before noise, like the
            ``grad_norm`` context feature of the single env) in :attr:`grad_norms`.
        cuda_graphs: On a GPU, replay uniform windows (every row the same steps, no noise, no
            dropout) from CUDA graphs (:mod:`~aees_gym.tasks.batched.cuda_graph`); ``False`` runs
            every window eagerly. No effect on CPU.
    """

    def __init__(self, config: EnvConfig, n_runs: int, *, track_grad_norms: bool = False, cuda_graphs: bool = True) -> None:
        if isinstance(n_runs, bool) or not isinstance(n_runs, int) or n_runs < 1:
            raise ValueError(f"n_runs must be a positive integer, got {n_runs!r}.")
        problem = batching_problem(config)
        if problem is not None:
            raise ValueError(problem)
        self.spec = batched_task(config.task)
        self.config, self.n_runs = config, n_runs
        self.device = resolve_device(config.device)
        # Score as the single run does; its reward part (seeded, the same for every row) is the held-out batch.
        data, x_reward, y_reward = split_validation(self.spec.load_data(config), config.reward_fraction)
        self.n_classes = data.n_classes
        self.x_reward, self.y_reward = x_reward.to(self.device), y_reward.to(self.device)
        self.x_train, self.y_clean = data.x_train.to(self.device), data.y_train.to(self.device)
        self._y_clean_host = data.y_train.cpu().numpy()  # read once, not at every row's reset
        self.x_val, self.y_val = data.x_val.to(self.device), data.y_val.to(self.device)
        self._make_model = self.spec.make_model(config, data)
        self._forward = self.spec.forward(config)
        self._autocast = self.spec.autocast(config)
        # The closed-form backward computes in the parameters' dtype, so it stands in only without autocast.
        self._loss_and_grads = None if self._autocast else self.spec.loss_and_grads(config)
        template = self._make_model()
        self.param_names = [name for name, _ in template.named_parameters()]
        if self.spec.flops is not None:
            self.flops_per_step = self.spec.flops(config, data, template)
        else:
            self.flops_per_step = 3.0 * config.batch_size * estimate_forward_flops(template, data.x_train[:1])
        self.params = [
            torch.zeros((n_runs, *p.shape), dtype=p.dtype, device=self.device).requires_grad_() for p in template.parameters()
        ]
        self.optimizer = BatchedOptimizer(self.params, config.optimizer)
        # Gradient buffers the closed-form backward writes into every step (no per-step allocation).
        self._grad_buffers = [torch.zeros_like(p, requires_grad=False) for p in self.params] if self._loss_and_grads else []
        self._param_data = [p.detach() for p in self.params]
        self._work: dict[str, torch.Tensor] = {}
        self.batches = RowBatches(n_runs, len(self.x_train), config.batch_size)
        self.steps_per_epoch = self.batches.steps_per_epoch
        self.noise = RowGradientNoise(self.params)
        self.dropout = RowDropout(n_runs, self.device)
        self.freezer = RowFreezer(self.params)
        #: ``[N]`` share of each row's parameters frozen in the last window (device), when any row freezes.
        self.frozen_fractions: torch.Tensor | None = None
        self._base_momentum = [0.0] * n_runs
        n_train = len(self.x_train)
        self.y_train = self.y_clean.unsqueeze(0).repeat(n_runs, 1)  # each row's (possibly corrupted) labels
        self.corrupted = torch.zeros(n_runs, n_train, dtype=torch.bool, device=self.device)
        self._has_corruption = [False] * n_runs
        self.configs: list[EnvConfig | None] = [None] * n_runs
        self.seeds: list[RunSeeds | None] = [None] * n_runs
        #: Optimizer steps and windows each row has run since its reset (host integers).
        self.steps_done = [0] * n_runs
        self.windows_done = [0] * n_runs
        self.track_grad_norms = track_grad_norms
        #: ``[N, W]`` gradient norms of the last window (NaN where a row did not step), when tracked.
        self.grad_norms: torch.Tensor | None = None
        self.graphs = WindowGraphs(self.device, enabled=cuda_graphs)

    # ------------------------------------------------------------------ rows
    def check_config(self, config: EnvConfig) -> None:
        """Raise a ``ValueError`` when ``config`` cannot share this engine (different data, network or step)."""
        if not isinstance(config, EnvConfig):
            raise TypeError(f"Each row needs an EnvConfig, got {type(config).__name__}.")
        problem = batching_problem(config)
        if problem is not None:
            raise ValueError(problem)
        for name in SHARED_FIELDS:
            mine, theirs = getattr(self.config, name), getattr(config, name)
            if mine != theirs:
                raise ValueError(
                    f"Every run of one batch must share {', '.join(SHARED_FIELDS)} (the data, architecture and step); "
                    f"this batch has {name}={mine!r}, the new run {name}={theirs!r}. Batch those runs separately."
                )

    def reset_runs(self, rows: Iterable[int], configs: Sequence[EnvConfig], seeds: Sequence[int | RunSeeds]) -> None:
        """Start a fresh run in each of ``rows`` with its config and seed.

        Args:
            rows: Row indices to restart (the others keep training untouched).
            configs: One config per row (base LR, weight decay, label noise, budget, schedule, … may differ).
            seeds: One run seed per row (``RunSeeds.derive(seed)``, as ``AEESEnv.reset`` does) or ready ``RunSeeds``.
        """
        rows = list(rows)
        if not (len(rows) == len(configs) == len(seeds)):
            raise ValueError(f"reset_runs needs one config and one seed per row: {len(rows)} rows, {len(configs)} configs, {len(seeds)} seeds.")
        if len(set(rows)) != len(rows) or any(not 0 <= r < self.n_runs for r in rows):
            raise ValueError(f"rows must be distinct indices in [0, {self.n_runs}), got {rows}.")
        for config in configs:
            self.check_config(config)
        for row, config, seed in zip(rows, configs, seeds, strict=True):
            self._reset_row(row, config, seed if isinstance(seed, RunSeeds) else RunSeeds.derive(int(seed)))

    def _reset_row(self, row: int, config: EnvConfig, seeds: RunSeeds) -> None:
        with seeded_torch(seeds.model, self.device):
            module = self._make_model()
        with torch.no_grad():
            for stacked, p in zip(self.params, module.parameters(), strict=True):
                stacked[row].copy_(p)
            y_clean = self._y_clean_host
            labels, corrupted = y_clean, np.zeros(len(y_clean), dtype=bool)
            if config.label_noise > 0:
                labels, corrupted = corrupt_labels(y_clean, config.label_noise, self.n_classes, seeds.label_noise, config.label_noise_kind)
            self.y_train[row].copy_(torch.as_tensor(labels, dtype=torch.long))
            self.corrupted[row].copy_(torch.as_tensor(corrupted))
        self._has_corruption[row] = bool(corrupted.any())
        self.optimizer.reset_rows([row])
        with torch.no_grad():
            self.optimizer.weight_decay[row] = config.weight_decay
            self.optimizer.momentum[row] = config.momentum if config.optimizer == "sgd" else _ADAM_BETA1
        self._base_momentum[row] = config.momentum if config.optimizer == "sgd" else _ADAM_BETA1
        self.freezer.reset(row, config.freeze_threshold, config.freeze_beta)
        self.batches.reset(row, seeds.data_order)
        self.noise.reset(row, seeds.gradient_noise)
        self.configs[row], self.seeds[row] = config, seeds
        self.steps_done[row] = self.windows_done[row] = 0

    def row_state_dict(self, row: int) -> dict[str, torch.Tensor]:
        """Row ``row``'s parameters under the single run's network parameter names (copies)."""
        return {name: p[row].detach().clone() for name, p in zip(self.param_names, self.params, strict=True)}

    # ------------------------------------------------------------------ training
    def base_lr(self, row: int, step: int) -> float:
        """Row ``row``'s base LR at optimizer step ``step`` (0-based), as the single run's ``LambdaLR`` sets it."""
        config = self.configs[row]
        if config.schedule == "none":
            return config.base_lr
        every = self.steps_per_epoch if config.schedule_interval == "epoch" else 1
        horizon = math.ceil(config.total_steps / every)
        floor = 1e-3 if config.schedule == "warmup_linear" else 0.0
        return config.base_lr * max(schedule_factor(config.schedule, step // every, horizon, config), floor)

    def _validate_window(self, lr_multipliers: Sequence[float], noise_stds: Sequence[float], steps: Sequence[int]) -> list[int]:
        n = self.n_runs
        for name, values in (("lr_multipliers", lr_multipliers), ("noise_stds", noise_stds), ("steps", steps)):
            if len(values) != n:
                raise ValueError(f"{name} needs one value per run ({n}), got {len(values)}.")
        counts = []
        for i in range(n):
            k = int(steps[i])
            if k != steps[i] or k < 0:
                raise ValueError(f"steps[{i}] must be a non-negative integer, got {steps[i]!r}.")
            mult, std = float(lr_multipliers[i]), float(noise_stds[i])
            if not (math.isfinite(mult) and mult >= 0.0) or not (math.isfinite(std) and std >= 0.0):
                raise ValueError(f"Row {i}: lr multiplier and noise std must be finite and >= 0, got {mult}, {std}.")
            if k and self.configs[i] is None:
                raise ValueError(f"Row {i} has no run yet; call reset_runs([{i}], ...) before training it.")
            if k and k > self.configs[i].total_steps - self.steps_done[i]:
                left = self.configs[i].total_steps - self.steps_done[i]
                raise ValueError(f"Row {i} has {left} of its {self.configs[i].total_steps} steps left; steps[{i}]={k}.")
            counts.append(k)
        return counts

    def run_window(
        self,
        lr_multipliers: Sequence[float],
        noise_stds: Sequence[float],
        steps: Sequence[int],
        *,
        heldout: bool = False,
        momenta: Sequence[float | None] | None = None,
    ) -> torch.Tensor:
        """Train row ``i`` for ``steps[i]`` optimizer steps at LR ``base × schedule × lr_multipliers[i]``
        with gradient noise of std ``noise_stds[i]``.

        Host values in, device tensor out: the window's plan (LRs, batch indices, which rows step,
        momenta) is built on the host and sent in one packed transfer that never blocks the host
        (:mod:`~aees_gym.tasks.batched.window_plan`); no value is read back (except the frozen sets
        when a row both freezes and adds noise, see :mod:`.window_axes`). Rows with 0 steps are
        left exactly as they are. On a GPU a uniform window (no momentum axis, no freezing) replays a CUDA graph.

        Args:
            heldout: Also measure every row's :meth:`heldout_loss` before the first step and after
                the last (what the single run's ``reward_eval`` gives the ``heldout`` reward).
            momenta: Each row's SGD momentum / Adam β1 for this window (a grid's momentum axis);
                ``None`` entries (or no list) keep the row's own.

        Rows with ``freeze_threshold`` skip their frozen tensors (see :mod:`.freezing`); each row's
        frozen share of this window is left in :attr:`frozen_fractions`.

        Returns:
            ``[N, W]`` float32 step losses on the device, ``W = max(steps)``; entries past a row's
            steps are NaN. With ``heldout``, ``[N, 2 + W]``: the held-out losses at window open and
            close, then the step losses.
        """
        counts = self._validate_window(lr_multipliers, noise_stds, steps)
        momenta_now = window_momenta(momenta, self._base_momentum)  # checked before any state moves
        if heldout:
            opened = self.heldout_loss()
            losses = self.run_window(lr_multipliers, noise_stds, counts, momenta=momenta)
            return torch.cat([opened.unsqueeze(1), self.heldout_loss().unsqueeze(1), losses], dim=1)
        n, width = self.n_runs, max(counts)
        if width == 0:
            return torch.empty(n, 0, device=self.device)
        host = host_plan(width, n, self.config.batch_size, self.device)
        for i, k in enumerate(counts):
            if k:
                done, mult, config = self.steps_done[i], float(lr_multipliers[i]), self.configs[i]
                if config.schedule == "none":  # a constant LR: one assignment instead of k calls
                    host.lr[:k, i] = config.base_lr * mult
                else:
                    host.lr[:k, i] = [self.base_lr(i, done + s) * mult for s in range(k)]
                host.active[:k, i] = 1
        if momenta_now is not None:
            host.momentum[:] = momenta_now
        self.batches.plan(counts, width, out=host.index)
        for i, k in enumerate(counts):
            if k:
                self.dropout.reseed(i, self.seeds[i].dropout + self.windows_done[i])
        self.noise.begin_window([s if k else 0.0 for s, k in zip(noise_stds, counts, strict=True)])
        axes, fractions = begin_axes(self.freezer, counts, noise_stds, momentum_axis=momenta_now is not None)
        if fractions is not None:
            self.frozen_fractions = fractions
        key = (width, self.track_grad_norms)
        graphed = self.graphs.eligible(
            counts, noise_stds, self.dropout.drew, momentum_axis=axes.momentum_axis, freezing=axes.freezer is not None
        )
        packed = send(host, self.device, self.graphs.static_plan(key) if graphed else None)  # the one transfer
        result = self.graphs.run(key, packed, self._window_steps, n) if graphed else None
        if result is None:
            losses = torch.empty(width, n, device=self.device)
            norms = torch.empty(width, n, device=self.device) if self.track_grad_norms else None
            self._window_steps(packed, losses, norms, counts, axes)
        else:
            losses, norms = result
        # The device trains now; draw the permutations the next window will start meanwhile.
        self.batches.prefetch(counts)
        self.optimizer.zero_grad()
        end_axes(axes, counts)
        for i, k in enumerate(counts):
            if k:
                self.steps_done[i] += k
                self.windows_done[i] += 1
        if graphed:  # every row ran every step: nothing to mask
            if norms is not None:
                self.grad_norms = norms.t()
            return losses.t()
        active = unpack(packed, width, n, self.config.batch_size).active
        losses.masked_fill_(~active, math.nan)
        if norms is not None:
            self.grad_norms = norms.masked_fill_(~active, math.nan).t()
        return losses.t()

    def _window_steps(
        self, packed: torch.Tensor, losses: torch.Tensor, norms: torch.Tensor | None, counts: Sequence[int] | None = None,
        axes: Axes | None = None,
    ) -> None:
        """The window's steps from its packed plan, writing ``losses`` (and ``norms``) ``[W, N]``.

        ``counts=None``: every row takes every step (what a CUDA graph captures). ``axes``: the
        window's momentum axis and freezer (``None``: neither, the only case a graph captures).
        """
        n, width = self.n_runs, losses.shape[0]
        plan = unpack(packed, width, n, self.config.batch_size)
        axes = axes or Axes()
        momentum = plan.momentum if axes.momentum_axis else None
        everyone = list(range(n))
        fewest = width if counts is None else min(counts)
        for s in range(width):
            rows = everyone if s < fewest else [i for i in everyone if counts[i] > s]
            self.dropout.rows = rows
            loss = self._train_step(plan.index[s])
            losses[s].copy_(loss.detach())
            if norms is not None:
                grads = [p.grad.flatten(1) for p in self.params]
                norms[s].copy_(torch.linalg.vector_norm(torch.stack([g.norm(dim=1) for g in grads]), dim=0))
            row_mask = None if len(rows) == n else plan.active[s]
            axes.step([p.grad for p in self.params], row_mask)  # before the noise, as the single run's freezer
            self.noise.add_(rows, axes.frozen_host)
            self.optimizer.step(plan.lr[s], momentum=momentum, active=row_mask, frozen=axes.frozen)

    def _train_step(self, index: torch.Tensor) -> torch.Tensor:
        """Forward and backward of every row on its batch ``index`` ``[N, B]``; returns the ``[N]`` mean losses."""
        yb = self.y_train.gather(1, index)
        if self._loss_and_grads is not None:
            n, b = index.shape
            xb = scratch(self._work, "x", (n * b, *self.x_train.shape[1:]), self.x_train)
            xb = torch.index_select(self.x_train, 0, index.flatten(), out=xb).view(n, b, *self.x_train.shape[1:])
            loss = self._loss_and_grads(self._param_data, xb, yb, self._grad_buffers, self._work)
            for p, g in zip(self.params, self._grad_buffers, strict=True):
                p.grad = g
            return loss
        xb = self.x_train[index]
        self.optimizer.zero_grad()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._autocast):
            logits = self._forward(self.params, xb, self.dropout)
        n, b = index.shape
        loss = F.cross_entropy(logits.float().flatten(0, 1), yb.flatten(), reduction="none").view(n, b).mean(1)
        # Rows share no operation, so the sum's gradient in row i is exactly row i's own loss gradient.
        loss.sum().backward()
        return loss

    def describe(self) -> dict[str, object]:
        """Static facts of the engine, for infos and logs."""
        return {
            "task": self.config.task, "n_runs": self.n_runs, "device": str(self.device), "n_train": len(self.x_train),
            "n_val": len(self.x_val), "n_classes": self.n_classes, "steps_per_epoch": self.steps_per_epoch,
            "flops_per_step": self.flops_per_step, "options": dataclasses.asdict(self.config.options) if self.config.options else None,
        }
