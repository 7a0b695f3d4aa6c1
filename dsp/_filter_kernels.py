"""Private Numba kernels for second-order-section (biquad cascade) filtering.

Layout: signals are ``(n_samples, n_channels)`` C-contiguous float64. The recursion runs along
time and across the channels of one row at once: groups of 8 channels are one 8-wide SIMD vector
(:mod:`dsp._simd`; the recursion itself cannot be vectorised along time), the remainder group
uses plain loops. Channel groups run in parallel (``prange``).

Every section is the transposed direct form II used by ``scipy.signal.sosfilt``::

    y    = b0 * x + z0
    z0   = b1 * x - a1 * y + z1
    z1   = b2 * x - a2 * y

State arrays are ``(n_sections, 2, n_channels)``. All kernels are in-place safe (``src`` may be
``dst``) because row ``i`` is read before it is written and never read again.
"""

from __future__ import annotations

import numpy as np

from dsp._jit import njit, prange
from dsp._simd import LANES, vrow8, vrows8

#: Channels per parallel group (one 64-byte cache line of float64, one SIMD row).
GROUP = LANES


# Full groups of GROUP channels go through dsp._simd (explicit 8-wide SIMD; 3x the scalar code
# LLVM produced for the same loop); the remainder group uses plain loops with a
# run-time width. Separate forward and backward loops with unit steps: a run-time step was 2x
# slower.


@njit
def _rows_fixed(sos, src, dst, zz, c0, i_first, count, step):
    """Rows ``i_first + k * step`` (k < count) of ``src[:, c0:c0 + GROUP]`` into ``dst``."""
    nsec = sos.shape[0]
    # Literal section counts: the SIMD kernel keeps every section's state in registers.
    if nsec == 1:
        vrows8(sos, zz, src, dst, c0, i_first, count, step, 1)
    elif nsec == 2:
        vrows8(sos, zz, src, dst, c0, i_first, count, step, 2)
    elif nsec == 3:
        vrows8(sos, zz, src, dst, c0, i_first, count, step, 3)
    elif nsec == 4:
        vrows8(sos, zz, src, dst, c0, i_first, count, step, 4)
    elif nsec == 5:
        vrows8(sos, zz, src, dst, c0, i_first, count, step, 5)
    elif nsec == 6:
        vrows8(sos, zz, src, dst, c0, i_first, count, step, 6)
    elif nsec == 7:
        vrows8(sos, zz, src, dst, c0, i_first, count, step, 7)
    elif nsec == 8:
        vrows8(sos, zz, src, dst, c0, i_first, count, step, 8)
    else:
        for k in range(count):
            vrow8(sos, zz, src, dst, i_first + k * step, c0)


@njit
def _forward_fixed(sos, src, dst, zz, c0, i_first, count):
    """Rows i_first, i_first + 1, ... (``count`` rows) of ``src[:, c0:c0 + GROUP]`` into ``dst``."""
    _rows_fixed(sos, src, dst, zz, c0, i_first, count, 1)


@njit
def _backward_fixed(sos, src, dst, zz, c0, i_first, count):
    """Rows i_first, i_first - 1, ... (``count`` rows), as :func:`_forward_fixed`."""
    _rows_fixed(sos, src, dst, zz, c0, i_first, count, -1)


@njit
def _rows_var(sos, src, dst, zz, c0, w, i_first, count, step):
    """Rows i_first, i_first + step, ... (``count`` rows) of a run-time width ``w``."""
    nsec = sos.shape[0]
    v = np.empty(w)
    for k in range(count):
        i = i_first + step * k
        for c in range(w):
            v[c] = src[i, c0 + c]
        for s in range(nsec):
            b0 = sos[s, 0]
            b1 = sos[s, 1]
            b2 = sos[s, 2]
            a1 = sos[s, 4]
            a2 = sos[s, 5]
            for c in range(w):
                xi = v[c]
                yi = b0 * xi + zz[s, 0, c]
                zz[s, 0, c] = b1 * xi - a1 * yi + zz[s, 1, c]
                zz[s, 1, c] = b2 * xi - a2 * yi
                v[c] = yi
        for c in range(w):
            dst[i, c0 + c] = v[c]


@njit
def _forward_var(sos, src, dst, zz, c0, w, i_first, count):
    """As :func:`_forward_fixed` for a run-time width ``w``."""
    _rows_var(sos, src, dst, zz, c0, w, i_first, count, 1)


@njit
def _backward_var(sos, src, dst, zz, c0, w, i_first, count):
    """As :func:`_backward_fixed` for a run-time width ``w``."""
    _rows_var(sos, src, dst, zz, c0, w, i_first, count, -1)


