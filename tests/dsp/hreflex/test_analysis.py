"""analyze_hreflex on synthetic sessions with exact truth (the simulator validation is separate)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hreflex_synth import make_session

from dsp import SignalError
from dsp.hreflex import HReflexInputError, analyze_hreflex

STABLE_KEYS = {
    "schema", "muscle", "channel", "emg_rate_hz", "n_stimuli", "n_included", "mmax_uv",
    "mmax_uv_ci", "hmax_uv", "hmax_uv_ci", "hmax_mmax", "hmax_mmax_ci", "m_latency_ms",
    "h_latency_ms", "m_peak_latency_ms", "h_peak_latency_ms", "m_window", "h_window",
    "recruitment", "test_intensity", "rate_dependent_depression",
    "rate_dependent_depression_ci", "rate_dependent_depression_detail", "paired_pulse_depression",
    "paired_pulse_depression_ci", "paired_pulse_depression_detail", "artifact", "stimuli",
    "exclusions", "references", "warnings", "parameters",
}  # fmt: skip


def run(s, **kw):
    kw.setdefault("n_boot", 60)
    return analyze_hreflex(
        s["emg_uv"], s["rate_hz"], s["idx"], s["intensity"], pulse_index=s["pulse_index"], **kw
    )


@pytest.mark.parametrize("seed,rate", [(0, 5000.0), (1, 10000.0), (2, 4000.0)])
def test_recovers_truth(seed, rate):
    s = make_session(seed, rate)
    t = s["truth"]
    r = run(s)
    assert abs(r.mmax_uv / t["mmax_uv"] - 1) < 0.01
    assert abs(r.hmax_uv / t["hmax_uv"] - 1) < 0.02
    assert abs(r.hmax_mmax / t["hmax_mmax"] - 1) < 0.02
    assert r.hmax_mmax_ci[0] <= r.hmax_mmax <= r.hmax_mmax_ci[1]
    # onsets are measured from the detected artifact; the waves start sharply at the latency
    assert abs(r.m_latency_ms - t["m_latency_ms"]) <= 0.5
    assert abs(r.h_latency_ms - t["h_latency_ms"]) <= 0.5
    for f, ratio in t["rdd"].items():
        assert abs(r.rate_dependent_depression[f"{f:g}"] - ratio) < 0.05
    assert abs(r.paired_pulse_depression["2.5"] - t["ppd"]) < 0.05
    assert r.m_window.source == "data" and r.h_window.source == "data"
    assert r.m_window.start_ms <= t["m_latency_ms"] < r.m_window.end_ms
    assert r.h_window.start_ms <= t["h_latency_ms"] < r.h_window.end_ms
    # per-stimulus amplitudes follow the truth
    m = np.array([st.m_p2p_uv for st in r.stimuli])
    h = np.array([st.h_p2p_uv for st in r.stimuli])
    big = t["m_amp"] > 500
    assert np.all(np.abs(m[big] / t["m_amp"][big] - 1) < 0.03)
    bigh = t["h_amp"] > 500
    assert np.all(np.abs(h[bigh] / t["h_amp"][bigh] - 1) < 0.05)


def test_saturating_artifact_does_not_move_estimates():
    clean = run(make_session(3))
    sat = run(make_session(3, saturate_ms=2.0))
    assert sat.artifact["n_saturated"] == len(sat.stimuli)
    assert sat.artifact["saturated_ms_max"] == pytest.approx(2.0, abs=0.25)
    assert sat.mmax_uv == pytest.approx(clean.mmax_uv, rel=0.005)
    assert sat.hmax_mmax == pytest.approx(clean.hmax_mmax, rel=0.01)
    assert sat.m_latency_ms == pytest.approx(clean.m_latency_ms, abs=0.21)
    assert sat.h_latency_ms == pytest.approx(clean.h_latency_ms, abs=0.21)
    # the blank covers the saturation but stops well before the M-wave
    assert all(2.0 <= st.blank_ms < 4.0 for st in sat.stimuli)


def test_saturation_that_reaches_the_m_wave_would_be_visible():
    # Without blanking the saturated rail would dominate the M window: check the blank works
    s = make_session(4, saturate_ms=2.0, m_latency_ms=4.0)
    r = run(s)
    assert abs(r.m_latency_ms - 4.0) <= 0.5
    assert abs(r.mmax_uv / s["truth"]["mmax_uv"] - 1) < 0.01


def test_artifact_offset_reported_and_latency_from_artifact():
    s = make_session(5, offset_samples=4)  # 0.8 ms late at 5 kHz
    r = run(s)
    assert r.artifact["offset_ms_median"] == pytest.approx(0.8, abs=0.05)
    assert all(st.artifact_offset_ms == pytest.approx(0.8, abs=0.05) for st in r.stimuli)
    assert abs(r.m_latency_ms - 6.0) <= 0.5


@pytest.mark.parametrize("shift_ms", [3.0, -3.0, 8.0])
def test_artifact_far_from_the_event_is_found_and_measures_stay_right(shift_ms):
    """The artifact 3 ms late, 3 ms early or 8 ms late: one session offset, then per sweep."""
    ref = run(make_session(5), n_boot=0)
    s = make_session(5, offset_samples=round(shift_ms * 5))  # 5 kHz
    r = run(s, n_boot=0)
    assert r.artifact["n_detected"] == len(s["idx"])
    assert r.artifact["session_offset_ms"] == pytest.approx(shift_ms, abs=0.05)
    assert all(st.artifact_offset_ms == pytest.approx(shift_ms, abs=0.05) for st in r.stimuli)
    assert all(st.saturated_ms >= 0 and st.blank_ms >= 1.0 for st in r.stimuli)
    assert abs(r.m_latency_ms - s["truth"]["m_latency_ms"]) <= 0.25
    assert abs(r.h_latency_ms - s["truth"]["h_latency_ms"]) <= 0.25
    assert r.hmax_mmax == pytest.approx(ref.hmax_mmax, rel=0.01)
    assert r.mmax_uv == pytest.approx(ref.mmax_uv, rel=0.005)
    # the offset is reported and a large one is said
    assert any(f"session offset {shift_ms:+.2f} ms" in w for w in r.warnings)
    assert not any("no artifact found" in w or "edge" in w for w in r.warnings)


def test_artifact_outside_the_offset_range_is_a_warning_not_silence():
    s = make_session(5, offset_samples=60)  # 12 ms late, past the default -5..+10 ms
    r = run(s, n_boot=0)
    assert r.artifact["n_detected"] == 0 and r.artifact["session_offset"]["found"] is False
    assert any(w.startswith("no stimulus artifact found within -5..10 ms") for w in r.warnings)
    wide = run(s, n_boot=0, artifact_offset_range_ms=(-5.0, 20.0))
    assert wide.artifact["session_offset_ms"] == pytest.approx(12.0, abs=0.05)
    assert abs(wide.m_latency_ms - 6.0) <= 0.25
    # at the edge of the range: said
    edge = run(s, n_boot=0, artifact_offset_range_ms=(-5.0, 12.2))
    assert any("edge of the searched range" in w for w in edge.warnings)
    with pytest.raises(HReflexInputError, match="artifact_offset_range_ms"):
        run(s, artifact_offset_range_ms=(5.0, -5.0))


def test_stimuli_without_an_artifact_are_listed_in_the_warnings():
    s = make_session(5, offset_samples=15)
    # remove the artifact (and the responses) of two sweeps: they fall back to event + offset
    for k in (3, 7):
        e = s["idx"][k]
        s["emg_uv"][e - 5 : e + 500] = np.random.default_rng(k).normal(0, 5.0, 505)
    r = run(s, n_boot=0)
    assert [st.artifact_detected for st in r.stimuli].count(False) == 2
    assert r.stimuli[3].onset_index == s["idx"][3] + 15
    assert any(w.startswith("no artifact found for 2 of") for w in r.warnings)


def test_session_offset_ignores_m_waves_larger_than_the_artifact():
    from dsp.hreflex import session_artifact_offset

    rng = np.random.default_rng(4)
    rate = 5000.0
    x = rng.normal(0, 5, 60000)
    events = np.arange(5000, 55000, 5000)
    t = np.arange(100) / 5.0  # ms
    for e in events:
        o = e + 20  # 4 ms late
        x[o : o + 3] += 800.0  # a small, sharp artifact
        x[o + 15 : o + 115] += 6000.0 * np.sin(2 * np.pi * t / 8.0) * (t < 8.0)  # big M at 3 ms
    off = session_artifact_offset(x, rate, events, np.linspace(10, 30, events.size))
    assert off.found and off.offset_ms == pytest.approx(4.0, abs=0.01)
    assert off.n_sweeps == 5 and off.n_found == 5 and not off.at_range_edge


def test_session_offset_of_a_biphasic_artifact_saturating_rail_to_rail():
    """The onset step (one rail) is half the phase-reversal step (two rails): still the onset,
    whatever the sign of the noise just before it."""
    from dsp.hreflex import session_artifact_offset

    rng = np.random.default_rng(7)
    rate, rail = 5000.0, 10000.0
    x = rng.normal(0, 5, 60000)
    events = np.arange(5000, 55000, 5000)
    for k, e in enumerate(events):
        x[e - 1] = 4.0 if k % 2 else -4.0  # both signs of noise before the onset
        x[e : e + 5] = rail  # positive phase, saturated
        x[e + 5 : e + 8] = -rail  # negative phase, saturated
        x[e + 8 : e + 40] += -rail * np.exp(-np.arange(32) / 6.0)  # decaying tail
    off = session_artifact_offset(x, rate, events, np.linspace(10, 30, events.size))
    assert off.found and off.offset_ms == 0.0 and off.spread_ms == 0.0


def test_artifact_onset_not_moved_by_background_just_before_the_pulse():
    """Background EMG standing 20-25 uV above the baseline just before a rail-to-rail artifact
    is not its rising edge: the onset stays on the event (it was put 0.6 ms early)."""
    from dsp.hreflex import find_artifacts

    rng = np.random.default_rng(3)
    x = rng.normal(0, 2, 20000)
    events = np.array([5000, 10000, 15000])
    for e in events:
        x[e - 10 : e] += np.linspace(0, 25, 10)  # background rising just before the pulse
        x[e : e + 5] = 10000.0
        x[e + 5 : e + 8] = -10000.0
    found = find_artifacts(x, 5000.0, events, rail_uv=10000.0)
    assert [f.onset_index for f in found] == events.tolist()
    assert all(f.offset_ms == 0.0 for f in found)
    # a genuine rising edge (half the peak one sample early) is still stepped over
    y = rng.normal(0, 2, 20000)
    y[events - 1] = 5000.0
    for e in events:
        y[e : e + 5] = 10000.0
    assert [f.onset_index for f in find_artifacts(y, 5000.0, events)] == (events - 1).tolist()


def test_background_gating_excludes_with_reason():
    s = make_session(6, high_background=(3, 10))
    r = run(s)
    excluded = {e["stimulus"]: e["reason"] for e in r.exclusions}
    assert set(excluded) == {3, 10}
    assert all("background EMG" in v for v in excluded.values())
    # an explicit band: sweeps with a background above 4.5 uV are dropped
    bg = np.array([st.background_uv for st in r.stimuli])
    r2 = run(s, background_band_uv=(0.0, float(np.median(bg))))
    assert 0.3 * len(bg) < len(r2.exclusions) < 0.7 * len(bg)
    with pytest.raises(HReflexInputError, match="usable"):
        run(s, background_band_uv=(0.0, 0.5))


def test_gap_excludes_sweep():
    s = make_session(7)
    e = s["idx"][5]
    s["emg_uv"][e + 100 : e + 120] = np.nan
    r = run(s)
    assert [x["stimulus"] for x in r.exclusions] == [5]
    assert "missing samples" in r.exclusions[0]["reason"]
    assert not r.stimuli[5].included


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_depression_intervals_match_a_numpy_reference_and_cover_the_truth(seed):
    """Delta-method 95 % interval of H(rate)/H(0.1 Hz), recomputed from the per-stimulus table."""
    s = make_session(seed)
    r = run(s)
    h = np.array([st.h_p2p_uv for st in r.stimuli])
    blocks = {(d["rate_hz"], d["intensity_ma"]): d for d in r.rate_dependent_depression_detail}
    assert r.rate_dependent_depression_ci
    for d in r.rate_dependent_depression_detail:
        if d["rate_hz"] == 0.1:  # the baseline against itself: exactly 1, no spread
            assert d["ratio"] == 1.0 and d["ratio_ci95"] == [1.0, 1.0]
            continue
        base = blocks[(0.1, d["intensity_ma"])]
        num, den = h[d["stimuli"]], h[base["stimuli"]]
        ratio = num.mean() / den.mean()
        rel_var = num.var(ddof=1) / len(num) / num.mean() ** 2
        rel_var += den.var(ddof=1) / len(den) / den.mean() ** 2
        half = 1.96 * ratio * np.sqrt(rel_var)
        np.testing.assert_allclose(d["ratio_ci95"], [ratio - half, ratio + half], rtol=1e-9)
    for f, ratio in s["truth"]["rdd"].items():
        lo, hi = r.rate_dependent_depression_ci[f"{f:g}"]
        assert lo <= r.rate_dependent_depression[f"{f:g}"] <= hi
        # the truth, within the interval give or take the amplitude measurement's own bias
        # (the synthetic sessions are nearly noise-free, so the intervals are narrow)
        assert lo - 0.005 <= ratio <= hi + 0.005


@pytest.mark.parametrize("seed", [3, 4])
def test_depression_interval_without_a_baseline_block_includes_the_fit_spread(seed):
    """No 0.1 Hz block: the baseline is the fitted H, and its bootstrap spread widens the CI."""
    s = make_session(seed, rdd={1.0: 0.7, 2.0: 0.55})
    r = run(s, n_boot=60)
    h = np.array([st.h_p2p_uv for st in r.stimuli])
    for d in r.rate_dependent_depression_detail:
        assert d["baseline_source"] == "recruitment fit at this intensity"
        num = h[d["stimuli"]]
        only_block_half = 1.96 * d["ratio"] * num.std(ddof=1) / np.sqrt(len(num)) / num.mean()
        lo, hi = d["ratio_ci95"]
        assert (hi - lo) / 2 > only_block_half  # the fit's spread is in the interval
        truth = s["truth"]["rdd"][d["rate_hz"]]
        assert lo - 0.005 <= truth <= hi + 0.005
    no_boot = run(s, n_boot=0)  # no bootstrap: the fit's spread is unknown, so no interval
    assert all(d["ratio_ci95"] is None for d in no_boot.rate_dependent_depression_detail)


def test_to_dict_is_json_with_stable_keys():
    s = make_session(8)
    r = run(s, n_boot=20)
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert set(d) == STABLE_KEYS
    assert d["schema"] == "tonuslab.hreflex/1"
    assert len(d["stimuli"]) == len(s["idx"])
    assert {"m_p2p_uv", "h_p2p_uv", "m_onset_ms", "background_uv", "artifact_offset_ms"} <= set(
        d["stimuli"][0]
    )
    assert d["references"]["hmax_mmax"]["source"].startswith("Koelman")
    assert set(d["recruitment"]["m"]) >= {
        "max_uv",
        "threshold_ma",
        "i50_ma",
        "slope_uv_per_ma",
        "r2",
    }
    assert d["rate_dependent_depression"]["0.1"] == pytest.approx(1.0)


def test_window_overrides_and_fcr_preset():
    s = make_session(9, m_latency_ms=3.0, h_latency_ms=16.0)
    r = run(s, muscle="flexor_carpi_radialis")
    assert r.muscle == "fcr"
    assert abs(r.h_latency_ms - 16.0) <= 0.5 and abs(r.m_latency_ms - 3.0) <= 0.5
    r2 = run(s, muscle="fcr", m_window_ms=(2.0, 12.0), h_window_ms=(14.0, 28.0))
    assert r2.m_window.source == "override" and r2.h_window.start_ms == 14.0
    assert abs(r2.hmax_mmax / s["truth"]["hmax_mmax"] - 1) < 0.03


def test_multichannel_and_channel_choice():
    s = make_session(10)
    two = np.column_stack([np.zeros_like(s["emg_uv"]) + 1.0, s["emg_uv"]])
    r = analyze_hreflex(two, s["rate_hz"], s["idx"], s["intensity"], pulse_index=s["pulse_index"],
                        channel=1, n_boot=0)  # fmt: skip
    assert abs(r.mmax_uv / 8000 - 1) < 0.01
    assert np.isnan(r.hmax_mmax_ci[0])


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(emg_rate_hz=1000.0), "too low"),
        (dict(stim_intensity_ma=np.ones(3)), "one value per stimulus"),
        (dict(channel=2), "channel"),
        (dict(muscle="biceps"), "no preset"),
        (dict(m_window_ms=(10.0, 5.0)), "m_window_ms"),
        (dict(pulse_index=-1), "pulse_index"),
        (dict(stim_sample_index=np.array([5, 3])), "increasing"),
        (dict(stim_sample_index=np.array([-1, 3])), "outside"),
    ],
)
def test_bad_input_is_one_clear_error(change, match):
    s = make_session(11)
    kw = dict(emg_uv=s["emg_uv"], emg_rate_hz=s["rate_hz"], stim_sample_index=s["idx"],
              stim_intensity_ma=s["intensity"], n_boot=0)  # fmt: skip
    kw.update(change)
    if "stim_sample_index" in change:
        kw["stim_intensity_ma"] = np.ones(2)
    with pytest.raises(SignalError, match=match):
        analyze_hreflex(**kw)


def test_pair_roles_tell_pairs_from_trains():
    from dsp.hreflex.analysis import _pair_roles

    roles = _pair_roles(np.array([0, 0, 1, 0, 1, 2, 3, 0, 1, 0]))
    assert roles.tolist() == [0, 1, 2, 0, 0, 0, 0, 1, 2, 0]


def test_rate_blocks_counted_within_block_are_not_pairs():
    s = make_session(12)
    # number the pulses inside each rate block 0, 1, 2, ... as the simulator's events do
    pidx = s["pulse_index"].copy()
    n_ladder = 50
    for b in range(3):
        pidx[n_ladder + 8 * b : n_ladder + 8 * (b + 1)] = np.arange(8)
    s["pulse_index"] = pidx
    r = run(s)
    assert set(r.rate_dependent_depression) == {"0.1", "1", "2"}
    assert list(r.paired_pulse_depression) == ["2.5"]
    assert r.paired_pulse_depression_detail[0]["n_pairs"] == 6


def test_given_block_rates_drop_the_first_pulse_of_each_block():
    """Rates given per pulse (as the recorder saves them): a block's first pulse follows a rest."""
    s = make_session(12)
    n_ladder = 50
    rates = np.full(len(s["idx"]), np.nan)  # NaN: not in a rate block (ladder, pairs)
    firsts = []
    for b, f in enumerate((0.1, 1.0, 2.0)):
        rates[n_ladder + 8 * b : n_ladder + 8 * (b + 1)] = f
        firsts.append(n_ladder + 8 * b)
    r = run(s, stim_rate_hz=rates, n_boot=0)
    assert len(r.rate_dependent_depression_detail) == 3
    for d in r.rate_dependent_depression_detail:
        assert d["n"] == 7 and not set(firsts) & set(d["stimuli"])
    for f, ratio in s["truth"]["rdd"].items():  # the unconditioned first H would bias these
        assert abs(r.rate_dependent_depression[f"{f:g}"] - ratio) < 0.05
    assert np.isnan(r.stimuli[0].rate_hz) and r.stimuli[firsts[1]].rate_hz == 1.0


