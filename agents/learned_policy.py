"""A learned controller's policy as a plain MLP file: exported from SB3, loaded without SB3 or pickle.

The file is an ``.npz`` of float32 arrays only (``layer<i>_weight``, ``layer<i>_bias``), read with
``numpy.load(..., allow_pickle=False)``, so loading it cannot run code. Beside it, a JSON sidecar
(same stem, ``.json``) holds the architecture (activation of each layer, the head that turns the
last layer's output into an action) and the provenance (where the weights came from). The forward
pass is the SB3 policy's deterministic ``predict``:

* ``argmax`` — PPO/A2C logits or DQN Q-values → the action index;
* ``quantile_argmax`` — QR-DQN quantiles ``[n_quantiles × n_actions]`` → mean per action → argmax;
* ``clip`` — PPO/A2C Gaussian mean, clipped to the Box (what ``predict`` does);
* ``tanh`` — SAC/TD3 actor output squashed and rescaled to the Box.

:func:`export_sb3` reads these layers out of a trained stable-baselines3 model; :func:`save_policy`
and :func:`load_policy` write and read the pair of files.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["HEADS", "FORMAT", "MLPPolicy", "export_sb3", "load_policy", "save_policy"]

#: Format tag of the JSON sidecar; a changed layout gets a new one.
FORMAT = "aees_gym.mlp_policy.v1"
HEADS = ("argmax", "quantile_argmax", "clip", "tanh")
ACTIVATIONS = ("tanh", "relu", "none")
MAX_BYTES = 1_000_000  # a shipped policy stays small


@dataclass(frozen=True)
class MLPPolicy:
    """Linear layers with activations and an action head.

    Attributes:
        weights: ``[out, in]`` float32 matrices, first layer first.
        biases: ``[out]`` float32 vectors.
        activations: One of :data:`ACTIVATIONS` after each layer (``none`` after the last).
        head: One of :data:`HEADS`.
        n_quantiles: Quantiles per action (``quantile_argmax`` only).
        action_low: Box lower bounds (``clip``/``tanh`` heads).
        action_high: Box upper bounds (``clip``/``tanh`` heads).
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    activations: tuple[str, ...]
    head: str
    n_quantiles: int = 0
    action_low: tuple[float, ...] = ()
    action_high: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"policy head {self.head!r} is not one of {HEADS}.")
        if not self.weights or not (len(self.weights) == len(self.biases) == len(self.activations)):
            raise ValueError(f"a policy needs one bias and one activation per weight matrix; got {len(self.weights)}, "
                             f"{len(self.biases)} and {len(self.activations)}.")
        bad = [a for a in self.activations if a not in ACTIVATIONS]
        if bad:
            raise ValueError(f"activations {bad} are not among {ACTIVATIONS}.")
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if w.ndim != 2 or b.shape != (w.shape[0],) or (i and w.shape[1] != self.weights[i - 1].shape[0]):
                raise ValueError(f"layer {i}: weight {w.shape} and bias {b.shape} do not chain with the layer before.")
            if not (np.isfinite(w).all() and np.isfinite(b).all()):
                raise ValueError(f"layer {i} holds non-finite weights.")
        if self.head == "quantile_argmax" and (self.n_quantiles < 1 or self.weights[-1].shape[0] % self.n_quantiles):
            raise ValueError(f"{self.weights[-1].shape[0]} outputs are not a whole number of actions × {self.n_quantiles} quantiles.")
        if self.head in ("clip", "tanh") and not (len(self.action_low) == len(self.action_high) == self.weights[-1].shape[0]):
            raise ValueError(f"a Box head needs {self.weights[-1].shape[0]} action bounds, got {len(self.action_low)}.")

    @property
    def n_inputs(self) -> int:
        return int(self.weights[0].shape[1])

    @property
    def discrete(self) -> bool:
        return self.head in ("argmax", "quantile_argmax")

    @property
    def n_actions(self) -> int:
        """Number of discrete actions, or the Box's dimension."""
        out = int(self.weights[-1].shape[0])
        return out // self.n_quantiles if self.head == "quantile_argmax" else out

    def forward(self, obs: np.ndarray) -> np.ndarray:
        """The last layer's output for a ``[batch, n_inputs]`` (or ``[n_inputs]``) observation, in float32 as SB3 computes it."""
        import torch

        x = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(-1, self.n_inputs)
        with torch.no_grad():
            for w, b, act in zip(self.weights, self.biases, self.activations, strict=True):
                x = torch.nn.functional.linear(x, torch.from_numpy(w), torch.from_numpy(b))
                x = torch.tanh(x) if act == "tanh" else torch.relu(x) if act == "relu" else x
        return x.numpy()

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic actions ``[batch]`` (int64) or ``[batch, dim]`` (float32) for a batch of observations."""
        out = self.forward(obs)
        if self.head == "argmax":
            return out.argmax(axis=1)
        if self.head == "quantile_argmax":
            return out.reshape(len(out), self.n_quantiles, -1).mean(axis=1).argmax(axis=1)
        low, high = np.asarray(self.action_low, dtype=np.float32), np.asarray(self.action_high, dtype=np.float32)
        if self.head == "tanh":
            return low + 0.5 * (np.tanh(out) + 1.0) * (high - low)
        return np.clip(out, low, high)

    def architecture(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "head": self.head, "activations": list(self.activations), "n_quantiles": self.n_quantiles,
            "layer_sizes": [self.n_inputs] + [int(w.shape[0]) for w in self.weights],
            "action_low": list(self.action_low), "action_high": list(self.action_high),
        }


# ------------------------------------------------------------------ export from SB3
def _linear_chain(modules: Sequence[Any]) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Weights, biases and activations of a chain of ``Linear`` / ``Tanh`` / ``ReLU`` modules."""
    import torch

    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    activations: list[str] = []
    for module in modules:
        if isinstance(module, torch.nn.Linear):
            weights.append(module.weight.detach().cpu().numpy().astype(np.float32).copy())
            biases.append(module.bias.detach().cpu().numpy().astype(np.float32).copy())
            activations.append("none")
        elif isinstance(module, torch.nn.Tanh | torch.nn.ReLU) and weights:
            activations[-1] = "tanh" if isinstance(module, torch.nn.Tanh) else "relu"
        elif isinstance(module, torch.nn.Sequential):
            w, b, a = _linear_chain(list(module))
            weights, biases, activations = weights + w, biases + b, activations + a
        else:
            raise ValueError(f"cannot export a {type(module).__name__} layer; the exporter reads Linear, Tanh and ReLU layers only.")
    return weights, biases, activations


