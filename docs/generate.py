"""Generate ``docs/environments.md`` from the task, instance-set and family registries.

``python docs/generate.py`` writes the page and ``docs/env_step_seconds.json``, the measured CPU
seconds per env step. Measuring runs real training (one torch thread, three env steps per id, with
the task's defaults, or its smoke settings when it needs data files), so stored measurements are
reused and only ids without one are measured; ``--remeasure`` measures all again. A test renders
the page from the registries and the stored JSON and compares it with the file, so the page cannot
drift from the code: after adding a task or an instance set, run ``python docs/generate.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aees_gym.core import context as ctx
from aees_gym.core.fileio import atomic_write_text
from aees_gym.envs.families import CENTRE_LR, SEED_RANGES, InstanceFamily, registered_families
from aees_gym.envs.instances import DESCRIPTOR_FEATURES, InstanceSet, registered_instance_sets
from aees_gym.envs.registration import env_id
from aees_gym.tasks import TaskSpec, registered_tasks
from aees_gym.tasks.config import EnvConfig

ROOT = Path(__file__).resolve().parents[1]
DOC_PATH = ROOT / "docs" / "environments.md"
TIMINGS_PATH = ROOT / "docs" / "env_step_seconds.json"
MEASURED_STEPS = 3


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def _seconds(timing: Mapping[str, Any] | None) -> str:
    if not timing:
        return "not measured"
    if timing.get("seconds_per_step") is None:
        return f"not measured ({timing.get('note', 'no data')})"
    where = "smoke settings" if timing.get("settings") == "smoke" else "defaults"
    return f"{timing['seconds_per_step']:.3g} s ({where})"


def _grid_line(config: EnvConfig) -> str:
    g = config.grid
    return (
        f"`Discrete({g.size})`, mode id = lr_idx × {g.n_noise} + noise_idx over lr × "
        f"{{{', '.join(_num(v) for v in g.lr_multipliers)}}} and noise σ {{{', '.join(_num(v) for v in g.noise_stds)}}}"
    )


def _reward_line(config: EnvConfig) -> str:
    r = config.reward
    return (
        f"`{r.name}`: clip(ln(EMA_start + ε) − ln(EMA_end + ε) − λ·instability, {_num(r.clip_min)}, {_num(r.clip_max)}) "
        f"with α = {_num(r.ema_alpha)}, λ = {_num(r.instability_lambda)}; divergence → {_num(r.on_divergence)}"
    )


def task_section(spec: TaskSpec, timing: Mapping[str, Any] | None) -> list[str]:
    """The page section of one env id."""
    c = spec.default_config()
    evaluation = f"every {c.eval_every} windows and at the end" if c.eval_every else "at the end of the run"
    target = "" if c.target_accuracy is None else f"; steps-to-target at accuracy {_num(c.target_accuracy)}"
    lines = [
        f"### `{env_id(spec.name)}`",
        "",
        spec.description,
        "",
        f"- **Task / model**: `{spec.name}` — {spec.model or 'see the task module'}",
        f"- **Data**: {spec.data or 'see the task module'}" + (" (files on disk; prepare them first)" if spec.requires_files else ""),
        f"- **Budget**: {c.total_steps} optimizer steps in windows of {c.window_length} = {c.n_windows} env steps per episode; batch {c.batch_size}",
        f"- **Optimizer**: {c.optimizer}, base LR {_num(c.base_lr)}, weight decay {_num(c.weight_decay)}, schedule `{c.schedule}`"
        + (f", label noise {_num(c.label_noise)} ({c.label_noise_kind})" if c.label_noise else ""),
        f"- **Evaluation**: {evaluation}{target}",
        f"- **Action**: {_grid_line(c)}",
        f"- **Reward**: {_reward_line(c)}",
        f"- **CPU seconds per env step** (1 torch thread): {_seconds(timing)}",
    ]
    if spec.requires_files and spec.smoke_overrides:
        lines.append(f"- **Smoke settings**: `{json.dumps(spec.smoke_overrides, sort_keys=True)}`")
    if c.options is not None:
        opts = ", ".join(f"`{f.name}`={_num(getattr(c.options, f.name))!s}" for f in dataclasses.fields(c.options))
        lines.append(f"- **Task options** (`gym.make` keywords): {opts}")
    lines += ["", "Observation (`Box(float32)`):", ""]
    rows = [(i, f"`{d['name']}`", _num(d["low"]), _num(d["high"]), d["description"]) for i, d in enumerate(ctx.describe_features(c))]
    return lines + _table(("#", "feature", "low", "high", "meaning"), rows) + [""]


def summary_table(specs: Sequence[TaskSpec], timings: Mapping[str, Any]) -> list[str]:
    rows = []
    for spec in specs:
        c = spec.default_config()
        rows.append((
            f"`{env_id(spec.name)}`", spec.model or spec.name, c.total_steps, c.window_length, c.n_windows,
            f"{c.optimizer} {_num(c.base_lr)}", "yes" if spec.requires_files else "no", _seconds(timings.get(env_id(spec.name))),
        ))
    header = ("id", "model", "budget (steps)", "window", "env steps", "optimizer / base LR", "needs files", "CPU s / env step")
    return _table(header, rows) + [""]


def instance_set_section(s: InstanceSet) -> list[str]:
    lines = [f"### `{s.name}`", "", s.description + ".", "", f"Tasks: {', '.join(f'`{t}`' for t in s.tasks)}; "
             f"{len(s.train)} train and {len(s.test)} test instances.", ""]
    rows = [(split, i, f"`{inst.task}`", f"`{json.dumps(inst.env_overrides, sort_keys=True)}`", inst.seed)
            for split in ("train", "test") for i, inst in enumerate(s.split(split))]
    return lines + _table(("split", "index", "task", "overrides", "seed"), rows) + [""]


_FAMILY_USAGE = """**Instance families** (`aees_gym.envs.families`) draw runs from wide distributions instead of listing
them. A family is a seeded sampler over an architecture menu (data set, MLP width and depth, batch size,
optimizer), a log-uniform base LR over ×1000 around the optimizer's usual LR, label noise and a budget in
windows. Its `train` split is drawn afresh at every `reset()` (as many runs as wanted, reproducibly from the
reset seed); `tuning` (references and hyperparameters are chosen there) and `test` (scores) are fixed lists
from their own seed streams. A `train` draw whose configuration is a `tuning` or `test` one is drawn again,
and the splits' run seeds come from disjoint ranges (""" + ", ".join(f"{k} [{lo:,}, {hi:,})" for k, (lo, hi) in SEED_RANGES.items()) + """).
An out-of-distribution family names its parent and the axis on which it leaves the parent's ranges; it has
only `tuning` and `test`.

