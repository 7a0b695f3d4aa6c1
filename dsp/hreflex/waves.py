"""Epochs, wave windows located from the data, and per-sweep wave measures.

All times are in ms after the detected artifact onset. Amplitudes are measured on the
minimally processed signal (median of the pre-stimulus baseline removed, artifact bridged), as
the domain notes ask for peak-to-peak measures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class WaveWindow:
    """Where one wave (M or H) lives, ms after the artifact onset.

    Attributes
    ----------
    start_ms, end_ms : float
        Window bounds, ms.
    source : str
        ``"data"`` (located from the recruitment series), ``"override"`` (passed in) or
        ``"preset"`` (fallback to the muscle's search range: the wave was not found).
    n_sweeps : int
        Sweeps averaged to locate it (0 for override/preset).
    """

    start_ms: float
    end_ms: float
    source: str
    n_sweeps: int = 0

    def to_dict(self) -> dict:
        return {
            "start_ms": float(self.start_ms),
            "end_ms": float(self.end_ms),
            "source": self.source,
            "n_sweeps": int(self.n_sweeps),
        }


def ms_to_index(t_ms: float, epoch_start_ms: float, per_ms: float) -> int:
    """Epoch row of ``t_ms`` (ms after the onset) for an epoch starting at ``epoch_start_ms``."""
    return round((t_ms - epoch_start_ms) * per_ms)


def extent_of_wave(
    avg: np.ndarray,
    per_ms: float,
    lo: int,
    hi: int,
    *,
    noise_sd: float,
    fraction: float = 0.1,
    max_gap_ms: float = 1.5,
) -> tuple[int, int] | None:
    """Rows [start, end) around the largest deflection of ``avg`` inside [lo, hi).

    The extent grows from the peak while ``|avg|`` stays above ``max(fraction * peak,
    4 * noise_sd)``, bridging sub-threshold gaps shorter than ``max_gap_ms`` (zero crossings of a
    biphasic wave). Returns ``None`` when the peak is not above ``6 * noise_sd``.
    """
    seg = np.abs(avg[lo:hi])
    if seg.size == 0:
        return None
    k = int(np.argmax(seg))
    peak = float(seg[k])
    if peak < 6.0 * noise_sd:
        return None
    thr = max(fraction * peak, 4.0 * noise_sd)
    above = seg >= thr
    gap = max(round(max_gap_ms * per_ms), 1)
    s = k
    run = 0
    i = k
    while i > 0:
        i -= 1
        if above[i]:
            s = i
            run = 0
        else:
            run += 1
            if run > gap:
                break
    e = k
    run = 0
    i = k
    while i < seg.size - 1:
        i += 1
        if above[i]:
            e = i
            run = 0
        else:
            run += 1
            if run > gap:
                break
    return lo + s, lo + e + 1


def onset_of_wave(
    avg: np.ndarray, lo: int, hi: int, *, noise_sd: float, fraction: float = 0.1
) -> int | None:
    """Row where the wave in ``avg[lo:hi]`` starts.

    Finds the first sample reaching half the window's largest deflection, then walks back to
    the last sample whose deviation is still above ``max(fraction * peak, 3 * noise_sd)``; the
    onset is the row after the first sample below that level (the start of the deflection).
    """
    seg = np.abs(avg[lo:hi])
    if seg.size < 2:
        return None
    peak = float(seg.max())
    if peak <= 0 or peak < 6.0 * noise_sd:
        return None
    first_half = int(np.argmax(seg >= 0.5 * peak))
    thr = max(fraction * peak, 3.0 * noise_sd)
    i = first_half
    while i > 0 and seg[i - 1] >= thr:
        i -= 1
    return lo + i


def measure_window(
    epochs: np.ndarray, lo: int, hi: int, per_ms: float, epoch_start_ms: float, noise_sd: np.ndarray
) -> dict[str, np.ndarray]:
    """Peak-to-peak, area, onset and peak latency of the wave in rows [lo, hi) of every sweep.

    Parameters
    ----------
    epochs : ndarray, shape (n_rows, n_sweeps)
        Baseline-removed, artifact-bridged epochs, uV.
    lo, hi : int
        Window rows.
    per_ms : float
        Samples per ms.
    epoch_start_ms : float
        Time of row 0, ms after the artifact onset.
    noise_sd : ndarray, shape (n_sweeps,)
        Robust SD of each sweep's pre-stimulus baseline, uV.

    Returns
    -------
    dict of ndarray, each shape (n_sweeps,)
        ``p2p_uv``, ``area_uv_ms`` (integral of the rectified signal), ``peak_latency_ms`` (time of
        the largest absolute deflection), ``onset_latency_ms`` (NaN when the wave is not above
        the noise: peak-to-peak below 10 baseline SDs).
    """
    w = epochs[lo:hi]
    n_sw = epochs.shape[1]
    p2p = w.max(axis=0) - w.min(axis=0)
    area = np.abs(w).sum(axis=0) / per_ms
    k = np.argmax(np.abs(w), axis=0)
    peak_lat = (lo + k) / per_ms + epoch_start_ms
    onset = np.full(n_sw, np.nan)
    for j in range(n_sw):
        if p2p[j] < 10.0 * noise_sd[j]:
            continue
        r = onset_of_wave(epochs[:, j], lo, hi, noise_sd=float(noise_sd[j]), fraction=0.1)
        if r is not None:
            onset[j] = r / per_ms + epoch_start_ms
    below = p2p < 10.0 * noise_sd
    peak_lat = np.where(below, np.nan, peak_lat)
    return {
        "p2p_uv": p2p,
        "area_uv_ms": area,
        "peak_latency_ms": peak_lat,
        "onset_latency_ms": onset,
    }
