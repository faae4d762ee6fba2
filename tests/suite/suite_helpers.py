"""Helpers shared by the suite tests (importable because pytest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path


def write_dist(root: Path, name: str, entry_points: str) -> Path:
    """An installed distribution as importlib.metadata finds it: ``<name>-0.1.dist-info``."""
    dist = root / f"{name}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(entry_points)
    return dist


def make_result(
    agent_label: str,
    seed: int,
    accuracy: float | None,
    *,
    suite: str = "hand",
    task_label: str = "T",
    task: str = "Synthetic",
    agent: str = "fixed",
    agent_kwargs: dict | None = None,
    status: str = "ok",
    train_loss: float | None = 1.0,
    reward: float = 0.5,
    steps_to_target: int | None = None,
    sweep: dict | None = None,
    windows: int = 3,
):
    """A schema-valid RunResult with chosen numbers (for report statistics with known answers)."""
    from aees_gym.suite import RunSpec
    from aees_gym.suite.results import RunResult

    spec = RunSpec(suite=suite, task=task, task_label=task_label, agent=agent, agent_label=agent_label, seed=seed,
                   agent_kwargs=agent_kwargs or {}, sweep=sweep or {})
    identity = dict(
        run_id=spec.run_id, suite=suite, task=task, task_label=task_label, env_id=spec.env_id, agent=agent,
        agent_label=agent_label, seed=seed, sweep=spec.sweep, agent_kwargs=spec.agent_kwargs,
    )
    if status == "error":
        return RunResult(**identity, status="error", error={"type": "RuntimeError", "message": "boom", "traceback": ""})
    grid = {"lr_multipliers": [0.5, 1.0, 2.0], "noise_stds": [0.0]}
    window_logs = [
        {"window": w, "action": seed % 3, "lr_index": seed % 3, "noise_index": 0, "lr_multiplier": grid["lr_multipliers"][seed % 3],
         "noise_std": 0.0, "candidate_name": "x", "reward": reward / windows, "reward_terms": {}, "loss_first": 1.0, "loss_last": 1.0,
         "loss_mean": 1.0, "trend_bucket": "stable", "phase_bucket": "early", "context_bucket": "early_stable",
         "steps_done": 10 * (w + 1), "diverged": False}
        for w in range(windows)
    ]
    final = {"val_accuracy": accuracy, "val_loss": 1.0, "best_val_accuracy": accuracy, "final_train_loss": train_loss,
             "steps_done": 10 * windows, "windows": windows, "total_reward": reward, "diverged": status == "diverged",
             "steps_to_target": steps_to_target}
    curve = [{"step": 10 * (w + 1), "val_accuracy": (accuracy or 0) * (w + 1) / windows, "val_loss": 1.0} for w in range(windows)]
    config = {"total_steps": 100, "target_accuracy": 0.9, "grid": grid}
    return RunResult(**identity, status=status, config=config, windows=window_logs, eval_curve=curve, final_metrics=final,
                     runtime={"wall_clock_s": 2.0})


def synthetic_suite(*agents: str, seeds: tuple[int, ...] = (0, 1)) -> str:
    """A suite body on the Synthetic task: ``seeds`` and one ``[[agents]]`` table per entry of
    ``agents`` (the table's lines, e.g. ``'name = "random"'``)."""
    tables = "".join(f"[[agents]]\n{agent}\n" for agent in agents)
    return f'\nseeds = {list(seeds)}\n[[tasks]]\nname = "Synthetic"\n{tables}'
