"""Result objects of :func:`dsp.hreflex.analyze_hreflex` (dataclasses with ``to_dict()``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from dsp.hreflex.recruitment import RecruitmentFit
from dsp.hreflex.waves import WaveWindow

SCHEMA = "tonuslab.hreflex/1"


def _num(v):
    """JSON-safe float: NaN and infinities become None."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _pair(v):
    return None if v is None else [_num(v[0]), _num(v[1])]


@dataclass
class StimulusMeasure:
    """Measures of one delivered stimulus (one row of the per-stimulus table).

    Attributes
    ----------
    stimulus : int
        Position of the stimulus in the input arrays.
    event_index : int
        Device event sample index.
    onset_index : int
        Detected artifact onset sample (= ``event_index`` when not detected).
    artifact_detected : bool
        Whether the artifact was found.
    artifact_offset_ms : float
        Detected onset minus event time, ms (NaN when not detected).
    saturated_ms : float
        ADC saturation after the onset, ms.
    blank_ms : float
        Blanked (bridged) stretch after the onset, ms.
    intensity_ma : float
        Stimulus intensity, mA.
    width_us : float
        Pulse width, us (NaN when not given).
    pulse_index : int
        0 for a single pulse or the first of a pair, 1 for the second of a pair.
    interval_s : float
        Time since the previous stimulus, s (NaN for the first).
    rate_hz : float
        Nominal stimulation rate of this stimulus (given, or ``1 / interval_s`` snapped to the
        usual block rates), Hz.
    background_uv : float
        Mean rectified EMG in the background bin before the stimulus (bin mean removed), uV.
    m_p2p_uv, h_p2p_uv : float
        Peak-to-peak amplitude in the M / H window, uV.
    m_area_uv_ms, h_area_uv_ms : float
        Integral of the rectified signal in the window, uV*ms.
    m_onset_ms, h_onset_ms : float
        Onset latency after the artifact onset, ms (NaN when the wave is not above the noise).
    m_peak_ms, h_peak_ms : float
        Latency of the largest absolute deflection in the window, ms (NaN below the noise).
    noise_uv : float
        Robust SD of the pre-stimulus baseline, uV.
    included : bool
        Whether the stimulus entered the session-level analysis.
    exclusion : str or None
        Why it was excluded.
    """

    stimulus: int
    event_index: int
    onset_index: int
    artifact_detected: bool
    artifact_offset_ms: float
    saturated_ms: float
    blank_ms: float
    intensity_ma: float
    width_us: float
    pulse_index: int
    interval_s: float
    rate_hz: float
    background_uv: float = float("nan")
    m_p2p_uv: float = float("nan")
    m_area_uv_ms: float = float("nan")
    m_onset_ms: float = float("nan")
    m_peak_ms: float = float("nan")
    h_p2p_uv: float = float("nan")
    h_area_uv_ms: float = float("nan")
    h_onset_ms: float = float("nan")
    h_peak_ms: float = float("nan")
    noise_uv: float = float("nan")
    included: bool = True
    exclusion: str | None = None

    def to_dict(self) -> dict:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or v is None or isinstance(v, str):
                out[f.name] = v
            elif isinstance(v, int):
                out[f.name] = int(v)
            else:
                out[f.name] = _num(v)
        return out


