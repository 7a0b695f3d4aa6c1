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


@njit
def _velocity_runs(v, high, low):
    """Runs where ``|v| > high`` with one sign, widened while the sign holds and ``|v| > low``.

    Returns (starts, ends, signs) as int64 arrays; NaN ends a run."""
    n = v.shape[0]
    starts = np.empty(n // 2 + 1, np.int64)
    ends = np.empty_like(starts)
    signs = np.empty_like(starts)
    k = 0
    i = 0
    while i < n:
        vi = v[i]
        if vi == vi and abs(vi) > high:
            sgn = 1 if vi > 0 else -1
            a = i
            while a > 0 and v[a - 1] == v[a - 1] and sgn * v[a - 1] > low:
                a -= 1
            b = i
            while b < n and v[b] == v[b] and sgn * v[b] > low:
                b += 1
            if k > 0 and signs[k - 1] == sgn and a <= ends[k - 1]:
                ends[k - 1] = max(ends[k - 1], b)
            else:
                starts[k] = a
                ends[k] = b
                signs[k] = sgn
                k += 1
            i = max(b, i + 1)
        else:
            i += 1
    return starts[:k].copy(), ends[:k].copy(), signs[:k].copy()


def _noise_sd_deg(angle_deg: np.ndarray) -> float:
    """Robust SD (deg) of white sensor noise on the angle, from its second differences.

    For white noise of SD s the second difference has SD ``s * sqrt(6)``; a smooth movement
    contributes almost nothing at goniometer rates, and the median ignores the rest.
    """
    d2 = np.diff(angle_deg, 2)
    d2 = d2[np.isfinite(d2)]
    if d2.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(d2 - np.median(d2))) / math.sqrt(6.0))


def _velocity_noise_gain(window_s: float, polyorder: int, rate_hz: float) -> float:
    """SD of the Savitzky-Golay velocity (deg/s) per degree of white angle noise."""
    window = max(round(window_s * rate_hz), polyorder + 2)
    window += 1 - window % 2
    h = scipy.signal.savgol_coeffs(window, polyorder, deriv=1, delta=1.0 / rate_hz)
    return float(np.sqrt(np.sum(h * h)))


@njit
def _widen_runs(v_slow, starts, ends, signs, rest):
    """Widen each run ``[starts[i], ends[i])`` while ``signs[i] * v_slow > rest`` (NaN stops).

    Returns (lows, highs) as int64 arrays, ``lows <= starts`` and ``highs >= ends``."""
    n = v_slow.shape[0]
    lows = starts.copy()
    highs = ends.copy()
    for i in range(starts.shape[0]):
        sgn = signs[i]
        a = starts[i]
        while a > 0 and v_slow[a - 1] == v_slow[a - 1] and sgn * v_slow[a - 1] > rest:
            a -= 1
        b = ends[i]
        while b < n and v_slow[b] == v_slow[b] and sgn * v_slow[b] > rest:
            b += 1
        lows[i] = min(a, starts[i])
        highs[i] = max(b, ends[i])
    return lows, highs


def _merge_runs(starts, ends, lows, highs, signs):
    """Join consecutive runs of one sign whose widened ranges touch: a slow movement whose
    velocity dips under the detection threshold stays one movement."""
    merged: list[list[int]] = []
    for a, b, lo, hi, sgn in zip(
        starts.tolist(), ends.tolist(), lows.tolist(), highs.tolist(), signs.tolist(), strict=True
    ):
        if merged and merged[-1][4] == sgn and lo <= merged[-1][3]:
            merged[-1][1] = b
            merged[-1][3] = max(hi, merged[-1][3])
        else:
            merged.append([a, b, lo, hi, sgn])
    return [tuple(m) for m in merged]


def _refine_bounds(angle, lo, a, b, hi, sgn, tol_deg):
    """Move ``[lo, hi)`` (where the smooth velocity left rest) to where the angle leaves rest
    and reaches its extreme: the last sample of ``[lo, a]`` within ``tol_deg`` of the angle at
    ``lo`` and the first sample of ``[b - 1, hi)`` within ``tol_deg`` of the extreme angle."""
    x = sgn * angle[lo:hi]
    start = lo + int(np.flatnonzero(x[: a - lo + 1] <= x[0] + tol_deg)[-1])
    top = np.nanmax(x[b - 1 - lo :])
    end = b - 1 + int(np.flatnonzero(x[b - 1 - lo :] >= top - tol_deg)[0])
    return start, end + 1


