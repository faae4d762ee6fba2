"""The loading example of docs/results-schema.md runs as written on a folder of a real suite run."""

from __future__ import annotations

import re
from pathlib import Path

from aees_gym.suite import load_suite, run_suite

DOC = Path(__file__).resolve().parents[2] / "docs" / "results-schema.md"


def loading_example() -> str:
    section = DOC.read_text(encoding="utf-8").split("## Loading results", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "docs/results-schema.md has no python block under '## Loading results'"
    return match.group(1)


def test_the_loading_example_runs_as_written(write_suite, tmp_path, monkeypatch, capsys):
    body = "seeds = [0, 1]\n[[tasks]]\nname = 'Synthetic'\n[[agents]]\nname = 'fixed'\nlabel = 'fixed ×1.0'\n[[agents]]\nname = 'random'\n"
    outcome = run_suite(load_suite(write_suite(body, name="demo")), results_dir=tmp_path / "results", progress=False)
    assert outcome.ran == 4
    (outcome.suite_dir / "0123456789abcdef.json").write_text('{"schema_version": 1')  # a truncated file
    monkeypatch.chdir(tmp_path)  # the example reads "results/demo"
    namespace: dict = {}
    exec(compile(loading_example(), str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    out = capsys.readouterr().out
    assert "skipped 0123456789abcdef.json: not readable as JSON" in out
    assert "fixed ×1.0" in out and "random" in out
    assert len(namespace["rows"]) == 4 and namespace["frame"].shape[0] == 4
    assert set(namespace["frame"]["agent_label"]) == {"fixed ×1.0", "random"}
