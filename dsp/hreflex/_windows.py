"""Stages 4-5 of the H-reflex analysis: M and H windows, then the per-sweep measures.

:func:`locate_windows` places the M and H windows on the average of the largest sweeps (and
refits the artifact tail without the waves); :func:`measure_sweeps` measures every usable sweep
in both windows and the session latencies from averages of the large waves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp.hreflex._epochs import Epochs, clean_epochs, fit_tail
from dsp.hreflex._inputs import ONSET_P_MAX, HReflexInputError, HReflexInputs, HReflexSettings
from dsp.hreflex.waves import (
    WaveWindow,
    aligned_average,
    extent_of_wave,
    measure_window,
    ms_to_index,
    onset_of_wave,
)


def _locate(epochs, ep: Epochs, inp: HReflexInputs, med_noise, search_ms, override, floor_row,
            label, warnings):  # fmt: skip
    """One wave's window: ``(WaveWindow, lo_row, hi_row)``."""
    ep_start_ms, per_ms, usable, e0 = ep.ep_start_ms, inp.per_ms, ep.usable, ep.e0
    if override is not None:
        lo = ms_to_index(override[0], ep_start_ms, per_ms)
        hi = ms_to_index(override[1], ep_start_ms, per_ms)
        return WaveWindow(float(override[0]), float(override[1]), "override"), lo, hi
    lo = max(ms_to_index(search_ms[0], ep_start_ms, per_ms), floor_row)
    hi = ms_to_index(search_ms[1], ep_start_ms, per_ms)
    cols = np.nonzero(usable)[0]
    if hi - lo < 3:
        raise HReflexInputError(f"the {label} search range is empty after the artifact blank")
    p2p = epochs[lo:hi, cols].max(axis=0) - epochs[lo:hi, cols].min(axis=0)
    k = max(3, cols.size // 4)
    top = cols[np.argsort(p2p)[-k:]]
    avg = epochs[:, top].mean(axis=1)
    avg_noise = med_noise / np.sqrt(top.size)
    ext = extent_of_wave(avg, per_ms, lo, hi, noise_sd=avg_noise)
    if ext is None:
        warnings.append(f"{label}-wave not found in the data; the preset search range is used")
        return (
            WaveWindow((lo + e0) / per_ms, (hi + e0) / per_ms, "preset", 0),
            lo,
            hi,
        )
    s_row = max(ext[0] - round(0.5 * per_ms), lo)
    e_row = min(ext[1] + round(1.0 * per_ms), hi)
    return (
        WaveWindow(s_row / per_ms + ep_start_ms, e_row / per_ms + ep_start_ms, "data", top.size),
        s_row,
        e_row,
    )


@dataclass(frozen=True)
class Windows:
    """The M and H windows and the sweeps they were placed on.

    Attributes
    ----------
    m_win, h_win : WaveWindow
    m_lo, m_hi, h_lo, h_hi : int
        Window rows (epoch samples).
    blank_end_row : int
        Last blanked row of any usable sweep.
    tail : TailTemplate or None
        The final artifact-tail model; ``epochs`` the sweeps cleaned with it.
    warnings : tuple of str
    """

    m_win: WaveWindow
    m_lo: int
    m_hi: int
    h_win: WaveWindow
    h_lo: int
    h_hi: int
    blank_end_row: int
    tail: object
    epochs: np.ndarray
    warnings: tuple[str, ...]


def locate_windows(ep: Epochs, inp: HReflexInputs, settings: HReflexSettings, st, tail,
                   epochs) -> Windows:  # fmt: skip
    """Place the M and H windows; refit the artifact tail without the waves when it was used."""
    arts, usable, e0, noise, ep_start_ms = st.arts, ep.usable, ep.e0, ep.noise, ep.ep_start_ms
    per_ms, preset = inp.per_ms, inp.preset
    m_window_ms, h_window_ms = settings.m_window_ms, settings.h_window_ms
    warnings: list[str] = []
    blank_end_row = max(
        (a.blank_end_index - a.onset_index - e0 for a, u in zip(arts, usable, strict=True) if u),
        default=-e0,
    )
    med_noise = float(np.median(noise[usable]))

    def locate(search_ms, override, floor_row, label):
        return _locate(epochs, ep, inp, med_noise, search_ms, override, floor_row, label, warnings)

    m_win, m_lo, m_hi = locate(preset.m_search_ms, m_window_ms, blank_end_row, "M")
    if tail is not None and tail.used:
        # refit the tail without the M-wave of the template sweeps, then locate again
        # ... and without the H search range, but with the quiet stretch after it
        def wave_free(a_ms, b_ms):
            seg = epochs[
                ms_to_index(a_ms, ep_start_ms, per_ms) : ms_to_index(b_ms, ep_start_ms, per_ms)
            ]
            amp = seg.max(axis=0) - seg.min(axis=0)
            lim = np.maximum(10.0 * np.nan_to_num(noise, nan=np.inf), 0.02 * np.max(amp[usable]))
            return usable & (amp < lim)

        m_span = (m_win.start_ms - 0.5, m_win.end_ms + 0.5)
        h_span = (max(preset.h_search_ms[0], m_span[1]), preset.h_search_ms[1])
        tail2 = fit_tail(
            ep,
            inp,
            settings,
            until_ms=preset.epoch_ms[1],
            all_sweeps=True,
            wave_spans=[(m_span, wave_free(*m_span)), (h_span, wave_free(*h_span))],
        )
        if tail2 is not None and tail2.used:
            tail = tail2
            epochs = clean_epochs(ep, inp, tail)
            m_win, m_lo, m_hi = locate(preset.m_search_ms, m_window_ms, blank_end_row, "M")
    h_win, h_lo, h_hi = locate(preset.h_search_ms, h_window_ms, m_hi, "H")
    if h_lo < m_hi and h_window_ms is None and m_window_ms is None:
        warnings.append("M and H windows overlap")
    return Windows(
        m_win, m_lo, m_hi, h_win, h_lo, h_hi, blank_end_row, tail, epochs, tuple(warnings)
    )


@dataclass(frozen=True)
class Sweeps:
    """Per-sweep amplitudes (also written into the stimulus table) and session latencies.

    Attributes
    ----------
    m_amp, h_amp : ndarray, shape (n_stimuli,)
        M and H peak-to-peak, uV (NaN for unusable sweeps).
    m_lat, h_lat, m_pk, h_pk : float
        Onset and peak latencies of the averaged large waves, ms.
    """

    m_amp: np.ndarray
    h_amp: np.ndarray
    m_lat: float
    m_pk: float
    h_lat: float
    h_pk: float


def measure_sweeps(ep: Epochs, win: Windows, inp: HReflexInputs, stimuli: list) -> Sweeps:
    """Measure M and H in every usable sweep, and the session latencies."""
    usable, noise, ep_start_ms, per_ms, n_st = (
        ep.usable,
        ep.noise,
        ep.ep_start_ms,
        inp.per_ms,
        inp.n_st,
    )
    epochs, blank_end_row = win.epochs, win.blank_end_row
    m_lo, m_hi, h_lo, h_hi = win.m_lo, win.m_hi, win.h_lo, win.h_hi
    cols = np.nonzero(usable)[0]
    m_search_lo = max(m_lo - round(3.0 * per_ms), blank_end_row)
    h_search_lo = max(h_lo - round(3.0 * per_ms), m_hi)
    mm = measure_window(
        epochs[:, cols], m_lo, m_hi, per_ms, ep_start_ms, noise[cols], onset_from=m_search_lo
    )
    hm = measure_window(
        epochs[:, cols], h_lo, h_hi, per_ms, ep_start_ms, noise[cols], onset_from=h_search_lo
    )
    for j, i in enumerate(cols):
        s = stimuli[i]
        s.m_p2p_uv, s.m_area_uv_ms = float(mm["p2p_uv"][j]), float(mm["area_uv_ms"][j])
        s.m_onset_ms, s.m_peak_ms = (
            float(mm["onset_latency_ms"][j]),
            float(mm["peak_latency_ms"][j]),
        )
        s.h_p2p_uv, s.h_area_uv_ms = float(hm["p2p_uv"][j]), float(hm["area_uv_ms"][j])
        s.h_onset_ms, s.h_peak_ms = (
            float(hm["onset_latency_ms"][j]),
            float(hm["peak_latency_ms"][j]),
        )
    m_amp = np.array([s.m_p2p_uv for s in stimuli])
    h_amp = np.array([s.h_p2p_uv for s in stimuli])

    # --- session latencies from averages of large waves ---------------------------------
    def avg_latency(amp, lo, hi, sel, search_lo):
        c = np.nonzero(sel & usable & np.isfinite(amp))[0]
        if c.size == 0:
            return float("nan"), float("nan")
        ref = float(np.percentile(amp[c], 95))
        c = c[amp[c] >= 0.5 * ref]
        avg, _ = aligned_average(epochs[:, c], lo, hi, per_ms)
        nsd = float(np.median(noise[c])) / np.sqrt(c.size)
        r = onset_of_wave(
            avg, search_lo, hi, noise_sd=nsd, p_max=ONSET_P_MAX,
            baseline_end=_baseline_end(lo, search_lo, per_ms),
        )  # fmt: skip
        onset = float("nan") if r is None else float(r) / per_ms + ep_start_ms
        pk = lo + int(np.argmax(np.abs(avg[lo:hi])))
        return onset, pk / per_ms + ep_start_ms

    m_lat, m_pk = avg_latency(m_amp, m_lo, m_hi, np.ones(n_st, bool), m_search_lo)
    h_lat, h_pk = avg_latency(h_amp, h_lo, h_hi, np.ones(n_st, bool), h_search_lo)
    return Sweeps(m_amp, h_amp, m_lat, m_pk, h_lat, h_pk)


def _baseline_end(lo: int, search_lo: int, per_ms: float) -> int:
    """End row of the local baseline before a wave window starting at ``lo``.

    The stretch from the onset search start to 1 ms before the window (the window starts where
    the wave reaches 10% of its peak, minus 0.5 ms); at least 3 samples when the window leaves
    room for them (up to 0.25 ms before it).
    """
    return max(lo - round(per_ms), min(search_lo + 3, lo - max(round(0.25 * per_ms), 1)))
