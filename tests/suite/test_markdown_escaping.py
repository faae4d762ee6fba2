"""Text from files that ends up in Markdown tables (labels, reasons, progress stamps) is escaped.

A label holding ``|``, a newline or ``<!--`` must show as written: it must neither split a cell,
end a row, nor hide the rest of the page inside an HTML comment.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aees_gym.reporting.leaderboard import BoardRow, set_markdown
from aees_gym.reporting.markdown import md_cell, metric_cell
from aees_gym.reporting.report import build_report, to_markdown
from aees_gym.suite.leaderboard import parse_leaderboard, plan_set
from aees_gym.suite.results import write_result
from tests.suite.suite_helpers import make_result

EVIL = "x | y\n## z <!-- hide"


def _cells(line: str) -> int:
    """Cells of a table row, counting only unescaped pipes as separators."""
    return line.replace("\\|", "").count("|") - 1


def test_metric_cell_keeps_four_decimals_and_writes_astronomical_values_short() -> None:
    assert metric_cell(628.37634) == "628.3763"
    assert metric_cell(-0.5) == "-0.5000"
    assert metric_cell(1.786e204) == "1.786e+204"  # a blown-up perplexity, not a 200-digit number
    assert metric_cell(float("inf")) == "inf"
    from aees_gym.reporting.leaderboard import _ci

    assert _ci((0.5, 0.25, 0.75), 2) == ("0.50", "[0.25, 0.75]")
    assert _ci((-5.5e203, -5.5e203, -4.1e203), 2) == ("-5.50e+203", "[-5.50e+203, -4.10e+203]")


def test_md_cell_escapes_pipes_line_breaks_and_html() -> None:
    assert md_cell(EVIL) == "x \\| y ## z &lt;!-- hide"
    assert md_cell("a\\|b") == "a\\\\\\|b" and md_cell("plain label ×1.0") == "plain label ×1.0"


def test_a_report_table_keeps_its_shape_with_a_hostile_label(tmp_path: Path) -> None:
    suite = tmp_path / "hand"
    for seed in range(3):
        write_result(make_result(EVIL, seed, 0.5 + 0.01 * seed, agent="ducb"), suite)
        write_result(make_result("fixed ×1.0", seed, 0.5, agent_kwargs={"lr_multiplier": 1.0}), suite)
    text = to_markdown(build_report(tmp_path, n_boot=50))
    assert "<!-- hide" not in text and "\n## z" not in text
    tables: list[list[str]] = [[]]
    for line in text.splitlines():  # consecutive lines starting with '|' form one table
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    hostile = [t for t in tables if any("x \\| y" in line for line in t)]
    assert len(hostile) >= 3  # the agents, results and settings tables at least
    for table in hostile:
        assert len({_cells(line) for line in table}) == 1, table


def test_a_leaderboard_row_keeps_its_shape_with_hostile_file_text(tmp_path: Path) -> None:
    spec = parse_leaderboard({"sets": [{"name": "synthetic-mix-v0"}], "agents": [{"name": "random"}]}, "<b>")
    plan = plan_set(spec, "synthetic-mix-v0", tmp_path)
    rows = [BoardRow(EVIL, "aees | x", "64 windows\n| a | b |", None, "pending: progress report ignored: 'now | <b>'")]
    lines = set_markdown(plan, rows)
    header = next(line for line in lines if line.startswith("| rank"))
    row = next(line for line in lines if line.startswith("| — | x"))
    assert _cells(row) == _cells(header) == 13 and "<b>" not in row and "\n" not in row
    assert not any("<!--" in line for line in lines)


@pytest.mark.parametrize("stamp", ["2026-01-01T00:05:00+00:00 | extra", "<!-- x -->", "2026-01-01\n| a |"])
def test_a_progress_stamp_that_is_not_a_stamp_is_refused(tmp_path: Path, stamp: str) -> None:
    import json

    from aees_gym.core.fileio import FileCheckError
    from aees_gym.suite.training import read_progress

    (tmp_path / "m.progress.json").write_text(json.dumps({"windows_trained": 1, "total_timesteps": 2, "updated_utc": stamp}))
    with pytest.raises(FileCheckError, match="field 'updated_utc': is .* not an ISO-8601 time stamp"):
        read_progress(tmp_path / "m.zip")
