"""The ``batched`` executor: runs that share a task variant are trained together in one batched env.

Runs with the same task and env settings (the agents and seeds differ) form a *group*;
:func:`run_group` trains a group's runs as the rows of one
:class:`~aees_gym.envs.vector_env.AEESVectorEnv`, each row driven by its own agent object, and
returns one :class:`RunResult` per run with the content ``run_one`` would write (window logs, agent
snapshots, evaluation curve, final metrics). An agent that raises, or a run that diverges, ends its
own row; the others go on. Runs of tasks the batched engine cannot train run through ``run_one``.

``run_group`` is a top-level function of a picklable list of specs, so groups go to process pools
and Ray workers as units (one group per worker), exactly like ``run_one``'s specs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from aees_gym.core.fileio import json_safe
from aees_gym.core.grid import Candidate
from aees_gym.core.hostinfo import utc_now
from aees_gym.suite.executors import execute
from aees_gym.suite.one_run import (
    _snapshot_windows,
    _state_snapshot,
    _window_log,
    error_result,
    finished_result,
    make_run_agent,
    run_one,
)
from aees_gym.suite.results import RunResult
from aees_gym.suite.run_spec import RunSpec, canonical_json
from aees_gym.tasks import make_config
from aees_gym.tasks.batched import batching_problem

#: Most runs trained in one batched env; larger groups are split.
MAX_GROUP = 64
#: ``on_windows(windows)``: called after every batched window with the number of runs it advanced.
WindowsCallback = Callable[[int], None]


def is_batchable(spec: RunSpec) -> bool:
    """Whether the run's resolved config can be a row of the batched engine (else ``run_one`` runs it)."""
    try:
        return batching_problem(make_config(spec.task, **spec.env_overrides)) is None
    except (KeyError, ValueError, TypeError):  # a bad config: run_one records the error for this run alone
        return False


def group_runs(runs: Sequence[RunSpec], max_group: int = MAX_GROUP) -> list[list[int]]:
    """Indices of ``runs`` grouped by task and env settings, at most ``max_group`` per group, in plan order.

    Runs of tasks that cannot be batched form groups of one (``run_one`` runs them).
    """
    groups: dict[str, list[int]] = {}
    singles: list[list[int]] = []
    for index, spec in enumerate(runs):
        if not is_batchable(spec):
            singles.append([index])
            continue
        groups.setdefault(canonical_json([spec.task, spec.env_overrides]), []).append(index)
    chunks = [g[i : i + max_group] for g in groups.values() for i in range(0, len(g), max_group)]
    return sorted(chunks + singles, key=lambda g: g[0])


class _Slot:
    """One run of a group: its spec, agent and what its episode has produced so far."""

    def __init__(self, spec: RunSpec, agent: Any) -> None:
        self.spec, self.agent = spec, agent
        self.obs: Any = None
        self.info: dict[str, Any] = {}
        self.reset_info: dict[str, Any] = {}
        self.rewards: list[float] = []
        self.infos: list[dict[str, Any]] = []
        self.states: list[dict[str, Any]] = []
        self.snapshots: set[int] = set()
        self.agent_time_s = 0.0
        self.env_step_time_s = 0.0


def run_group(specs: Sequence[RunSpec], on_windows: WindowsCallback | None = None) -> list[RunResult]:
    """Run every spec of one group (same task and env settings) to its end; never raises for a run.

    Returns the results in the order of ``specs``.
    """
    specs = list(specs)
    if len(specs) == 1 or not is_batchable(specs[0]):
        return [run_one(s) for s in specs]
    started_at, started = utc_now(), time.perf_counter()
    results: dict[int, RunResult] = {}

    def fail(row: int, exc: BaseException) -> None:
        runtime = {"wall_clock_s": time.perf_counter() - started, "started_at": started_at, "finished_at": utc_now(), "batched_runs": len(specs)}
        results[row] = error_result(specs[row], exc, runtime)

    slots: dict[int, _Slot] = {}
    for row, spec in enumerate(specs):
        try:
            slots[row] = _Slot(spec, make_run_agent(spec))
        except Exception as exc:
            fail(row, exc)
    try:
        from aees_gym.envs.vector_env import AEESVectorEnv

        env = AEESVectorEnv(specs[0].task, len(specs), **specs[0].env_overrides)
    except Exception as exc:  # the shared env failed: every run of the group is an error
        for row in list(slots):
            fail(row, exc)
        return [results[i] for i in range(len(specs))]
    try:
        _drive(env, slots, results, fail, on_windows)
        for row, slot in slots.items():
            if row not in results:
                results[row] = finished_result(slot.spec, _episode_record(env, row, slot, len(specs)), started_at, started)
    finally:
        env.close()
    return [results[i] for i in range(len(specs))]


