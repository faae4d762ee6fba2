"""Training a learned LR controller: SB3 on the batched engine, validated, resumable, exported.

One training is a :class:`TrainingSpec` (algorithm, control track, instance set, reward, seed,
windows, hyperparameters). :func:`train` runs it with ``SB3Agent.learn(vec_env="batched",
checkpoint=..., progress_file=...)`` on the set's *training* split, so a killed training resumes
from its checkpoint, and writes under ``out_dir/<spec.name>/``:

* ``spec.json`` — the spec; ``curve.json`` — learning curves: windows vs mean episode reward (every
  ``curve_every`` windows) and vs the validation score (every ``validate_every`` windows);
* ``model.zip`` — the SB3 model at the end; ``policy.npz`` + ``policy.json`` — the exported MLP
  with its provenance (:mod:`agents.learned_policy`); ``summary.json`` — the final validation.

The validation score is measured on *validation instances*: the training split's configurations
run with seeds no training or test run uses (:data:`VALIDATION_SEEDS`), never the test split. A
run's score is its final ``val_accuracy``; the validation score is their mean. The exported
(deterministic) policy is what is validated, exactly as it ships.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.learned_policy import MLPPolicy, export_sb3, save_policy

__all__ = [
    "ALGO_DEFAULTS", "VALIDATION_SEEDS", "TrainingSpec", "export_policy", "preflight", "train", "training_env_kwargs", "validate",
]

#: Seeds of the validation runs (training runs use the set's train seeds, test runs its test seeds).
VALIDATION_SEEDS = (500, 501)
#: Hyperparameters each algorithm starts from (SB3 defaults, adapted to 64 batched runs and small policies).
ALGO_DEFAULTS: dict[str, dict[str, Any]] = {
    "ppo": {"n_steps": 32, "batch_size": 256, "n_epochs": 10, "learning_rate": 3e-4, "gamma": 0.99, "ent_coef": 0.01},
    "sac": {"learning_rate": 3e-4, "buffer_size": 200_000, "batch_size": 256, "learning_starts": 2048, "train_freq": 1,
            "gradient_steps": 8, "gamma": 0.99},
    "dqn": {"learning_rate": 1e-4, "buffer_size": 200_000, "batch_size": 128, "learning_starts": 2048, "train_freq": 1,
            "gradient_steps": 8, "target_update_interval": 500, "exploration_fraction": 0.2, "gamma": 0.99},
    "qrdqn": {"learning_rate": 1e-4, "buffer_size": 200_000, "batch_size": 128, "learning_starts": 2048, "train_freq": 1,
              "gradient_steps": 8, "target_update_interval": 500, "exploration_fraction": 0.2, "gamma": 0.99},
}
_NET = {"ppo": {"net_arch": {"pi": [64, 64], "vf": [64, 64]}}, "sac": {"net_arch": [64, 64]}, "dqn": {"net_arch": [64, 64]},
        "qrdqn": {"net_arch": [64, 64], "n_quantiles": 50}}
_BOX_ALGOS = ("sac",)
_DISCRETE_ALGOS = ("dqn", "qrdqn")


@dataclass(frozen=True)
class TrainingSpec:
    """One training of a learned controller (round-trips through JSON).

    Args:
        algo: ``ppo`` (either track), ``sac`` (``continuous``), ``dqn`` or ``qrdqn`` (``relative``).
        track: Control track (:mod:`aees_gym.envs.tracks`).
        instance_set: Registered instance set; training uses its ``train`` split.
        reward: Registered reward (``heldout``, or ``aees`` for comparison).
        seed: Training seed (algorithm, policy and env seeds derive from it).
        windows: Env steps (windows) to train, all runs together.
        n_envs: Runs trained at once in the batched env.
        algo_kwargs: Hyperparameters over :data:`ALGO_DEFAULTS`.
        policy_kwargs: Policy settings over the default 64×64 MLP.
        validate_every: Windows between validation scores (0: only at the end).
        curve_every: Windows between points of the episode-reward curve.
        validation_seeds: Seeds of the validation runs.
        torch_threads: Torch threads of the training process.
        note: Free text copied into the provenance (what this training is).
    """

    algo: str = "ppo"
    track: str = "relative"
    instance_set: str = "digits-budget-v0"
    reward: str = "heldout"
    seed: int = 0
    windows: int = 500_000
    n_envs: int = 64
    algo_kwargs: Mapping[str, Any] = field(default_factory=dict)
    policy_kwargs: Mapping[str, Any] = field(default_factory=dict)
    validate_every: int = 50_000
    curve_every: int = 2048
    validation_seeds: tuple[int, ...] = VALIDATION_SEEDS
    torch_threads: int = 1
    note: str = ""

    def __post_init__(self) -> None:
        from aees_gym.envs.tracks import get_track

        if self.algo not in ALGO_DEFAULTS:
            raise ValueError(f"algo={self.algo!r} is not one of {sorted(ALGO_DEFAULTS)}.")
        kind = get_track(self.track).action
        if (self.algo in _BOX_ALGOS and kind != "box") or (self.algo in _DISCRETE_ALGOS and kind != "discrete"):
            fitting = "continuous" if self.algo in _BOX_ALGOS else "relative"
            raise ValueError(f"algo={self.algo!r} needs the {fitting!r} track, not {self.track!r}.")
        for name in ("windows", "n_envs", "curve_every", "torch_threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if isinstance(self.validate_every, bool) or not isinstance(self.validate_every, int) or self.validate_every < 0:
            raise ValueError(f"validate_every must be an integer >= 0 (0: only at the end), got {self.validate_every!r}.")
        if not self.validation_seeds:
            raise ValueError("validation_seeds must name at least one seed.")
        object.__setattr__(self, "validation_seeds", tuple(int(s) for s in self.validation_seeds))
        object.__setattr__(self, "algo_kwargs", dict(self.algo_kwargs))
        object.__setattr__(self, "policy_kwargs", dict(self.policy_kwargs))

    @property
    def name(self) -> str:
        return f"{self.algo}-{self.track}-{self.reward}-{self.instance_set}-s{self.seed}"

    def hyperparameters(self) -> dict[str, Any]:
        """The algorithm's settings and policy settings this training uses."""
        return {"algo_kwargs": {**ALGO_DEFAULTS[self.algo], **self.algo_kwargs}, "policy_kwargs": {**_NET[self.algo], **self.policy_kwargs}}

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["validation_seeds"] = list(self.validation_seeds)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainingSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise KeyError(f"unknown TrainingSpec keys {unknown}; valid keys are {sorted(names)}.")
        return cls(**{**data, "validation_seeds": tuple(data.get("validation_seeds", VALIDATION_SEEDS))})


