"""The public analysis: per-stretch measurements, DSRT-velocity fit, Tardieu and gain.

:func:`analyze_stretch_reflex` chains the stages, each a public function of its own module
that takes the frozen :class:`~dsp.stretch_reflex._settings.StretchReflexSettings` and returns
a small record:

0. :func:`~dsp.stretch_reflex._settings.stretch_reflex_settings` (options -> settings)
1. :func:`~dsp.stretch_reflex._signals.check_inputs` (recordings -> ``Inputs``)
2. :func:`~dsp.stretch_reflex._signals.prepare_signals` (-> ``Signals``: filtered, stretches)
3. :func:`~dsp.stretch_reflex._stretches.measure_stretches` (-> ``Stretches``)
4. :func:`~dsp.stretch_reflex._fit_stage.fit_line` (-> ``LineFit``)
5. :func:`~dsp.stretch_reflex._fit_stage.detector_spread` (-> ``DetectorSpread``)
6. :func:`~dsp.stretch_reflex._tardieu.tardieu` (-> ``Tardieu``) and
   :func:`~dsp.stretch_reflex._tardieu.emg_gain`
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from dsp.stretch_reflex._fit_stage import detector_spread, fit_line
from dsp.stretch_reflex._onsets import detector_names
from dsp.stretch_reflex._result import StretchReflexResult
from dsp.stretch_reflex._settings import StretchReflexSettings, stretch_reflex_settings
from dsp.stretch_reflex._signals import Inputs, check_inputs, check_shapes, prepare_signals
from dsp.stretch_reflex._stretches import (
    REASON_ACTIVE,
    REASON_GAP,
    REASON_IRREGULAR,
    REASON_NO_REFLEX,
    REASON_OUTLIER,
    measure_stretches,
)
from dsp.stretch_reflex._tardieu import emg_gain, tardieu

__all__ = [
    "REASON_ACTIVE",
    "REASON_GAP",
    "REASON_IRREGULAR",
    "REASON_NO_REFLEX",
    "REASON_OUTLIER",
    "StretchReflexSettings",
    "analyze_stretch_reflex",
    "available_detectors",
    "run_stages",
    "stretch_reflex_settings",
]


def available_detectors() -> tuple[str, ...]:
    """Names accepted by ``analyze_stretch_reflex(detector=...)``."""
    return detector_names()


def analyze_stretch_reflex(
    emg_uv,
    emg_rate_hz: float,
    angle_deg,
    angle_rate_hz: float,
    *,
    channel: int = 0,
    passive_range_deg: Sequence[float] | None = None,
    detector: str = "threshold",
    prompt_times_s: Sequence[float] | None = None,
    reflex_delay_s: float = 0.0,
    band_hz: tuple[float, float] = (20.0, 450.0),
    line_hz: float | None = None,
    detector_params: dict | None = None,
    envelope_hz: float = 50.0,
    angle_cutoff_hz: float = 20.0,
    baseline_s: float = 0.2,
    threshold_sd: float = 3.0,
    min_on_s: float = 0.03,
    on_velocity_deg_s: float = 5.0,
    rest_velocity_deg_s: float = 1.0,
    min_excursion_deg: float = 15.0,
    active_factor: float = 3.0,
    irregular_fraction: float = 0.25,
    catch_drop_fraction: float = 0.2,
    release_fraction: float = 0.05,
    catch_window_s: float = 0.4,
    catch_residual_fraction: float = 0.2,
    clonus_min_beats: int = 4,
    gain_tail_s: float = 0.1,
    min_fit_stretches: int = 4,
    min_velocity_spread_deg_s: float = 50.0,
    slow_max_velocity_deg_s: float = 30.0,
    max_mu_p_value: float = 0.05,
    min_reflex_consistency: float = 0.5,
    n_bootstrap: int = 2000,
    seed: int | np.random.Generator | None = 0,
    detector_sensitivity: bool = True,
) -> StretchReflexResult:
    """Velocity-dependent stretch reflex of one muscle from EMG and goniometer recordings.

    Finds every passive lengthening of the muscle in the angle signal (or follows the given
    prompts), measures the EMG reflex and the kinematics of each stretch, fits the dynamic
    stretch-reflex threshold against velocity, DSRT = lambda - mu * velocity (Levin & Feldman
    1994; Calota et al. 2008), and derives Tardieu angles and grade, clonus and the
    velocity-dependent EMG gain. Definitions and sources: docs/stretch-reflex.md.

    Parameters
    ----------
    emg_uv : array_like, shape (n_emg,) or (n_emg, n_channels)
        EMG in microvolts, NaN in gaps. Both signals start at the same instant (t = 0).
    emg_rate_hz : float
        EMG sampling rate.
    angle_deg : array_like, shape (n_angle,) or (n_angle, 1)
        Joint angle in degrees, increasing as the tested muscle lengthens
        (``sign * goniometer_deg``), NaN in gaps.
    angle_rate_hz : float
        Angle sampling rate.
    channel : int
        EMG column to analyse.
    passive_range_deg : (float, float), optional
        The joint's passive range in the analysed convention. When omitted it is estimated from
        the slow stretches (smallest start angle to R2).
    detector : str
        Onset detector for the reported DSRTs: ``"threshold"`` (envelope > baseline mean +
        ``threshold_sd`` SD for ``min_on_s``), ``"tkeo"`` (the same on the Teager-Kaiser energy)
        or ``"changepoint"`` (variance changepoint refined around the threshold onset).
    prompt_times_s : sequence of float, optional
        Times of stretch prompts (events), in s from the start. Each prompt takes the first
        stretch starting after it (up to 0.25 s early) and before the next prompt; stretches
        without a prompt are ignored.
    reflex_delay_s : float
        Conduction and electromechanical delay subtracted from the EMG onset before reading the
        angle. The literature convention (and the default) is 0: DSRT = angle at EMG onset.
    band_hz, envelope_hz, angle_cutoff_hz : float
        EMG band-pass (zero-phase 4th-order Butterworth), envelope low-pass and angle low-pass
        corners in Hz.
    line_hz : float or None
        Mains frequency notched out (with its harmonics up to the 5th) before everything else.
        Default None: a zero-phase notch (Q = 30) rings for about 0.2 s on both sides of a
        burst and moves onsets earlier by tens of ms on large reflexes; the envelope low-pass
        already rejects most of the mains ripple.
    detector_params : dict, optional
        Extra parameters per detector name (e.g. ``{"tkeo": {"k_sd": 10}}``): ``threshold``
        accepts ``k_sd``, ``min_duration_s``, ``min_off_s``; ``tkeo`` the same and ``band_hz``;
        ``changepoint`` ``ratio``, ``min_duration_s``, ``penalty``, ``max_changes``,
        ``decimate`` (see :mod:`dsp.onsets`). Filters and baseline are set by the analysis.
    baseline_s : float
        Length of the pre-stretch window (baseline for the onset detectors and the pre-stretch
        EMG level).
    threshold_sd, min_on_s : float
        Onset rule: standard deviations above the baseline mean, and minimum time above.
    on_velocity_deg_s, rest_velocity_deg_s, min_excursion_deg : float
        Stretch segmentation: velocity that marks a movement, velocity regarded as rest, and the
        least lengthening that counts as a stretch.
    active_factor : float
        A stretch is "muscle active" when its pre-stretch EMG RMS exceeds this multiple of the
        record's rest level (10th percentile of 100 ms RMS windows).
    irregular_fraction : float
        A stretch is irregular when, before the reflex onset, the velocity dips and recovers by
        more than this fraction of its peak (or it stopped and restarted).
    catch_drop_fraction, release_fraction, catch_window_s, catch_residual_fraction : float
        Catch: within ``catch_window_s`` after the onset the velocity falls from its running
        maximum by at least ``catch_drop_fraction`` of the onset velocity (and 5 deg/s). It is
        a catch when the movement then either resumes, the velocity rising again within
        ``catch_window_s`` by ``release_fraction`` of the onset velocity (and 5 deg/s, and 6 x
        the goniometer's velocity noise at rest): the **release**; or goes on slower without a
        release: the fall was abrupt (``catch_drop_fraction`` of the onset velocity lost within
        50 ms), levels off within the window (less than a quarter of the steepest 50 ms loss)
        and the velocity stays >= ``catch_residual_fraction`` of the onset velocity (and
        ``on_velocity_deg_s``) for 100 ms. The ordinary end of a stretch is neither.
    clonus_min_beats : int
        Fewest regular beats (4-12 Hz) that make a clonus episode (beats: peaks of the 20 Hz
        envelope standing out from both the resting noise and the tonic reflex activity).
    gain_tail_s : float
        The stretch window for the RMS-EMG gain extends this far past the stretch end.
    min_fit_stretches : int
        Fewest DSRTs for a regression (fewer: TSRT is NaN, reported as outside the range).
    min_velocity_spread_deg_s : float
        Narrower onset-velocity ranges raise a "poorly determined" warning.
    slow_max_velocity_deg_s : float
        The slowest stretches (which give R2 and the estimated range) should stay below this
        median peak velocity (Tardieu V1); faster ones raise a warning.
    max_mu_p_value, min_reflex_consistency : float
        A fitted line is a velocity-dependent reflex (and its TSRT can be inside the range) when
        mu > 0 with a one-sided OLS p-value below ``max_mu_p_value``, and at least
        ``min_reflex_consistency`` of the stretches that went 5 deg past the line's DSRT at
        their peak velocity show a reflex.
    n_bootstrap : int
        Bootstrap resamples for the 95% intervals (0 disables them).
    seed : int or numpy.random.Generator, optional
        Seed or generator for the bootstrap.
    detector_sensitivity : bool
        Also refit lambda and mu with every detector, report the spread and widen the 95%
        intervals by it. Off, the intervals are sampling-only and under-cover (a warning says
        so).

    Returns
    -------
    StretchReflexResult
        Session metrics, the per-stretch table, warnings and the settings used.

    Raises
    ------
    dsp.SignalError
        Bad shapes, rates, channel, detector, ``detector_params`` (unknown detector or
        parameter, wrong type or range), prompts or range; EMG and angle covering different
        durations at the given rates (a wrong rate); Inf samples (NaN marks gaps); an analysed
        EMG channel that is flat or stuck at one value in more than half of the recording
        (saturated amplifier, electrode off), where "no reflex" would be a false finding.
    """
    inputs = check_shapes(emg_uv, emg_rate_hz, angle_deg, angle_rate_hz, channel)
    settings = stretch_reflex_settings(
        inputs.emg_rate_hz,
        channel=channel,
        passive_range_deg=passive_range_deg,
        detector=detector,
        prompt_times_s=prompt_times_s,
        reflex_delay_s=reflex_delay_s,
        band_hz=band_hz,
        line_hz=line_hz,
        detector_params=detector_params,
        envelope_hz=envelope_hz,
        angle_cutoff_hz=angle_cutoff_hz,
        baseline_s=baseline_s,
        threshold_sd=threshold_sd,
        min_on_s=min_on_s,
        on_velocity_deg_s=on_velocity_deg_s,
        rest_velocity_deg_s=rest_velocity_deg_s,
        min_excursion_deg=min_excursion_deg,
        active_factor=active_factor,
        irregular_fraction=irregular_fraction,
        catch_drop_fraction=catch_drop_fraction,
        release_fraction=release_fraction,
        catch_window_s=catch_window_s,
        catch_residual_fraction=catch_residual_fraction,
        clonus_min_beats=clonus_min_beats,
        gain_tail_s=gain_tail_s,
        min_fit_stretches=min_fit_stretches,
        min_velocity_spread_deg_s=min_velocity_spread_deg_s,
        slow_max_velocity_deg_s=slow_max_velocity_deg_s,
        max_mu_p_value=max_mu_p_value,
        min_reflex_consistency=min_reflex_consistency,
        n_bootstrap=n_bootstrap,
        seed=seed,
        detector_sensitivity=detector_sensitivity,
    )
    return run_stages(inputs, settings)


def run_stages(inputs: Inputs, settings: StretchReflexSettings) -> StretchReflexResult:
    """Run stages 1-6 on shape-checked recordings (see the module docstring).

    Parameters
    ----------
    inputs : Inputs
        From :func:`~dsp.stretch_reflex._signals.check_shapes`.
    settings : StretchReflexSettings
        From :func:`~dsp.stretch_reflex._settings.stretch_reflex_settings`.

    Returns
    -------
    StretchReflexResult
    """
    inputs = check_inputs(inputs, settings)
    sig = prepare_signals(inputs, settings)
    st = measure_stretches(sig, settings)
    line = fit_line(st, sig.gaps_present, settings)
    spread = detector_spread(st, sig, line, settings)
    td = tardieu(st.records, line, settings)
    fit, records = line.fit, st.records
    nan2 = (math.nan, math.nan)
    return StretchReflexResult(
        tsrt_deg=line.tsrt,
        tsrt_ci_deg=spread.tsrt_ci,
        tsrt_ci_sampling_deg=fit.tsrt_ci_deg if fit else nan2,
        mu_s=line.mu,
        mu_ci_s=spread.mu_ci,
        mu_ci_sampling_s=fit.mu_ci_s if fit else nan2,
        mu_p_value=line.mu_p,
        reflex_consistency=line.consistency,
        r2=fit.r2 if fit else math.nan,
        n_stretches=len(records),
        n_valid=len(line.fit_idx),
        n_reflex=line.n_reflex,
        velocity_spread_deg_s=line.spread,
        range_deg=td.range_deg,
        range_source=td.range_source,
        tsrt_inside_range=td.inside,
        detector=settings.detector,
        detector_tsrt_deg=spread.detector_tsrt,
        detector_mu_s=spread.detector_mu,
        tsrt_spread_deg=spread.tsrt_spread,
        tardieu_r1_deg=td.r1_angle,
        tardieu_r2_deg=td.r2_angle,
        tardieu_r2_minus_r1_deg=td.r2_angle - td.r1_angle,
        tardieu_grade=td.grade,
        emg_gain=emg_gain(records, td),
        stretches=records,
        warnings=[*inputs.warnings, *sig.warnings, *line.warnings, *td.warnings],
        quality={**line.quality, **td.quality},
        settings=settings.to_dict(),
    )
