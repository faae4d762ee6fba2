"""The shipped learned LR controller: ``make_agent("learned")``.

A small MLP policy trained with stable-baselines3 on cheap batched runs, exported to a weights-only
file inside this package (``agents/policies/<name>.npz``, read without pickle) with its provenance
beside it (``<name>.json``: training instances, reward, seeds, windows, hyperparameters, date,
commit). It acts deterministically with numpy/torch only — stable-baselines3 is not imported.

The policy was trained on one control track (:mod:`aees_gym.envs.tracks`), so the env or the loop
it drives must use that track's settings: :attr:`LearnedAgent.env_overrides` holds them, the suite
merges them into its runs, and a user's own loop passes them to ``ControlledTraining``::

    agent = make_agent("learned")
    ct = ControlledTraining(optimizer, agent, total_steps=1000, window_length=25,
                            reward_eval=heldout_loss, **agent.env_overrides)
    for x, y in batches:
        ct.before_step(); optimizer.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); ct.after_step(loss)

``reward_eval`` is the loss on a fixed held-out batch of the user's (a scalar tensor, no grad): the
controller observes its level and trend.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from agents.base import BaseAgent, candidate_grid

__all__ = ["DEFAULT_POLICY", "RECORDED", "LearnedAgent", "missing_policy_reason", "policy_path", "policy_record", "shipped_policies"]

#: The policy ``make_agent("learned")`` loads.
DEFAULT_POLICY = "learned-continuous"


def _policies_dir() -> Path:
    return Path(str(importlib.resources.files("agents") / "policies"))


def shipped_policies() -> list[str]:
    """Names of the policies shipped in the package."""
    return sorted(p.stem for p in _policies_dir().glob("*.npz"))


def policy_path(policy: str | Path) -> Path:
    """A shipped policy's name (``learned-continuous``, ``learned-relative``) or a path to a ``.npz`` policy file.

    Raises:
        FileNotFoundError: If it is neither (the message lists the shipped names).
    """
    path = Path(policy)
    if path.suffix == ".npz":
        if not path.is_file():
            raise FileNotFoundError(f"no policy file at {path}.")
        return path
    shipped = _policies_dir() / f"{policy}.npz"
    if not shipped.is_file():
        raise FileNotFoundError(f"no shipped policy {policy!r}; shipped: {shipped_policies()}, or pass a path to a .npz policy file.")
    return shipped


def _recorded_overrides(path: Path) -> dict[str, Any]:
    """The env settings recorded in a policy's sidecar (read as JSON only; no heavy import)."""
    meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    return dict(meta["provenance"]["env_overrides"])


def _training_name(folder: str) -> re.Match[str] | None:
    """``<algo>-<track>-<reward>-<set>-s<seed>``: the folder name ``experiments/train_learned.py train`` gives a training."""
    from aees_gym.envs.tracks import TRACKS  # here, not at import: it loads gymnasium

    # Longest first, so a track whose name extends another's ("continuous-lr") is not read as that one.
    tracks = "|".join(re.escape(t) for t in sorted(TRACKS, key=len, reverse=True))
    return re.match(rf"^(?P<algo>[a-z0-9]+)-(?P<track>{tracks})-(?P<reward>[a-z0-9_]+)-(?P<set>.+)-s(?P<seed>[0-9]+)$", folder)


#: Where ``train_learned.py`` trains (its ``--out`` default): the spec and progress of a training under way.
_TRAINING_DIR = Path("runs/learned")


