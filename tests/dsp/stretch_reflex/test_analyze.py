"""analyze_stretch_reflex on small synthetic sessions with exact truth (tests/.../synth.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dsp import SignalError
from dsp.stretch_reflex import (
    REASON_ACTIVE,
    REASON_GAP,
    REASON_IRREGULAR,
    REASON_NO_REFLEX,
    REASON_OUTLIER,
    analyze_stretch_reflex,
    available_detectors,
)

from .synth import make_session


def run(s, **kw):
    return analyze_stretch_reflex(s.emg_uv, s.emg_rate_hz, s.angle_deg, s.angle_rate_hz, **kw)


@pytest.fixture(scope="module")
def catch_session():
    return make_session(seed=3, catch=True)


@pytest.mark.parametrize("detector", available_detectors())
def test_recovers_dsrt_tsrt_and_mu(catch_session, detector):
    s = catch_session
    r = run(s, detector=detector)
    assert r.n_stretches == len(s.truth) == 10
    assert r.detector == detector
    errs, onset_errs = [], []
    for rec, tr in zip(r.stretches, s.truth, strict=True):
        assert abs(rec.start_s - tr["start_s"]) < 0.04
        assert rec.reflex == tr["reflex"]
        errs.append(rec.dsrt_deg - tr["onset_angle_deg"])
        onset_errs.append(rec.onset_s - tr["onset_s"])
        assert rec.detector == detector
        assert rec.latency_s == pytest.approx(rec.onset_s - rec.start_s)
    assert np.median(np.abs(errs)) < 1.0
    assert np.median(np.abs(onset_errs)) < 0.006
    # EMG-onset convention: the slope carries the conduction delay (mu - delay), lambda does not
    assert r.tsrt_deg == pytest.approx(80.0, abs=1.5)
    assert r.mu_s == pytest.approx(0.15 - 0.03, abs=0.015)
    assert r.tsrt_ci_deg[0] < r.tsrt_deg < r.tsrt_ci_deg[1]
    assert r.mu_ci_s[0] < r.mu_s < r.mu_ci_s[1]
    assert r.r2 > 0.95
    assert r.n_valid == 10 and r.n_reflex == 10
    assert r.tsrt_inside_range  # range estimated from slow stretches: 0..100 deg
    assert r.range_source == "slow stretches"
    assert r.range_deg[1] == pytest.approx(100.0, abs=1.0)


def test_reflex_delay_gives_trigger_referenced_threshold(catch_session):
    s = catch_session
    r = run(s, detector="changepoint", reflex_delay_s=0.03)
    errs = [
        rec.dsrt_deg - tr["trigger_angle_deg"] for rec, tr in zip(r.stretches, s.truth, strict=True)
    ]
    assert np.median(np.abs(errs)) < 1.0
    assert r.mu_s == pytest.approx(0.15, abs=0.015)
    assert r.tsrt_deg == pytest.approx(80.0, abs=1.5)


def test_detector_sensitivity_reported(catch_session):
    r = run(catch_session)
    assert set(r.detector_tsrt_deg) == set(available_detectors())
    vals = list(r.detector_tsrt_deg.values())
    assert r.tsrt_spread_deg == pytest.approx(max(vals) - min(vals))
    assert r.detector_tsrt_deg["threshold"] == pytest.approx(r.tsrt_deg)
    assert r.tsrt_spread_deg < 2.0


def test_catch_then_release_gives_grade_2_and_catch_time(catch_session):
    s = catch_session
    r = run(s)
    assert r.tardieu_grade == 2
    for rec, tr in zip(r.stretches, s.truth, strict=True):
        assert rec.catch_detected and rec.release
        # catch = maximal deceleration: the first half of the truth's velocity dip
        assert -0.07 < rec.catch_s - tr["catch_s"] < 0.01
        assert 0.0 < rec.onset_to_catch_s < 0.12
        assert rec.catch_deceleration_deg_s2 > 0
    peaks = [rec.peak_velocity_deg_s for rec in r.stretches]
    fast = [
        rec.catch_angle_deg
        for rec in r.stretches
        if rec.peak_velocity_deg_s >= np.percentile(peaks, 80)
    ]
    assert r.tardieu_r1_deg == pytest.approx(np.median(fast))
    assert r.tardieu_r2_deg == pytest.approx(100.0, abs=1.0)
    assert r.tardieu_r2_minus_r1_deg == pytest.approx(r.tardieu_r2_deg - r.tardieu_r1_deg)


def test_catch_without_release_gives_r1_but_not_grade_2():
    # the velocity falls to 40 % 40 ms after the EMG onset and stays low until the end of the
    # stretch: Tardieu's R1 (the catch angle) needs no release; "catch then release" (grade 2)
    # does
    s = make_session(seed=3, catch=True, catch_release=False)
    r = run(s)
    assert r.n_reflex == 10
    for rec, tr in zip(r.stretches, s.truth, strict=True):
        assert rec.catch_detected, rec.index
        assert not rec.release, rec.index
        assert rec.catch_s == pytest.approx(tr["catch_s"], abs=0.01)
        assert rec.onset_to_catch_s == pytest.approx(rec.catch_s - rec.onset_s)
        assert 0.04 < rec.onset_to_catch_s < 0.1  # truth: 0.07 s after the true onset
        assert rec.catch_deceleration_deg_s2 > 0
    peaks = [rec.peak_velocity_deg_s for rec in r.stretches]
    fast = [
        rec.catch_angle_deg
        for rec in r.stretches
        if rec.peak_velocity_deg_s >= np.percentile(peaks, 80)
    ]
    assert math.isfinite(r.tardieu_r1_deg)
    assert r.tardieu_r1_deg == pytest.approx(np.median(fast))
    assert r.tardieu_grade == 1


def test_reflex_without_catch_is_grade_1():
    r = run(make_session(seed=4))
    assert r.n_reflex == 10
    assert not any(rec.catch_detected for rec in r.stretches)
    assert math.isfinite(r.stretches[4].catch_s)  # largest deceleration still reported
    assert r.tardieu_grade == 1
    assert math.isnan(r.tardieu_r1_deg)


@pytest.mark.parametrize(("clonus_s", "grade"), [(3.0, 3), (11.0, 4)])
def test_clonus_episodes_and_grade(clonus_s, grade):
    s = make_session(
        velocities=(30, 90, 150, 240, 30, 90, 150, 240),
        seed=5,
        catch=True,
        clonus_hz=6.0,
        clonus_s=clonus_s,
        rest_s=clonus_s + 1.5,
    )
    r = run(s)
    assert r.tardieu_grade == grade
    for rec in r.stretches:
        assert len(rec.clonus) >= 1
        ep = max(rec.clonus, key=lambda c: c.duration_s)
        assert ep.frequency_hz == pytest.approx(6.0, abs=0.3)
        assert ep.duration_s == pytest.approx(clonus_s, abs=0.6)
        assert ep.n_beats >= int(clonus_s * 6) - 2
        assert rec.clonus_duration_s == ep.duration_s


@pytest.mark.parametrize(("n_beats", "grade"), [(61, 3), (63, 4)])
def test_clonus_grade_boundary_at_10_s(n_beats, grade):
    # 6.25 Hz: 61 beats last 9.76 s (grade 3), 63 beats 10.08 s (grade 4); first-to-last peak
    # of 63 beats is only 9.92 s, one period short of the clonus' duration. The 40 ms reflex
    # burst is beat 0, followed by n_beats - 1 bursts one period apart.
    f = 6.25
    s = make_session(
        velocities=(60, 240, 60, 240),
        seed=15,
        burst_s=0.04,
        clonus_hz=f,
        clonus_beats=n_beats - 1,
        rest_s=n_beats / f + 1.5,
    )
    r = run(s, detector_sensitivity=False, n_bootstrap=0)
    for rec in r.stretches:
        ep = max(rec.clonus, key=lambda c: c.duration_s)
        assert ep.n_beats == n_beats
        assert ep.frequency_hz == pytest.approx(f, rel=0.01)
        assert ep.duration_s == pytest.approx(n_beats / f, abs=0.03)
        assert ep.duration_s == pytest.approx(ep.end_s - ep.start_s + 1 / ep.frequency_hz)
    assert r.tardieu_grade == grade


def test_no_reflex_is_recorded_not_dropped():
    s = make_session(reflex=False, seed=6)
    r = run(s)
    assert r.n_stretches == 10 and r.n_reflex == 0 and r.n_valid == 0
    for rec in r.stretches:
        assert not rec.reflex
        assert rec.exclusion_reasons == [REASON_NO_REFLEX]
        assert rec.reflex_absent_up_to_deg == pytest.approx(rec.end_angle_deg)
        assert rec.reflex_absent_up_to_deg == pytest.approx(100.0, abs=1.0)
    assert math.isnan(r.tsrt_deg) and math.isnan(r.mu_s)
    assert not r.tsrt_inside_range
    assert r.tardieu_grade == 0
    assert r.quality["fit_poorly_determined"]
    assert any("no velocity-dependent reflex" in w for w in r.warnings)


def test_tsrt_beyond_range_is_outside():
    # reflex only at the fastest stretches: lambda = 150 deg lies beyond the 0-100 deg range
    s = make_session(lam=150.0, mu=0.45, velocities=(20, 60, 180, 200, 220, 240) * 2, seed=7)
    r = run(s, passive_range_deg=(0.0, 100.0))
    assert r.range_source == "given" and r.range_deg == (0.0, 100.0)
    assert 0 < r.n_reflex < r.n_stretches
    slow = [rec for rec in r.stretches if rec.peak_velocity_deg_s < 100]
    assert all(not rec.reflex for rec in slow)
    assert r.tsrt_deg > 100.0
    assert not r.tsrt_inside_range


def test_negative_mu_warns():
    s = make_session(lam=20.0, mu=-0.12, delay_s=0.0, seed=8)
    r = run(s)
    assert r.mu_s < 0
    assert r.quality["mu_negative"]
    assert any("mu < 0" in w for w in r.warnings)


def test_active_muscle_and_irregular_velocity_are_excluded_with_reason():
    s = make_session(seed=9, active_before=(3,), hesitate=(7,))
    r = run(s)
    assert REASON_ACTIVE in r.stretches[3].exclusion_reasons
    assert REASON_IRREGULAR in r.stretches[7].exclusion_reasons
    assert not r.stretches[3].used_in_fit and not r.stretches[7].used_in_fit
    assert r.stretches[3].pre_emg_rms_uv > 5 * r.stretches[2].pre_emg_rms_uv
    others = [rec for rec in r.stretches if rec.index not in (3, 7)]
    assert all(rec.used_in_fit and not rec.exclusion_reasons for rec in others)
    assert r.n_valid == 8
    assert any(REASON_ACTIVE in w for w in r.warnings)


def test_gap_excludes_only_the_touched_stretch():
    s0 = make_session(seed=10)
    t = s0.truth[5]["start_s"] + 0.5
    s = make_session(seed=10, gap_in=[(t, t + 0.2)])
    r = run(s)
    assert r.quality["gaps_present"]
    touched = [rec for rec in r.stretches if REASON_GAP in rec.exclusion_reasons]
    assert len(touched) == 1
    assert touched[0].start_s - 0.25 < t < touched[0].end_s
    assert r.n_valid == r.n_stretches - 1
    assert r.tsrt_deg == pytest.approx(80.0, abs=2.0)


def test_prompts_select_stretches():
    s = make_session(seed=11)
    prompts = [*s.prompts_s[:6], s.prompts_s[-1] + 6.0]  # last prompt: nothing follows
    r = run(s, prompt_times_s=prompts)
    assert r.n_stretches == 6
    for rec, p in zip(r.stretches, prompts, strict=False):
        assert rec.prompt_s == pytest.approx(p)
        assert 0 < rec.start_s - p < 0.2
    assert any("no stretch found after the prompt" in w for w in r.warnings)


def test_velocity_gain():
    r = run(make_session(seed=12))
    g = r.emg_gain
    assert g["high_velocity_rms_uv"] > 2 * g["low_velocity_rms_uv"]
    assert g["difference_uv"] == pytest.approx(g["high_velocity_rms_uv"] - g["low_velocity_rms_uv"])
    assert g["ratio"] == pytest.approx(g["high_velocity_rms_uv"] / g["low_velocity_rms_uv"])
    # synthetic burst amplitude = 0.4 uV per deg/s + 20 uV (RMS of the noise carrier)
    assert g["amplitude_slope_uv_per_deg_s"] == pytest.approx(0.4, rel=0.25)
    assert g["n_low"] == 2 and g["n_high"] == 2


def test_burst_rms_iemg_and_duration_of_a_known_burst():
    # the reflex burst is a 97 Hz sine of known amplitude for 0.2 s: RMS = A / sqrt 2,
    # iEMG = 2 A 0.2 s / pi; the burst ends when the envelope stays below the onset threshold
    # for 50 ms (the 50 Hz envelope's decay adds about 10 ms)
    s = make_session(seed=16, burst_sine_hz=97.0)
    r = run(s)
    for rec, tr in zip(r.stretches, s.truth, strict=True):
        assert 0.0 <= rec.burst_duration_s - tr["burst_duration_s"] <= 0.045, rec.index
        assert rec.burst_iemg_uv_s == pytest.approx(tr["burst_iemg_uv_s"], rel=0.05)
        assert rec.burst_rms_uv == pytest.approx(tr["burst_rms_uv"], rel=0.12)
    # the fastest stretches carry the biggest bursts (0.4 uV per deg/s + 20 uV)
    assert r.stretches[4].burst_iemg_uv_s > 3 * r.stretches[0].burst_iemg_uv_s


def test_slow_stretches_that_are_not_slow_or_caught_are_flagged(catch_session):
    fast_only = run(make_session(velocities=(60, 120, 180, 240) * 2, seed=17))
    assert fast_only.quality["slow_stretches_not_slow"]
    assert any("slowest stretches reached" in w for w in fast_only.warnings)
    # catch_session: the reflex catches the 20 deg/s stretches too
    r = run(catch_session)
    assert r.quality["slow_stretches_reflexive"]
    assert any("show a catch or clonus" in w for w in r.warnings)
    plain = run(make_session(seed=4))  # slow stretches with a reflex but no catch: fine
    assert not plain.quality["slow_stretches_not_slow"]
    assert not plain.quality["slow_stretches_reflexive"]


def test_sampling_only_interval_is_flagged(catch_session):
    r = run(catch_session, detector_sensitivity=False)
    assert r.quality["interval_sampling_only"]
    assert any("sampling" in w and "detector_sensitivity=False" in w for w in r.warnings)
    assert r.tsrt_ci_deg == r.tsrt_ci_sampling_deg
    full = run(catch_session)
    assert not full.quality["interval_sampling_only"]
    assert full.tsrt_ci_deg[0] <= full.tsrt_ci_sampling_deg[0]


def test_inside_range_needs_a_significant_velocity_dependence():
    s = make_session(seed=18)
    r = run(s)
    assert r.mu_p_value < 1e-6 and not r.quality["not_velocity_dependent"]
    assert r.tsrt_inside_range
    # DSRTs that do not fall with velocity: lambda = 50 deg lies in the range, mu = 0
    flat = run(make_session(lam=50.0, mu=0.0, delay_s=0.0, seed=18))
    assert 0 < flat.tsrt_deg < 100 and flat.range_deg[0] < flat.tsrt_deg < flat.range_deg[1]
    assert flat.quality["not_velocity_dependent"]
    assert not flat.tsrt_inside_range
    assert any("does not fall significantly" in w for w in flat.warnings)


def test_to_dict_is_json_with_stable_keys(catch_session):
    r = run(catch_session)
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    for key in (
        "tsrt_deg",
        "tsrt_ci_deg",
        "mu_s",
        "mu_ci_s",
        "r2",
        "n_stretches",
        "tsrt_inside_range",
        "tardieu_r1_deg",
        "tardieu_r2_deg",
        "tardieu_grade",
        "emg_gain",
        "stretches",
        "warnings",
        "quality",
        "detector_tsrt_deg",
    ):
        assert key in d
    row = d["stretches"][0]
    for key in (
        "start_s",
        "end_s",
        "dsrt_deg",
        "onset_s",
        "latency_s",
        "clonus",
        "catch_s",
        "exclusion_reasons",
        "used_in_fit",
        "onset_velocity_deg_s",
        "pre_emg_rms_uv",
    ):
        assert key in row
    assert d["tsrt_deg"] == pytest.approx(r.tsrt_deg)
    none = json.loads(json.dumps(run(make_session(reflex=False, seed=1)).to_dict()))
    assert none["tsrt_deg"] is None and none["stretches"][0]["dsrt_deg"] is None


def test_bootstrap_is_seeded(catch_session):
    a = run(catch_session, seed=42, detector_sensitivity=False)
    b = run(catch_session, seed=np.random.default_rng(42), detector_sensitivity=False)
    c = run(catch_session, seed=43, detector_sensitivity=False)
    assert a.tsrt_ci_deg == b.tsrt_ci_deg
    assert a.tsrt_ci_deg != c.tsrt_ci_deg
    assert a.detector_tsrt_deg == {}


def test_multichannel_and_channel_choice():
    s = make_session(seed=13)
    noise = np.random.default_rng(0).normal(0, 4.0, s.emg_uv.shape)
    emg = np.ascontiguousarray(np.hstack([noise, s.emg_uv]))
    r = analyze_stretch_reflex(emg, s.emg_rate_hz, s.angle_deg[:, None], s.angle_rate_hz, channel=1)
    assert r.n_reflex == 10
    r0 = analyze_stretch_reflex(emg, s.emg_rate_hz, s.angle_deg, s.angle_rate_hz, channel=0)
    assert r0.n_reflex <= 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"channel": 3}, "channel"),
        ({"detector": "magic"}, "unknown detector"),
        ({"passive_range_deg": (90, 10)}, "passive_range_deg"),
        ({"emg_rate_hz": -5}, "emg_rate_hz"),
        ({"angle_rate_hz": "fast"}, "angle_rate_hz"),
        ({"reflex_delay_s": 1.0}, "reflex_delay_s"),
        ({"emg_uv": np.zeros((10, 2, 2))}, "emg_uv"),
        ({"angle_deg": np.zeros((10, 3))}, "angle_deg"),
        ({"emg_uv": np.zeros(100)}, "shorter"),
        ({"prompt_times_s": ["soon"]}, "prompt_times_s"),
        ({"prompt_times_s": [1.0, np.nan]}, "prompt_times_s"),
        ({"emg_rate_hz": 1500.0}, "check the two sampling rates"),  # the file's rate is wrong
    ],
)
def test_bad_input_raises_signal_error(kwargs, match):
    s = make_session(velocities=(60,), seed=0)
    args = {
        "emg_uv": s.emg_uv,
        "emg_rate_hz": s.emg_rate_hz,
        "angle_deg": s.angle_deg,
        "angle_rate_hz": s.angle_rate_hz,
    }
    args.update(kwargs)
    with pytest.raises(SignalError, match=match):
        analyze_stretch_reflex(**args)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"threshold": {"foo": 1}}, r"detector_params\['threshold'\] has unknown parameter 'foo'"),
        ({"threshold": {"lowpass_hz": 10}}, "unknown parameter 'lowpass_hz'"),
        ({"threshold": {"k_sd": "3"}}, r"\['k_sd'\] must be a finite number > 0"),
        ({"threshold": {"k_sd": -1}}, "must be a finite number > 0"),
        ({"tkeo": 5}, r"detector_params\['tkeo'\] must be a dict"),
        ({"tkeo": {"band_hz": 3}}, r"\['band_hz'\] must be \(low_hz, high_hz\)"),
        ({"changepoint": {"max_changes": 2.5}}, "must be an integer >= 1"),
        ({"changepoint": {"penalty": None}}, "must be a finite number > 0"),
        ({"magic": {}}, "unknown detector 'magic'"),
        ([("threshold", {})], "detector_params must be a dict"),
    ],
)
def test_bad_detector_params_raise_one_line_signal_error(params, match):
    s = make_session(velocities=(60, 120), seed=0)
    with pytest.raises(SignalError, match=match) as info:
        run(s, detector_params=params)
    assert "\n" not in str(info.value)


def test_good_detector_params_are_used_and_echoed():
    s = make_session(velocities=(60, 120), seed=0)
    r = run(s, detector_params={"tkeo": {"k_sd": 10, "band_hz": [40, 250]}})
    assert r.settings["detector_params"]["tkeo"]["k_sd"] == 10
    assert r.settings["detector_params"]["tkeo"]["band_hz"] == [40.0, 250.0]


def test_settings_echo_every_argument():
    import inspect

    s = make_session(velocities=(60, 120), seed=0)
    r = run(s, seed=7, passive_range_deg=(0, 110), prompt_times_s=s.prompts_s)
    kwonly = [
        name
        for name, p in inspect.signature(analyze_stretch_reflex).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    assert set(kwonly) <= set(r.settings), set(kwonly) - set(r.settings)
    assert r.settings["seed"] == 7
    assert r.settings["passive_range_deg"] == [0.0, 110.0]
    assert r.settings["detector_sensitivity"] is True
    assert r.settings["prompt_times_s"] == pytest.approx(s.prompts_s)
    json.dumps(r.settings, allow_nan=False)
    g = run(s, seed=np.random.default_rng(1), n_bootstrap=10)
    assert "Generator" in g.settings["seed"]


def test_stuck_channel_is_refused_and_a_clipped_one_warned():
    s = make_session(seed=19)
    dead = s.emg_uv.copy()
    dead[: int(0.6 * len(dead))] = 0.0  # electrode off for 60 % of the recording
    with pytest.raises(SignalError, match="flat or stuck at one value in 6"):
        analyze_stretch_reflex(dead, s.emg_rate_hz, s.angle_deg, s.angle_rate_hz)
    clipped = np.clip(s.emg_uv, -15.0, 15.0)  # amplifier rails at +/-15 uV
    r = analyze_stretch_reflex(clipped, s.emg_rate_hz, s.angle_deg, s.angle_rate_hz)
    assert any("saturated in" in w for w in r.warnings)


def test_false_early_onset_is_an_outlier_not_a_dsrt():
    s = make_session(seed=14, velocities=(20, 60, 120, 180, 240) * 2)
    emg = s.emg_uv.copy()
    t_art = s.truth[7]["start_s"] + 0.05  # a 600 uV electrode pop just after stretch 7 starts
    i = round(t_art * s.emg_rate_hz)
    n = round(0.1 * s.emg_rate_hz)
    emg[i : i + n, 0] += 600.0 * np.exp(-np.arange(n) / (0.02 * s.emg_rate_hz))
    r = analyze_stretch_reflex(emg, s.emg_rate_hz, s.angle_deg, s.angle_rate_hz)
    rec = r.stretches[7]
    assert rec.onset_s < s.truth[7]["onset_s"] - 0.05  # the pop was taken for the onset...
    assert REASON_OUTLIER in rec.exclusion_reasons  # ...and kept out of the fit
    assert not rec.used_in_fit
    assert r.n_valid == 9
    assert r.tsrt_deg == pytest.approx(80.0, abs=1.5)
