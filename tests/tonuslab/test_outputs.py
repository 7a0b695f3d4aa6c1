"""Outputs that fail leave nothing behind (issue 18 items 5, 7, 8): full disk, bad path,
formula injection in the cohort table."""

import csv
import subprocess
import sys

import pytest

from tonuslab.cli import main
from tonuslab.output import OutputError, atomic_output


@pytest.fixture
def tiny_filesystem(small_tmpfs):
    """A real 1 MiB filesystem (tmpfs), nearly filled; skipped where mounting is not allowed."""
    mnt = small_tmpfs(1, "tiny")
    try:
        with open(mnt / "ballast", "wb") as fh:  # leave ~16 KiB free
            fh.write(b"\0" * (1024 * 1024 - 16 * 1024))
    except OSError:
        pass
    return mnt


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name != "ballast")


def test_atomic_output_keeps_the_old_file_when_writing_fails(tmp_path):
    out = tmp_path / "r.html"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert out.read_text() == "old" and _leftovers(tmp_path) == ["r.html"]
    with atomic_output(out) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new" and _leftovers(tmp_path) == ["r.html"]


def test_report_onto_a_full_disk_is_one_line_and_no_file(tiny_filesystem, stretch_file, capsys):
    out = tiny_filesystem / "r.html"
    assert main(["report", str(stretch_file), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "disk is full" in err and str(out) in err
    assert _leftovers(tiny_filesystem) == []  # no 0-byte report, no temporary file


def test_nwb_export_onto_a_full_disk_is_one_line_and_no_file(tiny_filesystem, stretch_file, capsys):
    pytest.importorskip("pynwb")
    out = tiny_filesystem / "s.nwb"
    assert main(["export", str(stretch_file), "--nwb", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "disk is full" in err
    assert _leftovers(tiny_filesystem) == []


def test_output_path_under_a_file_is_one_line(tmp_path, stretch_file, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert main(["report", str(stretch_file), "-o", str(blocker / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is a file, not a folder" in err
    with pytest.raises(OutputError, match="not a folder"), atomic_output(blocker / "x" / "y"):
        pass


def test_cohort_table_escapes_formula_cells(tmp_path):
    from tonuslab.batch import write_csv

    rows = [{"file": "=HYPERLINK(\"http://x\")", "status": "ok", "subject": "@SUM(A1)",
             "muscle": "+cmd", "tsrt_deg": -3.5, "error": "-1+1"}]  # fmt: skip
    out = write_csv(rows, tmp_path / "c.csv")
    with out.open() as fh:
        row = next(csv.DictReader(fh))
    assert row["file"] == '\'=HYPERLINK("http://x")' and row["subject"] == "'@SUM(A1)"
    assert row["muscle"] == "'+cmd" and row["error"] == "'-1+1"
    assert row["tsrt_deg"] == "-3.5"  # a number stays a number


def test_report_cli_in_a_subprocess_prints_no_traceback(tmp_path, stretch_file):
    (tmp_path / "afile").write_text("x")
    proc = subprocess.run(
        [sys.executable, "-m", "tonuslab", "report", str(stretch_file), "-o",
         str(tmp_path / "afile" / "r.html")], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
