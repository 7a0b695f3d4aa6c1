"""``analyze_hreflex``: from EMG and stimulus events to recruitment, Hmax/Mmax and depression."""

from __future__ import annotations

import math

import numpy as np

from dsp.errors import SignalError
from dsp.hreflex.artifact import (
    bridge,
    find_artifacts,
    fit_tail_template,
    session_artifact_offset,
)
from dsp.hreflex.presets import REFERENCES, get_preset
from dsp.hreflex.recruitment import (
    RecruitmentFit,
    bootstrap_fits,
    fit_h,
    fit_m,
    intensity_for_m_fraction,
)
from dsp.hreflex.result import HReflexResult, StimulusMeasure, TestIntensity
from dsp.hreflex.waves import (
    WaveWindow,
    aligned_average,
    extent_of_wave,
    mains_amplitude_uv,
    measure_window,
    ms_to_index,
    onset_of_wave,
    remove_mains,
)

#: Largest power of the onset model t**p (see :func:`dsp.hreflex.waves.onset_of_wave`).
ONSET_P_MAX = 3.0

#: Fewest trials at the test intensity for an M-stability figure before a better-filled level
#: one ladder step away is preferred.
MIN_STABILITY_TRIALS = 3

#: Usual block rates (Hz); a measured rate within 10% of one of these is snapped to it.
STANDARD_RATES_HZ = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)


class HReflexInputError(SignalError):
    """An input of :func:`analyze_hreflex` is unusable (shape, length, range, window)."""


def _rate_key(v: float) -> str:
    return f"{round(float(v), 3):g}"


def _snap_rate(rate_hz: float) -> float:
    if not np.isfinite(rate_hz) or rate_hz <= 0:
        return float("nan")
    for r in STANDARD_RATES_HZ:
        if abs(rate_hz - r) <= 0.1 * r:
            return r
    return float(rate_hz)


def _as_1d(name, v, n, dtype=float, allow_none=False):
    if v is None:
        if allow_none:
            return None
        raise HReflexInputError(f"{name} is required")
    a = np.asarray(v, dtype=dtype)
    if a.ndim == 0:
        a = np.full(n, a.item(), dtype=dtype)
    if a.shape != (n,):
        raise HReflexInputError(
            f"{name} has shape {a.shape}; expected ({n},), one value per stimulus"
        )
    return a