@dataclass
class TestIntensity:
    """The intensity putting M at a chosen fraction of Mmax, and M stability there.

    Attributes
    ----------
    m_fraction : float
        Target M / Mmax (domain notes: 10-33%, QC band 25 +/- 10%).
    intensity_ma : float
        Intensity where the fitted M reaches ``m_fraction`` of Mmax, mA.
    on_rising_h_limb : bool
        Whether that intensity lies below the fitted intensity of Hmax.
    h_predicted_uv : float
        Fitted H at that intensity, uV.
    trials_intensity_ma : float
        Mean intensity of the trials used for the stability figures, mA: every trial within
        ``tolerance`` (relative) of ``intensity_ma``; when fewer than 3 are that close, the
        recorded level with the most trials within one ladder step if it has more (else the
        nearest level).
    n_trials : int
        Trials pooled.
    m_fraction_mean, m_fraction_sd : float
        Mean and SD of M / Mmax over those trials.
    m_cv : float
        Coefficient of variation of M over those trials.
    fraction_in_qc_band : float
        Share of those trials with M / Mmax inside ``qc_band``.
    qc_band : (float, float)
        The M / Mmax quality band.
    intensity_distance_ma : float
        Largest distance of a pooled trial's intensity from ``intensity_ma``, mA.
    trials_levels_ma : tuple of float
        The recorded intensity levels pooled, mA.
    tolerance : float
        Relative pooling tolerance (0.03 = +/-3%).
    trials_rule : str
        Which rule chose the trials (see ``trials_intensity_ma``).
    """

    m_fraction: float
    intensity_ma: float
    on_rising_h_limb: bool
    h_predicted_uv: float
    trials_intensity_ma: float
    n_trials: int
    m_fraction_mean: float
    m_fraction_sd: float
    m_cv: float
    fraction_in_qc_band: float
    qc_band: tuple[float, float] = (0.15, 0.35)
    intensity_distance_ma: float = float("nan")
    trials_levels_ma: tuple[float, ...] = ()
    tolerance: float = 0.03
    trials_rule: str = ""

    def to_dict(self) -> dict:
        return {
            "m_fraction": _num(self.m_fraction),
            "intensity_ma": _num(self.intensity_ma),
            "on_rising_h_limb": bool(self.on_rising_h_limb),
            "h_predicted_uv": _num(self.h_predicted_uv),
            "trials_intensity_ma": _num(self.trials_intensity_ma),
            "n_trials": int(self.n_trials),
            "m_fraction_mean": _num(self.m_fraction_mean),
            "m_fraction_sd": _num(self.m_fraction_sd),
            "m_cv": _num(self.m_cv),
            "fraction_in_qc_band": _num(self.fraction_in_qc_band),
            "qc_band": _pair(self.qc_band),
            "intensity_distance_ma": _num(self.intensity_distance_ma),
            "trials_levels_ma": [_num(v) for v in self.trials_levels_ma],
            "tolerance": _num(self.tolerance),
            "trials_rule": self.trials_rule,
        }


