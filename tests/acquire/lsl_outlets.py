"""Real pylsl outlets for the ``lsl://`` tests, on a loopback-only LSL configuration.

Importing this module points ``LSLAPICFG`` at a config with ``KnownPeers = {127.0.0.1}`` and
``ResolveScope = machine`` (unless the process has one already: liblsl reads it once), so no test
sends a packet off the machine. :class:`Feeder` pushes a known signal in real time from a thread,
stamped per sample (as a device clock would) or per chunk with host jitter (as a bridge that
stamps on arrival), with holes, a clock offset and a vanish-and-return.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence

import numpy as np

from acquire.lsl import write_loopback_config

_CONFIG = pathlib.Path(tempfile.mkdtemp(prefix="tonuslab-lsl-src-")) / "lsl.cfg"
os.environ.setdefault(
    "LSLAPICFG", str(write_loopback_config(_CONFIG, f"tonuslab-src-{uuid.uuid4().hex[:8]}"))
)

import pylsl  # noqa: E402  (after LSLAPICFG)


def unique(prefix: str) -> str:
    """A stream name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_outlet(
    name: str,
    channels: Sequence[tuple[str, str, str]],
    rate_hz: float,
    *,
    stream_type: str = "EMG",
    source_id: str = "",
    fmt=None,
) -> pylsl.StreamOutlet:
    """An outlet whose description lists ``(label, unit, type)`` for each channel."""
    fmt = pylsl.cf_float32 if fmt is None else fmt
    info = pylsl.StreamInfo(name, stream_type, len(channels), rate_hz, fmt, source_id or name)
    node = info.desc().append_child("channels")
    for label, unit, kind in channels:
        ch = node.append_child("channel")
        ch.append_child_value("label", label)
        if unit:
            ch.append_child_value("unit", unit)
        if kind:
            ch.append_child_value("type", kind)
    return pylsl.StreamOutlet(info, chunk_size=0, max_buffered=60)


class Feeder(threading.Thread):
    """Push ``signal(indices) -> (n, channels) float`` in real time.

    Parameters
    ----------
    make : callable
        ``make() -> StreamOutlet`` (called again when the outlet comes back).
    rate_hz : float
    signal : callable
        Sample values for an array of sample numbers.
    chunk : int
        Samples per push.
    holes : sequence of (first, n)
        Sample numbers never pushed.
    jitter_s : float
        SD of the host stamp jitter per chunk (clipped to 2 SD); 0: exact per-sample stamps.
    offset_s : float
        Added to every stamp (a clock that is not this machine's).
    vanish : (first, seconds) or None
        Destroy the outlet before sample ``first`` and make a new one after ``seconds``;
        samples meanwhile are never pushed.
    seed : int
    """

    def __init__(
        self,
        make: Callable[[], pylsl.StreamOutlet],
        rate_hz: float,
        signal: Callable[[np.ndarray], np.ndarray],
        *,
        chunk: int = 32,
        holes: Sequence[tuple[int, int]] = (),
        jitter_s: float = 0.0,
        offset_s: float = 0.0,
        vanish: tuple[int, float] | None = None,
        seed: int = 0,
        t0: float | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.make = make
        self.outlet = make()
        self.rate = float(rate_hz)
        self.signal = signal
        self.chunk = int(chunk)
        self.holes = list(holes)
        self.jitter_s = float(jitter_s)
        self.offset_s = float(offset_s)
        self.vanish = vanish
        self.rng = np.random.default_rng(seed)
        self.t0 = pylsl.local_clock() + 0.2 if t0 is None else t0
        self.stop_event = threading.Event()
        self.n = 0
        self.lock = threading.Lock()
        self.hook: Callable[[int], None] | None = None

    def skipped(self, idx: np.ndarray) -> np.ndarray:
        out = np.zeros(idx.shape, dtype=bool)
        for first, n in self.holes:
            out |= (idx >= first) & (idx < first + n)
        return out

    def run(self) -> None:
        while not self.stop_event.is_set():
            due = self.t0 + (self.n + self.chunk) / self.rate
            wait = due - pylsl.local_clock()
            if wait > 0:
                time.sleep(min(wait, 0.05))
                continue
            idx = self.n + np.arange(self.chunk)
            if self.vanish is not None and self.n <= self.vanish[0] < self.n + self.chunk:
                self.outlet = None  # the equipment vanishes
                if self.stop_event.wait(self.vanish[1]):
                    return
                self.outlet = self.make()
                gone = self.vanish[1] * self.rate
                self.n = int(self.vanish[0] + gone)
                self.vanish = None
                continue
            with self.lock:
                if self.hook is not None:
                    self.hook(self.n)
                values = np.asarray(self.signal(idx), dtype=np.float64)
            self.n += self.chunk
            keep = ~self.skipped(idx)
            if not keep.any():
                continue
            stamps = self.t0 + idx / self.rate + self.offset_s
            if self.jitter_s > 0:
                j = float(np.clip(self.rng.normal(0, self.jitter_s), -2 * self.jitter_s,
                                  2 * self.jitter_s))  # fmt: skip
                stamps = stamps + j  # one host stamp per chunk, samples back-filled
            self.outlet.push_chunk(
                np.ascontiguousarray(values[keep], dtype=np.float32), stamps[keep].tolist()
            )

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)
        self.outlet = None


def wait_for_consumer(outlet: pylsl.StreamOutlet, timeout_s: float = 10.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if outlet.have_consumers():
            return True
        time.sleep(0.02)
    return False
