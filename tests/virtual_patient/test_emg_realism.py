"""EMG and goniometer nuisances: band-limited spectrum, baseline noise, powerline, motion
artifact, electrode pops, cross-talk, channel gain, ADC quantisation and saturation, goniometer
gain/offset/noise, and the noise-level knob."""

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt, welch

import virtual_patient as vp
from virtual_patient import StretchSpec


def _rest(seconds=20.0, seed=0, n_emg=2, emg_rate_hz=2000.0, **over):
    p = vp.get_profile("healthy", **over)
    return vp.simulate_stretch_session(
        p, seed=seed, stretches=[], duration_s=seconds, n_emg=n_emg, emg_rate_hz=emg_rate_hz
    )


def test_emg_power_lies_in_the_20_450_hz_band():
    rec = _rest(tonic_emg_uv=50.0, noise_scale=0.0, emg_rate_hz=4000.0)
    f, pxx = welch(rec.emg_uv[:, 0], fs=rec.emg_rate_hz, nperseg=4096)
    inside = pxx[(f >= 20) & (f <= 450)].sum() / pxx.sum()
    assert inside > 0.9
    assert pxx[(f > 600)].sum() / pxx.sum() < 0.03
    assert pxx[(f < 10)].sum() / pxx.sum() < 0.03
    assert np.std(rec.emg_uv[:, 0]) == pytest.approx(
        50.0 * rec.truth["channels"][0]["gain"], rel=0.1
    )


def test_baseline_noise_level_and_noise_knob():
    quiet = dict(tonic_emg_uv=0.0, powerline_uv=(0.0,), pops_per_min=0.0)
    for level in (2.0, 10.0):
        rec = _rest(seconds=5.0, baseline_noise_uv=level, **quiet)
        assert np.std(rec.emg_uv[:, 0]) == pytest.approx(level, rel=0.05)
    rec = _rest(seconds=5.0, baseline_noise_uv=4.0, noise_scale=2.5, **quiet)
    assert np.std(rec.emg_uv[:, 0]) == pytest.approx(10.0, rel=0.05)
    rec = _rest(seconds=5.0, noise_scale=0.0, tonic_emg_uv=0.0)
    assert np.all(rec.emg_counts == 0)


@pytest.mark.parametrize("mains", [50.0, 60.0])
def test_powerline_and_harmonics(mains):
    rec = _rest(seconds=10.0, mains_hz=mains, baseline_noise_uv=0.5, tonic_emg_uv=0.0,
                pops_per_min=0.0)  # fmt: skip
    f, pxx = welch(rec.emg_uv[:, 0], fs=rec.emg_rate_hz, nperseg=4000)
    floor = np.median(pxx)
    for h in (1, 3, 5):
        k = int(np.argmin(np.abs(f - h * mains)))
        assert pxx[k] > 100 * floor
    other = 60.0 if mains == 50.0 else 50.0
    assert pxx[int(np.argmin(np.abs(f - other)))] < 10 * floor


def test_motion_artifact_is_low_frequency_and_only_during_movement():
    p = vp.get_profile("healthy", baseline_noise_uv=0.0, powerline_uv=(0.0,), pops_per_min=0.0,
                       tonic_emg_uv=0.0)  # fmt: skip
    rec = vp.simulate_stretch_session(
        p, seed=1, stretches=[StretchSpec(1.0, 350.0)], duration_s=6.0
    )
    x = rec.emg_uv[:, 1]
    s = rec.truth["stretches"][0]
    t = rec.emg_time_s
    moving = (t > s["start_s"]) & (t < s["movement_end_s"])
    assert np.abs(x[moving]).max() > 15.0
    assert np.abs(x[t < s["start_s"]]).max() == 0.0
    hp = sosfiltfilt(butter(4, 20, "highpass", fs=rec.emg_rate_hz, output="sos"), x)
    assert np.abs(hp[moving]).max() < 0.2 * np.abs(x[moving]).max()


