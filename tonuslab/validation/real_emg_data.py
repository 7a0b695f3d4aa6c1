"""Real EMG recordings from the package index, and the hand marks they are scored against.

The recordings are data files shipped inside two packages (fetched with ``pip download`` into a
cache folder when first needed; nothing fetched is kept in the repository):

- ``EMGFlow==1.1.2`` (wheel): ``EMGFlow/data/sample_data_01.csv`` .. ``04.csv``, facial EMG
  (zygomaticus ``EMG_zyg``, corrugator ``EMG_cor``), 2 kHz, 10 s each, in mV, with ``NULL``
  cells and strong 50 Hz mains.
- ``libemg==2.0.3`` (source distribution): ``tests/data/emg_data_myo.csv``, a Myo armband, 8
  channels at 200 Hz, 2.5 s, headerless, in device counts.

Every file is checked against its SHA-256, so the marks always refer to the same samples.

Hand marks (``real_emg_marks.csv`` beside this module)
    One row per channel event: ``burst`` (start and end of a contraction), ``unsure`` (an
    interval where the marker could not tell rest from activity: detections starting there are
    neither hits nor false alarms) or ``none`` (a channel scored with no burst). They were made
    once, before any detector was run on these files, by looking at each channel's band-passed
    signal (notched at 50 Hz and harmonics for EMGFlow; 20-450 Hz, or 20-90 Hz for the Myo)
    with a 10 ms grid: the onset is the first sample where the deflections clearly exceed the
    surrounding rest, the end where they return to it (ends are +/-0.1 s; only onsets are
    scored). Myo channels 0-4 are left out: their rest is as large as the gesture.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import pathlib
import subprocess
import sys
import tarfile
import zipfile

import numpy as np

from tonuslab.errors import TonuslabError

#: Marks table (CSV) shipped with tonuslab.
MARKS_PATH = pathlib.Path(__file__).with_name("real_emg_marks.csv")

#: package spec, pip arguments, archive member prefix, files (name -> sha256).
SOURCES = {
    "emgflow": (
        "EMGFlow==1.1.2",
        [],
        "EMGFlow/data/",
        {
            "sample_data_01.csv": (
                "07360ca4651ab6c5e171ca30b453537bfad4a3d8266c5d73c5dc1a05997daa36"
            ),
            "sample_data_02.csv": (
                "f8d57cea38486f8763b35cd817f483c1e59d15b25aa0c16a5b5f9bf73265394a"
            ),
            "sample_data_03.csv": (
                "99aa76087e0a57f7aee19b8848f30594ee0a438b4f9739ef6124323845a3e152"
            ),
            "sample_data_04.csv": (
                "a648167c02bec928b16d288051713db9b645023558f0feeb17d9d6765c81ab19"
            ),
        },
    ),
    "libemg": (
        "libemg==2.0.3",
        ["--no-binary", ":all:"],
        "libemg-2.0.3/tests/data/",
        {"emg_data_myo.csv": "99a09336203de01494f099dfdb0c6a30de768ff55b5a7b79b16e237699c5a808"},
    ),
}


class DataUnavailable(TonuslabError):
    """The recordings could not be fetched (no network, or the package index refused).

    A :class:`~tonuslab.errors.TonuslabError`: the CLI prints one line and exits with 2.
    """


class DataMismatch(TonuslabError):
    """A fetched file is not the one the marks were made on (checksum differs)."""


@dataclasses.dataclass
class Channel:
    """One marked channel of a real recording.

    Attributes
    ----------
    recording, channel : str
        As in the marks table.
    rate_hz : float
    emg_uv : ndarray, (n,)
        Samples in uV (NaN where the file has a missing cell).
    line_hz : float or None
        Mains frequency to notch before detection (None: no notch).
    bursts : list of (float, float)
        Marked bursts (start_s, end_s).
    unsure : list of (float, float)
        Intervals the marks make no claim about.
    """

    recording: str
    channel: str
    rate_hz: float
    emg_uv: np.ndarray
    line_hz: float | None
    bursts: list
    unsure: list


def cache_dir() -> pathlib.Path:
    """Where fetched packages are kept: ``$TONUSLAB_DATA_CACHE`` or ``~/.cache/tonuslab``."""
    root = os.environ.get("TONUSLAB_DATA_CACHE") or pathlib.Path.home() / ".cache" / "tonuslab"
    return pathlib.Path(root) / "real-emg"


def _sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(cache: pathlib.Path | None = None) -> dict[str, pathlib.Path]:
    """Paths of the recordings (``"emgflow/sample_data_01"`` -> file), fetched if needed.

    Raises
    ------
    DataUnavailable
        ``pip download`` failed (offline): tests skip on it.
    DataMismatch
        A file is not the one the marks were made on (checksum mismatch).
    """
    cache = pathlib.Path(cache or cache_dir())
    out = {}
    for source, (spec, pip_args, prefix, files) in SOURCES.items():
        folder = cache / source
        if not all((folder / f).exists() for f in files):
            _download_and_extract(spec, pip_args, prefix, files, cache, folder)
        for name, digest in files.items():
            path = folder / name
            if _sha256(path) != digest:
                raise DataMismatch(
                    f"{path} is not the file the marks were made on (SHA-256 differs); "
                    "delete the cache folder and fetch again"
                )
            out[f"{source}/{name.removesuffix('.csv')}"] = path
    return out


def _download_and_extract(spec, pip_args, prefix, files, cache, folder) -> None:
    dl = cache / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dl)]
    try:
        proc = subprocess.run(
            [*cmd, *pip_args, spec], capture_output=True, text=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataUnavailable(f"pip download {spec} failed: {exc}") from exc
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataUnavailable(f"pip download {spec} failed: {last}")
    name = spec.split("==")[0].lower()
    archives = sorted(p for p in dl.iterdir() if p.name.lower().startswith(name))
    if not archives:
        raise DataUnavailable(f"pip download {spec} left no archive in {dl}")
    folder.mkdir(parents=True, exist_ok=True)
    archive = archives[-1]
    for f in files:
        member = prefix + f
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as z:
                data = z.read(member)
        else:
            with tarfile.open(archive) as t:
                fh = t.extractfile(member)
                if fh is None:
                    raise DataMismatch(f"{archive.name} has no file {member}")
                data = fh.read()
        (folder / f).write_bytes(data)


def read_marks(path: pathlib.Path = MARKS_PATH) -> dict[tuple[str, str], dict]:
    """``{(recording, channel): {"bursts": [...], "unsure": [...]}}`` from the marks table."""
    marks: dict[tuple[str, str], dict] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            key = (row["recording"], row["channel"])
            entry = marks.setdefault(key, {"bursts": [], "unsure": []})
            if row["kind"] == "none":
                continue
            span = (float(row["start_s"]), float(row["end_s"]))
            entry["bursts" if row["kind"] == "burst" else "unsure"].append(span)
    return marks


def _read_emgflow(path: pathlib.Path) -> dict[str, np.ndarray]:
    text = path.read_text(encoding="utf-8-sig").splitlines()
    header = [h.strip() for h in text[0].split(",")]
    rows = [ln.split(",") for ln in text[1:] if ln.strip()]
    cols = {}
    for j, h in enumerate(header):
        vals = [r[j].strip() for r in rows]
        cols[h] = np.array([np.nan if v.upper() == "NULL" else float(v) for v in vals])
    return cols


def channels(paths: dict[str, pathlib.Path]) -> list[Channel]:
    """The marked channels, loaded (EMGFlow mV -> uV; Myo counts kept as they are)."""
    out = []
    for (rec, ch), m in read_marks().items():
        path = paths[rec]
        if rec.startswith("emgflow/"):
            x = _read_emgflow(path)[ch] * 1000.0
            rate, line = 2000.0, 50.0
        else:
            x = np.loadtxt(path, delimiter=",")[:, int(ch)].astype(float)
            rate, line = 200.0, None
        out.append(Channel(rec, ch, rate, x, line, sorted(m["bursts"]), sorted(m["unsure"])))
    return out
