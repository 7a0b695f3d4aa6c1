"""H-reflex model against its truth: latencies, peak-to-peak amplitudes, recruitment shape,
Hmax/Mmax, rate-dependent depression, paired pulses, stimulus artifact and saturation."""

import numpy as np
import pytest

import virtual_patient as vp

QUIET = dict(noise_scale=0.0, tonic_emg_uv=0.0, artifact_uv_per_ma=0.0)


def _window(rec, ev, lo_ms, hi_ms, ch=0):
    i = ev["emg_sample_index"]
    fs = rec.emg_rate_hz
    return rec.emg_uv[i + int(lo_ms * fs / 1000) : i + int(hi_ms * fs / 1000), ch]


@pytest.mark.parametrize(("profile", "h_ms"), [("soleus_healthy", 30.0), ("fcr_healthy", 16.0)])
def test_measured_waves_match_truth(profile, h_ms):
    p = vp.get_profile(profile, **QUIET)
    stimuli = [vp.Stimulus(1.0 + 10 * k, i) for k, i in enumerate((vp.test_intensity_ma(p), 30.0))]
    rec = vp.simulate_hreflex_session(p, seed=3, stimuli=stimuli)
    for ev, tr in zip(rec.events, rec.truth["stimuli"], strict=True):
        assert tr["h_latency_ms"] == pytest.approx(h_ms, abs=1.5)
        m_end = tr["m_latency_ms"] + p.m_duration_ms + 1
        m = _window(rec, ev, 0, m_end)
        h = _window(rec, ev, m_end, tr["h_latency_ms"] + p.h_duration_ms + 2)
        q = rec.emg_scale_uv
        assert np.ptp(m) == pytest.approx(tr["m_p2p_uv"], abs=q + 1e-9)
        assert np.ptp(h) == pytest.approx(tr["h_p2p_uv"], abs=q + 1e-9)
        # onset latency: the first sample that departs from zero
        fs = rec.emg_rate_hz
        x = np.abs(_window(rec, ev, 0, 60))
        onset_ms = np.flatnonzero(x > q)[0] / fs * 1000
        assert tr["m_latency_ms"] <= onset_ms <= tr["m_latency_ms"] + 1.5
        if tr["h_p2p_uv"] > 200:
            hx = np.abs(_window(rec, ev, m_end, 60))
            h_on = (np.flatnonzero(hx > q)[0] + int(m_end * fs / 1000)) / fs * 1000
            assert tr["h_latency_ms"] <= h_on <= tr["h_latency_ms"] + 2.0


@pytest.mark.parametrize("profile", ["soleus_healthy", "soleus_spastic", "fcr_healthy"])
def test_recruitment_shape_and_hmax_mmax(profile):
    p = vp.get_profile(profile)
    i = np.linspace(0, 60, 601)
    m, h = vp.recruitment(p, i)
    assert np.all(np.diff(m) >= 0) and m[-1] == pytest.approx(p.mmax_uv, rel=1e-3)
    k = int(np.argmax(h))
    assert 0 < k < len(i) - 1
    assert np.all(np.diff(h[: k + 1]) >= -1e-9) and np.all(np.diff(h[k:]) <= 1e-9)
    assert h[-1] < 0.05 * h[k]
    assert h.max() / m.max() == pytest.approx(p.hmax_mmax, rel=1e-3)
    # H appears at lower intensity than M (soleus, FCR)
    assert i[np.argmax(h > 0.05 * h.max())] < i[np.argmax(m > 0.05 * m.max())]
    # the test intensity sits on the rising H limb with M about 20 % of Mmax
    it = vp.test_intensity_ma(p)
    mt, _ = vp.recruitment(p, it)
    assert mt == pytest.approx(0.2 * p.mmax_uv)


def test_recruitment_ladder_truth_has_the_shape():
    rec = vp.simulate_hreflex_session("soleus_healthy", seed=4)
    st = rec.truth["stimuli"]
    assert all(s["interval_s"] in (None, 10.0) for s in st)
    m = np.array([s["m_p2p_uv"] for s in st])
    h = np.array([s["h_p2p_uv"] for s in st])
    hr = rec.truth["hreflex"]
    assert m.max() == pytest.approx(hr["mmax_p2p_uv"], rel=0.1)
    k = int(np.argmax(h))
    assert 2 < k < len(h) - 3 and h[-1] < 0.1 * h[k]
    assert h.max() / m.max() == pytest.approx(0.3, rel=0.35)  # trial variability CV 12 %
    assert hr["hmax_mmax"] == 0.3


