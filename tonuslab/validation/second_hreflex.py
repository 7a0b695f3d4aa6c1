"""A second H-reflex generator, built differently from the virtual patient, for validation.

``tonuslab validate hreflex-second [--seeds N]``: sessions from a generator that shares no code
and no modelling choice with :mod:`virtual_patient`, analysed by
:func:`dsp.hreflex.analyze_hreflex` exactly as a recording, and compared with the generator's
truth. What differs from the virtual patient:

- **recruitment**: M follows a Weibull distribution function of the intensity (the virtual
  patient: a logistic); H is a Gaussian bump of the intensity times the fraction of motor axons
  not yet recruited by the stimulus (antidromic collision), not a difference of sigmoids;
- **wave shapes**: M is a difference of two gamma functions (an asymmetric biphasic wave), H a
  Gabor-like wavelet (three phases), both with per-sweep latency jitter; the virtual patient
  uses its own MUAP-sum shapes;
- **noise**: pink (1/f) background plus 50 Hz mains and band-limited tonic EMG, not white noise
  plus pops;
- **artifact**: a decaying exponential with a 300 Hz ring-down and per-pulse amplitude
  variation;
- **sweep variability**: multiplicative log-normal trial-to-trial variation of H (CV 15 %) and
  M (CV 4 %).

Truth: ``mmax_p2p_uv`` is the M wave's peak-to-peak at full recruitment and ``hmax_p2p_uv`` the
largest H of the noiseless recruitment curve, both of the sampled wave shapes, so
``hmax_mmax`` is what a perfect estimator would report.
"""

from __future__ import annotations

import math

import numpy as np

#: Generator settings drawn per session (ranges of uniform draws).
RANGES = {
    "mmax_uv": (4000.0, 12000.0),
    "hmax_mmax": (0.15, 0.75),
    "m_latency_ms": (4.5, 7.0),
    "h_latency_ms": (28.0, 34.0),
    "noise_uv": (3.0, 12.0),
}


def _gamma_wave(t_ms: np.ndarray, shape: float, scale_ms: float) -> np.ndarray:
    out = np.zeros_like(t_ms)
    ok = t_ms > 0
    x = t_ms[ok] / scale_ms
    out[ok] = x ** (shape - 1) * np.exp(-x)
    return out / (out.max() if out.max() > 0 else 1.0)


def m_shape(t_ms: np.ndarray) -> np.ndarray:
    """Biphasic M wave (difference of gammas), unit peak-to-peak, ``t_ms`` after its onset."""
    w = _gamma_wave(t_ms, 3.0, 1.1) - 0.8 * _gamma_wave(t_ms - 1.8, 3.5, 1.6)
    return w / (w.max() - w.min())


def h_shape(t_ms: np.ndarray) -> np.ndarray:
    """Triphasic H wave (Gabor wavelet), unit peak-to-peak, ``t_ms`` after its onset."""
    c = 5.0
    w = np.where(
        t_ms > 0, np.exp(-(((t_ms - c) / 2.6) ** 2)) * np.sin(2 * np.pi * (t_ms - c) / 8.0), 0.0
    )
    return w / (w.max() - w.min())


