"""``tonuslab validate hreflex``: H-reflex metrics against the virtual patient's ground truth.

Each seed simulates one session per H-reflex profile (``soleus_healthy``, ``soleus_spastic``,
``fcr_healthy``) at a sampling rate cycling through 4, 5, 8 and 10 kHz: a coarse-then-fine
recruitment ladder of 61 pulses (31 with ``--quick``), 10 s apart: 31 (16) levels over the
profile's intensity range in random order, then 30 (15) levels spread over +/-15% of the range
around the H peak of the coarse pass (analysed from its recording, as a lab would), random order
(``simulate(..., ladder="uniform")`` gives the former uniform ladder); frequency blocks at
0.1, 0.2, 0.3, 1 and 2 Hz (10 pulses each) and 10 pairs each at 2.5 and 5 s at the profile's
test intensity. The simulator adds background EMG, amplifier noise, mains hum,
occasional pops, trial-to-trial variability (M CV 3%, H CV 12%, latency jitter) and a stimulus
artifact that saturates the ADC for up to about 2 ms at the upper intensities.

Truth definitions (``docs/simulator.md``; compared like with like):

- Mmax: ``truth.hreflex.mmax_p2p_uv`` (continuous peak-to-peak, channel gain included).
- Hmax and Hmax/Mmax: the simulator's values are for a *fresh* H (no depression). A ladder at
  10 s intervals records H depressed by the profile's factor at 10 s (0.93 here), so the
  like-for-like truth is ``hmax_p2p_uv * depression_factor(10 s)``; the error against the fresh
  value is reported too.
- Latencies: the profile's mean onset latencies ``truth.hreflex.latency_ms`` (wave start after
  the pulse onset; per-pulse latencies jitter around them).
- Rate-dependent depression at f: ``depression_factor(1/f) / depression_factor(10 s)`` (the
  model, normalised to 0.1 Hz); and the *realised* ratio of the true per-pulse H amplitudes of
  the very pulses the analysis averaged (isolates measurement error from trial-to-trial
  variability).
- Paired-pulse depression at dt: ``depression_factor(dt)`` (first pulses follow >= 20 s of
  rest), and the realised ratio over the analysed pairs.
"""

from __future__ import annotations

import json
import math
import pathlib
import time

import numpy as np

PROFILES = ("soleus_healthy", "soleus_spastic", "fcr_healthy")
RATES_HZ = (4000.0, 5000.0, 8000.0, 10000.0)
RATE_BLOCKS_HZ = (0.1, 0.2, 0.3, 1.0, 2.0)
PAIR_INTERVALS_S = (2.5, 5.0)

#: Error budgets of issue 7.
TARGETS = {
    "hmax_mmax_rel": 0.05,
    "mmax_rel": 0.03,
    "m_latency_ms": 0.5,
    "h_latency_ms": 0.5,
    "rdd": 0.05,
    "ppd": 0.05,
}


#: Half-width of the fine ladder around the coarse pass's H peak, as a fraction of the profile's
#: intensity range (FCR: +/-3.5 mA of a 2-25 mA range, the width of its H bump).
FINE_SPAN = 0.15


def coarse_fine_ladders(profile, steps: int):
    """(coarse levels, fine offsets): ``steps // 2 + 1`` levels over the whole range and
    ``steps - steps // 2`` offsets spanning +/-FINE_SPAN of the range, to be centred on the H
    peak the coarse pass shows (mA)."""
    lo, hi = profile.stim_range_ma
    n_coarse = steps // 2
    coarse = np.round(np.linspace(lo, hi, n_coarse + 1), 3)
    half = FINE_SPAN * (hi - lo)
    fine = np.linspace(-half, half, steps - n_coarse)
    return coarse, fine


