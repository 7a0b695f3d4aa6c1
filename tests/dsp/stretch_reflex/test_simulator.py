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


#: Documented misses of the per-stretch budgets (docs/validation.md), held to these bounds so
#: that they do not grow: the simulator's fatigable clonus fades to 5 % of its first burst
#: and its last beats sink into the tonic EMG.
KNOWN_MISS_BOUNDS = {
    "plantarflexor_clonus": {
        "clonus_beats_median_abs_err": 8.0,
        "clonus_duration_median_abs_err_s": 1.3,
    }
}


def test_per_stretch_measures_within_budgets(seeds):
    # start, latency, peak velocity, catch (time, onset-to-catch delay), clonus (frequency,
    # beats, duration) against the truth, per seed and detector
    name = seeds[0]["profile"]
    allowed = KNOWN_MISS_BOUNDS.get(name, {})
    for s in seeds:
        for det, per in s["detectors"].items():
            m = V.stretch_summary([per["emg_onset"]])
            for key, budget in V.STRETCH_BUDGETS.items():
                value = m[key]
                if value is None:  # nothing to compare (no catch or clonus in this profile)
                    continue
                if key.endswith("agreement"):
                    assert value >= budget, (name, s["seed"], det, key, value)
                else:
                    assert value <= allowed.get(key, budget), (name, s["seed"], det, key, value)
            if name != "healthy":
                assert m["latency_median_abs_err_ms"] is not None
            if name in ("moderate_elbow", "plantarflexor_clonus"):
                assert m["n_catch"] > 0
            if name == "plantarflexor_clonus":
                assert m["n_clonus"] > 0


def test_session_fit_and_grade(seeds):
    for s in seeds:
        truth = s["truth"]
        for det, per in s["detectors"].items():
            for conv in ("trigger", "emg_onset"):
                r = per[conv]
                assert r["grade"] == truth["tardieu_grade"], (det, conv)
                # the analysis' own decision (estimated range, velocity-dependence test)
                assert r["inside_range"] == truth["tsrt_in_range"], (det, conv)
                assert r["inside_range_given"] == truth["tsrt_in_range"], (det, conv)
                if not truth["tsrt_in_range"]:
                    continue
                assert r["tsrt_err_deg"] is not None, (det, conv)
                assert abs(r["tsrt_err_deg"]) <= 4.0, (det, conv)
                assert abs(r["mu_err_s"]) <= 0.05, (det, conv)


def test_interval_contains_truth_for_the_default_detector(seeds):
    fitted = [s["detectors"]["threshold"]["trigger"] for s in seeds]
    fitted = [r for r in fitted if r["tsrt_err_deg"] is not None]
    for r in fitted:  # 2 seeds: each covered with probability ~0.95; allow one miss overall
        assert r["tsrt_covered"] or r["mu_covered"]


@pytest.fixture(scope="module")
def healthy_session():
    return V.simulate("healthy", 0)


@pytest.mark.parametrize("pop_seed", [1, 3, 5, 8])
def test_false_onsets_on_a_healthy_muscle_are_not_called_spastic(healthy_session, pop_seed):
    # electrode pops (300-1500 uV) at random moments of 5 of the 20 velocity-level stretches:
    # each is taken for a reflex onset, and a line through them puts lambda inside the range
    # with mu > 0 (often "significantly": late in a stretch the angle is high and the velocity
    # low). Most stretches past that line show no reflex, so it is not a velocity-dependent
    # reflex: TSRT is reported outside the range, as the truth says.
    from dsp.stretch_reflex import analyze_stretch_reflex

    emg, fe, angle, fa, truth, _ = healthy_session
    assert truth["stretch_reflex"]["tsrt_in_range"] is False
    rng = np.random.default_rng(pop_seed)
    emg = emg.copy()
    stretches = truth["stretches"]
    for k in rng.choice(np.arange(2, len(stretches)), size=5, replace=False):
        t0, t1 = stretches[k]["start_s"], stretches[k]["movement_end_s"]
        i = round(rng.uniform(t0 + 0.2 * (t1 - t0), t1) * fe)
        n = round(0.1 * fe)
        pop = rng.choice([-1, 1]) * rng.uniform(300, 1500) * np.exp(-np.arange(n) / (0.02 * fe))
        emg[i : i + n, 0] += pop
    r = analyze_stretch_reflex(emg, fe, angle, fa, detector_sensitivity=False)
    assert r.n_valid >= 4 and r.mu_s > 0  # a line was fitted through the false onsets...
    assert r.range_deg[0] < r.tsrt_deg < r.range_deg[1]  # ...with lambda inside the range
    assert r.reflex_consistency < 0.5
    assert r.quality["not_velocity_dependent"]
    assert not r.tsrt_inside_range


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
            allowed = KNOWN_MISS_BOUNDS.get(name, {})
            for miss in r["stretch_budget_misses"]:
                assert miss.split()[0] in allowed, (name, det, miss)
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
