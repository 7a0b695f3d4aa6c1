"""CSV (and other delimited text) reader of ``tonuslab import``.

Layout: an optional header row and one column per signal; ``channel_map`` says which column is
EMG (and its unit) and which is the angle; the sampling rate comes from ``rate_hz`` or a time
column. What real exports do, and how it is read:

- A UTF-8 byte-order mark before the header is skipped.
- The separator is found from the first row: ``,``, ``;`` or a tab. With ``;`` or a tab a comma
  inside a number is a decimal comma (European exports: ``0,125;12,5``).
- A header whose cells are all numbers is refused (the first data row would be read as names);
  ``no_header=True`` (``--no-header``) reads every row as data and the columns are given by
  0-based index (``--emg 1 --angle 2``).
- Two columns with the same name are refused (which one was meant cannot be told).
- An empty cell, or ``NaN``, ``NULL``, ``NA``, ``N/A``, ``None`` (any case), marks a missing
  sample: its row becomes a gap of that stream (reason ``"missing_in_source"``), NaN when read.
- Without ``rate_hz`` (``--rate``) the rate comes from the time column in seconds: the one named
  by ``channel_map["time"]`` (``--time``), else the first header named ``time``, ``Time``,
  ``TIME``, ``time_s``, ``time (s)`` or ``t``. The step is rounded to the column's printed
  resolution (4 decimals at 1 kHz gives 1000 Hz exactly; see :func:`rate_from_time`).
- Every refusal names the file's line number, the column and the cell's value: a cell that is
  not a number, a short row, an infinite value, a value beyond an int32 count.

Values are quantised to integer counts of 0.01 uV (EMG) and 0.001 deg (angle); a value beyond
what an int32 count holds (about +/-21.47 V of EMG, +/-2.1e6 deg) is refused. An optional
stimulus column holds the intensity in mA while a pulse is delivered and 0 elsewhere: each
rising edge (a non-zero row after a zero row, or the first row) is one stimulus, with the
intensity of that row, however many rows the pulse spans.
"""

from __future__ import annotations

import csv
import math
import pathlib

import numpy as np

from tonuslab.io_import._common import (
    ANGLE_SCALE_DEG,
    EMG_SCALE_UV,
    ImportFormatError,
    emg_factor,
    gap_records,
    metadata,
    needs_emg,
    to_counts,
)

#: Cell spellings read as a missing sample (compared case-insensitively, stripped).
MISSING = {"", "nan", "null", "na", "n/a", "none", "-nan"}
#: Header names taken as the time column (seconds) when neither ``--rate`` nor ``--time`` is
#: given (compared case-insensitively, stripped).
TIME_NAMES = ("time", "time_s", "time (s)", "time[s]", "t")
#: Largest spread of the time steps, as a fraction of the median step, beyond the column's
#: printed resolution.
TIME_STEP_TOLERANCE = 1e-3


def _numeric(text: str, decimal_comma: bool) -> float | None:
    t = text.strip()
    if decimal_comma:
        t = t.replace(",", ".")
    try:
        return float(t)
    except ValueError:
        return None