@njit
def _run_rows(sos, src, dst, z, c0, c1, i_start, i_stop, step):
    """Filter rows ``i_start, i_start+step, ...`` (``step`` is +1 or -1, ``i_stop`` excluded) of
    ``src[:, c0:c1]`` into ``dst`` with state ``z[:, :, c0:c1]`` (updated in place)."""
    nsec = sos.shape[0]
    w = c1 - c0
    zz = np.empty((nsec, 2, w))
    for s in range(nsec):
        for c in range(w):
            zz[s, 0, c] = z[s, 0, c0 + c]
            zz[s, 1, c] = z[s, 1, c0 + c]
    count = max(0, (i_stop - i_start) * step)
    if step > 0:
        if w == GROUP:
            _forward_fixed(sos, src, dst, zz, c0, i_start, count)
        else:
            _forward_var(sos, src, dst, zz, c0, w, i_start, count)
    elif w == GROUP:
        _backward_fixed(sos, src, dst, zz, c0, i_start, count)
    else:
        _backward_var(sos, src, dst, zz, c0, w, i_start, count)
    for s in range(nsec):
        for c in range(w):
            z[s, 0, c0 + c] = zz[s, 0, c]
            z[s, 1, c0 + c] = zz[s, 1, c]


@njit(parallel=True)
def sosfilt_inplace(sos, src, dst, z):
    """Causal filtering of ``src`` into ``dst`` (may be the same array); state ``z`` updated."""
    n, nch = src.shape
    ngroups = (nch + GROUP - 1) // GROUP
    for g in prange(ngroups):
        c0 = g * GROUP
        c1 = min(nch, c0 + GROUP)
        _run_rows(sos, src, dst, z, c0, c1, 0, n, 1)


@njit
def zero_phase_group(sos, zi_ss, padlen, src, dst, c0, c1):
    """scipy-compatible ``sosfiltfilt`` (odd extension of ``padlen`` samples, steady-state
    initial conditions) of ``src[:, c0:c1]`` into ``dst`` (may be ``src``)."""
    n = src.shape[0]
    nsec = sos.shape[0]
    w = c1 - c0
    z = np.empty((nsec, 2, c1))
    # The tail is needed for the end extension after the forward pass overwrote it in place.
    tail = np.empty((padlen + 1, w))
    for j in range(padlen + 1):
        for c in range(w):
            tail[j, c] = src[n - 1 - j, c0 + c]  # tail[0] = x[n-1], tail[j] = x[n-1-j]
    pre = np.empty((padlen, c1))
    for j in range(padlen):
        for c in range(w):
            pre[j, c0 + c] = 2.0 * src[0, c0 + c] - src[padlen - j, c0 + c]
    for s in range(nsec):
        for c in range(w):
            z[s, 0, c0 + c] = (
                zi_ss[s, 0] * pre[0, c0 + c] if padlen > 0 else zi_ss[s, 0] * src[0, c0 + c]
            )
            z[s, 1, c0 + c] = (
                zi_ss[s, 1] * pre[0, c0 + c] if padlen > 0 else zi_ss[s, 1] * src[0, c0 + c]
            )
    # Forward: pre-extension (outputs not needed), signal, post-extension (kept for backward).
    _run_rows(sos, pre, pre, z, c0, c1, 0, padlen, 1)
    _run_rows(sos, src, dst, z, c0, c1, 0, n, 1)
    post = np.empty((padlen, c1))
    for j in range(padlen):
        for c in range(w):
            post[j, c0 + c] = 2.0 * tail[0, c] - tail[j + 1, c]
    _run_rows(sos, post, post, z, c0, c1, 0, padlen, 1)
    # Backward, from the end of the extended forward output.
    for s in range(nsec):
        for c in range(w):
            last = post[padlen - 1, c0 + c] if padlen > 0 else dst[n - 1, c0 + c]
            z[s, 0, c0 + c] = zi_ss[s, 0] * last
            z[s, 1, c0 + c] = zi_ss[s, 1] * last
    _run_rows(sos, post, post, z, c0, c1, padlen - 1, -1, -1)
    _run_rows(sos, dst, dst, z, c0, c1, n - 1, -1, -1)


@njit(parallel=True)
def sosfiltfilt_inplace(sos, zi_ss, padlen, src, dst):
    """Zero-phase filtering of every channel group in parallel."""
    nch = src.shape[1]
    ngroups = (nch + GROUP - 1) // GROUP
    for g in prange(ngroups):
        c0 = g * GROUP
        c1 = min(nch, c0 + GROUP)
        zero_phase_group(sos, zi_ss, padlen, src, dst, c0, c1)


@njit
def sosfilt_serial(sos, src, dst, z):
    """As :func:`sosfilt_inplace` on one thread (small blocks: no parallel start-up cost)."""
    n, nch = src.shape
    for c0 in range(0, nch, GROUP):
        _run_rows(sos, src, dst, z, c0, min(nch, c0 + GROUP), 0, n, 1)
