"""The compact archive: loose result files fold into runs.jsonl.gz; resume and reports read both forms;
outputs never land in the archive unless asked."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from suite_helpers import synthetic_suite

from aees_gym.cli import main
from aees_gym.reporting.report import build_report, to_markdown
from aees_gym.suite import load_suite, run_suite
from aees_gym.suite.archive import ARCHIVE_NAME, compact, encode_archive, read_archive, suite_results
from aees_gym.suite.outputs import ARCHIVE_MARKER, OutputError, check_output_dir
from aees_gym.suite.results import result_files, scan_results

TWO_AGENTS = synthetic_suite('name = "random"', 'name = "fixed"')


def test_compact_then_resume_and_report_read_the_archive(write_suite, tmp_path):
    spec = load_suite(write_suite(TWO_AGENTS, name="packed"))
    first = run_suite(spec, results_dir=tmp_path, progress=False)
    suite_dir = first.suite_dir
    loose_report = to_markdown(build_report(suite_dir, n_boot=50))
    before = {r.run_id: r.content() for r in scan_results(suite_dir).results.values()}
    [outcome] = compact(suite_dir)
    assert outcome.archived == outcome.folded == 4
    assert result_files(suite_dir) == []  # the loose files went into the archive
    with gzip.open(suite_dir / ARCHIVE_NAME, "rt") as handle:
        assert len(handle.read().splitlines()) == 4
    assert {r.run_id: r.content() for r in scan_results(suite_dir).results.values()} == before
    assert to_markdown(build_report(suite_dir, n_boot=50)) == loose_report
    again = run_suite(spec, results_dir=tmp_path, progress=False)
    assert (again.reused, again.ran) == (4, 0)
    assert result_files(suite_dir) == []
    # Same results → same bytes: re-archiving is a no-op for version control.
    raw = (suite_dir / ARCHIVE_NAME).read_bytes()
    compact(suite_dir)
    assert (suite_dir / ARCHIVE_NAME).read_bytes() == raw


def test_a_loose_file_wins_and_a_cut_off_archive_keeps_its_head(write_suite, tmp_path):
    spec = load_suite(write_suite(TWO_AGENTS, name="cut"))
    suite_dir = run_suite(spec, results_dir=tmp_path, progress=False).suite_dir
    results = {r.run_id: r for r in scan_results(suite_dir).results.values()}
    compact(suite_dir)
    data = (suite_dir / ARCHIVE_NAME).read_bytes()
    (suite_dir / ARCHIVE_NAME).write_bytes(data[: len(data) * 2 // 3])  # a copy cut off mid-stream
    scan = read_archive(suite_dir / ARCHIVE_NAME)
    assert scan.invalid and "gzip" in scan.invalid[0].reason
    assert set(scan.results) < set(results)
    with pytest.raises(ValueError, match="move the archive aside"):
        compact(suite_dir)  # never rewrites (and so loses) what it cannot read
    # Resume repeats only what the cut lost.
    again = run_suite(spec, results_dir=tmp_path, progress=False)
    assert again.reused == len(scan.results) and again.ran == 4 - len(scan.results)
    found, _ = suite_results(suite_dir)
    assert set(found) == set(results)


def test_archive_lines_are_validated(tmp_path, write_suite):
    spec = load_suite(write_suite(TWO_AGENTS, name="bad"))
    suite_dir = run_suite(spec, results_dir=tmp_path, progress=False).suite_dir
    [first, *rest] = scan_results(suite_dir).results.values()
    body = gzip.decompress(encode_archive(rest)) + json.dumps({**first.to_dict(), "status": "fine"}).encode() + b"\n"
    for path in result_files(suite_dir):
        path.unlink()
    (suite_dir / ARCHIVE_NAME).write_bytes(gzip.compress(body))
    scan = scan_results(suite_dir)
    assert len(scan.results) == 3 and len(scan.invalid) == 1
    assert f"{ARCHIVE_NAME}:4" in str(scan.invalid[0].path) and scan.invalid[0].field == "status"


def test_archive_is_written_only_on_request(write_suite, tmp_path, capsys):
    archive = tmp_path / "results"
    archive.mkdir()
    (archive / ARCHIVE_MARKER).write_text("archive\n")
    config = write_suite(TWO_AGENTS, name="guarded")
    with pytest.raises(OutputError, match="--archive"):
        check_output_dir(archive / "guarded", what="suite folder")
    assert main(["suite", str(config), "--results-dir", str(archive), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "inside the archive" in err and not (archive / "guarded").exists()
    assert main(["suite", str(config), "--results-dir", str(archive), "--no-progress", "--archive"]) == 0
    suite_dir = archive / "guarded"
    assert (suite_dir / ARCHIVE_NAME).is_file() and result_files(suite_dir) == []
    manifest = json.loads((suite_dir / "_manifest.json").read_text())
    assert manifest["suite"] == "guarded"
    # A report of the archive goes under runs/ unless --archive; it names no absolute path.
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["report", str(suite_dir), "--no-plots", "--n-boot", "50"]) == 0
    finally:
        os.chdir(cwd)
    report = (tmp_path / "runs" / "guarded" / "report" / "report.md").read_text()
    assert not (suite_dir / "report").exists()
    assert report.startswith("# Results: guarded\n") and str(tmp_path) not in report


def test_outputs_that_cannot_be_written_fail_before_work(tmp_path, write_suite, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    config = write_suite(TWO_AGENTS, name="s")
    assert main(["suite", str(config), "--results-dir", str(blocker), "--no-progress"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["run", "--task", "Synthetic", "--agent", "random", "--set", "total_steps=20", "--out", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, not a folder" in err
    assert main(["run", "--task", "Synthetic", "--agent", "random", "--out", str(blocker / "sub")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_relative_model_paths_in_archive(tmp_path):
    from dataclasses import replace

    from suite_helpers import make_result

    from aees_gym.suite.archive import portable

    suite_dir = tmp_path / "s"
    inside = replace(make_result("a", 0, 0.5), model_path=str(suite_dir / "models" / "k.zip"))
    elsewhere = replace(make_result("a", 1, 0.5), model_path="/somewhere/else/models/k.zip")
    assert portable(inside, suite_dir).model_path == "models/k.zip"
    assert portable(elsewhere, suite_dir).model_path == "models/k.zip"
    assert portable(make_result("a", 2, 0.5), suite_dir).model_path is None
    assert Path(portable(inside, suite_dir).model_path).name == Path(inside.model_path).name


ROOT = Path(__file__).resolve().parents[2]


def test_the_archived_demo_report_is_reproduced_from_the_compact_archive(tmp_path):
    from aees_gym.reporting.report import write_report

    demo = ROOT / "results" / "demo"
    report = build_report(demo)  # the default 2000 resamples, as archived
    assert len(report.results) == 400 and not report.invalid
    write_report(report, tmp_path, plots=False)
    for name in ("summary.csv", "tasks.csv"):
        assert (tmp_path / name).read_text() == (demo / "report" / name).read_text(), name
    archived = (demo / "report" / "report.md").read_text()
    assert archived.startswith("# Results: demo\n")
    assert "/tmp/" not in archived and str(ROOT) not in archived


def test_the_archive_stays_small_and_names_no_machine_paths():
    files = [p for p in (ROOT / "results").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 15 * 2**20
    assert (ROOT / "results" / ARCHIVE_MARKER).is_file()
    for path in files:
        if path.suffix in (".json", ".md", ".csv"):
            text = path.read_text(encoding="utf-8")
            assert "/tmp/" not in text and "/home/" not in text and str(ROOT) not in text, path


def test_following_the_docs_never_writes_the_archived_demo():
    from aees_gym.suite.outputs import archive_root

    spec = load_suite(ROOT / "experiments" / "demo.toml")
    assert archive_root(ROOT / spec.results_dir / spec.name) is None  # `aees-gym suite experiments/demo.toml --report`
    assert archive_root(ROOT / "results" / "demo") == ROOT / "results"  # refused without --archive
    with pytest.raises(OutputError, match="--archive"):
        check_output_dir(ROOT / "results" / "demo" / "report", what="report folder")