def missing_policy_reason(policy: str | Path) -> str | None:
    """``None`` when ``policy`` names a policy that exists; else which file is missing and the command that writes it.

    A path inside a training's folder (``results/learned/<algo>-<track>-<reward>-<set>-s<seed>/policy.npz``)
    names the ``experiments/train_learned.py train`` command that makes it, with the hyperparameters of
    the training under way (``runs/learned/<training>/spec.json``) and its progress where they exist.
    """
    try:
        sidecar = policy_path(policy).with_suffix(".json")
        return None if sidecar.is_file() else f"the provenance {sidecar} beside policy file {policy} is missing; export the policy again"
    except FileNotFoundError as exc:
        path = Path(policy)
        if path.suffix != ".npz":
            return str(exc)
    why = f"policy file {path} does not exist yet"
    match = _training_name(path.parent.name)
    if match is None:
        return f"{why}; export one with `python experiments/train_learned.py export runs/learned/<training> {path}`"
    g = match.groupdict()
    spec_file, progress_file = _TRAINING_DIR / path.parent.name / "spec.json", _TRAINING_DIR / path.parent.name / "progress.json"
    kwargs, windows, progress = "'<the best configuration of its sweep>'", 500_000, ""
    try:
        spec = json.loads(spec_file.read_text(encoding="utf-8"))
        kwargs, windows = shlex.quote(json.dumps(spec["algo_kwargs"], sort_keys=True)), int(spec["windows"])
        done = json.loads(progress_file.read_text(encoding="utf-8"))
        progress = f"; under way: {int(done['windows_trained']):,} of {int(done['total_timesteps']):,} windows ({progress_file})"
    except (OSError, ValueError, KeyError, TypeError):  # no training started here (or its files are unreadable): the generic command
        pass
    command = (f"python experiments/train_learned.py train --algo {g['algo']} --track {g['track']} --set {g['set']} --reward {g['reward']} "
               f"--seeds {g['seed']} --windows {windows} --algo-kwargs {kwargs} --archive {path.parent.parent}")
    return f"{why}{progress}; `{command}` writes it"


def policy_record(policy: str | Path) -> dict[str, Any]:
    """What decides a policy's runs, for a run's record: its file's SHA-256 and the provenance that describes it.

    A retrained or re-exported policy changes the hash, so its runs are new runs (never mixed with the old ones).
    """
    path = policy_path(policy)
    provenance = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))["provenance"]
    keep = ("algo", "track", "reward", "instance_set", "training_seed", "windows_trained", "training_git_commit")
    return {"policy": str(policy), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), **{k: provenance.get(k) for k in keep}}


#: ``LearnedAgent(guard=RECORDED)``: the guard the policy's provenance records (``guard``), if any.
RECORDED = "recorded"


def _resolve_guard(guard: Any, provenance: Mapping[str, Any]) -> float | None:
    from agents.learned_guard import check_guard

    return check_guard(provenance.get("guard") if isinstance(guard, str) and guard == RECORDED else guard)


def _default_overrides() -> Mapping[str, Any]:
    try:
        return MappingProxyType(_recorded_overrides(policy_path(DEFAULT_POLICY)))
    except (OSError, KeyError, ValueError):  # an install without the shipped file still lists the agent
        return MappingProxyType({})


