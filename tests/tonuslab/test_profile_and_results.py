"""Profile arithmetic, summary merging and the results group (real HDF5 files)."""

import json
import math

import h5py
import numpy as np
import pytest

from tonuslab.analysis import (
    SUMMARY_KEYS,
    input_sha256,
    read_results,
    summarize,
    write_results,
)
from tonuslab.errors import UsageError
from tonuslab.profile import build_profile, joint_of_muscle, srd_from_icc


def test_srd_arithmetic_matches_domain_guide():
    # SEM = SD * sqrt(1 - ICC); SRD = 2.77 * SEM: ankle SD 13, ICC 0.85
    assert srd_from_icc(13.0, 0.85) == pytest.approx(2.77 * 13.0 * math.sqrt(0.15))
    assert srd_from_icc(10.0, 1.0) == 0.0
    with pytest.raises(ValueError):
        srd_from_icc(10.0, 1.5)


def test_joint_of_muscle():
    assert joint_of_muscle("biceps_brachii") == "elbow"
    assert joint_of_muscle("Soleus") == "ankle"
    assert joint_of_muscle("FCR") == "wrist"
    assert joint_of_muscle(None) is None
    assert joint_of_muscle("masseter") is None


def _stretch_dict(tsrt=45.0, inside=True):
    return {
        "tsrt_deg": tsrt,
        "tsrt_ci_deg": [40.0, 50.0],
        "mu_s": 0.2,
        "mu_ci_s": [0.1, 0.3],
        "r2": 0.8,
        "n_stretches": 2,
        "tsrt_inside_range": inside,
        "tardieu_r1_deg": 60.0,
        "tardieu_r2_deg": 110.0,
        "tardieu_r2_minus_r1_deg": 50.0,
        "tardieu_grade": 2,
        "emg_gain": {"ratio": 3.5, "low_velocity_rms_uv": 10.0},
        "stretches": [{"index": 0, "dsrt_deg": 40.0}, {"index": 1, "dsrt_deg": None}],
        "warnings": ["few stretches"],
        "quality": {"few_stretches": True, "mu_negative": False},
    }


def test_summarize_has_every_key_and_merges_both_analyses():
    hreflex = {
        "hmax_mmax": 0.45,
        "hmax_mmax_ci": [0.4, 0.5],
        "m_latency_ms": 6.0,
        "h_latency_ms": 31.0,
        "rate_dependent_depression": [
            {"frequency_hz": 0.1, "ratio": 0.95},
            {"frequency_hz": 1.0, "ratio": 0.7},
        ],
        "rate_dependent_depression_ci": {"0.1": [1.0, 1.0], "1.0": [0.62, 0.78]},
        "stimuli": {"intensity_ma": [1.0, 2.0], "h_uv": [100.0, float("nan")]},
    }
    s = summarize(_stretch_dict(), hreflex)
    assert s["rate_dependent_depression_ci"] == {"0.1": [1.0, 1.0], "1": [0.62, 0.78]}
    depression = build_profile(s).component("rate_dependent_depression")
    assert depression.uncertainty == "95% CI 0.1 Hz: 1 to 1; 1 Hz: 0.62 to 0.78"
    assert set(SUMMARY_KEYS) <= set(s)
    assert s["emg_gain"] == 3.5 and s["emg_gain_detail"]["low_velocity_rms_uv"] == 10.0
    assert s["rate_dependent_depression"] == {"0.1": 0.95, "1": 0.7}
    assert s["stimuli"][1] == {"intensity_ma": 2.0, "h_uv": None}  # NaN -> null
    assert "stretch: few_stretches" in s["quality_flags"]
    assert "stretch: mu_negative" not in s["quality_flags"]
    assert s["analyses"] == ["stretch_reflex", "hreflex"]
    json.dumps(s, allow_nan=False)


def test_summarize_without_analyses_gives_nulls():
    s = summarize(None, None)
    assert all(s[k] is None for k in SUMMARY_KEYS if k != "rate_dependent_depression")
    assert s["rate_dependent_depression"] == {}


def test_profile_components_uncertainty_and_srd():
    s = summarize(_stretch_dict(), None)
    s["muscle"] = "soleus"
    p = build_profile(s)
    tsrt = p.component("tsrt_deg")
    assert tsrt.value == 45.0 and tsrt.ci == [40.0, 50.0]
    assert "40" in tsrt.uncertainty and "50" in tsrt.uncertainty
    assert tsrt.srd == pytest.approx(srd_from_icc(13.0, 0.85), abs=0.01)
    assert "inside" in tsrt.interpretation
    assert p.component("tardieu_r2_minus_r1_deg").value == 50.0
    assert p.component("hmax_mmax").value is None
    assert p.composite is None
    text = p.format_text()
    assert "Ashworth" in text and "not measured" in text
    s["muscle"] = "biceps"
    assert build_profile(s).component("tsrt_deg").srd == 32.0
    s["muscle"] = "fcr"
    assert build_profile(s).component("tsrt_deg").srd is None


