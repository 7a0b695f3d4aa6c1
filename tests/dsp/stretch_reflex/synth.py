"""Small synthetic stretch sessions with exact truth, for the unit tests.

The model is deliberately simple and independent of the simulator: each stretch is a smooth
(raised-cosine acceleration) velocity profile from the start angle; the reflex triggers when
angle + mu * velocity first reaches lambda (Feldman's threshold) and EMG begins ``delay_s`` later
as band-limited noise whose amplitude grows with velocity. Options add a catch (velocity dip with
release, or a fall to 40 % of the velocity that is not released), clonus (bursts at a fixed
rate), pre-stretch activity, a hesitation and NaN gaps; ``burst_sine_hz`` makes the reflex burst
a sine of known amplitude (exact RMS, iEMG and duration).
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
    catch_release=True,
    burst_sine_hz=0.0,
    clonus_hz=0.0,
    clonus_s=0.0,
    clonus_beats=0,
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
    catch_hold_s: dict[int, float] = {}
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
        if catch and not catch_release and reflex:
            # reflex torque slows the movement 40 ms after EMG onset to 40 % of its velocity
            # (over 60 ms), and the examiner finishes the stretch at that pace: no release
            a_loc = start_deg + np.concatenate([[0.0], np.cumsum(v)[:-1]]) / angle_rate
            hit = np.flatnonzero(a_loc + mu * v >= lam)
            if len(hit):
                c0 = round((hit[0] / angle_rate + delay_s + 0.04) * angle_rate)
                n_c = round(0.06 * angle_rate)
                factor = np.full(len(v), 0.4)
                factor[:c0] = 1.0
                ramp = 1.0 - 0.6 * np.sin(0.5 * np.pi * np.arange(n_c) / n_c) ** 2
                factor[c0 : c0 + n_c] = ramp[: max(0, len(v) - c0)]
                v = v * factor
                # the fall is steepest half-way through the 60 ms ramp
                catch_hold_s[k] = (start + c0 + n_c / 2) / angle_rate
        vel_parts.append(v)
        hold = np.zeros(round(hold_s * angle_rate))
        back = -velocity_profile(20.0, v.sum() / angle_rate, angle_rate)
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
            rec["burst_rms_uv"] = float(amp)  # of the unit-RMS carrier (the sine: amp / sqrt 2)
            if burst_sine_hz > 0:
                # a sine of peak amplitude ``amp`` from onset for ``burst_s``: RMS amp / sqrt(2),
                # mean |x| 2 amp / pi, so iEMG = 2 amp burst_s / pi
                rec.update(
                    burst_rms_uv=float(amp / np.sqrt(2.0)),
                    burst_iemg_uv_s=float(2.0 * amp * burst_s / np.pi),
                    burst_duration_s=float(burst_s),
                )
            if k in catch_hold_s:
                rec["catch_s"] = catch_hold_s[k]
            if clonus_hz > 0 and clonus_beats:
                # exactly ``clonus_beats`` bursts, one period apart, from one period after the
                # reflex onset (the reflex burst itself, if shorter than a period, is beat 0)
                period = 1.0 / clonus_hz
                for kb in range(1, clonus_beats + 1):
                    b0 = int((t_on + kb * period) * emg_rate)
                    b1 = b0 + round(0.04 * emg_rate)
                    amp_env[b0:b1] = np.maximum(amp_env[b0:b1], 0.6 * amp)
            elif clonus_hz > 0 and clonus_s > 0:
                period = 1.0 / clonus_hz
                t_b = t_e[j1] + period * 0.5
                while t_b < t_e[j1] + clonus_s:
                    b0 = int(t_b * emg_rate)
                    b1 = b0 + round(0.04 * emg_rate)
                    amp_env[b0:b1] = np.maximum(amp_env[b0:b1], 0.6 * amp)
                    t_b += period
            if catch and catch_release:
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
    if catch and catch_release:
        # re-integrate the angle with the catch dips (velocity reduced, movement resumes)
        vel2 = vel - catch_profile
        angle = start_deg + np.concatenate([[0.0], np.cumsum(vel2)[:-1]]) / angle_rate
        # the stretch keeps its end angle: the examiner finishes the movement (hold shortens)
        for rec in truth:
            if rec["reflex"]:
                rec["onset_angle_deg"] = float(np.interp(rec["onset_s"], t_a, angle))
    if burst_sine_hz > 0:
        sine = np.sin(2 * np.pi * burst_sine_hz * t_e)
        carrier = np.where(amp_env > 0, sine, act_carrier)
        emg = emg + carrier * amp_env
    else:
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
