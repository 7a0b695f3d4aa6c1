"""Stretch-reflex model against its truth: DSRT relation, onset latency, amplitude vs velocity,
catch deceleration in the goniometer, clonus frequency and duration, protocol helper."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import butter, iirnotch, lfilter, sosfilt, sosfiltfilt, welch

import virtual_patient as vp
from virtual_patient import StretchSpec

QUIET = dict(noise_scale=0.0, tonic_emg_uv=0.0)


def _one(profile, v, seed=0, shape="bell", hold_s=1.0, duration_s=None, **over):
    p = vp.get_profile(profile, **over)
    spec = StretchSpec(0.5, v, shape=shape, hold_s=hold_s)
    return vp.simulate_stretch_session(p, seed=seed, stretches=[spec], duration_s=duration_s)


def _measured_emg_onsets(rec, k=8.0):
    """EMG onset of every stretch measured on the recorded channel 0 (s; None near a pop).

    Causal chain, so nothing of the burst leaks before it: 20-450 Hz band-pass, notches at 50,
    150 and 250 Hz, 5 ms trailing RMS; the onset is the first sample after the stretch start
    from which the RMS stays above mean + k SD of the 0.5 s before the stretch for 10 ms.
    """
    fe = rec.emg_rate_hz
    x = sosfilt(butter(4, [20, 450], "bandpass", fs=fe, output="sos"), rec.emg_uv[:, 0])
    for f0 in (50.0, 150.0, 250.0):
        b, a = iirnotch(f0, 10.0, fs=fe)
        x = lfilter(b, a, x)
    n, hold = int(0.005 * fe), int(0.01 * fe)
    rms = np.sqrt(lfilter(np.ones(n) / n, [1.0], x**2))
    pops = [q["emg_sample_index"] for q in rec.truth["pops"] if q["channel"] == 0]
    out = []
    for s in rec.truth["stretches"]:
        i0 = int(s["start_s"] * fe)
        base = rms[i0 - int(0.5 * fe) : i0]
        run = np.convolve(rms[i0:] > base.mean() + k * base.std(), np.ones(hold), "valid")
        popped = any(i0 - 0.5 * fe <= q <= (s["emg_onset_s"] + 0.05) * fe for q in pops)
        out.append(None if popped else (i0 + int(np.argmax(run == hold))) / fe)
    return out


@pytest.mark.parametrize("profile", ["mild_elbow", "moderate_elbow", "severe_elbow"])
def test_measured_onsets_and_angles_give_the_threshold_line(profile):
    # everything measured on the recording (all noise sources on): the EMG onset on the EMG,
    # the angle and velocity on the goniometer; the truth is only the reference
    rec = vp.simulate_stretch_session(profile, seed=1)
    sr = rec.truth["stretch_reflex"]
    lam, mu, delay = sr["lambda_deg"], sr["mu_s"], sr["reflex_delay_s"]
    stretches = rec.truth["stretches"]
    assert len(stretches) == 22 and all(s["reflex"] for s in stretches)
    t = rec.angle_time_s
    ang = sosfiltfilt(butter(2, 30, fs=rec.angle_rate_hz, output="sos"), rec.angle_deg)
    vel = np.gradient(ang, t)
    err, dsrt, w = [], [], []
    for s, on in zip(stretches, _measured_emg_onsets(rec), strict=True):
        # the goniometer at the true crossing reads the truth's DSRT
        assert np.interp(s["threshold_crossing_s"], t, rec.angle_deg) == pytest.approx(
            s["dsrt_deg"], abs=0.15
        )
        if on is None:
            continue
        err.append(on - s["emg_onset_s"])
        dsrt.append(np.interp(on - delay, t, ang))
        w.append(np.interp(on - delay, t, vel))
    err = np.array(err)
    assert len(err) >= 18
    # causal detection: a few ms late, never early, never more than 15 ms
    assert np.all(err >= 0.0) and np.all(err <= 0.015) and np.median(err) <= 0.008
    # the measured (velocity, angle) pairs lie on DSRT = lambda - mu * w; the detection lag b
    # shifts the slope to mu - b, not lambda
    slope, icpt = np.polyfit(w, dsrt, 1)
    assert icpt == pytest.approx(lam, abs=2.0)
    assert -slope == pytest.approx(mu - np.median(err), abs=0.04)


def test_recorded_angle_matches_truth_at_crossing():
    rec = _one("moderate_elbow", 120.0, noise_scale=0.0)
    s = rec.truth["stretches"][0]
    angle_at = np.interp(s["threshold_crossing_s"], rec.angle_time_s, rec.angle_deg)
    assert angle_at == pytest.approx(s["dsrt_deg"], abs=0.1)
    vel = np.gradient(rec.angle_deg, 1 / rec.angle_rate_hz)
    v_at = np.interp(s["threshold_crossing_s"], rec.angle_time_s, vel)
    assert v_at == pytest.approx(s["dsrt_velocity_deg_s"], abs=6.0)


def test_healthy_has_no_reflex_and_no_burst():
    rec = vp.simulate_stretch_session("healthy", seed=2)
    assert not any(s["reflex"] for s in rec.truth["stretches"])
    assert all(s["dsrt_deg"] is None and s["catch"] is None for s in rec.truth["stretches"])
    assert all(s["tardieu_grade"] == 0 for s in rec.truth["stretches"])
    assert rec.truth["stretch_reflex"]["tardieu_grade"] == 0
    sos = butter(4, [20, 450], "bandpass", fs=rec.emg_rate_hz, output="sos")
    x = sosfiltfilt(sos, rec.emg_uv[:, 0])
    assert np.sqrt(np.mean(x**2)) < 10.0  # baseline noise, powerline, tonic only


def test_emg_is_silent_before_onset_and_bursts_after():
    rec = _one("moderate_elbow", 200.0, **QUIET)
    s = rec.truth["stretches"][0]
    i_on = int(np.ceil(s["emg_onset_s"] * rec.emg_rate_hz))
    x = np.abs(rec.emg_uv[:, 0])
    assert x[:i_on].max() == 0.0
    first = int(np.flatnonzero(x > 3 * rec.emg_scale_uv)[0])
    assert 0 <= (first - s["emg_onset_s"] * rec.emg_rate_hz) <= 0.004 * rec.emg_rate_hz
    burst = rec.emg_uv[i_on : i_on + 200, 0]
    assert np.sqrt(np.mean(burst**2)) > 15.0


def test_burst_amplitude_grows_with_velocity():
    rms = []
    for v in (60.0, 150.0, 300.0):
        rec = _one("mild_elbow", v, **QUIET)
        s = rec.truth["stretches"][0]
        i = int(s["emg_onset_s"] * rec.emg_rate_hz)
        rms.append(np.sqrt(np.mean(rec.emg_uv[i : i + 200, 0] ** 2)))
    assert rms[0] < rms[1] < rms[2]
    assert rms[2] > 1.5 * rms[0]


def _velocity(rec):
    sos = butter(2, 30, fs=rec.angle_rate_hz, output="sos")
    return np.gradient(sosfiltfilt(sos, rec.angle_deg), 1 / rec.angle_rate_hz)


def test_catch_decelerates_the_limb_then_releases():
    rec = _one("moderate_elbow", 250.0)
    s = rec.truth["stretches"][0]
    c = s["catch"]
    assert c is not None and c["time_s"] > s["emg_onset_s"]
    t = rec.angle_time_s
    vel = _velocity(rec)
    before = np.interp(c["resistance_start_s"], t, vel)
    win = (t > c["resistance_start_s"]) & (t < c["release_s"])
    dip = vel[win].min()
    assert dip < 0.7 * before  # catch_depth 0.6: the velocity drops visibly
    acc = np.gradient(vel, 1 / rec.angle_rate_hz)
    t_max_dec = t[win][np.argmin(acc[win])]
    assert t_max_dec == pytest.approx(c["time_s"], abs=0.02)
    after = (t > c["release_s"]) & (t < c["release_s"] + 0.3)
    assert vel[after].max() > dip + 50.0  # release: the stretch goes on
    assert s["tardieu_grade"] == 2
    # mild profile: EMG but no catch (Tardieu 1)
    mild = _one("mild_elbow", 250.0).truth["stretches"][0]
    assert mild["catch"] is None and mild["tardieu_grade"] == 1


def test_catch_is_absent_without_catch_depth():
    rec = _one("moderate_elbow", 250.0, catch_depth=0.0, noise_scale=0.0)
    s = rec.truth["stretches"][0]
    assert s["catch"] is None and s["reflex"]


def _envelope(x, fs, cutoff=20.0):
    sos = butter(4, [20, min(450, 0.45 * fs)], "bandpass", fs=fs, output="sos")
    y = np.abs(sosfiltfilt(sos, x))
    return sosfiltfilt(butter(2, cutoff, fs=fs, output="sos"), y)


@pytest.mark.parametrize(
    ("profile", "sustained"),
    [("plantarflexor_clonus", False), ("plantarflexor_clonus_sustained", True)],
)
def test_clonus_frequency_and_duration(profile, sustained):
    rec = _one(profile, 200.0, hold_s=14.0)
    s = rec.truth["stretches"][0]
    cl = s["clonus"]
    assert cl is not None and cl["sustained"] is sustained
    assert s["tardieu_grade"] == (4 if sustained else 3)
    if sustained:
        assert cl["duration_s"] >= 10.0
    else:
        assert cl["duration_s"] < 10.0
    f0 = cl["frequency_hz"]
    assert 4.0 <= f0 <= 10.0
    # measured burst rate from the EMG envelope spectrum during the clonus
    fs = rec.emg_rate_hz
    a, b = int(cl["start_s"] * fs), int(min(cl["end_s"], cl["start_s"] + 4.0) * fs)
    env = _envelope(rec.emg_uv[:, 0], fs)[a:b]
    f, pxx = welch(env - env.mean(), fs=fs, nperseg=min(len(env), int(4 * fs)))
    band = (f > 2) & (f < 15)
    assert f[band][np.argmax(pxx[band])] == pytest.approx(f0, abs=0.5)
    # the goniometer oscillates at the clonus frequency too
    fa = rec.angle_rate_hz
    ang = rec.angle_deg[int(cl["start_s"] * fa) : int(cl["end_s"] * fa)]
    f, pxx = welch(ang - ang.mean(), fs=fa, nperseg=min(len(ang), int(2 * fa)))
    band = (f > 2) & (f < 15)
    assert f[band][np.argmax(pxx[band])] == pytest.approx(f0, abs=0.75)


def test_no_clonus_after_slow_stretches():
    rec = _one("plantarflexor_clonus", 40.0, hold_s=3.0)
    s = rec.truth["stretches"][0]
    assert s["reflex"] and s["clonus"] is None


def test_tsrt_protocol_shape():
    p = vp.get_profile("moderate_elbow")
    specs = vp.tsrt_protocol(p)
    assert len(specs) == 22
    v = [s.peak_velocity_deg_s for s in specs]
    assert v[:2] == [10.0, 10.0]
    assert v[2:] == sorted(v[2:]) and len(set(v[2:])) == 5
    starts = [s.start_s for s in specs]
    assert starts == sorted(starts)
    rec = vp.simulate_stretch_session(p, seed=0, stretches=specs)
    tr = rec.truth["stretches"]
    # slow stretches reach the passive range; manual stretches overshoot a little
    assert tr[0]["max_angle_deg"] == pytest.approx(p.range_max_deg, abs=0.01)
    over = [s["max_angle_deg"] - s["end_deg"] for s in tr[2:]]
    assert 0.5 < np.median(over) < 8.0
    # manual stretches: uneven, the achieved peak differs from the planned one
    dev = [abs(s["peak_velocity_deg_s"] / s["planned_peak_velocity_deg_s"] - 1) for s in tr[2:]]
    assert max(dev) > 0.02 and np.median(dev) < 0.25


def test_bell_stretch_peak_velocity_is_the_planned_one():
    rec = _one("healthy", 200.0, noise_scale=0.0)
    s = rec.truth["stretches"][0]
    assert s["peak_velocity_deg_s"] == pytest.approx(200.0, rel=0.01)
    vel = _velocity(rec)
    assert vel.max() == pytest.approx(200.0, rel=0.03)


def test_recording_shows_every_stretch_of_a_long_session():
    # whole-session rendering: every stretch must appear in the goniometer and the EMG
    p = vp.get_profile("moderate_elbow", noise_scale=0.0, tonic_emg_uv=0.0)
    rec = vp.simulate_stretch_session(p, seed=3, stretches=vp.tsrt_protocol(p, rest_s=0.5))
    fa, fe = rec.angle_rate_hz, rec.emg_rate_hz
    for s in rec.truth["stretches"]:
        seg = rec.angle_deg[round(s["start_s"] * fa) : round(s["end_s"] * fa)]
        assert seg.max() == pytest.approx(s["max_angle_deg"], abs=0.05)
        i = round(s["emg_onset_s"] * fe)
        assert np.abs(rec.emg_uv[i : i + 100, 0]).max() > 10.0


@pytest.mark.parametrize("seed", range(6))
def test_planned_duration_bounds_every_manual_stretch(seed):
    p = vp.get_profile("severe_elbow")
    specs = vp.tsrt_protocol(p, rest_s=0.0, hold_s=0.2)
    rec = vp.simulate_stretch_session(p, seed=seed, stretches=specs, n_emg=1, emg_rate_hz=500.0)
    for spec, s in zip(specs, rec.truth["stretches"], strict=True):
        assert s["end_s"] <= spec.start_s + vp.planned_duration_s(spec, p)


def test_burst_truth_matches_the_recorded_burst():
    rec = _one("moderate_elbow", 200.0, **QUIET)
    s = rec.truth["stretches"][0]
    fe = rec.emg_rate_hz
    i = int(np.ceil(s["emg_onset_s"] * fe))
    rms = np.sqrt(np.mean(rec.emg_uv[i : i + int(0.1 * fe), 0] ** 2))
    # RMS of envelope x unit-variance carrier vs the mean envelope (equal within the spread)
    assert rms == pytest.approx(s["burst"]["mean_envelope_100ms_uv"], rel=0.25)
    assert s["burst"]["peak_envelope_uv"] >= s["burst"]["mean_envelope_100ms_uv"]
    healthy = _one("healthy", 200.0).truth["stretches"][0]
    assert healthy["burst"] is None


@settings(max_examples=25, deadline=None)
@given(
    lam=st.floats(10.0, 200.0),
    mu=st.floats(0.0, 0.4),
    v=st.floats(10.0, 400.0),
    manual=st.booleans(),
)
def test_threshold_crossing_property(lam, mu, v, manual):
    p = vp.get_profile("moderate_elbow", lambda_deg=lam, mu_s=mu, noise_scale=0.0,
                       tonic_emg_uv=0.0)  # fmt: skip
    spec = StretchSpec(0.2, v, shape="manual" if manual else "bell", hold_s=0.3)
    rec = vp.simulate_stretch_session(p, seed=1, stretches=[spec], n_emg=1, emg_rate_hz=1000.0,
                                      angle_rate_hz=1000.0)  # fmt: skip
    s = rec.truth["stretches"][0]
    t = rec.angle_time_s
    # smooth away the 0.02-deg quantisation before differentiating
    ang = sosfiltfilt(butter(2, 30, fs=rec.angle_rate_hz, output="sos"), rec.angle_deg)
    vel = np.gradient(ang, t)
    moving = (t >= s["start_s"]) & (t < s["return_start_s"])
    x_max = np.max(ang[moving] + mu * vel[moving])
    if s["reflex"]:
        assert s["dsrt_deg"] == pytest.approx(lam - mu * s["dsrt_velocity_deg_s"], abs=1e-6)
        assert s["start_s"] <= s["threshold_crossing_s"] < s["return_start_s"]
        i_on = int(np.ceil(s["emg_onset_s"] * rec.emg_rate_hz))
        assert np.all(rec.emg_counts[:i_on] == 0)
    else:
        assert x_max < lam + 1.0  # never reached (up to the measured derivative's error)
        assert np.all(rec.emg_counts == 0)


def test_phase_times_follow_the_catch_delay():
    rec = _one("severe_elbow", 250.0, noise_scale=0.0)
    s = rec.truth["stretches"][0]
    assert s["catch"] is not None
    t, ang = rec.angle_time_s, rec.angle_deg
    # the joint is still at the end angle until return_start_s, and leaves it right after
    hold = (t > s["movement_end_s"] + 0.3) & (t < s["return_start_s"] - 0.01)
    assert np.abs(ang[hold] - s["end_deg"]).max() < 0.1
    # minimum-jerk return of 125 deg at 90 deg/s: 3.6 deg covered 0.45 s after it starts
    mj = 0.45 / (1.875 * (s["end_deg"] - s["start_deg"]) / 90.0)
    expected = s["end_deg"] - (s["end_deg"] - s["start_deg"]) * mj**3 * (10 - 15 * mj + 6 * mj**2)
    got = np.interp(s["return_start_s"] + 0.45, t, ang)
    assert got == pytest.approx(expected, abs=0.1)
    rest = t > s["end_s"] + 0.01
    assert np.abs(ang[rest] - s["start_deg"]).max() < 0.1


def test_tardieu_r1_r2_truth():
    for name, has_catch in (("moderate_elbow", True), ("mild_elbow", False), ("healthy", False)):
        p = vp.get_profile(name)
        summ = vp.tardieu_summary(p)
        assert summ["r2_deg"] == p.range_max_deg
        assert (summ["r1_deg"] is not None) is has_catch
        if has_catch:
            assert p.rest_angle_deg < summ["r1_deg"] < summ["r2_deg"]
            assert summ["r2_minus_r1_deg"] == pytest.approx(summ["r2_deg"] - summ["r1_deg"])
    rec = _one("moderate_elbow", 100.0)
    assert (
        rec.truth["stretch_reflex"]["tardieu_r1_deg"]
        == vp.tardieu_summary(vp.get_profile("moderate_elbow"))["r1_deg"]
    )


def test_burst_grows_with_how_far_the_angle_goes_past_the_threshold():
    # fixed velocity (100 deg/s bell to 145 deg), lambda lowered: the angle ends further past
    # the threshold, and the recorded burst (noise, powerline, background EMG all on) grows by
    # about reflex_gain_uv_per_deg (1 uV) per degree of excess
    fe = 2000.0
    late, whole, excess = [], [], []
    for lam in (100.0, 80.0, 60.0, 40.0):
        p = vp.get_profile("mild_elbow", lambda_deg=lam)
        rec = vp.simulate_stretch_session(p, seed=4, stretches=[StretchSpec(0.5, 100.0)], n_emg=1)
        s = rec.truth["stretches"][0]
        x = sosfiltfilt(butter(4, [20, 450], "bandpass", fs=fe, output="sos"), rec.emg_uv[:, 0])
        noise2 = np.mean(x[int(0.05 * fe) : int(0.45 * fe)] ** 2)  # before the stretch
        i_on, i_end = int(s["emg_onset_s"] * fe), int(s["movement_end_s"] * fe)
        whole.append(np.sqrt(np.mean(x[i_on:i_end] ** 2) - noise2))
        late.append(np.sqrt(np.mean(x[i_end - int(0.1 * fe) : i_end] ** 2) - noise2))
        excess.append(s["max_angle_deg"] - lam)
    assert np.all(np.diff(whole) > 0) and np.all(np.diff(late) > 0)
    assert whole[2] > 1.5 * whole[0]  # lambda 100 -> 60 deg at the same velocity
    gain = rec.truth["channels"][0]["gain"] * p.reflex_gain_uv_per_deg
    slope = np.polyfit(excess, late, 1)[0]
    assert slope == pytest.approx(gain, rel=0.25)


def _bell_deviation(rec):
    """RMS deviation of the goniometer velocity of the outward movement from the minimum-jerk
    bell with the same amplitude and duration, over the bell's peak (fraction)."""
    s = rec.truth["stretches"][0]
    fa = rec.angle_rate_hz
    ang = sosfiltfilt(butter(2, 30, fs=fa, output="sos"), rec.angle_deg)
    vel = np.gradient(ang, 1 / fa)
    i0 = round(s["start_s"] * fa)
    amp = s["max_angle_deg"] - s["start_deg"]
    # duration of the movement: a minimum-jerk bell reaches 98 % of its amplitude at u = 0.8732
    i98 = i0 + int(np.argmax(ang[i0:] - s["start_deg"] >= 0.98 * amp))
    dur = (i98 - i0) / fa / 0.8732
    u = np.arange(int(dur * fa)) / fa / dur
    bell = amp / dur * 30 * u**2 * (1 - u) ** 2
    v = vel[i0 : i0 + len(u)]
    return np.sqrt(np.mean((v - bell) ** 2)) / bell.max()