def analyze_hreflex(
    emg_uv,
    emg_rate_hz: float,
    stim_sample_index,
    stim_intensity_ma,
    *,
    stim_width_us=None,
    pulse_index=None,
    stim_rate_hz=None,
    muscle: str = "soleus",
    channel: int = 0,
    m_window_ms: tuple[float, float] | None = None,
    h_window_ms: tuple[float, float] | None = None,
    background_band_uv: tuple[float, float] | None = None,
    blank_ms: float | None = None,
    artifact_search_ms: tuple[float, float] = (-2.0, 2.0),
    artifact_offset_range_ms: tuple[float, float] = (-5.0, 10.0),
    highpass_hz: float | None = None,
    mains_hz: float | str | None = "auto",
    artifact_tail: str = "template",
    recruitment_interval_s: tuple[float, float] = (8.0, 15.0),
    test_m_fraction: float = 0.2,
    qc_band: tuple[float, float] = (0.15, 0.35),
    test_tolerance: float = 0.03,
    rdd_discard: int = 0,
    baseline_rate_hz: float = 0.1,
    n_boot: int = 200,
    seed: int | np.random.Generator | None = 0,
) -> HReflexResult:
    """Analyse an H-reflex session: artifact, M/H waves, recruitment fits, Hmax/Mmax, depression.

    Parameters
    ----------
    emg_uv : ndarray, shape (n_samples,) or (n_samples, n_channels)
        EMG in microvolts, time on axis 0, minimally filtered (peak-to-peak amplitudes are
        measured on it). NaN marks missing samples; sweeps touching them are excluded.
    emg_rate_hz : float
        EMG sampling rate, Hz (>= 2000; 5-10 kHz recommended).
    stim_sample_index : array_like of int, shape (n_stimuli,)
        EMG sample index of each delivered pulse, from the device's event (the artifact near it
        is detected and the offset reported).
    stim_intensity_ma : array_like of float, shape (n_stimuli,)
        Intensity of each pulse, mA.
    stim_width_us : array_like of float, shape (n_stimuli,), optional
        Pulse widths, us (reported; the artifact blank is at least 1 ms regardless).
    pulse_index : array_like of int, shape (n_stimuli,), optional
        0 for a single pulse or the first of a pair, 1 for the second of a pair.
    stim_rate_hz : array_like of float, shape (n_stimuli,), optional
        Nominal rate of the block each pulse belongs to, Hz (e.g. as the recorder saved it); NaN
        for a pulse outside any rate block (recruitment, pairs). When omitted, it is ``1 /`` the
        interval since the previous pulse, snapped to the usual block rates. Either way a pulse
        counts in a rate block only when the interval since the previous pulse is within 10% of
        ``1 / rate``: the first pulse of a block follows a rest and drops out.
    muscle : str
        Preset giving the M and H search ranges: ``"soleus"`` (also gastrocnemius, triceps
        surae) or ``"fcr"`` (flexor carpi radialis); see
        :func:`dsp.hreflex.presets.preset_for_muscle`.
    channel : int
        Column of ``emg_uv`` to analyse.
    m_window_ms, h_window_ms : (float, float), optional
        Explicit M / H windows, ms after the artifact onset (else located from the data).
    background_band_uv : (float, float), optional
        Accepted band of the background EMG (mean rectified, 50 ms bin before the pulse), uV.
        Default: ``[0, median + 6 robust SD]`` of the session's sweeps (outliers only).
    blank_ms : float, optional
        Fixed artifact blank after the onset, ms (default: the saturated run or 1 ms, + 0.5 ms).
    artifact_search_ms : (float, float)
        Where each sweep's artifact onset is searched, ms around ``event + session offset``.
    artifact_offset_range_ms : (float, float)
        Range searched for the session-wide event-to-artifact offset, ms around the events
        (median over the highest-intensity sweeps; see
        :func:`dsp.hreflex.artifact.session_artifact_offset`). Reported in
        ``artifact["session_offset_ms"]``; warnings say when it lies at the edge of this range
        and when some stimuli show no artifact.
    highpass_hz : float, optional
        Zero-phase 2nd-order high-pass applied to each bridged epoch (default none).
    mains_hz : float, "auto" or None
        Mains frequency whose hum (with 3rd and 5th harmonics) is fitted on each sweep's
        pre-stimulus 100 ms and subtracted (``"auto"``: 50 or 60 Hz, whichever is stronger;
        None: leave it).
    artifact_tail : {"template", "none"}
        ``"template"``: fit the artifact's decaying tail (two exponentials per mA) on the
        lowest-intensity sweeps and subtract it, scaled by intensity, from every sweep after its
        blank (see :func:`dsp.hreflex.artifact.fit_tail_template`). ``"none"``: blank only.
    recruitment_interval_s : (float, float)
        Pulses preceded by an interval in this range (s) enter the recruitment fits, so that all
        points share one conditioning state: H depends on the time since the previous pulse
        (rate-dependent depression), and the first pulse of a session or a pulse after a long
        rest gives a larger H than a 10 s ladder. Falls back to every pulse >= the lower bound
        (then to all pulses) when fewer than 6 qualify; see ``parameters``.
    test_m_fraction : float
        M / Mmax at the reported test intensity.
    qc_band : (float, float)
        M / Mmax band for the M-stability figure at the test intensity.
    test_tolerance : float
        Trials within this relative distance of the test intensity (0.03 = +/-3%) are pooled for
        the M-stability figures; when fewer than 3 are that close, the recorded level with the
        most trials within one ladder step is used if it has more
        (``test_intensity.trials_rule`` says which).
    rdd_discard : int
        Pulses discarded at the start of each run of a depression block.
    baseline_rate_hz : float
        Rate that depression ratios are normalised to (0.1 Hz).
    n_boot : int
        Bootstrap resamples for the intervals (0 disables them).
    seed : int or numpy.random.Generator, optional
        Bootstrap randomness.

    Returns
    -------
    HReflexResult

    Raises
    ------
    HReflexInputError
        Wrong shapes, lengths, rates, channel or windows (one-line message).
    """
    x = np.asarray(emg_uv, dtype=np.float64)
    if x.ndim == 2:
        if not 0 <= channel < x.shape[1]:
            raise HReflexInputError(
                f"channel={channel} is out of range for emg_uv with {x.shape[1]} channels"
            )
        x = np.ascontiguousarray(x[:, channel])
    elif x.ndim != 1:
        raise HReflexInputError(
            f"emg_uv must be (n_samples,) or (n_samples, n_channels), got shape {x.shape}"
        )
    elif channel != 0:
        raise HReflexInputError(f"channel={channel} given but emg_uv has a single channel")
    rate = float(emg_rate_hz)
    if not np.isfinite(rate) or rate < 2000.0:
        raise HReflexInputError(
            f"emg_rate_hz={emg_rate_hz} is too low for H-reflex latencies; record at >= 5 kHz"
        )
    idx = np.asarray(stim_sample_index)
    if idx.ndim != 1 or idx.size == 0:
        raise HReflexInputError("stim_sample_index must be a non-empty 1-D array of sample indices")
    if not np.issubdtype(idx.dtype, np.integer):
        if not np.all(np.isfinite(idx)) or np.any(idx != np.round(idx)):
            raise HReflexInputError("stim_sample_index must hold whole sample numbers")
        idx = idx.astype(np.int64)
    idx = idx.astype(np.int64)
    n_st = idx.size
    if np.any(idx < 0) or np.any(idx >= x.shape[0]):
        raise HReflexInputError(
            f"stim_sample_index has values outside the recording (0..{x.shape[0] - 1})"
        )
    if np.any(np.diff(idx) <= 0):
        raise HReflexInputError("stim_sample_index must be strictly increasing")
    intensity = _as_1d("stim_intensity_ma", stim_intensity_ma, n_st)
    width = _as_1d("stim_width_us", stim_width_us, n_st, allow_none=True)
    pidx = _as_1d("pulse_index", pulse_index, n_st, dtype=np.int64, allow_none=True)
    if pidx is None:
        pidx = np.zeros(n_st, np.int64)
    if np.any(pidx < 0):
        raise HReflexInputError("pulse_index must be >= 0 (index of the pulse in its pair/train)")
    pair_role = _pair_roles(pidx)
    given_rate = _as_1d("stim_rate_hz", stim_rate_hz, n_st, allow_none=True)
    preset = get_preset(muscle)
    for name, w in (("m_window_ms", m_window_ms), ("h_window_ms", h_window_ms)):
        if w is not None and not (len(w) == 2 and 0 <= w[0] < w[1] <= preset.epoch_ms[1]):
            raise HReflexInputError(
                f"{name}={w} must be (start, end) with 0 <= start < end <= {preset.epoch_ms[1]} ms"
            )
    if not 0.0 <= test_tolerance < 1.0:
        raise HReflexInputError(f"test_tolerance={test_tolerance} must lie in [0, 1)")
    if not 0.0 < test_m_fraction < 1.0:
        raise HReflexInputError(f"test_m_fraction={test_m_fraction} must lie in (0, 1)")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    per_ms = rate / 1000.0
    warnings: list[str] = []

    # --- artifacts -------------------------------------------------------------------------
    for name, w in (
        ("artifact_search_ms", artifact_search_ms),
        ("artifact_offset_range_ms", artifact_offset_range_ms),
    ):
        if not (len(w) == 2 and np.all(np.isfinite(w)) and w[0] < w[1]):
            raise HReflexInputError(f"{name}={w} must be (start, end) in ms with start < end")
    session_off = session_artifact_offset(
        x, rate, idx, intensity, range_ms=tuple(artifact_offset_range_ms)
    )
    arts = find_artifacts(
        x, rate, idx, search_ms=artifact_search_ms, offset_ms=session_off.offset_ms,
        blank_ms=blank_ms,
    )  # fmt: skip
    _artifact_warnings(arts, session_off, intensity, artifact_search_ms, warnings)
    interval = np.full(n_st, np.nan)
    interval[1:] = np.diff(idx) / rate
    if given_rate is not None:
        nominal = np.asarray(given_rate, float)
    else:
        nominal = np.array([_snap_rate(1.0 / v) if np.isfinite(v) else np.nan for v in interval])
    stimuli = []
    for i, a in enumerate(arts):
        stimuli.append(
            StimulusMeasure(
                stimulus=i,
                event_index=int(idx[i]),
                onset_index=a.onset_index,
                artifact_detected=a.detected,
                artifact_offset_ms=a.offset_ms,
                saturated_ms=a.saturated_ms,
                blank_ms=(a.blank_end_index - a.onset_index) / per_ms,
                intensity_ma=float(intensity[i]),
                width_us=float(width[i]) if width is not None else float("nan"),
                pulse_index=int(pidx[i]),
                interval_s=float(interval[i]),
                rate_hz=float(nominal[i]),
            )
        )

    # --- epochs --------------------------------------------------------------------------
    e0 = round(preset.epoch_ms[0] * per_ms)
    e1 = round(preset.epoch_ms[1] * per_ms)
    ep_start_ms = e0 / per_ms
    n_rows = e1 - e0
    epochs = np.zeros((n_rows, n_st))
    raw_bg = np.full(n_st, np.nan)
    b0 = ms_to_index(preset.background_ms[0], ep_start_ms, per_ms)
    b1 = ms_to_index(preset.background_ms[1], ep_start_ms, per_ms)
    z0 = ms_to_index(-20.0, ep_start_ms, per_ms)
    z1 = ms_to_index(-1.0, ep_start_ms, per_ms)
    n0 = ms_to_index(-50.0, ep_start_ms, per_ms)
    noise = np.full(n_st, np.nan)
    usable = np.ones(n_st, bool)
    for i, a in enumerate(arts):
        s = stimuli[i]
        lo, hi = a.onset_index + e0, a.onset_index + e1
        if not np.isfinite(intensity[i]):
            s.included, s.exclusion = False, "intensity is not a finite number"
        elif lo < 0 or hi > x.shape[0]:
            s.included, s.exclusion = False, "epoch runs past the start or end of the recording"
        else:
            seg = x[lo:hi].copy()
            if not np.all(np.isfinite(seg)):
                s.included, s.exclusion = False, "epoch touches missing samples (NaN, a gap)"
            else:
                bg = seg[b0:b1]
                raw_bg[i] = float(np.mean(np.abs(bg - bg.mean())))
                s.background_uv = raw_bg[i]
                seg -= np.median(seg[z0:z1])
                epochs[:, i] = seg
                pre = seg[n0:z1]
                noise[i] = 1.4826 * float(np.median(np.abs(pre - np.median(pre)))) + 1e-9
                s.noise_uv = noise[i]
        usable[i] = s.included
    t_rows_ms = (np.arange(n_rows) + e0) / per_ms
    # mains hum: fitted on each sweep's pre-stimulus stretch and subtracted
    pre_rows = (t_rows_ms < -1.0) & (t_rows_ms >= t_rows_ms[0])
    mains_used = None
    cols_ok = np.nonzero(usable)[0]
    if mains_hz is not None and cols_ok.size:
        if mains_hz == "auto":
            seg = epochs[pre_rows][:, cols_ok[:50]]
            a50 = mains_amplitude_uv(seg, t_rows_ms[pre_rows], 50.0)
            a60 = mains_amplitude_uv(seg, t_rows_ms[pre_rows], 60.0)
            mains_used = 50.0 if a50 >= a60 else 60.0
        else:
            mains_used = float(mains_hz)
        epochs[:, cols_ok] = remove_mains(epochs[:, cols_ok], t_rows_ms, pre_rows, mains_used)
        epochs[:, cols_ok] -= np.median(epochs[z0:z1, cols_ok], axis=0)
    # artifact tail: template from the lowest intensities, scaled by intensity, subtracted
    blank_rows = np.array([a.blank_end_index - a.onset_index for a in arts])
    raw_epochs = epochs.copy()
    if artifact_tail not in ("template", "none"):
        raise HReflexInputError(f"artifact_tail={artifact_tail!r} must be 'template' or 'none'")

    def clean(tail_model):
        out = raw_epochs.copy()
        per_ma = (
            tail_model.per_ma(t_rows_ms) if tail_model is not None and tail_model.used else None
        )
        for i in np.nonzero(usable)[0]:
            if per_ma is not None:
                out[:, i] -= intensity[i] * per_ma
            bridge(out[:, i], -e0 - 1, blank_rows[i] - e0)
        return out

    def tail_fit(exclude_ms=None, until_ms=None, all_sweeps=False, wave_spans=None):
        if artifact_tail != "template" or usable.sum() < 3:
            return None
        cols = np.nonzero(usable & (intensity > 0))[0]
        if cols.size < 3:
            return None
        lowest = cols[np.argsort(intensity[cols], kind="stable")[:3]]
        fit_from = float(np.max(blank_rows[lowest])) / per_ms + 0.2
        fit_to = min(preset.h_search_ms[0], preset.m_search_ms[1]) if until_ms is None else until_ms
        if fit_to - fit_from <= 3.0:
            return None
        return fit_tail_template(
            raw_epochs, t_rows_ms, intensity, cols, (fit_from, fit_to),
            float(np.median(noise[usable])), exclude_ms=exclude_ms,
            blank_end_ms=blank_rows / per_ms + 0.2 if all_sweeps else None,
            wave_spans=wave_spans,
        )  # fmt: skip

    tail = tail_fit()
    epochs = clean(tail)
    if highpass_hz is not None and np.any(usable):
        from scipy.signal import butter, sosfiltfilt

        sos = butter(2, float(highpass_hz), btype="highpass", fs=rate, output="sos")
        epochs[:, usable] = sosfiltfilt(sos, epochs[:, usable], axis=0)

    # --- background gating --------------------------------------------------------------
    bg_ok = usable & np.isfinite(raw_bg)
    if background_band_uv is None and np.any(bg_ok):
        med = float(np.median(raw_bg[bg_ok]))
        rsd = 1.4826 * float(np.median(np.abs(raw_bg[bg_ok] - med)))
        band = (0.0, med + 6.0 * max(rsd, 0.05 * med))
        band_source = "auto: [0, median + 6 robust SD]"
    elif background_band_uv is not None:
        band = (float(background_band_uv[0]), float(background_band_uv[1]))
        band_source = "given"
    else:
        band, band_source = (0.0, float("inf")), "none (no usable sweep)"
    for i in np.nonzero(bg_ok)[0]:
        if not band[0] <= raw_bg[i] <= band[1]:
            stimuli[i].included = False
            stimuli[i].exclusion = (
                f"background EMG {raw_bg[i]:.1f} uV outside the band "
                f"[{band[0]:.1f}, {band[1]:.1f}] uV"
            )
            usable[i] = False
    if usable.sum() < 3:
        raise HReflexInputError(
            f"only {int(usable.sum())} of {n_st} stimuli are usable; check the events and the "
            "background band"
        )

    # --- windows -------------------------------------------------------------------------
    blank_end_row = max(
        (a.blank_end_index - a.onset_index - e0 for a, u in zip(arts, usable, strict=True) if u),
        default=-e0,
    )
    med_noise = float(np.median(noise[usable]))

    def locate(search_ms, override, floor_row, label):
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
            WaveWindow(
                s_row / per_ms + ep_start_ms, e_row / per_ms + ep_start_ms, "data", top.size
            ),
            s_row,
            e_row,
        )

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
        tail2 = tail_fit(
            until_ms=preset.epoch_ms[1],
            all_sweeps=True,
            wave_spans=[(m_span, wave_free(*m_span)), (h_span, wave_free(*h_span))],
        )
        if tail2 is not None and tail2.used:
            tail = tail2
            epochs = clean(tail)
            m_win, m_lo, m_hi = locate(preset.m_search_ms, m_window_ms, blank_end_row, "M")
    h_win, h_lo, h_hi = locate(preset.h_search_ms, h_window_ms, m_hi, "H")
    if h_lo < m_hi and h_window_ms is None and m_window_ms is None:
        warnings.append("M and H windows overlap")

    # --- per-sweep measures -------------------------------------------------------------
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

    # --- recruitment ---------------------------------------------------------------------
    lo_iv, hi_iv = recruitment_interval_s
    rec = usable & (pair_role != 2) & (interval >= lo_iv) & (interval <= hi_iv)
    rec_rule = f"preceding interval in [{lo_iv:g}, {hi_iv:g}] s"
    if rec.sum() < 6:
        rec = usable & (pair_role != 2) & ~(interval < lo_iv)
        rec_rule = f"preceding interval >= {lo_iv:g} s (or first)"
        warnings.append(f"few pulses at the ladder interval; recruitment uses {rec_rule}")
    if rec.sum() < 6:
        rec = usable & (pair_role != 2)
        rec_rule = "all pulses but the second of pairs"
        warnings.append(f"few pulses >= {lo_iv:g} s apart; recruitment uses {rec_rule}")
    m_fit = fit_m(intensity[rec], m_amp[rec])
    h_fit = fit_h(intensity[rec], h_amp[rec])
    block_intensities = np.array(sorted({round(float(v), 6) for v in intensity[usable & ~rec]}))
    boot = bootstrap_fits(
        intensity[rec], m_amp[rec], h_amp[rec], m_fit, h_fit, n_boot=n_boot, rng=rng,
        predict_h_at_ma=block_intensities,
    )  # fmt: skip
    # the fitted H's own spread where a depression block has no 0.1 Hz baseline of its own
    h_fit_sd_uv = dict(
        zip(block_intensities.tolist(), boot.get("h_predict_sd_uv", []), strict=False)
    )
    for f in (m_fit, h_fit):
        if not f.converged:
            warnings.append(f"{f.wave} recruitment fit did not converge")
    mmax = m_fit.max_uv
    hmax = h_fit.max_uv
    if not (np.isfinite(mmax) and m_fit.converged):
        mmax = float(np.nanmax(m_amp[rec])) if rec.any() else float("nan")
        warnings.append("Mmax is the largest observed M (fit unusable)")
    if not (np.isfinite(hmax) and h_fit.converged):
        hmax = float(np.nanmax(h_amp[rec])) if rec.any() else float("nan")
        warnings.append("Hmax is the largest observed H (fit unusable)")
    ratio = hmax / mmax if mmax > 0 else float("nan")
    i_top = float(np.nanmax(intensity[rec])) if rec.any() else float("nan")
    if m_fit.converged and m_fit._p is not None and np.isfinite(i_top):
        reach = float((m_fit.predict(i_top) - m_fit.params["floor_uv"]) / m_fit.params["mmax_uv"])
        if reach < 0.95:
            warnings.append(
                f"the highest intensity reached only {reach:.0%} of the fitted Mmax: Mmax is "
                "extrapolated; record supramaximal stimuli"
            )

    # --- test intensity and M stability ------------------------------------------------------
    test = _test_intensity(
        m_fit, h_fit, intensity, m_amp, usable & (pair_role != 2), mmax, test_m_fraction,
        qc_band, test_tolerance,
    )  # fmt: skip

    if test is not None and np.isfinite(test.intensity_ma) and not test.on_rising_h_limb:
        warnings.append(
            f"M reaches {test_m_fraction:.0%} of Mmax at {test.intensity_ma:.1f} mA, past the "
            "H peak: no test intensity on the rising H limb at that M fraction"
        )

    # --- depression -----------------------------------------------------------------------
    # a pulse is in its block's rhythm when the interval since the previous pulse is the block's
    # period (within 10%): the first pulse of a block follows a rest and is not
    with np.errstate(invalid="ignore"):
        in_rhythm = np.isfinite(nominal) & (np.abs(interval * nominal - 1.0) <= 0.1)
    rdd, rdd_ci, rdd_detail = _rate_depression(
        stimuli,
        usable & in_rhythm,
        pair_role,
        nominal,
        intensity,
        h_amp,
        m_amp,
        mmax,
        h_fit,
        rdd_discard,
        baseline_rate_hz,
        h_fit_sd_uv,
    )
    ppd, ppd_ci, ppd_detail = _paired_depression(
        idx, rate, usable, pair_role, h_amp, intensity, warnings
    )

    det = [a for a in arts if a.detected]
    offs = np.array([a.offset_ms for a in det])
    artifact = {
        "session_offset_ms": float(session_off.offset_ms),
        "session_offset": session_off.to_dict(),
        "n_detected": len(det),
        "n_stimuli": n_st,
        "offset_ms_median": float(np.median(offs)) if offs.size else float("nan"),
        "offset_ms_max_abs": float(np.max(np.abs(offs))) if offs.size else float("nan"),
        "n_saturated": int(sum(a.saturated_ms > 0 for a in arts)),
        "saturated_ms_max": float(max((a.saturated_ms for a in arts), default=0.0)),
        "blank_ms_max": float(max(s.blank_ms for s in stimuli)),
        "latency_reference": "detected artifact onset (event index when not detected)",
        "tail": None if tail is None else tail.to_dict(),
    }
    if offs.size and np.max(np.abs(offs)) > 1.0:
        warnings.append(
            f"artifact onset differs from the device event by up to {np.max(np.abs(offs)):.2f} ms "
            f"(session offset {session_off.offset_ms:+.2f} ms); latencies are measured from the "
            "detected artifact"
        )
    exclusions = [
        {"stimulus": s.stimulus, "reason": s.exclusion} for s in stimuli if not s.included
    ]
    refs = dict(REFERENCES)
    return HReflexResult(
        muscle=preset.name,
        channel=int(channel),
        emg_rate_hz=rate,
        mmax_uv=float(mmax),
        mmax_uv_ci=tuple(m_fit.ci.get("max_uv", (float("nan"), float("nan")))),
        hmax_uv=float(hmax),
        hmax_uv_ci=tuple(h_fit.ci.get("max_uv", (float("nan"), float("nan")))),
        hmax_mmax=float(ratio),
        hmax_mmax_ci=tuple(boot.get("hmax_mmax", (float("nan"), float("nan")))),
        m_latency_ms=m_lat,
        h_latency_ms=h_lat,
        m_peak_latency_ms=m_pk,
        h_peak_latency_ms=h_pk,
        m_window=m_win,
        h_window=h_win,
        m_fit=m_fit,
        h_fit=h_fit,
        test_intensity=test,
        rate_dependent_depression=rdd,
        rate_dependent_depression_detail=rdd_detail,
        rate_dependent_depression_ci=rdd_ci,
        paired_pulse_depression=ppd,
        paired_pulse_depression_detail=ppd_detail,
        paired_pulse_depression_ci=ppd_ci,
        artifact=artifact,
        stimuli=stimuli,
        exclusions=exclusions,
        references=refs,
        warnings=warnings,
        parameters={
            "muscle": preset.name,
            "preset": preset.to_dict(),
            "background_band_uv": list(band),
            "background_band_source": band_source,
            "blank_ms": blank_ms,
            "artifact_search_ms": list(artifact_search_ms),
            "artifact_offset_range_ms": list(artifact_offset_range_ms),
            "highpass_hz": highpass_hz,
            "mains_hz": mains_used,
            "recruitment_interval_s": list(recruitment_interval_s),
            "recruitment_rule": rec_rule,
            "n_recruitment_stimuli": int(rec.sum()),
            "test_m_fraction": test_m_fraction,
            "qc_band": list(qc_band),
            "test_tolerance": test_tolerance,
            "rdd_discard": rdd_discard,
            "baseline_rate_hz": baseline_rate_hz,
            "n_boot": n_boot,
        },
    )


