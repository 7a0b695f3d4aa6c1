"""EMG envelopes: rectification, moving RMS, linear envelope, Teager-Kaiser energy.

All functions take ``(n_samples,)`` or ``(n_samples, n_channels)`` signals (time on axis 0,
microvolts) and return float64 arrays of the same shape.
"""

from __future__ import annotations

import numpy as np

from dsp import _validate as V
from dsp._filter_kernels import GROUP
from dsp._jit import njit, prange
from dsp._simd import vslide8
from dsp.errors import SignalError
from dsp.filters import apply_causal, apply_zero_phase, design_lowpass

__all__ = ["linear_envelope", "moving_rms", "rectify", "tkeo"]

#: The running sum of squares is recomputed from scratch every this many samples (absolute
#: sample index), so rounding cannot accumulate over hours; block-size independent.
RESUM_EVERY = 4096


def rectify(x) -> np.ndarray:
    """Full-wave rectification ``|x|``.

    Parameters
    ----------
    x : array_like, (n_samples,) or (n_samples, n_channels)
        EMG in microvolts.

    Returns
    -------
    ndarray, float64, same shape as ``x``
    """
    x2, was_1d = V.signal(x)
    y = np.abs(x2)
    return y[:, 0] if was_1d else y


@njit
def _slide_fixed(x, out, ring, acc, c0, i_a, i_b, right, p, size, inv):
    """Fast path: rows i_a..i_b-1 need no reflection; GROUP lanes (SIMD). Returns the ring slot."""
    for i in range(i_a, i_b):
        vslide8(x, out, ring, acc, i, i + 1 + right, p, c0, inv)
        p += 1
        if p == size:
            p = 0
    return p


@njit
def _slide_var(x, out, ring, acc, c0, w, i_a, i_b, right, p, size, inv):
    """As :func:`_slide_fixed` for a run-time width ``w``."""
    for i in range(i_a, i_b):
        for c in range(w):
            out[i, c0 + c] = np.sqrt(max(acc[c], 0.0) * inv)
        j = i + 1 + right
        for c in range(w):
            v = x[j, c0 + c]
            sq = v * v
            acc[c] += sq - ring[p, c]
            ring[p, c] = sq
        p += 1
        if p == size:
            p = 0
    return p


