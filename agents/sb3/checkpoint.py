"""Resumable SB3 trainings: ``SB3Agent.learn(..., checkpoint=path)``.

Hours-long trainings (the leaderboard's) outlive the process that runs them only if they keep
their progress. With a checkpoint path, ``learn`` saves the agent there every
:data:`CHECKPOINT_EVERY_S` seconds, always between two updates (at the start of a rollout, so the
windows counted are windows trained on), in the safe policy-zip format of :meth:`SB3Agent.save`
(policy and optimizer weights read back with ``weights_only=True``, settings and counters as JSON);
an off-policy algorithm's replay buffer goes beside it as ``<path stem>.replay.npz`` (compressed plain arrays,
``allow_pickle=False``). A later ``learn`` with the same path loads the checkpoint and trains only
the windows still missing; a finished ``learn`` removes both files.

A resumed training is a valid training of the same budget, not a bit-for-bit copy of an
uninterrupted one: the envs restart their episodes (reseeded from ``seed + windows done``), and
counters SB3 keeps outside its saved state (e.g. DQN's target-update phase) start again.
"""

from __future__ import annotations

import io
import os
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from aees_gym.core import checks
from aees_gym.core.fileio import FileCheckError, read_bytes_checked

#: Seconds between two checkpoints of one training.
CHECKPOINT_EVERY_S = 600.0
_BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def replay_path(path: Path | str) -> Path:
    """Where the replay buffer of the checkpoint at ``path`` is kept."""
    return Path(path).with_suffix(".replay.npz")


def save_checkpoint(agent: Any, path: Path | str) -> None:
    """Write ``agent``'s model (and replay buffer) to ``path``; the zip is written last, so it marks a whole checkpoint."""
    from aees_gym.core.fileio import atomic_write_bytes

    model = agent.model
    buffer = getattr(model, "replay_buffer", None)
    if buffer is not None:
        arrays = {name: getattr(buffer, name) for name in _BUFFER_ARRAYS if isinstance(getattr(buffer, name, None), np.ndarray)}
        data = io.BytesIO()
        np.savez_compressed(data, **arrays, pos=np.int64(buffer.pos), full=np.bool_(buffer.full),
                 num_timesteps=np.int64(model.num_timesteps))
        atomic_write_bytes(replay_path(path), data.getvalue())
    agent.save(path)


def load_checkpoint(agent: Any, path: Path | str, device: str) -> int:
    """Load the checkpoint at ``path`` into ``agent`` (its model and replay buffer); returns the windows trained.

    Raises:
        ValueError: If the checkpoint does not fit the agent's settings (from :meth:`SB3Agent.load`).
    """
    loaded = type(agent).load(path, device=device, algo=agent.algo, policy=agent.policy, policy_kwargs=agent.policy_kwargs,
                              algo_kwargs=agent.algo_kwargs, deterministic=agent.deterministic)
    model = loaded.model
    done = int(model.num_timesteps)
    buffer = getattr(model, "replay_buffer", None)
    if buffer is not None:
        _restore_buffer(buffer, replay_path(path), done)
    agent.model = model
    return done


def _restore_buffer(buffer: Any, path: Path, done: int) -> None:
    if not os.path.lexists(path):  # a FIFO or folder in its place is refused below, not skipped
        warnings.warn(f"{path} is missing: the resumed training starts with an empty replay buffer.", stacklevel=3)
        return
    try:
        _copy_buffer(buffer, path, done)
    except (ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile) as exc:  # object arrays are refused by allow_pickle=False
        raise ValueError(f"{path} is not a replay buffer this training can use ({exc}); delete it and the "
                         "checkpoint beside it to train from the start.") from None


def _npz_headers(raw: bytes) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
    """Shape and dtype of every array of an ``.npz``, read from the ``.npy`` headers before any array is unpacked."""
    headers = {}
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        for info in archive.infolist():
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(member)
            headers[info.filename.removesuffix(".npy")] = (shape, dtype)
    return headers


def _copy_buffer(buffer: Any, path: Path, done: int) -> None:
    expected = {name: getattr(buffer, name) for name in _BUFFER_ARRAYS if isinstance(getattr(buffer, name, None), np.ndarray)}
    limit = 2 * sum(a.nbytes for a in expected.values()) + (1 << 20)  # compressed arrays are never larger than raw ones by much
    try:
        raw = read_bytes_checked(path, max_bytes=limit, what="the replay buffer of this training")
    except FileCheckError as exc:
        raise ValueError(exc.reason) from None
    headers = _npz_headers(raw)
    for name in ("pos", "full", "num_timesteps"):
        if headers.get(name, (None,))[0] != ():
            raise ValueError(f"{name} must be one number, the file has {headers.get(name, ('nothing',))[0]}")
    for name, (shape, dtype) in headers.items():
        if name in expected and (shape != expected[name].shape or dtype.kind not in "biuf"):
            raise ValueError(f"{name} is a {dtype} array of shape {shape}; this replay buffer needs {expected[name].dtype} {expected[name].shape}")
        if name not in expected and name not in ("pos", "full", "num_timesteps"):
            raise ValueError(f"it holds {name!r}, which no replay buffer of this training has")
    with np.load(io.BytesIO(raw), allow_pickle=False) as stored:
        stored_at = checks.non_negative_int("num_timesteps", stored["num_timesteps"].item())
        if stored_at != done:
            warnings.warn(f"{path} belongs to another checkpoint (window {stored_at}, not {done}): "
                          "the resumed training starts with an empty replay buffer.", stacklevel=4)
            return
        pos = checks.integer("pos", stored["pos"].item(), minimum=0, maximum=buffer.buffer_size - 1)
        full = checks.boolean("full", stored["full"].item())
        arrays = {name: stored[name] for name in expected if name in stored.files}
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError(f"{name} holds NaN or infinite values")
    for name, array in arrays.items():  # every check passed: now the buffer changes
        expected[name][...] = array
    buffer.pos, buffer.full = pos, full


def remove_checkpoint(path: Path | str) -> None:
    Path(path).unlink(missing_ok=True)
    replay_path(path).unlink(missing_ok=True)


def with_checkpoints(callback: Any, agent: Any, path: Path | str, every_s: float | None = None,
                     saved_at: int | None = None) -> list[Any]:
    """``callback`` (as ``learn`` takes it) plus one that checkpoints ``agent`` every ``every_s`` seconds
    (default :data:`CHECKPOINT_EVERY_S`, read at the call).

    The added callback is the list's last; its ``saved_at`` is the window of the checkpoint on disk
    (``saved_at`` at the start: the one a resumed training loaded, or ``None``), for progress reports.
    """
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.sb3.budget import callback_list

    every_s = CHECKPOINT_EVERY_S if every_s is None else every_s

    class Checkpoint(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.saved_at = saved_at

        def _on_training_start(self) -> None:
            self._last = time.monotonic()

        def _on_rollout_start(self) -> None:
            if time.monotonic() - self._last >= every_s:
                save_checkpoint(agent, path)
                self.saved_at = int(self.model.num_timesteps)
                self._last = time.monotonic()

        def _on_step(self) -> bool:
            return True

    return [*callback_list(callback), Checkpoint()]


__all__ = ["CHECKPOINT_EVERY_S", "load_checkpoint", "remove_checkpoint", "replay_path", "save_checkpoint", "with_checkpoints"]
