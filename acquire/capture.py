"""The raw wire capture: every byte exchanged with the device, with host arrival times.

A capture (``FILE.capture`` beside ``FILE.h5``) is the recorder's journal. It is append-only,
each record carries a CRC-32, and it is forced to disk at least once a second, so after
``kill -9`` (or a power cut, up to the last second) every record up to the last sync is intact
and ``tonuslab recover`` / ``tonuslab replay`` rebuild the session from it.

Format (``docs/session-format.md``, "Wire capture"): the magic :data:`MAGIC`, then records
``<B kind, I length, d host_time_s>`` + payload + ``<I crc32(header + payload)>``.
"""

from __future__ import annotations

import json
import os
import pathlib
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from acquire.errors import CaptureError, DiskFullError
from acquire.session_file._h5 import _is_disk_full

MAGIC = b"TLCAP\x00\x01\n"
HEADER = struct.Struct("<BId")
CRC = struct.Struct("<I")
#: Record kinds.
RX, TX, HEAD, EVENT, LINK = b"R"[0], b"T"[0], b"H"[0], b"E"[0], b"L"[0]
#: A foreign source's raw chunk (:func:`acquire.sources.base.encode_chunk`), see
#: :mod:`acquire.source_recorder`.
SOURCE = b"S"[0]
KINDS = {RX: "rx", TX: "tx", HEAD: "header", EVENT: "event", LINK: "link", SOURCE: "source"}
MAX_RECORD = 1 << 24


def capture_path_for(session_path) -> pathlib.Path:
    """The default capture beside a session file: ``x.h5`` -> ``x.capture``."""
    p = pathlib.Path(session_path)
    return p.with_suffix(".capture")


@dataclass(frozen=True, slots=True)
class Record:
    """One capture record: ``kind`` (``b"R"[0]``...), host arrival time, payload bytes."""

    kind: int
    host_time_s: float
    payload: bytes

    @property
    def kind_name(self) -> str:
        return KINDS.get(self.kind, "?")

    def json(self) -> dict:
        """The payload of a header, event or link record, decoded."""
        return json.loads(self.payload.decode("utf-8"))


class CaptureWriter:
    """Append records to a capture file; thread-safe.

    Parameters
    ----------
    path : path-like
        File to create (refused if it exists, unless ``overwrite``).
    flush_interval_s : float
        Longest time records stay in this process before they are handed to the OS (which
        keeps them through ``kill -9``).
    sync_interval_s : float
        Period of the background ``fsync`` (durability through a power cut), at most a second.
    """

    def __init__(
        self,
        path,
        *,
        overwrite: bool = False,
        flush_interval_s: float = 0.25,
        sync_interval_s: float = 1.0,
    ) -> None:
        self.path = pathlib.Path(path)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
        try:
            self._fd = os.open(self.path, flags, 0o644)
        except FileExistsError:
            raise CaptureError(f"{self.path} exists; choose another session name") from None
        self._lock = threading.Lock()
        self._buf = bytearray(MAGIC)
        self._flush_interval_s = flush_interval_s
        self._sync_interval_s = sync_interval_s
        self._last_flush = self._last_sync = time.monotonic()
        self._closed = False
        self._suspended = False  # the disk is full: see suspend()
        self._error: DiskFullError | None = None
        self.bytes_written = 0
        self._synced_bytes = 0
        self.flush(sync=True)
        # fsync (power-loss durability) in its own thread: a slow disk never stalls the reader
        self._sync_stop = threading.Event()
        self._sync_thread = threading.Thread(
            target=self._sync_loop, name="tonuslab-capture-sync", daemon=True
        )
        self._sync_thread.start()

    def _sync_loop(self) -> None:
        while not self._sync_stop.wait(self._sync_interval_s):
            try:
                self.maybe_flush()
            except Exception:
                return  # kept in self._error; the recording thread raises it
            if self.bytes_written != self._synced_bytes:
                target = self.bytes_written
                try:
                    os.fsync(self._fd)
                except OSError:
                    return  # closed, or the disk failed: the writer reports it
                self._synced_bytes = target
                self._last_sync = time.monotonic()

    def write(self, kind: int, payload: bytes, host_time_s: float | None = None) -> None:
        """Append one record (``host_time_s`` defaults to ``time.monotonic()``)."""
        t = time.monotonic() if host_time_s is None else host_time_s
        head = HEADER.pack(kind, len(payload), t)
        crc = zlib.crc32(payload, zlib.crc32(head))
        with self._lock:
            if self._error is not None:
                raise self._error
            if self._closed or self._suspended:
                return
            self._buf += head
            self._buf += payload
            self._buf += CRC.pack(crc)
        self.maybe_flush()

    def write_json(self, kind: int, obj: dict, host_time_s: float | None = None) -> None:
        self.write(kind, json.dumps(obj, sort_keys=True, default=str).encode(), host_time_s)

    def maybe_flush(self) -> None:
        """Hand records to the OS if the flush interval elapsed (the sync thread fsyncs)."""
        if time.monotonic() - self._last_flush >= self._flush_interval_s:
            self.flush()

    def flush(self, sync: bool = False) -> None:
        """Hand buffered records to the OS (and ``fsync`` if ``sync``)."""
        with self._lock:
            if self._closed or self._suspended:
                return
            data = bytes(self._buf)
            self._buf.clear()
            try:
                view = memoryview(data)
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]
                    self.bytes_written += n
                if sync:
                    os.fsync(self._fd)
            except OSError as exc:
                if _is_disk_full(exc):
                    self._closed = True  # nothing more can be written; keep what is on disk
                    os.close(self._fd)
                    self._error = DiskFullError(
                        f"disk full while writing the capture {self.path}: recording stopped"
                    )
                    raise self._error from exc
                raise
            now = time.monotonic()
            self._last_flush = now
            if sync:
                self._last_sync = now

    def suspend(self) -> None:
        """Stop writing for good (the disk is full): later records and the buffer are dropped.

        What is already on disk stays valid (records are CRC-checked and a reader stops at the
        first partial one); :meth:`close` still closes the file.
        """
        with self._lock:
            self._suspended = True
            self._buf.clear()

    def close(self) -> None:
        """Flush, ``fsync`` and close (idempotent). A full disk raises :class:`DiskFullError`.

        The file descriptor is closed exactly once, also when the final flush meets a full disk
        (the flush then closes it itself).
        """
        if self._closed:
            return
        self._sync_stop.set()
        try:
            self.flush(sync=True)
        finally:
            with self._lock:
                if not self._closed:  # not yet closed by a failed flush
                    self._closed = True
                    os.close(self._fd)


