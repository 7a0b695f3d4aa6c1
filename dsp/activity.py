"""Tables for recordings without a reflex test: EMG bursts per channel, and joint movements.

An EMG-only recording (voluntary contractions, a fatigue series) gets a burst table per channel:
onset, offset, duration, peak, integrated EMG, and the mean and median frequency of each burst
(the spectral fatigue indices: both fall as a sustained contraction fatigues; De Luca 1997,
Merletti & Parker 2004). An angle-only recording gets a movement table: range, peak velocity,
duration and direction of each movement the goniometer shows.

Bursts come from :func:`dsp.onsets.detect_onsets` (default: threshold over the quietest second,
validated on real contractions in ``docs/validation.md``); movements from
:func:`dsp.kinematics.segment_stretches`. Frequencies are from Welch's periodogram of the
band-passed burst (Hann windows of 256 ms or the burst, half overlap), between the band edges.
"""

from __future__ import annotations

import numpy as np

from dsp import _validate as V
from dsp.errors import SignalError

#: Shortest burst whose mean and median frequency are reported (s): below it the spectrum has
#: too few bins to locate a median frequency.
MIN_SPECTRUM_S = 0.1


def _spectral_frequencies(seg: np.ndarray, rate_hz: float, band) -> tuple[float, float]:
    """(mean, median) frequency in Hz of one band-passed EMG segment, ``(n,)``."""
    from scipy.signal import welch

    nper = min(seg.size, max(16, round(0.256 * rate_hz)))
    f, p = welch(seg, fs=rate_hz, window="hann", nperseg=nper, noverlap=nper // 2)
    lo, hi = band if band is not None else (0.0, rate_hz / 2)
    keep = (f >= lo) & (f <= hi)
    f, p = f[keep], p[keep]
    total = float(p.sum())
    if not total > 0:
        return float("nan"), float("nan")
    mean_hz = float((f * p).sum() / total)
    cum = np.cumsum(p)
    median_hz = float(f[np.searchsorted(cum, 0.5 * total)])
    return mean_hz, median_hz


def burst_table(emg_uv, rate_hz, *, method: str = "threshold", **detector_params) -> list[dict]:
    """EMG bursts of every channel, one row per burst.

    Parameters
    ----------
    emg_uv : array_like, (n_samples,) or (n_samples, n_channels)
        EMG in microvolts; NaN (gaps) are set to 0 for detection and excluded from the figures
        of a burst that touches them (``touches_gap``).
    rate_hz : float
        Sampling rate, Hz.
    method : str
        Onset detector (:func:`dsp.onsets.detect_onsets`).
    **detector_params
        Passed to the detector.

    Returns
    -------
    list of dict
        ``channel``, ``burst`` (index within the channel), ``onset_s``, ``offset_s``,
        ``duration_s``, ``peak_uv`` (largest absolute band-passed value), ``iemg_uv_s``
        (integral of the rectified band-passed EMG, uV s), ``mean_frequency_hz`` and
        ``median_frequency_hz`` (None for bursts shorter than :data:`MIN_SPECTRUM_S`),
        ``touches_gap``.
    """
    from dsp.onsets import _band, _prefilter, detect_onsets

    rate_hz = V.rate(rate_hz)
    x = np.asarray(emg_uv, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise SignalError(f"emg_uv must be (n_samples, n_channels) with samples, got {x.shape}")
    band = _band(detector_params.get("bandpass_hz", (20.0, 450.0)), rate_hz)
    rows: list[dict] = []
    for c in range(x.shape[1]):
        col = x[:, c]
        gap = ~np.isfinite(col)
        clean = np.where(gap, 0.0, col)
        if not np.any(clean):
            continue  # a flat or absent channel has no bursts (its quality says why)
        result = detect_onsets(clean, rate_hz, method=method, **detector_params)
        filtered = _prefilter(clean, rate_hz, band) if band is not None else clean
        for k, (a, b) in enumerate(zip(result.onsets, result.offsets, strict=True)):
            a, b = int(a), int(b)
            seg = filtered[a:b]
            duration = (b - a) / rate_hz
            freqs = (None, None)
            if duration >= MIN_SPECTRUM_S and seg.size >= 16:
                freqs = _spectral_frequencies(seg, rate_hz, band)
            rows.append(
                {
                    "channel": c,
                    "burst": k,
                    "onset_s": a / rate_hz,
                    "offset_s": b / rate_hz,
                    "duration_s": duration,
                    "peak_uv": float(np.max(np.abs(seg))) if seg.size else None,
                    "iemg_uv_s": float(np.sum(np.abs(seg)) / rate_hz),
                    "mean_frequency_hz": freqs[0],
                    "median_frequency_hz": freqs[1],
                    "touches_gap": bool(gap[a:b].any()),
                }
            )
    return rows


def movement_table(angle_deg, rate_hz, **segment_params) -> list[dict]:
    """Joint movements of an angle trace, one row per movement.

    Parameters
    ----------
    angle_deg : array_like, (n_samples,)
        Joint angle in degrees (NaN in gaps).
    rate_hz : float
        Sampling rate, Hz.
    **segment_params
        Passed to :func:`dsp.kinematics.segment_stretches`.

    Returns
    -------
    list of dict
        ``movement``, ``start_s``, ``end_s``, ``duration_s``, ``direction`` (+1 angle
        increasing, -1 decreasing), ``range_deg``, ``peak_velocity_deg_s`` (absolute),
        ``start_angle_deg``, ``end_angle_deg``.
    """
    from dsp.kinematics import segment_stretches

    stretches = segment_stretches(angle_deg, rate_hz, **segment_params)
    return [
        {
            "movement": k,
            "start_s": s.start_s,
            "end_s": s.end_s,
            "duration_s": s.end_s - s.start_s,
            "direction": int(s.direction),
            "range_deg": abs(float(s.range_deg)),
            "peak_velocity_deg_s": abs(float(s.peak_velocity_deg_s)),
            "start_angle_deg": float(s.start_angle_deg),
            "end_angle_deg": float(s.end_angle_deg),
        }
        for k, s in enumerate(stretches)
    ]


__all__ = ["MIN_SPECTRUM_S", "burst_table", "movement_table"]
