"""Cohort runs: analyse many session files in parallel and collect one row per file.

Two executors run the same worker function (:func:`analyze_one`): a local process pool (default)
and a Dask distributed cluster (``scheduler=ADDRESS``). A file that fails becomes a row with
``status="error"`` and the one-line reason; the run carries on.
"""

from __future__ import annotations

import csv
import glob
import multiprocessing
import os
import pathlib
import sys
import time

from tonuslab.analysis import SUMMARY_KEYS
from tonuslab.errors import UsageError

#: Summary keys whose value is a mapping with its own columns (``depression_<rate>hz``).
_DYNAMIC_KEYS = ("rate_dependent_depression",)


def _flat_columns(key: str) -> tuple[str, ...]:
    """Cohort columns of one summary key: an interval ``x_ci[_unit]`` becomes two columns
    ``x_ci_low[_unit]``, ``x_ci_high[_unit]``; mappings get columns of their own."""
    if key in _DYNAMIC_KEYS:
        return ()
    base, ci, unit = key.partition("_ci")
    if ci and (not unit or unit.startswith("_")):
        return (f"{base}_ci_low{unit}", f"{base}_ci_high{unit}")
    return (key,)


#: CSV columns, in order (``depression_<rate>hz`` columns follow for the rates found): the
#: file's identity, then :data:`tonuslab.analysis.SUMMARY_KEYS` flattened, then bookkeeping.
BASE_COLUMNS = (
    "file",
    "status",
    "error",
    "subject",
    "muscle",
    "session_label",
    "analyses",
    *(c for k in SUMMARY_KEYS for c in _flat_columns(k)),
    "n_bursts",
    "n_movements",
    "n_quality_flags",
    "seconds",
)


def find_sessions(spec: str) -> list[pathlib.Path]:
    """Session files named by a folder (all ``*.h5`` below it), a glob pattern or a file."""
    path = pathlib.Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.h5") if p.is_file())
    elif any(ch in spec for ch in "*?["):
        files = sorted(pathlib.Path(p) for p in glob.glob(spec, recursive=True))
        files = [p for p in files if p.is_file()]
    elif path.exists():
        files = [path]
    else:
        raise FileNotFoundError(2, "No such file or folder", spec)
    if not files:
        raise UsageError(f"no session files (*.h5) found in '{spec}'")
    return files


def unique_files(files) -> list[pathlib.Path]:
    """``files`` resolved to absolute paths, each file once (first occurrence kept).

    Two names of one file (relative and absolute, through a symbolic link, or hard links) count
    as one, so no file is analysed twice by concurrent workers.

    Parameters
    ----------
    files : iterable of path-like

    Returns
    -------
    list of pathlib.Path
    """
    out: list[pathlib.Path] = []
    seen: set = set()
    for f in files:
        path = pathlib.Path(f).resolve()
        try:
            st = path.stat()
            key = (st.st_dev, st.st_ino)
        except OSError:  # missing: analyze_one reports it
            key = str(path)
        if key not in seen:
            seen.add(key)
            out.append(path)
    return out


def analyze_one(path: str, parameters: dict | None = None, write: bool = True) -> dict:
    """Analyse one file and return its cohort row (never raises for a bad file)."""
    from tonuslab.analysis import analyze_file

    t0 = time.perf_counter()
    row = {"file": str(path), "status": "ok", "error": ""}
    try:
        s = analyze_file(path, parameters=parameters, write=write)
    except Exception as exc:  # a failing file is a row, not the end of the run
        message = str(exc).splitlines()[0] if str(exc) else ""
        row.update(status="error", error=f"{type(exc).__name__}: {message}")
        row["seconds"] = round(time.perf_counter() - t0, 3)
        return row
    for k in SUMMARY_KEYS:
        cols = _flat_columns(k)
        if len(cols) == 1:
            row[k] = s.get(k)
        elif len(cols) == 2:  # an interval
            ci = s.get(k) or [None, None]
            row[cols[0]], row[cols[1]] = ci[0], ci[1]
    for rate, ratio in (s.get("rate_dependent_depression") or {}).items():
        row[f"depression_{rate}hz"] = ratio
    row.update(
        subject=s.get("subject"),
        muscle=s.get("muscle"),
        session_label=s.get("session_label"),
        analyses="+".join(s.get("analyses") or []),
        n_bursts=None if s.get("bursts") is None else len(s["bursts"]),
        n_movements=None if s.get("movements") is None else len(s["movements"]),
        n_quality_flags=len(s.get("quality_flags") or []),
        seconds=round(time.perf_counter() - t0, 3),
    )
    return row