def _artifact_warnings(arts, session_off, intensity, search_ms, warnings: list[str]) -> None:
    """Say when the artifact search may have failed: nothing found, offsets at a range edge,
    stimuli without an artifact (their latencies then count from ``event + session offset``)."""
    lo, hi = session_off.range_ms
    if not session_off.found:
        warnings.append(
            f"no stimulus artifact found within {lo:g}..{hi:g} ms of the device events: "
            "latencies are measured from the events; check the event timestamps or widen "
            "artifact_offset_range_ms"
        )
        return
    if session_off.at_range_edge:
        warnings.append(
            f"the event-to-artifact offset {session_off.offset_ms:+.2f} ms lies at the edge of "
            f"the searched range {lo:g}..{hi:g} ms: the artifacts may lie outside it; widen "
            "artifact_offset_range_ms"
        )
    missing = [i for i, a in enumerate(arts) if not a.detected]
    if missing:
        mi = np.asarray(intensity, float)[missing]
        warnings.append(
            f"no artifact found for {len(missing)} of {len(arts)} stimuli (at "
            f"{np.nanmin(mi):g}-{np.nanmax(mi):g} mA); their latencies count from the event + "
            f"session offset ({session_off.offset_ms:+.2f} ms)"
        )
    edge = [i for i, a in enumerate(arts) if a.at_search_edge]
    if edge:
        warnings.append(
            f"the artifact onset of {len(edge)} stimuli lies at the edge of the per-sweep search "
            f"({search_ms[0]:g}..{search_ms[1]:g} ms around the event + session offset): "
            "those onsets may be wrong"
        )