def _raw_file(path):
    with h5py.File(path, "w") as f:
        f.create_dataset("emg/counts", data=np.arange(3000, dtype=np.int32).reshape(1000, 3))
        f.create_dataset("angle/counts", data=np.arange(100, dtype=np.int32))
        f.attrs["muscle"] = "soleus"


def test_results_written_atomically_and_never_touch_raw_data(tmp_path):
    path = tmp_path / "s.h5"
    _raw_file(path)
    before = input_sha256(path)
    summary = summarize(_stretch_dict(), None)
    summary["parameters"] = {"channel": 0}
    stored = write_results(path, summary, run="default")
    assert stored["input_sha256"] == before == input_sha256(path)
    # a second run is added, the first replaced on re-run
    write_results(path, summarize(_stretch_dict(tsrt=30.0), None), run="other")
    write_results(path, summarize(_stretch_dict(tsrt=50.0), None), run="default")
    runs = read_results(path)
    assert set(runs) == {"default", "other"}
    assert runs["default"]["tsrt_deg"] == 50.0 and runs["other"]["tsrt_deg"] == 30.0
    with h5py.File(path, "r") as f:
        g = f["results/default"]
        assert g.attrs["schema"] == "tonuslab.analysis" and g.attrs["schema_version"] == 1
        assert g.attrs["input_sha256"] == before
        np.testing.assert_array_equal(g["stretches/dsrt_deg"][:], [40.0, np.nan])
        np.testing.assert_array_equal(f["emg/counts"][:, 0], np.arange(0, 3000, 3))
    assert input_sha256(path) == before


def test_groups_starting_with_underscore_are_ignored(tmp_path):
    path = tmp_path / "s.h5"
    _raw_file(path)
    write_results(path, summarize(_stretch_dict(), None), run="default")
    with h5py.File(path, "r+") as f:
        f["results"].create_group("_scratch")
    assert set(read_results(path)) == {"default"}


_KILL_LOOP = """
import sys
from tonuslab.analysis import summarize, write_results
big = {"stretches": [{"index": i, "dsrt_deg": float(i), "note": "x" * 50} for i in range(3000)]}
i = 0
while True:
    s = summarize(big, None)
    s["parameters"] = {"i": i}
    write_results(sys.argv[1], s, run="default", input_hash="h")
    i += 1
    if i == 1:
        print("written", flush=True)
"""


def test_killed_analysis_leaves_a_valid_unchanged_file(tmp_path):
    import random
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "s.h5"
    _raw_file(path)
    digest = input_sha256(path)
    script = tmp_path / "loop.py"
    script.write_text(_KILL_LOOP)
    rng = random.Random(0)
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"written"
        time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # the file opens, every object is readable, raw data and the last complete run intact
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: obj[()] if isinstance(obj, h5py.Dataset) else None)
        assert input_sha256(path) == digest
        assert read_results(path)["default"]["stretches"][2999]["dsrt_deg"] == 2999.0
    write_results(path, summarize(_stretch_dict(), None), run="default")
    assert not list(tmp_path.glob(".s.h5.analysis-*.tmp"))  # leftovers cleaned


def test_bad_run_name(tmp_path):
    path = tmp_path / "s.h5"
    _raw_file(path)
    with pytest.raises(UsageError):
        write_results(path, summarize(None, None), run="_x")


def test_every_json_key_and_csv_column_is_documented():
    import pathlib

    from tonuslab.batch import BASE_COLUMNS

    doc = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    for key in (*SUMMARY_KEYS, "stretches", "stimuli", "quality_flags", "input_sha256"):
        assert f"`{key}`" in doc, key
    for column in BASE_COLUMNS:
        assert column in doc, column


def test_non_ascii_table_values_round_trip(tmp_path):
    path = tmp_path / "s.h5"
    _raw_file(path)
    d = _stretch_dict()
    d["stretches"][0]["exclusion_reasons"] = ["EMG > 50 µV before the stretch"]
    write_results(path, summarize(d, None), run="default")
    with h5py.File(path, "r") as f:
        raw = f["results/default/stretches/exclusion_reasons"][0]
    assert json.loads(raw.decode() if isinstance(raw, bytes) else raw) == [
        "EMG > 50 µV before the stretch"
    ]


def test_profile_reports_tsrt_under_every_detector():
    s = summarize(
        {
            **_stretch_dict(),
            "detector": "threshold",
            "detector_tsrt_deg": {"threshold": 45.0, "tkeo": 47.5},
            "tsrt_spread_deg": 2.5,
        },
        None,
    )
    text = build_profile(s).component("tsrt_deg").interpretation
    assert "Detector used: threshold" in text and "tkeo 47.5" in text and "spread 2.5" in text
