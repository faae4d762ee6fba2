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
from aees_gym.tasks.batched.nets import RowDropout, scratch
from aees_gym.tasks.batched.optim import OPTIMIZER_KINDS, BatchedOptimizer
from aees_gym.tasks.batched.registry import batched_task
from aees_gym.tasks.batched.streams import RowBatches, RowGradientNoise
from aees_gym.tasks.classification import corrupt_labels, split_validation
from aees_gym.tasks.config import EnvConfig

#: Fields every row's config must share with the engine's: they fix the data, the network and the step.
SHARED_FIELDS = ("task", "options", "batch_size", "optimizer", "device", "reward_fraction")
_ADAM_BETA1 = 0.9  # torch.optim.Adam/AdamW default, what the single run uses
_EVAL_EXAMPLES = 2048  # examples × rows per evaluation forward pass (bounds activation memory)
# Examples per evaluation chunk, the same for every batch size: a row's summed loss then adds the
# same chunks in the same order whatever N is, so its result never depends on which runs share its batch.
_EVAL_CHUNK = 256


_SEPARATE = 'or run such runs as separate envs, e.g. gymnasium.make_vec(..., vectorization_mode="async").'


def batching_problem(config: EnvConfig) -> str | None:
    """Why a run with ``config`` cannot be a row of the batched engine, or ``None`` when it can.

    The suite's batched executor asks this per run and sends the others through ``run_one``.
    """
    try:
        batched_task(config.task)
    except ValueError as exc:
        return str(exc)
    if config.optimizer not in OPTIMIZER_KINDS:
        return f"The batched engine implements the optimizers {list(OPTIMIZER_KINDS)}, not {config.optimizer!r}; {_SEPARATE}"
    if reward_uses_heldout(config.reward.name) and config.reward_fraction == 0:
        return (
            f"Reward {config.reward.name!r} needs a reward-validation part of the validation split; "
            f"reward_fraction=0 keeps none. Set reward_fraction in (0, 1) or choose another reward, e.g. 'aees'."
        )
    if config.grid.momenta is not None:
        return f"The batched engine has no momentum axis (grid momenta {list(config.grid.momenta)}); drop it, {_SEPARATE}"
    if config.freeze_threshold is not None:
        return f"The batched engine does not freeze parameters (freeze_threshold={config.freeze_threshold}); {_SEPARATE}"
    return None


