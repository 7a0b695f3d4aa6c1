"""``tonuslab report FILE.h5 [FILE.h5 ...] -o report.html``: one self-contained HTML report."""

from __future__ import annotations

import pathlib
import sys

from tonuslab.errors import UsageError

NAME = "report"
HELP = "Write a self-contained HTML report (profile, figures, quality flags) for session files."


def add_arguments(parser) -> None:
    parser.add_argument("files", nargs="+", type=pathlib.Path, help="session file(s) (.h5)")
    parser.add_argument("-o", "--out", type=pathlib.Path, required=True, help="HTML file to write")
    parser.add_argument(
        "--run", default="default", help="stored results run to report (default 'default')"
    )
    parser.add_argument(
        "--times",
        default=None,
        help="with several files: hours after baseline of each, comma-separated",
    )


def run(args) -> int:
    from tonuslab.commands.compare import load_summaries, parse_times
    from tonuslab.report import write_report

    if args.out.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"the report is HTML: give an output name ending in .html, not {args.out}")
    comparison = None
    summaries = None
    if len(args.files) > 1:
        from tonuslab.compare import compare

        # the default run falls back to a fresh analysis; a named run must exist in every file
        summaries = load_summaries(args.files, run=None if args.run == "default" else args.run)
        try:
            comparison = compare(summaries, times_h=parse_times(args.times))
        except UsageError as exc:
            if args.times is not None:
                raise
            print(
                f"tonuslab: note: sessions reported side by side, not compared ({exc})",
                file=sys.stderr,
            )
    out = write_report(
        args.files,
        args.out,
        comparison=comparison,
        summaries=summaries,
        run=args.run,
        compare_sessions=False,
    )
    print(f"report written to {out}")
    return 0
