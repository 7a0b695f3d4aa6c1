"""Small synthetic stretch sessions with exact truth, for the unit tests.

The model is deliberately simple and independent of the simulator: each stretch is a smooth
(raised-cosine acceleration) velocity profile from the start angle; the reflex triggers when
angle + mu * velocity first reaches lambda (Feldman's threshold) and EMG begins ``delay_s`` later
as band-limited noise whose amplitude grows with velocity. Options add a catch (velocity dip with
release), clonus (bursts at a fixed rate), pre-stretch activity, a hesitation and NaN gaps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal


@dataclass
class SynthSession:
    emg_uv: np.ndarray
    emg_rate_hz: float
    angle_deg: np.ndarray
    angle_rate_hz: float
    truth: list[dict] = field(default_factory=list)
    prompts_s: list[float] = field(default_factory=list)


def velocity_profile(peak: float, excursion: float, rate: float, ramp_s: float = 0.08):
    """Velocity with raised-cosine ramps up/down and a plateau covering ``excursion`` degrees."""
    ramp_s = min(ramp_s, 0.4 * excursion / peak)
    n_r = max(2, round(ramp_s * rate))
    up = peak * 0.5 * (1 - np.cos(np.pi * np.arange(n_r) / n_r))
    ramp_area = 2 * up.sum() / rate
    n_p = max(0, round((excursion - ramp_area) / peak * rate))
    v = np.concatenate([up, np.full(n_p, peak), up[::-1]])
    v *= excursion / (v.sum() / rate)
    return v


def make_session(
    velocities=(20, 60, 120, 180, 240, 20, 60, 120, 180, 240),
    *,
    lam=80.0,
    mu=0.15,
    delay_s=0.03,
    start_deg=0.0,
    excursion_deg=100.0,
    emg_rate=2000.0,
    angle_rate=500.0,
    noise_uv=4.0,
    burst_gain_uv_per_deg_s=0.4,
    burst_s=0.2,
    catch=False,
    clonus_hz=0.0,
    clonus_s=0.0,
    active_before=(),
    hesitate=(),
    gap_in=(),
    rest_s=2.0,
    hold_s=1.0,
    reflex=True,
    angle_noise_deg=0.05,
    seed=0,
) -> SynthSession:
    rng = np.random.default_rng(seed)
    up = int(emg_rate // angle_rate)
    vel_parts = [np.zeros(round(rest_s * angle_rate))]
    events = []  # (kind, angle index) bookkeeping
    truth = []
    t_cursor = len(vel_parts[0])
    for k, w in enumerate(velocities):
        v = velocity_profile(float(w), excursion_deg, angle_rate)
        if k in hesitate:  # the examiner hesitates early in the stretch: velocity dips by 80%
            n_d = round(0.15 * angle_rate)
            d0 = round(0.2 * len(v))
            v = v.copy()
            v[d0 : d0 + n_d] *= 1 - 0.8 * np.sin(np.pi * np.arange(n_d) / n_d) ** 2
            v *= excursion_deg / (v.sum() / angle_rate)
        start = t_cursor
        vel_parts.append(v)
        hold = np.zeros(round(hold_s * angle_rate))
        back = -velocity_profile(20.0, excursion_deg, angle_rate)
        rest = np.zeros(round(rest_s * angle_rate))
        vel_parts += [hold, back, rest]
        events.append((start, len(v)))
        t_cursor += len(v) + len(hold) + len(back) + len(rest)
    vel = np.concatenate(vel_parts)
    angle = start_deg + np.concatenate([[0.0], np.cumsum(vel)[:-1]]) / angle_rate
    n_a = len(angle)
    n_e = n_a * up
    t_a = np.arange(n_a) / angle_rate
    t_e = np.arange(n_e) / emg_rate
    # EMG: white noise band-limited 20-450 Hz
    sos = signal.butter(2, (20, 450), btype="bandpass", fs=emg_rate, output="sos")
    emg = signal.sosfilt(sos, rng.normal(0, 1, n_e))
    emg *= noise_uv / emg.std()
    act_carrier = signal.sosfilt(sos, rng.normal(0, 1, n_e))
    act_carrier /= act_carrier.std()
    amp_env = np.zeros(n_e)
    catch_profile = np.zeros(n_a)
    for k, ((s, length), w) in enumerate(zip(events, velocities, strict=True)):
        seg = slice(s, s + length)
        crit = angle[seg] + mu * vel[seg]
        hit = np.flatnonzero(crit >= lam)
        rec = {
            "index": k,
            "start_s": s / angle_rate,
            "velocity_deg_s": float(w),
            "reflex": False,
            "max_angle_deg": float(angle[s + length - 1]),
        }
        if reflex and len(hit):
            i = s + hit[0]
            t_trig = t_a[i]
            t_on = t_trig + delay_s
            rec.update(
                reflex=True,
                trigger_s=float(t_trig),
                trigger_angle_deg=float(angle[i]),
                onset_s=float(t_on),
                onset_angle_deg=float(np.interp(t_on, t_a, angle)),
                onset_velocity_deg_s=float(np.interp(t_on, t_a, vel)),
            )
            amp = burst_gain_uv_per_deg_s * w + 20.0
            j0 = int(np.ceil(t_on * emg_rate))
            j1 = j0 + round(burst_s * emg_rate)
            rise = np.minimum(1.0, np.arange(j1 - j0) / (0.005 * emg_rate))
            amp_env[j0:j1] = np.maximum(amp_env[j0:j1], amp * rise)
            if clonus_hz > 0 and clonus_s > 0:
                period = 1.0 / clonus_hz
                t_b = t_e[j1] + period * 0.5
                while t_b < t_e[j1] + clonus_s:
                    b0 = int(t_b * emg_rate)
                    b1 = b0 + round(0.04 * emg_rate)
                    amp_env[b0:b1] = np.maximum(amp_env[b0:b1], 0.6 * amp)
                    t_b += period
            if catch:
                # reflex torque slows the movement 40 ms after EMG onset, then releases
                c0 = round((t_on + 0.04) * angle_rate)
                n_c = round(0.12 * angle_rate)
                shape = np.sin(np.pi * np.arange(n_c) / n_c) ** 2
                catch_profile[c0 : c0 + n_c] += 0.6 * w * shape
                # release: the lost excursion is made up in the next 0.12 s
                catch_profile[c0 + n_c : c0 + 2 * n_c] -= 0.6 * w * shape
                rec["catch_s"] = float((c0 + n_c / 2) / angle_rate)
        truth.append(rec)
        if k in active_before:
            j1 = round(s / angle_rate * emg_rate)
            amp_env[j1 - round(0.5 * emg_rate) : j1] = 40.0
    if catch:
        # re-integrate the angle with the catch dips (velocity reduced, movement resumes)
        vel2 = vel - catch_profile
        angle = start_deg + np.concatenate([[0.0], np.cumsum(vel2)[:-1]]) / angle_rate
        # the stretch keeps its end angle: the examiner finishes the movement (hold shortens)
        for rec in truth:
            if rec["reflex"]:
                rec["onset_angle_deg"] = float(np.interp(rec["onset_s"], t_a, angle))
    emg = emg + act_carrier * amp_env
    angle = angle + rng.normal(0, angle_noise_deg, n_a)
    for a, b in gap_in:
        emg[round(a * emg_rate) : round(b * emg_rate)] = np.nan
        angle[round(a * angle_rate) : round(b * angle_rate)] = np.nan
    return SynthSession(
        emg_uv=emg[:, None].copy(),
        emg_rate_hz=emg_rate,
        angle_deg=angle,
        angle_rate_hz=angle_rate,
        truth=truth,
        prompts_s=[t["start_s"] - 0.1 for t in truth],
    )
