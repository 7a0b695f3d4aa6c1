"""Real-EMG validation of the onset detectors against hand marks (docs/validation.md)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tonuslab.validation import real_emg as R
from tonuslab.validation import real_emg_data as D


def test_score_counts_hits_fragments_false_alarms_and_ignores_unsure():
    bursts = [(1.0, 2.0), (5.0, 6.0)]
    unsure = [(7.0, 9.0)]
    s = R.score(np.array([0.7, 1.2, 5.03, 7.5, 3.0]), bursts, unsure)
    assert s["hits"] == 2 and s["fragments"] == 1 and s["false"] == 1
    assert s["count"] == 4 and s["n_marked"] == 2  # 7.5 s is unsure: not counted
    assert s["errors_ms"] == pytest.approx([-300.0, 30.0])
    miss = R.score(np.array([0.2]), bursts, unsure)  # 0.8 s early: not this burst
    assert miss["hits"] == 0 and miss["false"] == 1 and miss["errors_ms"] == [None, None]


def test_marks_table_is_well_formed():
    marks = D.read_marks()
    recordings = {f"{src}/{name.removesuffix('.csv')}" for src, (*_, files) in D.SOURCES.items()
                  for name in files}  # fmt: skip
    assert {rec for rec, _ in marks} == recordings
    n_bursts = 0
    for m in marks.values():
        spans = sorted(m["bursts"] + m["unsure"])
        assert all(a < b for a, b in spans)
        assert all(b0 <= a1 + 1e-9 for (_, b0), (a1, _) in itertools.pairwise(spans))
        n_bursts += len(m["bursts"])
    assert len(marks) == 11 and n_bursts == 10


def test_pieces_split_at_gaps_and_cut_the_notch_settling_time():
    x = np.random.default_rng(0).normal(size=20000)
    x[5000:5100] = np.nan
    x[18200:18300] = np.nan  # leaves a 0.85 s run at the end: too short
    ch = D.Channel("r", "c", 2000.0, x, 50.0, [], [])
    got = [(a, y.size) for a, y in R.pieces(ch)]
    cut = round(R.NOTCH_SETTLE_S * 2000)
    assert got == [(cut, 5000 - 2 * cut), (5100 + cut, 13100 - 2 * cut)]


@pytest.fixture(scope="module")
def real_result():
    try:
        return R.run()
    except D.DataUnavailable as exc:
        pytest.skip(f"real recordings not available offline: {exc}")


@pytest.mark.slow
def test_default_detector_meets_the_real_burst_budget(real_result):
    s = real_result["summary"]["threshold"]
    assert s["n_marked"] == 10 and s["channels"] == 11
    assert s["exact_counts"] == 11  # count exact on every channel
    assert s["hits"] == 10 and s["fragments"] == 0 and s["false"] == 0
    assert s["median_abs_error_ms"] < R.BUDGET_MEDIAN_ABS_MS


@pytest.mark.slow
def test_real_table_lists_every_detector_and_channel(real_result):
    table = R.format_table(real_result)
    for m in R.OURS:
        assert f"| {m} |" in table
    assert table.count("| emgflow/") == 8 and table.count("| libemg/") == 3


@pytest.fixture(scope="module")
def real_paths():
    try:
        return D.fetch()
    except D.DataUnavailable as exc:
        pytest.skip(f"real recordings not available offline: {exc}")


@pytest.mark.slow
def test_real_files_import_as_sessions(real_paths, tmp_path, capsys):
    import tonuslab
    from tonuslab.cli import main

    src = real_paths["emgflow/sample_data_01"]  # BOM, 4-decimal Time column, NULL cells
    out = tmp_path / "ef.h5"
    assert main(["import", str(src), "-o", str(out), "--emg", "EMG_zyg:mV"]) == 0
    with tonuslab.open(out) as s:
        assert s.emg_rate_hz == 2000.0
        assert s.emg_uv.shape == (20000, 1)
        assert [(g["start_index"], g["n_samples"]) for g in s.gaps] == [(16598, 100)]
    myo = real_paths["libemg/emg_data_myo"]  # no header
    assert main(["import", str(myo), "-o", str(tmp_path / "m.h5"), "--emg", "5", "--rate",
                 "200"]) == 2  # fmt: skip
    assert "--no-header" in capsys.readouterr().err
    assert main(["import", str(myo), "-o", str(tmp_path / "m.h5"), "--no-header", "--emg", "5",
                 "--rate", "200"]) == 0  # fmt: skip
    rows = np.loadtxt(myo, delimiter=",")
    with tonuslab.open(tmp_path / "m.h5") as s:
        assert rows.shape[0] == 500 and s.emg_uv.shape == (500, 1)  # the first row included
        assert s.emg_uv[:, 0] == pytest.approx(rows[:, 5])


def test_offline_fetch_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    import subprocess

    from tonuslab.cli import main

    def no_network(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version\n")

    monkeypatch.setenv("TONUSLAB_DATA_CACHE", str(tmp_path))
    monkeypatch.setattr(D.subprocess, "run", no_network)
    with pytest.raises(D.DataUnavailable, match=r"EMGFlow==1\.1\.2"):
        D.fetch()
    assert main(["validate", "real-emg"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_changed_file_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "real-emg" / "emgflow"
    folder.mkdir(parents=True)
    for name in D.SOURCES["emgflow"][3]:
        (folder / name).write_text("Time,EMG_zyg,EMG_cor\n")
    monkeypatch.setenv("TONUSLAB_DATA_CACHE", str(tmp_path))
    with pytest.raises(D.DataMismatch, match="SHA-256"):
        D.fetch()