def preflight(spec: TrainingSpec) -> None:
    """Check everything a training needs before it starts (packages, reward, instance set, batchability).

    Raises:
        RuntimeError: Listing every problem found, each with its fix.
    """
    import importlib.util

    problems = []
    for module, fix in (("stable_baselines3", "pip install 'aees-gym[sb3]'"), ("torch", "pip install torch")):
        if importlib.util.find_spec(module) is None:
            problems.append(f"{module} is not installed ({fix})")
    if spec.algo == "qrdqn" and importlib.util.find_spec("sb3_contrib") is None:
        problems.append("qrdqn needs sb3-contrib (pip install sb3-contrib)")
    try:
        from aees_gym.core.reward import registered_rewards
        from aees_gym.tasks.batched import batching_problem

        if spec.reward not in registered_rewards():
            problems.append(f"reward {spec.reward!r} is not registered (choose one of {list(registered_rewards())})")
        else:
            for inst in _listed_instances(spec.instance_set):
                problem = batching_problem(inst.config(**_env_settings(spec)))
                if problem is not None:
                    problems.append(f"instance {inst.name}: {problem}")
                    break
    except (KeyError, ValueError) as exc:
        problems.append(str(exc).strip("'\""))
    if problems:
        raise RuntimeError("cannot start the training: " + "; ".join(problems) + ".")


def _listed_instances(instance_set: str) -> tuple[Any, ...]:
    """Instances that stand for what a training on ``instance_set`` runs: its train split, or a family's tuning split."""
    from aees_gym.envs.families import get_family, is_family
    from aees_gym.envs.instances import get_instance_set

    if is_family(instance_set):
        family = get_family(instance_set)
        family._check_split("train")  # an out-of-distribution family has none: it cannot be trained on
        return family.split("tuning")
    return get_instance_set(instance_set).split("train")


def _env_settings(spec: TrainingSpec) -> dict[str, Any]:
    from aees_gym.envs.tracks import track_overrides

    return {**track_overrides(spec.track), "reward": {"name": spec.reward}}


def training_env_kwargs(spec: TrainingSpec, instance_set: str | None = None, split: str = "train") -> dict[str, Any]:
    """``env_kwargs`` of the batched SB3 env (``agents.sb3.vec.BatchedVecEnv``) of this training."""
    from aees_gym.envs.tracks import get_track

    kwargs = {**_env_settings(spec), "instance_set": instance_set or spec.instance_set, "split": split,
              "torch_threads": spec.torch_threads}
    if get_track(spec.track).action == "box":
        kwargs["box_actions"] = True
    return kwargs


