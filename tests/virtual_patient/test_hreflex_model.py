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
    stimuli = [
        vp.StimulusSpec(1.0 + 10 * k, i) for k, i in enumerate((vp.test_intensity_ma(p), 30.0))
    ]
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


def _measured(rec, profile):
    """M and H peak-to-peak (uV) measured in fixed windows of the recorded channel 0 (noise,
    background EMG and stimulus artifact included): M from ``m_latency_ms`` - 1 ms to its end
    + 1 ms, H from ``h_latency_ms`` - 2 ms to its end + 2 ms (profile values, not the truth)."""
    p = profile
    m_win = (p.m_latency_ms - 1, p.m_latency_ms + p.m_duration_ms + 1)
    h_win = (p.h_latency_ms - 2, p.h_latency_ms + p.h_duration_ms + 2)
    m = np.array([np.ptp(_window(rec, ev, *m_win)) for ev in rec.events])
    h = np.array([np.ptp(_window(rec, ev, *h_win)) for ev in rec.events])
    return m, h


def test_recruitment_ladder_measured_in_the_recording_has_the_shape():
    p = vp.get_profile("soleus_healthy")  # every nuisance on
    rec = vp.simulate_hreflex_session(p, seed=4)
    st = rec.truth["stimuli"]
    assert all(s["interval_s"] in (None, 10.0) for s in st)
    m, h = _measured(rec, p)
    # each measured wave is the truth's, up to the artifact tail and background noise
    np.testing.assert_allclose(m, [s["m_p2p_uv"] for s in st], atol=60.0)
    np.testing.assert_allclose(h, [s["h_p2p_uv"] for s in st], atol=30.0)
    hr = rec.truth["hreflex"]
    assert m.max() == pytest.approx(hr["mmax_p2p_uv"], rel=0.1)
    k = int(np.argmax(h))
    assert 2 < k < len(h) - 3 and h[-1] < 0.1 * h[k]  # rises, then falls at high intensity
    assert np.all(np.diff(m[m > 0.05 * m.max()]) > -0.1 * m.max())  # M rises to Mmax
    assert h.max() / m.max() == pytest.approx(hr["hmax_mmax"], rel=0.35)  # H CV 12 %
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
    p = vp.get_profile(profile)  # noise, background EMG and artifact on
    it = vp.test_intensity_ma(p)
    stimuli = vp.frequency_blocks(it, frequencies_hz=(0.1, 1.0), n_per_block=15, rest_s=20.0)
    rec = vp.simulate_hreflex_session(p, seed=5, stimuli=stimuli)
    st = rec.truth["stimuli"]
    assert [e["pulse_index"] for e in rec.events[:3]] == [0, 1, 2]
    m, h = _measured(rec, p)
    truth_h = np.array([s["h_p2p_uv"] for s in st])
    np.testing.assert_allclose(h, truth_h, atol=30.0)
    # H at 1 Hz / H at 0.1 Hz, measured on the recording (pulse 15 follows 20 s of rest)
    measured = h[16:].mean() / h[1:15].mean()
    assert measured == pytest.approx(truth_h[16:].mean() / truth_h[1:15].mean(), abs=0.03)
    assert measured == pytest.approx(ratio_1hz / 0.93, rel=0.12)  # 0.93: 0.1 Hz is depressed too
    exp = np.array([s["h_expected_p2p_uv"] for s in st])
    assert exp[16:] / exp[15] == pytest.approx(np.full(14, ratio_1hz), abs=1e-9)
    assert m[16:].mean() / m[1:15].mean() == pytest.approx(1.0, abs=0.05)  # M is not depressed


@pytest.mark.parametrize("profile", ["soleus_healthy", "soleus_spastic", "fcr_healthy"])
def test_paired_pulses_measured_h2_h1_follows_the_depression(profile):
    p = vp.get_profile(profile)  # noise, background EMG and artifact on
    stimuli = vp.paired_pulses(vp.test_intensity_ma(p), intervals_s=(0.1, 0.5, 2.5), n_pairs=3)
    rec = vp.simulate_hreflex_session(p, seed=6, stimuli=stimuli)
    st = rec.truth["stimuli"]
    assert [s["pulse_index"] for s in st] == [0, 1] * 9
    _, h = _measured(rec, p)
    np.testing.assert_allclose(h, [s["h_p2p_uv"] for s in st], atol=30.0)
    ratio = h[1::2] / h[0::2]  # H2 / H1 of each pair, measured
    truth_h = np.array([s["h_p2p_uv"] for s in st])
    truth_ratio = truth_h[1::2] / truth_h[0::2]
    np.testing.assert_allclose(ratio, truth_ratio, atol=0.03)
    # mean over the 3 pairs of each interval: the depression curve, within trial variability
    for k, interval in enumerate((0.1, 0.5, 2.5)):
        got = ratio[3 * k : 3 * k + 3].mean()
        assert got == pytest.approx(vp.depression_factor(p, interval), rel=0.2), interval
    assert ratio[:3].mean() < ratio[3:6].mean() < ratio[6:].mean()


def test_stimulus_artifact_saturates_the_adc_for_a_few_ms():
    p = vp.get_profile("soleus_healthy")
    rec = vp.simulate_hreflex_session(p, seed=7, stimuli=[vp.StimulusSpec(1.0, 30.0)])
    (ev,) = rec.events
    fs = rec.emg_rate_hz
    seg = rec.emg_counts[ev["emg_sample_index"] : ev["emg_sample_index"] + int(0.02 * fs), 0]
    sat = np.flatnonzero(np.abs(seg) >= 2**15 - 1)
    assert sat.size > 0 and sat[0] == 0
    assert 1.0 <= (sat[-1] + 1) / fs * 1000 <= 5.0  # saturated for 1-5 ms
    before = rec.emg_uv[ev["emg_sample_index"] - 200 : ev["emg_sample_index"], 0]
    assert np.abs(before).max() < 100.0
    # a weak stimulus does not saturate
    rec2 = vp.simulate_hreflex_session(p, seed=7, stimuli=[vp.StimulusSpec(1.0, 5.0)])
    assert np.abs(rec2.emg_counts).max() < 2**15 - 1


def test_trial_to_trial_variability_and_latency_jitter():
    p = vp.get_profile("soleus_healthy")
    it = vp.test_intensity_ma(p)
    stimuli = [vp.StimulusSpec(1.0 + 20 * k, it) for k in range(40)]
    rec = vp.simulate_hreflex_session(p, seed=8, stimuli=stimuli, duration_s=1.0)
    st = rec.truth["stimuli"]
    h = np.array([s["h_model_p2p_uv"] for s in st])
    lat = np.array([s["h_latency_ms"] for s in st])
    assert 0.06 < h.std() / h.mean() < 0.2
    assert 0.1 < lat.std() < 0.6
