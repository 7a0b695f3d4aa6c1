"""Stages 4-5 of the stretch-reflex analysis: the DSRT-velocity line and its detector spread.

:func:`fit_line` drops outliers, fits DSRT = lambda - mu * velocity with bootstrap intervals and
judges whether the line is a velocity-dependent reflex (quality flags and warnings);
:func:`detector_spread` refits the line with every onset detector and widens the intervals by
the between-detector SD (Silva 2017).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dsp.stretch_reflex._fit import fit_dsrt_line, ols, robust_inliers
from dsp.stretch_reflex._onsets import detector_names
from dsp.stretch_reflex._settings import StretchReflexSettings
from dsp.stretch_reflex._signals import Signals
from dsp.stretch_reflex._stretches import (
    REASON_ACTIVE,
    REASON_GAP,
    REASON_NO_REFLEX,
    REASON_OUTLIER,
    Stretches,
)


def usable(rec) -> bool:
    """A stretch whose only exclusion (if any) is the absence of a reflex."""
    return not any(r != REASON_NO_REFLEX for r in rec.exclusion_reasons)


@dataclass(frozen=True)
class LineFit:
    """The session's DSRT-velocity line.

    Attributes
    ----------
    fit : DsrtFit or None
        The regression with its bootstrap intervals (None: too few stretches).
    fit_idx : list of int
        Indices of the stretches in the fit.
    spread : float
        Onset-velocity range of the fitted stretches, deg/s.
    tsrt, mu, mu_p : float
        TSRT (deg), mu (s) and mu's one-sided p-value; NaN without a fit.
    consistency : float
        Fraction of the stretches past the line that show a reflex.
    velocity_dependent : bool
    n_reflex : int
    quality : dict
        The fit's quality flags.
    warnings : tuple of str
    """

    fit: object
    fit_idx: list
    spread: float
    tsrt: float
    mu: float
    mu_p: float
    consistency: float
    velocity_dependent: bool
    n_reflex: int
    quality: dict
    warnings: tuple[str, ...]


def fit_line(st: Stretches, gaps_present: bool, settings: StretchReflexSettings) -> LineFit:
    """Fit the DSRT-velocity line (marks outliers and ``used_in_fit`` on ``st.records``)."""
    records = st.records
    min_fit_stretches, n_bootstrap = settings.min_fit_stretches, settings.n_bootstrap
    max_mu_p_value = settings.max_mu_p_value
    min_reflex_consistency = settings.min_reflex_consistency
    min_velocity_spread_deg_s = settings.min_velocity_spread_deg_s
    detector_sensitivity = settings.detector_sensitivity
    rng = settings.rng()
    warnings: list[str] = []
    fit_idx = [r.index for r in records if r.reflex and usable(r)]
    v_fit = np.array([records[i].onset_velocity_deg_s for i in fit_idx])
    d_fit = np.array([records[i].dsrt_deg for i in fit_idx])
    inl = robust_inliers(v_fit, d_fit)
    for i in np.asarray(fit_idx, dtype=int)[~inl]:
        records[i].exclusion_reasons.append(REASON_OUTLIER)
    fit_idx = [i for i, keep in zip(fit_idx, inl, strict=True) if keep]
    v_fit, d_fit = v_fit[inl], d_fit[inl]
    for r in records:
        r.used_in_fit = r.index in fit_idx
    spread = float(np.ptp(v_fit)) if len(v_fit) else math.nan
    if len(fit_idx) >= min_fit_stretches:
        fit = fit_dsrt_line(v_fit, d_fit, n_boot=n_bootstrap, rng=rng)
    else:
        fit = None
    tsrt = fit.tsrt_deg if fit else math.nan
    mu = fit.mu_s if fit else math.nan
    mu_p = fit.mu_p_value if fit else math.nan
    # a velocity-dependent reflex: the DSRT falls with velocity, and significantly so (a few
    # false onsets on a healthy muscle give a line too, with a random lambda)
    velocity_dependent = bool(fit is not None and mu > 0 and mu_p < max_mu_p_value)
    # the line must also explain which stretches show a reflex: every stretch that went 5 deg
    # past the line's DSRT at its peak velocity should have one (false onsets on a healthy
    # muscle give a line through a few stretches while most stretches past it stay silent)
    consistency = math.nan
    if fit is not None and mu > 0:
        clean_recs = [
            r for r in records if not ({REASON_GAP, REASON_ACTIVE} & set(r.exclusion_reasons))
        ]
        expected = [
            r for r in clean_recs if r.end_angle_deg >= tsrt - mu * r.peak_velocity_deg_s + 5.0
        ]
        if expected:
            consistency = sum(r.reflex for r in expected) / len(expected)
    consistent = bool(consistency >= min_reflex_consistency)
    velocity_dependent = velocity_dependent and consistent
    quality = {
        "gaps_present": gaps_present,
        "few_stretches": len(fit_idx) < max(min_fit_stretches, 8),
        "narrow_velocity_spread": bool(not (spread >= min_velocity_spread_deg_s)),
        "mu_negative": bool(fit is not None and mu < 0),
        "not_velocity_dependent": bool(fit is not None and not velocity_dependent),
        "interval_sampling_only": not detector_sensitivity,
    }
    quality["fit_poorly_determined"] = bool(
        fit is None or quality["few_stretches"] or quality["narrow_velocity_spread"]
    )
    n_reflex = sum(r.reflex for r in records)
    if fit is None:
        warnings.append(
            f"only {len(fit_idx)} stretches with a usable reflex onset (need "
            f"{min_fit_stretches}): no velocity-dependent reflex fitted; TSRT reported outside"
            " the range"
        )
    else:
        if quality["few_stretches"]:
            warnings.append(f"fit rests on only {len(fit_idx)} stretches; record about 20")
        if quality["narrow_velocity_spread"]:
            warnings.append(
                f"onset velocities span only {spread:.0f} deg/s; stretch over a wider range of "
                "velocities"
            )
        if quality["mu_negative"]:
            warnings.append(
                "mu < 0: DSRT rises with velocity, not the expected velocity dependence"
            )
        if quality["not_velocity_dependent"]:
            if not (mu > 0 and mu_p < max_mu_p_value):
                why = (
                    f"DSRT does not fall significantly with velocity (mu = {mu:.3f} s, "
                    f"one-sided p = {mu_p:.2g}, need mu > 0 and p < {max_mu_p_value:g})"
                )
            else:
                why = (
                    f"the DSRT line does not explain which stretches show a reflex (only "
                    f"{consistency:.0%} of the stretches that passed it had one, need "
                    f"{min_reflex_consistency:.0%}): its DSRTs look like false onsets"
                )
            warnings.append(f"{why}; no velocity-dependent reflex, TSRT reported outside the range")
        if not detector_sensitivity and n_bootstrap > 0:
            warnings.append(
                "detector_sensitivity=False: the 95% intervals hold the bootstrap (sampling) "
                "uncertainty only, not the onset-detector uncertainty, and under-cover the "
                "truth (docs/validation.md#stretch-reflex)"
            )
    n_excl = {}
    for r in records:
        for reason in r.exclusion_reasons:
            if reason != REASON_NO_REFLEX:
                n_excl[reason] = n_excl.get(reason, 0) + 1
    for reason, count in n_excl.items():
        warnings.append(f"{count} stretch(es) excluded from the fit: {reason}")

    return LineFit(
        fit,
        fit_idx,
        spread,
        tsrt,
        mu,
        mu_p,
        consistency,
        velocity_dependent,
        n_reflex,
        quality,
        tuple(warnings),
    )


@dataclass(frozen=True)
class DetectorSpread:
    """Lambda and mu by every detector, and the intervals widened by their spread.

    Attributes
    ----------
    detector_tsrt, detector_mu : dict of str to float
        TSRT (deg) and mu (s) per detector (empty without the sensitivity analysis).
    tsrt_spread : float
        Largest minus smallest finite detector TSRT, deg.
    tsrt_ci, mu_ci : (float, float)
        95% intervals of TSRT (deg) and mu (s).
    """

    detector_tsrt: dict
    detector_mu: dict
    tsrt_spread: float
    tsrt_ci: tuple
    mu_ci: tuple


def detector_spread(
    st: Stretches, sig: Signals, line: LineFit, settings: StretchReflexSettings
) -> DetectorSpread:
    """Refit the line with every detector and widen the intervals (see the module docstring)."""
    detectors = detector_names()
    records, onsets, at, vel, ang = st.records, st.onsets, sig.at, sig.vel, sig.ang
    emg_rate, reflex_delay_s = sig.emg_rate_hz, settings.reflex_delay_s
    min_fit_stretches = settings.min_fit_stretches
    fit, tsrt, mu = line.fit, line.tsrt, line.mu
    detector_tsrt: dict[str, float] = {}
    detector_mu: dict[str, float] = {}
    if settings.detector_sensitivity:
        for name in detectors:
            vv, dd = [], []
            for r, on in zip(records, onsets[name], strict=True):
                if on < 0 or not usable(r):
                    continue
                t = on / emg_rate - reflex_delay_s
                vv.append(at(vel, t))
                dd.append(at(ang, t))
            vv, dd = np.array(vv), np.array(dd)
            keep = robust_inliers(vv, dd)
            vv, dd = vv[keep], dd[keep]
            if len(vv) >= min_fit_stretches:
                a, b, _ = ols(vv, dd)
                detector_tsrt[name], detector_mu[name] = a, -b
            else:
                detector_tsrt[name] = detector_mu[name] = math.nan
    finite = [v for v in detector_tsrt.values() if math.isfinite(v)]
    tsrt_spread = float(max(finite) - min(finite)) if len(finite) >= 2 else math.nan
    tsrt_ci = fit.tsrt_ci_deg if fit else (math.nan, math.nan)
    mu_ci = fit.mu_ci_s if fit else (math.nan, math.nan)
    if fit is not None and len(finite) >= 2:
        # onset-definition uncertainty (Silva 2017): widen by the between-detector SD
        sd_l = float(np.std(finite, ddof=1))
        sd_m = float(np.std([v for v in detector_mu.values() if math.isfinite(v)], ddof=1))
        tsrt_ci = _widen(tsrt_ci, tsrt, sd_l)
        mu_ci = _widen(mu_ci, mu, sd_m)

    return DetectorSpread(detector_tsrt, detector_mu, tsrt_spread, tsrt_ci, mu_ci)


def _widen(ci: tuple[float, float], centre: float, sd: float) -> tuple[float, float]:
    """Add ``1.96 * sd`` in quadrature to each half of an interval around ``centre``."""
    if not (math.isfinite(sd) and math.isfinite(ci[0]) and math.isfinite(ci[1])):
        return ci
    z = 1.959963984540054 * sd
    return (
        float(centre - math.hypot(centre - ci[0], z)),
        float(centre + math.hypot(ci[1] - centre, z)),
    )