# ------------------------------------------------------------------ validation
def validation_set(instance_set: str, seeds: tuple[int, ...]) -> str:
    """Register (once) the set whose ``train`` split is ``instance_set``'s training configurations run with ``seeds``."""
    from aees_gym.envs.instances import InstanceSet, derived_set_name, get_instance_set, make_instance, register_instance_set

    parent = get_instance_set(instance_set)
    configurations = dict.fromkeys((inst.task, inst.overrides) for inst in parent.split("train"))
    used = {inst.seed for inst in parent.split("train") + parent.split("test")}
    clash = sorted(set(seeds) & used)
    if clash:
        raise ValueError(f"validation seeds {clash} are used by {instance_set!r}'s own runs; choose others.")
    members = tuple(make_instance(task, dict(overrides), s) for task, overrides in configurations for s in seeds)
    name = derived_set_name(instance_set, "validation-" + "-".join(map(str, seeds)))
    derived = InstanceSet(name, f"{parent.description} (training configurations, validation seeds {list(seeds)})",
                          members, parent.split("test"))
    return register_instance_set(derived, overwrite=True).name


def validation_groups(spec: TrainingSpec) -> list[tuple[str, str, tuple[Any, ...]]]:
    """``(instance set, split, instances)`` per architecture of the validation runs of ``spec``.

    A family validates on its ``tuning`` split (fixed instances that never score); an enumerated
    set on its training configurations run with :attr:`TrainingSpec.validation_seeds`.
    """
    from aees_gym.envs.families import get_family, is_family
    from agents.sb3.vec import architecture_groups

    if is_family(spec.instance_set):
        family = get_family(spec.instance_set)
        groups = [(f"{family.name}@arch{k}", "tuning") for k in range(len(family.architectures))]
        return [(name, split, get_family(name).split(split)) for name, split in groups if get_family(name).split(split)]
    vset = validation_set(spec.instance_set, spec.validation_seeds)
    return [(name, "train", members) for name, members in architecture_groups(vset, "train", _env_settings(spec))]


def validate(policy: MLPPolicy, spec: TrainingSpec) -> dict[str, Any]:
    """Run the deterministic ``policy`` once on every validation instance (batched); their final metrics.

    Returns:
        ``score`` (mean final val_accuracy), ``median_val_loss``, ``return`` (mean episode
        reward), ``runs`` and ``validation_windows`` run, and the ``instance_sets`` they came from.
    """
    from aees_gym.envs.vector_env import AEESVectorEnv
    from aees_gym.envs.wrappers import BoxDecoder

    settings = _env_settings(spec)
    accuracies, losses, returns, windows, where = [], [], [], 0, []
    for name, split, members in validation_groups(spec):
        where.append(f"{name}:{split}")
        venv = AEESVectorEnv(members[0].task, len(members), instance_set=name, split=split, torch_threads=spec.torch_threads, **settings)
        decoder = None if policy.discrete else BoxDecoder(venv.grid)
        obs = {row: venv.reset_rows([row], [0], {"instance": inst.name})[0][0] for row, inst in enumerate(members)}
        total = dict.fromkeys(obs, 0.0)
        while obs:
            rows = sorted(obs)
            actions = policy.act(np.stack([obs[r] for r in rows]))
            chosen = {r: (int(a) if decoder is None else decoder.candidate(a)) for r, a in zip(rows, actions, strict=True)}
            for row, (next_obs, reward, done, info) in venv.step_rows(chosen).items():
                total[row] += reward
                windows += 1
                if done:
                    del obs[row]
                    accuracies.append(info["final_metrics"]["val_accuracy"])
                    losses.append(info["final_metrics"]["val_loss"])
                    returns.append(total[row])
                else:
                    obs[row] = next_obs
        venv.close()
    # The median loss: one diverged run (a base LR far too high) would otherwise swamp the mean.
    return {"score": float(np.mean(accuracies)), "median_val_loss": float(np.median(losses)), "return": float(np.mean(returns)),
            "runs": len(accuracies), "validation_windows": windows, "instance_sets": where}


# ------------------------------------------------------------------ export and provenance
def constant_policy(spec: TrainingSpec, n_inputs: int) -> MLPPolicy:
    """The policy that always keeps the LR scale (×1, no noise): the untouched base LR, a reference for validation scores."""
    from aees_gym.core.grid import CandidateGrid
    from aees_gym.envs.tracks import get_track, track_overrides

    if get_track(spec.track).action == "box":  # u = 0 is ×2^0; v = -1 is the lowest noise (0)
        bias, head, bounds = np.array([0.0, -1e3], np.float32), "tanh", {"action_low": (-1.0, -1.0), "action_high": (1.0, 1.0)}
    else:
        grid = CandidateGrid.from_dict(track_overrides(spec.track)["grid"])
        bias, head, bounds = np.zeros(grid.size, np.float32), "argmax", {}
        bias[grid.nearest(1.0, 0.0)] = 1.0
    return MLPPolicy((np.zeros((len(bias), n_inputs), np.float32),), (bias,), ("none",), head, **bounds)