```python
import gymnasium as gym, numpy as np, aees_gym
from aees_gym.envs.families import get_family
env = gym.make("aees_gym/MLP-v0", instance_set="digits-mlp-v1", split="train")
obs, info = env.reset(seed=0)          # a fresh instance at every reset; info["instance"] names it
obs, info = env.reset()                # the next draw of the same seeded stream
fam = get_family("digits-mlp-v1")
for task, overrides, seed in fam.test:  # 64 fixed held-out runs: gym.make(f"aees_gym/{task}-v0", **overrides).reset(seed=seed)
    pass
venv = gym.make_vec("aees_gym/MLP-v0", num_envs=32, vectorization_mode="vector_entry_point",
                    instance_set="digits-mlp-v1")   # one batched env per architecture under one vector env
obs, infos = venv.reset(seed=0)
obs, rewards, terminated, truncated, infos = venv.step(np.full(32, 4))
```

Families with MNIST need the real 5k subset once: `aees-gym data prepare mnist_5k` (PyPI access is enough).
"""


def family_section(f: InstanceFamily) -> list[str]:
    levels: dict[str, list[str]] = {}
    for arch in f.architectures:
        for key, value in arch:
            if _num(value) not in levels.setdefault(key, []):
                levels[key].append(_num(value))
    optimizers = sorted({dict(a)["optimizer"] for a in f.architectures})
    lrs = "; ".join(f"{o}: [{_num(f.lr_range(o)[0])}, {_num(f.lr_range(o)[1])}] (centre {_num(CENTRE_LR[o])})" for o in optimizers)
    test_windows = [i.env_overrides["total_steps"] / f.window_length for i in f.test]
    rows = [(f"`{k}`", ", ".join(v)) for k, v in sorted(levels.items())]
    rows += [("`base_lr`", f"log-uniform, ×{_num(f.lr_span)} range: {lrs}"),
             ("`label_noise`", f"uniform [{_num(f.label_noise[0])}, {_num(f.label_noise[1])}]"),
             ("budget", f"{f.windows[0]}-{f.windows[1]} windows of {f.window_length} steps (uniform)")]
    rows += [(f"`{k}`", _num(v)) for k, v in f.settings]
    splits = ", ".join(f"`{s}`" for s in f.splits)
    ood = f"Out of distribution of `{f.ood_of}`: {f.ood_axis}. " if f.ood_of else ""
    lines = [f"### `{f.name}`", "", f.description + ".", "",
             f"{ood}Task `{f.task}`; {len(f.architectures)} architectures (one batched env each); splits {splits}: "
             f"{len(f.tuning)} tuning and {len(f.test)} test instances (test: mean {sum(test_windows) / len(test_windows):.0f} windows, "
             f"{sum(test_windows) * f.window_length:,.0f} optimizer steps in all).", ""]
    return lines + _table(("axis", "values"), rows) + [""]


_INTRO = """# Environments