class Progress:
    """A one-line text progress bar on a stream (stderr by default)."""

    def __init__(self, total: int, stream=None, width: int = 30):
        self.total, self.done, self.failed = total, 0, 0
        self.stream = stream or sys.stderr
        self.width = width

    def update(self, row: dict) -> None:
        self.done += 1
        self.failed += row.get("status") != "ok"
        filled = int(self.width * self.done / max(1, self.total))
        bar = "#" * filled + "-" * (self.width - filled)
        name = pathlib.Path(row.get("file", "")).name[:40]
        self.stream.write(f"\r[{bar}] {self.done}/{self.total} ({self.failed} failed) {name:<40}")
        if self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def run_batch(
    files,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    parameters: dict | None = None,
    write: bool = True,
    progress: Progress | None = None,
) -> list[dict]:
    """Analyse ``files`` in parallel; rows come back in the order of ``files``, one per file.

    A file named twice (e.g. by a relative and an absolute path) is analysed once.

    Parameters
    ----------
    files : list of path-like
    workers : int, optional
        Processes of the local pool (default: CPU count, at most the number of files).
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:port``); when given, the files
        are analysed on that cluster instead of a local pool. The workers must be able to read
        the paths.
    parameters : dict, optional
        Analysis parameters (see :data:`tonuslab.analysis.DEFAULT_PARAMETERS`).
    write : bool
        Store each file's results in the file (as ``tonuslab analyze`` does).
    """
    paths = [str(p) for p in unique_files(files)]
    rows: dict[str, dict] = {}

    def done(row):
        rows[row["file"]] = row
        if progress is not None:
            progress.update(row)

    if scheduler:
        try:
            from distributed import Client, as_completed
        except ImportError as exc:  # pragma: no cover - distributed is a dependency
            raise UsageError("--scheduler needs dask.distributed installed") from exc
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise UsageError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from exc
        try:
            futures = client.map(analyze_one, paths, parameters=parameters, write=write, pure=False)
            for fut in as_completed(futures):
                done(fut.result())
        finally:
            client.close()
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        n = workers or min(len(paths), os.cpu_count() or 1)
        if n < 1:
            raise UsageError("--workers must be at least 1")
        if n == 1:
            for p in paths:
                done(analyze_one(p, parameters, write))
        else:
            # spawn, not fork: the parent may already run Numba's OpenMP threads
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
                futures = [pool.submit(analyze_one, p, parameters, write) for p in paths]
                for fut in as_completed(futures):
                    done(fut.result())
    return [rows[p] for p in paths]


def write_csv(rows: list[dict], out) -> pathlib.Path:
    """Write the cohort table (columns :data:`BASE_COLUMNS` then depression rates)."""
    extra = sorted(
        {k for r in rows for k in r if k.startswith("depression_")},
        key=lambda k: float(k[len("depression_") : -2]),
    )
    cols = [*BASE_COLUMNS, *extra]
    from tonuslab.output import atomic_output

    out = pathlib.Path(out)
    with atomic_output(out) as tmp, tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: csv_cell(r.get(k)) for k in cols})
    return out


#: First characters that make a spreadsheet read a text cell as a formula (OWASP CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A cohort-table cell: empty for None; text that a spreadsheet would run as a formula
    (starting with ``= + - @``, tab or CR) is prefixed with ``'``. Numbers are written as
    they are (a negative number is not text)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