def _check_flat_features(policy: Any) -> None:
    from stable_baselines3.common.torch_layers import FlattenExtractor

    extractors = [getattr(policy, name, None) for name in ("features_extractor", "pi_features_extractor")]
    extractors += [getattr(getattr(policy, "actor", None), "features_extractor", None)]
    for ex in extractors:
        if ex is not None and not isinstance(ex, FlattenExtractor):
            raise ValueError(f"cannot export a policy whose features extractor is {type(ex).__name__}; use the default MlpPolicy.")


def export_sb3(model: Any) -> MLPPolicy:
    """The deterministic policy of a stable-baselines3 model (PPO, A2C, DQN, QR-DQN, SAC, TD3) as an :class:`MLPPolicy`.

    Raises:
        ValueError: If the model is recurrent, uses a features extractor other than flattening, or
            is an algorithm the exporter does not know (the message names it).
    """
    from gymnasium import spaces

    policy, name = model.policy, type(model).__name__
    _check_flat_features(policy)
    box = model.action_space if isinstance(model.action_space, spaces.Box) else None
    bounds = {"action_low": tuple(float(v) for v in box.low), "action_high": tuple(float(v) for v in box.high)} if box is not None else {}
    if name in ("PPO", "A2C", "MaskablePPO"):
        if getattr(policy.mlp_extractor, "shared_net", None) is not None and len(policy.mlp_extractor.shared_net):
            raise ValueError("cannot export an actor-critic policy with shared layers; use separate pi/vf net_arch.")
        w, b, a = _linear_chain([policy.mlp_extractor.policy_net, policy.action_net])
        if box is not None and getattr(policy, "squash_output", False):
            return MLPPolicy(tuple(w), tuple(b), tuple(a), "tanh", **bounds)
        return MLPPolicy(tuple(w), tuple(b), tuple(a), "clip" if box is not None else "argmax", **bounds)
    if name == "DQN":
        w, b, a = _linear_chain([policy.q_net.q_net])
        return MLPPolicy(tuple(w), tuple(b), tuple(a), "argmax")
    if name == "QRDQN":
        w, b, a = _linear_chain([policy.quantile_net.quantile_net])
        return MLPPolicy(tuple(w), tuple(b), tuple(a), "quantile_argmax", n_quantiles=int(policy.quantile_net.n_quantiles))
    if name == "SAC":
        w, b, a = _linear_chain([policy.actor.latent_pi, policy.actor.mu])
        return MLPPolicy(tuple(w), tuple(b), tuple(a), "tanh", **bounds)
    if name == "TD3":
        modules = list(policy.actor.mu)
        if modules and type(modules[-1]).__name__ == "Tanh":
            modules = modules[:-1]  # the head applies the tanh
        w, b, a = _linear_chain(modules)
        return MLPPolicy(tuple(w), tuple(b), tuple(a), "tanh", **bounds)
    raise ValueError(f"cannot export a {name} policy; the exporter knows PPO, A2C, MaskablePPO, DQN, QRDQN, SAC and TD3.")


