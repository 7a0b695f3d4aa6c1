"""`tonuslab batch`: local process pool and a real Dask LocalCluster on the loopback."""

import csv
import shutil

import pytest

from tonuslab.batch import find_sessions, run_batch
from tonuslab.cli import main


@pytest.fixture
def cohort(tmp_path, stretch_file, hreflex_file):
    d = tmp_path / "cohort"
    (d / "sub").mkdir(parents=True)
    shutil.copy(stretch_file, d / "a_stretch.h5")
    shutil.copy(hreflex_file, d / "sub" / "b_hreflex.h5")
    (d / "c_broken.h5").write_bytes(b"not a session at all")
    return d


def _read(path):
    with open(path, newline="") as fh:
        return {r["file"].rsplit("/", 1)[-1]: r for r in csv.DictReader(fh)}


def test_local_pool_reports_failures_in_the_table(cohort, tmp_path, capsys):
    out = tmp_path / "cohort.csv"
    assert main(["batch", str(cohort), "-o", str(out), "--workers", "2"]) == 1  # one failed
    rows = _read(out)
    assert set(rows) == {"a_stretch.h5", "b_hreflex.h5", "c_broken.h5"}
    assert rows["a_stretch.h5"]["status"] == "ok"
    assert 67 < float(rows["a_stretch.h5"]["tsrt_deg"]) < 73
    assert rows["a_stretch.h5"]["tsrt_ci_low_deg"] != ""
    assert rows["b_hreflex.h5"]["status"] == "ok" and float(rows["b_hreflex.h5"]["hmax_mmax"]) > 0
    assert rows["c_broken.h5"]["status"] == "error"
    assert "NotASessionFileError" in rows["c_broken.h5"]["error"]
    captured = capsys.readouterr()
    assert "3/3" in captured.err  # the progress bar
    assert "2 of 3 sessions analysed" in captured.out
    assert "1 of 3 session(s) failed" in captured.err


def test_exit_code_is_0_when_all_good_and_1_when_every_file_failed(cohort, tmp_path, capsys):
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(cohort / "a_stretch.h5", good / "a.h5")
    assert main(["batch", str(good), "-o", str(tmp_path / "g.csv"), "--quiet", "--no-write"]) == 0
    assert "failed" not in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("x.h5", "y.h5"):
        (bad / name).write_bytes(b"junk")
    assert main(["batch", str(bad), "-o", str(tmp_path / "b.csv"), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "0 of 2 sessions analysed" in captured.out
    assert "2 of 2 session(s) failed" in captured.err and "Traceback" not in captured.err
    assert len(_read(tmp_path / "b.csv")) == 2  # the table is still written


def test_glob_and_user_errors(cohort, tmp_path, capsys):
    assert [p.name for p in find_sessions(str(cohort / "*.h5"))] == ["a_stretch.h5", "c_broken.h5"]
    assert main(["batch", str(tmp_path / "nothing*.h5"), "-o", str(tmp_path / "x.csv")]) == 2
    assert main(["batch", str(cohort), "-o", str(tmp_path / "x.txt")]) == 2
    assert main(["batch", str(cohort), "-o", str(tmp_path / "x.csv"), "--workers", "0"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_dask_local_cluster_gives_the_same_table(cohort, tmp_path):
    distributed = pytest.importorskip("distributed")
    files = find_sessions(str(cohort))
    local = run_batch(files, workers=1, write=False)
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        memory_limit="1GiB",
    ) as cluster:
        out = tmp_path / "dask.csv"
        assert (
            main(
                [
                    "batch",
                    str(cohort),
                    "-o",
                    str(out),
                    "--scheduler",
                    cluster.scheduler_address,
                    "--no-write",
                    "--quiet",
                ]
            )
            == 1  # c_broken.h5 fails
        )
        remote = _read(out)
        with distributed.Client(cluster) as client:
            workers_used = len(client.scheduler_info()["workers"])
    assert workers_used == 2
    for row in local:
        name = row["file"].rsplit("/", 1)[-1]
        assert remote[name]["status"] == row["status"]
        if row["status"] == "ok" and row.get("tsrt_deg") is not None:
            assert float(remote[name]["tsrt_deg"]) == pytest.approx(row["tsrt_deg"])


def test_unreachable_scheduler_is_a_user_error(cohort, tmp_path, capsys):
    code = main(
        ["batch", str(cohort), "-o", str(tmp_path / "x.csv"), "--scheduler", "tcp://127.0.0.1:9"]
    )
    assert code == 2
    assert "Dask scheduler" in capsys.readouterr().err


def test_a_file_named_twice_is_analysed_once(cohort, tmp_path, capsys, monkeypatch):
    from tonuslab.batch import unique_files

    monkeypatch.chdir(cohort)
    (cohort / "link.h5").symlink_to(cohort / "a_stretch.h5")
    out = tmp_path / "dup.csv"
    args = ["a_stretch.h5", str(cohort / "a_stretch.h5"), "./sub/../a_stretch.h5", "link.h5"]
    assert unique_files(args) == [cohort / "a_stretch.h5"]
    assert main(["batch", *args, "sub", "-o", str(out), "--workers", "1", "--quiet"]) == 0
    with open(out, newline="") as fh:
        files = [r["file"] for r in csv.DictReader(fh)]
    assert files == [str(cohort / "a_stretch.h5"), str(cohort / "sub" / "b_hreflex.h5")]
    assert "2 of 2 sessions analysed" in capsys.readouterr().out
    rows = run_batch(["sub/b_hreflex.h5", cohort / "sub" / "b_hreflex.h5"], workers=1, write=False)
    assert len(rows) == 1 and rows[0]["status"] == "ok"