def session_program(
    profile,
    rng: np.random.Generator,
    quick: bool = False,
    ladder_steps: int | None = None,
    *,
    fine_center_ma: float | None = None,
    coarse_only: bool = False,
):
    """The stimulus program of one validation session (list of ``virtual_patient.Stimulus``).

    Without ``fine_center_ma``: one uniform ladder of ``ladder_steps`` (60; 30 quick) steps. With
    it (the coarse-then-fine protocol, :func:`simulate`): a coarse ladder of half the pulses over
    the range, then the other half spread over +/-FINE_SPAN of the range around
    ``fine_center_ma`` (the H peak of the coarse pass), each part in random order, 10 s apart;
    ``coarse_only`` stops after the coarse part. Then the rate blocks and pairs.
    """
    import virtual_patient as vp

    lo, hi = profile.stim_range_ma
    steps = ladder_steps or (30 if quick else 60)
    if fine_center_ma is None and not coarse_only:
        step = round((hi - lo) / steps, 2)
        ladder = vp.recruitment_ladder(
            profile, step_ma=step, interval_s=10.0, order="random", rng=rng
        )
    else:
        coarse, fine = coarse_fine_ladders(profile, steps)
        levels = list(rng.permutation(coarse))
        if coarse_only:
            return [vp.StimulusSpec(1.0 + 10.0 * k, float(v)) for k, v in enumerate(levels)]
        fine_levels = np.clip(np.round(fine_center_ma + fine, 3), lo, hi)
        levels += list(rng.permutation(fine_levels))
        ladder = [vp.StimulusSpec(1.0 + 10.0 * k, float(v)) for k, v in enumerate(levels)]
    test = vp.test_intensity_ma(profile)
    t = ladder[-1].time_s + 20.0
    blocks = vp.frequency_blocks(
        test, frequencies_hz=RATE_BLOCKS_HZ, n_per_block=6 if quick else 10, start_s=t
    )
    t = blocks[-1].time_s + 20.0
    pairs = vp.paired_pulses(
        test, intervals_s=PAIR_INTERVALS_S, n_pairs=4 if quick else 10, start_s=t
    )
    return ladder + blocks + pairs


def coarse_h_peak_ma(rec) -> float:
    """Intensity of the H peak in a coarse recruitment pass, from the recorded EMG (mA).

    What a lab does between the coarse and the fine ladder: analyse the coarse pass
    (:func:`dsp.hreflex.analyze_hreflex`, no bootstrap) and take the fitted H peak; when the fit
    fails, the intensity of the largest measured H.
    """
    res = analyse(rec, n_boot=0)
    peak = res.h_fit.intensity_at_max_ma
    if res.h_fit.converged and np.isfinite(peak):
        return float(peak)
    h = np.array([s.h_p2p_uv for s in res.stimuli])
    return float(res.stimuli[int(np.nanargmax(h))].intensity_ma)


def simulate(
    profile_name: str,
    seed: int,
    rate_hz: float,
    quick: bool = False,
    ladder_steps=None,
    ladder: str = "coarse-fine",
):
    """Simulate one validation session; returns the ``virtual_patient.Recording``.

    ``ladder="coarse-fine"`` (default): the coarse pass is simulated first and analysed to place
    the fine ladder around its H peak; the full session is then simulated with the same seed,
    so its coarse part is the very same recording (the simulator draws every pulse and noise
    chunk from the seed and its index). ``ladder="uniform"``: one uniform ladder.
    """
    import virtual_patient as vp

    if ladder not in ("coarse-fine", "uniform"):
        raise ValueError(f"ladder={ladder!r} must be 'coarse-fine' or 'uniform'")
    profile = vp.get_profile(profile_name)
    center = None
    if ladder == "coarse-fine":
        coarse = session_program(
            profile, np.random.default_rng([seed, 7]), quick, ladder_steps, coarse_only=True
        )
        first = vp.simulate_hreflex_session(profile, seed=seed, emg_rate_hz=rate_hz, stimuli=coarse)
        center = coarse_h_peak_ma(first)
    rng = np.random.default_rng([seed, 7])
    program = session_program(profile, rng, quick, ladder_steps, fine_center_ma=center)
    return vp.simulate_hreflex_session(profile, seed=seed, emg_rate_hz=rate_hz, stimuli=program)


