"""The EMG conditioning chain, fused: band-pass, powerline notch, rectification, moving RMS.

Offline (:func:`condition_emg`) the chain is

    rms = sqrt(uniform_filter1d(|sosfiltfilt(notch, sosfiltfilt(bandpass, x))|**2, size))

computed group by group of channels in one parallel kernel, with no temporary array of the
signal's size: the output array (or the input itself, ``out=emg_uv``) is filtered in place, so
the peak memory is the input plus the output. Edges are those of ``sosfiltfilt`` (odd extension,
steady-state initial conditions) and ``uniform_filter1d`` (reflection).

Streaming (:class:`StreamingConditioner`) runs the causal counterpart: the band-pass and notch
forward only (carried state), rectification, and the RMS over the last ``size`` samples. Its
concatenated output equals :func:`condition_emg_causal` on the whole recording exactly, whatever
the block sizes.
"""

from __future__ import annotations

import numpy as np

from dsp import _design as D
from dsp import _filter_kernels as K
from dsp import _validate as V
from dsp._jit import njit, prange
from dsp.envelopes import _centered_mean_sq_group, _moving_rms_trailing
from dsp.errors import SignalError
from dsp.filters import _out_array, design_bandpass, design_notch, padlen_for

__all__ = ["StreamingConditioner", "condition_emg", "condition_emg_causal", "design_chain"]


def design_chain(
    rate_hz, band_hz=(20.0, 450.0), order=4, line_hz=50.0, harmonics=1, quality=30.0
) -> tuple[np.ndarray, np.ndarray | None]:
    """Band-pass and notch sections of the chain: ``(bandpass_sos, notch_sos or None)``."""
    try:
        lo, hi = band_hz
    except (TypeError, ValueError):
        raise SignalError(f"band_hz must be a (low_hz, high_hz) pair, got {band_hz!r}") from None
    bp = design_bandpass(lo, hi, rate_hz, order)
    nt = None if line_hz is None else design_notch(rate_hz, line_hz, harmonics, quality)
    return bp, nt


@njit(parallel=True)
def _chain_kernel(src, dst, bp, bp_zi, bp_pad, nt, nt_zi, nt_pad, use_notch, size):
    nch = src.shape[1]
    ngroups = (nch + K.GROUP - 1) // K.GROUP
    for g in prange(ngroups):
        c0 = g * K.GROUP
        c1 = min(nch, c0 + K.GROUP)
        K.zero_phase_group(bp, bp_zi, bp_pad, src, dst, c0, c1)
        if use_notch:
            K.zero_phase_group(nt, nt_zi, nt_pad, dst, dst, c0, c1)
        # |.| then square: the square makes rectification implicit.
        _centered_mean_sq_group(dst, dst, size, c0, c1)


