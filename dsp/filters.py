"""Butterworth and powerline-notch filters, zero-phase (offline) and causal (streaming).

Filters are designed as second-order sections (SOS, ``(n_sections, 6)``) by scipy's algorithms
(``butter``, ``iirnotch``, ``sosfilt_zi``) re-implemented in NumPy in :mod:`dsp._design` (equal
to scipy's coefficients to rounding, checked in the tests; importing ``scipy.signal`` alone would
cost more than the whole warm start of the chain) and applied by tonuslab's Numba kernels.

Edges of zero-phase filtering
-----------------------------
:func:`apply_zero_phase` does exactly what ``scipy.signal.sosfiltfilt`` does by default: the
signal is extended at both ends by an odd reflection of ``padlen = 3 * (2 * n_sections + 1 -
min(#zero b2, #zero a2))`` samples, each pass starts from the steady-state initial conditions
(``sosfilt_zi``) scaled by the first sample it sees, and the extension is cut off afterwards.
The result therefore agrees with scipy everywhere, edges included (to rounding). The first and
last few time constants of a filter are still extrapolation: analyses should not rely on them.
Signals not longer than ``padlen`` are rejected.
"""

from __future__ import annotations

import numpy as np

from dsp import _design as D
from dsp import _filter_kernels as K
from dsp import _validate as V
from dsp.errors import SignalError

__all__ = [
    "StreamingFilter",
    "apply_causal",
    "apply_zero_phase",
    "bandpass",
    "design_bandpass",
    "design_highpass",
    "design_lowpass",
    "design_notch",
    "highpass",
    "lowpass",
    "notch",
    "padlen_for",
]


# ---------------------------------------------------------------------------------- design


def _order(order) -> int:
    if not isinstance(order, int | np.integer) or isinstance(order, bool) or not 1 <= order <= 12:
        raise SignalError(f"order must be an integer from 1 to 12, got {order!r}")
    return int(order)


def design_bandpass(low_hz: float, high_hz: float, rate_hz: float, order: int = 4) -> np.ndarray:
    """Butterworth band-pass as second-order sections.

    Parameters
    ----------
    low_hz, high_hz : float
        Pass-band corners in Hz, ``0 < low_hz < high_hz < rate_hz / 2``.
    rate_hz : float
        Sampling rate in Hz.
    order : int
        Butterworth order of each of the low and high edges (scipy convention: a band-pass of
        ``order`` 4 has ``order`` sections, an 8th-order transfer function).

    Returns
    -------
    ndarray, float64, (order, 6)
        Second-order sections.
    """
    rate_hz = V.rate(rate_hz)
    lo = V.cutoff(low_hz, rate_hz, "low_hz")
    hi = V.cutoff(high_hz, rate_hz, "high_hz")
    if lo >= hi:
        raise SignalError(f"low_hz ({lo:g}) must be below high_hz ({hi:g})")
    return D.butter_sos(_order(order), [lo, hi], "bandpass", rate_hz)


def design_highpass(cutoff_hz: float, rate_hz: float, order: int = 4) -> np.ndarray:
    """Butterworth high-pass as second-order sections, ``(ceil(order / 2), 6)``."""
    rate_hz = V.rate(rate_hz)
    f = V.cutoff(cutoff_hz, rate_hz)
    return D.butter_sos(_order(order), f, "highpass", rate_hz)


def design_lowpass(cutoff_hz: float, rate_hz: float, order: int = 4) -> np.ndarray:
    """Butterworth low-pass as second-order sections, ``(ceil(order / 2), 6)``."""
    rate_hz = V.rate(rate_hz)
    f = V.cutoff(cutoff_hz, rate_hz)
    return D.butter_sos(_order(order), f, "lowpass", rate_hz)