def analyse(rec, *, n_boot: int = 100, seed: int = 0):
    """Run :func:`dsp.hreflex.analyze_hreflex` on a simulated recording (channel 0)."""
    from dsp.hreflex import analyze_hreflex

    ev = rec.events
    return analyze_hreflex(
        rec.emg_uv,
        rec.emg_rate_hz,
        np.array([e["emg_sample_index"] for e in ev]),
        np.array([e["intensity_ma"] for e in ev]),
        stim_width_us=np.array([e["width_us"] for e in ev], float),
        pulse_index=np.array([e["pulse_index"] for e in ev]),
        muscle=rec.truth["profile"]["muscle"],
        n_boot=n_boot,
        seed=seed,
    )


def _dep(profile: dict, interval_s: float) -> float:
    xs = np.log(np.asarray(profile["depression_interval_s"]))
    return float(
        np.interp(math.log(max(interval_s, 1e-6)), xs, profile["depression_ratio"], right=1.0)
    )


def compare(result, truth: dict) -> dict:
    """Errors of one analysed session against the truth (see the module docstring)."""
    h = truth["hreflex"]
    prof = truth["profile"]
    st = truth["stimuli"]
    h_true = np.array([s["h_p2p_uv"] for s in st])
    m_true = np.array([s["m_p2p_uv"] for s in st])
    dep10 = _dep(prof, 10.0)
    hmm_rec = h["hmax_mmax"] * dep10
    out = {
        "mmax_rel": result.mmax_uv / h["mmax_p2p_uv"] - 1.0,
        "hmax_rel": result.hmax_uv / (h["hmax_p2p_uv"] * dep10) - 1.0,
        "hmax_mmax_rel": result.hmax_mmax / hmm_rec - 1.0,
        "hmax_mmax_rel_vs_fresh": result.hmax_mmax / h["hmax_mmax"] - 1.0,
        "hmax_mmax_ci_covers": bool(result.hmax_mmax_ci[0] <= hmm_rec <= result.hmax_mmax_ci[1]),
        "m_latency_ms": result.m_latency_ms - h["latency_ms"]["m"],
        "h_latency_ms": result.h_latency_ms - h["latency_ms"]["h"],
    }
    # the same fits on the true per-pulse amplitudes of the same pulses: what a perfect
    # measurement would give (isolates measurement error from trial-to-trial variability)
    from dsp.hreflex import fit_h, fit_m

    used = [s.stimulus for s in result.stimuli if s.stimulus in set(_recruitment_members(result))]
    inten = np.array([st[i]["intensity_ma"] for i in used])
    mf = fit_m(inten, np.array([st[i]["m_p2p_uv"] for i in used]))
    hf = fit_h(inten, np.array([st[i]["h_p2p_uv"] for i in used]))
    out["hmax_mmax_rel_vs_realised"] = result.hmax_mmax / (hf.max_uv / mf.max_uv) - 1.0
    out["mmax_rel_vs_realised"] = result.mmax_uv / mf.max_uv - 1.0
    # per-stimulus amplitudes (measurement error on single sweeps)
    m_est = np.array([s.m_p2p_uv for s in result.stimuli])
    h_est = np.array([s.h_p2p_uv for s in result.stimuli])
    inc = np.array([s.included for s in result.stimuli])
    big_m = inc & (m_true > 0.2 * h["mmax_p2p_uv"])
    big_h = inc & (h_true > 0.2 * h["hmax_p2p_uv"])
    out["m_sweep_rel_median"] = float(np.median(np.abs(m_est[big_m] / m_true[big_m] - 1)))
    out["h_sweep_rel_median"] = float(np.median(np.abs(h_est[big_h] / h_true[big_h] - 1)))
    sat = np.array([s.saturated_ms for s in result.stimuli])
    sat2 = inc & (sat >= 2.0) & (m_true > 0.2 * h["mmax_p2p_uv"])
    out["saturated_ms_max"] = float(sat.max())
    out["n_saturated_2ms"] = int(sat2.sum())
    out["m_sweep_rel_median_saturated_2ms"] = (
        float(np.median(np.abs(m_est[sat2] / m_true[sat2] - 1))) if sat2.any() else None
    )
    # rate-dependent depression
    details = {}
    for d in result.rate_dependent_depression_detail:  # the test-intensity blocks (largest n)
        if d["rate_hz"] not in details or d["n"] > details[d["rate_hz"]]["n"]:
            details[d["rate_hz"]] = d
    base = details.get(0.1)
    rdd = {}
    for f in RATE_BLOCKS_HZ[1:]:
        key = f"{f:g}"
        if base is None or f not in details:
            rdd[key] = None
            continue
        est = details[f]["ratio"]
        model = _dep(prof, 1.0 / f) / dep10
        realised = float(np.mean(h_true[details[f]["stimuli"]]) / np.mean(h_true[base["stimuli"]]))
        ci = details[f].get("ratio_ci95")
        rdd[key] = {"est": est, "model": model, "realised": realised,
                    "err_model": est - model, "err_realised": est - realised,
                    "ci_covers_model": None if ci is None
                    else bool(ci[0] <= model <= ci[1])}  # fmt: skip
    out["rdd"] = rdd
    ppd = {}
    pdet = {d["interval_s"]: d for d in result.paired_pulse_depression_detail}
    for dt in PAIR_INTERVALS_S:
        d = pdet.get(dt)
        if d is None:
            ppd[f"{dt:g}"] = None
            continue
        pr = np.array(d["pairs"])
        realised = float(np.mean(h_true[pr[:, 1]]) / np.mean(h_true[pr[:, 0]]))
        model = _dep(prof, dt)
        est = d["ratio_of_means"]
        ci = d.get("ratio_ci95")
        ppd[f"{dt:g}"] = {"est": est, "model": model, "realised": realised,
                          "err_model": est - model, "err_realised": est - realised,
                          "ci_covers_model": None if ci is None
                          else bool(ci[0] <= model <= ci[1])}  # fmt: skip
    out["ppd"] = ppd
    out["n_excluded"] = len(result.exclusions)
    out["warnings"] = list(result.warnings)
    return out


