"""Goniometer kinematics: calibration, smoothing and derivatives, segmentation into stretches.

Angles are in degrees, rates in hertz, velocities in deg/s, accelerations in deg/s^2. By the
project's convention (``docs/architecture.md``) the analysed angle increases as the tested muscle
lengthens, so a stretch has ``direction = +1``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import scipy.signal

from dsp import _validate as V
from dsp._jit import njit
from dsp.errors import SignalError
from dsp.filters import apply_zero_phase, design_lowpass, padlen_for

__all__ = [
    "AngleCalibration",
    "Kinematics",
    "Stretch",
    "angle_kinematics",
    "counts_to_degrees",
    "segment_stretches",
    "two_point_calibration",
]


# ------------------------------------------------------------------------------ calibration


@dataclass(frozen=True)
class AngleCalibration:
    """Linear goniometer calibration: ``angle_deg = (counts - offset_counts) * scale_deg``.

    Attributes
    ----------
    scale_deg : float
        Degrees per count.
    offset_counts : float
        Count reading at 0 degrees.
    """

    scale_deg: float
    offset_counts: float

    def to_degrees(self, counts, sign: int = 1) -> np.ndarray:
        """Convert counts (any shape) to degrees; see :func:`counts_to_degrees`."""
        return counts_to_degrees(counts, self.scale_deg, self.offset_counts, sign)


def two_point_calibration(counts_a, deg_a, counts_b, deg_b) -> AngleCalibration:
    """Calibration from two reference positions (e.g. a goniometer held at 0 and 90 degrees).

    Parameters
    ----------
    counts_a, counts_b : float
        Mean count readings at the two positions (must differ).
    deg_a, deg_b : float
        The true angles of the two positions in degrees (must differ).

    Returns
    -------
    AngleCalibration
    """
    try:
        ca, cb, da, db = (float(v) for v in (counts_a, counts_b, deg_a, deg_b))
    except (TypeError, ValueError):
        raise SignalError("calibration points must be numbers (counts and degrees)") from None
    if not all(math.isfinite(v) for v in (ca, cb, da, db)):
        raise SignalError("calibration points must be finite")
    if ca == cb or da == db:
        raise SignalError(
            "the two calibration positions must differ in counts and in degrees; "
            "hold the joint at two distinct, known angles"
        )
    scale = (db - da) / (cb - ca)
    return AngleCalibration(scale_deg=scale, offset_counts=ca - da / scale)


def counts_to_degrees(counts, scale_deg, offset_counts, sign: int = 1) -> np.ndarray:
    """``sign * (counts - offset_counts) * scale_deg`` as float64 (NaN counts stay NaN).

    Parameters
    ----------
    counts : array_like, any shape
        Goniometer readings in ADC counts.
    scale_deg : float
        Degrees per count, finite and non-zero (negative for a reversed sensor).
    offset_counts : float
        Count reading at 0 degrees, finite.
    sign : int
        The session's ``stretch_direction_sign`` (+1 or -1).

    Returns
    -------
    ndarray, float64, shape of ``counts``
        Angle in degrees.
    """
    arr = np.asarray(counts)
    if arr.dtype.kind not in "iuf":
        raise SignalError(f"counts must be numbers, got dtype {arr.dtype}")
    if sign not in (1, -1):
        raise SignalError(f"sign must be +1 or -1, got {sign!r}")
    scale = V.number(scale_deg, "scale_deg", "deg/count")
    if scale == 0.0:
        raise SignalError("scale_deg must be non-zero (degrees per count)")
    offset = V.number(offset_counts, "offset_counts", "counts")
    return sign * (arr.astype(np.float64) - offset) * scale


# ------------------------------------------------------------------------------ derivatives


@dataclass
class Kinematics:
    """Smoothed angle and its derivatives, all ``(n_samples,)`` float64.

    Attributes
    ----------
    angle_deg, velocity_deg_s, acceleration_deg_s2 : ndarray
        NaN wherever the smoothing window touches a NaN input sample.
    rate_hz : float
    window_s : float
        Savitzky-Golay window actually used (odd number of samples / rate).
    polyorder : int
    """

    angle_deg: np.ndarray
    velocity_deg_s: np.ndarray
    acceleration_deg_s2: np.ndarray
    rate_hz: float
    window_s: float
    polyorder: int


@njit
def _convolve_valid(x, h, out):
    """``out[i] = sum_k h[k] * x[i + half - k]`` for the interior (symmetric-window FIR);
    NaN propagates. ``out`` must be pre-filled; edges (``half`` samples) are left untouched."""
    n = x.shape[0]
    m = h.shape[0]
    half = m // 2
    for i in range(half, n - half):
        acc = 0.0
        for k in range(m):
            acc += h[k] * x[i + half - k]
        out[i] = acc


def _edge_fit(x, window, polyorder, deriv, delta, out, left: bool):
    seg = x[:window] if left else x[-window:]
    t = np.arange(window, dtype=float)
    half = window // 2
    idx = slice(0, half) if left else slice(window - half, window)
    if not np.isfinite(seg).all():
        (out[:half] if left else out[-half:])[...] = np.nan
        return
    poly = np.polyfit(t, seg, polyorder)
    if deriv:
        poly = np.polyder(poly, deriv)
    vals = np.polyval(poly, t[idx]) / delta**deriv
    if left:
        out[:half] = vals
    else:
        out[-half:] = vals


def _savgol(x, window, polyorder, deriv, rate_hz):
    delta = 1.0 / rate_hz
    h = scipy.signal.savgol_coeffs(window, polyorder, deriv=deriv, delta=delta, use="conv")
    out = np.empty_like(x)
    _convolve_valid(x, np.ascontiguousarray(h), out)
    _edge_fit(x, window, polyorder, deriv, delta, out, True)
    _edge_fit(x, window, polyorder, deriv, delta, out, False)
    return out


def angle_kinematics(angle_deg, rate_hz, *, window_s: float = 0.05, polyorder: int = 3):
    """Smoothed angle, angular velocity and acceleration without phase shift (Savitzky-Golay).

    Parameters
    ----------
    angle_deg : array_like, (n_samples,) or (n_samples, 1)
        Joint angle in degrees; NaN marks gap samples.
    rate_hz : float
        Sampling rate in Hz.
    window_s : float
        Smoothing window (rounded to an odd number of samples, at least ``polyorder + 2``).
    polyorder : int
        Polynomial order, 2 to 6 (2-4 typical). At least 2 because the acceleration is
        returned: a straight-line fit (order 1) has no second derivative (it would be zero
        everywhere).

    Returns
    -------
    Kinematics
        Same values as ``scipy.signal.savgol_filter(..., mode="interp")`` with ``deriv`` 0, 1, 2,
        except that NaN propagates to every sample whose window touches it.
    """
    rate_hz = V.rate(rate_hz)
    x = V.one_channel(angle_deg, "angle_deg", allow_nan=True, min_samples=1)
    if (
        not isinstance(polyorder, int | np.integer)
        or isinstance(polyorder, bool)
        or not 2 <= polyorder <= 6
    ):
        raise SignalError(
            f"polyorder must be an integer from 2 to 6 (the acceleration needs a second-order "
            f"fit), got {polyorder!r}"
        )
    window = max(round(V.positive(window_s, "window_s", "s") * rate_hz), polyorder + 2)
    window += 1 - window % 2
    if x.size < window:
        raise SignalError(
            f"angle_deg has {x.size} samples, fewer than the {window}-sample smoothing window"
        )
    if np.isinf(x).any():
        raise SignalError("angle_deg contains Inf; use NaN for missing samples")
    return Kinematics(
        angle_deg=_savgol(x, window, polyorder, 0, rate_hz),
        velocity_deg_s=_savgol(x, window, polyorder, 1, rate_hz),
        acceleration_deg_s2=_savgol(x, window, polyorder, 2, rate_hz),
        rate_hz=rate_hz,
        window_s=window / rate_hz,
        polyorder=int(polyorder),
    )


# ----------------------------------------------------------------------------- segmentation


@dataclass
class Stretch:
    """One movement of the joint in one direction.

    Attributes
    ----------
    start, end : int
        Sample indices, ``[start, end)``.
    start_s, end_s : float
        The same in seconds from the first sample.
    direction : int
        +1 when the angle increases (the tested muscle lengthens), -1 when it decreases.
    peak_velocity_deg_s : float
        Signed velocity of largest magnitude.
    range_deg : float
        ``|angle[end - 1] - angle[start]|`` of the smoothed angle.
    start_angle_deg, end_angle_deg : float
        Smoothed angle at ``start`` and ``end - 1``.
    """

    start: int
    end: int
    start_s: float
    end_s: float
    direction: int
    peak_velocity_deg_s: float
    range_deg: float
    start_angle_deg: float
    end_angle_deg: float

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)


# the stretch-reflex analysis's segmentation, shared (dsp.stretch_reflex imports it)
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


def segment_stretches(
    angle_deg,
    rate_hz,
    *,
    min_velocity_deg_s: float = 5.0,
    min_range_deg: float = 15.0,
    rest_velocity_deg_s: float = 1.0,
    angle_cutoff_hz: float = 20.0,
    rest_cutoff_hz: float = 10.0,
    merge_gap_s: float = 0.25,
    max_backtrack_s: float = 30.0,
    direction: int = 0,
) -> list[Stretch]:
    """Split a goniometer recording into movements: the stretch-reflex analysis's segmenter.

    This is the segmenter :func:`dsp.stretch_reflex.analyze_stretch_reflex` uses (its defaults
    are the analysis's), so what is validated here is what the analysis sees. The angle is
    low-passed (zero-phase, ``angle_cutoff_hz``) on each run of finite samples and
    differentiated. A movement is a run of velocity above ``min_velocity_deg_s`` in one
    direction; runs closer than ``merge_gap_s`` are merged unless the angle went back by more
    than 2 degrees between them; the start moves back to the last sample at rest (a
    ``rest_cutoff_hz`` low-passed velocity at or below ``rest_velocity_deg_s``) and the end
    forward to the extreme angle before the velocity falls to rest. Movements that change the
    angle by less than ``min_range_deg`` are dropped (tremor, clonus beats, noise). With
    ``direction=0`` both directions are searched and a movement never overlaps the previous
    one. Accuracy against the simulator and on data it did not make: ``docs/validation.md``
    (``tonuslab validate segmentation``).

    Parameters
    ----------
    angle_deg : array_like, (n_samples,)
        Angle in degrees (increasing = lengthening), NaN in gaps.
    rate_hz : float
        Sampling rate in Hz.
    min_velocity_deg_s : float
        Detection threshold (deg/s).
    min_range_deg : float
        Smallest angle change (deg) kept as a movement.
    rest_velocity_deg_s : float
        Rest threshold (deg/s) of the boundary search; below ``min_velocity_deg_s``.
    angle_cutoff_hz, rest_cutoff_hz : float
        Low-pass corners of the angle (detection, peak velocity) and of the rest velocity.
    merge_gap_s : float
        Velocity runs closer than this are one movement (a hesitation).
    max_backtrack_s : float
        How far the start and the end may move from the velocity run (s).
    direction : int
        +1 keeps only stretches (angle increasing), -1 only returns, 0 both.

    Returns
    -------
    list of Stretch
        In time order, never overlapping.
    """
    if direction not in (-1, 0, 1):
        raise SignalError(f"direction must be +1, -1 or 0 (both), got {direction!r}")
    rate = V.rate(rate_hz)
    x = V.one_channel(angle_deg, "angle_deg", allow_nan=True, min_samples=1)
    v_on = V.positive(min_velocity_deg_s, "min_velocity_deg_s", "deg/s")
    v_rest = V.positive(rest_velocity_deg_s, "rest_velocity_deg_s", "deg/s")
    if v_rest >= v_on:
        raise SignalError(
            f"rest_velocity_deg_s ({v_rest:g}) must be below min_velocity_deg_s ({v_on:g})"
        )
    rng_min = V.non_negative(min_range_deg, "min_range_deg", "deg")
    cut = V.positive(angle_cutoff_hz, "angle_cutoff_hz", "Hz")
    cut_rest = V.positive(rest_cutoff_hz, "rest_cutoff_hz", "Hz")
    gap_s = V.non_negative(merge_gap_s, "merge_gap_s", "s")
    back_s = V.non_negative(max_backtrack_s, "max_backtrack_s", "s")
    ang, vel, _ = smooth_kinematics(x, rate, cut)
    vel_rest = smooth_kinematics(x, rate, cut_rest)[1]
    found: list[Stretch] = []
    for sgn in (1, -1):
        if direction and sgn != direction:
            continue
        moves = find_stretches(
            sgn * ang, sgn * vel, rate, on_velocity_deg_s=v_on, rest_velocity_deg_s=v_rest,
            min_excursion_deg=rng_min, merge_gap_s=gap_s, max_backtrack_s=back_s,
            smooth_velocity=sgn * vel_rest,
        )  # fmt: skip
        for m in moves:
            found.append(_stretch(ang, vel, rate, m.start, m.end + 1, sgn))
    found.sort(key=lambda st: st.start)
    out: list[Stretch] = []
    for st in found:  # a return's backtracked start may reach into the stretch before it
        if out and st.start < out[-1].end:
            if st.end - out[-1].end < 2:
                continue
            st = _stretch(ang, vel, rate, out[-1].end, st.end, st.direction)
        out.append(st)
    return out


def _stretch(ang, vel, rate: float, s: int, e: int, sgn: int) -> Stretch:
    seg = vel[s:e]
    j = int(np.nanargmax(np.abs(seg))) if np.any(np.isfinite(seg)) else 0
    return Stretch(
        start=int(s),
        end=int(e),
        start_s=s / rate,
        end_s=e / rate,
        direction=int(sgn),
        peak_velocity_deg_s=float(seg[j]) if seg.size else float("nan"),
        range_deg=float(abs(ang[e - 1] - ang[s])),
        start_angle_deg=float(ang[s]),
        end_angle_deg=float(ang[e - 1]),
    )
