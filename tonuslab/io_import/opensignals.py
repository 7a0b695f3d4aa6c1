"""OpenSignals (PLUX biosignalsplux / BITalino) text and HDF5 reader of ``tonuslab import``.

Text files: line 1 ``# OpenSignals Text File Format``, line 2 ``# `` + a JSON object with one
entry per device (``sampling rate``, ``resolution`` per column, ``column`` names such as
``nSeq, I1, I2, O1, O2, A1, A2``, ``sensor`` per analog channel such as ``EMG`` or ``GONI``,
``label``), line 3 ``# EndOfHeader``, then one tab-separated row of integer ADC values per
sample. HDF5 files: one group per device with the same fields as attributes, ``raw/nSeq``,
``raw/channel_<k>`` and ``digital/digital_<k>`` datasets.

The ADC values are kept as integer counts, with the scale and offset of the manufacturer's
transfer functions (PLUX sensor datasheets, as reproduced in PLUX's "unit conversion"
notebooks and knowledge base "Transfer Functions: Converting digital sensor data into physical
units"):

- EMG: ``EMG(V) = (ADC / 2**n - 1/2) * VCC / G_EMG`` with ``VCC = 3 V`` and ``G_EMG = 1000``
  (biosignalsplux EMG sensor; the BITalino EMG board's gain is 1009: pass ``emg_gain``). Stored
  in uV: ``scale = VCC / G_EMG / 2**n * 1e6`` uV per count, ``offset = 2**(n-1)`` counts
  (+/-1.5 mV full scale at 16 bits).
- Goniometer (``GONI``/``ANG``): ``ANG(deg) = (VCC / (2**n - 1) * ADC - VCC/2) /
  (VCC/2 * 606e-5)``: ``scale = VCC / (2**n - 1) / (VCC/2 * 606e-5)`` deg per count,
  ``offset = (2**n - 1) / 2`` counts.

``n`` is the channel's resolution in bits from the header. The ``nSeq`` column (a 4-bit counter
on biosignalsplux) gives gaps: a jump of ``k`` (mod 16) is ``k - 1`` lost samples; more than 15
lost in a row cannot be seen. Digital inputs (``I1``, ``I2``, ``digital_1``...) are stimulus
triggers: each rising edge is one stimulus at that sample (``stim="I1"``; default: the first
digital input that changes), with no intensity (the stimulator's setting is not in the file).
"""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np

from tonuslab.io_import._common import (
    ImportDataWarning,
    ImportFormatError,
    metadata,
    needs_emg,
    rising_edges,
)

VCC_V = 3.0
G_EMG = 1000.0
GONI_K = 606e-5
GONI_SENSORS = {"GONI", "GON", "ANG", "GONIO", "GONIOMETER"}


def emg_scale_uv(bits: int, gain: float = G_EMG) -> tuple[float, float]:
    """(uV per count, offset counts) of the PLUX EMG transfer function at ``bits``."""
    return VCC_V / gain / 2**bits * 1e6, float(2 ** (bits - 1))


def goni_scale_deg(bits: int) -> tuple[float, float]:
    """(deg per count, offset counts) of the PLUX goniometer transfer function at ``bits``."""
    step = VCC_V / (2**bits - 1)
    return step / (VCC_V / 2 * GONI_K), (2**bits - 1) / 2


