"""``analyze_hreflex``: from EMG and stimulus events to recruitment, Hmax/Mmax and depression.

:func:`analyze_hreflex` chains the stages, each a public function of its own module that takes
the frozen :class:`~dsp.hreflex._inputs.HReflexSettings` and returns a small record:

0. :func:`dsp.hreflex._inputs.check_inputs` (-> ``HReflexInputs``, ``HReflexSettings``)
1. :func:`dsp.hreflex._epochs.find_stimuli` (artifacts -> ``Stimuli``)
2. :func:`dsp.hreflex._epochs.cut_epochs` and :func:`~dsp.hreflex._epochs.remove_tail`
   (sweeps, mains hum, artifact tail -> ``Epochs``)
3. :func:`dsp.hreflex._epochs.gate_background` (background band)
4. :func:`dsp.hreflex._windows.locate_windows` (M and H windows -> ``Windows``)
5. :func:`dsp.hreflex._windows.measure_sweeps` (amplitudes, latencies -> ``Sweeps``)
6. :func:`dsp.hreflex._outcomes.fit_recruitment` (-> ``Recruitment``)
7. :func:`dsp.hreflex._outcomes.depression` (test intensity, depression -> ``Depression``)
"""

from __future__ import annotations

import numpy as np

from dsp.hreflex._epochs import cut_epochs, find_stimuli, gate_background, remove_tail
from dsp.hreflex._inputs import (
    MIN_STABILITY_TRIALS,
    ONSET_P_MAX,
    STANDARD_RATES_HZ,
    HReflexInputError,
    HReflexInputs,
    HReflexSettings,
    _pair_roles,
    _rate_key,
    check_inputs,
)
from dsp.hreflex._outcomes import depression, fit_recruitment
from dsp.hreflex._windows import locate_windows, measure_sweeps
from dsp.hreflex.presets import REFERENCES
from dsp.hreflex.result import HReflexResult

__all__ = [
    "MIN_STABILITY_TRIALS",
    "ONSET_P_MAX",
    "STANDARD_RATES_HZ",
    "HReflexInputError",
    "HReflexInputs",
    "HReflexSettings",
    "_pair_roles",
    "_rate_key",
    "analyze_hreflex",
    "run_stages",
]


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
    inputs, settings = check_inputs(
        emg_uv, emg_rate_hz, stim_sample_index, stim_intensity_ma, stim_width_us=stim_width_us,
        pulse_index=pulse_index, stim_rate_hz=stim_rate_hz, muscle=muscle, channel=channel,
        m_window_ms=m_window_ms, h_window_ms=h_window_ms, background_band_uv=background_band_uv,
        blank_ms=blank_ms, artifact_search_ms=artifact_search_ms,
        artifact_offset_range_ms=artifact_offset_range_ms, highpass_hz=highpass_hz,
        mains_hz=mains_hz, artifact_tail=artifact_tail,
        recruitment_interval_s=recruitment_interval_s, test_m_fraction=test_m_fraction,
        qc_band=qc_band, test_tolerance=test_tolerance, rdd_discard=rdd_discard,
        baseline_rate_hz=baseline_rate_hz, n_boot=n_boot, seed=seed,
    )  # fmt: skip
    return run_stages(inputs, settings)


def run_stages(inputs: HReflexInputs, settings: HReflexSettings) -> HReflexResult:
    """Run stages 1-7 on checked inputs (see the module docstring).

    Parameters
    ----------
    inputs : HReflexInputs
    settings : HReflexSettings
        Both from :func:`dsp.hreflex._inputs.check_inputs`.

    Returns
    -------
    HReflexResult
    """
    st = find_stimuli(inputs, settings)
    ep = cut_epochs(inputs, st, settings)
    tail, epochs = remove_tail(ep, inputs, settings)
    band, band_source = gate_background(ep, st, inputs, settings)
    win = locate_windows(ep, inputs, settings, st, tail, epochs)
    sw = measure_sweeps(ep, win, inputs, st.stimuli)
    rcr = fit_recruitment(inputs, settings, ep.usable, st.interval, sw.m_amp, sw.h_amp)
    dep = depression(
        inputs, settings, st.stimuli, ep.usable, st.interval, st.nominal, sw.m_amp, sw.h_amp, rcr
    )
    warnings = [*st.warnings, *win.warnings, *rcr.warnings, *dep.warnings]
    artifact = _artifact_summary(st, win.tail, inputs.n_st, warnings)
    m_fit, h_fit, nan2 = rcr.m_fit, rcr.h_fit, (float("nan"), float("nan"))
    derived = {
        "background_band_uv": band,
        "background_band_source": band_source,
        "mains_hz": ep.mains_used,
        "recruitment_rule": rcr.rec_rule,
        "n_recruitment_stimuli": int(rcr.rec.sum()),
    }
    return HReflexResult(
        muscle=inputs.preset.name,
        channel=int(settings.channel),
        emg_rate_hz=inputs.rate,
        mmax_uv=float(rcr.mmax),
        mmax_uv_ci=tuple(m_fit.ci.get("max_uv", nan2)),
        hmax_uv=float(rcr.hmax),
        hmax_uv_ci=tuple(h_fit.ci.get("max_uv", nan2)),
        hmax_mmax=float(rcr.ratio),
        hmax_mmax_ci=tuple(rcr.boot.get("hmax_mmax", nan2)),
        m_latency_ms=sw.m_lat,
        h_latency_ms=sw.h_lat,
        m_peak_latency_ms=sw.m_pk,
        h_peak_latency_ms=sw.h_pk,
        m_window=win.m_win,
        h_window=win.h_win,
        m_fit=m_fit,
        h_fit=h_fit,
        test_intensity=dep.test,
        rate_dependent_depression=dep.rdd,
        rate_dependent_depression_detail=dep.rdd_detail,
        rate_dependent_depression_ci=dep.rdd_ci,
        paired_pulse_depression=dep.ppd,
        paired_pulse_depression_detail=dep.ppd_detail,
        paired_pulse_depression_ci=dep.ppd_ci,
        artifact=artifact,
        stimuli=st.stimuli,
        exclusions=[
            {"stimulus": s.stimulus, "reason": s.exclusion} for s in st.stimuli if not s.included
        ],
        references=dict(REFERENCES),
        warnings=warnings,
        parameters=settings.to_dict(inputs.preset, derived),
    )


def _artifact_summary(st, tail, n_st: int, warnings: list[str]) -> dict:
    """The result's ``artifact`` record; warns when onsets differ from the events by > 1 ms."""
    arts, session_off, stimuli = st.arts, st.session_off, st.stimuli
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
    return artifact