def segment_stretches(
    angle_deg,
    rate_hz,
    *,
    min_velocity_deg_s: float = 5.0,
    min_range_deg: float = 5.0,
    rest_velocity_deg_s: float = 0.5,
    window_s: float = 0.05,
    rest_window_s: float = 0.2,
    direction: int = 0,
) -> list[Stretch]:
    """Split a goniometer recording into movements (stretches and returns).

    A movement is found where the velocity (Savitzky-Golay, ``window_s``) keeps one sign and
    exceeds the detection threshold ``max(min_velocity_deg_s, 5 * velocity noise SD)``. Its
    bounds are widened while a more heavily smoothed velocity (``rest_window_s``) keeps that sign
    above the rest threshold ``max(rest_velocity_deg_s, 3 * its noise SD)``, then tightened by the
    angle: the **start** is the last sample still within a tolerance (``max(0.05 deg, 4 x angle
    noise SD)``) of the rest angle before the movement, the **end** the first sample within that
    tolerance of the movement's extreme angle. The noise SD is estimated from the signal itself
    (second differences, median absolute deviation), so thresholds follow the sensor.
    Movements that change the angle by less than ``min_range_deg`` are dropped; NaN (gaps) ends
    a movement.

    Accuracy against the virtual patient's ground truth (``tonuslab validate segmentation``,
    6 profiles x 50 seeds, ``docs/validation.md``): every stretch found; start angle within
    0.8 deg of the rest angle; range within 1.5 deg (3.2 deg under sustained clonus); peak
    velocity within 5.7 % except where a catch and release reshape the movement. A smooth
    (minimum-jerk) movement leaves rest so gradually that its start is found 4.4 % (median) to
    9 % (worst) of its duration after the true onset.

    Parameters
    ----------
    angle_deg : array_like, (n_samples,)
        Angle in degrees (increasing = lengthening).
    rate_hz : float
        Sampling rate in Hz.
    min_velocity_deg_s : float
        Lowest detection threshold (deg/s); raised automatically above the velocity noise.
    min_range_deg : float
        Smallest angle change (deg) kept as a movement.
    rest_velocity_deg_s : float
        Lowest rest threshold (deg/s) of the boundary search.
    window_s : float
        Savitzky-Golay window of the velocity used for detection and peak velocity
        (:func:`angle_kinematics`).
    rest_window_s : float
        Savitzky-Golay window of the velocity used for the boundary search (longer: less noise).
    direction : int
        +1 keeps only stretches (angle increasing), -1 only returns, 0 both.

    Returns
    -------
    list of Stretch
        In time order.
    """
    if direction not in (-1, 0, 1):
        raise SignalError(f"direction must be +1, -1 or 0 (both), got {direction!r}")
    v_on = V.positive(min_velocity_deg_s, "min_velocity_deg_s", "deg/s")
    v_rest = V.positive(rest_velocity_deg_s, "rest_velocity_deg_s", "deg/s")
    if v_rest >= v_on:
        raise SignalError(
            f"rest_velocity_deg_s ({v_rest:g}) must be below min_velocity_deg_s ({v_on:g})"
        )
    rng_min = V.non_negative(min_range_deg, "min_range_deg", "deg")
    k = angle_kinematics(angle_deg, rate_hz, window_s=window_s)
    slow_window_s = max(V.positive(rest_window_s, "rest_window_s", "s"), k.window_s)
    if len(k.angle_deg) < round(slow_window_s * k.rate_hz) + 1:
        slow_window_s = k.window_s
    k_slow = angle_kinematics(angle_deg, rate_hz, window_s=slow_window_s)
    sd_deg = _noise_sd_deg(V.one_channel(angle_deg, "angle_deg", allow_nan=True, min_samples=1))
    on = max(v_on, 5.0 * sd_deg * _velocity_noise_gain(k.window_s, 3, k.rate_hz))
    rest = max(v_rest, 3.0 * sd_deg * _velocity_noise_gain(k_slow.window_s, 3, k.rate_hz))
    tol_deg = max(0.05, 4.0 * sd_deg)
    starts, ends, signs = _velocity_runs(k.velocity_deg_s, on, on)
    lows, highs = _widen_runs(k_slow.velocity_deg_s, starts, ends, signs, rest)
    out = []
    for a, b, lo, hi, sgn in _merge_runs(starts, ends, lows, highs, signs):
        if direction and sgn != direction:
            continue
        s, e = _refine_bounds(k.angle_deg, lo, a, b, hi, sgn, tol_deg)
        a0, a1 = k.angle_deg[s], k.angle_deg[e - 1]
        rng = abs(a1 - a0)
        if not rng >= rng_min:
            continue
        # Long movements take their peak from the smoother velocity: the short window's noise
        # (about 1 deg/s) would otherwise inflate the peak of a slow stretch.
        vel = k_slow.velocity_deg_s if e - s >= 10 * slow_window_s * k.rate_hz else k.velocity_deg_s
        seg = vel[s:e]
        j = int(np.nanargmax(np.abs(seg)))
        out.append(
            Stretch(
                start=int(s),
                end=int(e),
                start_s=s / k.rate_hz,
                end_s=e / k.rate_hz,
                direction=int(sgn),
                peak_velocity_deg_s=float(seg[j]),
                range_deg=float(rng),
                start_angle_deg=float(a0),
                end_angle_deg=float(a1),
            )
        )
    return out
