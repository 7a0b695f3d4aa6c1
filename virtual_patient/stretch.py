"""Passive stretches and the Feldman stretch-reflex model (onset, catch, clonus).

A stretch is planned by the examiner (bell-shaped or manual-looking), the reflex is triggered
when the angle passes DSRT(w) = lambda - mu * w, i.e. when ``angle + mu * w`` first reaches
``lambda`` (angle increasing = muscle lengthening), EMG starts ``reflex_delay_s`` later, and a
catch (time-warp of the planned trajectory) and clonus may follow. Each stretch is computed once
on a dense internal grid (:data:`GRID_RATE_HZ`) and sampled by linear interpolation, so the
model's trajectory *is* the piecewise-linear interpolant of that grid and the truth values are
exact for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from .errors import ProgramError
from .profiles import Profile

__all__ = [
    "GRID_RATE_HZ",
    "StretchSpec",
    "planned_duration_s",
    "tardieu_grade",
    "tardieu_summary",
    "tsrt_protocol",
]

GRID_RATE_HZ = 4000.0
_PAD_S = 0.6  # rest appended to every stretch so delayed EMG and release tails fit


@dataclass(frozen=True)
class StretchSpec:
    """One planned passive stretch.

    Parameters
    ----------
    start_s : float
        Start of the movement (s from the start of the session).
    peak_velocity_deg_s : float
        Planned peak angular velocity (deg/s); a manual stretch deviates from it (the truth
        records the achieved peak).
    end_deg : float or None
        Target angle (deg, analysed convention); None: the profile's ``range_max_deg``.
    hold_s : float
        Hold at the end position before the return (s).
    return_velocity_deg_s : float
        Peak velocity of the return to the rest angle (deg/s).
    shape : {"bell", "manual"}
        Minimum-jerk bell profile, or manual-looking: uneven velocity, peak velocity off by a
        few percent, small overshoot then settling.
    overshoot_deg : float or None
        Overshoot of a manual stretch (deg); None: drawn around 3 deg.
    """

    start_s: float
    peak_velocity_deg_s: float
    end_deg: float | None = None
    hold_s: float = 1.0
    return_velocity_deg_s: float = 90.0
    shape: str = "bell"
    overshoot_deg: float | None = None

    def to_dict(self) -> dict:
        return {
            "start_s": self.start_s,
            "peak_velocity_deg_s": self.peak_velocity_deg_s,
            "end_deg": self.end_deg,
            "hold_s": self.hold_s,
            "return_velocity_deg_s": self.return_velocity_deg_s,
            "shape": self.shape,
            "overshoot_deg": self.overshoot_deg,
        }


#: Longest stretch (movement, hold, return and rest pad, :func:`planned_duration_s`) the
#: simulator draws, s. Its grid arrays are allocated whole (``GRID_RATE_HZ``), so this bounds
#: the memory one stretch can take (about 8 arrays x 4000 x 120 s x 8 bytes = 31 MB); a
#: prompt asking for 0.001 deg/s (7.5 GiB before) is refused instead.
MAX_STRETCH_S = 120.0


def check_spec(spec: StretchSpec, profile: Profile) -> None:
    """Refuse a stretch the simulator cannot draw in bounded memory and time.

    Raises
    ------
    ProgramError
        A velocity, hold, end angle or overshoot that is not a finite number (NaN, inf, None,
        a string), a velocity <= 0, a negative hold, an unknown shape, or a stretch longer than
        :data:`MAX_STRETCH_S`.
    """
    for name in ("peak_velocity_deg_s", "return_velocity_deg_s", "hold_s", "end_deg",
                 "overshoot_deg"):  # fmt: skip
        value = getattr(spec, name)
        if value is None and name in ("end_deg", "overshoot_deg"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ProgramError(f"stretch {name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ProgramError(f"stretch {name}={value!r} is not a finite number")
    if spec.peak_velocity_deg_s <= 0 or spec.return_velocity_deg_s <= 0:
        raise ProgramError("stretch velocities must be > 0 deg/s")
    if spec.hold_s < 0:
        raise ProgramError(f"stretch hold_s={spec.hold_s!r} must be >= 0 s")
    if spec.shape not in ("bell", "manual"):
        raise ProgramError(f"stretch shape must be 'bell' or 'manual', got {spec.shape!r}")
    duration = planned_duration_s(spec, profile)
    if not duration <= MAX_STRETCH_S:
        raise ProgramError(
            f"a stretch of {duration:.0f} s (velocity {spec.peak_velocity_deg_s:g} deg/s, hold "
            f"{spec.hold_s:g} s) is longer than the simulator's {MAX_STRETCH_S:g} s"
        )


def planned_duration_s(spec: StretchSpec, profile: Profile) -> float:
    """Upper bound of the time a stretch occupies (movement, hold, return, pad), in s."""
    start = profile.rest_angle_deg
    end = profile.range_max_deg if spec.end_deg is None else spec.end_deg
    d = abs(end - start) + 8.0
    # a manual stretch can take up to about 1.52x the bell duration (checked on 3000 seeds)
    t_out = 1.875 * d / spec.peak_velocity_deg_s * (1.6 if spec.shape == "manual" else 1.0)
    t_back = 1.875 * d / spec.return_velocity_deg_s
    catch = profile.catch_duration_s
    return t_out + 0.3 + spec.hold_s + t_back + catch + _PAD_S


def tsrt_protocol(
    profile: Profile,
    *,
    velocities_deg_s: tuple[float, ...] = (50.0, 100.0, 175.0, 250.0, 350.0),
    n_per_level: int = 4,
    n_slow: int = 2,
    slow_velocity_deg_s: float = 10.0,
    rest_s: float = 3.0,
    hold_s: float = 1.0,
    shape: str = "manual",
    start_s: float = 2.0,
) -> list[StretchSpec]:
    """A TSRT session: slow stretches for the passive range, then stretches at increasing
    velocity levels (Calota 2008; increasing order after Marques 2018).

    Returns
    -------
    list of StretchSpec
        ``n_slow + n_per_level * len(velocities_deg_s)`` stretches, separated by ``rest_s``.
    """
    if n_per_level < 1 or not velocities_deg_s:
        raise ProgramError("tsrt_protocol needs at least one velocity level and one stretch")
    plan = [slow_velocity_deg_s] * n_slow + [
        v for v in sorted(velocities_deg_s) for _ in range(n_per_level)
    ]
    specs = []
    t = start_s
    for i, v in enumerate(plan):
        spec = StretchSpec(
            start_s=round(t, 6),
            peak_velocity_deg_s=float(v),
            hold_s=hold_s,
            shape="bell" if i < n_slow else shape,
        )
        specs.append(spec)
        t += planned_duration_s(spec, profile) + rest_s
    return specs


def _min_jerk(n: int) -> np.ndarray:
    """Normalised minimum-jerk position 0..1 on n points spanning [0, 1]."""
    s = np.linspace(0.0, 1.0, n)
    return s**3 * (10.0 - 15.0 * s + 6.0 * s**2)


def _move(a: float, b: float, peak_w: float, rng: np.random.Generator | None, ripple: float):
    """Samples (grid rate) of a movement from a to b with peak |velocity| about peak_w."""
    fs = GRID_RATE_HZ
    d = abs(b - a)
    if d < 1e-9:
        return np.array([a])
    t_move = 1.875 * d / peak_w
    n = max(math.ceil(t_move * fs) + 1, 3)
    if rng is None or ripple == 0:
        return a + (b - a) * _min_jerk(n)
    # uneven velocity: modulate the bell velocity with a smooth random ripple, renormalise
    s = np.linspace(0.0, 1.0, n)
    v = 30.0 * s**2 * (1.0 - s) ** 2
    k = np.arange(1, 4)
    amp = rng.normal(0.0, ripple, size=3) / k
    phase = rng.uniform(0.0, 2 * np.pi, size=3)
    mod = 1.0 + (amp[None, :] * np.sin(2 * np.pi * k[None, :] * s[:, None] + phase)).sum(axis=1)
    v = v * np.clip(mod, 0.2, None)
    pos = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]))])
    pos /= pos[-1]
    # keep the achieved peak velocity at about peak_w
    peak_norm = np.max(np.diff(pos)) * (n - 1)  # peak of d(pos)/d(s), 1.875 for a bell
    n2 = max(round((n - 1) * peak_norm / 1.875) + 1, 3)
    pos = np.interp(np.linspace(0.0, 1.0, n2), s, pos)
    return a + (b - a) * pos


class StretchEpisode:
    """One simulated stretch on the dense grid, with its reflex, catch and clonus.

    Attributes (grid arrays, index i at time ``t0_s + i / GRID_RATE_HZ``): ``angle_deg``
    (true joint angle, incl. clonus oscillation), ``velocity_deg_s``, ``accel_deg_s2``,
    ``envelope_uv`` (RMS of the tested muscle's reflex EMG), and ``truth`` (dict).
    """

    def __init__(
        self, spec: StretchSpec, t0_s: float, profile: Profile, rng: np.random.Generator, index: int
    ) -> None:
        p = profile
        fs = GRID_RATE_HZ
        dt = 1.0 / fs
        check_spec(spec, profile)  # before anything is allocated
        self.t0_s = float(t0_s)
        if not math.isfinite(self.t0_s):
            raise ProgramError(f"stretch start {t0_s!r} s is not a finite number")
        start = p.rest_angle_deg
        end = p.range_max_deg if spec.end_deg is None else float(spec.end_deg)
        if not start < end <= p.range_max_deg + 1e-9:
            raise ProgramError(
                f"stretch end {end} deg must lie above the rest angle {start} and within the "
                f"passive range (max {p.range_max_deg} deg)"
            )
        manual = spec.shape == "manual"
        w_target = spec.peak_velocity_deg_s
        if manual:
            w_target *= float(np.clip(1.0 + 0.08 * rng.standard_normal(), 0.8, 1.2))
            over = 3.0 * float(np.exp(0.3 * rng.standard_normal()))
            if spec.overshoot_deg is not None:
                over = float(spec.overshoot_deg)
            over = max(0.0, min(over, p.range_max_deg - end + 4.0))
            out = _move(start, end + over, w_target, rng, 0.15)
            settle = _move(end + over, end, 40.0, None, 0.0)[1:] if over > 0 else np.array([])
        else:
            out = _move(start, end, w_target, None, 0.0)
            settle = np.array([])
        n_hold = round(spec.hold_s * fs)
        back = _move(end, start, spec.return_velocity_deg_s, None, 0.0)[1:]
        n_pad = round((_PAD_S + p.catch_duration_s) * fs)
        plan = np.concatenate(
            [out, settle, np.full(n_hold, end), back, np.full(n_pad, start)]
        ).astype(np.float64)
        i_return = len(out) + len(settle) + n_hold  # first index of the return movement
        n = len(plan)
        t = np.arange(n) * dt
        w_plan = np.gradient(plan, dt)

        truth: dict = {
            "index": index,
            "start_s": self.t0_s,
            "movement_end_s": self.t0_s + (len(out) + len(settle) - 1) * dt,
            "return_start_s": self.t0_s + i_return * dt,
            "end_s": self.t0_s + (i_return + len(back)) * dt,
            "shape": spec.shape,
            "planned_peak_velocity_deg_s": float(spec.peak_velocity_deg_s),
            "peak_velocity_deg_s": None,
            "start_deg": start,
            "end_deg": end,
            "max_angle_deg": None,
            "reflex": False,
            "threshold_crossing_s": None,
            "dsrt_deg": None,
            "dsrt_velocity_deg_s": None,
            "emg_onset_s": None,
            "angle_at_emg_onset_deg": None,
            "velocity_at_emg_onset_deg_s": None,
            "catch": None,
            "clonus": None,
        }

        # --- reflex threshold crossing: first time angle + mu*w reaches lambda (before return)
        x = plan + p.mu_s * w_plan
        above = x[:i_return] >= p.lambda_deg
        crossing = None
        if above.any():
            i = int(np.argmax(above))
            if i == 0:
                crossing = 0.0  # threshold below the rest angle: reflex at movement start
            else:
                frac = (p.lambda_deg - x[i - 1]) / (x[i] - x[i - 1])
                crossing = float((i - 1 + frac) * dt)

        # --- catch: time-warp of the plan after the EMG onset
        angle = plan
        w = w_plan
        catch_truth = None
        if crossing is not None:
            ts = crossing + p.reflex_delay_s + p.catch_delay_s
            w_ts = float(np.interp(ts, t, w_plan))
            if p.catch_depth > 0 and w_ts >= p.catch_min_velocity_deg_s and ts < i_return * dt:
                dur = p.catch_duration_s
                u = np.clip((t - ts) / dur, 0.0, 1.0)
                bump = np.sin(np.pi * u) ** 2
                rate = 1.0 - p.catch_depth * bump
                tau = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]))]) * dt
                angle = np.interp(tau, t, plan)
                w = np.gradient(angle, dt)
                acc = np.gradient(w, dt)
                win = (t >= ts) & (t <= ts + dur)
                j = int(np.flatnonzero(win)[np.argmin(acc[win])])
                # the warp delays every later phase: move the plan's phase times and the
                # return index to where the warped trajectory actually reaches them
                for key in ("movement_end_s", "return_start_s", "end_s"):
                    rel = truth[key] - self.t0_s
                    truth[key] = self.t0_s + float(np.interp(rel, tau, t))
                i_return = min(round((truth["return_start_s"] - self.t0_s) * fs), n - 1)
                catch_truth = {
                    "resistance_start_s": self.t0_s + ts,
                    "time_s": self.t0_s + float(t[j]),
                    "angle_deg": float(angle[j]),
                    "deceleration_deg_s2": float(-acc[j]),
                    "velocity_before_deg_s": float(np.interp(ts, t, w)),
                    "min_velocity_deg_s": float(np.min(w[win])),
                    "release_s": self.t0_s + ts + dur,
                }

        # --- reflex EMG envelope: Feldman activation of the delayed (angle + mu*w - lambda):
        # a phasic onset step that adapts from the onset, plus a graded part proportional to
        # the excess that adapts only once the lengthening has stopped (the hold)
        nd = round(p.reflex_delay_s * fs)
        xa = angle + p.mu_s * w
        xd = np.concatenate([np.full(nd, xa[0]), xa[: n - nd]]) if nd else xa
        excess = xd - p.lambda_deg
        active = excess > 0
        active[i_return + nd :] = False  # shortening: no stretch reflex on the return
        env = np.zeros(n)
        clonus_truth = None
        osc = np.zeros(n)
        if crossing is not None:
            t_on = float(crossing + p.reflex_delay_s)
            since = np.maximum(t - t_on, 0.0)
            t_stop = truth["movement_end_s"] - self.t0_s + p.reflex_delay_s
            held = np.maximum(t - max(t_stop, t_on), 0.0)
            f = p.reflex_tonic_fraction
            adapt = f + (1 - f) * np.exp(-since / p.reflex_adaptation_s)
            adapt_held = f + (1 - f) * np.exp(-held / p.reflex_adaptation_s)
            ramp = np.clip(since / max(p.reflex_rise_s, dt), 0.0, 1.0)
            drive = p.reflex_onset_uv * adapt + p.reflex_gain_uv_per_deg * excess * adapt_held
            env = np.where(active, drive * ramp, 0.0)
            # release: instantaneous attack, exponential decay
            a = math.exp(-dt / max(p.reflex_release_s, dt))
            env = np.maximum(env, lfilter([1 - a], [1, -a], env))
            env[t < t_on] = 0.0
            w_c = float(np.interp(crossing, t, w))
            truth.update(
                reflex=True,
                threshold_crossing_s=self.t0_s + crossing,
                dsrt_deg=float(np.interp(crossing, t, angle)),
                dsrt_velocity_deg_s=w_c,
                emg_onset_s=self.t0_s + t_on,
                angle_at_emg_onset_deg=float(np.interp(t_on, t, angle)),
                velocity_at_emg_onset_deg_s=float(np.interp(t_on, t, w)),
            )
            w_peak = float(np.max(w_plan[:i_return]))
            if p.clonus_frequency_hz > 0 and w_peak >= p.clonus_min_velocity_deg_s:
                f = p.clonus_frequency_hz
                t_stop = min(t_on + 1.0 / f + p.clonus_duration_s, i_return * dt)
                times = []
                amps = []
                k = 0
                while True:
                    tk = t_on + (k + 1) / f + p.clonus_jitter_s * rng.standard_normal()
                    if tk >= t_stop:
                        break
                    elapsed = tk - t_on - 1.0 / f
                    if p.clonus_sustained:
                        ak = 1.0
                    else:
                        ak = math.exp(-elapsed / max(p.clonus_duration_s / 3.0, 1e-3))
                    times.append(tk)
                    amps.append(ak)
                    k += 1
                if times:
                    tk = np.asarray(times)
                    ak = np.asarray(amps)
                    sd = p.clonus_burst_sd_s
                    for tb, ab in zip(tk, ak, strict=True):
                        lo = max(int((tb - 4 * sd) * fs), 0)
                        hi = min(int((tb + 4 * sd) * fs) + 1, n)
                        seg = t[lo:hi] - tb
                        env[lo:hi] += p.clonus_burst_uv * ab * np.exp(-0.5 * (seg / sd) ** 2)
                        # muscle twitch ~40 ms after each burst shortens the muscle briefly
                        lo2 = max(int((tb + 0.04 - 0.16) * fs), 0)
                        hi2 = min(int((tb + 0.04 + 0.16) * fs) + 1, n)
                        seg2 = t[lo2:hi2] - tb - 0.04
                        osc[lo2:hi2] -= p.clonus_angle_deg * ab * np.exp(-0.5 * (seg2 / 0.04) ** 2)
                    clonus_truth = {
                        "start_s": self.t0_s + float(tk[0]),
                        "end_s": self.t0_s + float(tk[-1]),
                        "duration_s": float(tk[-1] - tk[0]),
                        "frequency_hz": f,
                        "n_bursts": len(tk),
                        "burst_times_s": [self.t0_s + float(v) for v in tk],
                        "burst_relative_amplitude": [float(v) for v in ak],
                        "sustained": bool(p.clonus_sustained),
                    }
        truth["catch"] = catch_truth
        truth["clonus"] = clonus_truth
        # what this stretch shows on the Tardieu quality scale
        if clonus_truth is not None:
            grade = 4 if clonus_truth["duration_s"] >= 10.0 else 3
        elif catch_truth is not None:
            grade = 2
        else:
            grade = 1 if crossing is not None else 0
        truth["tardieu_grade"] = grade
        truth["peak_velocity_deg_s"] = float(np.max(w[:i_return]))
        truth["max_angle_deg"] = float(np.max(angle))

        self.angle_deg = angle + osc
        self.velocity_deg_s = w
        self.accel_deg_s2 = np.gradient(w, dt)
        self.envelope_uv = env
        self.truth = truth
        self.end_s = self.t0_s + (n - 1) * dt
        self.n = n

    def sample(self, grid: np.ndarray, t_s: np.ndarray) -> np.ndarray:
        """Linear interpolation of a grid array at absolute times (0 outside the stretch)."""
        return np.interp((t_s - self.t0_s) * GRID_RATE_HZ, np.arange(self.n), grid, 0.0, 0.0)


def tardieu_grade(profile: Profile) -> int:
    """Tardieu quality grade of the profile: what one bell stretch over the whole passive range
    at ``tardieu_v3_deg_s`` ("as fast as possible"), held 12 s, shows in this model.

    0 no reflex, 1 EMG without catch, 2 catch then release, 3 clonus < 10 s, 4 clonus >= 10 s
    (grade 5, an immovable joint, is not modelled).
    """
    return tardieu_summary(profile)["grade"]


def tardieu_summary(profile: Profile) -> dict:
    """Tardieu truth of the profile from one simulated V3 bell stretch (see
    :func:`tardieu_grade`): ``grade``, ``r1_deg`` (catch angle at V3, None without a catch),
    ``r2_deg`` (end of the slow passive range = ``range_max_deg``) and ``r2_minus_r1_deg``."""
    hold = max(12.0, profile.clonus_duration_s + 2.0)
    spec = StretchSpec(0.0, profile.tardieu_v3_deg_s, hold_s=hold)
    truth = StretchEpisode(spec, 0.0, profile, np.random.default_rng(0), 0).truth
    r1 = truth["catch"]["angle_deg"] if truth["catch"] else None
    r2 = float(profile.range_max_deg)
    return {
        "grade": int(truth["tardieu_grade"]),
        "r1_deg": r1,
        "r2_deg": r2,
        "r2_minus_r1_deg": None if r1 is None else r2 - r1,
    }
