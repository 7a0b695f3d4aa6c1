"""``tonuslab batch DIR-or-GLOB -o cohort.csv``: analyse many sessions in parallel.

Exit codes: 0 when every file was analysed, 1 when any file failed (its row has
``status=error``; the table is still written and the count printed), 2 for a usage error (no
file found, a bad option, an unreachable scheduler), as every command.
"""

from __future__ import annotations

import pathlib

from tonuslab.errors import UsageError

NAME = "batch"
HELP = "Analyse many session files in parallel (local processes or a Dask cluster) into a CSV."


def add_arguments(parser) -> None:
    parser.add_argument(
        "inputs", nargs="+", help="folder(s) (every *.h5 below), glob pattern(s) or files"
    )
    parser.add_argument("-o", "--out", type=pathlib.Path, required=True, help="CSV to write")
    parser.add_argument("--workers", type=int, default=None, help="local worker processes")
    parser.add_argument(
        "--scheduler", default=None, help="Dask scheduler address (e.g. tcp://127.0.0.1:8786)"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="do not store results in the session files"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--detector", default=None, help="EMG onset detector (stretch reflex)")


def run(args) -> int:
    from tonuslab.batch import Progress, find_sessions, run_batch, unique_files, write_csv

    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    if args.out.suffix.lower() != ".csv":
        raise UsageError(f"the cohort table is CSV: name it *.csv, not {args.out}")
    # each file once, however it was named (f.h5 and /abs/path/f.h5 are one file)
    files = unique_files(f for spec in args.inputs for f in find_sessions(spec))
    progress = None if args.quiet else Progress(len(files))
    rows = run_batch(
        files,
        workers=args.workers,
        scheduler=args.scheduler,
        parameters={"detector": args.detector},
        write=not args.no_write,
        progress=progress,
    )
    write_csv(rows, args.out)
    return report(rows, args.out)


def report(rows: list[dict], out: pathlib.Path) -> int:
    """Print the outcome of a batch run; exit code 0 if every file was analysed, else 1.

    The failed files' count goes to stdout with the table's path, one line per failure after
    it, and the count once more to stderr (so a script that keeps only stderr sees it).
    """
    import sys

    failed = [r for r in rows if r["status"] != "ok"]
    print(f"{len(rows) - len(failed)} of {len(rows)} sessions analysed; table: {out}")
    for r in failed:
        print(f"  failed: {r['file']}: {r['error']}")
    if not failed:
        return 0
    print(
        f"tonuslab batch: {len(failed)} of {len(rows)} session(s) failed (rows with "
        f"status=error in {out})",
        file=sys.stderr,
    )
    return 1