def _pink(rng, n: int, sd: float) -> np.ndarray:
    spec = rng.normal(size=n // 2 + 1) + 1j * rng.normal(size=n // 2 + 1)
    f = np.arange(spec.size, dtype=float)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return sd * x / x.std()


def generate_session(seed: int, rate_hz: float = 5000.0) -> dict:
    """One session: a coarse-to-fine recruitment ladder, 10-12 s apart.

    Returns
    -------
    dict
        ``emg_uv`` (n,), ``rate_hz``, ``stim_sample_index``, ``stim_intensity_ma`` and
        ``truth`` (``mmax_p2p_uv``, ``hmax_p2p_uv``, ``hmax_mmax``, latencies, settings).
    """
    rng = np.random.default_rng([seed, 2026])
    p = {k: float(rng.uniform(*v)) for k, v in RANGES.items()}
    # recruitment: M Weibull from i0, H a bump centred below the M half-activation
    i0, lam, k = rng.uniform(3.0, 6.0), rng.uniform(8.0, 14.0), rng.uniform(1.6, 2.6)
    m_frac = lambda i: 1.0 - np.exp(-((np.clip(i - i0, 0, None) / lam) ** k))  # noqa: E731
    i_h = i0 + lam * rng.uniform(0.25, 0.45)
    w_h = lam * rng.uniform(0.35, 0.6)
    bump = lambda i: np.exp(-(((i - i_h) / w_h) ** 2)) * (1 - m_frac(i)) ** 0.5  # noqa: E731
    grid = np.linspace(0.0, 80.0, 8001)
    h_peak_grid = float(bump(grid).max())
    h_gain = p["hmax_mmax"] * p["mmax_uv"] / h_peak_grid
    # the ladder: coarse 2 mA steps, then fine around the H peak, random order within each
    # up to a supramaximal intensity (M at 99.5 % of Mmax, plus 4 mA), as a protocol must go
    i_sup = i0 + lam * (-math.log(0.005)) ** (1.0 / k) + 4.0
    coarse = np.arange(4.0, max(32.0, i_sup) + 1e-9, 2.0)
    centre = float(grid[np.argmax(bump(grid))])
    fine = np.linspace(centre - 4.0, centre + 4.0, 14)
    intensities = np.concatenate([rng.permutation(coarse), rng.permutation(fine)])
    intensities = np.clip(intensities, 1.0, None)
    gaps_s = rng.uniform(10.0, 12.0, intensities.size)
    onset_s = 1.0 + np.concatenate([[0.0], np.cumsum(gaps_s[:-1])])
    n = int((onset_s[-1] + 2.0) * rate_hz)
    t = np.arange(n) / rate_hz
    emg = _pink(rng, n, p["noise_uv"])
    emg += 0.3 * p["noise_uv"] * np.sin(2 * np.pi * 50.0 * t + rng.uniform(0, 2 * np.pi))
    idx = np.round(onset_s * rate_hz).astype(np.int64)
    win = np.arange(int(0.08 * rate_hz))
    t_ms = win / rate_hz * 1000.0
    for j, (i, intensity) in enumerate(zip(idx, intensities, strict=True)):
        jit_m, jit_h = rng.normal(0, 0.15), rng.normal(0, 0.4)
        m_amp = p["mmax_uv"] * m_frac(intensity) * math.exp(rng.normal(0, 0.04))
        h_amp = h_gain * bump(intensity) * math.exp(rng.normal(0, 0.15))
        art = rng.uniform(0.7, 1.3) * 3000.0
        wave = (
            m_amp * m_shape(t_ms - p["m_latency_ms"] - jit_m)
            + h_amp * h_shape(t_ms - p["h_latency_ms"] - jit_h)
            + art * np.exp(-t_ms / 0.6) * np.cos(2 * np.pi * 0.3 * t_ms)
        )
        stop = min(n, i + win.size)
        emg[i:stop] += wave[: stop - i]
        del j
    # truth from the sampled, noiseless shapes
    m_pp = float(np.ptp(m_shape(t_ms - p["m_latency_ms"])))
    h_pp = float(np.ptp(h_shape(t_ms - p["h_latency_ms"])))
    mmax = p["mmax_uv"] * m_pp
    hmax = h_gain * h_peak_grid * h_pp
    return {
        "emg_uv": emg,
        "rate_hz": rate_hz,
        "stim_sample_index": idx,
        "stim_intensity_ma": intensities,
        "truth": {
            "mmax_p2p_uv": mmax,
            "hmax_p2p_uv": hmax,
            "hmax_mmax": hmax / mmax,
            "m_latency_ms": p["m_latency_ms"],
            "h_latency_ms": p["h_latency_ms"],
            "settings": p,
        },
    }


def _one(seed: int) -> dict:
    from dsp.hreflex import analyze_hreflex

    s = generate_session(seed)
    res = analyze_hreflex(
        s["emg_uv"], s["rate_hz"], s["stim_sample_index"], s["stim_intensity_ma"],
        muscle="soleus", n_boot=100, seed=seed,
    )  # fmt: skip
    truth = s["truth"]["hmax_mmax"]
    lo, hi = res.hmax_mmax_ci
    ok = all(math.isfinite(v) for v in (res.hmax_mmax, lo, hi))
    return {
        "seed": seed,
        "truth": truth,
        "estimate": float(res.hmax_mmax),
        "ci": [float(lo), float(hi)],
        "relative_error": float(res.hmax_mmax / truth - 1) if ok else None,
        "covered": bool(ok and lo <= truth <= hi),
        "mmax_error": float(res.mmax_uv / s["truth"]["mmax_p2p_uv"] - 1),
        "noise_uv": s["truth"]["settings"]["noise_uv"],
    }


def run(seeds: int, out_dir=None, quick: bool = False) -> dict:
    """Generate ``seeds`` sessions, analyse them, and return errors and interval coverage."""
    rows = [_one(seed) for seed in range(seeds)]
    errs = np.array([r["relative_error"] for r in rows if r["relative_error"] is not None])
    if out_dir is not None:
        import json
        import pathlib

        pathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)
        (pathlib.Path(out_dir) / "hreflex_second.json").write_text(json.dumps(rows, indent=1))
    return {
        "seeds": seeds,
        "quick": quick,
        "n": len(rows),
        "n_estimated": int(errs.size),
        "median_abs_error": float(np.median(np.abs(errs))) if errs.size else None,
        "max_abs_error": float(np.max(np.abs(errs))) if errs.size else None,
        "within_5pct": float(np.mean(np.abs(errs) <= 0.05)) if errs.size else None,
        "coverage_95": float(np.mean([r["covered"] for r in rows])),
        "mmax_median_abs_error": float(np.median(np.abs([r["mmax_error"] for r in rows]))),
        "rows": rows,
    }


def format_table(result: dict) -> str:
    """The result as Markdown (as published in docs/validation.md)."""
    pct = lambda v: "-" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    return "\n".join(
        [
            f"Hmax/Mmax on the second H-reflex generator (`tonuslab validate hreflex-second "
            f"--seeds {result['seeds']}`):",
            "",
            "| sessions | estimated | median abs error | max abs error | within 5 % | "
            "95 % interval covers | Mmax median abs error |",
            "|---|---|---|---|---|---|---|",
            f"| {result['n']} | {result['n_estimated']} | {pct(result['median_abs_error'])} | "
            f"{pct(result['max_abs_error'])} | {pct(result['within_5pct'])} | "
            f"{pct(result['coverage_95'])} | {pct(result['mmax_median_abs_error'])} |",
        ]
    )