@pytest.mark.parametrize(
    "name,preset",
    [("soleus", "soleus"), ("Soleus (left)", "soleus"), ("medial gastrocnemius", "soleus"),
     ("triceps surae", "soleus"), ("FCR", "fcr"), ("flexor carpi radialis R", "fcr"),
     ("flexor-carpi-radialis", "fcr"), ("biceps", None), ("flexor carpi ulnaris", None),
     (None, None)],
)  # fmt: skip
def test_preset_for_muscle_names(name, preset):
    from dsp.hreflex import get_preset
    from dsp.hreflex.presets import preset_for_muscle

    assert preset_for_muscle(name) == preset
    if preset is not None:
        assert get_preset(name).name == preset


def test_m_stability_pools_trials_near_the_test_intensity_and_prefers_filled_levels():
    """One ladder pulse per level; 30+ block and pair pulses at 12 mA, one step from the test
    intensity (M = 20% of Mmax at 12.92 mA): the stability figure uses the 12 mA trials."""
    ladder = np.random.default_rng(0).permutation(np.arange(4.0, 28.01, 1.0))
    s = make_session(13, ladder=ladder)
    r = run(s, n_boot=0)
    t = r.test_intensity
    at12 = [st for st in r.stimuli if st.intensity_ma == 12.0 and st.included]
    n12 = sum(1 for st in at12 if not (st.pulse_index == 1))
    assert t.intensity_ma == pytest.approx(12.92, abs=0.1)
    assert t.trials_levels_ma == (12.0,) and t.n_trials == n12 >= 30
    assert t.intensity_distance_ma == pytest.approx(t.intensity_ma - 12.0, abs=1e-9)
    assert "most trials within one ladder step" in t.trials_rule
    m = np.array([st.m_p2p_uv for st in at12 if st.pulse_index == 0]) / r.mmax_uv
    assert t.m_fraction_mean == pytest.approx(m.mean(), rel=1e-9)
    # a tolerance wide enough to hold the 12 mA block pools every trial within it
    wide = run(s, n_boot=0, test_tolerance=0.08).test_intensity
    assert set(wide.trials_levels_ma) == {12.0, 13.0} and wide.n_trials == n12 + 1
    assert wide.trials_rule.startswith("all trials within +/-8%")
    d = wide.to_dict()
    assert d["n_trials"] == n12 + 1 and d["intensity_distance_ma"] == pytest.approx(0.92, abs=0.1)
    with pytest.raises(HReflexInputError, match="test_tolerance"):
        run(s, n_boot=0, test_tolerance=1.5)


