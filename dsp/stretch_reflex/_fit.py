"""DSRT-velocity regression (lambda, mu) with a seeded bootstrap interval."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LineFit:
    """DSRT = lambda - mu * velocity, fitted by least squares.

    ``mu_p_value`` is the one-sided p-value of mu > 0 (OLS t-test of the slope, n - 2 degrees
    of freedom; NaN with fewer than 3 points).
    """

    tsrt_deg: float
    mu_s: float
    r2: float
    n: int
    tsrt_ci_deg: tuple[float, float]
    mu_ci_s: tuple[float, float]
    mu_p_value: float = np.nan


def robust_inliers(
    velocity: np.ndarray,
    dsrt: np.ndarray,
    *,
    k: float = 4.0,
    floor_deg: float = 3.0,
    min_points: int = 6,
) -> np.ndarray:
    """Boolean mask of the DSRTs consistent with one line (outliers False).

    A Theil-Sen line (median of pairwise slopes, robust to up to ~29 % wild points) gives the
    residuals; points farther than ``max(k * sigma, floor_deg)`` from it are outliers, with sigma
    = 1.4826 x the median absolute residual. Fewer than ``min_points`` points: all kept.
    """
    n = len(velocity)
    keep = np.ones(n, dtype=bool)
    if n < min_points or np.ptp(velocity) <= 0:
        return keep
    i, j = np.triu_indices(n, 1)
    dv = velocity[j] - velocity[i]
    ok = dv != 0
    slope = float(np.median((dsrt[j] - dsrt[i])[ok] / dv[ok]))
    intercept = float(np.median(dsrt - slope * velocity))
    resid = dsrt - intercept - slope * velocity
    sigma = 1.4826 * float(np.median(np.abs(resid)))
    return np.abs(resid) <= max(k * sigma, floor_deg)


def ols(velocity: np.ndarray, dsrt: np.ndarray) -> tuple[float, float, float]:
    """Intercept, slope and R^2 of ``dsrt`` on ``velocity`` (NaN when under-determined)."""
    n = len(velocity)
    if n < 2 or np.ptp(velocity) <= 0:
        return np.nan, np.nan, np.nan
    vm, dm = velocity.mean(), dsrt.mean()
    sxx = np.sum((velocity - vm) ** 2)
    slope = np.sum((velocity - vm) * (dsrt - dm)) / sxx
    intercept = dm - slope * vm
    ss_tot = np.sum((dsrt - dm) ** 2)
    ss_res = np.sum((dsrt - intercept - slope * velocity) ** 2)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else np.nan
    return float(intercept), float(slope), float(r2)


def mu_p_value(velocity: np.ndarray, dsrt: np.ndarray) -> float:
    """One-sided p-value that DSRT falls with velocity (mu > 0): OLS slope t-test.

    Parameters
    ----------
    velocity, dsrt : ndarray, shape (n,)
        Onset velocities (deg/s) and DSRTs (deg).

    Returns
    -------
    float
        P(T >= -slope / se) with T ~ t(n - 2); 0 for a perfect falling line, 1 for a perfect
        rising one, NaN with fewer than 3 points or no velocity spread.
    """
    from scipy import stats

    n = len(velocity)
    if n < 3 or np.ptp(velocity) <= 0:
        return np.nan
    a, b, _ = ols(velocity, dsrt)
    sxx = float(np.sum((velocity - velocity.mean()) ** 2))
    ssr = float(np.sum((dsrt - a - b * velocity) ** 2))
    se = np.sqrt(ssr / (n - 2) / sxx)
    if se == 0:
        return 0.0 if b < 0 else 1.0
    return float(stats.t.sf(-b / se, n - 2))


def bootstrap_lines(
    velocity: np.ndarray, dsrt: np.ndarray, n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Intercepts and slopes of ``n_boot`` case-resampled fits (degenerate resamples dropped)."""
    n = len(velocity)
    idx = rng.integers(0, n, size=(n_boot, n))
    v = velocity[idx]
    d = dsrt[idx]
    vm = v.mean(axis=1, keepdims=True)
    dm = d.mean(axis=1, keepdims=True)
    sxx = np.sum((v - vm) ** 2, axis=1)
    ok = sxx > 1e-12 * max(1.0, float(np.var(velocity)) * n)
    slope = np.sum((v - vm) * (d - dm), axis=1)[ok] / sxx[ok]
    intercept = dm[ok, 0] - slope * vm[ok, 0]
    return intercept, slope


def fit_dsrt_line(
    velocity: np.ndarray,
    dsrt: np.ndarray,
    *,
    n_boot: int,
    rng: np.random.Generator,
    level: float = 0.95,
) -> LineFit:
    """Fit DSRT = lambda - mu * velocity with bootstrap intervals.

    The interval is the percentile interval of the case bootstrap, widened by the small-sample
    factor ``t_{n-2} / z`` (the percentile bootstrap of a regression under-covers with 10-20
    points; the factor restores nominal coverage on the simulator, see docs/stretch-reflex.md).
    """
    from scipy import stats

    n = len(velocity)
    a, b, r2 = ols(velocity, dsrt)
    nan2 = (np.nan, np.nan)
    if not np.isfinite(a):
        return LineFit(np.nan, np.nan, np.nan, n, nan2, nan2)
    p = mu_p_value(velocity, dsrt)
    if n < 3 or n_boot < 1:
        return LineFit(a, -b, r2, n, nan2, nan2, p)
    ia, sb = bootstrap_lines(velocity, dsrt, n_boot, rng)
    alpha = 1.0 - level
    widen = stats.t.ppf(1 - alpha / 2, max(n - 2, 1)) / stats.norm.ppf(1 - alpha / 2)

    def interval(samples, centre):
        lo, hi = np.percentile(samples, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        return (centre - widen * (centre - lo), centre + widen * (hi - centre))

    lam_ci = interval(ia, a)
    mu_lo, mu_hi = interval(-sb, -b)
    return LineFit(
        a, -b, r2, n, (float(lam_ci[0]), float(lam_ci[1])), (float(mu_lo), float(mu_hi)), p
    )