def _read_text(path: pathlib.Path):
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    if len(lines) < 3 or not lines[0].startswith("# OpenSignals"):
        raise ImportFormatError(f"{path} is not an OpenSignals text file (no header line)")
    try:
        header = json.loads(lines[1].lstrip("#").strip())
        dev = next(iter(header.values()))
        end = next(i for i, ln in enumerate(lines) if ln.startswith("# EndOfHeader"))
    except (ValueError, StopIteration, AttributeError) as exc:
        raise ImportFormatError(f"{path}: OpenSignals header does not parse ({exc})") from None
    columns = list(dev.get("column", []))
    rows = []
    for k, ln in enumerate(lines[end + 1 :], start=end + 2):
        if not ln.strip():
            continue
        cells = ln.split()
        if len(cells) != len(columns):
            raise ImportFormatError(
                f"{path}: line {k} has {len(cells)} values, the header names {len(columns)} columns"
            )
        try:
            rows.append([int(float(c)) for c in cells])
        except ValueError:
            bad = next(c for c in cells if not _is_num(c))
            j = cells.index(bad)
            raise ImportFormatError(
                f"{path}: line {k}, column '{columns[j]}': '{bad}' is not a number"
            ) from None
    data = np.asarray(rows, dtype=np.int64).reshape(-1, len(columns))
    cols = {name: data[:, j] for j, name in enumerate(columns)}
    return dev, cols


def _is_num(c: str) -> bool:
    try:
        float(c)
        return True
    except ValueError:
        return False


def _read_h5(path: pathlib.Path):
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ImportFormatError(f"{path} is not a readable HDF5 file ({exc})") from None
    with f:
        if "tonuslab_format" in f.attrs:
            raise ImportFormatError(f"{path} is already a tonuslab session file")
        groups = [k for k in f if isinstance(f[k], h5py.Group)]
        if not groups or "raw" not in f[groups[0]]:
            raise ImportFormatError(f"{path} is HDF5 but not an OpenSignals file (no raw/ group)")
        g = f[groups[0]]
        dev = {}
        for k, v in g.attrs.items():
            v = v.decode() if isinstance(v, bytes) else v
            if isinstance(v, str) and v[:1] in "[{":
                try:
                    v = json.loads(v)
                except ValueError:
                    pass
            dev[k] = v.tolist() if isinstance(v, np.ndarray) else v
        cols = {}
        if "nSeq" in g["raw"]:
            cols["nSeq"] = np.asarray(g["raw"]["nSeq"][:]).reshape(-1).astype(np.int64)
        names = sorted((k for k in g["raw"] if k.startswith("channel_")),
                       key=lambda k: int(k.split("_")[1]))  # fmt: skip
        for k in names:
            cols[f"A{k.split('_')[1]}"] = np.asarray(g["raw"][k][:]).reshape(-1).astype(np.int64)
        if "digital" in g:
            for k in sorted(g["digital"]):
                arr = np.asarray(g["digital"][k][:]).reshape(-1).astype(np.int64)
                cols[f"I{k.split('_')[-1]}"] = arr
    dev.setdefault("column", list(cols))
    return dev, cols


