"""``tonuslab analyze FILE.h5``: run every supported analysis and store the results in the file."""

from __future__ import annotations

import json
import pathlib

from tonuslab._output import emit
from tonuslab.analysis import (
    STIMULUS_COLUMNS,
    STRETCH_COLUMNS,
    SUMMARY_KEYS,
    analyze_file,
)
from tonuslab.profile import build_profile
from tonuslab.results import DEFAULT_RUN

NAME = "analyze"
HELP = "Analyse a session (stretch reflex, H-reflex) and store the results in the file."


def add_arguments(parser) -> None:
    parser.add_argument("file", type=pathlib.Path, help="session file (.h5)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--run", default=DEFAULT_RUN, help=f"name of the results run (default '{DEFAULT_RUN}')"
    )
    parser.add_argument("--channel", type=int, default=None, help="EMG channel (default 0)")
    parser.add_argument(
        "--detector", default=None, help="EMG onset detector for the stretch reflex"
    )
    parser.add_argument(
        "--passive-range",
        nargs=2,
        type=float,
        metavar=("MIN_DEG", "MAX_DEG"),
        help="biomechanical range of the joint (default: from the session metadata)",
    )
    parser.add_argument("--muscle", default=None, help="tested muscle (default: from metadata)")
    hr = parser.add_argument_group("H-reflex options")
    hr.add_argument(
        "--background-band",
        nargs=2,
        type=float,
        metavar=("LOW_UV", "HIGH_UV"),
        help="accepted background EMG before each pulse (mean rectified, uV); sweeps outside "
        "are excluded with the reason recorded (default: outliers above median + 6 robust SD)",
    )
    for wave in ("m", "h"):
        hr.add_argument(
            f"--{wave}-window",
            nargs=2,
            type=float,
            metavar=("START_MS", "END_MS"),
            help=f"explicit {wave.upper()}-wave window after the artifact onset (default: "
            "located from the data)",
        )
    hr.add_argument(
        "--test-m-fraction",
        type=float,
        default=None,
        help="M as a fraction of Mmax defining the follow-up test intensity (default 0.2)",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="do not store the results in the file"
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="overwrite the stored run even if it was made with other parameters",
    )


def parameters_from_args(args) -> dict:
    """Analysis parameters given on the command line (None = default)."""
    return {
        "channel": args.channel,
        "detector": args.detector,
        "passive_range_deg": args.passive_range,
        "muscle": args.muscle,
        "background_band_uv": args.background_band,
        "m_window_ms": args.m_window,
        "h_window_ms": args.h_window,
        "test_m_fraction": args.test_m_fraction,
    }


def run(args) -> int:
    summary = analyze_file(
        args.file,
        run=args.run,
        parameters=parameters_from_args(args),
        write=not args.no_write,
        replace=args.replace,
    )
    emit(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.1f}"
    if isinstance(v, list):
        if v and all(isinstance(x, str) for x in v):
            return "; ".join(v)
        return "[" + ", ".join(_fmt(x) for x in v) + "]" if v else "-"
    if isinstance(v, dict):
        return ", ".join(f"{k} Hz: {_fmt(x)}" for k, x in v.items()) or "-"
    return str(v)


def _table(rows: list[dict], columns=(), limit: int = 60) -> list[str]:
    if not rows:
        return ["  (none)"]
    cols = [c for c in columns if c in rows[0]] or [
        c for c in rows[0] if not isinstance(rows[0][c], list | dict)
    ][:9]
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows[:limit])) for c in cols]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    for r in rows[:limit]:
        cells = [_fmt(r.get(c)).ljust(w) for c, w in zip(cols, widths, strict=True)]
        lines.append("  " + "  ".join(cells))
    if len(rows) > limit:
        lines.append(f"  ... {len(rows) - limit} more rows (use --json)")
    return lines


def format_summary(summary: dict) -> str:
    """The summary as readable text: headline metrics, profile, tables, quality flags."""
    lines = [
        f"File: {summary.get('file', '-')}",
        f"Analyses: {', '.join(summary.get('analyses') or []) or '-'}   "
        f"muscle: {summary.get('muscle') or '-'}   run: {summary.get('run', '-')}",
        "",
        "Metrics",
    ]
    for key in SUMMARY_KEYS:
        lines.append(f"  {key:<28} {_fmt(summary.get(key))}")
    lines += ["", build_profile(summary).format_text()]
    if summary.get("hreflex"):
        lines += ["", *hreflex_lines(summary)]
    lines += ["", "Per stretch"]
    lines += _table(summary.get("stretches") or [], STRETCH_COLUMNS)
    lines += ["", "Per stimulus"]
    lines += _table(summary.get("stimuli") or [], STIMULUS_COLUMNS)
    if summary.get("bursts") is not None:
        from tonuslab.report import BURST_COLUMNS

        lines += ["", "EMG bursts (per channel)"]
        lines += _table(summary["bursts"], BURST_COLUMNS)
    if summary.get("movements") is not None:
        from tonuslab.report import MOVEMENT_COLUMNS

        lines += ["", "Joint movements"]
        lines += _table(summary["movements"], MOVEMENT_COLUMNS)
    lines += ["", "Quality flags"]
    lines += [f"  - {f}" for f in summary.get("quality_flags") or []] or ["  (none)"]
    return "\n".join(lines)


