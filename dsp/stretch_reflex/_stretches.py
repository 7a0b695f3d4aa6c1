"""Stage 3 of the stretch-reflex analysis: measure every stretch.

:func:`measure_stretches` reads, for each stretch found by the signal stage, its kinematics,
pre-stretch EMG, reflex onset (by every detector when the sensitivity is asked for), burst,
catch and release, clonus and velocity regularity, into a :class:`StretchRecord`; the exclusion
reasons that need no fit are set here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dsp.stretch_reflex._emg import burst_offset, clonus_episodes
from dsp.stretch_reflex._onsets import detector_names
from dsp.stretch_reflex._result import StretchRecord
from dsp.stretch_reflex._settings import StretchReflexSettings
from dsp.stretch_reflex._signals import Signals, _rms

#: Reasons recorded in ``StretchRecord.exclusion_reasons``.
REASON_GAP = "touches a gap (NaN samples)"
REASON_ACTIVE = "muscle active before stretch"
REASON_IRREGULAR = "irregular velocity profile"
REASON_NO_REFLEX = "no reflex"
REASON_OUTLIER = "DSRT far from the session's DSRT-velocity line (outlier)"


@dataclass(frozen=True)
class Stretches:
    """The per-stretch table and the onsets of every detector.

    Attributes
    ----------
    records : list of StretchRecord
        One per stretch, in time order (the fit stage adds outlier reasons and ``used_in_fit``).
    onsets : dict of str to list of int
        EMG sample index of each stretch's onset per detector (-1: none or not run).
    """

    records: list
    onsets: dict


def measure_stretches(sig: Signals, settings: StretchReflexSettings) -> Stretches:
    """Measure every stretch of ``sig.moves`` (see the module docstring)."""
    detectors = detector_names()
    detector, detector_sensitivity = settings.detector, settings.detector_sensitivity
    emg_rate, ang_rate = sig.emg_rate_hz, sig.angle_rate_hz
    moves, prompts, angle, x = sig.moves, sig.prompts, sig.angle, sig.x
    ang, vel, acc, vel_slow, vel_noise = sig.ang, sig.vel, sig.acc, sig.vel_slow, sig.vel_noise
    env, env20, rest, signals, at = sig.env, sig.env20, sig.rest, sig.signals, sig.at
    baseline_s, threshold_sd = settings.baseline_s, settings.threshold_sd
    active_factor, gain_tail_s = settings.active_factor, settings.gain_tail_s
    reflex_delay_s, irregular_fraction = settings.reflex_delay_s, settings.irregular_fraction
    catch_window_s, catch_drop_fraction = settings.catch_window_s, settings.catch_drop_fraction
    release_fraction = settings.release_fraction
    catch_residual_fraction = settings.catch_residual_fraction
    on_velocity_deg_s, clonus_min_beats = settings.on_velocity_deg_s, settings.clonus_min_beats
    nb = round(baseline_s * emg_rate)
    n_emg = len(x)
    records: list[StretchRecord] = []
    onsets: dict[str, list[int]] = {d: [] for d in detectors}
    for k, m in enumerate(moves):
        t0, t1 = m.start / ang_rate, m.end / ang_rate
        seg_v = vel[m.start : m.end + 1]
        rec = StretchRecord(
            index=k,
            start_s=t0,
            end_s=t1,
            start_angle_deg=float(ang[m.start]),
            end_angle_deg=float(ang[m.end]),
            peak_velocity_deg_s=float(np.nanmax(seg_v)),
        )
        if prompts is not None:
            rec.prompt_s = float(prompts[k])
        e0 = round(t0 * emg_rate)
        e1 = min(n_emg, round(t1 * emg_rate))
        next_start = (
            round(moves[k + 1].start / ang_rate * emg_rate) if k + 1 < len(moves) else n_emg
        )
        base = (max(0, e0 - nb), e0)
        search_stop = min(next_start, e1 + round(0.05 * emg_rate))
        search = (e0, max(e0 + 1, search_stop))
        a0 = max(0, m.start - round(baseline_s * ang_rate))
        touches_gap = (
            not np.all(np.isfinite(angle[a0 : m.end + 1]))
            or not np.all(np.isfinite(x[base[0] : search[1]]))
            or base[1] - base[0] < nb // 2
        )
        rec.pre_emg_rms_uv = _rms(x[base[0] : base[1]])
        if touches_gap:
            rec.exclusion_reasons.append(REASON_GAP)
        if math.isfinite(rest) and rec.pre_emg_rms_uv > active_factor * rest:
            rec.exclusion_reasons.append(REASON_ACTIVE)
        tail = min(next_start, e1 + round(gain_tail_s * emg_rate))
        rec.stretch_rms_uv = _rms(x[e0:tail])
        for name in detectors if detector_sensitivity else (detector,):
            onsets[name].append(-1 if touches_gap else signals.onset(name, base, search))
        on = onsets[detector][-1]
        rec.detector = detector
        if on < 0:
            rec.reflex_absent_up_to_deg = rec.end_angle_deg
            rec.exclusion_reasons.append(REASON_NO_REFLEX)
            ref_idx = m.end
        else:
            rec.reflex = True
            rec.onset_s = on / emg_rate
            rec.latency_s = rec.onset_s - t0
            t_dsrt = rec.onset_s - reflex_delay_s
            rec.dsrt_deg = at(ang, t_dsrt)
            rec.onset_velocity_deg_s = at(vel, t_dsrt)
            # reflex burst
            benv = env[base[0] : base[1]]
            level = float(np.mean(benv) + threshold_sd * np.std(benv))
            off = burst_offset(env, on, next_start, level, round(0.05 * emg_rate))
            rec.burst_duration_s = (off - on) / emg_rate
            burst = x[on:off]
            rec.burst_rms_uv = _rms(burst)
            rec.burst_iemg_uv_s = float(np.nansum(np.abs(burst)) / emg_rate)
            # catch: a deceleration interrupting the movement (released or not); catch time =
            # the largest deceleration after onset (up to the end of the catch when there is one)
            ia = int(min(m.end, max(m.start, math.ceil(rec.onset_s * ang_rate))))
            ref_idx = max(m.start, int(t_dsrt * ang_rate))
            if m.end - ia >= 2:
                v_after = vel[ia : m.end + 1]
                v_on = max(rec.onset_velocity_deg_s, 1e-9)
                caught, released, kd = _catch(
                    v_after,
                    max(1, round(catch_window_s * ang_rate)),
                    max(catch_drop_fraction * v_on, 5.0),
                    max(release_fraction * v_on, 5.0, 6.0 * vel_noise),
                    max(catch_residual_fraction * v_on, on_velocity_deg_s),
                    max(1, round(0.05 * ang_rate)),
                )
                rec.catch_detected, rec.release = caught, released
                stop = ia + kd if caught else m.end
                kc = ia + int(np.nanargmin(acc[ia : stop + 1]))
                rec.catch_s = kc / ang_rate
                rec.catch_angle_deg = float(ang[kc])
                rec.catch_deceleration_deg_s2 = float(-acc[kc])
                rec.onset_to_catch_s = rec.catch_s - rec.onset_s
            # clonus: rhythmic bursts from the onset until the next stretch or a gap
            stop = next_start
            nan_after = np.flatnonzero(~np.isfinite(x[on:next_start]))
            if len(nan_after):
                stop = on + int(nan_after[0])
            benv20 = env20[base[0] : base[1]]
            rec.clonus = clonus_episodes(
                env20,
                emg_rate,
                on,
                stop,
                float(np.std(benv20)),
                min_beats=clonus_min_beats,
            )
        # irregular velocity: a dip and recovery before the reflex (or in the whole stretch)
        v_pre = vel_slow[m.start : max(m.start + 1, min(ref_idx, m.end) + 1)]
        depth, _ = _dip_depth(v_pre[np.isfinite(v_pre)])
        if depth > max(irregular_fraction * rec.peak_velocity_deg_s, 5.0):
            rec.exclusion_reasons.append(REASON_IRREGULAR)
        records.append(rec)
    return Stretches(records, onsets)


def _dip_depth(v: np.ndarray, limit: int | None = None) -> tuple[float, int]:
    """Largest dip of ``v`` between two higher values (min of both running maxima minus v).

    Only dips whose lowest point lies before index ``limit`` count. Returns (depth, index).
    """
    if len(v) < 3:
        return 0.0, -1
    left = np.maximum.accumulate(v)
    right = np.maximum.accumulate(v[::-1])[::-1]
    depth = (np.minimum(left, right) - v)[:limit]
    k = int(np.argmax(depth))
    return float(depth[k]), k


def _catch(
    v: np.ndarray,
    limit: int,
    min_drop: float,
    min_rise: float,
    min_residual: float,
    window: int,
    ease: float = 0.25,
) -> tuple[bool, bool, int]:
    """Catch and release in the velocity after the reflex onset.

    The catch is a deceleration that interrupts the movement: within ``limit`` samples the
    velocity falls at least ``min_drop`` below its running maximum. It is told apart from the
    ordinary end of the stretch by what follows the fall:

    * **release**: within ``limit`` samples of reaching ``min_drop`` the velocity rises again by
      ``min_rise`` from its lowest point after the fall (Tardieu's "catch then release"); or
    * **catch without release**: the fall was abrupt (``min_drop`` lost within ``window``
      samples) and levels off before ``limit`` (the velocity lost over the next ``window``
      samples is at most ``ease`` x the steepest such loss since the fall began), while the limb
      keeps moving at ``min_residual`` or more for ``2 * window`` samples.

    At the end of a stretch the velocity keeps falling until the limb is nearly at rest, and a
    gentle slowing by the examiner is not abrupt: neither is a catch.

    Parameters
    ----------
    v : ndarray, shape (n,)
        Velocity in deg/s from the reflex onset to the stretch end.
    limit : int
        Catch window in samples: the fall must reach ``min_drop`` (and a catch without release
        must level off) before this index.
    min_drop, min_rise, min_residual : float
        In deg/s.
    window : int
        Samples over which a fall is judged abrupt or levelled (about 50 ms).
    ease : float
        Fraction of the steepest fall below which the fall has levelled off.

    Returns
    -------
    catch, release : bool
    k_end : int
        Index where the catch's fall ends (the velocity minimum of a released catch, the start
        of the slower movement otherwise); -1 without a catch. The catch time (maximal
        deceleration) lies before it.
    """
    n = len(v)
    if n < 3:
        return False, False, -1
    v = np.where(np.isfinite(v), v, -np.inf)
    runmax = np.maximum.accumulate(v)
    hit = np.flatnonzero((runmax - v)[:limit] >= min_drop)
    if not len(hit):
        return False, False, -1
    k1 = int(hit[0])
    after = v[k1 : k1 + limit]
    rise = after - np.minimum.accumulate(after)
    if np.max(rise) >= min_rise:  # released: the catch ends at the lowest velocity before
        kr = int(np.argmax(rise >= min_rise))
        return True, True, k1 + int(np.argmin(after[: kr + 1]))
    w = max(1, window)
    hold = 2 * w
    k0 = int(np.flatnonzero(v[: k1 + 1] >= runmax[k1])[-1])  # where the fall began
    if k0 >= n - hold:
        return False, False, -1
    fall = v[k0 : n - w] - v[k0 + w :]  # velocity lost over the next ``w`` samples
    steepest = np.maximum.accumulate(fall)[: n - hold - k0]
    k = np.arange(k0, n - hold)
    slowest = np.lib.stride_tricks.sliding_window_view(v, hold + 1).min(axis=1)[k0:]
    level = (
        (k >= k1)
        & (k < limit)
        & (fall[: len(k)] <= ease * steepest)
        & (steepest >= min_drop)
        & (slowest >= min_residual)
    )
    if not np.any(level):
        return False, False, -1
    return True, False, int(k[np.argmax(level)])
