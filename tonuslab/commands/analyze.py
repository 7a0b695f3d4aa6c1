"""``tonuslab analyze FILE.h5``: run every supported analysis and store the results in the file."""

from __future__ import annotations

import json
import pathlib

from tonuslab._output import emit
from tonuslab.analysis import (
    DEFAULT_RUN,
    STIMULUS_COLUMNS,
    STRETCH_COLUMNS,
    SUMMARY_KEYS,
    analyze_file,
)
from tonuslab.profile import build_profile

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
        args.file, run=args.run, parameters=parameters_from_args(args), write=not args.no_write
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
    lines += ["", build_profile(summary).format_text(), "", "Per stretch"]
    lines += _table(summary.get("stretches") or [], STRETCH_COLUMNS)
    lines += ["", "Per stimulus"]
    lines += _table(summary.get("stimuli") or [], STIMULUS_COLUMNS)
    lines += ["", "Quality flags"]
    lines += [f"  - {f}" for f in summary.get("quality_flags") or []] or ["  (none)"]
    return "\n".join(lines)