<!-- Generated by `python docs/generate.py` from the task and instance-set registries; do not edit. -->

Every id is `aees_gym/<Task>-v0`: one episode is one real training run, one env step one window of
optimizer steps run with the (LR multiplier, gradient-noise σ) the agent picked. `gym.make(id, **overrides)`
accepts any `EnvConfig` field and any task option. CPU seconds per env step were measured with one
torch thread on a shared 2-core machine (`docs/env_step_seconds.json`); treat them as orders of magnitude.
"""

_USAGE = """## Using the ids as an RL benchmark

**Instance sets** (`aees_gym.envs.instances`): named, versioned sets of training runs, each a task, the
overrides that define it and a run seed, split into train and test with no configuration in common.

```python
import gymnasium as gym, aees_gym
from aees_gym.envs.instances import get_instance_set

env = gym.make("aees_gym/Digits-v0", instance_set="digits-mix-v0", split="train", instance_descriptors=True)
obs, info = env.reset(seed=0)                           # next instance of a seeded shuffle; info["instance"]
obs, info = env.reset(options={"instance": 3})          # or choose one by index or name
for task, overrides, seed in get_instance_set("digits-mix-v0").test:   # evaluate on the held-out runs
    test_env = gym.make(f"aees_gym/{task}-v0", **overrides); test_env.reset(seed=seed)
```

Picking an instance reproduces exactly `gym.make(instance.env_id, **instance.env_overrides).reset(seed=instance.seed)`;
the reset seed only orders the shuffle. Keyword overrides apply to every instance but may not touch the
settings that define one. `instance_descriptors=True` appends `run_log_lr`, `run_label_noise` and
`run_log_budget` (constant within a run, declared bounds) for contextual agents; it works without a set too.

**Vector envs**: `gym.make_vec(id, num_envs=2, vectorization_mode="sync" | "async")`, SB3's
`make_vec_env("aees_gym:aees_gym/Digits-v0", n_envs=2, vec_env_cls=SubprocVecEnv)`. Copy *i* of
`reset(seed=s)` is seeded `s + i`. Gymnasium uses next-step autoreset: the step after `terminated=True`
resets that copy, ignores its action and returns reward 0 (`vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}`
switches); SB3 resets in the same step and keeps `info["terminal_observation"]`. `torch_threads=None`
(default) uses one torch thread per copy in worker processes; pass `torch_threads=N` to choose.
Gymnasium stacks infos into arrays typed by the first copy, so every info field keeps one type: a missing
number in `final_metrics` (e.g. `steps_to_target` of a run that never reached the target) is NaN, not `None`.
No info field is ever `None`: `momentum` and `grad_norm` are -1 when the run has no momentum setting or
did not measure the norm, `momentum_index` is -1 without a momentum axis, `reward_error` is `""` when
the reward was computed; the reset info already carries the step-only text fields (`candidate_name`,
`reward_error`: `""`) and `reward_terms` (every term 0; a window without terms has NaN terms beside
its reward), and `eval_curve`, like `final_metrics`, is present only in the last step's info. Result
files store the -1s as `null`. `info_format="numeric"` publishes a flat, numbers-only info instead (see
TorchRL below).
`vectorization_mode="vector_entry_point"` (the default of `make_vec` for these ids) trains the copies as one
batched computation in one process (`aees_gym.envs.vector_env.AEESVectorEnv`; `autoreset_mode=` as a keyword);
tasks it cannot batch raise an error naming `vectorization_mode="async"` (see [batched.md](batched.md) for the
batchable rows and axes).

