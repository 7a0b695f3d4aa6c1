"""Goniometer kinematics and stretch segmentation used by the stretch-reflex analysis.

Private helpers: the angle is smoothed with a zero-phase low-pass on each run of finite samples
(NaN gaps stay NaN, nothing is interpolated), differentiated to velocity and acceleration, and
cut into lengthening movements.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp.filters import apply_zero_phase, design_lowpass, padlen_for


def finite_runs(x: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges ``[a, b)`` of consecutive finite samples of ``x``."""
    finite = np.isfinite(x)
    if finite.all():
        return [(0, len(x))] if len(x) else []
    ok = finite.astype(np.int8)
    edges = np.diff(np.concatenate(([0], ok, [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def smooth_kinematics(
    angle_deg: np.ndarray, rate_hz: float, cutoff_hz: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Low-pass angle, velocity and acceleration, NaN where the input is NaN.

    Parameters
    ----------
    angle_deg : ndarray, shape (n,)
        Angle in degrees, NaN in gaps.
    rate_hz : float
        Sampling rate of the angle.
    cutoff_hz : float
        Corner of the zero-phase 4th-order Butterworth low-pass (2nd order run forwards and
        backwards).

    Returns
    -------
    angle, velocity, acceleration : ndarray, shape (n,)
        deg, deg/s, deg/s^2. Runs of finite samples too short to filter stay unfiltered.
    """
    sos = design_lowpass(min(cutoff_hz, 0.45 * rate_hz), rate_hz, 2)
    pad = padlen_for(sos)
    out = np.full(angle_deg.shape, np.nan)
    vel = np.full_like(out, np.nan)
    acc = np.full_like(out, np.nan)
    for a, b in finite_runs(angle_deg):
        seg = angle_deg[a:b].astype(np.float64)
        if b - a > pad:
            seg = apply_zero_phase(seg, sos)
        out[a:b] = seg
        if b - a >= 3:
            v = np.gradient(seg) * rate_hz
            vel[a:b] = v
            acc[a:b] = np.gradient(v) * rate_hz
    return out, vel, acc


@dataclass
class Movement:
    """One lengthening movement found in the goniometer signal (sample indices of the angle)."""

    start: int
    end: int
    n_pieces: int  # number of above-threshold velocity runs merged into this movement


def find_stretches(
    angle: np.ndarray,
    velocity: np.ndarray,
    rate_hz: float,
    *,
    on_velocity_deg_s: float,
    rest_velocity_deg_s: float,
    min_excursion_deg: float,
    merge_gap_s: float,
    max_backtrack_s: float = 1.0,
    smooth_velocity: np.ndarray | None = None,
) -> list[Movement]:
    """Lengthening movements: velocity above ``on_velocity_deg_s`` with enough excursion.

    Runs of ``velocity > on_velocity_deg_s`` closer than ``merge_gap_s`` are merged unless the
    angle went back (shortened) by more than 2 degrees between them. The start is moved back to
    the last sample at rest (``velocity <= rest_velocity_deg_s``) and the end forward to the
    largest angle before the velocity falls to rest. Movements with less than
    ``min_excursion_deg`` of lengthening are dropped (tremor, clonus, noise). The rest test
    uses ``smooth_velocity`` when given (a more heavily low-passed velocity, less noisy).
    """
    v = np.where(np.isfinite(velocity), velocity, 0.0)
    vr = (
        v if smooth_velocity is None else np.where(np.isfinite(smooth_velocity), smooth_velocity, 0)
    )
    up = (v > on_velocity_deg_s).astype(np.int8)
    edges = np.diff(np.concatenate(([0], up, [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    gap = round(merge_gap_s * rate_hz)
    merged: list[list[int]] = []
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        if merged and a - merged[-1][1] <= gap:
            prev_end = merged[-1][1] - 1
            between = angle[prev_end : a + 1]
            if np.all(np.isfinite(between)) and angle[prev_end] - np.min(between) <= 2.0:
                merged[-1][1] = b
                merged[-1][2] += 1
                continue
        merged.append([a, b, 1])
    back = round(max_backtrack_s * rate_hz)
    out: list[Movement] = []
    n = len(v)
    for a, b, pieces in merged:
        s = a
        lo = max(0, a - back)
        while s > lo and vr[s - 1] > rest_velocity_deg_s:
            s -= 1
        e = b
        hi = min(n, b + back)
        while e < hi and vr[e] > rest_velocity_deg_s:
            e += 1
        e = min(e, n - 1)
        seg = angle[s : e + 1]
        if not np.any(np.isfinite(seg)):
            continue
        e = s + int(np.nanargmax(seg))
        if out and s <= out[-1].end:
            s = out[-1].end + 1
            if s >= e:
                continue
        if angle[e] - np.nanmin(angle[s : e + 1]) < min_excursion_deg:
            continue
        out.append(Movement(s, e, pieces))
    return out