def test_electrode_pops_are_listed_and_visible():
    rec = _rest(seconds=30.0, seed=3, pops_per_min=20.0)
    pops = rec.truth["pops"]
    assert 10 <= len(pops) <= 60
    for pop in pops[:5]:
        i, c = pop["emg_sample_index"], pop["channel"]
        jump = rec.emg_uv[i, c] - rec.emg_uv[i - 1, c]
        assert jump == pytest.approx(pop["amplitude_uv"], abs=60.0)
        assert abs(pop["amplitude_uv"]) >= 300.0


def test_crosstalk_and_channel_gain():
    p = vp.get_profile("moderate_elbow", noise_scale=0.0, tonic_emg_uv=0.0)
    rec = vp.simulate_stretch_session(
        p, seed=2, stretches=[StretchSpec(0.5, 250.0)], duration_s=4.0, n_emg=3
    )
    x = rec.emg_uv
    gains = [c["gain"] for c in rec.truth["channels"]]
    assert len(set(gains)) == 3 and all(0.8 < g < 1.2 for g in gains)
    ratio1 = np.std(x[:, 1]) / np.std(x[:, 0])
    assert ratio1 == pytest.approx(p.crosstalk * gains[1] / gains[0], rel=0.02)
    ratio2 = np.std(x[:, 2]) / np.std(x[:, 0])
    assert ratio2 == pytest.approx(p.crosstalk**2 * gains[2] / gains[0], rel=0.05)
    assert np.corrcoef(x[:, 0], x[:, 1])[0, 1] > 0.99


def test_quantisation_and_saturation():
    rec = _rest(seconds=2.0, tonic_emg_uv=20.0, emg_full_scale_uv=30.0)
    q = rec.emg_scale_uv
    assert q == pytest.approx(30.0 / 2**15)
    assert np.allclose(rec.emg_uv / q, np.round(rec.emg_uv / q))
    assert rec.emg_counts.max() == 2**15 - 1 and rec.emg_counts.min() == -(2**15)
    rec8 = vp.simulate_stretch_session("healthy", seed=0, stretches=[], duration_s=1.0, emg_bits=8)
    assert rec8.emg_counts.max() <= 127 and rec8.emg_scale_uv == pytest.approx(10000.0 / 128)


def test_goniometer_gain_offset_noise_and_quantisation():
    p = vp.get_profile("healthy", goniometer_gain=1.05, goniometer_offset_deg=3.0,
                       goniometer_noise_deg=0.2)  # fmt: skip
    rec = vp.simulate_stretch_session(p, seed=4, stretches=[], duration_s=4.0)
    rest = p.rest_angle_deg
    assert rec.angle_deg.mean() == pytest.approx(1.05 * rest + 3.0, abs=0.02)
    assert np.std(rec.angle_deg) == pytest.approx(0.2, rel=0.1)
    steps = rec.angle_deg / rec.angle_scale_deg
    assert np.allclose(steps, np.round(steps))
    assert rec.truth["goniometer"]["gain"] == 1.05
    flipped = vp.simulate_stretch_session(
        vp.get_profile("healthy", goniometer_sign=-1), seed=4, stretches=[], duration_s=1.0
    )
    assert flipped.stretch_direction_sign == -1
    assert (flipped.stretch_direction_sign * flipped.angle_deg).mean() == pytest.approx(
        rest, abs=0.05
    )
    np.testing.assert_array_equal(flipped.analysed_angle_deg, -flipped.angle_deg)