def git_commit() -> str:
    """The repository's commit (``+dirty`` with uncommitted changes), or ``unknown`` outside a checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True).stdout
        return commit + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def export_policy(model: Any, spec: TrainingSpec, path: Path | str, *, windows: int, validation: Mapping[str, Any] | None = None,
                  extra: Mapping[str, Any] | None = None) -> Path:
    """Export ``model``'s deterministic policy to ``path`` (``.npz``) with the provenance of ``spec``."""
    from aees_gym.core.hostinfo import utc_now
    from aees_gym.envs.families import get_instances, is_family
    from aees_gym.envs.tracks import track_overrides

    source = get_instances(spec.instance_set)
    listed = ("drawn afresh from the family's train distribution at every reset" if is_family(spec.instance_set)
              else [inst.name for inst in source.split("train")])
    provenance = {
        "agent": "learned", "algo": spec.algo, "track": spec.track, "reward": spec.reward,
        "instance_set": spec.instance_set, "instance_set_description": source.description, "training_split": "train",
        "training_instances": listed,
        "training_seed": spec.seed, "windows_trained": int(windows), "n_envs": spec.n_envs,
        "hyperparameters": spec.hyperparameters(), "env_overrides": track_overrides(spec.track),
        "validation": dict(validation) if validation is not None else None,
        "validation_seeds": list(spec.validation_seeds), "date_utc": utc_now(), "git_commit": git_commit(),
        "note": spec.note, **dict(extra or {}),
    }
    return save_policy(export_sb3(model), path, provenance)


# ------------------------------------------------------------------ training
def train(spec: TrainingSpec, out_dir: Path | str = "runs/learned") -> dict[str, Any]:
    """Train (or resume) ``spec``; returns the summary also written to ``<out_dir>/<spec.name>/summary.json``.

    A finished training is not trained again: its summary is returned. A killed one resumes from
    ``checkpoint.zip`` (saved every 10 minutes) and its curves go on from the checkpoint's window.

    Raises:
        RuntimeError: If something the training needs is missing (:func:`preflight`), before anything runs.
        ValueError: If the folder holds a different training.
    """
    from aees_gym.core.fileio import atomic_write_json
    from aees_gym.core.threads import apply_torch_threads
    from agents.learned_curves import curve_callback
    from agents.sb3 import SB3Agent

    preflight(spec)
    apply_torch_threads(spec.torch_threads)
    folder = Path(out_dir) / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    spec_path = folder / "spec.json"
    if spec_path.is_file() and TrainingSpec.from_json(json.loads(spec_path.read_text())) != spec:
        raise ValueError(f"{folder} holds another training ({spec_path}); choose another out_dir or delete it.")
    finished = finished_summary(folder, spec)
    if finished is not None:
        return finished
    atomic_write_json(spec_path, spec.to_json())
    hyper = spec.hyperparameters()
    agent = SB3Agent(spec.algo, policy_kwargs=hyper["policy_kwargs"], algo_kwargs=hyper["algo_kwargs"])
    started = time.perf_counter()
    callback = curve_callback(folder / "curve.json", spec, lambda model: validate(export_sb3(model), spec))
    agent.learn(_task_of_set(spec.instance_set), spec.windows, seed=spec.seed, n_envs=spec.n_envs,
                env_kwargs=training_env_kwargs(spec), vec_env="batched", callback=callback, progress_file=folder / "progress.json",
                checkpoint=folder / "checkpoint.zip", progress_bar=False)
    seconds = time.perf_counter() - started
    agent.save(folder / "model.zip")
    windows = int(agent.model.num_timesteps)
    validation = validate(export_sb3(agent.model), spec)
    export_policy(agent.model, spec, folder / "policy.npz", windows=windows, validation=validation)
    summary = {"spec": spec.to_json(), "windows_trained": windows, "resumed_at": agent.resumed_at, "seconds_this_sitting": seconds,
               "git_commit": git_commit(),
               "validation": validation, "policy": "policy.npz", "model": "model.zip", "curve": "curve.json"}
    atomic_write_json(folder / "summary.json", summary)
    return summary


def finished_summary(folder: Path, spec: TrainingSpec) -> dict[str, Any] | None:
    """The summary of ``spec``'s training in ``folder`` when it has finished, else ``None``."""
    path = folder / "summary.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text(encoding="utf-8"))
    done = summary.get("spec") == spec.to_json() and summary.get("windows_trained", 0) >= spec.windows
    return summary if done else None


def _task_of_set(instance_set: str) -> str:
    from aees_gym.envs.families import get_instances

    return get_instances(instance_set).tasks[0]