# ------------------------------------------------------------------ files
def sidecar(path: Path | str) -> Path:
    """The JSON file beside the policy file ``path``."""
    return Path(path).with_suffix(".json")


def save_policy(policy: MLPPolicy, path: Path | str, provenance: Mapping[str, Any]) -> Path:
    """Write ``policy`` to ``path`` (``.npz``) and its architecture + ``provenance`` to the JSON sidecar, atomically.

    Raises:
        ValueError: If ``path`` does not end in ``.npz`` or the file would exceed 1 MB.
    """
    from aees_gym.core.fileio import atomic_write_bytes, atomic_write_json

    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"a policy file ends in .npz, got {path}.")
    arrays = {}
    for i, (w, b) in enumerate(zip(policy.weights, policy.biases, strict=True)):
        arrays[f"layer{i}_weight"], arrays[f"layer{i}_bias"] = w, b
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    if buffer.tell() > MAX_BYTES:
        raise ValueError(f"the policy takes {buffer.tell():,} bytes, more than {MAX_BYTES:,}; export a smaller network (net_arch).")
    atomic_write_json(sidecar(path), {"architecture": policy.architecture(), "provenance": dict(provenance)})
    return atomic_write_bytes(path, buffer.getvalue())


def load_policy(path: Path | str) -> tuple[MLPPolicy, dict[str, Any]]:
    """Read a policy written by :func:`save_policy`; returns it with its provenance.

    Raises:
        FileNotFoundError: If the policy or its JSON sidecar is missing.
        ValueError: If either is not what :func:`save_policy` writes (the message says what is wrong).
    """
    path = Path(path)
    meta_path = sidecar(path)
    for p in (path, meta_path):
        if not p.is_file():
            raise FileNotFoundError(f"no policy file at {p}; a policy is a .npz with its .json sidecar (agents.learned_policy.save_policy).")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        arch = meta["architecture"]
        if arch.get("format") != FORMAT:
            raise ValueError(f"format {arch.get('format')!r} is not {FORMAT!r}")
        n_layers = len(arch["activations"])
        with np.load(path, allow_pickle=False) as data:  # plain arrays only: nothing in the file can run
            expected = {f"layer{i}_{kind}" for i in range(n_layers) for kind in ("weight", "bias")}
            if set(data.files) != expected:
                raise ValueError(f"arrays {sorted(data.files)} are not the {n_layers} layers the sidecar describes")
            weights = tuple(np.asarray(data[f"layer{i}_weight"], dtype=np.float32) for i in range(n_layers))
            biases = tuple(np.asarray(data[f"layer{i}_bias"], dtype=np.float32) for i in range(n_layers))
        policy = MLPPolicy(
            weights, biases, tuple(arch["activations"]), arch["head"], int(arch.get("n_quantiles", 0)),
            tuple(float(v) for v in arch.get("action_low", ())), tuple(float(v) for v in arch.get("action_high", ())),
        )
        sizes = [policy.n_inputs] + [int(w.shape[0]) for w in weights]
        if sizes != list(arch["layer_sizes"]):
            raise ValueError(f"layer sizes {sizes} differ from the sidecar's {arch['layer_sizes']}")
        if any(not math.isfinite(v) for v in policy.action_low + policy.action_high):
            raise ValueError("action bounds must be finite")
    except (KeyError, TypeError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} (with {meta_path.name}) is not a policy this version can read: {exc}. "
                         "Export it again with agents.learned_policy.save_policy.") from None
    return policy, dict(meta.get("provenance", {}))
