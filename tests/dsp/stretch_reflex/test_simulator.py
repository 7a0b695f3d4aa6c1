"""The stretch-reflex analysis against the virtual patient's ground truth.

Default run: two quick sessions (10 stretches) per profile on a few profiles, with the accuracy
targets of issue 6 per seed where the statistics allow it. The full check (50 seeds, every
profile, 20 stretches) is marked slow and is the command behind docs/validation.md:
``tonuslab validate stretch --seeds 50``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("virtual_patient")

from tonuslab.validation import stretch_reflex as V

QUICK_PROFILES = ("healthy", "mild_elbow", "moderate_elbow", "plantarflexor_clonus")


@pytest.fixture(scope="module", params=QUICK_PROFILES)
def seeds(request):
    return [V.evaluate_seed(request.param, seed, quick=True) for seed in (0, 1)]


def test_per_stretch_accuracy(seeds):
    for s in seeds:
        for det, per in s["detectors"].items():
            r = per["emg_onset"]
            assert r["n_matched"] == r["n_truth"], det  # every stretch found
            assert r["misses"] == 0, det
            assert r["false_alarms"] <= 1, det
            if r["dsrt_err_deg"]:
                assert np.median(np.abs(r["dsrt_err_deg"])) <= 2.0, det
                assert np.median(np.abs(r["onset_err_s"])) <= 0.010, det
            t = per["trigger"]
            if t["dsrt_err_deg"]:
                assert np.median(np.abs(t["dsrt_err_deg"])) <= 2.0, det


def test_session_fit_and_grade(seeds):
    for s in seeds:
        truth = s["truth"]
        for det, per in s["detectors"].items():
            for conv in ("trigger", "emg_onset"):
                r = per[conv]
                assert r["grade"] == truth["tardieu_grade"], (det, conv)
                assert r["inside_range_given"] == truth["tsrt_in_range"], (det, conv)
                if not truth["tsrt_in_range"]:
                    assert r["tsrt_err_deg"] is None or r["inside_range"] is False
                    continue
                assert r["tsrt_err_deg"] is not None, (det, conv)
                assert abs(r["tsrt_err_deg"]) <= 4.0, (det, conv)
                assert abs(r["mu_err_s"]) <= 0.05, (det, conv)


def test_interval_contains_truth_for_the_default_detector(seeds):
    fitted = [s["detectors"]["threshold"]["trigger"] for s in seeds]
    fitted = [r for r in fitted if r["tsrt_err_deg"] is not None]
    for r in fitted:  # 2 seeds: each covered with probability ~0.95; allow one miss overall
        assert r["tsrt_covered"] or r["mu_covered"]


@pytest.mark.slow
def test_full_validation_50_seeds():
    res = V.run(seeds=50)
    coverage = []
    for name, prof in res["profiles"].items():
        truth = prof["truth"]
        for det, row in prof["detectors"].items():
            r = row["emg_onset"]
            assert r["grade_exact_fraction"] == 1.0, (name, det)
            assert r["inside_range_correct_fraction"] == 1.0, (name, det)
            if not truth["tsrt_in_range"]:
                continue
            assert r["dsrt_median_abs_err_deg"] <= 2.0, (name, det)
            assert r["onset_median_abs_err_ms"] <= 10.0, (name, det)
            for conv in ("trigger", "emg_onset"):
                c = row[conv]
                assert c["tsrt_within_fraction"] >= 0.9, (name, det, conv)
                assert c["mu_within_fraction"] >= 0.9, (name, det, conv)
                # one cell of 50 seeds: binomial SD ~4 %; the average is held to ~95 %
                assert c["tsrt_ci_coverage"] >= 0.8, (name, det, conv)
                assert c["mu_ci_coverage"] >= 0.8, (name, det, conv)
                coverage += [c["tsrt_ci_coverage"], c["mu_ci_coverage"]]
                assert math.isfinite(c["tsrt_median_abs_err_deg"])
    assert 0.92 <= np.mean(coverage) <= 1.0
