"""Evaluation of the batched engine's rows: the single run's ``evaluate()``, ``monitor()`` and held-out loss.

A mixin of :class:`~aees_gym.tasks.batched.run.BatchedClassificationRuns`: it reads the engine's
stacked parameters, forward, data splits and per-row labels, and reads each result to the host once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F

from aees_gym.tasks.config import EnvConfig

_EVAL_EXAMPLES = 2048  # examples × rows per evaluation forward pass (bounds activation memory)
# Examples per evaluation chunk, the same for every batch size: a row's summed loss then adds the
# same chunks in the same order whatever N is, so its result never depends on which runs share its batch.
_EVAL_CHUNK = 256


class RowEvaluation:
    """Metrics of every row on shared inputs; the engine provides the attributes below."""

    params: list[torch.Tensor]
    n_runs: int
    device: torch.device
    configs: list[EnvConfig | None]
    x_train: torch.Tensor
    y_train: torch.Tensor
    y_clean: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_reward: torch.Tensor
    y_reward: torch.Tensor
    corrupted: torch.Tensor
    _has_corruption: Sequence[bool]
    _autocast: bool
    _forward: Callable

    def _rows_to_evaluate(self, rows: Iterable[int] | None) -> tuple[list[int], torch.Tensor, list[torch.Tensor]]:
        """``rows`` (default all) as a list, their index tensor and their parameters, detached.

        Raises:
            ValueError: If a row has no run yet.
        """
        rows = list(range(self.n_runs)) if rows is None else list(rows)
        if any(self.configs[r] is None for r in rows):
            raise ValueError(f"Rows {[r for r in rows if self.configs[r] is None]} have no run yet; reset them first.")
        index = torch.as_tensor(rows, dtype=torch.long, device=self.device)  # long even when empty
        return rows, index, [p.detach().index_select(0, index) for p in self.params]

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

    @property
    def has_monitor(self) -> bool:
        """Whether :meth:`monitor` measures anything (the single run's ``monitor`` is not ``None``)."""
        return bool(len(self.x_reward))

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
        rows, index, params = self._rows_to_evaluate(rows)
        if not rows:
            return []
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
