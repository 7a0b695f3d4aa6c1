"""Stages 6-7 of the H-reflex analysis: recruitment curves, test intensity and depression.

:func:`fit_recruitment` fits the M and H recruitment curves (Hmax, Mmax, bootstrap);
:func:`depression` finds the test intensity and the rate-dependent and paired-pulse
depression. The helpers below them are the depression and test-intensity computations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dsp.hreflex._inputs import (
    MIN_STABILITY_TRIALS,
    HReflexInputs,
    HReflexSettings,
    _rate_key,
)
from dsp.hreflex.recruitment import (
    RecruitmentFit,
    bootstrap_fits,
    fit_h,
    fit_m,
    intensity_for_m_fraction,
)
from dsp.hreflex.result import TestIntensity


@dataclass(frozen=True)
class Recruitment:
    """M and H recruitment fits and the figures read from them.

    Attributes
    ----------
    rec : ndarray of bool, shape (n_stimuli,)
        Sweeps in the recruitment curves; ``rec_rule`` says how they were chosen.
    m_fit, h_fit : RecruitmentFit
    boot : dict
        Bootstrap intervals (``hmax_mmax``, ``h_predict_sd_uv``).
    h_fit_sd_uv : dict of float to float
        SD of the fitted H at each depression-block intensity, uV.
    mmax, hmax, ratio : float
        Mmax and Hmax (uV) and Hmax/Mmax.
    warnings : tuple of str
    """

    rec: np.ndarray
    rec_rule: str
    m_fit: RecruitmentFit
    h_fit: RecruitmentFit
    boot: dict
    h_fit_sd_uv: dict
    mmax: float
    hmax: float
    ratio: float
    warnings: tuple[str, ...]


def fit_recruitment(inp: HReflexInputs, settings: HReflexSettings, usable, interval, m_amp,
                    h_amp) -> Recruitment:  # fmt: skip
    """Choose the recruitment sweeps and fit the M and H curves."""
    pair_role, intensity = inp.pair_role, inp.intensity
    recruitment_interval_s, n_boot, rng = (
        settings.recruitment_interval_s,
        settings.n_boot,
        settings.rng(),
    )
    warnings: list[str] = []
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
    return Recruitment(
        rec, rec_rule, m_fit, h_fit, boot, h_fit_sd_uv, mmax, hmax, ratio, tuple(warnings)
    )


@dataclass(frozen=True)
class Depression:
    """Test intensity and the two depression measures.

    Attributes
    ----------
    test : TestIntensity or None
    rdd, rdd_ci, rdd_detail
        Rate-dependent depression, its interval and per-rate detail.
    ppd, ppd_ci, ppd_detail
        Paired-pulse depression, its interval and per-pair detail.
    warnings : tuple of str
    """

    test: TestIntensity | None
    rdd: object
    rdd_ci: object
    rdd_detail: object
    ppd: object
    ppd_ci: object
    ppd_detail: object
    warnings: tuple[str, ...]


def depression(inp: HReflexInputs, settings: HReflexSettings, stimuli, usable, interval, nominal,
               m_amp, h_amp, rcr: Recruitment) -> Depression:  # fmt: skip
    """Test intensity and M stability, rate-dependent and paired-pulse depression."""
    idx, rate, intensity, pair_role = inp.idx, inp.rate, inp.intensity, inp.pair_role
    m_fit, h_fit, mmax, h_fit_sd_uv = rcr.m_fit, rcr.h_fit, rcr.mmax, rcr.h_fit_sd_uv
    test_m_fraction, qc_band = settings.test_m_fraction, settings.qc_band
    test_tolerance, rdd_discard = settings.test_tolerance, settings.rdd_discard
    baseline_rate_hz = settings.baseline_rate_hz
    warnings: list[str] = []
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
    return Depression(test, rdd, rdd_ci, rdd_detail, ppd, ppd_ci, ppd_detail, tuple(warnings))


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
