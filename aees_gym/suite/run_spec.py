"""RunSpec: one run of a suite (task variant × agent × seed) and its stable ``run_id``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import PurePath
from typing import Any

from aees_gym.core.fileio import json_safe
from aees_gym.envs.registration import env_id as _env_id


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: equal data gives equal text on every machine."""
    return json.dumps(json_safe(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def stable_hash(value: Any, length: int = 16) -> str:
    """Hex SHA-256 prefix of :func:`canonical_json` of ``value``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:length]


def _plain(value: Any) -> Any:
    # Round-trip through canonical JSON: rejects what a result file cannot hold and drops tuples,
    # so a spec built in code and one read back from JSON hash identically.
    return json.loads(canonical_json(value))


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides one run; ``run_one(spec)`` needs nothing else.

    Args:
        suite: Suite name (the results sub-folder).
        task: Registered task name (``Digits``); the env id is ``aees_gym/<task>-v0``.
        task_label: Readable name of the task variant (``Digits lr×0.3``).
        agent: Agent entry-point name (``fixed``, ``ducb``, ``sb3`` …).
        agent_label: Readable, unique name of the agent configuration in its suite (``fixed ×1.0``).
        seed: Run seed, passed to ``env.reset(seed=…)`` and ``agent.reset(seed=…)``.
        env_overrides: Keyword arguments of ``gymnasium.make`` (task variant plus the agent's own
            ``env_overrides``, already merged).
        agent_kwargs: Constructor (or ``load``) keyword arguments of the agent.
        model_path: Trained model of an offline learner, loaded with ``cls.load(model_path, **agent_kwargs)``.
        sweep: Sweep coordinates of the task variant (``{"base_lr_multiplier": 0.3}``).
        training: How the offline learner was trained (``total_timesteps``, ``seeds``, ``n_envs`` …).
    """

    suite: str
    task: str
    task_label: str
    agent: str
    agent_label: str
    seed: int
    env_overrides: dict[str, Any] = field(default_factory=dict)
    agent_kwargs: dict[str, Any] = field(default_factory=dict)
    model_path: str | None = None
    sweep: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {self.seed!r}.")
        for name in ("env_overrides", "agent_kwargs", "sweep"):
            object.__setattr__(self, name, _plain(dict(getattr(self, name))))
        if self.training is not None:
            object.__setattr__(self, "training", _plain(dict(self.training)))
        if self.model_path is not None:
            object.__setattr__(self, "model_path", str(self.model_path))

    @property
    def env_id(self) -> str:
        return _env_id(self.task)

    @property
    def run_id(self) -> str:
        """Hash of the canonical JSON of the spec.

        The model path enters by file name only: the file name is itself a hash of the training
        settings, and the folder may move without changing which run this is.
        """
        data = asdict(self)
        if self.model_path is not None:
            data["model_path"] = PurePath(self.model_path).name
        return stable_hash(data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
