"""The stable-baselines3 (and sb3-contrib) algorithms an SB3Agent can use, imported only when used."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ALGORITHMS", "AlgorithmSpec", "algorithm_class", "algorithm_spec", "require_installed"]

_SB3_EXTRA = "install the 'sb3' extra: pip install 'aees-gym[sb3]'"
_CONTRIB_HINT = "install sb3-contrib: pip install sb3-contrib"
_ALL_SPACES = ("Box", "Discrete", "MultiDiscrete", "MultiBinary")


@dataclass(frozen=True)
class AlgorithmSpec:
    """Where an algorithm lives and what it can drive.

    Attributes:
        module: Python module that defines the class.
        cls: Class name.
        action_spaces: Names of the ``gymnasium.spaces`` classes the algorithm supports.
        default_policy: Policy used when the agent is given none.
        recurrent: Whether ``predict`` carries an LSTM state between windows.
        masked: Whether ``predict`` and training need action masks.
    """

    module: str
    cls: str
    action_spaces: tuple[str, ...]
    default_policy: str = "MlpPolicy"
    recurrent: bool = False
    masked: bool = False


ALGORITHMS: Mapping[str, AlgorithmSpec] = {
    "ppo": AlgorithmSpec("stable_baselines3", "PPO", _ALL_SPACES),
    "a2c": AlgorithmSpec("stable_baselines3", "A2C", _ALL_SPACES),
    "dqn": AlgorithmSpec("stable_baselines3", "DQN", ("Discrete",)),
    "sac": AlgorithmSpec("stable_baselines3", "SAC", ("Box",)),
    "td3": AlgorithmSpec("stable_baselines3", "TD3", ("Box",)),
    "qrdqn": AlgorithmSpec("sb3_contrib", "QRDQN", ("Discrete",)),
    "recurrentppo": AlgorithmSpec("sb3_contrib", "RecurrentPPO", _ALL_SPACES, "MlpLstmPolicy", recurrent=True),
    "maskableppo": AlgorithmSpec("sb3_contrib", "MaskablePPO", ("Discrete", "MultiDiscrete", "MultiBinary"), masked=True),
}


def algorithm_spec(algo: str) -> AlgorithmSpec:
    try:
        return ALGORITHMS[algo]
    except KeyError:
        raise ValueError(f"unknown algo {algo!r}; choose one of {sorted(ALGORITHMS)}.") from None


def require_installed(spec: AlgorithmSpec) -> None:
    if importlib.util.find_spec("stable_baselines3") is None:
        raise ImportError(f"SB3Agent needs stable-baselines3; {_SB3_EXTRA}.")
    if spec.module == "sb3_contrib" and importlib.util.find_spec("sb3_contrib") is None:
        raise ImportError(f"algo {spec.cls} comes from sb3-contrib; {_CONTRIB_HINT}.")


def algorithm_class(spec: AlgorithmSpec) -> Any:
    require_installed(spec)
    return getattr(importlib.import_module(spec.module), spec.cls)