def _baseline_end(lo: int, search_lo: int, per_ms: float) -> int:
    """End row of the local baseline before a wave window starting at ``lo``.

    The stretch from the onset search start to 1 ms before the window (the window starts where
    the wave reaches 10% of its peak, minus 0.5 ms); at least 3 samples when the window leaves
    room for them (up to 0.25 ms before it).
    """
    return max(lo - round(per_ms), min(search_lo + 3, lo - max(round(0.25 * per_ms), 1)))


def _test_intensity(
    m_fit: RecruitmentFit,
    h_fit: RecruitmentFit,
    intensity,
    m_amp,
    sel,
    mmax,
    fraction,
    qc_band,
    tolerance: float = 0.03,
) -> TestIntensity | None:
    """Test intensity from the M fit, and M stability over the trials recorded near it.

    Trials within ``tolerance`` (relative) of the test intensity are pooled. When fewer than
    :data:`MIN_STABILITY_TRIALS` lie that close, the recorded level with the most trials within
    one ladder step (median spacing of the recorded levels) is used if it has more, else the
    nearest level: one ladder pulse at the nearest intensity says little about stability when a
    block of pulses sits one step away.
    """
    if not m_fit.converged:
        return None
    i_test = intensity_for_m_fraction(m_fit, fraction)
    on_rise = bool(np.isfinite(h_fit.intensity_at_max_ma) and i_test < h_fit.intensity_at_max_ma)
    c = np.nonzero(sel & np.isfinite(m_amp))[0]
    levels, counts = np.unique(np.round(intensity[c], 6), return_counts=True)
    nan = float("nan")
    if levels.size == 0 or not np.isfinite(i_test):
        return TestIntensity(fraction, i_test, on_rise, nan, nan, 0, nan, nan, nan, nan, qc_band)
    tol_ma = tolerance * abs(i_test)
    dist = np.abs(levels - i_test)
    step = float(np.median(np.diff(levels))) if levels.size > 1 else 0.0
    pooled = dist <= tol_ma
    near = np.nonzero(dist <= step)[0]
    best = near[np.lexsort((dist[near], -counts[near]))[0]] if near.size else None
    if counts[pooled].sum() >= MIN_STABILITY_TRIALS or (
        pooled.any() and (best is None or counts[best] <= counts[pooled].sum())
    ):
        chosen = levels[pooled]
        rule = f"all trials within +/-{tolerance:.0%} of the test intensity"
    elif best is not None:  # most trials, then nearest
        chosen = levels[[best]]
        rule = (
            f"the level with the most trials within one ladder step ({step:.3g} mA; fewer than "
            f"{MIN_STABILITY_TRIALS} within +/-{tolerance:.0%})"
        )
    else:
        chosen = levels[[int(np.argmin(dist))]]
        rule = "the nearest recorded level (none within one ladder step)"
    at = c[np.isin(np.round(intensity[c], 6), chosen)]
    frac = m_amp[at] / mmax
    inband = float(np.mean((frac >= qc_band[0]) & (frac <= qc_band[1])))
    cv = float(np.std(m_amp[at], ddof=1) / np.mean(m_amp[at])) if at.size > 1 else nan
    return TestIntensity(
        m_fraction=fraction,
        intensity_ma=i_test,
        on_rising_h_limb=on_rise,
        h_predicted_uv=float(h_fit.predict(i_test)) if h_fit.converged else nan,
        trials_intensity_ma=float(np.mean(intensity[at])),
        n_trials=int(at.size),
        m_fraction_mean=float(frac.mean()),
        m_fraction_sd=float(frac.std(ddof=1)) if at.size > 1 else nan,
        m_cv=cv,
        fraction_in_qc_band=inband,
        qc_band=tuple(qc_band),
        intensity_distance_ma=float(np.max(np.abs(intensity[at] - i_test))),
        trials_levels_ma=tuple(float(v) for v in chosen),
        tolerance=float(tolerance),
        trials_rule=rule,
    )


