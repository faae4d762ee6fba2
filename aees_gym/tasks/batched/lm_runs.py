"""``GPT2-v0`` as batched rows: N from-scratch GPT-2 language models trained as one stacked computation.

:class:`BatchedLanguageRuns` is the engine of :mod:`.run` with the causal-LM step and metrics of
:func:`~aees_gym.tasks.language.build_gpt2_run`: the rows' "examples" are indices into the token
table, batched with the same seeded per-epoch permutations; the step loss is each row's mean
next-token cross-entropy over real (non-padding) tokens; ``evaluate`` gives
:func:`~aees_gym.tasks.language.lm_metrics` per row (``val_loss``, ``val_perplexity``, ``val_accuracy``).

:func:`gpt2_forward` writes ``GPT2LMHeadModel``'s forward out over stacked parameters (in
``named_parameters()`` order; the LM head is tied to ``wte``): pre-LayerNorm blocks, ``Conv1D``
projections as batched GEMMs, causal attention with ``gelu_new`` MLPs. Its dropout draws follow the
single run's order and shapes (embeddings ``[B, T, E]``; per block the attention weights
``[B, H, T, T]``, then the attention and MLP outputs ``[B, T, E]``), each from the row's own
generator, so row ``i`` sees the masks the single env draws from its seeded global RNG. Padding
keys only ever meet padded queries (causal attention over right padding), whose labels are
ignored, so the causal mask alone gives the single run's losses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F

from aees_gym.core.reward import reward_uses_heldout
from aees_gym.tasks.batched.nets import BatchedForward, RowDropout
from aees_gym.tasks.batched.registry import BatchedTaskSpec, register_batched_task
from aees_gym.tasks.batched.run import BatchedClassificationRuns
from aees_gym.tasks.classification import ClassificationData
from aees_gym.tasks.config import EnvConfig

_ASYNC = 'or run separate envs with gymnasium.make_vec(..., vectorization_mode="async").'
_EVAL_SEQUENCES = 64  # sequences × rows per evaluation forward pass (bounds the [R, B, T, V] logits)


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """``nn.LayerNorm`` per row: x ``[N, ..., E]``, weight and bias ``[N, E]``."""
    shape = (weight.shape[0], *([1] * (x.dim() - 2)), weight.shape[1])
    return torch.addcmul(bias.view(shape), F.layer_norm(x, (x.shape[-1],), eps=eps), weight.view(shape))


def _conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """GPT-2's ``Conv1D`` (``x @ W + b``, W ``[in, out]``) per row: x ``[N, B, T, in]`` → ``[N, B, T, out]``."""
    n, b, t, _ = x.shape
    return torch.baddbmm(bias.unsqueeze(1), x.reshape(n, b * t, -1), weight).view(n, b, t, -1)


def gpt2_forward_for(n_layer: int, n_head: int, dropout_p: float, eps: float) -> BatchedForward:
    """The batched from-scratch GPT-2: ``forward(params, ids [N, B, T], dropout)`` → logits ``[N, B, T, V]``."""

    def drop(x: torch.Tensor, dropout: RowDropout | None) -> torch.Tensor:
        return x if dropout is None else dropout(x, dropout_p)

    def forward(params: Sequence[torch.Tensor], ids: torch.Tensor, dropout: RowDropout | None = None) -> torch.Tensor:
        wte, wpe, *blocks = params
        ln_f_w, ln_f_b = blocks[-2:]
        n, b, t = ids.shape
        vocab, width = wte.shape[1:]
        offset = (torch.arange(n, device=ids.device) * vocab).view(n, 1, 1)
        h = F.embedding(ids + offset, wte.reshape(n * vocab, width)) + wpe[:, None, :t]
        h = drop(h, dropout)
        heads, dim = n_head, width // n_head
        causal = torch.ones(t, t, dtype=torch.bool, device=ids.device).tril_()
        for layer in range(n_layer):
            ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, out_w, out_b = blocks[12 * layer : 12 * layer + 12]
            q, k, v = _conv1d(_layer_norm(h, ln1_w, ln1_b, eps), qkv_w, qkv_b).split(width, dim=3)
            q, k, v = (z.reshape(n, b, t, heads, dim).transpose(2, 3) for z in (q, k, v))  # [N, B, H, T, D]
            weights = torch.matmul(q, k.transpose(-1, -2)).mul_(dim**-0.5).masked_fill_(~causal, -math.inf)
            weights = drop(torch.softmax(weights, dim=-1), dropout)
            attended = torch.matmul(weights, v).transpose(2, 3).reshape(n, b, t, width)
            h = h + drop(_conv1d(attended, proj_w, proj_b), dropout)
            hidden = F.gelu(_conv1d(_layer_norm(h, ln2_w, ln2_b, eps), fc_w, fc_b), approximate="tanh")
            h = h + drop(_conv1d(hidden, out_w, out_b), dropout)
        h = _layer_norm(h, ln_f_w, ln_f_b, eps)
        return torch.bmm(h.reshape(n, b * t, width), wte.transpose(1, 2)).view(n, b, t, vocab)

    return forward


