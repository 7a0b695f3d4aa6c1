"""Input validation at dsp's public boundary (one-line :class:`dsp.SignalError` messages)."""

from __future__ import annotations

import math

import numpy as np

from dsp.errors import SignalError


def rate(rate_hz, name: str = "rate_hz") -> float:
    """Check a sampling rate: a finite number > 0, returned as float."""
    try:
        value = float(rate_hz)
    except (TypeError, ValueError):
        raise SignalError(f"{name} must be a number in Hz, got {rate_hz!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise SignalError(f"{name} must be a finite positive rate in Hz, got {rate_hz!r}")
    return value


def positive(value, name: str, unit: str = "") -> float:
    """Check a finite number > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SignalError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise SignalError(
            f"{name} must be finite and > 0{' ' + unit if unit else ''}, got {value!r}"
        )
    return v


def number(value, name: str, unit: str = "") -> float:
    """Check a finite real number (bool refused), returned as float."""
    try:
        if isinstance(value, bool | np.bool_):
            raise TypeError
        v = float(value)
    except (TypeError, ValueError):
        raise SignalError(
            f"{name} must be a number{' in ' + unit if unit else ''}, got {value!r}"
        ) from None
    if not math.isfinite(v):
        raise SignalError(f"{name} must be finite, got {value!r}")
    return v


def non_negative(value, name: str, unit: str = "") -> float:
    """Check a finite number >= 0."""
    v = number(value, name, unit)
    if v < 0:
        raise SignalError(f"{name} must be >= 0{' ' + unit if unit else ''}, got {value!r}")
    return v


def cutoff(cutoff_hz, rate_hz: float, name: str = "cutoff_hz") -> float:
    """Check a cut-off frequency: 0 < f < Nyquist (rate_hz / 2)."""
    f = positive(cutoff_hz, name, "Hz")
    nyq = rate_hz / 2.0
    if f >= nyq:
        raise SignalError(
            f"{name}={f:g} Hz is at or above the Nyquist frequency {nyq:g} Hz for "
            f"rate_hz={rate_hz:g}; lower the cut-off or use a higher sampling rate"
        )
    return f


def signal(
    x, name: str = "x", *, allow_nan: bool = False, min_samples: int = 1
) -> tuple[np.ndarray, bool]:
    """Validate a signal and return it as a C-contiguous float64 ``(n_samples, n_channels)`` array.

    Returns
    -------
    x2 : ndarray, float64, (n_samples, n_channels)
        A view when the input already is C-contiguous float64, else a copy.
    was_1d : bool
        True when the input was ``(n_samples,)``; callers squeeze their output back.
    """
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # ragged lists and the like
            raise SignalError(f"{name} must be an array of numbers ({exc})") from None
    if arr.dtype.kind not in "iuf":
        raise SignalError(
            f"{name} must hold real numbers (int or float), got dtype {arr.dtype}; "
            "convert counts to physical units first"
        )
    if arr.ndim not in (1, 2):
        raise SignalError(
            f"{name} must be (n_samples,) or (n_samples, n_channels) with time on axis 0, "
            f"got shape {arr.shape}"
        )
    was_1d = arr.ndim == 1
    if was_1d:
        arr = arr[:, None]
    if arr.shape[1] < 1:
        raise SignalError(f"{name} has no channels (shape {arr.shape})")
    if arr.shape[0] < min_samples:
        raise SignalError(f"{name} needs at least {min_samples} samples, got {arr.shape[0]}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not allow_nan and not _all_finite(arr):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise SignalError(
            f"{name} contains NaN or Inf (first at sample {bad[0]}, channel {bad[1]}); "
            "split the recording at gaps (dsp.quality.find_gaps) and process each run"
        )
    return arr, was_1d


def _all_finite(arr: np.ndarray) -> bool:
    # Chunked so that a 1-h recording does not allocate a boolean array of its size.
    step = max(1, (1 << 20) // max(1, arr.shape[1]))
    for i in range(0, arr.shape[0], step):
        if not np.isfinite(arr[i : i + step]).all():
            return False
    return True


def one_channel(x, name: str = "x", *, allow_nan: bool = False, min_samples: int = 1) -> np.ndarray:
    """Validate a single-channel signal: ``(n,)`` or ``(n, 1)``; returns float64 ``(n,)``."""
    arr, _ = signal(x, name, allow_nan=allow_nan, min_samples=min_samples)
    if arr.shape[1] != 1:
        raise SignalError(
            f"{name} must be one channel, (n_samples,) or (n_samples, 1), got {arr.shape[1]} "
            "channels; pass emg_uv[:, channel]"
        )
    return np.ascontiguousarray(arr[:, 0])


def sos(sos_, name: str = "sos") -> np.ndarray:
    """Validate second-order sections: float64 ``(n_sections, 6)`` with a0 == 1."""
    arr = np.asarray(sos_, dtype=np.float64) if not isinstance(sos_, np.ndarray) else sos_
    if arr.ndim != 2 or arr.shape[1] != 6 or arr.shape[0] < 1:
        raise SignalError(
            f"{name} must be second-order sections of shape (n_sections, 6), got {arr.shape}"
        )
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise SignalError(f"{name} contains NaN or Inf coefficients")
    if not np.all(arr[:, 3] == 1.0):
        a0 = arr[:, 3:4]
        if np.any(a0 == 0):
            raise SignalError(f"{name} has a section with a0 == 0")
        arr = np.ascontiguousarray(np.hstack([arr[:, :3] / a0, arr[:, 3:] / a0]))
    return arr


def window_samples(window_s, rate_hz: float, name: str = "window_s") -> int:
    """A window length in seconds as a whole number of samples (at least 1)."""
    w = positive(window_s, name, "s")
    n = round(w * rate_hz)
    if n < 1:
        raise SignalError(f"{name}={w:g} s is shorter than one sample at {rate_hz:g} Hz")
    return n
