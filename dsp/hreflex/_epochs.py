"""Stages 1-3 of the H-reflex analysis: artifacts, epochs (mains, artifact tail), background.

:func:`find_stimuli` finds each stimulus artifact and starts the per-stimulus table;
:func:`cut_epochs` cuts, baselines and de-hums the sweeps; :func:`fit_tail` and
:func:`clean_epochs` fit and subtract the artifact tail; :func:`gate_background` drops the sweeps
whose background EMG lies outside the band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp.hreflex._inputs import HReflexInputError, HReflexInputs, HReflexSettings, _snap_rate
from dsp.hreflex.artifact import (
    bridge,
    find_artifacts,
    fit_tail_template,
    session_artifact_offset,
)
from dsp.hreflex.result import StimulusMeasure
from dsp.hreflex.waves import mains_amplitude_uv, ms_to_index, remove_mains


@dataclass(frozen=True)
class Stimuli:
    """Artifacts and the per-stimulus table.

    Attributes
    ----------
    session_off : ArtifactOffset
        Session-wide event-to-artifact offset.
    arts : list of ArtifactFinding
        One per stimulus.
    interval, nominal : ndarray, shape (n_stimuli,)
        Interval since the previous pulse (s) and block rate (Hz).
    stimuli : list of StimulusMeasure
        Filled in by the later stages.
    warnings : tuple of str
    """

    session_off: object
    arts: list
    interval: np.ndarray
    nominal: np.ndarray
    stimuli: list
    warnings: tuple[str, ...]


def find_stimuli(inp: HReflexInputs, settings: HReflexSettings) -> Stimuli:
    """Find the artifacts, the intervals and the block rates of every stimulus."""
    x, rate, idx, intensity, per_ms = inp.x, inp.rate, inp.idx, inp.intensity, inp.per_ms
    width, pidx, n_st = inp.width, inp.pidx, inp.n_st
    artifact_search_ms = settings.artifact_search_ms
    warnings: list[str] = []
    session_off = session_artifact_offset(
        x, rate, idx, intensity, range_ms=tuple(settings.artifact_offset_range_ms)
    )
    arts = find_artifacts(
        x, rate, idx, search_ms=artifact_search_ms, offset_ms=session_off.offset_ms,
        blank_ms=settings.blank_ms,
    )  # fmt: skip
    _artifact_warnings(arts, session_off, intensity, artifact_search_ms, warnings)
    interval = np.full(n_st, np.nan)
    interval[1:] = np.diff(idx) / rate
    if inp.given_rate is not None:
        nominal = np.asarray(inp.given_rate, float)
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
    return Stimuli(session_off, arts, interval, nominal, stimuli, tuple(warnings))


@dataclass(frozen=True)
class Epochs:
    """The sweeps around each stimulus, before the artifact tail is removed.

    Attributes
    ----------
    raw_epochs : ndarray, shape (n_rows, n_stimuli)
        Baselined, de-hummed sweeps (uV); zero for unusable stimuli.
    e0 : int
        First row's offset from the artifact onset, samples; ``ep_start_ms`` the same in ms.
    t_rows_ms : ndarray, shape (n_rows,)
        Time of each row from the artifact onset, ms.
    raw_bg, noise : ndarray, shape (n_stimuli,)
        Background EMG (mean absolute deviation) and pre-stimulus noise (robust SD), uV.
    usable : ndarray of bool, shape (n_stimuli,)
        Sweeps still in the analysis (the background gate clears more of them, in place).
    blank_rows : ndarray of int, shape (n_stimuli,)
        Blanked samples after each artifact onset.
    mains_used : float or None
        The mains frequency removed, Hz.
    """

    raw_epochs: np.ndarray
    e0: int
    ep_start_ms: float
    t_rows_ms: np.ndarray
    z0: int
    z1: int
    raw_bg: np.ndarray
    noise: np.ndarray
    usable: np.ndarray
    blank_rows: np.ndarray
    mains_used: float | None


def cut_epochs(inp: HReflexInputs, st: Stimuli, settings: HReflexSettings) -> Epochs:
    """Cut the sweeps, measure background and noise, remove the mains hum."""
    x, intensity, per_ms, n_st, preset = inp.x, inp.intensity, inp.per_ms, inp.n_st, inp.preset
    arts, stimuli, mains_hz = st.arts, st.stimuli, settings.mains_hz
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
    blank_rows = np.array([a.blank_end_index - a.onset_index for a in arts])
    raw_epochs = epochs.copy()
    return Epochs(
        raw_epochs,
        e0,
        ep_start_ms,
        t_rows_ms,
        z0,
        z1,
        raw_bg,
        noise,
        usable,
        blank_rows,
        mains_used,
    )


def clean_epochs(ep: Epochs, inp: HReflexInputs, tail_model) -> np.ndarray:
    """The sweeps with the artifact tail subtracted and the blank bridged, shape (n_rows, n)."""
    raw_epochs, t_rows_ms, usable, intensity = ep.raw_epochs, ep.t_rows_ms, ep.usable, inp.intensity
    e0, blank_rows = ep.e0, ep.blank_rows
    out = raw_epochs.copy()
    per_ma = tail_model.per_ma(t_rows_ms) if tail_model is not None and tail_model.used else None
    for i in np.nonzero(usable)[0]:
        if per_ma is not None:
            out[:, i] -= intensity[i] * per_ma
        bridge(out[:, i], -e0 - 1, blank_rows[i] - e0)
    return out


def fit_tail(
    ep: Epochs, inp: HReflexInputs, settings: HReflexSettings, exclude_ms=None, until_ms=None,
    all_sweeps=False, wave_spans=None,
):  # fmt: skip
    """Artifact-tail template from the lowest intensities (None: not fitted)."""
    usable, intensity, blank_rows, per_ms = ep.usable, inp.intensity, ep.blank_rows, inp.per_ms
    preset, noise = inp.preset, ep.noise
    if settings.artifact_tail != "template" or usable.sum() < 3:
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
        ep.raw_epochs, ep.t_rows_ms, intensity, cols, (fit_from, fit_to),
        float(np.median(noise[usable])), exclude_ms=exclude_ms,
        blank_end_ms=blank_rows / per_ms + 0.2 if all_sweeps else None,
        wave_spans=wave_spans,
    )  # fmt: skip


def remove_tail(ep: Epochs, inp: HReflexInputs, settings: HReflexSettings):
    """First artifact-tail fit and subtraction, then the optional high-pass.

    Returns
    -------
    tail : TailTemplate or None
    epochs : ndarray, shape (n_rows, n_stimuli)
    """
    tail = fit_tail(ep, inp, settings)
    epochs = clean_epochs(ep, inp, tail)
    usable, highpass_hz = ep.usable, settings.highpass_hz
    if highpass_hz is not None and np.any(usable):
        from scipy.signal import butter, sosfiltfilt

        sos = butter(2, float(highpass_hz), btype="highpass", fs=inp.rate, output="sos")
        epochs[:, usable] = sosfiltfilt(sos, epochs[:, usable], axis=0)
    return tail, epochs


def gate_background(ep: Epochs, st: Stimuli, inp: HReflexInputs, settings: HReflexSettings):
    """Exclude sweeps whose background EMG lies outside the band (clears ``ep.usable``).

    Returns
    -------
    band : (float, float)
        The background band, uV.
    band_source : str

    Raises
    ------
    HReflexInputError
        Fewer than 3 usable sweeps remain.
    """
    usable, raw_bg, stimuli = ep.usable, ep.raw_bg, st.stimuli
    background_band_uv, n_st = settings.background_band_uv, inp.n_st
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
    return band, band_source


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