def design_notch(
    rate_hz: float, line_hz: float = 50.0, harmonics: int = 1, quality: float = 30.0
) -> np.ndarray:
    """Powerline notch comb: one second-order notch (``scipy.signal.iirnotch``) per harmonic.

    Parameters
    ----------
    rate_hz : float
        Sampling rate in Hz.
    line_hz : float
        Mains frequency, 50 or 60 Hz (other values are accepted for unusual supplies).
    harmonics : int
        Number of harmonics to remove: ``line_hz, 2 * line_hz, ..., harmonics * line_hz``.
        Harmonics at or above the Nyquist frequency are skipped.
    quality : float
        Quality factor ``Q = f / bandwidth(-3 dB)`` of each notch (30: 1.7 Hz wide at 50 Hz).

    Returns
    -------
    ndarray, float64, (n_notches, 6)
        Second-order sections, one per harmonic below Nyquist.
    """
    rate_hz = V.rate(rate_hz)
    f0 = V.cutoff(line_hz, rate_hz, "line_hz")
    if not isinstance(harmonics, int | np.integer) or harmonics < 1:
        raise SignalError(f"harmonics must be an integer >= 1, got {harmonics!r}")
    q = V.positive(quality, "quality")
    rows = []
    for k in range(1, int(harmonics) + 1):
        f = k * f0
        if f >= rate_hz / 2.0:
            break
        rows.append(D.iirnotch(f, q, rate_hz))
    return np.array(rows, dtype=np.float64)


# ----------------------------------------------------------------------------- application


def padlen_for(sos) -> int:
    """Edge extension used by :func:`apply_zero_phase` (scipy's ``sosfiltfilt`` default)."""
    sos = V.sos(sos)
    ntaps = 2 * sos.shape[0] + 1
    ntaps -= min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return 3 * ntaps


def _shape_back(y: np.ndarray, was_1d: bool) -> np.ndarray:
    return y[:, 0] if was_1d else y


def apply_causal(x, sos, zi=None) -> np.ndarray:
    """Causal (forward-only) filtering, as ``scipy.signal.sosfilt(sos, x, axis=0)``.

    Parameters
    ----------
    x : array_like, (n_samples,) or (n_samples, n_channels)
        Signal, time on axis 0. NaN or Inf is rejected.
    sos : array_like, (n_sections, 6)
        Second-order sections.
    zi : array_like, (n_sections, 2, n_channels), optional
        Initial state (zero, i.e. filter at rest, when omitted). Not modified.

    Returns
    -------
    ndarray, float64, same shape as ``x``
        Filtered signal. Use :class:`StreamingFilter` to carry the state across blocks.
    """
    sos = V.sos(sos)
    x2, was_1d = V.signal(x)
    z = _initial_state(zi, sos.shape[0], x2.shape[1])
    y = np.empty_like(x2)
    K.sosfilt_inplace(sos, x2, y, z)
    return _shape_back(y, was_1d)


def _initial_state(zi, n_sections: int, n_channels: int) -> np.ndarray:
    if zi is None:
        return np.zeros((n_sections, 2, n_channels))
    z = np.array(zi, dtype=np.float64)
    if z.shape != (n_sections, 2, n_channels):
        raise SignalError(
            f"zi must have shape (n_sections, 2, n_channels) = {(n_sections, 2, n_channels)}, "
            f"got {z.shape}"
        )
    return np.ascontiguousarray(z)


def apply_zero_phase(x, sos, *, out: np.ndarray | None = None) -> np.ndarray:
    """Zero-phase (forward-backward) filtering, as ``scipy.signal.sosfiltfilt(sos, x, axis=0)``.

    Parameters
    ----------
    x : array_like, (n_samples,) or (n_samples, n_channels)
        Signal, time on axis 0, longer than :func:`padlen_for` ``(sos)`` samples. NaN or Inf is
        rejected.
    sos : array_like, (n_sections, 6)
        Second-order sections; the magnitude response is applied twice (squared).
    out : ndarray, float64, C-contiguous, shape of ``x`` as 2-D, optional
        Where to write the result; may be ``x`` itself (in place, no extra memory).

    Returns
    -------
    ndarray, float64, same shape as ``x``
        Filtered signal without phase shift; edges as documented in the module docstring.
    """
    sos = V.sos(sos)
    x2, was_1d = V.signal(x)
    padlen = padlen_for(sos)
    if x2.shape[0] <= padlen:
        raise SignalError(
            f"x has {x2.shape[0]} samples; zero-phase filtering with {sos.shape[0]} sections needs "
            f"more than {padlen}"
        )
    y = _out_array(out, x2)
    zi_ss = np.ascontiguousarray(D.sosfilt_zi(sos))
    K.sosfiltfilt_inplace(sos, zi_ss, padlen, x2, y)
    return _shape_back(y, was_1d)


