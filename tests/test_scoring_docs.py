"""docs/scoring.md's example runs as written and shows the floor at work."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "scoring.md"


def test_the_scoring_example_runs_and_ranks_by_the_raw_iqm() -> None:
    [block] = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, str(DOC), "exec"), {})  # noqa: S102 - the project's own documentation
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["1", "2", "3", "4", "5"]
    iqms = [float(re.search(r"IQM (\S+)", line).group(1)) for line in lines]
    assert iqms == sorted(iqms, reverse=True)
    # Configuration A's random-to-best range (0.04) is below the floor (0.05): the best cell scores 0.8, not 1.
    assert "best fixed cell (hindsight)" in lines[0] and lines[0].endswith("normalised 0.80")