def test_spastic_depression_ratios_follow_the_stroke_data():
    p = vp.get_profile("soleus_spastic")
    expected = {1.0: 0.74, 0.3: 0.84, 0.2: 0.86, 0.1: 0.93}
    for f, r in expected.items():
        assert vp.depression_factor(p, 1.0 / f) == pytest.approx(r, abs=0.005)
    healthy = vp.get_profile("soleus_healthy")
    assert vp.depression_factor(healthy, 1.0) < 0.5 < vp.depression_factor(p, 1.0)
    assert vp.depression_factor(p, None) == 1.0


@pytest.mark.parametrize(
    ("profile", "ratio_1hz"), [("soleus_spastic", 0.74), ("soleus_healthy", 0.45)]
)
def test_frequency_blocks_show_rate_dependent_depression(profile, ratio_1hz):
    p = vp.get_profile(profile, **QUIET)
    it = vp.test_intensity_ma(p)
    stimuli = vp.frequency_blocks(it, frequencies_hz=(0.1, 1.0), n_per_block=15, rest_s=20.0)
    rec = vp.simulate_hreflex_session(p, seed=5, stimuli=stimuli)
    st = rec.truth["stimuli"]
    assert [e["pulse_index"] for e in rec.events[:3]] == [0, 1, 2]
    h = np.array([s["h_p2p_uv"] for s in st])
    slow = h[1:15].mean() / h[15]  # first pulse of the 1 Hz block follows 20 s of rest
    fast = h[16:].mean() / h[15]
    assert fast / (slow / 0.93) == pytest.approx(ratio_1hz, rel=0.12)
    exp = np.array([s["h_expected_p2p_uv"] for s in st])
    assert exp[16:] / exp[15] == pytest.approx(np.full(14, ratio_1hz), abs=1e-9)
    m = np.array([s["m_p2p_uv"] for s in st])
    assert m[16:].mean() / m[15] == pytest.approx(1.0, abs=0.05)  # M is not depressed


def test_paired_pulses_second_h_is_depressed():
    p = vp.get_profile("soleus_healthy", **QUIET)
    stimuli = vp.paired_pulses(vp.test_intensity_ma(p), intervals_s=(0.5, 2.5), n_pairs=2)
    rec = vp.simulate_hreflex_session(p, seed=6, stimuli=stimuli)
    st = rec.truth["stimuli"]
    for a, b in zip(st[0::2], st[1::2], strict=True):
        assert (a["pulse_index"], b["pulse_index"]) == (0, 1)
        assert b["h_expected_p2p_uv"] / a["h_expected_p2p_uv"] == pytest.approx(
            vp.depression_factor(p, b["interval_s"]) / vp.depression_factor(p, a["interval_s"])
        )
        assert b["h_expected_p2p_uv"] < a["h_expected_p2p_uv"]


def test_stimulus_artifact_saturates_the_adc_for_a_few_ms():
    p = vp.get_profile("soleus_healthy")
    rec = vp.simulate_hreflex_session(p, seed=7, stimuli=[vp.Stimulus(1.0, 30.0)])
    (ev,) = rec.events
    fs = rec.emg_rate_hz
    seg = rec.emg_counts[ev["emg_sample_index"] : ev["emg_sample_index"] + int(0.02 * fs), 0]
    sat = np.flatnonzero(np.abs(seg) >= 2**15 - 1)
    assert sat.size > 0 and sat[0] == 0
    assert 1.0 <= (sat[-1] + 1) / fs * 1000 <= 5.0  # saturated for 1-5 ms
    before = rec.emg_uv[ev["emg_sample_index"] - 200 : ev["emg_sample_index"], 0]
    assert np.abs(before).max() < 100.0
    # a weak stimulus does not saturate
    rec2 = vp.simulate_hreflex_session(p, seed=7, stimuli=[vp.Stimulus(1.0, 5.0)])
    assert np.abs(rec2.emg_counts).max() < 2**15 - 1


def test_trial_to_trial_variability_and_latency_jitter():
    p = vp.get_profile("soleus_healthy")
    it = vp.test_intensity_ma(p)
    stimuli = [vp.Stimulus(1.0 + 20 * k, it) for k in range(40)]
    rec = vp.simulate_hreflex_session(p, seed=8, stimuli=stimuli, duration_s=1.0)
    st = rec.truth["stimuli"]
    h = np.array([s["h_model_p2p_uv"] for s in st])
    lat = np.array([s["h_latency_ms"] for s in st])
    assert 0.06 < h.std() / h.mean() < 0.2
    assert 0.1 < lat.std() < 0.6