def read_capture(path) -> Iterator[Record]:
    """Yield the valid records of a capture, stopping at the first damaged or partial one.

    Raises
    ------
    CaptureError
        The file does not start with the capture magic.
    """
    path = pathlib.Path(path)
    with open(path, "rb") as fh:
        if fh.read(len(MAGIC)) != MAGIC:
            raise CaptureError(f"{path} is not a tonuslab wire capture")
        while True:
            head = fh.read(HEADER.size)
            if len(head) < HEADER.size:
                return
            kind, length, t = HEADER.unpack(head)
            if length > MAX_RECORD or kind not in KINDS:
                return
            payload = fh.read(length)
            tail = fh.read(CRC.size)
            if len(payload) < length or len(tail) < CRC.size:
                return
            if CRC.unpack(tail)[0] != zlib.crc32(payload, zlib.crc32(head)):
                return
            yield Record(kind, t, payload)


def capture_header(path) -> dict:
    """The JSON of the capture's first header record (URL, metadata, options)."""
    for rec in read_capture(path):
        if rec.kind == HEAD:
            return rec.json()
        break
    raise CaptureError(f"{path} has no header record (damaged at its start)")


class CapturingLink:
    """Wrap a byte link so that every byte read or written is appended to a capture.

    ``read`` records ``R`` with the host arrival time (``time.monotonic()`` when the read
    returned) and keeps it in :attr:`last_arrival_s`; ``write`` records ``T``.
    """

    def __init__(self, link, capture: CaptureWriter | None) -> None:
        self.link = link
        self.capture = capture
        self.last_arrival_s = 0.0

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        data = self.link.read(max_bytes, timeout_s)
        arrival = getattr(self.link, "last_arrival_s", None)
        self.last_arrival_s = time.monotonic() if arrival is None else arrival
        if data and self.capture is not None:
            self.capture.write(RX, data, self.last_arrival_s)
        return data

    def write(self, data: bytes) -> None:
        if self.capture is not None:
            self.capture.write(TX, bytes(data))
        self.link.write(data)

    def close(self) -> None:
        self.link.close()

    def __getattr__(self, name):
        return getattr(self.link, name)