**Views** (`aees_gym.envs.wrappers`): `MultiDiscreteAction` (`MultiDiscrete([n_lr, n_noise])`),
`ContinuousAction` (`Box(-1, 1, (2,))` → log2 LR multiplier and noise σ in ranges inside the grid's,
run as that exact `Candidate`; `snap_to_grid=True` runs the nearest grid cell), `SelectObservation(env, names)`.
With a momentum axis (`grid={..., "momenta": [...]}`) both action views gain a third component. All
pass Gymnasium's and SB3's env checkers, also with `action_mode="relative"` (persistent ×/÷ LR steps,
the classic RL-for-LR-control formulation).

**rl-zoo3** (`pip install 'aees-gym[zoo]'`), hyperparameters in `experiments/rl_zoo/{ppo,a2c,dqn}.yml`:

```bash
python -m rl_zoo3.train --algo ppo --env aees_gym/Digits-v0 --gym-packages aees_gym \\
    --conf-file experiments/rl_zoo/ppo.yml --num-threads 1
# train on an instance set's train split, evaluate on its test split:
python -m rl_zoo3.train --algo ppo --env aees_gym/Digits-v0 --gym-packages aees_gym \\
    --conf-file experiments/rl_zoo/ppo.yml --num-threads 1 \\
    --env-kwargs "instance_set:'digits-mix-v0'" torch_threads:1 \\
    --eval-env-kwargs "instance_set:'digits-mix-v0'" "split:'test'" torch_threads:1
```

`--env-kwargs` replaces the yml's `env_kwargs`; `-n` and `-params key:value` override the rest. A trained
agent plays its episodes with `rl_zoo3.enjoy` (the `zoo` extra includes the `requests` it imports;
`--no-render`, since the envs draw nothing; `-f` is the folder `train` wrote, `--exp-id` its run):

```bash
python -m rl_zoo3.enjoy --algo ppo --env aees_gym/Digits-v0 --gym-packages aees_gym \\
    -f logs --exp-id 1 --no-render -n 200 --num-threads 1
```

