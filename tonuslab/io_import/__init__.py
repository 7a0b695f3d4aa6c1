"""Import recordings made elsewhere as tonuslab session files (``tonuslab import``).

One reader module per format, all behind :func:`import_file` (and the CLI's ``import``):

========================  =========================================  ===========================
format                    module                                     needs
========================  =========================================  ===========================
EDF/EDF+/BDF              :mod:`tonuslab.io_import.edf`              pyedflib (plain install)
CSV / delimited text      :mod:`tonuslab.io_import.csv_file`         --
XDF (LabRecorder, LSL)    :mod:`tonuslab.io_import.xdf`              -- (own reader, see there)
C3D (motion labs)         :mod:`tonuslab.io_import.c3d`              ezc3d (``tonuslab[c3d]``)
OpenSignals (PLUX)        :mod:`tonuslab.io_import.opensignals`      h5py for the .h5 variant
========================  =========================================  ===========================

Every reader keeps samples as integer counts with a scale, records missing samples as gaps
(never interpolates over them), turns stimulus annotations, markers or trigger channels into
stimulus events, and refuses what it cannot read with one :class:`ImportFormatError` line.

>>> parse_stim_annotation("stim 12.5mA 200us")
{'intensity_ma': 12.5, 'width_us': 200.0}
>>> parse_stim_annotation("stim 12,5 mA")  # decimal comma
{'intensity_ma': 12.5, 'width_us': None}
>>> parse_stim_annotation("start of stretch") is None
True
>>> detect_format("trial.xdf"), detect_format("walk.C3D"), detect_format("rec.edf")
('xdf', 'c3d', 'edf')
"""

from __future__ import annotations

import pathlib

from tonuslab.io_import._common import (
    ANGLE_UNITS,
    EMG_UNITS,
    MAX_COUNT,
    ImportDataWarning,
    ImportFormatError,
    parse_stim_annotation,
)
from tonuslab.io_import.c3d import import_c3d
from tonuslab.io_import.csv_file import import_csv
from tonuslab.io_import.edf import import_edf
from tonuslab.io_import.opensignals import import_opensignals
from tonuslab.io_import.xdf import import_xdf

__all__ = [
    "ANGLE_UNITS",
    "EMG_UNITS",
    "FORMATS",
    "MAX_COUNT",
    "ImportDataWarning",
    "ImportFormatError",
    "detect_format",
    "import_c3d",
    "import_csv",
    "import_edf",
    "import_file",
    "import_opensignals",
    "import_xdf",
    "parse_stim_annotation",
]

#: Format names accepted by :func:`import_file` and ``tonuslab import --format``.
FORMATS = ("edf", "csv", "xdf", "c3d", "opensignals")
_SUFFIXES = {
    ".edf": "edf",
    ".bdf": "edf",
    ".rec": "edf",
    ".csv": "csv",
    ".tsv": "csv",
    ".xdf": "xdf",
    ".xdfz": "xdf",
    ".c3d": "c3d",
}


def detect_format(path) -> str | None:
    """Format name of ``path`` from its suffix (and, for ``.txt``/``.h5``, its first bytes).

    A ``.txt`` file whose first line is ``# OpenSignals Text File Format`` is OpenSignals,
    other ``.txt`` files are delimited text; an ``.h5`` file is OpenSignals unless it is a
    tonuslab session. None when the suffix says nothing.
    """
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    if suffix == ".txt":
        try:
            with path.open("rb") as fh:
                head = fh.read(64).lstrip(b"\xef\xbb\xbf")
        except OSError:
            return "csv"
        return "opensignals" if head.startswith(b"# OpenSignals") else "csv"
    if suffix in (".h5", ".hdf5"):
        return "opensignals"
    return None


def import_file(path, out, *, fmt: str | None = None, **kwargs) -> pathlib.Path:
    """Import ``path`` into the session file ``out`` with the reader of its format.

    Parameters
    ----------
    path, out : path-like
    fmt : str, optional
        One of :data:`FORMATS` (default: :func:`detect_format`).
    **kwargs
        Passed to the reader (``import_edf``, ``import_csv``, ``import_xdf``, ``import_c3d``,
        ``import_opensignals``).
    """
    fmt = fmt or detect_format(path)
    readers = {
        "edf": import_edf,
        "csv": import_csv,
        "xdf": import_xdf,
        "c3d": import_c3d,
        "opensignals": import_opensignals,
    }
    if fmt not in readers:
        raise ImportFormatError(
            f"cannot tell the format of {path}: use --format {'|'.join(FORMATS)}"
        )
    return readers[fmt](path, out, **kwargs)