def _runs(sel_idx, nominal, intensity):
    """Split consecutive selected stimuli into runs of equal nominal rate and intensity."""
    runs, cur = [], []
    for i in sel_idx:
        if cur:
            j = cur[-1]
            same = (
                np.isfinite(nominal[i])
                and nominal[i] == nominal[j]
                and abs(intensity[i] - intensity[j]) <= 1e-3 + 1e-4 * abs(intensity[j])
            )
            if not same:
                runs.append(cur)
                cur = []
        cur.append(i)
    if cur:
        runs.append(cur)
    return runs


def _rate_depression(
    stimuli,
    usable,
    pair_role,
    nominal,
    intensity,
    h_amp,
    m_amp,
    mmax,
    h_fit,
    discard,
    baseline_rate,
    h_fit_sd_uv,
):
    sel = np.nonzero((pair_role == 0) & usable & np.isfinite(h_amp))[0]
    runs = [r for r in _runs(sel, nominal, intensity) if len(r) >= 3 and np.isfinite(nominal[r[0]])]
    groups: dict[tuple[float, float], list[int]] = {}
    for r in runs:
        kept = r[discard:]
        if not kept:
            continue
        groups.setdefault((float(nominal[r[0]]), round(float(intensity[r[0]]), 6)), []).extend(kept)
    detail = []
    ratios: dict[str, list[float]] = {}
    intensities = sorted({k[1] for k in groups})
    for inten in intensities:
        base_key = (float(baseline_rate), inten)
        if base_key in groups:
            base = float(np.mean(h_amp[groups[base_key]]))
            base_src = f"{baseline_rate:g} Hz block"
            n_base = len(groups[base_key])
            base_sem = (
                float(np.std(h_amp[groups[base_key]], ddof=1)) / math.sqrt(n_base)
                if n_base > 1
                else float("nan")
            )
        elif h_fit.converged:
            base = float(h_fit.predict(inten))
            base_src = "recruitment fit at this intensity"
            n_base = 0
            # the fitted value's bootstrap SD (NaN without a bootstrap: the interval is unknown)
            base_sem = float(h_fit_sd_uv.get(inten, float("nan")))
        else:
            continue
        for (rate_hz, i2), members in sorted(groups.items()):
            if i2 != inten:
                continue
            h_mean = float(np.mean(h_amp[members]))
            ratio = h_mean / base if base > 0 else float("nan")
            h_sem = (
                float(np.std(h_amp[members], ddof=1)) / math.sqrt(len(members))
                if len(members) > 1
                else float("nan")
            )
            if (rate_hz, i2) == base_key:  # the baseline block against itself: 1 by definition
                ratio_se = 0.0 if np.isfinite(ratio) else float("nan")
            else:
                ratio_se = _ratio_se(ratio, h_mean, h_sem, base, base_sem)
            detail.append(
                {
                    "rate_hz": rate_hz,
                    "intensity_ma": inten,
                    "n": len(members),
                    "h_mean_uv": h_mean,
                    "h_sd_uv": float(np.std(h_amp[members], ddof=1)) if len(members) > 1 else None,
                    "m_fraction_mean": float(np.mean(m_amp[members]) / mmax),
                    "m_fraction_sd": float(np.std(m_amp[members], ddof=1) / mmax)
                    if len(members) > 1
                    else None,
                    "baseline_uv": base,
                    "baseline_source": base_src,
                    "n_baseline": n_base,
                    "ratio": ratio,
                    "ratio_se": ratio_se,
                    "ratio_ci95": _ci95(ratio, ratio_se),
                    "stimuli": [int(v) for v in members],
                }
            )
            ratios.setdefault(_rate_key(rate_hz), []).append((ratio, ratio_se))
    rdd, rdd_ci = {}, {}
    for key, pairs in sorted(ratios.items(), key=lambda kv: float(kv[0])):
        values = np.array([r for r, _ in pairs])
        ses = np.array([e for _, e in pairs])
        rdd[key] = float(np.mean(values))
        # mean of independent ratios (one per intensity): se = sqrt(sum se^2) / k
        rdd_ci[key] = _ci95(rdd[key], float(np.sqrt(np.sum(ses**2)) / len(ses)))
    return rdd, rdd_ci, detail


