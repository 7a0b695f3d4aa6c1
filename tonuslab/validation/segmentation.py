"""Validation of the DSP core's stretch segmentation against the simulator's movements.

``tonuslab validate segmentation [--seeds N] [--quick]``: for each stretch profile and seed,
simulate a TSRT session, run :func:`dsp.kinematics.segment_stretches` with its default
parameters on the analysed angle (lengthening only) and compare each movement with
``truth["stretches"]``: start time (as a fraction of the true movement duration, because a
minimum-jerk movement leaves rest gradually), start angle, range ``max_angle_deg - start_deg``
and peak velocity.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from tonuslab.validation.stretch_reflex import PROFILES as STRETCH_PROFILES

#: Profiles validated: every stretch profile of the simulator (as for the stretch reflex).
PROFILES = STRETCH_PROFILES


def _session_errors(profile: str, seed: int, quick: bool) -> dict:
    import virtual_patient as vp
    from dsp.kinematics import segment_stretches
    from virtual_patient.stretch import tsrt_protocol

    p = vp.get_profile(profile)
    program = tsrt_protocol(p, n_per_level=1 if quick else 4)
    rec = vp.simulate_stretch_session(p, seed=seed, stretches=program, n_emg=1)
    angle = rec.stretch_direction_sign * np.asarray(rec.angle_deg, dtype=np.float64)
    found = segment_stretches(angle, float(rec.angle_rate_hz), direction=1)
    truth = rec.truth["stretches"]
    rows = []
    for tr in truth:
        # the movement found closest to the true start (each is matched at most once)
        best = min(found, key=lambda s: abs(s.start_s - tr["start_s"]), default=None)
        duration_s = tr["movement_end_s"] - tr["start_s"]
        if best is None or abs(best.start_s - tr["start_s"]) > duration_s:
            rows.append({"stretch": tr["index"], "found": False})
            continue
        rows.append(
            {
                "stretch": tr["index"],
                "found": True,
                "start_delay_fraction": (best.start_s - tr["start_s"]) / duration_s,
                "start_angle_error_deg": best.start_angle_deg - tr["start_deg"],
                "range_error_deg": best.range_deg - (tr["max_angle_deg"] - tr["start_deg"]),
                "peak_velocity_error": best.peak_velocity_deg_s / tr["peak_velocity_deg_s"] - 1,
            }
        )
    return {"rows": rows, "n_found": len(found), "n_true": len(truth)}


def _median_max(values) -> list[float | None]:
    a = np.abs(np.asarray(values, dtype=np.float64))
    return [float(np.median(a)), float(np.max(a))] if a.size else [None, None]


def run(seeds: int, out_dir: pathlib.Path | None, quick: bool) -> dict:
    """Simulate, segment, compare; return the error table (JSON-serialisable).

    Parameters
    ----------
    seeds : int
        Sessions per profile.
    out_dir : pathlib.Path or None
        If given, per-stretch records are written there as ``segmentation_<profile>.json``.
    quick : bool
        One stretch per velocity level (7 per session) instead of four (22).

    Returns
    -------
    dict
        ``rows``: one per profile with the number of true stretches, how many were missed,
        how many extra movements were found, and ``[median, max]`` of the absolute start delay
        (fraction of the movement duration), start-angle error (deg), range error (deg) and
        relative peak-velocity error.
    """
    out_rows = []
    for profile in PROFILES:
        records, extra = [], 0
        for seed in range(seeds):
            res = _session_errors(profile, seed, quick)
            extra += max(0, res["n_found"] - res["n_true"])
            records.extend({"seed": seed, **r} for r in res["rows"])
        ok = [r for r in records if r["found"]]
        out_rows.append(
            {
                "profile": profile,
                "n_stretches": len(records),
                "missed": len(records) - len(ok),
                "extra": extra,
                "start_delay_fraction": _median_max([r["start_delay_fraction"] for r in ok]),
                "start_angle_abs_error_deg": _median_max([r["start_angle_error_deg"] for r in ok]),
                "range_abs_error_deg": _median_max([r["range_error_deg"] for r in ok]),
                "peak_velocity_abs_error": _median_max([r["peak_velocity_error"] for r in ok]),
            }
        )
        if out_dir is not None:
            out_dir = pathlib.Path(out_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / f"segmentation_{profile}.json").write_text(json.dumps(records, indent=1))
    return {"suite": "segmentation", "seeds": seeds, "quick": quick, "rows": out_rows}


def _pair(v, scale=1.0, digits=2) -> str:
    if v[0] is None:
        return "-"
    return f"{v[0] * scale:.{digits}g} / {v[1] * scale:.{digits}g}"


def format_table(result: dict) -> str:
    """The error table as Markdown (as published in docs/validation.md)."""
    lines = [
        f"Stretch segmentation vs. the simulator's movements (`tonuslab validate segmentation "
        f"--seeds {result['seeds']}{' --quick' if result['quick'] else ''}`); median / max.",
        "",
        "| profile | stretches | missed | extra | start delay, % of duration | start angle abs "
        "error deg | range abs error deg | peak velocity abs error % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| `{r['profile']}` | {r['n_stretches']} | {r['missed']} | {r['extra']} | "
            f"{_pair(r['start_delay_fraction'], 100)} | {_pair(r['start_angle_abs_error_deg'])} | "
            f"{_pair(r['range_abs_error_deg'])} | {_pair(r['peak_velocity_abs_error'], 100)} |"
        )
    return "\n".join(lines)