def _recruitment_members(result) -> list[int]:
    """Stimuli the analysis put in its recruitment fits (same rule, from its parameters)."""
    lo, hi = result.parameters["recruitment_interval_s"]
    rule = result.parameters["recruitment_rule"]
    out = []
    for s in result.stimuli:
        if not s.included:
            continue
        iv = s.interval_s
        if rule.startswith("preceding interval in") and not (lo <= iv <= hi):
            continue
        out.append(s.stimulus)
    return out


def _summary(values, target=None, relative=False):
    v = np.abs(np.asarray([x for x in values if x is not None and np.isfinite(x)], float))
    if v.size == 0:
        return None
    s = {
        "n": int(v.size),
        "median_abs": float(np.median(v)),
        "p90_abs": float(np.percentile(v, 90)),
        "max_abs": float(v.max()),
    }
    if target is not None:
        s["target"] = target
        s["within_target"] = float(np.mean(v <= target))
    return s


def summarise(rows: list[dict]) -> dict:
    """Error statistics over seeds (one row per session)."""
    out = {
        "hmax_mmax_rel": _summary([r["hmax_mmax_rel"] for r in rows], TARGETS["hmax_mmax_rel"]),
        "hmax_mmax_rel_vs_fresh": _summary([r["hmax_mmax_rel_vs_fresh"] for r in rows]),
        "hmax_mmax_rel_vs_realised": _summary(
            [r["hmax_mmax_rel_vs_realised"] for r in rows], TARGETS["hmax_mmax_rel"]
        ),
        "mmax_rel_vs_realised": _summary(
            [r["mmax_rel_vs_realised"] for r in rows], TARGETS["mmax_rel"]
        ),
        "hmax_rel": _summary([r["hmax_rel"] for r in rows]),
        "mmax_rel": _summary([r["mmax_rel"] for r in rows], TARGETS["mmax_rel"]),
        "m_latency_ms": _summary([r["m_latency_ms"] for r in rows], TARGETS["m_latency_ms"]),
        "h_latency_ms": _summary([r["h_latency_ms"] for r in rows], TARGETS["h_latency_ms"]),
        "m_sweep_rel_median": _summary([r["m_sweep_rel_median"] for r in rows]),
        "h_sweep_rel_median": _summary([r["h_sweep_rel_median"] for r in rows]),
        "m_sweep_rel_median_saturated_2ms": _summary(
            [r["m_sweep_rel_median_saturated_2ms"] for r in rows]
        ),
        "hmax_mmax_ci_coverage": float(np.mean([r["hmax_mmax_ci_covers"] for r in rows])),
        "saturated_ms_max": float(max(r["saturated_ms_max"] for r in rows)),
        "n_saturated_2ms_total": int(sum(r["n_saturated_2ms"] for r in rows)),
    }
    for kind in ("rdd", "ppd"):
        keys = sorted({k for r in rows for k in r[kind]}, key=float)
        for k in keys:
            vals = [r[kind][k] for r in rows if r[kind].get(k)]
            out[f"{kind}_{k}_vs_realised"] = _summary(
                [v["err_realised"] for v in vals], TARGETS[kind]
            )
            out[f"{kind}_{k}_vs_model"] = _summary([v["err_model"] for v in vals], TARGETS[kind])
            covers = [v["ci_covers_model"] for v in vals if v.get("ci_covers_model") is not None]
            if covers:
                name = (
                    "depression_ci_coverage_model" if kind == "rdd" else "paired_ci_coverage_model"
                )
                out.setdefault(name, {})[k] = float(np.mean(covers))
    return out