def test_manual_stretches_have_uneven_velocity_bell_stretches_do_not():
    dev = {"bell": [], "manual": []}
    for shape in dev:
        for seed in range(8):
            spec = StretchSpec(0.5, 150.0, shape=shape)
            rec = vp.simulate_stretch_session("healthy", seed=seed, stretches=[spec], n_emg=1)
            dev[shape].append(_bell_deviation(rec))
    assert max(dev["bell"]) < 0.015  # the goniometer shows the bell (noise, quantisation)
    assert min(dev["manual"]) > 0.025 and np.median(dev["manual"]) > 0.04  # ripple 3-11 %


def test_manual_overshoot_beyond_the_range_is_capped_and_rest_is_min_plus_5():
    p = vp.get_profile("healthy")
    specs = [StretchSpec(0.5 + 8 * k, 200.0, shape="manual") for k in range(6)]
    specs.append(StretchSpec(0.5 + 8 * 6, 200.0, shape="manual", overshoot_deg=10.0))
    rec = vp.simulate_stretch_session(p, seed=5, stretches=specs, n_emg=1)
    over = np.array([s["max_angle_deg"] - p.range_max_deg for s in rec.truth["stretches"]])
    # stretches to the end of the range overshoot it, by at most 4 deg (an asked 10 deg too)
    assert np.all(over > 0.5) and np.all(over <= 4.0 + 1e-9) and over[-1] == pytest.approx(4.0)
    assert rec.angle_deg.max() == pytest.approx(p.range_max_deg + 4.0, abs=0.1)
    # the joint rests at range_min_deg + 5 before, between and after the stretches
    assert rec.angle_deg[: int(0.4 * rec.angle_rate_hz)].mean() == pytest.approx(5.0, abs=0.02)
    assert rec.truth["stretch_reflex"]["rest_deg"] == p.rest_angle_deg == 5.0
    assert vp.get_profile("plantarflexor_clonus").rest_angle_deg == 50.0