def _ratio_se(ratio: float, num: float, num_sem: float, den: float, den_sem: float) -> float:
    """Standard error of ``num / den`` by the delta method (independent means), NaN if unknown."""
    if not (np.isfinite(ratio) and num > 0 and den > 0):
        return float("nan")
    return float(abs(ratio) * math.sqrt((num_sem / num) ** 2 + (den_sem / den) ** 2))


def _ci95(value: float, se: float) -> list[float] | None:
    """Normal-approximation 95 % interval ``value +- 1.96 se`` (None when ``se`` is unknown)."""
    if not (np.isfinite(value) and np.isfinite(se)):
        return None
    return [value - 1.96 * se, value + 1.96 * se]


def _pair_roles(pidx: np.ndarray) -> np.ndarray:
    """0: not in a pair; 1: first of a pair; 2: second of a pair.

    A pair is a group of exactly two consecutive pulses with ``pulse_index`` 0 then 1; longer
    groups (0, 1, 2, ...) are trains or rate blocks, not pairs.
    """
    role = np.zeros(pidx.size, np.int64)
    i = 0
    while i < pidx.size:
        j = i + 1
        while j < pidx.size and pidx[j] == pidx[j - 1] + 1 and pidx[j] != 0:
            j += 1
        if j - i == 2 and pidx[i] == 0:
            role[i], role[i + 1] = 1, 2
        i = j
    return role