def _drive(
    env: Any, slots: dict[int, _Slot], failed: dict[int, RunResult], fail: Callable[[int, BaseException], None], on_windows: WindowsCallback | None
) -> None:
    """The agent–env loop of :func:`~aees_gym.envs.episode.run_episode`, for every row at once.

    ``fail(row, exc)`` records a run's error result in ``failed``; such a row is not stepped again.
    """
    rows = list(slots)
    for row, (obs, info) in zip(rows, env.reset_rows(rows, [slots[r].spec.seed for r in rows]), strict=True):
        slot = slots[row]
        slot.obs, slot.info, slot.reset_info = obs, info, info
        slot.snapshots = _snapshot_windows(env.row_config(row).n_windows) if callable(getattr(slot.agent, "state", None)) else set()
        t0 = time.perf_counter()
        try:
            slot.agent.reset(seed=slot.spec.seed, observation_space=env.single_observation_space, action_space=env.single_action_space, info=info)
        except Exception as exc:
            fail(row, exc)
        slot.agent_time_s += time.perf_counter() - t0
    live = [r for r in rows if r not in failed]
    while live:
        actions = {}
        for row in live:
            slot = slots[row]
            t0 = time.perf_counter()
            try:
                action = slot.agent.act(slot.obs, slot.info)
                grid = env.row_config(row).grid  # a bad action fails its own run only
                grid.check_candidate(action) if isinstance(action, Candidate) else grid.validate_action(action)
                actions[row] = action
            except Exception as exc:
                fail(row, exc)
            slot.agent_time_s += time.perf_counter() - t0
        t_env = time.perf_counter()
        try:
            stepped = env.step_rows(actions)
        except Exception as exc:  # the engine itself failed: every live run of the group is an error
            for row in actions:
                fail(row, exc)
            return
        env_time = time.perf_counter() - t_env
        for row, (obs, reward, terminated, info) in stepped.items():
            slot = slots[row]
            t0 = time.perf_counter()
            try:
                slot.agent.update(actions[row], float(reward), obs, terminated, False, info)
                index = len(slot.rewards)
                if slot.snapshots and (index in slot.snapshots or terminated):
                    slot.states.append(_state_snapshot(slot.agent, index))
            except Exception as exc:
                fail(row, exc)
            slot.agent_time_s += time.perf_counter() - t0
            slot.env_step_time_s += env_time
            slot.obs, slot.info = obs, info
            slot.rewards.append(float(reward))
            slot.infos.append(info)
        if on_windows is not None:
            on_windows(len(stepped))
        live = [r for r in stepped if not env.row_done(r) and r not in failed]


def _episode_record(env: Any, row: int, slot: _Slot, n_runs: int) -> dict[str, Any]:
    """``run_one``'s episode record of one row (the runtime is the group's, shared by its runs)."""
    before = [slot.reset_info, *slot.infos[:-1]]
    windows = [_window_log(i, r, before[i], after) for i, (r, after) in enumerate(zip(slot.rewards, slot.infos, strict=True))]
    last = slot.infos[-1]
    train_time = env.train_time_s
    steps = env.row_config(row).total_steps if not last.get("diverged") else last["steps_done"]
    return {
        "config": env.row_config(row).to_dict(),
        "windows": windows,
        "agent_states": slot.states,
        "eval_curve": list(last.get("eval_curve") or []),
        "final_metrics": json_safe(last.get("final_metrics") or {}),
        "device": str(env.runs.device),
        "runtime": {
            "batched_runs": n_runs,
            "train_time_s": train_time,
            "eval_time_s": env.eval_time_s,
            "optimizer_steps_per_s": steps / train_time if train_time > 0 else None,
            "agent_time_s": slot.agent_time_s,
            "env_step_time_s": slot.env_step_time_s,
        },
    }


def batched_ray_address(ray_address: str | None) -> str | None:
    """The Ray cluster the batched executor sends groups to: ``ray_address``, else ``$RAY_ADDRESS``, else none (local)."""
    return ray_address if ray_address is not None else (os.environ.get("RAY_ADDRESS") or None)


def execute_batched(
    runs: Sequence[RunSpec],
    *,
    workers: int = 1,
    ray_address: str | None = None,
    on_windows: WindowsCallback | None = None,
    max_group: int = MAX_GROUP,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(run_index, result_or_exception)`` for every run, group by group.

    One worker runs the groups in this process (reporting windows to ``on_windows``); more use the
    ``local`` process pool, one group per task; with ``ray_address`` (or, without it, ``$RAY_ADDRESS``)
    the groups go to Ray workers, ``workers`` groups in flight. A group whose worker crashed yields the exception for each of its runs.
    """
    groups = group_runs(runs, max_group)
    items = [[runs[i] for i in g] for g in groups]
    ray_address = batched_ray_address(ray_address)
    if ray_address is not None:
        outcomes = execute(run_group, items, executor="ray", workers=workers, ray_address=ray_address)
    elif workers == 1:
        outcomes = execute(lambda specs: run_group(specs, on_windows), items, executor="serial")
    else:
        outcomes = execute(run_group, items, executor="local", workers=workers)
    for g, outcome in outcomes:
        for k, index in enumerate(groups[g]):
            yield index, outcome if isinstance(outcome, BaseException) else outcome[k]