@pytest.mark.parametrize("seed", [0, 1])
def test_paired_pulse_interval_matches_a_numpy_reference_and_covers_the_truth(seed):
    """Delta method for paired samples (H1-H2 covariance included), from the stimulus table."""
    s = make_session(seed)
    r = run(s, n_boot=0)
    (d,) = r.paired_pulse_depression_detail
    h = np.array([st.h_p2p_uv for st in r.stimuli])
    pr = np.array(d["pairs"])
    h1, h2 = h[pr[:, 0]], h[pr[:, 1]]
    ratio = h2.mean() / h1.mean()
    n, c = len(h1), np.cov(h1, h2)
    var = ratio**2 * (c[1, 1] / (n * h2.mean() ** 2) + c[0, 0] / (n * h1.mean() ** 2)
                      - 2 * c[0, 1] / (n * h1.mean() * h2.mean()))  # fmt: skip
    half = 1.96 * np.sqrt(var)
    np.testing.assert_allclose(d["ratio_ci95"], [ratio - half, ratio + half], rtol=1e-9)
    assert r.paired_pulse_depression_ci["2.5"] == d["ratio_ci95"]
    assert d["intensity_ma"] == 12.0 and d["n_pairs"] == 6
    lo, hi = d["ratio_ci95"]
    assert lo - 0.005 <= s["truth"]["ppd"] <= hi + 0.005