def _read_rows(path: pathlib.Path) -> tuple[list[list[str]], str, bool]:
    """All rows of ``path`` (BOM skipped), the separator and whether commas are decimal."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        raise ImportFormatError(f"{path} is empty")
    counts = {d: first.count(d) for d in (";", "\t", ",")}
    if counts[";"] or counts["\t"]:
        delimiter = ";" if counts[";"] >= counts["\t"] else "\t"
    else:
        delimiter = ","
    rows = list(csv.reader(lines, delimiter=delimiter))
    return rows, delimiter, delimiter != ","


def _looks_like_data(cells: list[str], decimal_comma: bool) -> bool:
    """True when a would-be header row is numbers (and missing-sample spellings), not names."""
    filled = [c.strip() for c in cells if c.strip()]
    numbers = [c for c in filled if _numeric(c, decimal_comma) is not None]
    return bool(numbers) and all(c in numbers or c.lower() in MISSING for c in filled)


class _Table:
    """The cells of a delimited file, addressed by column name or index, read as floats."""

    def __init__(self, path: pathlib.Path, no_header: bool) -> None:
        self.path = path
        rows, self.delimiter, self.decimal_comma = _read_rows(path)
        # (file line number, cells) for every non-blank row
        numbered = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
        if no_header:
            width = max(len(r) for _, r in numbered)
            self.header = [str(j) for j in range(width)]
            self.rows = numbered
        else:
            line, head = numbered[0]
            self.header = [h.strip() for h in head]
            self.rows = numbered[1:]
            if _looks_like_data(self.header, self.decimal_comma):
                raise ImportFormatError(
                    f"{path}: line {line} ('{self.delimiter.join(head)[:60]}') is numbers, not "
                    "column names: for a file without a header use --no-header and give the "
                    "columns by 0-based index (--emg 1 --angle 2)"
                )
            seen: dict[str, int] = {}
            for j, h in enumerate(self.header):
                if h in seen:
                    raise ImportFormatError(
                        f"{path}: line {line}: column name '{h}' appears twice (columns "
                        f"{seen[h]} and {j}); rename one so the channel map is unambiguous"
                    )
                seen[h] = j
        self.no_header = no_header
        if not self.rows:
            raise ImportFormatError(f"{path} has a header but no data rows")

    def index(self, name: str) -> int:
        name = str(name).strip()
        if self.no_header:
            if not name.isdigit():
                raise ImportFormatError(
                    f"--no-header: give columns by 0-based index, not '{name}' "
                    f"(the file has {len(self.header)} columns, 0 to {len(self.header) - 1})"
                )
            j = int(name)
            if j >= len(self.header):
                raise ImportFormatError(
                    f"no column {j} in {self.path}: it has {len(self.header)} columns "
                    f"(0 to {len(self.header) - 1})"
                )
            return j
        if name not in self.header:
            raise ImportFormatError(
                f"no column '{name}' in {self.path}; columns: {', '.join(self.header)}"
            )
        return self.header.index(name)

    def label(self, name: str) -> str:
        return f"column {int(name)}" if self.no_header else str(name).strip()

    def column(self, name: str) -> np.ndarray:
        """Floats of one column; a missing cell is NaN; anything else non-numeric is refused."""
        j = self.index(name)
        shown = self.label(name)
        out = np.empty(len(self.rows))
        for k, (line, cells) in enumerate(self.rows):
            if j >= len(cells):
                raise ImportFormatError(
                    f"{self.path}: line {line} (data row {k + 1}), column '{shown}': the row "
                    f"has only {len(cells)} cell(s)"
                )
            cell = cells[j]
            if cell.strip().lower() in MISSING:
                out[k] = math.nan
                continue
            v = _numeric(cell, self.decimal_comma)
            if v is None:
                raise ImportFormatError(
                    f"{self.path}: line {line} (data row {k + 1}), column '{shown}': "
                    f"'{cell.strip()[:40]}' is not a number (leave the cell empty, or NaN/NULL, "
                    "for a missing sample)"
                )
            out[k] = v
        return out

    def find_time_column(self) -> str | None:
        """Name of the first header cell in :data:`TIME_NAMES`, or None (and None headerless)."""
        if self.no_header:
            return None
        for h in self.header:
            if h.strip().lower() in TIME_NAMES:
                return h
        return None

    def decimals(self, name: str) -> int:
        """Most digits after the decimal mark in the cells of column ``name``."""
        j = self.index(name)
        most = 0
        for _, cells in self.rows:
            if j < len(cells):
                t = cells[j].strip().lower()
                if "e" in t:  # exponent notation: resolution unknown, keep full precision
                    return -1
                mark = t.rfind("," if self.decimal_comma and "," in t else ".")
                if mark >= 0:
                    most = max(most, len(t) - mark - 1)
        return most

    def refuse_infinite(self, values: np.ndarray, name: str) -> None:
        bad = np.flatnonzero(np.isinf(values))
        if bad.size:
            line, cells = self.rows[int(bad[0])]
            raise ImportFormatError(
                f"column '{self.label(name)}' holds an infinite value at data row "
                f"{int(bad[0]) + 1} (line {line}: '{cells[self.index(name)].strip()}'; "
                f"{bad.size} in all); leave a cell empty (or NaN) for a sample that is missing"
            )

    def counts(self, values: np.ndarray, scale: float, name: str, unit: str) -> np.ndarray:
        try:
            return to_counts(values, scale, self.label(name), unit)
        except ImportFormatError as exc:
            bad = np.flatnonzero(~(np.abs(np.round(np.nan_to_num(values) / scale)) <= 2**31 - 1))
            line = self.rows[int(bad[0])][0]
            raise ImportFormatError(f"{exc} (line {line} of {self.path.name})") from None


def rate_from_time(table: _Table, name: str) -> float:
    """Sampling rate (Hz) of the rows from the time column ``name`` (seconds).

    The median step is rounded to the column's printed resolution (``10**-d`` s for ``d``
    decimals), so a column printed with 4 decimals at 1 kHz gives exactly 1000 Hz, not
    999.9999999999991. Steps may spread by one resolution unit (rounded times) plus
    :data:`TIME_STEP_TOLERANCE` of the step.

    Raises
    ------
    ImportFormatError
        A missing cell in the time column, fewer than two rows, or a step that is not positive
        or not uniform: one line naming the file's line, the column and the value.
    """
    t = table.column(name)
    shown = table.label(name)
    lines = [line for line, _ in table.rows]
    missing = np.flatnonzero(np.isnan(t))
    if missing.size:
        i = int(missing[0])
        raise ImportFormatError(
            f"{table.path}: line {lines[i]}, column '{shown}': missing time value "
            f"('{table.rows[i][1][table.index(name)].strip()}'); fill it in or give --rate"
        )
    if t.size < 2:
        raise ImportFormatError(f"{table.path}: one row only: give --rate")
    dt = np.diff(t)
    d = table.decimals(name)
    res = 10.0**-d if d >= 0 else 0.0
    step = float(np.median(dt))
    bad = np.flatnonzero(~(dt > 0) | (np.abs(dt - step) > TIME_STEP_TOLERANCE * step + 1.01 * res))
    if bad.size or step <= 0:
        i = int(bad[0]) + 1 if bad.size else 1
        raise ImportFormatError(
            f"{table.path}: line {lines[i]}, column '{shown}': time {t[i]:.10g} s after "
            f"{t[i - 1]:.10g} s is not a uniform step (median step {step:.10g} s); "
            "give --rate"
        )
    if d < 0:
        return 1.0 / step
    units = round(step / res)
    if units >= 1 and np.all(np.abs(dt - units * res) <= 0.5 * res):
        return float(10**d) / units  # exact: 10**d / units, e.g. 10000 / 10 = 1000.0 Hz
    # rounded times (steps of k and k+1 resolution units): the mean step over the column
    return (t.size - 1) / float(t[-1] - t[0])


def import_csv(
    path,
    out,
    *,
    channel_map: dict,
    rate_hz: float | None = None,
    no_header: bool = False,
    overwrite: bool = False,
    **options,
) -> pathlib.Path:
    """Convert a CSV file to a session file.

    Parameters
    ----------
    path, out : path-like
        Delimited text input and ``.h5`` output.
    channel_map : dict
        ``{"emg": {"COLUMN": "uV"|"mV"|"V", ...}, "angle": "COLUMN", "time": "COLUMN",
        "stim": "COLUMN"}``; columns are names, or 0-based indices with ``no_header``.
    rate_hz : float, optional
        Sampling rate of the rows in Hz. Without it the rate comes from the time column
        (``channel_map["time"]``, else a header named as in :data:`TIME_NAMES`), see
        :func:`rate_from_time`.
    no_header : bool
        The first row is data; columns are given by index.
    overwrite : bool
    **options
        Session metadata (``subject_id``, ``muscle``, ...).

    Notes
    -----
    See the module docstring for separators, decimal commas, missing cells and refusals.
    """
    from acquire.session_file import write_session

    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    emg_map = dict(channel_map.get("emg") or {})
    angle_col = channel_map.get("angle")
    if not emg_map and not angle_col:
        raise ImportFormatError(
            "the channel map names no EMG or angle column (use --emg COLUMN[:UNIT] and/or "
            "--angle COLUMN)"
        )
    for name, unit in emg_map.items():
        emg_factor(unit or "uV", f"EMG column {name}")
    table = _Table(path, no_header)
    if rate_hz is None:
        time_col = channel_map.get("time") or table.find_time_column()
        if time_col is None:
            raise ImportFormatError(
                "give the sampling rate (--rate HZ) or a time column in seconds (--time COLUMN; "
                f"a column named one of {', '.join(TIME_NAMES)} is found by itself)"
            )
        rate_hz = rate_from_time(table, time_col)
    if not (rate_hz > 0 and math.isfinite(rate_hz)):
        raise ImportFormatError(f"the sampling rate must be positive and finite, got {rate_hz}")
    channels, cols = [], []
    for name, unit in emg_map.items():
        values = table.column(name) * emg_factor(unit or "uV", f"EMG column {name}")
        table.refuse_infinite(values, name)
        cols.append(values)
        channels.append(
            {
                "name": table.label(name),
                "kind": "emg",
                "unit": "uV",
                "scale": EMG_SCALE_UV,
                "offset": 0.0,
            }
        )
    gaps: list[dict] = []
    emg_counts = None
    if cols:
        emg_uv = np.stack(cols, axis=1)
        gaps = gap_records("emg", np.isnan(emg_uv).any(axis=1))
        emg_counts = np.stack(
            [table.counts(emg_uv[:, j], EMG_SCALE_UV, n, "uV") for j, n in enumerate(emg_map)],
            axis=1,
        )
    angle_counts = None
    if angle_col:
        a = table.column(angle_col)
        table.refuse_infinite(a, angle_col)
        gaps += gap_records("angle", np.isnan(a))
        angle_counts = table.counts(a, ANGLE_SCALE_DEG, angle_col, "deg")[:, None]
        channels.append(
            {
                "name": table.label(angle_col),
                "kind": "angle",
                "unit": "deg",
                "scale": ANGLE_SCALE_DEG,
                "offset": 0.0,
            }
        )
    events = []
    if channel_map.get("stim"):
        s = np.nan_to_num(table.column(channel_map["stim"]))
        on = s > 0
        rising = on & ~np.concatenate([[False], on[:-1]])  # one pulse per run of non-zero rows
        for i in np.flatnonzero(rising):
            events.append(
                {
                    "kind": "stimulus",
                    "emg_sample_index": int(i),
                    "intensity_ma": float(s[i]),
                    "pulse_index": 0,
                }
            )
    if emg_counts is None:
        needs_emg(path, "the channel map")
    return write_session(
        out,
        emg_counts=emg_counts,
        emg_rate_hz=float(rate_hz),
        channels=channels,
        angle_counts=angle_counts,
        angle_rate_hz=None if angle_counts is None else float(rate_hz),
        metadata=metadata(options),
        device={"model": "imported", "source_format": "CSV", "source_file": path.name},
        events=events,
        gaps=gaps,
        attrs={"imported_from": path.name},
        overwrite=overwrite,
    )
