"""The analysis pipeline adds nothing and loses nothing between the file and the metrics."""

import json

import numpy as np
import pytest

import tonuslab
from tonuslab.cli import main
from tonuslab.session import save_recording


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    vp = pytest.importorskip("virtual_patient")
    folder = tmp_path_factory.mktemp("sim")
    rec = vp.simulate_stretch_session("moderate_elbow", seed=4)
    path = save_recording(
        rec,
        folder / "s.h5",
        metadata={"subject_id": "S9", "muscle": "biceps_brachii", "passive_range_deg": [0, 140]},
    )
    return rec, path


def test_file_analysis_equals_direct_analysis_of_the_arrays(simulated):
    from dsp.stretch_reflex import analyze_stretch_reflex

    rec, path = simulated
    with tonuslab.open(path) as s:
        np.testing.assert_array_equal(s.emg_uv, rec.emg_uv)
        np.testing.assert_allclose(s.angle_deg, rec.stretch_direction_sign * rec.angle_deg)
        summary = tonuslab.analyze(s)
    direct = analyze_stretch_reflex(
        rec.emg_uv,
        rec.emg_rate_hz,
        rec.stretch_direction_sign * rec.angle_deg,
        rec.angle_rate_hz,
        passive_range_deg=(0.0, 140.0),
    ).to_dict()
    for key in ("tsrt_deg", "tsrt_ci_deg", "mu_s", "r2", "n_stretches", "tardieu_grade"):
        assert summary[key] == direct[key], key
    assert summary["stretches"] == direct["stretches"]


def test_gaps_are_flagged_and_nan(tmp_path, synth, capsys):
    data = synth.synthetic_stretch()
    path = synth.write_test_session(
        tmp_path / "gappy.h5",
        data,
        metadata={"passive_range_deg": [0.0, 100.0]},
        gaps=[{"stream": "emg", "start_index": 30000, "n_samples": 400, "reason": "link_lost"}],
    )
    with tonuslab.open(path) as s:
        assert np.isnan(s.emg_uv[30000:30400]).all() and not np.isnan(s.emg_uv[:30000]).any()
        assert s.gaps[0]["n_samples"] == 400
    assert main(["analyze", str(path), "--json", "--no-write"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert any("gap" in f for f in summary["quality_flags"])
    assert summary["tsrt_deg"] is not None
    # the report draws around the gap (NaN) and lists the flag
    assert main(["report", str(path), "-o", str(tmp_path / "gappy.html")]) == 0
    html = (tmp_path / "gappy.html").read_text()
    assert html.count('class="figure"') == 4 and "gap(s)" in html


def test_in_memory_session_analyses_like_the_file(simulated):
    from tonuslab.session import Session

    rec, path = simulated
    memory = Session.from_arrays(
        emg_uv=rec.emg_uv,
        emg_rate_hz=rec.emg_rate_hz,
        angle_deg=rec.stretch_direction_sign * rec.angle_deg,
        angle_rate_hz=rec.angle_rate_hz,
        metadata={"muscle": "biceps_brachii", "passive_range_deg": [0, 140]},
    )
    assert memory.emg_time_s.shape == (rec.emg_uv.shape[0],) and memory.stimuli == []
    with tonuslab.open(path) as s:
        from_file = tonuslab.analyze(s)
    in_memory = tonuslab.analyze(memory)
    assert in_memory["tsrt_deg"] == from_file["tsrt_deg"]
    assert in_memory["stretches"] == from_file["stretches"]
