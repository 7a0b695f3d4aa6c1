"""Uncertainty of the Tardieu angles and the EMG gain, and the profile and report that show it."""

import json

import numpy as np
import pytest

from tonuslab.analysis import analyze_file, summarize
from tonuslab.profile import SOURCES, build_profile
from tonuslab.report import tardieu_html
from tonuslab.stretch_uncertainty import stretch_intervals


def _stretch_result(n_per_velocity=3, seed=0, catch_sd=2.0):
    """A stretch-reflex ``to_dict()`` with a per-stretch table and dsp's point estimates."""
    rng = np.random.default_rng(seed)
    rows = []
    for v in (20, 60, 100, 140, 200):
        for _ in range(n_per_velocity):
            fast = v >= 200
            rows.append(
                {
                    "index": len(rows),
                    "peak_velocity_deg_s": v + rng.normal(0, 1),
                    "end_angle_deg": 110.0 + rng.normal(0, 1.5),
                    "catch_angle_deg": 60.0 + rng.normal(0, catch_sd) if fast else None,
                    "catch_detected": fast,
                    "stretch_rms_uv": (40.0 if fast else 10.0) * rng.lognormal(0, 0.2),
                    "exclusion_reasons": [],
                }
            )
    peaks = np.array([r["peak_velocity_deg_s"] for r in rows])
    slow = [r for r in rows if r["peak_velocity_deg_s"] <= np.percentile(peaks, 20)]
    fast = [r for r in rows if r["peak_velocity_deg_s"] >= np.percentile(peaks, 80)]
    r1 = float(np.median([r["catch_angle_deg"] for r in fast]))
    r2 = float(np.median([r["end_angle_deg"] for r in slow]))
    lo = float(np.mean([r["stretch_rms_uv"] for r in slow]))
    hi = float(np.mean([r["stretch_rms_uv"] for r in fast]))
    return {
        "tsrt_deg": 50.0,
        "tardieu_r1_deg": r1,
        "tardieu_r2_deg": r2,
        "tardieu_r2_minus_r1_deg": r2 - r1,
        "tardieu_grade": 2,
        "emg_gain": {"ratio": hi / lo, "low_velocity_rms_uv": lo, "high_velocity_rms_uv": hi},
        "stretches": rows,
    }


def test_intervals_contain_the_estimates_and_are_reproducible():
    d = _stretch_result()
    out = stretch_intervals(d)
    for key, ci_key in (
        ("tardieu_r1_deg", "tardieu_r1_ci_deg"),
        ("tardieu_r2_deg", "tardieu_r2_ci_deg"),
        ("tardieu_r2_minus_r1_deg", "tardieu_r2_minus_r1_ci_deg"),
    ):
        lo, hi = out[ci_key]
        assert lo <= d[key] <= hi and hi - lo > 0
    lo, hi = out["emg_gain_ci"]
    assert lo < d["emg_gain"]["ratio"] < hi
    assert stretch_intervals(d) == out  # fixed seed
    # a wider spread of catch angles gives a wider R1 interval
    wide = stretch_intervals(_stretch_result(catch_sd=8.0))["tardieu_r1_ci_deg"]
    assert wide[1] - wide[0] > out["tardieu_r1_ci_deg"][1] - out["tardieu_r1_ci_deg"][0]


def test_no_interval_from_too_few_stretches_or_a_table_that_does_not_match():
    d = _stretch_result(n_per_velocity=1)  # one slow and one fast stretch
    out = stretch_intervals(d)
    assert out["tardieu_r1_ci_deg"] is None and out["emg_gain_ci"] is None
    assert "not computed" in out["stretch_ci_method"]
    d = _stretch_result()
    d["tardieu_r1_deg"] += 5.0  # another estimator than the one repeated here
    d["emg_gain"]["ratio"] *= 1.1
    out = stretch_intervals(d)
    assert out["tardieu_r1_ci_deg"] is None and out["tardieu_r2_minus_r1_ci_deg"] is None
    assert out["tardieu_r2_ci_deg"] is not None and out["emg_gain_ci"] is None
    assert stretch_intervals(None) == {}


def test_profile_and_report_show_the_intervals_and_the_grade_range():
    s = summarize(_stretch_result(), None)
    for key in ("tardieu_r1_ci_deg", "tardieu_r2_ci_deg", "tardieu_r2_minus_r1_ci_deg"):
        assert len(s[key]) == 2
    assert len(s["emg_gain_ci"]) == 2
    json.dumps(s, allow_nan=False)
    p = build_profile(s)
    dyn = p.component("tardieu_r2_minus_r1_deg")
    assert dyn.uncertainty.startswith("95% CI") and dyn.ci == s["tardieu_r2_minus_r1_ci_deg"]
    assert dyn.interpretation.startswith("R1 ") and dyn.interpretation.count("95% CI") == 2
    gain = p.component("emg_gain")
    assert gain.uncertainty.startswith("95% CI") and gain.ci == s["emg_gain_ci"]
    grade = p.component("tardieu_grade")
    assert "(0-4)" in grade.label and "(0-5)" not in p.format_text()
    html = tardieu_html(s)
    lo, hi = s["tardieu_r1_ci_deg"]
    assert f"{lo:.3g}" in html and f"{hi:.3g}" in html and "bootstrap" in html


def test_srds_cite_their_studies(stretch_copy):
    s = summarize(_stretch_result(), None)
    for muscle, study in (("soleus", "blanchette2016"), ("biceps", "calota2008")):
        s["muscle"] = muscle
        s["joint"] = None
        tsrt = build_profile(s).component("tsrt_deg")
        assert SOURCES[study] in tsrt.srd_sources and tsrt.srd_how
    s["muscle"] = "soleus"
    assert SOURCES["weir2005"] in build_profile(s).component("tsrt_deg").srd_sources


def test_a_recorded_session_gets_intervals(stretch_copy):
    summary = analyze_file(stretch_copy, write=False)
    assert summary["tardieu_r2_ci_deg"][0] <= summary["tardieu_r2_deg"]
    assert summary["tardieu_r2_deg"] <= summary["tardieu_r2_ci_deg"][1]
    assert summary["emg_gain_ci"][0] < summary["emg_gain"] < summary["emg_gain_ci"][1]
    assert summary["tardieu_r1_deg"] is None and summary["tardieu_r1_ci_deg"] is None
    assert build_profile(summary).component("emg_gain").uncertainty.startswith("95% CI")


@pytest.mark.parametrize("key", ["tardieu_r1_ci_deg", "emg_gain_ci"])
def test_intervals_of_dsp_when_it_gives_them_are_kept(key):
    d = _stretch_result()
    d[key] = [1.0, 2.0]
    assert summarize(d, None)[key] == [1.0, 2.0]
