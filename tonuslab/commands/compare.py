"""``tonuslab compare FILES...``: one subject and muscle over time against the baseline."""

from __future__ import annotations

import json
import pathlib

from tonuslab._output import emit
from tonuslab.compare import METRICS, ResponderCriterion, compare, format_comparison
from tonuslab.errors import UsageError

NAME = "compare"
HELP = "Compare sessions of one subject and muscle over time (changes beyond the SRD flagged)."


def add_arguments(parser) -> None:
    parser.add_argument("files", nargs="+", type=pathlib.Path, help="session files (.h5)")
    parser.add_argument(
        "--times",
        type=str,
        default=None,
        help="hours after baseline for each file, comma-separated (e.g. 0,0.5,1,2,4,8,24); "
        "default: the sessions' metadata or start times",
    )
    parser.add_argument(
        "--metric", default="tsrt_deg", choices=sorted(METRICS), help="responder metric"
    )
    parser.add_argument(
        "--direction",
        default="increase",
        choices=["increase", "decrease", "any"],
        help="direction of an improvement for the responder metric (default increase)",
    )
    parser.add_argument(
        "--min-duration", type=float, default=4.0, help="hours the effect must last (default 4)"
    )
    parser.add_argument(
        "--srd", type=float, default=None, help="override the metric's SRD (a positive number)"
    )
    parser.add_argument(
        "--run",
        default=None,
        metavar="NAME",
        help="compare the stored results run NAME of every file (default: the run 'default', "
        "or a fresh analysis of a file without it)",
    )
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.add_argument("-o", "--report", type=pathlib.Path, help="also write an HTML report")


def parse_times(text: str | None) -> list[float] | None:
    """``--times`` text to hours after baseline (finite, >= 0), or None."""
    from tonuslab.compare import check_times

    if text is None:
        return None
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise UsageError(f"--times must be numbers separated by commas, got '{text}'") from exc
    return check_times(values)


def load_summaries(files, run: str | None = None) -> list[dict]:
    """Summary of each file from its stored results.

    Parameters
    ----------
    files : list of path-like
    run : str, optional
        Results run to read. None: the run ``default``, or a fresh analysis (not stored) of a
        file without it. A name: that run, which every file must have.

    Raises
    ------
    UsageError
        A file has no run ``run``.
    """
    from tonuslab.analysis import analyze_file
    from tonuslab.results import DEFAULT_RUN, read_results
    from tonuslab.session import open_session

    out = []
    for path in files:
        with open_session(path) as session:  # one-line errors for missing files, non-sessions
            start = session.start_time_utc
        runs = read_results(path)
        if run is not None and run not in runs:
            raise UsageError(
                f"{path} has no results run '{run}' (it has: {', '.join(sorted(runs)) or 'none'});"
                f" run 'tonuslab analyze {path} --run {run}' with the same options first"
            )
        summary = runs.get(run or DEFAULT_RUN) or analyze_file(path, write=False)
        summary["file"] = str(path)
        # when the recording started (an imported file: the source's start, not the import
        # time), read now: runs stored by older versions hold the file's creation time
        summary["session_start"] = start or summary.get("session_start")
        out.append(summary)
    return out


def run(args) -> int:
    criterion = ResponderCriterion(
        metric=args.metric,
        direction=args.direction,
        min_duration_h=args.min_duration,
        srd=args.srd,
    )
    times = parse_times(args.times)
    if times is not None and len(times) != len(args.files):
        raise UsageError(f"--times has {len(times)} values for {len(args.files)} files")
    summaries = load_summaries(args.files, args.run)
    result = compare(summaries, times_h=times, criterion=criterion)
    if args.report:
        from tonuslab.report import write_report

        write_report(args.files, args.report, comparison=result, summaries=summaries)
    emit(json.dumps(result, indent=2) if args.json else format_comparison(result))
    return 0
