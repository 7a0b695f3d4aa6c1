"""`tonuslab analyze` and `tonuslab.open` on real session files."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

import tonuslab
from tonuslab.analysis import SUMMARY_KEYS, input_sha256, read_results
from tonuslab.cli import main


def _counts(path):
    with h5py.File(path, "r") as f:
        return f["streams/emg/counts"][()], f["streams/angle/counts"][()]


def test_analyze_json_writes_results_and_keeps_raw_data(stretch_copy, capsys, synth):
    raw_before = _counts(stretch_copy)
    digest = input_sha256(stretch_copy)
    assert main(["analyze", str(stretch_copy), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(SUMMARY_KEYS) <= set(summary)
    assert summary["tsrt_deg"] == pytest.approx(synth.TRUE_TSRT_DEG, abs=3.0)
    assert summary["mu_s"] == pytest.approx(synth.TRUE_MU_S, abs=0.03)
    assert summary["tsrt_ci_deg"][0] < summary["tsrt_deg"] < summary["tsrt_ci_deg"][1]
    assert summary["tsrt_inside_range"] is True and summary["n_stretches"] == 10
    assert len(summary["stretches"]) == 10 and summary["analyses"] == ["stretch_reflex"]
    assert summary["input_sha256"] == digest
    assert summary["parameters"]["detector"] == "threshold"
    # stored in the file; raw counts untouched
    for a, b in zip(raw_before, _counts(stretch_copy), strict=True):
        np.testing.assert_array_equal(a, b)
    assert input_sha256(stretch_copy) == digest
    stored = read_results(stretch_copy)["default"]
    assert stored["tsrt_deg"] == summary["tsrt_deg"]
    with h5py.File(stretch_copy, "r") as f:
        g = f["results/default"]
        assert g.attrs["software_version"] == tonuslab.__version__
        assert json.loads(g.attrs["parameters"])["channel"] == 0
    # a second named run is added; re-running the default replaces it
    assert main(["analyze", str(stretch_copy), "--run", "tkeo", "--detector", "tkeo"]) == 0
    out = capsys.readouterr().out
    assert "tsrt_deg" in out and "Spasticity profile" in out and "Per stretch" in out
    assert set(read_results(stretch_copy)) == {"default", "tkeo"}
    assert read_results(stretch_copy)["tkeo"]["parameters"]["detector"] == "tkeo"


def test_analyze_hreflex_session(hreflex_file, tmp_path, capsys):
    assert main(["analyze", str(hreflex_file), "--json", "--no-write"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["analyses"] == ["hreflex"]
    assert 0.2 < s["hmax_mmax"] < 0.7
    assert s["hmax_mmax_ci"][0] <= s["hmax_mmax"] <= s["hmax_mmax_ci"][1]
    assert 1 < s["m_latency_ms"] < 12 and 20 < s["h_latency_ms"] < 36
    assert len(s["stimuli"]) == 16 and s["tsrt_deg"] is None
    assert read_results(hreflex_file) == {}  # --no-write


def test_analyze_hreflex_gating_band_and_windows_from_the_cli(hreflex_file, capsys):
    assert main(["analyze", str(hreflex_file), "--json", "--no-write"]) == 0
    free = json.loads(capsys.readouterr().out)
    backgrounds = sorted(s["background_uv"] for s in free["stimuli"])
    cut = backgrounds[len(backgrounds) // 2]  # half the sweeps fall outside the band
    argv = [
        "analyze",
        str(hreflex_file),
        "--json",
        "--no-write",
        "--background-band",
        "0",
        f"{cut}",
    ]
    assert main([*argv, "--m-window", "3", "15", "--h-window", "20", "45"]) == 0
    gated = json.loads(capsys.readouterr().out)
    excluded = [s for s in gated["stimuli"] if s["exclusion"]]
    assert len(excluded) == sum(b > cut for b in backgrounds) > 0
    assert all("outside the band" in s["exclusion"] for s in excluded)
    assert gated["parameters"]["background_band_uv"] == [0.0, cut]
    for wave, (a, b) in (("m_window", (3.0, 15.0)), ("h_window", (20.0, 45.0))):
        window = gated["hreflex"][wave]
        assert (window["start_ms"], window["end_ms"], window["source"]) == (a, b, "override")


def test_open_gives_physical_units_events_and_results(stretch_copy, hreflex_file):
    tonuslab.analyze  # noqa: B018 - part of the API
    with tonuslab.open(stretch_copy) as s:
        assert s.emg_uv.shape[1] == 1 and s.emg_uv.dtype == float
        assert s.emg_time_s.shape == (s.emg_uv.shape[0],)
        assert s.emg_time_s[1] == pytest.approx(1 / s.emg_rate_hz)
        assert s.angle_deg.max() == pytest.approx(100.0, abs=0.05)
        assert s.metadata["muscle"] == "soleus"
        assert s.results == {} and s.gaps == []
        summary = tonuslab.analyze(s)
    assert tonuslab.build_profile(summary).component("tsrt_deg").value == summary["tsrt_deg"]
    from tonuslab.errors import SessionFileError

    closed = tonuslab.open(stretch_copy)
    closed.close()
    with pytest.raises(SessionFileError, match="closed"):
        closed.emg_uv  # noqa: B018
    with pytest.raises(SessionFileError, match="closed"):
        closed.emg_window(0.0, 1.0)
    with tonuslab.open(hreflex_file) as h:
        assert len(h.stimuli) == 16 and h.stimuli[3].intensity_ma == pytest.approx(8.0)
        assert h.angle_deg is None


@pytest.mark.parametrize(
    "argv_tail, needle",
    [
        (["missing.h5"], "no such file"),
        (["notasession.h5"], "not"),
        (["empty_session.h5"], "no analysable data"),
        (["stretch.h5", "--channel", "5"], "out of range"),
        (["stretch.h5", "--run", "_bad"], "invalid run name"),
        (["stretch.h5", "--passive-range", "1"], "expected 2"),
        (["hreflex.h5", "--background-band", "9", "2"], "--background-band must satisfy"),
        (["hreflex.h5", "--test-m-fraction", "1.5"], "--test-m-fraction"),
    ],
)
def test_user_mistakes_one_line_exit_2(
    argv_tail, needle, tmp_path, stretch_file, hreflex_file, synth
):
    import shutil

    (tmp_path / "notasession.h5").write_text("hello")
    shutil.copy(stretch_file, tmp_path / "stretch.h5")
    shutil.copy(hreflex_file, tmp_path / "hreflex.h5")
    synth.write_test_session(
        tmp_path / "empty_session.h5",
        {
            "emg_counts": np.zeros((2000, 1), np.int32),
            "angle_counts": None,
            "emg_rate_hz": 2000.0,
            "angle_rate_hz": None,
            "events": [],
        },
    )
    proc = subprocess.run(
        [sys.executable, "-m", "tonuslab", "analyze", *argv_tail],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert needle in proc.stderr.lower()


def test_one_analysis_refusing_the_data_does_not_sink_the_other(tmp_path, synth, capsys):
    data = synth.synthetic_stretch()
    n = data["emg_counts"].shape[0]
    data["events"] = [  # stimuli the H-reflex analysis cannot use (past the end of the EMG)
        {"kind": "stimulus", "emg_sample_index": n + 10 * i, "intensity_ma": 5.0}
        for i in range(1, 4)
    ]
    path = synth.write_test_session(
        tmp_path / "both.h5", data, metadata={"passive_range_deg": [0.0, 100.0]}
    )
    assert main(["analyze", str(path), "--json", "--no-write"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["analyses"] == ["stretch_reflex"] and s["tsrt_deg"] is not None
    assert any(f.startswith("hreflex: not analysed") for f in s["quality_flags"])


def test_output_piped_into_a_reader_that_stops_early(stretch_file, tmp_path):
    import shutil

    path = shutil.copy(stretch_file, tmp_path / "s.h5")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tonuslab", "analyze", str(path), "--json", "--no-write"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before anything is printed (like `| head -0`)
    err = proc.stderr.read().decode()
    assert proc.wait() == 0 and "Traceback" not in err