#: Pairs whose intensities differ by more than this factor are not pooled into one ratio.
PAIR_INTENSITY_SPREAD = 1.1


def _intensity_clusters(values: np.ndarray) -> list[np.ndarray]:
    """Indices of ``values`` grouped so that each group spans at most PAIR_INTENSITY_SPREAD."""
    order = np.argsort(values, kind="stable")
    groups, cur, lo = [], [], None
    for k in order:
        v = values[k]
        if cur and not v <= lo * PAIR_INTENSITY_SPREAD + 1e-9:
            groups.append(np.array(cur))
            cur = []
        if not cur:
            lo = v
        cur.append(k)
    if cur:
        groups.append(np.array(cur))
    return groups


def _paired_ratio_se(h1: np.ndarray, h2: np.ndarray) -> float:
    """SE of mean(h2) / mean(h1) by the delta method for paired samples (NaN if unknown).

    ``var(r) = r^2 (s2^2 / (n m2^2) + s1^2 / (n m1^2) - 2 c12 / (n m1 m2))``, with the sample
    covariance ``c12`` of the pairs (H1 and H2 of one pair share the excitability of the moment).
    """
    n = h1.size
    m1, m2 = float(h1.mean()), float(h2.mean())
    if n < 2 or not (m1 > 0 and m2 > 0):
        return float("nan")
    cov = np.cov(h1, h2, ddof=1)
    r = m2 / m1
    var = r**2 * (cov[1, 1] / (n * m2**2) + cov[0, 0] / (n * m1**2) - 2 * cov[0, 1] / (n * m1 * m2))
    return float(math.sqrt(max(var, 0.0)))


