"""``run_one(spec) -> RunResult``: one whole training run driven by one agent, never raising.

A top-level function of a picklable :class:`RunSpec`, so every executor (in process, spawned
process pool, Ray) runs exactly the same code. Everything random comes from ``spec.seed``.
"""

from __future__ import annotations

import json
import math
import os
import time
import traceback
from collections.abc import Callable
from typing import Any

from aees_gym.core.fileio import json_safe
from aees_gym.core.hostinfo import host_metadata, utc_now
from aees_gym.envs.episode import run_episode
from aees_gym.suite import agent_registry
from aees_gym.suite.results import RunResult
from aees_gym.suite.run_spec import RunSpec

#: Agent-state snapshots are logged at these fractions of the run (plus the last window).
SNAPSHOT_FRACTIONS = (0.25, 0.5, 0.75)
#: A snapshot larger than this (JSON characters) is replaced by a note, keeping result files small.
MAX_STATE_CHARS = 20_000

WindowCallback = Callable[[int, int], None]


def error_info(exc: BaseException) -> dict[str, str]:
    """Type, message and formatted traceback of ``exc`` (what an error result records)."""
    return {
        "type": type(exc).__name__,
        "message": str(exc) or type(exc).__name__,
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


def _measured(value: Any) -> Any:
    """The info's -1 ("no momentum setting", "not measured") is ``null`` in a result file."""
    return None if value is None or (isinstance(value, int | float) and value < 0) else value


def _terms(terms: dict[str, Any]) -> dict[str, Any]:
    """A window without reward terms (diverged, reward error) keeps only its reward, as result files always had."""
    rest = [v for k, v in terms.items() if k != "reward"]
    if rest and all(isinstance(v, float) and math.isnan(v) for v in rest):
        return {"reward": terms["reward"]} if "reward" in terms else {}
    return dict(terms)


def _window_log(index: int, reward: float, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    # Buckets come from the info the agent acted on: they describe the context the choice was made in.
    return {
        "window": index,
        "action": int(after["action"]),
        "lr_index": after["lr_index"],
        "noise_index": after["noise_index"],
        "lr_multiplier": after["lr_multiplier"],
        "noise_std": after["noise_std"],
        "momentum": _measured(after.get("momentum")),
        "frozen_fraction": after.get("frozen_fraction", 0.0),
        "effective_lr": after.get("effective_lr"),
        "candidate_name": after["candidate_name"],
        "reward": float(reward),
        "reward_terms": _terms(after.get("reward_terms", {})),
        "loss_first": after["loss_first"],
        "loss_last": after["loss_last"],
        "loss_mean": after["loss_mean"],
        "grad_norm": _measured(after.get("grad_norm")),
        "trend_bucket": before.get("trend_bucket"),
        "phase_bucket": before.get("phase_bucket"),
        "context_bucket": before.get("context_bucket"),
        "steps_done": after["steps_done"],
        "window_steps": after.get("window_steps"),
        "diverged": bool(after["diverged"]),
    }


def _snapshot_windows(n_windows: int) -> set[int]:
    return {int(f * n_windows) for f in SNAPSHOT_FRACTIONS} | {n_windows - 1}


def _state_snapshot(agent: Any, window: int) -> dict[str, Any]:
    state = json_safe(agent.state())
    if len(json.dumps(state)) > MAX_STATE_CHARS:
        return {"window": window, "state": None, "note": f"state larger than {MAX_STATE_CHARS} characters; not kept"}
    return {"window": window, "state": state}


def make_run_agent(spec: RunSpec) -> Any:
    """The agent ``spec`` names: built from its kwargs, or an offline learner loaded from its ``model_path``."""
    cls = agent_registry.load_agent_class(spec.agent)
    if spec.model_path is None:
        if agent_registry.requires_training(cls):
            raise ValueError(f"agent {spec.agent!r} is an offline learner; give the run a trained model_path.")
        return cls(**spec.agent_kwargs)
    if spec.training is not None and spec.seed in spec.training.get("seeds", ()):
        raise ValueError(f"seed {spec.seed} is one of the training seeds {spec.training['seeds']}; evaluate on held-out seeds.")
    if not os.path.exists(spec.model_path):
        raise FileNotFoundError(f"trained model {spec.model_path} does not exist; train it first (aees-gym train-agent or the suite).")
    return cls.load(spec.model_path, **spec.agent_kwargs)


def _episode(spec: RunSpec, on_window: WindowCallback | None) -> dict[str, Any]:
    import gymnasium as gym

    agent = make_run_agent(spec)
    env = gym.make(spec.env_id, **spec.env_overrides)
    try:
        unwrapped = env.unwrapped
        n_windows = unwrapped.config.n_windows
        snapshots_at = _snapshot_windows(n_windows) if callable(getattr(agent, "state", None)) else set()
        states: list[dict[str, Any]] = []

        def after_window(index: int, agent: Any) -> None:
            if snapshots_at and (index in snapshots_at or unwrapped.control.done):
                states.append(_state_snapshot(agent, index))
            if on_window is not None:
                on_window(index + 1, n_windows)

        trace = run_episode(env, agent, seed=spec.seed, on_window=after_window)
        windows = [_window_log(i, r, trace.info_before(i), after) for i, (r, after) in enumerate(zip(trace.rewards, trace.infos, strict=True))]
        last = trace.infos[-1]
        timing = unwrapped.runtime_metrics()
        train_time = timing["train_time_s"]
        env_overhead = max(trace.env_step_time_s - train_time, 0.0)
        return {
            "config": unwrapped.config.to_dict(),
            "windows": windows,
            "agent_states": states,
            "eval_curve": list(last.get("eval_curve") or []),
            "final_metrics": json_safe(last.get("final_metrics") or {}),
            "device": str(unwrapped.training_run.device),
            "runtime": {
                "env_wall_clock_s": timing["wall_clock_s"],
                "train_time_s": train_time,
                "eval_time_s": timing["eval_time_s"],
                "optimizer_steps_per_s": timing["optimizer_steps_per_s"],
                "agent_time_s": trace.agent_time_s,
                "env_step_time_s": trace.env_step_time_s,
                "env_overhead_s": env_overhead,
                "controller_overhead_s": trace.agent_time_s + env_overhead,
                "controller_overhead_fraction": (trace.agent_time_s + env_overhead) / train_time if train_time > 0 else None,
                "window_wall_times_s": timing["window_wall_times_s"],
            },
        }
    finally:
        env.close()


def _identity(spec: RunSpec) -> dict[str, Any]:
    return {
        "run_id": spec.run_id, "suite": spec.suite, "task": spec.task, "task_label": spec.task_label,
        "env_id": spec.env_id, "agent": spec.agent, "agent_label": spec.agent_label, "seed": spec.seed,
        "sweep": dict(spec.sweep), "env_overrides": dict(spec.env_overrides), "agent_kwargs": dict(spec.agent_kwargs),
        "training": None if spec.training is None else dict(spec.training), "model_path": spec.model_path,
    }


def error_result(spec: RunSpec, exc: BaseException, runtime: dict[str, Any] | None = None) -> RunResult:
    """The ``status="error"`` result of ``spec`` after ``exc`` (used when a run or a worker fails)."""
    return RunResult(**_identity(spec), status="error", error=error_info(exc), runtime=runtime or {}, host=host_metadata())


def run_one(spec: RunSpec, *, on_window: WindowCallback | None = None) -> RunResult:
    """Run ``spec`` to the end of its training run and return its :class:`RunResult`.

    Never raises for a failing run: any exception becomes ``status="error"`` with the message and
    traceback. ``status`` is ``"diverged"`` when the env reported a diverged run, else ``"ok"``.

    Args:
        spec: The run.
        on_window: Optional progress callback ``(windows_done, windows_total)``.
    """
    started_at, started = utc_now(), time.perf_counter()
    try:
        episode = _episode(spec, on_window)
    except Exception as exc:  # a failing run is data, not a crash of the suite
        runtime = {"wall_clock_s": time.perf_counter() - started, "started_at": started_at, "finished_at": utc_now()}
        return error_result(spec, exc, runtime)
    return finished_result(spec, episode, started_at, started)


def finished_result(spec: RunSpec, episode: dict[str, Any], started_at: str, started: float) -> RunResult:
    """The result of a run that reached its end: ``episode`` is ``_episode``'s record (config, windows, …)."""
    runtime = {"wall_clock_s": time.perf_counter() - started, **episode.pop("runtime"), "started_at": started_at, "finished_at": utc_now()}
    device = episode.pop("device")
    status = "diverged" if episode["final_metrics"].get("diverged") else "ok"
    return RunResult(**_identity(spec), status=status, **episode, runtime=json_safe(runtime), host=host_metadata(device))