def test_background_emg_fluctuates_slowly_and_truth_reports_it():
    over = dict(noise_scale=0.0, artifact_uv_per_ma=0.0, mmax_uv=0.0)
    p = vp.get_profile("soleus_healthy", tonic_emg_uv=20.0, **over)
    stimuli = [vp.StimulusSpec(2.0 + 3.0 * k, 10.0) for k in range(10)]
    rec = vp.simulate_hreflex_session(p, seed=9, stimuli=stimuli, emg_rate_hz=2000.0)
    x = rec.emg_uv[:, 0]
    win = x[: len(x) // 1000 * 1000].reshape(-1, 1000)  # 0.5 s windows
    rms = np.sqrt(np.mean(win**2, axis=1))
    assert 0.1 < rms.std() / rms.mean() < 0.4
    local, true = [], []
    for ev, st in zip(rec.events, rec.truth["stimuli"], strict=True):
        i = ev["emg_sample_index"]
        local.append(np.sqrt(np.mean(x[i - 400 : i + 400] ** 2)))
        true.append(st["background_emg_uv"])
    ratio = np.array(local) / np.array(true)
    assert ratio.mean() == pytest.approx(1.0, abs=0.15) and ratio.std() < 0.2
    flat = vp.simulate_hreflex_session(
        vp.get_profile(p, tonic_fluctuation=0.0), seed=9, stimuli=stimuli, emg_rate_hz=2000.0
    )
    fx = flat.emg_uv[: len(x) // 1000 * 1000, 0].reshape(-1, 1000)
    frms = np.sqrt(np.mean(fx**2, axis=1))
    assert frms.std() / frms.mean() < 0.06


def test_optional_dc_offset_wander_and_ecg():
    quiet = dict(tonic_emg_uv=0.0, baseline_noise_uv=0.0, powerline_uv=(0.0,), pops_per_min=0.0)
    base = _rest(seconds=20.0, seed=5, **quiet)
    assert np.all(base.emg_counts == 0)  # all three are off by default
    rec = _rest(seconds=20.0, seed=5, dc_offset_uv=100.0, baseline_wander_uv=30.0, **quiet)
    x = rec.emg_uv
    assert np.abs(x.mean(axis=0)).max() > 20.0
    lp_power = np.abs(np.diff(x[::200], axis=0)).max()  # slow: small change per 0.1 s
    assert lp_power < 10.0
    ecg = _rest(seconds=20.0, seed=5, ecg_uv=50.0, heart_rate_bpm=75.0, **quiet).emg_uv[:, 0]
    assert 0.3 * 50.0 * 0.8 < np.abs(ecg).max() < 50.0 * 1.2
    # beat rate from the autocorrelation of |ecg|
    a = np.abs(ecg) - np.abs(ecg).mean()
    lags = np.arange(1000, 2000)  # 0.5-1 s
    ac = [np.dot(a[: len(a) - k], a[k:]) for k in lags]
    lag = lags[int(np.argmax(ac))]
    assert lag / 2000.0 == pytest.approx(60.0 / 75.0, abs=0.05)


def test_noise_truth_matches_the_signal():
    rec = _rest(seconds=10.0, tonic_emg_uv=0.0, pops_per_min=0.0, baseline_noise_uv=0.0)
    n = rec.truth["noise"]
    assert n["baseline_noise_uv"] == 0.0
    for c in range(2):
        assert np.std(rec.emg_uv[:, c]) == pytest.approx(n["powerline_rms_uv"][c], rel=0.02)


def test_noise_levels_share_one_realisation():
    # same seed at two noise levels: identical physiology, nuisances exactly scaled
    spec = [StretchSpec(0.5, 200.0, shape="manual")]
    kw = dict(seed=8, stretches=spec, duration_s=6.0)
    rec = {}
    for ns in (0.0, 1.0, 3.0):
        p = vp.get_profile("moderate_elbow", noise_scale=ns, emg_full_scale_uv=1e6)
        rec[ns] = vp.simulate_stretch_session(p, emg_bits=24, **kw)
    clean = rec[0.0].emg_uv
    n1 = rec[1.0].emg_uv - clean
    n3 = rec[3.0].emg_uv - clean
    q = rec[1.0].emg_scale_uv
    np.testing.assert_allclose(n3, 3.0 * n1, atol=4 * q)
    assert rec[1.0].truth["stretches"] == rec[3.0].truth["stretches"]