def run(seeds: int, out_dir: pathlib.Path | None = None, quick: bool = False) -> dict:
    """Simulate ``seeds`` sessions per profile, analyse, compare; return the error tables."""
    per_profile: dict[str, list[dict]] = {}
    t0 = time.perf_counter()
    for name in PROFILES:
        rows = []
        for seed in range(seeds):
            rate = RATES_HZ[seed % len(RATES_HZ)]
            rec = simulate(name, seed, rate, quick)
            res = analyse(rec, n_boot=50 if quick else 100, seed=seed)
            row = compare(res, rec.truth)
            row.update({"profile": name, "seed": seed, "emg_rate_hz": rate})
            rows.append(row)
            if out_dir is not None:
                out_dir = pathlib.Path(out_dir)
                out_dir.mkdir(parents=True, exist_ok=True)
                (out_dir / f"hreflex_{name}_{seed}.json").write_text(
                    json.dumps({"errors": row, "result": res.to_dict()}, default=float)
                )
        per_profile[name] = rows
    all_rows = [r for rows in per_profile.values() for r in rows]
    return {
        "suite": "hreflex",
        "seeds": seeds,
        "quick": quick,
        "profiles": list(PROFILES),
        "rates_hz": list(RATES_HZ),
        "targets": TARGETS,
        "elapsed_s": time.perf_counter() - t0,
        "pooled": summarise(all_rows),
        "by_profile": {k: summarise(v) for k, v in per_profile.items()},
        "sessions": [{k: v for k, v in r.items() if k not in ("warnings",)} for r in all_rows],
    }


def _fmt(s, scale=1.0, unit=""):
    if s is None:
        return "n/a"
    return f"{s['median_abs'] * scale:.3g}{unit} / {s['p90_abs'] * scale:.3g}{unit} / " \
        f"{s['max_abs'] * scale:.3g}{unit}"  # fmt: skip


def _rdd_coverage_text(coverage: dict | None, kind: str = "Rate-depression", unit="Hz") -> str:
    """``Rate depression 95% intervals cover the model value in ...`` (empty if none)."""
    if not coverage:
        return ""
    parts = ", ".join(
        f"{v:.0%} at {k} {unit}" for k, v in sorted(coverage.items(), key=lambda kv: float(kv[0]))
    )
    return f"{kind} 95% intervals cover the model's ratio in {parts} of sessions. "


