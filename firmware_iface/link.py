"""Byte links: the transport interface the host client and the emulator talk through.

A :class:`ByteLink` moves raw bytes; framing lives in :mod:`firmware_iface.codec`. Implementations
here: an in-process pair with optional latency and jitter (:func:`link_pair`), a socket
(:class:`SocketLink`) and a file descriptor such as a pty master (:class:`FdLink`). Serial, BLE
and replay links live in :mod:`acquire` (``acquire.links.open_link``).
"""

from __future__ import annotations

import collections
import os
import select
import socket
import threading
import time
from typing import Protocol, runtime_checkable

import numpy as np

from firmware_iface.errors import LinkClosed


@runtime_checkable
class ByteLink(Protocol):
    """A duplex byte stream.

    ``read`` returns between 1 and ``max_bytes`` bytes, or ``b""`` when nothing arrived within
    ``timeout_s``; it raises :class:`~firmware_iface.errors.LinkClosed` once the link is closed
    and drained. ``write`` sends all of ``data`` (it may block while the peer is not reading) and
    raises ``LinkClosed`` on a closed link. ``close`` is idempotent.
    """

    def write(self, data: bytes) -> None: ...

    def read(self, max_bytes: int, timeout_s: float) -> bytes: ...

    def close(self) -> None: ...


class _Pipe:
    """One direction of an in-process link: bounded, with delivery latency and jitter."""

    def __init__(self, capacity: int, latency_s: float, jitter_s: float, rng):
        self.capacity = capacity
        self.latency_s = latency_s
        self.jitter_s = jitter_s
        self._rng = rng
        self._chunks: collections.deque[list] = collections.deque()  # [deliver_at, bytes]
        self._size = 0
        self._last_deliver = 0.0
        self._closed = False
        self._cond = threading.Condition()

    def put(self, data: bytes) -> None:
        if not data:
            return
        with self._cond:
            while self._size and self._size + len(data) > self.capacity and not self._closed:
                self._cond.wait(0.05)
            if self._closed:
                raise LinkClosed("link closed: the peer went away; reconnect")
            now = time.monotonic()
            deliver = now + self.latency_s
            if self.jitter_s:
                deliver += abs(float(self._rng.normal(0.0, self.jitter_s)))
            deliver = max(deliver, self._last_deliver)
            self._last_deliver = deliver
            self._chunks.append([deliver, bytes(data)])
            self._size += len(data)
            self._cond.notify_all()

    def get(self, max_bytes: int, timeout_s: float) -> bytes:
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while True:
                now = time.monotonic()
                if self._chunks and self._chunks[0][0] <= now:
                    out = bytearray()
                    while self._chunks and self._chunks[0][0] <= now and len(out) < max_bytes:
                        _deliver, chunk = self._chunks[0]
                        take = chunk[: max_bytes - len(out)]
                        out += take
                        if len(take) == len(chunk):
                            self._chunks.popleft()
                        else:
                            self._chunks[0][1] = chunk[len(take) :]
                    self._size -= len(out)
                    self._cond.notify_all()
                    return bytes(out)
                if self._closed and not self._chunks:
                    raise LinkClosed("link closed: the peer went away; reconnect")
                if now >= deadline:
                    return b""
                wake = deadline
                if self._chunks:
                    wake = min(wake, self._chunks[0][0])
                self._cond.wait(max(0.0, wake - now))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class MemoryLink:
    """One end of an in-process link made by :func:`link_pair`."""

    def __init__(self, rx: _Pipe, tx: _Pipe, name: str):
        self._rx = rx
        self._tx = tx
        self.name = name

    def write(self, data: bytes) -> None:
        self._tx.put(data)

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        return self._rx.get(max_bytes, timeout_s)

    def close(self) -> None:
        self._rx.close()
        self._tx.close()

    def __repr__(self) -> str:
        return f"MemoryLink({self.name})"


def link_pair(
    *,
    capacity: int = 1 << 20,
    latency_s: float = 0.0,
    jitter_s: float = 0.0,
    seed: int | None = None,
) -> tuple[MemoryLink, MemoryLink]:
    """Two connected in-process :class:`ByteLink` ends: ``(host_end, device_end)``.

    Parameters
    ----------
    capacity : int
        Bytes buffered per direction before ``write`` blocks (back-pressure).
    latency_s, jitter_s : float
        Delivery delay per write: ``latency_s + |N(0, jitter_s)|``, order preserved.
    seed : int, optional
        Seed of the jitter generator.
    """
    rng = np.random.default_rng(seed)
    h2d = _Pipe(capacity, latency_s, jitter_s, rng)
    d2h = _Pipe(capacity, latency_s, jitter_s, rng)
    return MemoryLink(d2h, h2d, "host"), MemoryLink(h2d, d2h, "device")


class SocketLink:
    """A :class:`ByteLink` over a connected stream socket (TCP)."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._closed = False
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def write(self, data: bytes) -> None:
        if self._closed:
            raise LinkClosed("link closed: reconnect")
        try:
            self._sock.settimeout(None)
            self._sock.sendall(data)
        except OSError as exc:
            raise LinkClosed(f"connection lost while writing ({exc.strerror or exc})") from exc

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        if self._closed:
            raise LinkClosed("link closed: reconnect")
        try:
            self._sock.settimeout(max(0.0, timeout_s))
            data = self._sock.recv(max_bytes)
        except TimeoutError:
            return b""
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise LinkClosed(f"connection lost ({exc.strerror or exc})") from exc
        if not data:
            raise LinkClosed("connection closed by the peer; reconnect")
        return data

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()


class FdLink:
    """A :class:`ByteLink` over a file descriptor (the master side of a pty)."""

    def __init__(self, fd: int, *, close_fd: bool = True):
        self._fd = fd
        self._close_fd = close_fd
        self._closed = False

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._closed:
                raise LinkClosed("link closed")
            try:
                _, w, _ = select.select([], [self._fd], [], 0.1)
                if not w:
                    continue
                n = os.write(self._fd, view)
            except OSError as exc:
                raise LinkClosed(f"tty closed ({exc.strerror})") from exc
            view = view[n:]

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        if self._closed:
            raise LinkClosed("link closed")
        try:
            r, _, _ = select.select([self._fd], [], [], max(0.0, timeout_s))
            if not r:
                return b""
            data = os.read(self._fd, max_bytes)
        except OSError as exc:
            # EIO on a pty master means no process has the slave open: nothing to read yet.
            if exc.errno == 5:
                time.sleep(min(timeout_s, 0.01))
                return b""
            raise LinkClosed(f"tty closed ({exc.strerror})") from exc
        if not data:
            raise LinkClosed("tty closed")
        return data

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._close_fd:
                try:
                    os.close(self._fd)
                except OSError:
                    pass