def import_opensignals(
    path,
    out,
    *,
    emg=None,
    angle: str | None = None,
    stim: str | None = None,
    emg_gain: float = G_EMG,
    overwrite: bool = False,
    **options,
) -> pathlib.Path:
    """Convert an OpenSignals ``.txt`` or ``.h5`` file to a session file.

    Parameters
    ----------
    path, out : path-like
    emg : list of str, optional
        Analog columns (``A1``...); default: the channels whose sensor is ``EMG``.
    angle : str, optional
        Goniometer column; default: the first sensor ``GONI``/``ANG``.
    stim : str, optional
        Digital input column (``I1``...); default: the first digital input that changes.
    emg_gain : float
        Gain of the EMG sensor (1000 biosignalsplux; 1009 BITalino).
    overwrite : bool
    **options
        Session metadata.
    """
    from acquire.session_file import write_session

    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    is_h5 = path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    dev, cols = _read_h5(path) if is_h5 else _read_text(path)
    columns = list(dev.get("column") or cols)
    rate = float(dev.get("sampling rate", 0) or 0)
    if not rate > 0:
        raise ImportFormatError(f"{path}: the header gives no sampling rate")
    resolution = list(dev.get("resolution") or [])
    analog = [c for c in columns if c.startswith("A")]
    sensors = [str(s).upper() for s in (dev.get("sensor") or [])]
    sensor_of = dict(zip(analog, sensors, strict=False))

    def bits(col):
        j = columns.index(col)
        if j < len(resolution):
            return int(resolution[j])
        k = analog.index(col)
        return int(resolution[-len(analog) + k]) if len(resolution) >= len(analog) else 16

    def col(name):
        if name not in cols:
            raise ImportFormatError(f"no column '{name}' in {path}; columns: {', '.join(columns)}")
        return cols[name]

    emg_cols = list(emg) if emg else [c for c in analog if sensor_of.get(c) == "EMG"]
    angle_col = angle or next((c for c in analog if sensor_of.get(c) in GONI_SENSORS), None)
    n = len(next(iter(cols.values()))) if cols else 0
    if n == 0:
        raise ImportFormatError(f"{path} holds no samples")
    gaps, valid = [], np.arange(n)
    if "nSeq" in cols:
        step = np.diff(cols["nSeq"]) % 16
        lost = np.where(step == 0, 0, step - 1)  # 0: a stuck counter, not a wrap of 16 losses
        rows = np.concatenate([[0], np.cumsum(1 + lost)])
        valid = rows
        for k in np.flatnonzero(lost):
            gaps_row = int(rows[k] + 1)
            gaps.append({"stream": "emg", "start_index": gaps_row, "n_samples": int(lost[k]),
                         "reason": "sequence"})  # fmt: skip
    n_rows = int(valid[-1]) + 1

    def placed(values):
        full = np.zeros(n_rows, dtype=np.int64)
        full[valid] = values
        return full

    channels, emg_counts = [], []
    for c in emg_cols:
        scale, offset = emg_scale_uv(bits(c), emg_gain)
        emg_counts.append(placed(col(c)))
        label = (dev.get("label") or analog)[analog.index(c)] if c in analog else c
        channels.append({"name": str(label), "kind": "emg", "unit": "uV", "scale": scale,
                         "offset": offset})  # fmt: skip
    angle_counts = None
    if angle_col:
        scale, offset = goni_scale_deg(bits(angle_col))
        angle_counts = placed(col(angle_col))[:, None].astype(np.int32)
        channels.append({"name": angle_col, "kind": "angle", "unit": "deg", "scale": scale,
                         "offset": offset})  # fmt: skip
        gaps += [dict(g, stream="angle") for g in gaps if g["stream"] == "emg"]
    if not emg_counts:
        if angle_counts is None:
            raise ImportFormatError(
                f"{path}: no EMG or goniometer sensor in the header (sensors: "
                f"{', '.join(sensors) or 'none'}); choose columns with --emg A1 --angle A2"
            )
        needs_emg(path, "the OpenSignals file")
    digital = [c for c in columns if c.startswith("I") and c[1:].isdigit()]
    if stim is None:
        stim = next((c for c in digital if c in cols and np.ptp(cols[c]) > 0), None)
    events = []
    if stim:
        trig = placed(col(stim))
        for r in rising_edges(trig.astype(float), 0.5):
            events.append({"kind": "stimulus", "emg_sample_index": int(r), "pulse_index": 0,
                           "label": f"digital input {stim}"})  # fmt: skip
        if not events:
            warnings.warn(f"digital input {stim} never rises: no stimulus", ImportDataWarning,
                          stacklevel=2)  # fmt: skip
    meta = metadata(options)
    if events:
        meta.setdefault("protocol", "hreflex")
    return write_session(
        out,
        emg_counts=np.stack(emg_counts, axis=1).astype(np.int32),
        emg_rate_hz=rate,
        channels=channels,
        angle_counts=angle_counts,
        angle_rate_hz=None if angle_counts is None else rate,
        metadata=meta,
        device={
            "model": "imported",
            "source_format": "OpenSignals HDF5" if is_h5 else "OpenSignals text",
            "source_file": path.name,
            "opensignals_device": str(dev.get("device", "")),
        },
        events=events,
        gaps=gaps,
        attrs={"imported_from": path.name},
        overwrite=overwrite,
    )