class LearnedAgent(BaseAgent):
    """A learned controller loaded from a shipped (or given) policy file; deterministic, no online learning.

    Args:
        policy: A shipped policy's name (default :data:`DEFAULT_POLICY`) or a path to a ``.npz`` file
            written by :func:`agents.learned_policy.save_policy`.
        guard: A held-out log-loss level: while the held-out loss is above ``exp(guard)`` × its value
            before training, the LR scale steps down ×0.5 per window instead of following the policy
            (:mod:`agents.learned_guard`; ``0.0`` is its declared setting). ``None``: no guard. Default
            ``"recorded"``: the guard recorded in the policy's provenance at export (none if it records none).

    Attributes:
        provenance: The policy's provenance record (training instances, reward, seeds, windows, …).
        env_overrides: The control-track settings the policy needs (grid, action mode, LR-scale
            bounds, observation features); the class attribute is the default policy's.
    """

    name = "learned"
    description = "learned LR controller: a small MLP trained with SB3 on batched runs, shipped weights-only"
    env_overrides: ClassVar[Mapping[str, Any]] = _default_overrides()

    def __init__(self, policy: str | Path = DEFAULT_POLICY, guard: float | str | None = RECORDED) -> None:
        from agents.learned_guard import guard_policy
        from agents.learned_policy import load_policy

        self.path = policy_path(policy)
        self.policy, self.provenance = load_policy(self.path)
        self.guard = _resolve_guard(guard, self.provenance)
        try:
            overrides = self.provenance["env_overrides"]
            self.features = tuple(overrides["context"]["features"])
            self.track = str(self.provenance["track"])
        except (KeyError, TypeError):
            raise ValueError(f"{self.path.with_suffix('.json')} records no env_overrides/track; export the policy with "
                             "agents.learned_training.export_policy.") from None
        self.env_overrides = MappingProxyType(dict(overrides))  # type: ignore[misc]  # this policy's own
        if self.guard is not None:
            self.policy = guard_policy(self.policy, self.features, overrides, self.guard)  # type: ignore[assignment]
        self._decoder: Any = None

    # The suite asks these of the class before constructing it (aees_gym.suite.agent_registry): a row's runs
    # need the policy's own track, and a policy file that does not exist yet leaves its row pending.
    @classmethod
    def env_overrides_for(cls, policy: str | Path = DEFAULT_POLICY, guard: float | str | None = RECORDED) -> dict[str, Any]:
        """The control-track settings of ``policy`` (read from its sidecar)."""
        return _recorded_overrides(policy_path(policy))

    @classmethod
    def missing_input(cls, policy: str | Path = DEFAULT_POLICY, guard: float | str | None = RECORDED) -> str | None:
        """Why the agent cannot run yet (its policy file is missing, and what writes it), or ``None``."""
        return missing_policy_reason(policy)

    @classmethod
    def run_record(cls, policy: str | Path = DEFAULT_POLICY, guard: float | str | None = RECORDED) -> dict[str, Any]:
        """The policy's hash and provenance summary (:func:`policy_record`), and the guard it runs with."""
        path = policy_path(policy)
        threshold = _resolve_guard(guard, json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))["provenance"])
        # Unguarded records stay as they were, so their archived runs still match.
        return policy_record(policy) if threshold is None else {**policy_record(policy), "guard": threshold}

    def reset(self, *, seed: int | None, observation_space: Any, action_space: Any, info: dict[str, Any]) -> None:
        """Check that the env or loop runs this policy's track (observation size, grid, action mode).

        Raises:
            ValueError: If it does not; the message says to pass ``**agent.env_overrides``.
        """
        fix = "build the env or ControlledTraining with **agent.env_overrides (the policy's control track)"
        if tuple(observation_space.shape) != (self.policy.n_inputs,):
            raise ValueError(f"the policy observes {self.policy.n_inputs} features {list(self.features)}; this env gives "
                             f"shape {observation_space.shape}: {fix}.")
        grid = candidate_grid(info)
        want = self.env_overrides["grid"]
        if [list(grid.lr_multipliers), list(grid.noise_stds)] != [list(want["lr_multipliers"]), list(want["noise_stds"])]:
            raise ValueError(f"the policy was trained on the grid {dict(want)}; this env's grid is lr {grid.lr_multipliers}, "
                             f"noise {grid.noise_stds}: {fix}.")
        if info.get("action_mode", "index") != self.env_overrides["action_mode"]:
            raise ValueError(f"the policy was trained with action_mode={self.env_overrides['action_mode']!r}, this env has "
                             f"{info.get('action_mode')!r}: {fix}.")
        if self.policy.discrete:
            if int(getattr(action_space, "n", -1)) != self.policy.n_actions:
                raise ValueError(f"the policy chooses among {self.policy.n_actions} grid cells; the action space is {action_space}: {fix}.")
            self._decoder = None
        else:
            from aees_gym.envs.wrappers import BoxDecoder  # deferred: listing agents must not import torch

            self._decoder = BoxDecoder(grid)  # type: ignore[arg-type]
            if self._decoder.space.shape != (self.policy.n_actions,):
                raise ValueError(f"the policy's Box has {self.policy.n_actions} dimensions, the grid {self._decoder.space.shape}: {fix}.")

    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """A grid mode id (discrete policies) or an exact ``Candidate`` (Box policies) for the next window."""
        if not self.policy.discrete and self._decoder is None:
            raise RuntimeError("call reset() first: a Box policy decodes its actions with the env's grid.")
        action = self.policy.act(np.asarray(obs, dtype=np.float32))[0]
        if self._decoder is None:
            return int(action)
        return self._decoder.candidate(action)
