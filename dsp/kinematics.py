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
    """``sign * (counts - offset_counts) * scale_deg`` as float64 (NaN stays NaN).

    ``sign`` is the session's ``stretch_direction_sign`` (+1 or -1).
    """
    arr = np.asarray(counts)
    if arr.dtype.kind not in "iuf":
        raise SignalError(f"counts must be numbers, got dtype {arr.dtype}")
    if sign not in (1, -1):
        raise SignalError(f"sign must be +1 or -1, got {sign!r}")
    scale = V.positive(abs(float(scale_deg)), "scale_deg") * math.copysign(1.0, float(scale_deg))
    return sign * (arr.astype(np.float64) - float(offset_counts)) * scale


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
        Polynomial order (2-4 typical; >= 2 for acceleration).

    Returns
    -------
    Kinematics
        Same values as ``scipy.signal.savgol_filter(..., mode="interp")`` with ``deriv`` 0, 1, 2,
        except that NaN propagates to every sample whose window touches it.
    """
    rate_hz = V.rate(rate_hz)
    x = V.one_channel(angle_deg, "angle_deg", allow_nan=True, min_samples=1)
    if not isinstance(polyorder, int | np.integer) or not 1 <= polyorder <= 6:
        raise SignalError(f"polyorder must be an integer from 1 to 6, got {polyorder!r}")
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


def segment_stretches(
    angle_deg,
    rate_hz,
    *,
    min_velocity_deg_s: float = 10.0,
    min_range_deg: float = 5.0,
    rest_fraction: float = 0.2,
    window_s: float = 0.05,
    direction: int = 0,
) -> list[Stretch]:
    """Split a goniometer recording into movements (stretches and returns).

    A movement is a run where the smoothed velocity keeps one sign and exceeds
    ``min_velocity_deg_s``, widened to where it falls to ``rest_fraction * min_velocity_deg_s``;
    it is kept when the angle changes by at least ``min_range_deg``. NaN (gaps) ends a movement.

    Parameters
    ----------
    angle_deg : array_like, (n_samples,)
        Angle in degrees (increasing = lengthening).
    rate_hz : float
        Sampling rate in Hz.
    min_velocity_deg_s, min_range_deg : float
        Detection thresholds.
    rest_fraction : float
        Hysteresis: the fraction of ``min_velocity_deg_s`` that bounds a movement.
    window_s : float
        Savitzky-Golay window for the velocity (:func:`angle_kinematics`).
    direction : int
        +1 keeps only stretches (angle increasing), -1 only returns, 0 both.

    Returns
    -------
    list of Stretch
        In time order.
    """
    if direction not in (-1, 0, 1):
        raise SignalError(f"direction must be +1, -1 or 0 (both), got {direction!r}")
    hi = V.positive(min_velocity_deg_s, "min_velocity_deg_s", "deg/s")
    rng_min = float(min_range_deg)
    if not math.isfinite(rng_min) or rng_min < 0:
        raise SignalError(f"min_range_deg must be >= 0, got {min_range_deg!r}")
    frac = float(rest_fraction)
    if not 0.0 <= frac < 1.0:
        raise SignalError(f"rest_fraction must be in [0, 1), got {rest_fraction!r}")
    k = angle_kinematics(angle_deg, rate_hz, window_s=window_s)
    starts, ends, signs = _velocity_runs(k.velocity_deg_s, hi, frac * hi)
    out = []
    for a, b, sgn in zip(starts, ends, signs, strict=True):
        if direction and sgn != direction:
            continue
        a0, a1 = k.angle_deg[a], k.angle_deg[b - 1]
        rng = abs(a1 - a0)
        if not rng >= rng_min:
            continue
        seg = k.velocity_deg_s[a:b]
        j = int(np.nanargmax(np.abs(seg)))
        out.append(
            Stretch(
                start=int(a),
                end=int(b),
                start_s=a / k.rate_hz,
                end_s=b / k.rate_hz,
                direction=int(sgn),
                peak_velocity_deg_s=float(seg[j]),
                range_deg=float(rng),
                start_angle_deg=float(a0),
                end_angle_deg=float(a1),
            )
        )
    return out
