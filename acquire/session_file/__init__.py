"""The tonuslab session file (HDF5): schema, writer and lazy reader, one module each.

The schema is documented for people who never installed tonuslab in ``docs/session-format.md``;
this module is its reference implementation. Three entry points:

- :class:`SessionWriter` appends sample blocks, events, gaps and the clock mapping while a
  recording runs, and flushes the file at least once a second (a flushed file survives
  ``kill -9``; see ``docs/session-format.md`` for the crash-safety model).
- :func:`write_session` writes a whole session from arrays in one call (importers, tests, replay).
- :func:`open_session` opens a file lazily and hands out physical units with time vectors,
  events, gaps, metadata and stored results; it raises
  :class:`~acquire.errors.NotASessionFileError`, :class:`~acquire.errors.TruncatedSessionError`
  or :class:`~acquire.errors.NewerSchemaError` for files it cannot read.

Conventions (``docs/architecture.md``): time on axis 0; raw counts stay integers on disk with
``scale``, ``offset`` and ``unit`` per channel, ``physical = (counts - offset) * scale``; arrays
are indexed by the device's sample number, samples never received hold the dataset's
``fill_value``, are listed in ``/gaps`` and are NaN in physical arrays.

The package: :mod:`~acquire.session_file.schema` (format constants, record dtypes, metadata and
channel-table rules), :mod:`~acquire.session_file.writer`, :mod:`~acquire.session_file.reader`
and :mod:`~acquire.session_file._h5` (HDF5 helpers). Import the public names from here.
``Session`` is the old name of :class:`SessionReader` (deprecated; kept for one release).
"""

from __future__ import annotations

import warnings

from acquire.session_file._h5 import (
    CHUNK_CACHE_SLOTS,
    METADATA_CACHE_MAX_BYTES,
    _is_disk_full,
    hdf5_unsafe_to_finalize,
)
from acquire.session_file.reader import SessionReader, Stream, open_session
from acquire.session_file.schema import (
    ANCHOR_DTYPE,
    CHANNEL_DTYPE,
    EVENT_DTYPE,
    EVENT_KINDS,
    FILL_VALUE,
    FORMAT_NAME,
    FORMAT_VERSION,
    GAP_DTYPE,
    METADATA_FIELDS,
    PING_DTYPE,
    STATES,
    STREAMS,
    validate_metadata,
)
from acquire.session_file.stimuli import Stimulus, parse_stimuli, stimulus_arrays
from acquire.session_file.writer import SessionWriter, write_session

__all__ = [
    "ANCHOR_DTYPE",
    "CHANNEL_DTYPE",
    "CHUNK_CACHE_SLOTS",
    "EVENT_DTYPE",
    "EVENT_KINDS",
    "FILL_VALUE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "GAP_DTYPE",
    "METADATA_CACHE_MAX_BYTES",
    "METADATA_FIELDS",
    "PING_DTYPE",
    "STATES",
    "STREAMS",
    "SessionReader",
    "SessionWriter",
    "Stimulus",
    "Stream",
    "_is_disk_full",
    "hdf5_unsafe_to_finalize",
    "open_session",
    "parse_stimuli",
    "stimulus_arrays",
    "validate_metadata",
    "write_session",
]


def __getattr__(name: str):
    if name == "Session":  # the reader's name before issue 14; removed in the next release
        warnings.warn(
            "acquire.session_file.Session is now SessionReader", DeprecationWarning, stacklevel=2
        )
        return SessionReader
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