def condition_emg(
    emg_uv,
    rate_hz,
    *,
    band_hz=(20.0, 450.0),
    order: int = 4,
    line_hz: float | None = 50.0,
    harmonics: int = 1,
    quality: float = 30.0,
    rms_window_s: float = 0.05,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Offline conditioning chain: zero-phase band-pass, zero-phase notch, rectification, RMS.

    Parameters
    ----------
    emg_uv : array_like, (n_samples,) or (n_samples, n_channels)
        Raw EMG in microvolts, no NaN (split at gaps first).
    rate_hz : float
        Sampling rate in Hz.
    band_hz : (float, float)
        Band-pass corners in Hz (Butterworth, ``order`` sections, applied forward-backward).
    order : int
        Butterworth order (4: the common 4th-order 20-450 Hz default).
    line_hz : float or None
        Powerline frequency for the notch comb (50 or 60); None skips the notch.
    harmonics, quality : int, float
        Notch comb harmonics and quality factor (:func:`dsp.filters.design_notch`).
    rms_window_s : float
        Centred moving-RMS window in seconds (0.05 s = 100 samples at 2 kHz).
    out : ndarray, optional
        Writable C-contiguous float64 array of the input's 2-D shape; may be ``emg_uv`` itself
        to condition in place (then no memory beyond small buffers is used).

    Returns
    -------
    ndarray, float64, same shape as ``emg_uv``
        RMS envelope in microvolts.
    """
    rate_hz = V.rate(rate_hz)
    bp, nt = design_chain(rate_hz, band_hz, order, line_hz, harmonics, quality)
    size = V.window_samples(rms_window_s, rate_hz, "rms_window_s")
    x2, was_1d = V.signal(emg_uv, "emg_uv")
    bp_pad = padlen_for(bp)
    nt_pad = padlen_for(nt) if nt is not None else 0
    if x2.shape[0] <= max(bp_pad, nt_pad):
        raise SignalError(
            f"emg_uv has {x2.shape[0]} samples; the chain needs more than {max(bp_pad, nt_pad)}"
        )
    y = _out_array(out, x2)
    nt_arr = nt if nt is not None else np.zeros((1, 6))
    _chain_kernel(
        x2,
        y,
        bp,
        np.ascontiguousarray(D.sosfilt_zi(bp)),
        bp_pad,
        nt_arr,
        np.ascontiguousarray(D.sosfilt_zi(nt_arr)) if nt is not None else np.zeros((1, 2)),
        nt_pad,
        nt is not None,
        size,
    )
    return y[:, 0] if was_1d else y


# ------------------------------------------------------------------------------- streaming


@njit
def _stream_kernel(x, y, sos, z, ring, acc, n_seen, size):
    """Causal filter (state ``z``), |.|, trailing RMS (``ring``, ``acc``) of one block."""
    n, nch = x.shape
    for c0 in range(0, nch, K.GROUP):
        K._run_rows(sos, x, y, z, c0, min(nch, c0 + K.GROUP), 0, n, 1)
    # |y|^2 == y^2: rectification and the trailing RMS are the envelope module's one kernel
    _moving_rms_trailing(y, y, size, ring, acc, n_seen)


class StreamingConditioner:
    """Causal conditioning chain for live blocks: band-pass, notch, rectification, RMS.

    Parameters are those of :func:`condition_emg` plus ``n_channels``. The RMS is over the last
    ``rms_window_s`` (fewer samples at the very start). Output for a block of ``(n, n_channels)``
    is ``(n, n_channels)`` microvolts. Allocation-free per block when ``out`` is given.
    """

    def __init__(
        self,
        rate_hz,
        n_channels: int,
        *,
        band_hz=(20.0, 450.0),
        order: int = 4,
        line_hz: float | None = 50.0,
        harmonics: int = 1,
        quality: float = 30.0,
        rms_window_s: float = 0.05,
    ):
        self.rate_hz = V.rate(rate_hz)
        if not isinstance(n_channels, int | np.integer) or n_channels < 1:
            raise SignalError(f"n_channels must be an integer >= 1, got {n_channels!r}")
        self.n_channels = int(n_channels)
        bp, nt = design_chain(self.rate_hz, band_hz, order, line_hz, harmonics, quality)
        self.sos = bp if nt is None else np.ascontiguousarray(np.vstack([bp, nt]))
        self.size = V.window_samples(rms_window_s, self.rate_hz, "rms_window_s")
        self.params = {
            "rate_hz": self.rate_hz,
            "band_hz": [float(v) for v in band_hz],
            "order": int(order),
            "line_hz": None if line_hz is None else float(line_hz),
            "harmonics": int(harmonics),
            "quality": float(quality),
            "rms_window_s": float(rms_window_s),
        }
        self.reset()

    def reset(self) -> None:
        """Forget the past: filters at rest, empty RMS window."""
        self._z = np.zeros((self.sos.shape[0], 2, self.n_channels))
        self._ring = np.zeros((self.size, self.n_channels))
        self._acc = np.zeros(self.n_channels)
        self.n_seen = 0

    def process(self, block, out: np.ndarray | None = None) -> np.ndarray:
        """Condition the next block.

        Parameters
        ----------
        block : array_like, (n, n_channels) or (n,) for one channel
            EMG in microvolts, no NaN.
        out : ndarray, optional
            Writable C-contiguous float64 array of the block's shape (``(n,)`` or ``(n, 1)`` for
            one channel; may be the block itself) to write into, checked as in
            :func:`dsp.filters.apply_zero_phase`; no allocation then.

        Returns
        -------
        ndarray, float64, the block's shape
            Trailing RMS envelope in microvolts (``out`` when given).
        """
        if (
            isinstance(block, np.ndarray)
            and block.dtype == np.float64
            and block.ndim == 2
            and block.flags.c_contiguous
        ):
            x2, was_1d = block, False  # fast path; NaN checked below without a copy
            if not np.isfinite(x2).all():
                x2, was_1d = V.signal(block, "block", min_samples=0)  # raises the usual error
        else:
            x2, was_1d = V.signal(block, "block", min_samples=0)
        if x2.shape[1] != self.n_channels:
            raise SignalError(
                f"block has {x2.shape[1]} channels, the conditioner was made for {self.n_channels}"
            )
        y = _out_array(out, x2)
        _stream_kernel(x2, y, self.sos, self._z, self._ring, self._acc, self.n_seen, self.size)
        self.n_seen += x2.shape[0]
        return y[:, 0] if was_1d else y


def condition_emg_causal(emg_uv, rate_hz, **params) -> np.ndarray:
    """Offline run of :class:`StreamingConditioner` over a whole recording (same output)."""
    x2, was_1d = V.signal(emg_uv, "emg_uv")
    y = StreamingConditioner(rate_hz, x2.shape[1], **params).process(x2)
    return y[:, 0] if was_1d else y
