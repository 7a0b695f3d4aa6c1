"""`tonuslab analyze` and `tonuslab.open` on real session files."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

import tonuslab
from tonuslab.analysis import SUMMARY_KEYS
from tonuslab.cli import main
from tonuslab.results import input_sha256, read_results


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


# --- H-reflex sessions with the recorder's notes ------------------------------------------------
@pytest.fixture(scope="module")
def simulated_hreflex():
    """A short simulated H-reflex session (ladder, 0.1-2 Hz blocks, pairs) from the simulator."""
    from tonuslab.validation import hreflex as V

    return V.simulate("soleus_healthy", 0, 4000.0, quick=True)


def _with_recorder_notes(path, rec, *, gate_band=(0.0, 25.0), skipped=1, muscle="soleus"):
    """Save ``rec`` with the notes the recorder's hreflex protocol writes (protocol + pulses)."""
    import dataclasses

    from tonuslab.session import save_recording
    from tonuslab.validation import hreflex as V

    stims = [dict(e) for e in rec.events]
    n_pairs = 2 * 4
    n_blocks = len(V.RATE_BLOCKS_HZ) * 6
    n_ladder = len(stims) - n_blocks - 2 * n_pairs
    blocks = ["recruitment"] * n_ladder + [
        f"rate_{f:g}hz" for f in V.RATE_BLOCKS_HZ for _ in "123456"
    ]
    rates = [0.1] * n_ladder + [f for f in V.RATE_BLOCKS_HZ for _ in "123456"]
    notes = [{"kind": "note", "label": "protocol", "params": {"hreflex": {
        "config": {"gate_band_uv": list(gate_band), "gate_bins": 2}, "time_scale": 1.0,
        "time_compressed": False}}}]  # fmt: skip
    for k, e in enumerate(stims[: n_ladder + n_blocks]):
        notes.append({"kind": "note", "label": "hreflex_pulse", "emg_sample_index": e[
            "emg_sample_index"] + 400, "params": {"block": blocks[k], "rate_hz": rates[k],
            "status": "delivered", "first_emg_index": e["emg_sample_index"], "number": k,
            "time_compressed": False}})  # fmt: skip
    for k in range(skipped):
        params = {"block": "recruitment", "status": "skipped_background", "number": 1000 + k}
        notes.append({"kind": "note", "label": "hreflex_pulse", "params": params})
    events = sorted(stims + notes, key=lambda e: e.get("emg_sample_index", 0))
    save_recording(dataclasses.replace(rec, events=events), path, metadata={"muscle": muscle})
    return path, blocks


def test_analysis_uses_the_recorded_rates_gate_band_and_drops_block_starts(
    simulated_hreflex, tmp_path, capsys
):
    path, blocks = _with_recorder_notes(tmp_path / "rec.h5", simulated_hreflex)
    assert main(["analyze", str(path), "--json", "--no-write"]) == 0
    s = json.loads(capsys.readouterr().out)
    h = s["hreflex"]
    assert h["recording"]["stim_rate_source"] == "recorder notes"
    assert h["parameters"]["background_band_uv"] == [0.0, 25.0]
    assert h["parameters"]["background_band_source"].startswith("recorded gate band")
    rates = [st["rate_hz"] for st in s["stimuli"]]
    for k, block in enumerate(blocks):  # the recorded rate of block pulses; none for the ladder
        assert rates[k] == (float(block[5:-2]) if block.startswith("rate_") else None)
    assert any("skipped 1 planned pulse" in f for f in s["quality_flags"])
    # the first pulse of each block follows a 20 s rest: not in its block's mean
    firsts = {k for k in range(1, len(blocks)) if blocks[k] != blocks[k - 1] and k > 0}
    firsts = {k for k in firsts if blocks[k].startswith("rate_")}
    assert len(firsts) == 5
    for d in h["rate_dependent_depression_detail"]:
        assert not firsts & set(d["stimuli"]) and d["n"] == 5
    assert set(s["rate_dependent_depression"]) == {"0.1", "0.2", "0.3", "1", "2"}
    # an explicit --background-band wins over the recorded gate band
    assert main(["analyze", str(path), "--json", "--no-write", "--background-band", "0", "30"]) == 0
    given = json.loads(capsys.readouterr().out)["hreflex"]["parameters"]
    assert given["background_band_uv"] == [0.0, 30.0] and given["background_band_source"] == "given"


def test_time_compressed_recording_is_flagged_and_its_depression_withheld(capsys):
    """The recorder's own demo session (time scale 0.05 on the emulated device)."""
    import pathlib

    path = pathlib.Path(__file__).parents[2] / "data/sessions/hreflex_protocol_soleus_healthy.h5"
    assert main(["analyze", str(path), "--json", "--no-write"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["hreflex"]["recording"]["time_compressed"] is True
    assert any("time-compressed session" in f for f in s["quality_flags"])
    assert s["rate_dependent_depression"] == {} and "time-compressed" in s[
        "depression_not_interpretable"]  # fmt: skip
    # the ladder rule in device time: 8-15 s x 0.05
    assert s["hreflex"]["parameters"]["recruitment_interval_s"] == pytest.approx([0.4, 0.75])
    profile = tonuslab.build_profile(s).component("rate_dependent_depression")
    assert profile.value is None and "time-compressed" in profile.note
    assert main(["analyze", str(path), "--no-write"]) == 0
    assert "not interpretable" in capsys.readouterr().out


@pytest.mark.parametrize(
    "muscle,preset,flagged",
    [("medial gastrocnemius", "soleus", False), ("Soleus (left)", "soleus", False),
     ("biceps", "soleus", True), ("wrist_flexor", "fcr", True)],
)  # fmt: skip
def test_hreflex_preset_from_the_muscle_name(hreflex_file, capsys, muscle, preset, flagged):
    assert main(["analyze", str(hreflex_file), "--json", "--no-write", "--muscle", muscle]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["hreflex"]["muscle"] == preset
    flags = [f for f in s["quality_flags"] if "has no H-reflex preset" in f]
    assert bool(flags) == flagged


def test_text_summary_shows_hreflex_numbers_with_their_references(hreflex_file, capsys):
    assert main(["analyze", str(hreflex_file), "--no-write"]) == 0
    out = capsys.readouterr().out
    block = out[out.index("H-reflex (soleus preset") : out.index("Per stretch")]
    labels = ("Mmax", "Hmax/Mmax", "H onset latency", "Test intensity",
              "Rate depression (H / H at 0.1 Hz)", "Paired-pulse depression (H2 / H1)")  # fmt: skip
    for label in labels:
        line = next(i for i, t in enumerate(block.splitlines()) if t.strip().startswith(label))
        following = block.splitlines()[line + 1 : line + 3]
        assert any(t.strip().startswith("reference:") for t in following), label
    assert "M stability:" in block and "Koelman" in block and "Falco" in block
    assert "No value is mapped to clinical scores" in block
    profile = out[out.index("Spasticity profile") : out.index("H-reflex (soleus preset")]
    assert "0.93 at 0.1 Hz" not in profile  # the raw H2/H1 is never shown as H(rate)/H(0.1 Hz)