def _paired_depression(idx, rate, usable, pair_role, h_amp, intensity, warnings):
    """Paired-pulse depression per interval: mean H2 / mean H1 with a 95% interval.

    Pairs at one interval are pooled only within an intensity span of PAIR_INTENSITY_SPREAD; when
    an interval holds several such groups, its ratio is the mean of the groups' ratios (SE
    ``sqrt(sum SE^2) / k``) and a warning says so.
    """
    pairs: dict[str, list[tuple[float, float, int, int]]] = {}
    for i in range(1, idx.size):
        if pair_role[i] == 2 and pair_role[i - 1] == 1 and usable[i] and usable[i - 1]:
            dt = (idx[i] - idx[i - 1]) / rate
            key = f"{round(dt, 2):g}"
            pairs.setdefault(key, []).append((float(h_amp[i - 1]), float(h_amp[i]), i - 1, i))
    out, ci, detail = {}, {}, []
    for key in sorted(pairs, key=float):
        a = np.array(pairs[key])
        first = a[:, 2].astype(int)
        groups = _intensity_clusters(np.asarray(intensity, float)[first])
        ratios = []
        for g in groups:
            h1, h2 = a[g, 0], a[g, 1]
            m1, m2 = float(h1.mean()), float(h2.mean())
            r = m2 / m1 if m1 > 0 else float("nan")
            se = _paired_ratio_se(h1, h2)
            inten = np.asarray(intensity, float)[first[g]]
            ratios.append((r, se))
            detail.append(
                {
                    "interval_s": float(key),
                    "intensity_ma": float(np.mean(inten)),
                    "intensity_range_ma": [float(inten.min()), float(inten.max())],
                    "n_pairs": int(g.size),
                    "h1_mean_uv": m1,
                    "h2_mean_uv": m2,
                    "ratio_of_means": r,
                    "ratio_se": se,
                    "ratio_ci95": _ci95(r, se),
                    "mean_of_ratios": float(np.mean(h2 / np.maximum(h1, 1e-12))),
                    "pairs": [[int(p[2]), int(p[3])] for p in a[g]],
                }
            )
        values = np.array([r for r, _ in ratios])
        ses = np.array([e for _, e in ratios])
        out[key] = float(np.mean(values))
        ci[key] = _ci95(out[key], float(np.sqrt(np.sum(ses**2)) / len(ses)))
        if len(groups) > 1:
            spans = ", ".join(
                f"{d['intensity_range_ma'][0]:g}-{d['intensity_range_ma'][1]:g} mA"
                for d in detail[-len(groups) :]
            )
            warnings.append(
                f"paired pulses at {key} s were given at {len(groups)} different intensities "
                f"({spans}): not pooled; the ratio is the mean of the per-intensity ratios"
            )
    return out, ci, detail