@dataclass
class HReflexResult:
    """Everything :func:`dsp.hreflex.analyze_hreflex` measured in one session and channel.

    Amplitudes are peak-to-peak in uV, latencies in ms after the detected artifact onset,
    intensities in mA. Intervals are 95% case-bootstrap percentile intervals over stimuli.

    Attributes
    ----------
    muscle : str
        Preset used.
    channel : int
        EMG channel analysed.
    emg_rate_hz : float
        Sampling rate, Hz.
    mmax_uv, hmax_uv : float
        Mmax (sigmoid plateau) and Hmax (peak of the fitted H curve), uV.
    mmax_uv_ci, hmax_uv_ci : (float, float)
        Their 95% intervals, uV.
    hmax_mmax : float
        Hmax / Mmax.
    hmax_mmax_ci : (float, float)
        Its 95% interval.
    m_latency_ms, h_latency_ms : float
        Onset latencies of the M- and H-wave, from the average of the sweeps with large waves.
    m_peak_latency_ms, h_peak_latency_ms : float
        Latencies of the largest deflection in those averages, ms.
    m_window, h_window : WaveWindow
        Where each wave was measured.
    m_fit, h_fit : RecruitmentFit
        Recruitment fits (M sigmoid; H product of sigmoids).
    test_intensity : TestIntensity
        Intensity for follow-up tests and M stability there.
    rate_dependent_depression : dict
        Rate (Hz, as a string key such as ``"1"``) -> H at that rate / H at 0.1 Hz.
    rate_dependent_depression_detail : list of dict
        Per rate and intensity: n, mean H, mean M/Mmax, baseline source, ratio with its
        standard error (``ratio_se``, delta method on the two means) and ``ratio_ci95``.
    rate_dependent_depression_ci : dict
        Rate -> 95 % interval ``[low, high]`` of the ratio (normal approximation; None when a
        block has a single pulse). A baseline taken from the recruitment fit enters with the
        bootstrap SD of the fitted H at that intensity.
    paired_pulse_depression : dict
        Interval (s, string key such as ``"2.5"``) -> mean H2 / mean H1.
    paired_pulse_depression_detail : list of dict
        Per interval and intensity group: n pairs, mean H1, mean H2, ratio with ``ratio_se``
        (delta method for paired samples, with the H1-H2 covariance) and ``ratio_ci95``, mean
        of per-pair ratios, the pairs.
    paired_pulse_depression_ci : dict
        Interval -> 95 % interval ``[low, high]`` of H2 / H1 (None with a single pair). Pairs at
        one interval but intensities more than 10% apart are not pooled: the interval's ratio is
        the mean of the per-intensity ratios (a warning says so).
    artifact : dict
        Artifact summary: detected count, offset median / max (ms), saturation, blanking.
    stimuli : list of StimulusMeasure
        The per-stimulus table.
    exclusions : list of dict
        ``{"stimulus": i, "reason": str}`` for every excluded stimulus.
    references : dict
        Published reference values with sources, beside the numbers.
    warnings : list of str
        Anything the user should know (fits that did not converge, windows not found, ...).
    parameters : dict
        The analysis parameters actually used.
    """

    muscle: str
    channel: int
    emg_rate_hz: float
    mmax_uv: float
    mmax_uv_ci: tuple[float, float]
    hmax_uv: float
    hmax_uv_ci: tuple[float, float]
    hmax_mmax: float
    hmax_mmax_ci: tuple[float, float]
    m_latency_ms: float
    h_latency_ms: float
    m_peak_latency_ms: float
    h_peak_latency_ms: float
    m_window: WaveWindow
    h_window: WaveWindow
    m_fit: RecruitmentFit
    h_fit: RecruitmentFit
    test_intensity: TestIntensity | None
    rate_dependent_depression: dict[str, float]
    rate_dependent_depression_detail: list[dict]
    paired_pulse_depression: dict[str, float]
    paired_pulse_depression_detail: list[dict]
    artifact: dict
    stimuli: list[StimulusMeasure]
    exclusions: list[dict]
    references: dict
    warnings: list[str] = field(default_factory=list)
    parameters: dict = field(default_factory=dict)
    rate_dependent_depression_ci: dict[str, list[float] | None] = field(default_factory=dict)
    paired_pulse_depression_ci: dict[str, list[float] | None] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-serialisable dict with stable keys (NaN -> None)."""
        return {
            "schema": SCHEMA,
            "muscle": self.muscle,
            "channel": int(self.channel),
            "emg_rate_hz": _num(self.emg_rate_hz),
            "n_stimuli": len(self.stimuli),
            "n_included": sum(1 for s in self.stimuli if s.included),
            "mmax_uv": _num(self.mmax_uv),
            "mmax_uv_ci": _pair(self.mmax_uv_ci),
            "hmax_uv": _num(self.hmax_uv),
            "hmax_uv_ci": _pair(self.hmax_uv_ci),
            "hmax_mmax": _num(self.hmax_mmax),
            "hmax_mmax_ci": _pair(self.hmax_mmax_ci),
            "m_latency_ms": _num(self.m_latency_ms),
            "h_latency_ms": _num(self.h_latency_ms),
            "m_peak_latency_ms": _num(self.m_peak_latency_ms),
            "h_peak_latency_ms": _num(self.h_peak_latency_ms),
            "m_window": self.m_window.to_dict(),
            "h_window": self.h_window.to_dict(),
            "recruitment": {"m": _fit_dict(self.m_fit), "h": _fit_dict(self.h_fit)},
            "test_intensity": None
            if self.test_intensity is None
            else self.test_intensity.to_dict(),
            "rate_dependent_depression": {
                k: _num(v) for k, v in self.rate_dependent_depression.items()
            },
            "rate_dependent_depression_ci": {
                k: None if v is None else _pair(v)
                for k, v in self.rate_dependent_depression_ci.items()
            },
            "rate_dependent_depression_detail": [
                _clean(d) for d in self.rate_dependent_depression_detail
            ],
            "paired_pulse_depression": {
                k: _num(v) for k, v in self.paired_pulse_depression.items()
            },
            "paired_pulse_depression_ci": {
                k: None if v is None else _pair(v)
                for k, v in self.paired_pulse_depression_ci.items()
            },
            "paired_pulse_depression_detail": [
                _clean(d) for d in self.paired_pulse_depression_detail
            ],
            "artifact": _clean(self.artifact),
            "stimuli": [s.to_dict() for s in self.stimuli],
            "exclusions": [_clean(e) for e in self.exclusions],
            "references": self.references,
            "warnings": list(self.warnings),
            "parameters": _clean(self.parameters),
        }


def _fit_dict(fit: RecruitmentFit) -> dict:
    d = fit.to_dict()
    return _clean(d)


def _clean(obj):
    """Recursively make ``obj`` JSON-safe (NaN -> None, tuples -> lists, numpy -> Python)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if hasattr(obj, "item") and not isinstance(obj, (int, float)):
        obj = obj.item()
    if isinstance(obj, bool):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return _num(obj)
    return obj