**TorchRL** (tested with torchrl 0.14) reads every info field of a vector env into the rollout, typing
each from one step; it cannot read text, objects, a nested dict (`reward_terms`) or the variable-length
`step_losses`, and without `info_format="numeric"` both forms below fail while building the env. That
keyword (of `gym.make` and `make_vec`) publishes a flat info of numbers only, with the same keys at reset
and at every step (`aees_gym.core.window.NUMERIC_INFO`): the full layout's number fields, `reward_terms`
flattened to `reward_terms_<term>` (`reward_terms_base`, `reward_terms_instability`, ...), `action` as
`mode_id` (TorchRL keeps the policy's action under `action`), and `run_seed`, `flops_per_step` and
`steps_per_epoch` at every step. Before the first window (the reset info) the window fields are -1,
`window_steps` 0, `diverged` False and the reward terms 0. Text fields, the grid, `step_losses`, `eval`,
`eval_curve` and `final_metrics` are left out; the default `info_format="full"` keeps them.

The batched engine with `GymWrapper` and same-step autoreset (the step that ends a run shows its last
window and final observation):

```python
import gymnasium as gym
from gymnasium.vector import AutoresetMode
from torchrl.envs import GymWrapper

import aees_gym  # noqa: F401  (registers the ids)

envs = gym.make_vec("aees_gym/Digits-v0", num_envs=4, vectorization_mode="vector_entry_point",
                    autoreset_mode=AutoresetMode.SAME_STEP, info_format="numeric",
                    total_steps=100, window_length=20)
rollout = GymWrapper(envs).rollout(12, break_when_any_done=False)  # (4, 12): runs end and restart
print(rollout["next", "reward"].shape, rollout["next", "reward_terms_base"].shape)
```

With `autoreset_mode=AutoresetMode.DISABLED` TorchRL resets ended copies itself and reads the info only
when asked: `GymWrapper(envs).auto_register_info_dict()`. It refuses the default next-step autoreset.

`GymEnv(id, num_envs=N)` builds Gymnasium's `AsyncVectorEnv`, one worker process per copy (any task);
the `aees_gym:` prefix makes each worker import aees_gym, which registers the ids there:

```python
from torchrl.envs import GymEnv

if __name__ == "__main__":  # the worker processes import this file
    env = GymEnv("aees_gym:aees_gym/Digits-v0", num_envs=2, info_format="numeric", total_steps=100, window_length=20)
    rollout = env.rollout(4)  # (2, 4), random actions
    print(rollout["next", "reward"].squeeze(-1), rollout["next", "loss_last"])
```

That env autoresets on the next step, which TorchRL 0.14 does not read as such: the step that ends a run
has the right reward and `done`, but zeros for its `next` observation and info fields. Where the task
batches, prefer the `GymWrapper` form above.
"""


_TRACKS = """## Control tracks for learned controllers

`aees_gym.envs.tracks` fixes the action formulation and observation a learned LR controller trains
and acts under, identically for one env, the batched env and a user's own loop
(`ControlledTraining(..., **track_overrides(name))`):

{tracks_table}

The scale starts at 1 (the run's base LR, times its schedule) and is clamped to 2^-6 … 2^6, so a
policy can warm up, decay, and repair a base LR that is off by up to 64× either way. Every track
observes the controller features `progress`, `lr_scale`, `loss_level`, `trend`, `heldout_level`,
`heldout_trend`, `grad_norm_trend`, `last_lr` and `last_noise` (table above); some observe more
(column "observes"; `run_log_lr` clips at 1e-5 and 0.1). The `heldout_*` features read the loss
on the reward-validation part of the validation split at each window's edges — the part the
`heldout` reward reads, never the part that scores runs — and are measured under any reward.
Sub-env `i` of the batched env reset with seed `s` is the single env reset with `s + i`: with the
same actions its first-window losses agree within 1e-5 relative (`tests/rl/test_tracks.py`).

```python
import numpy as np
from aees_gym.envs.tracks import make_track_env, make_track_vector_env

settings = {"total_steps": 40, "window_length": 20, "reward": {"name": "heldout"}, "torch_threads": 1}
venv = make_track_vector_env("Digits", 4, "continuous", **settings)   # 4 runs trained as one computation
obs, infos = venv.reset(seed=0)
for _ in range(2):  # warm up: double the LR scale, no noise, in every run
    obs, rewards, terminated, truncated, infos = venv.step(np.tile([1.0, -1.0], (4, 1)))
print(infos["lr_scale"], rewards)

env = make_track_env("Digits-v0", "relative", **settings)  # one run, Discrete actions
obs, info = env.reset(seed=0)
obs, reward, terminated, truncated, info = env.step(8)     # ×2, noise 0
print(dict(zip(env.unwrapped.feature_names, obs.round(3))))
```
"""


def tracks_table() -> list[str]:
    """One row per registered control track: its action space, extra observed features and description."""
    from aees_gym.envs.tracks import CONTROLLER_FEATURES, TRACKS

    rows = []
    for name, track in TRACKS.items():
        settings = track.settings()
        grid = settings["grid"]
        actions = f"`Discrete({len(grid['lr_multipliers']) * len(grid['noise_stds'])})`" if track.action == "discrete" else "`Box(-1, 1, (2,))`"
        extra = [f"`{f}`" for f in settings["context"]["features"] if f not in CONTROLLER_FEATURES]
        rows.append((f"`{name}`", actions, "the controller features" + (" + " + ", ".join(extra) if extra else ""), track.description))
    return _table(("track", "actions", "observes", "what a window does"), rows)


def render(tasks: Mapping[str, TaskSpec], sets: Mapping[str, InstanceSet], timings: Mapping[str, Any],
           families: Mapping[str, InstanceFamily] | None = None) -> str:
    """The whole page; a pure function of the registries and the stored measurements."""
    specs = list(tasks.values())
    lines = [_INTRO, "## Summary", ""] + summary_table(specs, timings) + [_USAGE]
    lines += ["## Environments", ""]
    for spec in specs:
        lines += task_section(spec, timings.get(env_id(spec.name)))
    lines += ["## Optional observation features", "",
              "Enable with `context={\"features\": [...]}`; the run descriptors are "
              + ", ".join(f"`{d}`" for d in DESCRIPTOR_FEATURES) + ".", ""]
    rows = [(f"`{n}`", _num(f.low), _num(f.high), f.description) for n, f in ctx.FEATURES.items()]
    lines += _table(("feature", "low", "high", "meaning"), rows) + ["", "## Instance sets", ""]
    for s in sets.values():
        lines += instance_set_section(s)
    if families:
        lines += ["## Instance families", "", _FAMILY_USAGE]
        for f in families.values():
            lines += family_section(f)
    lines += ["", _TRACKS.replace("{tracks_table}", "\n".join(tracks_table()))]
    return "\n".join(lines).rstrip() + "\n"


def measure(spec: TaskSpec, data_dir: str | None = None, steps: int = MEASURED_STEPS) -> dict[str, Any]:
    """CPU seconds per env step of ``spec`` (defaults, or smoke settings when it needs files)."""
    import gymnasium as gym
    import torch

    settings = "smoke" if spec.requires_files else "defaults"
    overrides = dict(spec.smoke_overrides) if spec.requires_files else {}
    if spec.requires_files and data_dir is not None:
        overrides["data_dir"] = data_dir
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # per-step cost of one copy, as in a vectorised worker
    try:
        env = gym.make(env_id(spec.name), **overrides)
        env.reset(seed=0)
        cpu, done = 0.0, 0
        while done < steps:
            start = time.process_time()
            *_, terminated, _, _ = env.step(env.unwrapped.grid.nearest(1.0, 0.0))
            cpu += time.process_time() - start
            done += 1
            if terminated:
                env.reset()
        return {"seconds_per_step": cpu / done, "settings": settings, "steps": done}
    except (ImportError, OSError, KeyError, ValueError, RuntimeError) as exc:  # missing data or extra: document, don't fail
        note = "its data files were not prepared" if isinstance(exc, FileNotFoundError) else str(exc).splitlines()[0][:160]
        return {"seconds_per_step": None, "settings": settings, "note": note}
    finally:
        torch.set_num_threads(threads)


def load_timings(path: Path = TIMINGS_PATH) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def check(path: Path, tasks: Mapping[str, TaskSpec], timings: Mapping[str, Any]) -> int:
    """0 when ``path`` is what :func:`render` produces now, else 1 with the first differing line."""
    expected = render(tasks, registered_instance_sets(), timings, registered_families()).splitlines()
    actual = path.read_text().splitlines() if path.exists() else []
    unmeasured = sorted(env_id(s.name) for s in tasks.values() if env_id(s.name) not in timings)
    if expected == actual and not unmeasured:
        return 0
    first = next((i for i, (a, b) in enumerate(zip(actual, expected, strict=False)) if a != b), min(len(actual), len(expected)))
    print(f"{path} is out of date (first difference at line {first + 1}; ids without a measurement: {unmeasured}); "
          "regenerate it with `python docs/generate.py`.")
    return 1


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write docs/environments.md from the registries.")
    parser.add_argument("--out", type=Path, default=DOC_PATH)
    parser.add_argument("--timings", type=Path, default=TIMINGS_PATH)
    parser.add_argument("--remeasure", action="store_true", help="measure every id again")
    parser.add_argument("--data-dir", default=None, help="data directory of the tasks that need files")
    parser.add_argument("--check", action="store_true", help="only check that the page is up to date (exit 1 if not)")
    args = parser.parse_args(argv)
    tasks = registered_tasks()
    timings = load_timings(args.timings)
    if args.check:
        raise SystemExit(check(args.out, tasks, timings))
    for spec in tasks.values():
        stored = timings.get(env_id(spec.name))
        if args.remeasure or stored is None or stored.get("seconds_per_step") is None:
            timings[env_id(spec.name)] = measure(spec, args.data_dir)
            print(f"{env_id(spec.name)}: {_seconds(timings[env_id(spec.name)])}")
    timings = {k: timings[k] for k in sorted(timings) if k in {env_id(s.name) for s in tasks.values()}}
    atomic_write_text(args.timings, json.dumps(timings, indent=2, sort_keys=True) + "\n")
    atomic_write_text(args.out, render(tasks, registered_instance_sets(), timings, registered_families()))
    print(f"wrote {args.out} ({len(tasks)} ids) and {args.timings}")


if __name__ == "__main__":
    main()
