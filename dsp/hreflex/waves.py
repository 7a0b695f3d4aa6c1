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

    The extent grows from the peak while ``|avg - median|`` (median over the range: a residual
    offset does not count) stays above ``max(fraction * peak, 4 * noise_sd)``, bridging
    sub-threshold gaps shorter than ``max_gap_ms`` (zero crossings of a biphasic wave).
    Returns ``None`` when the peak is not above ``6 * noise_sd``.
    """
    raw = np.asarray(avg[lo:hi], dtype=float)
    if raw.size == 0:
        return None
    # a residual offset (artifact tail) under the wave must not stretch the window
    seg = np.abs(raw - np.median(raw))
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


def _crossing(sig: np.ndarray, level: float, before: int) -> float | None:
    """Fractional row of the last upward crossing of ``level`` before row ``before``."""
    i = before
    while i > 0 and sig[i - 1] >= level:
        i -= 1
    if i == 0:
        return 0.0  # above the level from the start of the search range
    a, b = sig[i - 1], sig[i]
    return (i - 1) + (level - a) / (b - a) if b != a else float(i)


def _phase_start(
    sig: np.ndarray, first: int, noise_sd: float, fraction: float, ratio: float, p_max: float = 5.0
):
    """Start (fractional row) of the phase of ``sig`` (positive-going) that reaches ``first``."""
    j = first
    while j + 1 < sig.size and sig[j + 1] >= sig[j]:
        j += 1
    phase_peak = float(sig[j])
    base = max(fraction * phase_peak, 4.0 * noise_sd)
    levels = [base, base * ratio, base * ratio**2]
    if levels[-1] >= phase_peak:
        return _crossing(sig, 0.5 * phase_peak, first + 1)
    t = [_crossing(sig, lev, first + 1) for lev in levels]
    if any(v is None for v in t):
        return None
    d1, d2 = t[1] - t[0], t[2] - t[1]
    if d1 <= 0:
        return t[0]
    r = min(max(d2 / d1, ratio ** (1 / p_max)), ratio)
    return max(t[0] - d1 / (r - 1.0), 0.0)


def onset_of_wave(
    avg: np.ndarray,
    lo: int,
    hi: int,
    *,
    noise_sd: float,
    fraction: float = 0.01,
    ratio: float = 3.0,
    min_phase: float = 0.08,
    p_max: float = 5.0,
    baseline_end: int | None = None,
) -> float | None:
    """Fractional row where the wave in ``avg[lo:hi]`` leaves the baseline.

    Compound action potentials start smoothly (a power of time, not a step), so a fixed
    threshold is crossed late. The phase holding the first sample at half the largest deflection
    is followed back to three levels ``L, ratio*L, ratio**2*L`` (``L = max(fraction * phase
    peak, 4 * noise_sd)``); their crossing times ``t1 < t2 < t3`` fix a power law
    ``v ~ (t - t0)**p``, extrapolated to its start ``t0 = t1 - (t2 - t1) / (r - 1)`` with
    ``r = (t3 - t2) / (t2 - t1) = ratio**(1/p)`` (``p`` clipped to 1-5; a linear start gives
    ``p = 1``). When an earlier phase of opposite sign larger than ``min_phase`` of the peak
    (and 6 noise SDs) precedes it, the onset of that phase is taken instead, repeatedly.
    ``baseline_end`` (a row > ``lo``): the median of ``avg[lo:baseline_end]`` is the local
    baseline (a residual artifact tail or offset before the wave is removed first).

    Returns
    -------
    float or None
        Onset as a fractional row of ``avg`` (None when the wave is not above the noise).
    """
    seg = np.asarray(avg[lo:hi], dtype=float)
    if seg.size < 4:
        return None
    if baseline_end is not None and baseline_end - lo >= 2:
        seg = seg - float(np.median(seg[: baseline_end - lo]))
    peak_abs = float(np.max(np.abs(seg)))
    if peak_abs < 6.0 * noise_sd:
        return None
    first = int(np.argmax(np.abs(seg) >= 0.5 * peak_abs))
    sgn = 1.0 if seg[first] > 0 else -1.0
    onset = _phase_start(sgn * seg, first, noise_sd, fraction, ratio, p_max)
    thr = max(min_phase * peak_abs, 6.0 * noise_sd)
    for _ in range(4):
        if onset is None:
            return None
        sgn = -sgn
        before = sgn * seg[: max(int(np.floor(onset)), 0) + 1]
        idx = np.nonzero(before >= thr)[0]
        if idx.size == 0:
            break
        # the earlier phase: the last stretch above the threshold before this onset
        k = int(idx[-1])
        while k > 0 and before[k - 1] >= thr:
            k -= 1
        earlier = _phase_start(sgn * seg, k, noise_sd, fraction, ratio, p_max)
        if earlier is None:
            break
        onset = earlier
    return lo + onset


def measure_window(
    epochs: np.ndarray,
    lo: int,
    hi: int,
    per_ms: float,
    epoch_start_ms: float,
    noise_sd: np.ndarray,
    *,
    onset_from: int | None = None,
    p_max: float = 3.0,
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
    onset_from : int, optional
        First row searched for the onset (default ``lo``): the window is located at 10% of the
        peak, the onset can precede it.

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
        start = lo if onset_from is None else onset_from
        r = onset_of_wave(
            epochs[:, j], start, hi, noise_sd=float(noise_sd[j]), p_max=p_max,
            baseline_end=max(lo - round(per_ms), min(start + 3, lo - max(round(0.25 * per_ms), 1))),
        )  # fmt: skip
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


def mains_design(t_ms: np.ndarray, mains_hz: float, harmonics=(1, 3, 5)) -> np.ndarray:
    """Sine and cosine columns of the mains frequency and its odd harmonics at ``t_ms``."""
    cols = []
    for h in harmonics:
        w = 2.0 * np.pi * h * mains_hz * np.asarray(t_ms) / 1000.0
        cols += [np.sin(w), np.cos(w)]
    return np.column_stack(cols)


def remove_mains(
    epochs: np.ndarray, t_ms: np.ndarray, fit_rows: np.ndarray, mains_hz: float
) -> np.ndarray:
    """Subtract, sweep by sweep, the mains hum fitted on the pre-stimulus rows.

    Each sweep's pre-stimulus segment (``fit_rows``) is fitted by least squares with a constant
    plus sines and cosines at ``mains_hz`` and its 3rd and 5th harmonics; the sinusoids (not the
    constant) are subtracted from the whole sweep. The hum is phase-locked across sweeps when the
    stimulus interval is a multiple of the mains period (10 s at 50 Hz), so averaging would not
    remove it; subtracting a fitted sinusoid leaves the waves themselves untouched.

    Parameters
    ----------
    epochs : ndarray, shape (n_rows, n_sweeps)
        Epochs, uV (modified copy returned).
    t_ms : ndarray, shape (n_rows,)
        Row times, ms.
    fit_rows : ndarray of bool, shape (n_rows,)
        Rows used for the fit (before the stimulus).
    mains_hz : float
        Mains frequency, Hz.

    Returns
    -------
    ndarray, shape (n_rows, n_sweeps)
        Epochs without the fitted hum.
    """
    d = mains_design(t_ms, mains_hz)
    a = np.column_stack([np.ones(int(fit_rows.sum())), d[fit_rows]])
    coef, *_ = np.linalg.lstsq(a, epochs[fit_rows], rcond=None)
    return epochs - d @ coef[1:]


def mains_amplitude_uv(segment: np.ndarray, t_ms: np.ndarray, mains_hz: float) -> float:
    """Median over sweeps of the fitted fundamental amplitude at ``mains_hz`` (uV)."""
    d = mains_design(t_ms, mains_hz, harmonics=(1,))
    a = np.column_stack([np.ones(t_ms.size), d])
    coef, *_ = np.linalg.lstsq(a, segment, rcond=None)
    return float(np.median(np.hypot(coef[1], coef[2])))


def aligned_average(
    epochs: np.ndarray, lo: int, hi: int, per_ms: float, max_lag_ms: float = 1.5
) -> tuple[np.ndarray, np.ndarray]:
    """Average of sweeps re-aligned on the wave in rows [lo, hi) (Woody's adaptive filter).

    A plain average of sweeps whose latency jitters is smeared: its onset is pulled towards the
    earliest sweeps. Each sweep's lag against the plain average is found by cross-correlation
    over the window (parabolic interpolation of the peak, within ``max_lag_ms``); the lags are
    centred on zero and the sweeps shifted back (linear interpolation) before averaging again,
    so the aligned average starts at the *mean* latency.

    Parameters
    ----------
    epochs : ndarray, shape (n_rows, n_sweeps)
        Sweeps to average, uV.
    lo, hi : int
        Window rows holding the wave.
    per_ms : float
        Samples per ms.
    max_lag_ms : float
        Largest lag searched, ms.

    Returns
    -------
    average : ndarray, shape (n_rows,)
        The aligned average.
    lags_ms : ndarray, shape (n_sweeps,)
        Each sweep's lag (ms, centred on zero).
    """
    n_rows, n_sw = epochs.shape
    ref = epochs.mean(axis=1)
    if n_sw < 3:
        return ref, np.zeros(n_sw)
    max_lag = max(round(max_lag_ms * per_ms), 1)
    a, b = max(lo - max_lag, 0), min(hi + max_lag, n_rows)
    w = ref[lo:hi] - ref[lo:hi].mean()
    lags = np.zeros(n_sw)
    for j in range(n_sw):
        x = epochs[a:b, j]
        cc = np.array([np.dot(w, x[lo - a + k : hi - a + k]) for k in range(-max_lag, max_lag + 1)])
        k = int(np.argmax(cc))
        shift = float(k - max_lag)
        if 0 < k < cc.size - 1:
            den = cc[k - 1] - 2 * cc[k] + cc[k + 1]
            if den < 0:
                shift += 0.5 * (cc[k - 1] - cc[k + 1]) / den
        lags[j] = shift
    lags -= lags.mean()
    rows = np.arange(n_rows, dtype=float)
    out = np.zeros(n_rows)
    for j in range(n_sw):
        out += np.interp(rows + lags[j], rows, epochs[:, j])
    return out / n_sw, lags / per_ms