def token_losses(logits: torch.Tensor, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy ``[N, B, T-1]`` of each position (0 where the target is padding)."""
    v = logits.shape[-1]
    target = ids[..., 1:].masked_fill(~valid[..., 1:], -100)
    nll = F.cross_entropy(logits[..., :-1, :].float().reshape(-1, v), target.reshape(-1), ignore_index=-100, reduction="none")
    return nll.view(target.shape)


class BatchedLanguageRuns(BatchedClassificationRuns):
    """``n_runs`` ``GPT2-v0`` runs trained together (see the module docstring); the API of the base engine."""

    def __init__(self, config: EnvConfig, n_runs: int, *, track_grad_norms: bool = False, cuda_graphs: bool = True) -> None:
        super().__init__(config, n_runs, track_grad_norms=track_grad_norms, cuda_graphs=cuda_graphs)
        from aees_gym.tasks.language import load_token_tables

        tables = load_token_tables(config.options)
        self.train_ids, self.train_lengths = tables.train_ids.to(self.device), tables.train_lengths.to(self.device)
        self.val_ids, self.val_lengths = tables.val_ids.to(self.device), tables.val_lengths.to(self.device)
        self._positions = torch.arange(self.train_ids.shape[1], device=self.device)

    def _train_step(self, index: torch.Tensor) -> torch.Tensor:
        ids = self.train_ids[index]  # [N, B, T]
        valid = self._positions < self.train_lengths[index].unsqueeze(-1)
        self.optimizer.zero_grad()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._autocast):
            logits = self._forward(self.params, ids, self.dropout)
        nll = token_losses(logits, ids, valid)
        loss = nll.sum(dim=(1, 2)) / valid[..., 1:].sum(dim=(1, 2))  # the mean over each row's real targets
        loss.sum().backward()  # rows share no operation: row i's gradient is its own loss's
        return loss

    @property
    def has_monitor(self) -> bool:
        return False

    def monitor(self, rows: Iterable[int]) -> list[dict[str, float]]:
        """Nothing: like the single GPT2 run, which has no ``monitor``, an agent sees no validation metric mid-run."""
        return [{} for _ in rows]

    def heldout_loss(self) -> torch.Tensor:
        raise ValueError("GPT2 keeps no reward-validation part, so it has no held-out loss; choose another reward, e.g. 'aees'.")

    @torch.no_grad()
    def evaluate(self, rows: Iterable[int] | None = None) -> list[dict[str, float]]:
        """:func:`~aees_gym.tasks.language.lm_metrics` of each of ``rows`` (default all) on the validation table."""
        rows, _, params = self._rows_to_evaluate(rows)
        if not rows:
            return []
        chunk = self.config.options.eval_batch_size
        block = max(1, _EVAL_SEQUENCES // chunk)
        r = len(rows)
        loss_sum = torch.zeros(r, dtype=torch.float64, device=self.device)
        correct = torch.zeros(r, dtype=torch.long, device=self.device)
        count = torch.zeros((), dtype=torch.long, device=self.device)
        for start in range(0, len(self.val_ids), chunk):
            ids = self.val_ids[start : start + chunk]
            valid = self._positions[: ids.shape[1]] < self.val_lengths[start : start + chunk, None]
            count += valid[:, 1:].sum()
            for first in range(0, r, block):
                part = [p[first : first + block] for p in params]
                rows_ids = ids.unsqueeze(0).expand(part[0].shape[0], *ids.shape)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._autocast):
                    logits = self._forward(part, rows_ids, None).float()
                nll = token_losses(logits, rows_ids, valid.expand_as(rows_ids))
                loss_sum[first : first + block] += nll.sum(dim=(1, 2), dtype=torch.float64)
                hits = (logits[..., :-1, :].argmax(dim=-1) == rows_ids[..., 1:]) & valid[:, 1:]
                correct[first : first + block] += hits.sum(dim=(1, 2))
        host = torch.stack([loss_sum, correct.to(torch.float64), count.to(torch.float64).expand(r)]).cpu().tolist()
        out = []
        for j in range(r):
            n = max(int(host[2][j]), 1)
            loss = host[0][j] / n
            perplexity = math.exp(loss) if loss < 700 else math.inf  # NaN stays NaN, as lm_metrics
            out.append({"val_loss": loss, "val_perplexity": perplexity, "val_accuracy": host[1][j] / n})
        return out


# ---------------------------------------------------------------------------- registration
def _gpt2_problem(config: EnvConfig) -> str | None:
    opts = config.options
    if opts.model_name is not None:
        return f"The batched engine trains the from-scratch GPT-2 (model_name=None), not model_name={opts.model_name!r}; {_ASYNC}"
    if config.label_noise:
        return "GPT2 has no labels to corrupt; use label_noise=0."
    if reward_uses_heldout(config.reward.name):
        return f"Reward {config.reward.name!r} needs a held-out loss, which GPT2 does not provide; choose another reward, e.g. 'aees'."
    if config.reward_fraction:
        # The single run then scores only the rest of the validation sequences; rows here would score them all.
        return (f"The batched engine keeps no reward-validation part for GPT2 (reward_fraction={config.reward_fraction}); "
                f"use reward_fraction=0, {_ASYNC}")
    return None


def _gpt2_spec() -> BatchedTaskSpec:
    from aees_gym.tasks.language import build_model, lm_flops_per_step, load_token_tables

    def load_data(config: EnvConfig) -> ClassificationData:
        problem = _gpt2_problem(config)
        if problem is not None:
            raise ValueError(problem)
        t = load_token_tables(config.options)
        n_train, n_val = len(t.train_ids), len(t.val_ids)
        # Sequence indices stand for the examples; the engine batches them like labelled examples.
        return ClassificationData(torch.arange(n_train), torch.zeros(n_train, dtype=torch.long), torch.arange(n_val),
                                  torch.zeros(n_val, dtype=torch.long), 1)

    def make_model(config: EnvConfig, data: ClassificationData) -> Callable[[], torch.nn.Module]:
        tables = load_token_tables(config.options)
        return lambda: build_model(config.options, tables)

    def forward(config: EnvConfig) -> BatchedForward:
        o = config.options
        return gpt2_forward_for(o.n_layer, o.n_head, o.dropout, 1e-5)  # GPT2Config's layer_norm_epsilon

    def flops(config: EnvConfig, data: ClassificationData, template: torch.nn.Module) -> float:
        return lm_flops_per_step(template, config.batch_size, int(load_token_tables(config.options).train_ids.shape[1]))

    return BatchedTaskSpec(load_data, make_model, forward, flops=flops, problem=_gpt2_problem, engine=BatchedLanguageRuns)


def register_gpt2_rows() -> None:
    register_batched_task("GPT2", _gpt2_spec())

