"""Result objects of the stretch-reflex analysis (dataclasses with a JSON-ready ``to_dict``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np


def _json(value):
    """Convert numbers, arrays and nested containers to plain JSON types (NaN -> None)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return [_json(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"cannot convert {type(value).__name__} to JSON")


def _dataclass_dict(obj) -> dict:
    return {f.name: _json(getattr(obj, f.name)) for f in fields(obj)}


@dataclass
class ClonusEpisode:
    """One run of rhythmic EMG bursts after a stretch.

    Attributes
    ----------
    start_s, end_s : float
        Envelope peaks of the first and the last burst, in seconds from the recording start.
    n_beats : int
        Number of bursts in the run (at least ``clonus_min_beats``; one missed beat bridged).
    frequency_hz : float
        Burst rate, 1 / median inter-burst interval.
    duration_s : float
        ``end_s - start_s`` plus one period (1 / ``frequency_hz``): n beats span n periods, so
        the first-to-last peak time alone is one period short.
    """

    start_s: float
    end_s: float
    n_beats: int
    frequency_hz: float
    duration_s: float

    def to_dict(self) -> dict:
        """JSON-serialisable form (keys = attribute names)."""
        return _dataclass_dict(self)


@dataclass
class StretchRecord:
    """Everything measured on one passive stretch.

    Times are seconds from the start of the recording, angles in degrees in the analysed
    convention (increasing as the muscle lengthens), velocities in deg/s, EMG in microvolts of the
    band-passed signal. Missing quantities are NaN (``None`` in :meth:`to_dict`).

    Attributes
    ----------
    index : int
        Position of the stretch in the session (0-based, in time order).
    start_s, end_s : float
        Movement start (velocity leaves rest) and end (lengthening stops).
    start_angle_deg, end_angle_deg : float
        Angle at start and the largest angle reached (the end of the stretch).
    peak_velocity_deg_s : float
        Largest lengthening velocity during the stretch.
    prompt_s : float
        Time of the prompt event matched to this stretch (NaN when stretches come from the
        goniometer alone).
    pre_emg_rms_uv : float
        RMS of the band-passed EMG in the window before the stretch (``baseline_s`` long).
    reflex : bool
        True when an EMG reflex onset was found during the stretch.
    detector : str
        Onset detector that produced ``onset_s``.
    onset_s : float
        EMG reflex onset time.
    latency_s : float
        ``onset_s - start_s``.
    dsrt_deg : float
        Dynamic stretch-reflex threshold: angle at EMG onset (shifted back by ``reflex_delay_s``
        when the analysis was given one).
    onset_velocity_deg_s : float
        Lengthening velocity at the time used for ``dsrt_deg``.
    reflex_absent_up_to_deg : float
        For a stretch without reflex: the angle reached without one (a right-censored DSRT);
        NaN when a reflex was found.
    burst_rms_uv, burst_iemg_uv_s, burst_duration_s : float
        Reflex burst from onset to offset: RMS, integrated rectified EMG (uV s) and duration.
    stretch_rms_uv : float
        RMS of the EMG from stretch start to ``end_s + gain_tail_s`` (for the velocity gain).
    catch_s, catch_angle_deg, catch_deceleration_deg_s2 : float
        Time, angle and size of the largest deceleration after the reflex onset (van den Noort
        2010's instrumented catch), searched up to the end of the stretch.
    onset_to_catch_s : float
        ``catch_s - onset_s``.
    catch_detected : bool
        A deceleration interrupts the movement within ``catch_window_s`` of the onset: the
        velocity falls by at least ``catch_drop_fraction`` of the onset velocity and then either
        resumes (``release``) or goes on slower (an abrupt fall that levels off while the limb
        still moves); the ordinary end of the stretch is not a catch. Tardieu's R1 uses the
        catch angle of such stretches; no release is needed.
    release : bool
        After the catch the movement resumes (velocity rises again by ``release_fraction`` of the
        onset velocity): Tardieu's "catch then release" (grade 2).
    clonus : list of ClonusEpisode
        Rhythmic burst runs from the reflex onset until the next stretch (or a gap).
    used_in_fit : bool
        True when the stretch contributed a DSRT to the regression.
    exclusion_reasons : list of str
        Why the stretch was left out of the fit (e.g. ``"muscle active before stretch"``,
        ``"irregular velocity profile"``, ``"touches a gap (NaN samples)"``, ``"no reflex"``,
        ``"DSRT far from the session's DSRT-velocity line (outlier)"``).
    """

    index: int
    start_s: float
    end_s: float
    start_angle_deg: float
    end_angle_deg: float
    peak_velocity_deg_s: float
    prompt_s: float = math.nan
    pre_emg_rms_uv: float = math.nan
    reflex: bool = False
    detector: str = ""
    onset_s: float = math.nan
    latency_s: float = math.nan
    dsrt_deg: float = math.nan
    onset_velocity_deg_s: float = math.nan
    reflex_absent_up_to_deg: float = math.nan
    burst_rms_uv: float = math.nan
    burst_iemg_uv_s: float = math.nan
    burst_duration_s: float = math.nan
    stretch_rms_uv: float = math.nan
    catch_s: float = math.nan
    catch_angle_deg: float = math.nan
    catch_deceleration_deg_s2: float = math.nan
    onset_to_catch_s: float = math.nan
    catch_detected: bool = False
    release: bool = False
    clonus: list[ClonusEpisode] = field(default_factory=list)
    used_in_fit: bool = False
    exclusion_reasons: list[str] = field(default_factory=list)

    @property
    def clonus_duration_s(self) -> float:
        """Longest clonus episode of this stretch in seconds (0 when none)."""
        return max((c.duration_s for c in self.clonus), default=0.0)

    def to_dict(self) -> dict:
        """JSON-serialisable form (keys = attribute names, NaN as ``None``)."""
        out = _dataclass_dict(self)
        out["clonus_duration_s"] = self.clonus_duration_s
        return out


@dataclass
class StretchReflexResult:
    """Velocity-dependent stretch reflex of one muscle over a session.

    Attributes
    ----------
    tsrt_deg : float
        Tonic stretch-reflex threshold lambda: intercept at zero velocity of the DSRT-velocity
        regression DSRT = lambda - mu * velocity (NaN when fewer than ``min_fit_stretches``
        stretches have a DSRT).
    tsrt_ci_deg : tuple of float
        95% interval of lambda (NaN, NaN when not fitted): the bootstrap interval
        (``tsrt_ci_sampling_deg``) widened, when ``detector_sensitivity`` is on, by 1.96 times the
        SD of lambda across the onset detectors, added in quadrature (onset-definition
        uncertainty).
    tsrt_ci_sampling_deg : tuple of float
        Case-bootstrap 95% interval of lambda alone (sampling uncertainty).
    mu_s : float
        Slope magnitude mu in seconds (DSRT falls by mu * velocity).
    mu_ci_s : tuple of float
        95% interval of mu, built as ``tsrt_ci_deg``.
    mu_ci_sampling_s : tuple of float
        Case-bootstrap 95% interval of mu alone.
    mu_p_value : float
        One-sided p-value of mu > 0 (OLS t-test of the slope; NaN when not fitted).
    reflex_consistency : float
        Fraction of the stretches that went 5 deg past the fitted line's DSRT at their peak
        velocity (gaps and active muscle left out) that show a reflex; NaN when not fitted or
        mu <= 0. A velocity-dependent reflex explains which stretches elicit one (about 1);
        false onsets on a healthy muscle do not (about 0.25 on the simulator).
    r2 : float
        Coefficient of determination of the regression.
    n_stretches : int
        Stretches found in the recording.
    n_valid : int
        Stretches whose DSRT entered the fit.
    n_reflex : int
        Stretches with a reflex onset (valid or not).
    velocity_spread_deg_s : float
        Range of the onset velocities in the fit.
    range_deg : tuple of float
        Joint range used for the inside/outside decision: ``passive_range_deg`` when given,
        else (smallest start angle, R2).
    range_source : str
        ``"given"`` or ``"slow stretches"``.
    tsrt_inside_range : bool
        True when the fit shows a velocity-dependent reflex (at least ``min_fit_stretches``
        DSRTs, mu > 0 with ``mu_p_value`` < ``max_mu_p_value``, ``reflex_consistency`` >=
        ``min_reflex_consistency``) and lambda lies inside ``range_deg`` (spasticity present,
        Calota 2008). False when it lies outside or when no velocity-dependent reflex was found.
    detector : str
        Onset detector of the reported DSRTs.
    detector_tsrt_deg : dict of str to float
        lambda recomputed with each available onset detector (empty when
        ``detector_sensitivity`` is off).
    detector_mu_s : dict of str to float
        mu recomputed with each onset detector.
    tsrt_spread_deg : float
        max - min of ``detector_tsrt_deg`` (finite values).
    tardieu_r1_deg : float
        Catch angle at the fastest stretches (median over those with a catch, released or
        not), NaN unless at least half of them show a catch.
    tardieu_r2_deg : float
        Passive range end: largest angle reached at the slowest stretches (median); see the
        ``slow_stretches_*`` quality flags.
    tardieu_r2_minus_r1_deg : float
        Dynamic component R2 - R1.
    tardieu_grade : int
        Instrumented quality grade 0-4 from the fastest stretches (median of per-stretch
        grades): 0 no reflex, 1 EMG response without "catch then release" (no catch, or a catch
        without release), 2 catch then release, 3 clonus shorter than 10 s, 4 clonus of 10 s or
        more (clonus duration = first to last beat + one period).
    emg_gain : dict
        ``low_velocity_rms_uv``, ``high_velocity_rms_uv``, ``difference_uv``, ``ratio``,
        ``amplitude_slope_uv_per_deg_s`` (burst RMS against onset velocity), ``n_low``, ``n_high``.
    stretches : list of StretchRecord
        Per-stretch table, in time order.
    warnings : list of str
        Quality warnings (mu < 0, few stretches, narrow velocity spread, gaps, ...).
    quality : dict
        Machine-readable flags: ``mu_negative``, ``few_stretches``, ``narrow_velocity_spread``,
        ``fit_poorly_determined``, ``not_velocity_dependent`` (a line was fitted but fails the
        velocity-dependence test), ``interval_sampling_only`` (``detector_sensitivity`` off),
        ``slow_stretches_not_slow``, ``slow_stretches_reflexive`` (catch or clonus in the
        slowest stretches), ``gaps_present``.
    settings : dict
        Every argument of the analysis except the signals and rates (detector and its
        parameters, thresholds, filters, delay, range, prompts, bootstrap size, seed, ...),
        JSON-ready.
    """

    tsrt_deg: float
    tsrt_ci_deg: tuple[float, float]
    tsrt_ci_sampling_deg: tuple[float, float]
    mu_s: float
    mu_ci_s: tuple[float, float]
    mu_ci_sampling_s: tuple[float, float]
    mu_p_value: float
    reflex_consistency: float
    r2: float
    n_stretches: int
    n_valid: int
    n_reflex: int
    velocity_spread_deg_s: float
    range_deg: tuple[float, float]
    range_source: str
    tsrt_inside_range: bool
    detector: str
    detector_tsrt_deg: dict[str, float]
    detector_mu_s: dict[str, float]
    tsrt_spread_deg: float
    tardieu_r1_deg: float
    tardieu_r2_deg: float
    tardieu_r2_minus_r1_deg: float
    tardieu_grade: int
    emg_gain: dict
    stretches: list[StretchRecord]
    warnings: list[str]
    quality: dict
    settings: dict

    def to_dict(self) -> dict:
        """JSON-serialisable form with stable keys (NaN as ``None``).

        Keys: the attribute names above; ``stretches`` is a list of per-stretch dicts
        (:meth:`StretchRecord.to_dict`).
        """
        return _dataclass_dict(self)
