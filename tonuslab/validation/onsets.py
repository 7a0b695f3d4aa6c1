"""Validation of the DSP core's onset detectors against the simulator's known reflex onsets.

``tonuslab validate onsets [--seeds N] [--quick]``: for each stretch profile, noise level and
seed, simulate a TSRT session (``virtual_patient.simulate_stretch_session``), cut one window per
stretch (0.5 s of rest before the movement, used as the baseline, to the end of the movement),
run every detector of :mod:`dsp.onsets` with its default parameters on EMG channel 0 and
compare the first onset with ``truth["stretches"][k]["emg_onset_s"]`` (the first instant the
simulated reflex envelope is non-zero). Stretches without a reflex count false positives.
"""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np

#: Stretch profiles validated (the healthy profile has no reflex inside the range).
PROFILES = ("mild_elbow", "moderate_elbow", "severe_elbow", "healthy")
#: Multipliers of the simulator's noise, mains hum, motion artifacts and pops.
NOISE_SCALES = (0.5, 1.0, 2.0, 4.0)
#: Rest before each movement used as the detectors' baseline window (s).
BASELINE_S = 0.5


def _detectors():
    from dsp.onsets import DETECTORS

    return DETECTORS


def _session_errors(profile: str, noise_scale: float, seed: int, quick: bool) -> dict:
    import virtual_patient as vp
    from virtual_patient.stretch import tsrt_protocol

    p = vp.get_profile(profile, noise_scale=noise_scale)
    program = tsrt_protocol(p, n_per_level=1 if quick else 4)
    rec = vp.simulate_stretch_session(p, seed=seed, stretches=program, n_emg=1)
    fs = float(rec.emg_rate_hz)
    x = np.asarray(rec.emg_uv)[:, 0]
    out = {m: [] for m in _detectors()}
    for st in rec.truth["stretches"]:
        a = round((st["start_s"] - BASELINE_S) * fs)
        b = round(st["movement_end_s"] * fs)
        if a < 0 or b > x.size or not np.isfinite(x[a:b]).all():
            continue
        for name, detect in _detectors().items():
            r = detect(x[a:b], fs, baseline_s=(0.0, BASELINE_S))
            found = (a + r.onsets[0]) / fs if r.onsets.size else None
            truth = st["emg_onset_s"] if st["reflex"] else None
            out[name].append(
                {
                    "stretch": st["index"],
                    "reflex": bool(st["reflex"]),
                    "truth_s": truth,
                    "detected_s": found,
                    "error_ms": None if (truth is None or found is None) else 1e3 * (found - truth),
                }
            )
    return out


def _summary(records: list[dict]) -> dict:
    reflex = [r for r in records if r["reflex"]]
    errors = np.array([r["error_ms"] for r in reflex if r["error_ms"] is not None], dtype=float)
    no_reflex = [r for r in records if not r["reflex"]]

    def q(values, p):
        return float(np.percentile(values, p)) if values.size else math.nan

    return {
        "n_reflex": len(reflex),
        "detected": int(errors.size),
        "median_error_ms": q(errors, 50),
        "median_abs_error_ms": q(np.abs(errors), 50),
        "p90_abs_error_ms": q(np.abs(errors), 90),
        "n_no_reflex": len(no_reflex),
        "false_positives": sum(r["detected_s"] is not None for r in no_reflex),
    }


def run(seeds: int, out_dir: pathlib.Path | None, quick: bool) -> dict:
    """Simulate, detect, compare; return the error table (JSON-serialisable).

    Parameters
    ----------
    seeds : int
        Sessions per profile and noise level.
    out_dir : pathlib.Path or None
        If given, per-stretch records are written there as ``onsets_<profile>_<noise>.json``.
    quick : bool
        One stretch per velocity level (7 per session) instead of four (22).

    Returns
    -------
    dict
        ``rows``: one per detector and noise level (pooled over profiles and seeds) with the
        number of reflex stretches, detections, median signed error, median and 90th percentile
        of the absolute error (ms), false positives on stretches without a reflex;
        ``params``: the detectors' parameters as reported in their results.
    """
    from dsp.onsets import detect_onsets

    names = list(_detectors())
    pooled = {(m, ns): [] for m in names for ns in NOISE_SCALES}
    for profile in PROFILES:
        for ns in NOISE_SCALES:
            per_profile = {m: [] for m in names}
            for seed in range(seeds):
                res = _session_errors(profile, ns, seed, quick)
                for m in names:
                    for r in res[m]:
                        r["seed"] = seed
                    per_profile[m].extend(res[m])
                    pooled[(m, ns)].extend(res[m])
            if out_dir is not None:
                out_dir = pathlib.Path(out_dir)
                out_dir.mkdir(parents=True, exist_ok=True)
                (out_dir / f"onsets_{profile}_{ns:g}.json").write_text(
                    json.dumps(per_profile, indent=1)
                )
    rows = []
    for m in names:
        for ns in NOISE_SCALES:
            rows.append({"detector": m, "noise_scale": ns, **_summary(pooled[(m, ns)])})
    demo = np.random.default_rng(0).normal(size=2000)
    params = {m: detect_onsets(demo, 2000.0, m, baseline_s=(0.0, BASELINE_S)).params for m in names}
    for p in params.values():
        p.pop("change_points", None)
    return {
        "suite": "onsets",
        "seeds": seeds,
        "quick": quick,
        "profiles": list(PROFILES),
        "noise_scales": list(NOISE_SCALES),
        "baseline_s": BASELINE_S,
        "rows": rows,
        "params": params,
    }


def _fmt(v, digits=1):
    return (
        "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"
    )


def format_table(result: dict) -> str:
    """The error table as Markdown (as published in docs/validation.md)."""
    lines = [
        f"Onset error vs. the simulator's reflex onset (`tonuslab validate onsets --seeds "
        f"{result['seeds']}{' --quick' if result['quick'] else ''}`); profiles "
        f"{', '.join(result['profiles'])}; error = detected - true (ms).",
        "",
        "| detector | noise x | reflex stretches | detected | median error ms "
        "| median abs ms | p90 abs ms | false positives |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['detector']} | {r['noise_scale']:g} | {r['n_reflex']} | {r['detected']} | "
            f"{_fmt(r['median_error_ms'])} | {_fmt(r['median_abs_error_ms'])} | "
            f"{_fmt(r['p90_abs_error_ms'])} | {r['false_positives']}/{r['n_no_reflex']} |"
        )
    lines.append("")
    for m, p in result["params"].items():
        lines.append(f"- `{m}`: " + ", ".join(f"{k}={v}" for k, v in p.items()))
    return "\n".join(lines)
