"""Optional dependencies (pyproject extras) a suite or a report needs, checked before any work starts.

A task declares the modules its runs import (``TaskSpec.requires``); the report needs scipy for its
statistics and matplotlib for its plots. Without these checks a Digits suite on a machine without
scikit-learn would run and record every run as an error, and ``suite --report`` would fail only
after the last run. :func:`check_suite_extras` and :func:`check_report_extras` raise one
:class:`MissingExtrasError` naming every missing module and the extras that provide them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping

from aees_gym.suite.suite_file import SuiteSpec, task_variants
from aees_gym.tasks import get_task, make_config
from aees_gym.tasks.base import optimizer_requirements

#: Report statistics (``aees_gym.reporting.stats``) and plots (``aees_gym.reporting.plots``): module → extra.
STATS_MODULES = {"scipy": "plot"}
PLOT_MODULES = {"matplotlib": "plot"}


class MissingExtrasError(ImportError):
    """Optional modules that the requested work imports are missing; the message names the extras."""

    def __init__(self, missing: Mapping[str, tuple[str, str]]) -> None:
        self.missing = dict(missing)  # module → (extra, what needs it)
        parts = [f"{module} (needed by {who}; extra '{extra}')" for module, (extra, who) in sorted(self.missing.items())]
        extras = ",".join(sorted({extra for extra, _ in self.missing.values()}))
        super().__init__(f"missing optional dependencies: {'; '.join(parts)}. Install them with: pip install 'aees-gym[{extras}]'")


def importable(module: str) -> bool:
    """True when ``import module`` succeeds (an installed but broken package counts as missing)."""
    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 - any failure to import means the run would fail the same way
        return False
    return True


def _missing(needs: Iterable[tuple[str, str, str]]) -> dict[str, tuple[str, str]]:
    missing: dict[str, tuple[str, str]] = {}
    for module, extra, who in needs:
        if module not in missing and not importable(module):
            missing[module] = (extra, who)
    return missing


def report_needs(plots: bool) -> list[tuple[str, str, str]]:
    """``(module, extra, who)`` of a report (with or without plots)."""
    needs = [(m, e, "report statistics") for m, e in STATS_MODULES.items()]
    return needs + ([(m, e, "report plots") for m, e in PLOT_MODULES.items()] if plots else [])


def suite_needs(spec: SuiteSpec) -> list[tuple[str, str, str]]:
    """``(module, extra, who)`` of every planned task variant (with each agent's env overrides)."""
    needs: list[tuple[str, str, str]] = []
    for task in spec.tasks:
        for variant in task_variants(spec, task):
            for agent in spec.agents:
                overrides = {**variant.overrides, **agent.env_overrides()}
                config = make_config(task.name, **overrides)
                needs += [(m, e, f"task {task.name}") for m, e in get_task(task.name).requirements(config).items()]
                needs += [(m, e, f"optimizer {config.optimizer}") for m, e in optimizer_requirements(config.optimizer).items()]
    return needs


def check_suite_extras(spec: SuiteSpec, *, report: bool = False, plots: bool = True) -> None:
    """Raise :class:`MissingExtrasError` if a planned task (or, with ``report``, the report) lacks a module."""
    missing = _missing([*suite_needs(spec), *(report_needs(plots) if report else [])])
    if missing:
        raise MissingExtrasError(missing)


class MissingDataError(FileNotFoundError):
    """A planned run's data is not on disk; the message is the task's own (folder, files, prepare command)."""


def check_task_data(task: str, overrides: Mapping[str, object]) -> None:
    """Raise :class:`MissingDataError` if a run of ``task`` with ``overrides`` would not find its data (nothing is read)."""
    spec = get_task(task)
    if spec.check_data is None:
        return
    try:
        spec.check_data(make_config(task, **overrides))
    except FileNotFoundError as exc:
        raise MissingDataError(str(exc)) from None


def check_suite_data(spec: SuiteSpec) -> None:
    """Raise :class:`MissingDataError` for the first planned task variant whose data is not on disk."""
    for task in spec.tasks:
        for variant in task_variants(spec, task):
            for agent in spec.agents:
                check_task_data(task.name, {**variant.overrides, **agent.env_overrides()})


def check_report_extras(*, plots: bool = True) -> None:
    """Raise :class:`MissingExtrasError` if the report's statistics (or plots) cannot be computed."""
    missing = _missing(report_needs(plots))
    if missing:
        raise MissingExtrasError(missing)
