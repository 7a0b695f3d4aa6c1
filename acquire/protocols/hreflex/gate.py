"""Background gating: a pulse is delivered only while the background EMG lies inside a band.

:func:`background_bins_uv` gives the mean rectified EMG in 50 ms bins; :class:`BackgroundGate`
checks the last bins against the band (domain notes: background gating).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def background_bins_uv(emg_uv: np.ndarray, emg_rate_hz: float, bin_ms: float = 50.0) -> np.ndarray:
    """Mean rectified EMG in consecutive bins (each bin's mean removed first).

    Parameters
    ----------
    emg_uv : ndarray, shape (n_samples,) or (n_samples, n_channels)
        Recent EMG, uV, oldest first; the bins end at the last sample.
    emg_rate_hz : float
        Sampling rate, Hz.
    bin_ms : float
        Bin length, ms (50 ms per the domain notes).

    Returns
    -------
    ndarray, shape (n_bins,) or (n_bins, n_channels)
        Mean rectified EMG per bin, uV, oldest first (NaN for bins touching a NaN sample).
    """
    x = np.asarray(emg_uv, dtype=np.float64)
    one = x.ndim == 1
    if one:
        x = x[:, None]
    n = max(round(bin_ms * emg_rate_hz / 1000.0), 1)
    k = x.shape[0] // n
    if k == 0:
        out = np.empty((0, x.shape[1]))
        return out[:, 0] if one else out
    b = x[x.shape[0] - k * n :].reshape(k, n, x.shape[1])
    out = np.mean(np.abs(b - b.mean(axis=1, keepdims=True)), axis=1)
    return out[:, 0] if one else out


@dataclass(frozen=True)
class BackgroundGate:
    """Deliver only while the last ``n_bins`` 50 ms bins of background EMG lie inside ``band_uv``.

    Attributes
    ----------
    band_uv : (float, float)
        Accepted mean rectified EMG, uV.
    n_bins : int
        Consecutive bins that must be inside the band.
    bin_ms : float
        Bin length, ms.
    channel : int
        EMG channel gated on.
    """

    band_uv: tuple[float, float]
    n_bins: int = 2
    bin_ms: float = 50.0
    channel: int = 0

    def samples_needed(self, emg_rate_hz: float) -> int:
        return self.n_bins * max(round(self.bin_ms * emg_rate_hz / 1000.0), 1)

    def check(self, recent_emg_uv: np.ndarray, emg_rate_hz: float) -> tuple[bool, list[float]]:
        """(inside, bin values) for the most recent EMG (at least ``samples_needed`` samples)."""
        x = np.asarray(recent_emg_uv, dtype=np.float64)
        if x.ndim == 2:
            x = x[:, self.channel]
        x = x[-self.samples_needed(emg_rate_hz) :]
        bins = background_bins_uv(x, emg_rate_hz, self.bin_ms)
        lo, hi = self.band_uv
        ok = bins.size == self.n_bins and bool(np.all((bins >= lo) & (bins <= hi)))
        return ok, [float(v) for v in bins]