def format_table(result: dict) -> str:
    """The error table as Markdown (as published in docs/validation.md)."""
    rows = [
        ("Hmax/Mmax (vs as-recorded truth), relative", "hmax_mmax_rel", 100, "%", "5% in 90%"),
        ("Hmax/Mmax vs fresh (undepressed) truth", "hmax_mmax_rel_vs_fresh", 100, "%", "-"),
        ("Hmax/Mmax vs same fit on true pulse amplitudes", "hmax_mmax_rel_vs_realised", 100, "%",
         "-"),
        ("Mmax vs same fit on true pulse amplitudes", "mmax_rel_vs_realised", 100, "%", "-"),
        ("Hmax (vs as-recorded truth), relative", "hmax_rel", 100, "%", "-"),
        ("Mmax, relative", "mmax_rel", 100, "%", "<= 3%"),
        ("M onset latency", "m_latency_ms", 1, " ms", "<= 0.5 ms"),
        ("H onset latency", "h_latency_ms", 1, " ms", "<= 0.5 ms"),
        ("single-sweep M p2p (median per session)", "m_sweep_rel_median", 100, "%", "-"),
        ("single-sweep M p2p, sweeps saturated >= 2 ms", "m_sweep_rel_median_saturated_2ms", 100,
         "%", "-"),
        ("single-sweep H p2p (median per session)", "h_sweep_rel_median", 100, "%", "-"),
    ]  # fmt: skip
    pooled = result["pooled"]
    for k in sorted(k for k in pooled if k.startswith(("rdd_", "ppd_"))):
        kind, key, _, against = k.split("_", 3)
        label = "rate depression " + key + " Hz" if kind == "rdd" else "paired pulse " + key + " s"
        rows.append((f"{label} vs {against}", k, 1, "", "<= 0.05"))
    lines = [
        f"H-reflex validation: {result['seeds']} seeds x {len(result['profiles'])} profiles "
        f"({', '.join(result['profiles'])}), EMG at "
        f"{'/'.join(f'{r / 1000:g}' for r in result['rates_hz'])} kHz"
        f"{' (quick)' if result['quick'] else ''}; {result['elapsed_s']:.0f} s.",
        "",
        "| quantity | median / p90 / max abs error | within target | target |",
        "|---|---|---|---|",
    ]
    for label, key, scale, unit, target in rows:
        s = pooled.get(key)
        within = "-" if not s or "within_target" not in s else f"{s['within_target']:.0%}"
        lines.append(f"| {label} | {_fmt(s, scale, unit)} | {within} | {target} |")
    lines += [
        "",
        f"Hmax/Mmax 95% bootstrap interval covers the as-recorded truth in "
        f"{pooled['hmax_mmax_ci_coverage']:.0%} of sessions. "
        + _rdd_coverage_text(pooled.get("depression_ci_coverage_model"))
        + _rdd_coverage_text(pooled.get("paired_ci_coverage_model"), "Paired-pulse", "s")
        + "Longest ADC saturation: "
        f"{pooled['saturated_ms_max']:.1f} ms; {pooled['n_saturated_2ms_total']} sweeps with M "
        "> 20% Mmax saturated >= 2 ms.",
        "",
        "| profile | Hmax/Mmax rel p90 | within 5% | Mmax rel p90 | M lat p90 | H lat p90 |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in result["by_profile"].items():
        lines.append(
            f"| {name} | {s['hmax_mmax_rel']['p90_abs']:.1%} | "
            f"{s['hmax_mmax_rel']['within_target']:.0%} | {s['mmax_rel']['p90_abs']:.1%} | "
            f"{s['m_latency_ms']['p90_abs']:.2f} ms | {s['h_latency_ms']['p90_abs']:.2f} ms |"
        )
    return "\n".join(lines)