def test_pairs_at_very_different_intensities_are_not_pooled_silently():
    s = make_session(2)
    inten = s["intensity"].copy()
    pair_idx = np.nonzero(s["pulse_index"] == 1)[0]
    for k in pair_idx[:3]:  # relabel three pairs as given at 18 mA
        inten[k - 1 : k + 1] = 18.0
    r = analyze_hreflex(s["emg_uv"], s["rate_hz"], s["idx"], inten,
                        pulse_index=s["pulse_index"], n_boot=0)  # fmt: skip
    details = r.paired_pulse_depression_detail
    assert [(d["intensity_ma"], d["n_pairs"]) for d in details] == [(12.0, 3), (18.0, 3)]
    assert r.paired_pulse_depression["2.5"] == pytest.approx(
        np.mean([d["ratio_of_means"] for d in details])
    )
    assert any("2 different intensities (12-12 mA, 18-18 mA): not pooled" in w for w in r.warnings)


def test_reference_figures_are_labelled_as_measured_and_keyed_like_the_results():
    from dsp.hreflex.analysis import _rate_key
    from dsp.hreflex.presets import REFERENCES, STROKE_H2_H1, STROKE_H2_H1_PER_0P1HZ

    rdd = REFERENCES["rate_dependent_depression"]
    # H2/H1 is not H(rate)/H(0.1 Hz): 0.93 at 0.1 Hz is the raw figure, 1 on the result's scale
    assert rdd["chronic_stroke_h2_h1"]["0.1"] == 0.93 and "not normalised" in rdd[
        "chronic_stroke_h2_h1_measure"]  # fmt: skip
    assert rdd["chronic_stroke_per_0p1hz"] == {"0.1": 1.0, "0.2": 0.92, "0.3": 0.9, "1": 0.8}
    assert set(STROKE_H2_H1) == {_rate_key(f) for f in (0.1, 0.2, 0.3, 1.0)}
    r = run(make_session(14, rdd={0.1: 1.0, 0.2: 0.9, 0.3: 0.85, 1.0: 0.7}), n_boot=0)
    assert set(STROKE_H2_H1_PER_0P1HZ) == set(r.rate_dependent_depression)
    assert set(r.paired_pulse_depression) <= set(
        REFERENCES["paired_pulse_depression"]["chronic_stroke_h2_h1_at_interval_s"]
    ) | {"2.5"}
    for key in ("mmax_uv", "hmax_mmax", "h_latency_ms", "test_intensity",
                "rate_dependent_depression", "paired_pulse_depression"):  # fmt: skip
        assert REFERENCES[key]["source"]
    assert "Falco" in REFERENCES["h_latency_ms"]["source"]
    assert "Crone" in rdd["source"] and "Shields" in rdd["source"]
