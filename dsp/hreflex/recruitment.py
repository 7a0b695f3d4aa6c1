"""Recruitment-curve models and fits (Brinkworth et al. 2007, J Neurosci Methods 162:1).

M-wave: a 4-parameter sigmoid, ``M(I) = m0 + Mmax / (1 + exp(-(I - I50) / s))``.
H-wave: product of a rising and a falling sigmoid (rising-then-falling),
``H(I) = h0 + A * sig((I - a1) / s1) * (1 - sig((I - a2) / s2))``.
Both are fitted with a soft-L1 robust loss (:func:`_f_scale`), so one corrupted sweep cannot
drag a curve. Intervals come from a case bootstrap over stimuli (see :func:`bootstrap_fits`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

LN19 = float(np.log(19.0))


def _sig(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def m_model(p: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """Sigmoid M recruitment: ``p = (mmax, i50, s, m0)``; returns uV, shape of ``intensity``."""
    mmax, i50, s, m0 = p
    return m0 + mmax * _sig((intensity - i50) / s)


def h_model(p: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """Rising-then-falling H recruitment: ``p = (a, a1, s1, a2, s2, h0)``; returns uV."""
    a, a1, s1, a2, s2, h0 = p
    return h0 + a * _sig((intensity - a1) / s1) * (1.0 - _sig((intensity - a2) / s2))


def m_jacobian(p: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """d m_model / d p, shape (n, 4) (analytic; checked against finite differences in tests)."""
    mmax, i50, s, _ = p
    z = (intensity - i50) / s
    g = _sig(z)
    dg = g * (1.0 - g)
    return np.column_stack([g, -mmax * dg / s, -mmax * dg * z / s, np.ones_like(g)])


def h_jacobian(p: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """d h_model / d p, shape (n, 6) (analytic; checked against finite differences in tests)."""
    a, a1, s1, a2, s2, _ = p
    z1 = (intensity - a1) / s1
    z2 = (intensity - a2) / s2
    u = _sig(z1)
    v = _sig(z2)
    d = 1.0 - v
    du = u * (1.0 - u)
    dv = v * (1.0 - v)
    return np.column_stack(
        [
            u * d,
            -a * d * du / s1,
            -a * d * du * z1 / s1,
            a * u * dv / s2,
            a * u * dv * z2 / s2,
            np.ones_like(u),
        ]
    )


@dataclass
class RecruitmentFit:
    """One fitted recruitment curve.

    Attributes
    ----------
    wave : str
        ``"M"`` or ``"H"``.
    model : str
        ``"sigmoid"`` (M) or ``"product_of_sigmoids"`` (H).
    params : dict
        Model parameters by name (intensities in mA, amplitudes in uV).
    max_uv : float
        Mmax (sigmoid plateau ``m0 + Mmax``) or Hmax (peak of the fitted curve), uV. Both include
        the fitted floor: they are the expected *measured* peak-to-peak at the plateau or peak,
        comparable with each other and with single-sweep amplitudes.
    intensity_at_max_ma : float
        Intensity of the fitted H peak (NaN for M), mA.
    threshold_ma : float
        Intensity where the curve first reaches 5% of its maximum above the floor, mA.
    i50_ma : float
        Intensity at 50% of Mmax (M) or of Hmax on the rising limb (H), mA.
    slope_uv_per_ma : float
        Slope at I50, uV/mA.
    r2 : float
        Coefficient of determination of the fit.
    rmse_uv : float
        Root-mean-square residual, uV.
    n_points : int
        Stimuli used.
    converged : bool
        Whether the optimiser reported success and the fit is usable.
    ci : dict
        95% bootstrap intervals of ``max_uv``, ``threshold_ma``, ``i50_ma``,
        ``intensity_at_max_ma`` (``[low, high]`` lists), filled by the bootstrap.
    """

    wave: str
    model: str
    params: dict
    max_uv: float
    intensity_at_max_ma: float
    threshold_ma: float
    i50_ma: float
    slope_uv_per_ma: float
    r2: float
    rmse_uv: float
    n_points: int
    converged: bool
    ci: dict = field(default_factory=dict)
    _p: np.ndarray | None = field(default=None, repr=False)

    def predict(self, intensity_ma) -> np.ndarray:
        """Fitted amplitude (uV) at ``intensity_ma``."""
        x = np.asarray(intensity_ma, dtype=float)
        if self._p is None:
            return np.full(x.shape, np.nan)
        return (m_model if self.wave == "M" else h_model)(self._p, x)

    def to_dict(self) -> dict:
        return {
            "wave": self.wave,
            "model": self.model,
            "params": {k: float(v) for k, v in self.params.items()},
            "max_uv": float(self.max_uv),
            "intensity_at_max_ma": float(self.intensity_at_max_ma),
            "threshold_ma": float(self.threshold_ma),
            "i50_ma": float(self.i50_ma),
            "slope_uv_per_ma": float(self.slope_uv_per_ma),
            "r2": float(self.r2),
            "rmse_uv": float(self.rmse_uv),
            "n_points": int(self.n_points),
            "converged": bool(self.converged),
            "ci": {k: [float(v[0]), float(v[1])] for k, v in self.ci.items()},
        }


def _f_scale(y: np.ndarray) -> float:
    """Residual scale of the robust (soft L1) loss: 10% of the amplitude range.

    Residuals below it count as in least squares (trial-to-trial variability: M CV ~3%, H CV
    ~10-15% of the amplitude); a single sweep far off (a pop in the window, a missed pulse) is
    down-weighted instead of dragging the curve.
    """
    span = float(np.percentile(y, 98) - np.percentile(y, 2))
    return max(0.1 * span, 1e-6)


def _quality(y, yhat):
    res = y - yhat
    ss_res = float(np.sum(res**2))
    ss_tot = float(np.sum((y - y.mean()) ** 2)) or 1e-12
    return 1.0 - ss_res / ss_tot, float(np.sqrt(np.mean(res**2)))


def _fit_m_params(x, y, starts):
    span = max(float(x.max() - x.min()), 1e-6)
    lo = [0.0, x.min() - span, span * 1e-3, 0.0]
    hi = [np.inf, x.max() + span, span * 2.0, max(float(y.max()), 1e-9)]
    best = None
    for p0 in starts:
        p0 = np.clip(p0, np.array(lo) + 1e-12, np.array(hi) - 1e-12)
        r = least_squares(
            lambda p: m_model(p, x) - y, p0, jac=lambda p: m_jacobian(p, x), bounds=(lo, hi),
            method="trf", loss="soft_l1", f_scale=_f_scale(y),
        )  # fmt: skip
        if best is None or r.cost < best.cost:
            best = r
    return best


def fit_m(intensity_ma: np.ndarray, m_uv: np.ndarray, p_start=None) -> RecruitmentFit:
    """Fit the sigmoid M recruitment curve.

    Parameters
    ----------
    intensity_ma : ndarray, shape (n,)
        Stimulus intensities, mA.
    m_uv : ndarray, shape (n,)
        M-wave peak-to-peak amplitudes, uV.
    p_start : ndarray, optional
        Start parameters (used by the bootstrap); data-driven starts otherwise.

    Returns
    -------
    RecruitmentFit
    """
    x = np.asarray(intensity_ma, float)
    y = np.asarray(m_uv, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    nan = float("nan")
    if x.size < 4 or np.unique(x).size < 3:
        return RecruitmentFit("M", "sigmoid", {}, nan, nan, nan, nan, nan, nan, nan, x.size, False)
    span = float(x.max() - x.min()) or 1.0
    top = float(np.percentile(y, 95))
    floor = float(np.percentile(y, 5))
    if p_start is not None:
        starts = [np.asarray(p_start, float)]
    else:
        half = floor + 0.5 * (top - floor)
        i50 = float(x[np.argmin(np.abs(y - half))])
        starts = [
            np.array([top - floor, i50, span / 10, floor]),
            np.array([top - floor, i50, span / 30, floor]),
            np.array([top - floor, float(np.median(x)), span / 5, floor]),
        ]
    r = _fit_m_params(x, y, starts)
    p = r.x
    mmax, i50, s, _m0 = p
    r2, rmse = _quality(y, m_model(p, x))
    return RecruitmentFit(
        wave="M",
        model="sigmoid",
        params={"mmax_uv": mmax, "i50_ma": i50, "scale_ma": s, "floor_uv": _m0},
        max_uv=float(mmax + _m0),
        intensity_at_max_ma=nan,
        threshold_ma=float(i50 - s * LN19),
        i50_ma=float(i50),
        slope_uv_per_ma=float(mmax / (4.0 * s)),
        r2=r2,
        rmse_uv=rmse,
        n_points=int(x.size),
        converged=bool(r.success) and mmax > 0,
        _p=p,
    )


def intensity_for_m_fraction(fit: RecruitmentFit, fraction: float) -> float:
    """Intensity (mA) at which the fitted M reaches ``fraction`` of Mmax (above the floor)."""
    if fit._p is None or not 0.0 < fraction < 1.0:
        return float("nan")
    _mmax, i50, s, _ = fit._p
    return float(i50 + s * np.log(fraction / (1.0 - fraction)))


def fit_h(intensity_ma: np.ndarray, h_uv: np.ndarray, p_start=None) -> RecruitmentFit:
    """Fit the rising-then-falling H recruitment curve (product of two sigmoids).

    Parameters
    ----------
    intensity_ma : ndarray, shape (n,)
        Stimulus intensities, mA.
    h_uv : ndarray, shape (n,)
        H-wave peak-to-peak amplitudes, uV.
    p_start : ndarray, optional
        Start parameters (used by the bootstrap).

    Returns
    -------
    RecruitmentFit
        ``max_uv`` = Hmax (peak of the fitted curve), ``intensity_at_max_ma``, ``threshold_ma``
        (5% of the peak above the floor on the rising limb), ``i50_ma`` (50% on the rising limb).
    """
    x = np.asarray(intensity_ma, float)
    y = np.asarray(h_uv, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    nan = float("nan")
    if x.size < 5 or np.unique(x).size < 4:
        return RecruitmentFit(
            "H", "product_of_sigmoids", {}, nan, nan, nan, nan, nan, nan, nan, x.size, False
        )
    span = float(x.max() - x.min()) or 1.0
    floor = float(np.percentile(y, 5))
    top = float(np.percentile(y, 95))
    lo = [0.0, x.min() - span, span * 1e-3, x.min() - span, span * 1e-3, 0.0]
    hi = [np.inf, x.max() + span, span * 2, x.max() + 2 * span, span * 2, max(top, 1e-9)]
    if p_start is not None:
        starts = [np.asarray(p_start, float)]
    else:
        # Smooth by intensity to find the peak region for the starts.
        order = np.argsort(x)
        xs, ys = x[order], y[order]
        k = max(3, xs.size // 10)
        sm = np.convolve(ys, np.ones(k) / k, mode="same")
        ipk = float(xs[int(np.argmax(sm))])
        amp = max(top - floor, 1e-6) * 1.3
        starts = []
        for w in (span / 20, span / 8, span / 4):
            starts.append(np.array([amp, ipk - 1.5 * w, w / 2, ipk + 1.5 * w, w / 2, floor]))
            starts.append(np.array([amp, ipk - w, w / 3, ipk + 2 * w, w, floor]))
    best = None
    for p0 in starts:
        p0 = np.clip(p0, np.array(lo) + 1e-12, np.array(hi) - 1e-12)
        r = least_squares(
            lambda p: h_model(p, x) - y, p0, jac=lambda p: h_jacobian(p, x), bounds=(lo, hi),
            method="trf", loss="soft_l1", f_scale=_f_scale(y),
        )  # fmt: skip
        if best is None or r.cost < best.cost:
            best = r
    p = best.x
    grid = np.linspace(x.min(), x.max(), 2001)
    curve = h_model(p, grid)
    k = int(np.argmax(curve))
    hmax = float(curve[k])
    h0 = float(p[5])
    rise = curve[: k + 1] - h0
    amp_above = hmax - h0

    def _cross(frac):
        idx = np.nonzero(rise >= frac * amp_above)[0]
        return float(grid[idx[0]]) if idx.size else nan

    thr = _cross(0.05)
    i50 = _cross(0.5)
    if np.isfinite(i50):
        j = int(np.searchsorted(grid, i50))
        j = min(max(j, 1), grid.size - 2)
        slope = float((curve[j + 1] - curve[j - 1]) / (grid[j + 1] - grid[j - 1]))
    else:
        slope = nan
    r2, rmse = _quality(y, h_model(p, x))
    names = ("amplitude_uv", "rise_mid_ma", "rise_scale_ma", "fall_mid_ma", "fall_scale_ma")
    params = dict(zip((*names, "floor_uv"), p, strict=True))
    return RecruitmentFit(
        wave="H",
        model="product_of_sigmoids",
        params=params,
        max_uv=hmax,
        intensity_at_max_ma=float(grid[k]),
        threshold_ma=thr,
        i50_ma=i50,
        slope_uv_per_ma=slope,
        r2=r2,
        rmse_uv=rmse,
        n_points=int(x.size),
        converged=bool(best.success) and amp_above > 0,
        _p=p,
    )


def bootstrap_fits(
    intensity_ma: np.ndarray,
    m_uv: np.ndarray,
    h_uv: np.ndarray,
    m_fit: RecruitmentFit,
    h_fit: RecruitmentFit,
    *,
    n_boot: int,
    rng: np.random.Generator,
    level: float = 0.95,
    predict_h_at_ma: np.ndarray | None = None,
) -> dict:
    """Case bootstrap over stimuli: refit M and H on resampled stimuli (same resample for both).

    Fills ``m_fit.ci`` and ``h_fit.ci`` and returns the interval of Hmax/Mmax as
    ``{"hmax_mmax": (low, high)}`` (percentile intervals at ``level``). With
    ``predict_h_at_ma`` (intensities, mA, shape ``(k,)``) it also returns ``"h_predict_sd_uv"``:
    the bootstrap standard deviation of the fitted H at each of them, shape ``(k,)`` (NaN where
    fewer than 10 resamples gave a finite value).
    """
    x = np.asarray(intensity_ma, float)
    n = x.size
    rows = {
        "mmax": [],
        "m_thr": [],
        "m_i50": [],
        "hmax": [],
        "h_imax": [],
        "h_thr": [],
        "ratio": [],
    }
    at = None if predict_h_at_ma is None else np.asarray(predict_h_at_ma, float)
    h_at = []
    if n_boot <= 0 or m_fit._p is None or h_fit._p is None:
        return {}
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        mf = fit_m(x[idx], m_uv[idx], p_start=m_fit._p)
        hf = fit_h(x[idx], h_uv[idx], p_start=h_fit._p)
        rows["mmax"].append(mf.max_uv)
        rows["m_thr"].append(mf.threshold_ma)
        rows["m_i50"].append(mf.i50_ma)
        rows["hmax"].append(hf.max_uv)
        rows["h_imax"].append(hf.intensity_at_max_ma)
        rows["h_thr"].append(hf.threshold_ma)
        rows["ratio"].append(hf.max_uv / mf.max_uv if mf.max_uv > 0 else np.nan)
        if at is not None:
            h_at.append(hf.predict(at) if hf.converged else np.full(at.shape, np.nan))
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]

    def _ci(v):
        v = np.asarray(v, float)
        v = v[np.isfinite(v)]
        if v.size < 10:
            return (float("nan"), float("nan"))
        a, b = np.percentile(v, q)
        return (float(a), float(b))

    m_fit.ci = {
        "max_uv": _ci(rows["mmax"]),
        "threshold_ma": _ci(rows["m_thr"]),
        "i50_ma": _ci(rows["m_i50"]),
    }
    h_fit.ci = {
        "max_uv": _ci(rows["hmax"]),
        "intensity_at_max_ma": _ci(rows["h_imax"]),
        "threshold_ma": _ci(rows["h_thr"]),
    }
    out: dict = {"hmax_mmax": _ci(rows["ratio"])}
    if at is not None:
        table = np.array(h_at, float).reshape(len(h_at), at.size)
        sd = np.full(at.size, np.nan)
        for j in range(at.size):
            v = table[:, j][np.isfinite(table[:, j])]
            if v.size >= 10:
                sd[j] = float(np.std(v, ddof=1))
        out["h_predict_sd_uv"] = sd
    return out
