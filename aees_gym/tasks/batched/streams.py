"""Per-run random streams of the batched engine, each identical to the single run's.

* :class:`RowBatches`: each run's minibatch indices, drawn exactly like
  :class:`~aees_gym.tasks.classification.DeviceBatches` (one ``randperm`` per epoch from the run's
  data-order generator, drop-last), planned for a whole window on the host and sent to the
  device in one transfer; the next epoch's permutation can be drawn while the device trains.
* :class:`RowGradientNoise`: each run's gradient-noise generators, one per parameter tensor seeded
  ``seed + 1009·group + index`` with the ``normal_``/``randn`` rule of
  :class:`~aees_gym.core.control.EpisodeControl`, so the noise added to run ``i``'s gradients is the
  noise its single env adds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from aees_gym.core.noise import draw_, noise_seed

_GROUP = 0  # the tasks' optimizers hold every parameter in one param group


class RowBatches:
    """Minibatch index plans of ``n_runs`` runs over one training set of ``n_examples``.

    A row's permutations are its generator's draws in order, whenever they are drawn, so
    :meth:`prefetch` may draw the next epoch's permutation early (while the device trains) without
    changing any batch.

    Args:
        n_runs: Number of rows.
        n_examples: Training examples (the same for every run).
        batch_size: Minibatch size (the same for every run).
    """

    def __init__(self, n_runs: int, n_examples: int, batch_size: int) -> None:
        if batch_size > n_examples:
            raise ValueError(f"batch_size {batch_size} exceeds the {n_examples} training examples.")
        self.n_examples, self.batch_size = n_examples, batch_size
        self.steps_per_epoch = n_examples // batch_size
        self._generators = [torch.Generator() for _ in range(n_runs)]
        # Each row's current epoch as [steps_per_epoch, B] host indices, and the next one when drawn early.
        self._epochs: list[np.ndarray | None] = [None] * n_runs
        self._next: list[np.ndarray | None] = [None] * n_runs
        self._pos = [self.steps_per_epoch] * n_runs

    def reset(self, row: int, seed: int) -> None:
        """Start run ``row``'s data order from ``seed`` (the run's ``RunSeeds.data_order``)."""
        self._generators[row].manual_seed(int(seed))
        self._epochs[row] = self._next[row] = None
        self._pos[row] = self.steps_per_epoch

    def _draw(self, row: int) -> np.ndarray:
        perm = np.empty(self.n_examples, dtype=np.int64)
        torch.randperm(self.n_examples, generator=self._generators[row], out=torch.from_numpy(perm))
        return perm[: self.steps_per_epoch * self.batch_size].reshape(self.steps_per_epoch, self.batch_size)

    def prefetch(self, steps: Sequence[int]) -> None:
        """Draw now the permutation each row will start within its next ``steps[i]`` batches."""
        for row, n in enumerate(steps):
            if n and self._next[row] is None and self._pos[row] + n > self.steps_per_epoch:
                self._next[row] = self._draw(row)

    def plan(self, steps: Sequence[int], width: int, out: np.ndarray | None = None) -> torch.Tensor:
        """Indices ``[width, N, B]`` of the next ``steps[i]`` batches of every row (zeros past a row's steps).

        ``out``: an int64 array of that shape to fill (e.g. a view of a pinned host buffer); it is
        zeroed first. The result is a tensor sharing its memory.
        """
        spe = self.steps_per_epoch
        if out is None:
            out = np.zeros((width, len(steps), self.batch_size), dtype=np.int64)
        else:
            out.fill(0)
        for row, n in enumerate(steps):
            k = 0
            while k < n:
                if self._pos[row] == spe:  # DeviceBatches draws a new permutation lazily, at the next batch
                    nxt = self._next[row]
                    self._epochs[row] = nxt if nxt is not None else self._draw(row)
                    self._next[row] = None
                    self._pos[row] = 0
                pos = self._pos[row]
                take = min(n - k, spe - pos)
                out[k : k + take, row] = self._epochs[row][pos : pos + take]
                self._pos[row] = pos + take
                k += take
        return torch.from_numpy(out)


class RowGradientNoise:
    """Seeded Gaussian gradient noise of every run, with EpisodeControl's streams.

    Args:
        params: The stacked parameters ``[N, ...]``, in the single run's ``parameters()`` order
            (one param group, as the tasks' optimizers have).
    """

    def __init__(self, params: Sequence[torch.Tensor]) -> None:
        self.params = list(params)
        n, device = self.params[0].shape[0], self.params[0].device
        self._generators = [[torch.Generator(device=device) for _ in self.params] for _ in range(n)]
        self._buffers = [torch.zeros_like(p, requires_grad=False) for p in self.params]
        # Row views built once, with the normal_/randn choice of each: the per-row loop below is
        # unavoidable (each row and tensor has its own generator), so it does nothing else.
        self._rows = [list(zip((buf[i] for buf in self._buffers), gens, strict=True)) for i, gens in enumerate(self._generators)]
        self._stds = [0.0] * n

    def reset(self, row: int, seed: int) -> None:
        """Seed run ``row``'s generators from its ``RunSeeds.gradient_noise`` (group 0, index j)."""
        for j, gen in enumerate(self._generators[row]):
            gen.manual_seed(noise_seed(seed, _GROUP, j))

    def begin_window(self, stds: Sequence[float]) -> None:
        """Fix each row's noise std for the window; rows with std 0 get no noise and draw nothing."""
        self._stds = [float(s) for s in stds]
        for buf in self._buffers:
            buf.zero_()

    def add_(self, rows: Sequence[int], frozen: Sequence[Sequence[int]] | None = None) -> None:
        """Draw the next noise of each noisy row in ``rows`` and add it to the stacked gradients.

        ``frozen[i]`` lists row ``i``'s frozen tensors: like the single run, which adds noise only to
        tensors that still have a gradient, they draw nothing (their generators do not advance).
        """
        noisy = [i for i in rows if self._stds[i] > 0.0]
        if not noisy:
            return
        for i in noisy:
            std = self._stds[i]
            skip = frozen[i] if frozen else ()
            for j, (row, gen) in enumerate(self._rows[i]):
                if j not in skip:
                    draw_(row, std, gen)
        # Rows without noise (or not stepping) hold zeros or stale noise whose step is discarded.
        torch._foreach_add_([p.grad for p in self.params], self._buffers)