def _ci(ci) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f"  95% CI {_fmt(ci[0])} to {_fmt(ci[1])}"


def _ref_text(ref: dict | None, *keys: str, unit: str = "") -> str:
    """``reference: ... (source)`` from one entry of the analysis's ``references``."""
    if not ref:
        return "reference: -"
    parts = []
    for k in keys:
        v = ref.get(k)
        if isinstance(v, dict):
            v = ", ".join(f"{x:g} at {rk}{' ' + unit if unit else ''}" for rk, x in v.items())
        if v:
            parts.append(str(v))
    text = "; ".join(parts) or "-"
    return f"reference: {text} ({ref.get('source', 'no source')})"


def hreflex_lines(summary: dict) -> list[str]:
    """The H-reflex numbers with intervals and, beside each, the reference values and sources.

    Mmax, Hmax/Mmax, latencies, the test intensity with M stability, rate-dependent and
    paired-pulse depression; no mapping to clinical scores. Depression of a time-compressed
    session is withheld (``depression_not_interpretable``).
    """
    h = summary.get("hreflex") or {}
    refs = h.get("references") or {}
    muscle = h.get("muscle") or "soleus"
    out = [f"H-reflex ({muscle} preset; reference values and sources beside each number)"]

    def row(label, value, extra, *ref_lines):
        out.append(f"  {label:<34} {value}{extra}")
        out.extend(f"      {r}" for r in ref_lines if r)

    row("Mmax", f"{_fmt(h.get('mmax_uv'))} uV", _ci(h.get("mmax_uv_ci")),
        _ref_text(refs.get("mmax_uv"), "typical"))  # fmt: skip
    row("Hmax/Mmax", _fmt(h.get("hmax_mmax")), _ci(h.get("hmax_mmax_ci")),
        _ref_text(refs.get("hmax_mmax"), "typical"))  # fmt: skip
    row("M onset latency", f"{_fmt(h.get('m_latency_ms'))} ms", "",
        _ref_text(refs.get("m_latency_ms"), muscle))  # fmt: skip
    row("H onset latency", f"{_fmt(h.get('h_latency_ms'))} ms", "",
        _ref_text(refs.get("h_latency_ms"), muscle))  # fmt: skip
    t = h.get("test_intensity") or {}
    if t:
        stability = (
            f"M stability: {_fmt(t.get('n_trials'))} trials at {_fmt(t.get('trials_levels_ma'))} "
            f"mA (up to {_fmt(t.get('intensity_distance_ma'))} mA away): M/Mmax "
            f"{_fmt(t.get('m_fraction_mean'))} +/- {_fmt(t.get('m_fraction_sd'))}, "
            f"{_fmt(t.get('fraction_in_qc_band'))} of trials in {_fmt(t.get('qc_band'))}"
        )
        row("Test intensity", f"{_fmt(t.get('intensity_ma'))} mA",
            f"  (M at {_fmt(t.get('m_fraction'))} of Mmax; rising H limb: "
            f"{_fmt(t.get('on_rising_h_limb'))})", stability,
            _ref_text(refs.get("test_intensity"), "typical"))  # fmt: skip
    else:
        row("Test intensity", "-", "", _ref_text(refs.get("test_intensity"), "typical"))
    withheld = summary.get("depression_not_interpretable")
    for key, label, unit, ref_keys in (
        ("rate_dependent_depression", "Rate depression (H / H at 0.1 Hz)", "Hz",
         ("chronic_stroke_per_0p1hz", "chronic_stroke_per_0p1hz_measure")),
        ("paired_pulse_depression", "Paired-pulse depression (H2 / H1)", "s",
         ("typical", "chronic_stroke_h2_h1_at_interval_s",
          "chronic_stroke_h2_h1_at_interval_s_measure")),
    ):  # fmt: skip
        values, cis = h.get(key) or {}, h.get(f"{key}_ci") or {}
        if withheld:
            text = "withheld: time-compressed session (not interpretable)"
        else:
            text = (
                "; ".join(
                    f"{k} {unit}: {_fmt(v)}{_ci(cis.get(k)).replace('  95% CI', ' [95% CI')}"
                    + ("]" if _ci(cis.get(k)) else "")
                    for k, v in values.items()
                )
                or "-"
            )
        row(label, text, "", _ref_text(refs.get(key), *ref_keys, unit=unit))
    out.append("  No value is mapped to clinical scores (none is validated).")
    return out