class BatchedClassificationRuns:
    """``n_runs`` classification runs of one task trained together.

    Args:
        config: The engine's config: its task, task options, batch size, optimizer and device are
            shared by every row (see :data:`SHARED_FIELDS`); other fields are per-row defaults.
        n_runs: Number of rows (N).
        track_grad_norms: Also record each row's gradient norm per step (before noise, like the
            ``grad_norm`` context feature of the single env) in :attr:`grad_norms`.
    """

    def __init__(self, config: EnvConfig, n_runs: int, *, track_grad_norms: bool = False) -> None:
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
        self.x_val, self.y_val = data.x_val.to(self.device), data.y_val.to(self.device)
        self._make_model = self.spec.make_model(config, data)
        self._forward = self.spec.forward(config)
        self._autocast = self.spec.autocast(config)
        # The closed-form backward computes in the parameters' dtype, so it stands in only without autocast.
        self._loss_and_grads = None if self._autocast else self.spec.loss_and_grads(config)
        template = self._make_model()
        self.param_names = [name for name, _ in template.named_parameters()]
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
            y_clean = self.y_clean.cpu().numpy()
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
        self, lr_multipliers: Sequence[float], noise_stds: Sequence[float], steps: Sequence[int], *, heldout: bool = False
    ) -> torch.Tensor:
        """Train row ``i`` for ``steps[i]`` optimizer steps at LR ``base × schedule × lr_multipliers[i]``
        with gradient noise of std ``noise_stds[i]``.

        Host values in, device tensor out: the window's plan (LRs, batch indices, which rows step)
        is built on the host and sent in one transfer; no value is read back. Rows with 0 steps are
        left exactly as they are.

        Args:
            heldout: Also measure every row's :meth:`heldout_loss` before the first step and after
                the last (what the single run's ``reward_eval`` gives the ``heldout`` reward).

        Returns:
            ``[N, W]`` float32 step losses on the device, ``W = max(steps)``; entries past a row's
            steps are NaN. With ``heldout``, ``[N, 2 + W]``: the held-out losses at window open and
            close, then the step losses.
        """
        counts = self._validate_window(lr_multipliers, noise_stds, steps)
        if heldout:
            opened = self.heldout_loss()
            losses = self.run_window(lr_multipliers, noise_stds, counts)
            return torch.cat([opened.unsqueeze(1), self.heldout_loss().unsqueeze(1), losses], dim=1)
        n, width = self.n_runs, max(counts)
        if width == 0:
            return torch.empty(n, 0, device=self.device)
        lr = np.zeros((width, n))
        active = np.zeros((width, n), dtype=bool)
        for i, k in enumerate(counts):
            if k:
                done, mult = self.steps_done[i], float(lr_multipliers[i])
                lr[:k, i] = [self.base_lr(i, done + s) * mult for s in range(k)]
                active[:k, i] = True
        lr_t = torch.as_tensor(lr, device=self.device)
        active_t = torch.as_tensor(active, device=self.device)
        index_t = self.batches.plan(counts, width).to(self.device)
        rows_at = [[i for i in range(n) if counts[i] > s] for s in range(width)]
        for i, k in enumerate(counts):
            if k:
                self.dropout.reseed(i, self.seeds[i].dropout + self.windows_done[i])
        self.noise.begin_window([s if k else 0.0 for s, k in zip(noise_stds, counts, strict=True)])
        losses = torch.empty(width, n, device=self.device)
        norms = torch.empty(width, n, device=self.device) if self.track_grad_norms else None
        for s in range(width):
            rows = rows_at[s]
            self.dropout.rows = rows
            loss = self._train_step(index_t[s])
            losses[s].copy_(loss.detach())
            if norms is not None:
                grads = [p.grad.flatten(1) for p in self.params]
                norms[s].copy_(torch.linalg.vector_norm(torch.stack([g.norm(dim=1) for g in grads]), dim=0))
            self.noise.add_(rows)
            self.optimizer.step(lr_t[s], active=None if len(rows) == n else active_t[s])
        self.optimizer.zero_grad()
        for i, k in enumerate(counts):
            if k:
                self.steps_done[i] += k
                self.windows_done[i] += 1
        losses.masked_fill_(~active_t, math.nan)
        if norms is not None:
            self.grad_norms = norms.masked_fill_(~active_t, math.nan).t()
        return losses.t()

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

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def _predict(self, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted classes ``[R, M]`` of every row on shared inputs ``x`` and, when ``y`` ``[R, M]`` is
        given, each row's summed cross-entropy ``[R]``."""
        r = params[0].shape[0]
        block = max(1, _EVAL_EXAMPLES // _EVAL_CHUNK)  # rows per forward pass
        preds, loss_sum = [], torch.zeros(r, device=self.device)
        for start in range(0, len(x), _EVAL_CHUNK):
            xs = x[start : start + _EVAL_CHUNK]
            chunk_preds = []
            for first in range(0, r, block):
                rows = slice(first, first + block)
                part = [p[rows] for p in params]
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._autocast):
                    logits = self._forward(part, xs.unsqueeze(0).expand(part[0].shape[0], *xs.shape), None)
                logits = logits.float()
                chunk_preds.append(logits.argmax(dim=2))
                if y is not None:
                    ys = y[rows, start : start + _EVAL_CHUNK]
                    loss_sum[rows] += F.cross_entropy(logits.flatten(0, 1), ys.flatten(), reduction="none").view(-1, len(xs)).sum(1)
            preds.append(torch.cat(chunk_preds))
        return torch.cat(preds, dim=1), loss_sum

    def heldout_loss(self) -> torch.Tensor:
        """``[N]`` mean cross-entropy of every row on the reward-validation part, on the device.

        The single run's ``reward_eval``: eval mode (no dropout, so no random draw), no gradient,
        nothing read to the host. Rows without a run give the loss of all-zero parameters.
        """
        if not len(self.x_reward):
            raise ValueError("This engine keeps no reward-validation part (reward_fraction=0), so it has no held-out loss.")
        params = [p.detach() for p in self.params]
        _, loss_sum = self._predict(params, self.x_reward, self.y_reward.unsqueeze(0).expand(self.n_runs, -1))
        return loss_sum / len(self.x_reward)

    def monitor(self, rows: Iterable[int]) -> list[dict[str, float]]:
        """The single run's ``monitor()`` of each of ``rows``: ``val_accuracy`` / ``val_loss`` on the reward-validation part.

        What an agent may see during a run; the scoring part is :meth:`evaluate`'s alone. Empty
        dicts when the engine keeps no reward part (``reward_fraction=0``). One host transfer.
        """
        rows = list(rows)
        if not rows or not len(self.x_reward):
            return [{} for _ in rows]
        index = torch.as_tensor(rows, device=self.device)
        params = [p.detach().index_select(0, index) for p in self.params]
        m = len(self.x_reward)
        preds, loss_sum = self._predict(params, self.x_reward, self.y_reward.unsqueeze(0).expand(len(rows), m))
        host = torch.stack([(preds == self.y_reward).sum(1).to(torch.float64), loss_sum.to(torch.float64)]).cpu().tolist()
        return [{"val_accuracy": host[0][j] / m, "val_loss": host[1][j] / m} for j in range(len(rows))]

    def evaluate(self, rows: Iterable[int] | None = None) -> list[dict[str, float]]:
        """The single run's ``evaluate()`` metrics of each of ``rows`` (default all), in that order.

        ``val_accuracy`` and ``val_loss`` on the validation split; rows trained with corrupted labels
        also get the memorisation diagnostics ``train_accuracy_clean_subset``,
        ``train_accuracy_corrupted_noisy_labels`` and ``train_accuracy_corrupted_true_labels``.
        Reads the results to the host once.
        """
        rows = list(range(self.n_runs)) if rows is None else list(rows)
        if any(self.configs[r] is None for r in rows):
            raise ValueError(f"Rows {[r for r in rows if self.configs[r] is None]} have no run yet; reset them first.")
        if not rows:
            return []
        index = torch.as_tensor(rows, device=self.device)
        params = [p.detach().index_select(0, index) for p in self.params]
        r, m = len(rows), len(self.x_val)
        preds, loss_sum = self._predict(params, self.x_val, self.y_val.unsqueeze(0).expand(r, m))
        counts = [(preds == self.y_val).sum(1), loss_sum]
        noisy = [self._has_corruption[i] for i in rows]
        if any(noisy):
            train_preds, _ = self._predict(params, self.x_train, None)
            bad = self.corrupted.index_select(0, index)
            fit_used = train_preds == self.y_train.index_select(0, index)
            fit_true = train_preds == self.y_clean
            counts += [(fit_used & ~bad).sum(1), (~bad).sum(1), (fit_used & bad).sum(1), (fit_true & bad).sum(1), bad.sum(1)]
        host = torch.stack([c.to(torch.float64) for c in counts]).cpu().tolist()  # the one host transfer
        out = []
        for j, row_noisy in enumerate(noisy):
            metrics = {"val_accuracy": host[0][j] / max(m, 1), "val_loss": host[1][j] / max(m, 1)}
            if row_noisy:
                clean_fit, n_clean, used_fit, true_fit, n_bad = (host[k][j] for k in range(2, 7))
                metrics["train_accuracy_clean_subset"] = clean_fit / max(n_clean, 1)
                metrics["train_accuracy_corrupted_noisy_labels"] = used_fit / max(n_bad, 1)
                metrics["train_accuracy_corrupted_true_labels"] = true_fit / max(n_bad, 1)
            out.append(metrics)
        return out

    def describe(self) -> dict[str, object]:
        """Static facts of the engine, for infos and logs."""
        return {
            "task": self.config.task, "n_runs": self.n_runs, "device": str(self.device), "n_train": len(self.x_train),
            "n_val": len(self.x_val), "n_classes": self.n_classes, "steps_per_epoch": self.steps_per_epoch,
            "flops_per_step": self.flops_per_step, "options": dataclasses.asdict(self.config.options) if self.config.options else None,
        }