@njit
def _centered_mean_sq_group(x, out, size, c0, c1):
    """``sqrt(uniform_filter1d(x**2, size, axis=0, mode='reflect'))`` for channels c0:c1.

    Window of sample i: ``[i - size // 2, i + (size - 1) // 2]`` (scipy's centring); indices
    outside the signal are reflected (``x[-1 - k] = x[k]``, ``x[n + k] = x[n - 1 - k]``).
    ``out`` may be ``x`` (in place): a ring buffer keeps the squares still needed, and the last
    rows are copied aside because the reflection at the end reads rows already overwritten.
    The running sum is recomputed from the ring every ``RESUM_EVERY`` samples.
    """
    n = x.shape[0]
    w = c1 - c0
    left = size // 2
    right = size - 1 - left
    ring = np.empty((size, w))  # square of sample j in slot j mod size
    acc = np.zeros(w)
    inv = 1.0 / size
    ntail = min(n, size + 1)
    tail = np.empty((ntail, w))
    for r in range(ntail):
        for c in range(w):
            tail[r, c] = x[n - ntail + r, c0 + c]
    for j in range(-left, right + 1):
        src = _reflect(j, n)
        for c in range(w):
            v = tail[src - (n - ntail), c] if src >= n - ntail else x[src, c0 + c]
            acc[c] += v * v
            ring[j % size, c] = v * v
    p = (1 + right) % size  # slot of the sample entering the window of sample 1
    fast_end = n - ntail - 1 - right  # rows i < fast_end slide in x[i + 1 + right] directly
    i = 0
    while i < n:
        if i < fast_end:
            e = min(fast_end, (i // RESUM_EVERY + 1) * RESUM_EVERY)
            if w == GROUP:
                p = _slide_fixed(x, out, ring, acc, c0, i, e, right, p, size, inv)
            else:
                p = _slide_var(x, out, ring, acc, c0, w, i, e, right, p, size, inv)
            i = e
        else:
            for c in range(w):
                out[i, c0 + c] = np.sqrt(max(acc[c], 0.0) * inv)
            i += 1
            if i >= n:
                break
            src = _reflect(i + right, n)
            for c in range(w):
                v = tail[src - (n - ntail), c] if src >= n - ntail else x[src, c0 + c]
                sq = v * v
                acc[c] += sq - ring[p, c]
                ring[p, c] = sq
            p += 1
            if p == size:
                p = 0
        if i % RESUM_EVERY == 0 and i < n:
            # Exact recomputation of the window of sample i from the ring.
            for c in range(w):
                acc[c] = 0.0
            for r in range(size):
                for c in range(w):
                    acc[c] += ring[r, c]


@njit
def _reflect(j, n):
    # scipy 'reflect' (half-sample symmetric): d c b a | a b c d | d c b a
    period = 2 * n
    j = j % period
    if j < 0:
        j += period
    return j if j < n else period - 1 - j


@njit(parallel=True)
def _moving_rms_centered(x, out, size):
    nch = x.shape[1]
    ngroups = (nch + GROUP - 1) // GROUP
    for g in prange(ngroups):
        c0 = g * GROUP
        _centered_mean_sq_group(x, out, size, c0, min(nch, c0 + GROUP))


@njit
def _moving_rms_trailing(x, out, size, ring, acc, n_seen):
    """Causal RMS over the last ``size`` samples (fewer at the start), state carried in
    ``ring`` (size, ch) and ``acc`` (ch,); ``n_seen`` samples were processed before."""
    n, nch = x.shape
    for i in range(n):
        k = n_seen + i
        slot = k % size
        for c in range(nch):
            v = x[i, c]
            sq = v * v
            acc[c] += sq - ring[slot, c]
            ring[slot, c] = sq
        if (k + 1) % RESUM_EVERY == 0:
            for c in range(nch):
                acc[c] = 0.0
            for r in range(size):
                for c in range(nch):
                    acc[c] += ring[r, c]
        count = min(k + 1, size)
        for c in range(nch):
            out[i, c] = np.sqrt(max(acc[c], 0.0) / count)


def moving_rms(x, rate_hz, window_s: float = 0.05, *, centered: bool = True) -> np.ndarray:
    """Moving root-mean-square amplitude.

    Parameters
    ----------
    x : array_like, (n_samples,) or (n_samples, n_channels)
        Signal in microvolts (typically band-passed EMG).
    rate_hz : float
        Sampling rate in Hz.
    window_s : float
        Window length in seconds (rounded to whole samples; 0.05 = 100 samples at 2 kHz).
    centered : bool
        True (offline): window centred on each sample as ``scipy.ndimage.uniform_filter1d``
        (samples ``i - size//2 .. i + (size-1)//2``, edges reflected), i.e.
        ``sqrt(uniform_filter1d(x**2, size, axis=0))``. False (causal): the last ``size``
        samples up to and including ``i`` (fewer at the start).

    Returns
    -------
    ndarray, float64, same shape as ``x``
        RMS in the unit of ``x``.
    """
    rate_hz = V.rate(rate_hz)
    size = V.window_samples(window_s, rate_hz)
    x2, was_1d = V.signal(x)
    out = np.empty_like(x2)
    if centered:
        _moving_rms_centered(x2, out, size)
    else:
        ring = np.zeros((size, x2.shape[1]))
        acc = np.zeros(x2.shape[1])
        _moving_rms_trailing(x2, out, size, ring, acc, 0)
    return out[:, 0] if was_1d else out


def linear_envelope(
    x, rate_hz, cutoff_hz: float = 6.0, order: int = 2, *, zero_phase: bool = True
) -> np.ndarray:
    """Linear envelope: full-wave rectification then Butterworth low-pass.

    Parameters
    ----------
    x : array_like, (n_samples,) or (n_samples, n_channels)
        Band-passed EMG in microvolts.
    rate_hz : float
        Sampling rate in Hz.
    cutoff_hz : float
        Low-pass corner in Hz (3-10 Hz for movement envelopes; 50 Hz for onset detection).
    order : int
        Butterworth order.
    zero_phase : bool
        Zero-phase (offline, :func:`dsp.filters.apply_zero_phase`) or causal.

    Returns
    -------
    ndarray, float64, same shape as ``x``
        Envelope in microvolts (can dip slightly below 0 after the low-pass).
    """
    sos = design_lowpass(cutoff_hz, rate_hz, order)
    r = rectify(x)
    return apply_zero_phase(r, sos, out=r) if zero_phase else apply_causal(r, sos)


@njit(parallel=True)
def _tkeo_kernel(x, out):
    n, nch = x.shape
    for i in prange(1, n - 1):
        for c in range(nch):
            out[i, c] = x[i, c] * x[i, c] - x[i - 1, c] * x[i + 1, c]
    for c in range(nch):
        out[0, c] = out[1, c] if n > 2 else 0.0
        out[n - 1, c] = out[n - 2, c] if n > 2 else 0.0


def tkeo(x) -> np.ndarray:
    """Teager-Kaiser energy operator ``psi[n] = x[n]**2 - x[n-1] * x[n+1]`` (Solnik 2010).

    Parameters
    ----------
    x : array_like, (n_samples,) or (n_samples, n_channels)
        Signal in microvolts, at least 3 samples.

    Returns
    -------
    ndarray, float64, same shape as ``x``
        Energy in squared microvolts; the first and last samples repeat their neighbours.
    """
    x2, was_1d = V.signal(x, min_samples=3)
    if x2.shape[0] < 3:
        raise SignalError("x needs at least 3 samples for the TKEO")
    out = np.empty_like(x2)
    _tkeo_kernel(x2, out)
    return out[:, 0] if was_1d else out