def _out_array(out, x2: np.ndarray) -> np.ndarray:
    if out is None:
        return np.empty_like(x2)
    if not isinstance(out, np.ndarray):
        raise SignalError(
            f"out must be a numpy array of shape {x2.shape}, got {type(out).__name__}"
        )
    o = out[:, None] if out.ndim == 1 else out
    if (
        o.shape != x2.shape
        or o.dtype != np.float64
        or not o.flags.c_contiguous
        or not o.flags.writeable
    ):
        raise SignalError(f"out must be a writable C-contiguous float64 array of shape {x2.shape}")
    return o


def _filter(x, sos, zero_phase: bool) -> np.ndarray:
    return apply_zero_phase(x, sos) if zero_phase else apply_causal(x, sos)


def bandpass(x, rate_hz, low_hz=20.0, high_hz=450.0, order=4, *, zero_phase=True) -> np.ndarray:
    """Butterworth band-pass (default 20-450 Hz, 4th order, zero-phase); see design_bandpass.

    Returns an array of the shape of ``x`` (float64).
    """
    return _filter(x, design_bandpass(low_hz, high_hz, rate_hz, order), zero_phase)


def highpass(x, rate_hz, cutoff_hz=20.0, order=4, *, zero_phase=True) -> np.ndarray:
    """Butterworth high-pass; see :func:`design_highpass`. Same shape as ``x``, float64."""
    return _filter(x, design_highpass(cutoff_hz, rate_hz, order), zero_phase)


def lowpass(x, rate_hz, cutoff_hz=450.0, order=4, *, zero_phase=True) -> np.ndarray:
    """Butterworth low-pass; see :func:`design_lowpass`. Same shape as ``x``, float64."""
    return _filter(x, design_lowpass(cutoff_hz, rate_hz, order), zero_phase)


def notch(x, rate_hz, line_hz=50.0, harmonics=1, quality=30.0, *, zero_phase=True) -> np.ndarray:
    """Powerline notch comb; see :func:`design_notch`. Same shape as ``x``, float64."""
    return _filter(x, design_notch(rate_hz, line_hz, harmonics, quality), zero_phase)


# ------------------------------------------------------------------------------- streaming


class StreamingFilter:
    """Causal SOS filter with carried state for block-by-block (real-time) processing.

    The concatenated outputs equal :func:`apply_causal` on the concatenated input exactly
    (bit for bit), whatever the block sizes.

    Parameters
    ----------
    sos : array_like, (n_sections, 6)
        Second-order sections (e.g. from :func:`design_bandpass`).
    n_channels : int
        Number of channels of every block.

    Examples
    --------
    >>> f = StreamingFilter(design_bandpass(20, 450, 2000.0), n_channels=16)
    >>> y = f.process(block)            # block: (n, 16) microvolts  # doctest: +SKIP
    """

    def __init__(self, sos, n_channels: int):
        self.sos = V.sos(sos)
        if not isinstance(n_channels, int | np.integer) or n_channels < 1:
            raise SignalError(f"n_channels must be an integer >= 1, got {n_channels!r}")
        self.n_channels = int(n_channels)
        self.state = np.zeros((self.sos.shape[0], 2, self.n_channels))

    def reset(self) -> None:
        """Return the filter to rest (zero state)."""
        self.state[...] = 0.0

    def process(self, block, out: np.ndarray | None = None) -> np.ndarray:
        """Filter the next block, ``(n, n_channels)`` (or ``(n,)`` for one channel).

        Returns float64 of the block's shape (``out`` if given, which may be the block itself).
        """
        x2, was_1d = V.signal(block, "block", min_samples=0)
        if x2.shape[1] != self.n_channels:
            raise SignalError(
                f"block has {x2.shape[1]} channels, the filter was made for {self.n_channels}"
            )
        y = _out_array(out, x2)
        K.sosfilt_serial(self.sos, x2, y, self.state)
        return _shape_back(y, was_1d)
