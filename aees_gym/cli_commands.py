"""The ``aees-gym`` subcommands (list, check, run, suite, report, train-agent, data), their argument
checks and the exit codes they return.

:mod:`aees_gym.cli` builds the parser, dispatches to these functions and re-exports every name here.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C


class UsageError(Exception):
    """A bad argument or configuration: reported on stderr with exit code 2."""


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value`` with a TOML value (``3``, ``1e-3``, ``[0.5, 1.0]``, ``{a = 1}``); bare words are strings."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"expected key=value, got {text!r}.")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip(), value


def _assignments(items: Sequence[str] | None) -> dict[str, Any]:
    return dict(parse_assignment(item) for item in items or ())


def _task(name: str) -> str:
    from aees_gym.suite.suite_file import SuiteConfigError, resolve_task_name

    try:
        return resolve_task_name("--task", name)
    except SuiteConfigError as exc:
        raise UsageError(str(exc)) from None


def _agent_class(name: str) -> type:
    from aees_gym.suite import agent_registry

    try:
        return agent_registry.load_agent_class(name)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None


def _check_overrides(task: str, overrides: dict[str, Any]) -> None:
    from aees_gym.suite.extras import check_task_data
    from aees_gym.tasks import make_config

    try:
        make_config(task, **overrides)
    except (KeyError, ValueError, TypeError) as exc:
        raise UsageError(f"--set: {exc.args[0] if exc.args else exc}") from None
    check_task_data(task, overrides)  # missing data: one line now, not a traceback after the env was built


def _check_agent(cls: type, kwargs: dict[str, Any], task: str, overrides: dict[str, Any], seed: int) -> None:
    """Build the agent and reset it on the env's spaces and start-of-run info, before any training.

    A keyword value the agent only checks against the grid at ``reset`` (``lr_multiplier=7`` of a
    grid without ×7) is then a usage error in one line, not a failed run. Nothing is trained: the
    env is made but not reset, and the info is what its reset publishes before the first window.
    """
    import gymnasium as gym

    from aees_gym.core.context import RunHistory
    from aees_gym.core.window import start_info
    from aees_gym.envs.registration import env_id

    env = gym.make(env_id(task), **overrides)
    try:
        agent = cls(**kwargs)
        config = env.unwrapped.config
        info = start_info(RunHistory(total_steps=config.total_steps), config)
        agent.reset(seed=seed, observation_space=env.observation_space, action_space=env.action_space, info=info)
    except (TypeError, ValueError, KeyError) as exc:
        raise UsageError(f"--agent-kw: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}") from None
    finally:
        env.close()


def _check_counts(*items: tuple[str, int, int]) -> None:
    """Each ``(flag, value, minimum)``: a budget of 0 is a usage error, not a training of nothing."""
    for flag, value, minimum in items:
        if value < minimum:
            raise UsageError(f"{flag} must be at least {minimum}, got {value}.")


# --------------------------------------------------------------------------- commands
def cmd_list(args: argparse.Namespace) -> int:
    from aees_gym.envs.registration import env_id
    from aees_gym.suite import agent_registry
    from aees_gym.tasks import registered_tasks

    tasks = {name: {"env_id": env_id(name), "description": spec.description} for name, spec in registered_tasks().items()}
    agents: dict[str, str] = {}
    for name in agent_registry.agent_entry_points():
        try:
            agents[name] = agent_registry.agent_description(agent_registry.load_agent_class(name))
        except Exception as exc:  # one broken plugin must not hide the others
            agents[name] = f"(cannot be loaded: {type(exc).__name__}: {exc})"
    families = _families()
    if args.json:
        print(json.dumps({"tasks": tasks, "agents": agents, "families": families}, indent=1))
        return EXIT_OK
    width = max(len(t["env_id"]) for t in tasks.values())
    print("Tasks (env ids):")
    for info in tasks.values():
        print(f"  {info['env_id']:<{width}}  {info['description']}")
    print("Agents:")
    width = max((len(a) for a in agents), default=0)
    for name, description in agents.items():
        print(f"  {name:<{width}}  {description}")
    print("Instance families (gym.make(id, instance_set=NAME, split=...); axes, ranges and examples in docs/environments.md):")
    width = max((len(f) for f in families), default=0)
    for name, info in families.items():
        print(f"  {name:<{width}}  {info['summary']}")
    return EXIT_OK


def _families() -> dict[str, dict[str, object]]:
    from aees_gym.envs.families import registered_families
    from aees_gym.envs.registration import env_id

    out: dict[str, dict[str, object]] = {}
    for name, f in registered_families().items():
        sizes = {s: (len(f.split(s)) if s != "train" else "drawn at every reset") for s in f.splits}
        ood = f"; out of distribution of {f.ood_of} ({f.ood_axis})" if f.ood_of else ""
        summary = (f"{env_id(f.task)}, {len(f.architectures)} architectures, splits "
                   + ", ".join(f"{s} {n if isinstance(n, int) else '(drawn)'}" for s, n in sizes.items()) + f"{ood}: {f.description}")
        out[name] = {"env_id": env_id(f.task), "splits": sizes, "ood_of": f.ood_of, "description": f.description, "summary": summary}
    return out


def cmd_check(args: argparse.Namespace) -> int:
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    from aees_gym.envs.registration import env_id

    task = _task(args.env_id)
    overrides = _assignments(args.set)
    _check_overrides(task, overrides)
    env = gym.make(env_id(task), **overrides)
    checkers: list[tuple[str, Any]] = [("gymnasium env checker", lambda: check_env(env.unwrapped, skip_render_check=True))]
    try:
        from stable_baselines3.common.env_checker import check_env as sb3_check_env
    except ImportError:
        print("stable-baselines3 env checker: skipped (install the 'sb3' extra: pip install 'aees-gym[sb3]')")
    else:
        checkers.append(("stable-baselines3 env checker", lambda: sb3_check_env(env.unwrapped, warn=False)))
    failed = False
    for name, run_checker in checkers:
        try:
            run_checker()
            print(f"{name}: passed")
        except Exception as exc:  # report every checker, then fail
            print(f"{name}: FAILED: {type(exc).__name__}: {exc}")
            failed = True
    return EXIT_FAILED if failed else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from aees_gym.core.fileio import dumps_json
    from aees_gym.suite import RunSpec, agent_registry, run_one
    from aees_gym.suite.results import write_result

    task = _task(args.task)
    cls = _agent_class(args.agent)
    _check_counts(("--seed", args.seed, 0))
    kwargs = _assignments(args.agent_kw)
    try:  # e.g. a learned policy's own track, read from its file
        overrides = {**_assignments(args.set), **agent_registry.agent_env_overrides(cls, kwargs)}
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise UsageError(f"agent {args.agent!r} with --agent-kw {kwargs}: {exc}") from None
    _check_overrides(task, overrides)
    if agent_registry.requires_training(cls) and args.model is None:
        raise UsageError(f"agent {args.agent!r} is an offline learner; train it (aees-gym train-agent) and pass --model PATH.")
    if args.model is None:
        _check_agent(cls, kwargs, task, overrides, args.seed)
    if args.out:
        from aees_gym.suite.outputs import check_output_dir

        check_output_dir(args.out, what="--out", archive=False)  # before the run: a bad folder would lose it
    spec = RunSpec(
        suite=args.suite, task=task, task_label=task, agent=args.agent, agent_label=args.label or args.agent,
        seed=args.seed, env_overrides=overrides, agent_kwargs=kwargs, model_path=args.model,
    )
    result = run_one(spec)
    if args.out:
        print(f"wrote {write_result(result, args.out)}", file=sys.stderr)
    if args.json:
        print(dumps_json(result.to_dict()), end="")
    elif result.status != "error":
        m = result.final_metrics or {}
        print(
            f"{spec.env_id} agent={spec.agent_label} seed={spec.seed}: status={result.status} "
            f"val_accuracy={m.get('val_accuracy')} best={m.get('best_val_accuracy')} "
            f"total_reward={m.get('total_reward')} wall={result.runtime.get('wall_clock_s', 0.0):.2f}s"
        )
    if result.status == "error" and result.error:
        print(result.error["traceback"], file=sys.stderr)
        print(f"run failed: {result.error['message']}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_suite(args: argparse.Namespace) -> int:
    from aees_gym.suite import load_suite, run_suite
    from aees_gym.suite.extras import check_suite_extras

    if args.workers is not None:
        _check_counts(("--workers", args.workers, 1))
    spec = load_suite(args.config)
    check_suite_extras(spec, report=args.report)  # every missing extra in one message, before any run
    results_dir = args.results_dir or (Path("results") if args.archive else None)
    outcome = run_suite(
        spec, results_dir=results_dir, executor=args.executor, workers=args.workers, ray_address=args.ray_address,
        progress=not args.no_progress, progress_windows=args.progress_windows, archive=args.archive,
    )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(outcome.statuses.items())) or "none"
    print(
        f"suite {spec.name}: {outcome.planned} runs planned, {outcome.reused} already done, {outcome.ran} run now "
        f"({counts}); {outcome.trained} models trained; {outcome.wall_clock_s:.1f}s; results in {outcome.suite_dir}"
    )
    for path in outcome.corrupt:
        print(f"corrupt result file set aside: {path}")
    if outcome.failed_runs:
        print(f"{len(outcome.failed_runs)} runs failed (status 'error'); rerun the same command to retry them.", file=sys.stderr)
    if args.report:
        _write_report(outcome.suite_dir, None, None, plots=True)
    if args.archive:
        print(f"archived: {outcome.suite_dir / 'runs.jsonl.gz'}")
    return outcome.exit_code


def _write_report(results_dir: Path, out: Path | None, baseline: str | None, *, plots: bool, n_boot: int = 2000) -> None:
    from aees_gym.reporting.report import build_report, write_report

    report = build_report(results_dir, baseline=baseline, n_boot=n_boot)
    try:
        written = write_report(report, out, plots=plots)
    except ImportError as exc:  # tables are still useful without matplotlib
        print(f"plots skipped: {exc}", file=sys.stderr)
        written = write_report(report, out, plots=False)
    for error in report.invalid:
        print(f"skipped result file {error}", file=sys.stderr)
    if report.invalid or report.set_aside:
        print(f"{len(report.invalid)} invalid result files skipped, {len(report.set_aside)} set aside as corrupt "
              "(listed in report.md)", file=sys.stderr)
    print(f"{len(report.results)} runs, {len(report.rows)} task × agent rows; wrote:")
    for path in written:
        print(f"  {path}")


def cmd_report(args: argparse.Namespace) -> int:
    from aees_gym.suite.extras import check_report_extras
    from aees_gym.suite.outputs import DEFAULT_OUTPUT_DIR, archive_root, check_output_dir

    _check_counts(("--n-boot", args.n_boot, 1))
    results_dir = Path(args.results_dir)
    if not results_dir.is_dir():
        raise UsageError(f"results folder {args.results_dir} does not exist; run a suite first (aees-gym suite CONFIG).")
    check_report_extras(plots=not args.no_plots)
    out = args.out
    if out is None and archive_root(results_dir) is not None and not args.archive:
        out = Path(DEFAULT_OUTPUT_DIR) / results_dir.resolve().name / "report"  # a report of the archive goes under runs/
    check_output_dir(out if out is not None else results_dir / "report", what="report folder", archive=args.archive)
    try:
        _write_report(results_dir, out, args.baseline, plots=not args.no_plots, n_boot=args.n_boot)
    except FileNotFoundError as exc:  # a folder without valid results
        raise UsageError(str(exc)) from None
    return EXIT_OK


def cmd_train_agent(args: argparse.Namespace) -> int:
    from aees_gym.suite import agent_registry, train_agent

    task = _task(args.task)
    cls = _agent_class(args.agent)
    if not agent_registry.requires_training(cls):
        raise UsageError(f"agent {args.agent!r} learns online (requires_training is not set); there is nothing to train.")
    overrides = {**_assignments(args.set), **agent_registry.agent_env_overrides(cls)}
    _check_overrides(task, overrides)
    _check_counts(("--total-timesteps", args.total_timesteps, 1), ("--n-envs", args.n_envs, 1), ("--seed", args.seed, 0))
    from aees_gym.suite.outputs import check_output_file

    check_output_file(args.out, what="--out")  # before training: a bad path would lose the trained model
    try:
        cls(**_assignments(args.agent_kw))
    except (TypeError, ValueError, KeyError) as exc:
        raise UsageError(f"--agent-kw: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}") from None
    try:
        path = train_agent(
            args.agent, task, args.out, total_timesteps=args.total_timesteps, seed=args.seed, n_envs=args.n_envs,
            agent_kwargs=_assignments(args.agent_kw), env_overrides=overrides, learn_kwargs=_assignments(args.learn_kw),
            vec_env=args.vec_env,
        )
    except Exception as exc:
        print(f"training failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    seeds = list(range(args.seed, args.seed + args.n_envs))
    print(f"saved {path} (trained on seeds {seeds}; evaluate it on other seeds)")
    return EXIT_OK


def cmd_data(args: argparse.Namespace) -> int:
    from aees_gym.tasks.prepare import available_datasets, prepare_dataset

    if args.data_command == "list" or args.name is None:
        for name, description in available_datasets().items():
            print(f"  {name:<16} {description}")
        return EXIT_OK
    try:
        path = prepare_dataset(args.name, args.data_dir)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    print(f"prepared {args.name}: {path}")
    return EXIT_OK
