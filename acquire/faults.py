"""Fault injection for byte links: a flaky cable or a walk out of Bluetooth range, on demand.

:class:`FaultyLink` wraps any :class:`firmware_iface.link.ByteLink` and damages what the device
sends on its way to the host: bytes are dropped, flipped, duplicated or inserted, delivery
stalls, chunks (BLE notifications, when the inner link offers ``read_chunks``) are split and
reordered, and outages cut a run of bytes as a disconnect does. Each fault happens at a chosen
rate from a seeded generator, so a run is reproducible.

The wrapper keeps exact books, in the coordinates of the *clean* stream (every byte the inner
link delivered, i.e. what the device sent over a lossless inner link):

- ``clean_bytes`` (when ``keep_clean=True``) is that stream;
- ``touched`` lists the clean positions a fault damaged;
- ``delivered_positions()`` (when ``track_positions=True``) gives, for every byte handed to the
  host, the clean position it came from (-1 for inserted bytes).

From these a test proves, frame by frame, that every frame whose bytes arrived intact was
delivered (:func:`intact_frame_spans`). This is a fake at the outer edge: it never touches the
protocol code it tests.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

__all__ = ["FaultPlan", "FaultStats", "FaultyLink", "frame_spans", "intact_frame_spans"]


@dataclasses.dataclass(frozen=True)
class FaultPlan:
    """Rates of each fault.

    Attributes
    ----------
    drop_rate, flip_rate, duplicate_rate, insert_rate : float
        Probability per byte of losing it, XOR-ing it with a random non-zero value, delivering it
        twice, or inserting a random byte after it.
    stall_rate : float
        Probability per read of pausing delivery for ``stall_s`` seconds.
    stall_s : float
        Length of a stall, seconds.
    split_rate : float
        Probability per chunk of splitting it in two deliveries.
    reorder_rate : float
        Probability per chunk of swapping it with the next chunk.
    outage_rate : float
        Probability per chunk of an outage: that chunk and the next ``outage_chunks - 1`` are
        lost, as when a link drops and the device keeps streaming.
    outage_chunks : int
        Length of an outage, in chunks.
    seed : int
        Seed of the fault generator.
    """

    drop_rate: float = 0.0
    flip_rate: float = 0.0
    duplicate_rate: float = 0.0
    insert_rate: float = 0.0
    stall_rate: float = 0.0
    stall_s: float = 0.02
    split_rate: float = 0.0
    reorder_rate: float = 0.0
    outage_rate: float = 0.0
    outage_chunks: int = 3
    seed: int = 0

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name.endswith("_rate") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{field.name} must be in [0, 1], got {value}")
        if self.outage_chunks < 1:
            raise ValueError(f"outage_chunks must be at least 1, got {self.outage_chunks}")

    @classmethod
    def byte_errors(cls, rate: float, seed: int = 0) -> FaultPlan:
        """Drops, flips, duplicates and inserts, each at ``rate / 4`` per byte."""
        quarter = rate / 4.0
        return cls(
            drop_rate=quarter, flip_rate=quarter, duplicate_rate=quarter, insert_rate=quarter,
            seed=seed,
        )  # fmt: skip


@dataclasses.dataclass
class FaultStats:
    """How many faults of each kind were injected so far."""

    bytes_in: int = 0
    bytes_out: int = 0
    dropped: int = 0
    flipped: int = 0
    duplicated: int = 0
    inserted: int = 0
    stalls: int = 0
    splits: int = 0
    reorders: int = 0
    outages: int = 0
    outage_bytes: int = 0
    frames_sent: int = 0
    frames_touched: int = 0

    @property
    def frames_intact(self) -> int:
        """Complete frames of the clean stream that no fault touched (see ``count_frames``)."""
        return self.frames_sent - self.frames_touched

    @property
    def total(self) -> int:
        """All injected faults (an outage counts once)."""
        return (
            self.dropped + self.flipped + self.duplicated + self.inserted + self.stalls
            + self.splits + self.reorders + self.outages
        )  # fmt: skip


class FaultyLink:
    """A :class:`~firmware_iface.link.ByteLink` that damages the device-to-host direction.

    Parameters
    ----------
    inner : ByteLink
        The real link (in-process, pty, TCP, BLE). If it has ``read_chunks`` (BLE), chunk faults
        act on whole notifications.
    plan : FaultPlan
        Fault rates.
    keep_clean : bool
        Keep every clean byte in ``clean_bytes`` (tests; memory grows with the run).
    track_positions : bool
        Keep the clean position of every delivered byte (tests; memory grows with the run).
    keep_touched : bool
        Keep the list of touched clean positions in ``touched`` (grows with the faults).
    count_frames : bool
        Count, as the run goes and in constant memory, the clean stream's frames
        (``stats.frames_sent``) and those a fault touched (``stats.frames_touched``); a frame is
        touched when a fault hit its bytes, its delimiter or the delimiter before it. For long
        runs (soak) where the exact books would not fit in memory.

    Notes
    -----
    Host-to-device writes pass through untouched: commands are acknowledged and retried by the
    protocol, and the tests here are about the sample stream.
    """

    def __init__(
        self, inner, plan: FaultPlan, *, keep_clean=False, track_positions=False,
        keep_touched=True, count_frames=False,
    ):  # fmt: skip
        self.inner = inner
        self._plan = plan
        self.stats = FaultStats()
        self.touched: list[int] = []
        self._keep_touched = keep_touched
        self._count_frames = count_frames
        self._chunk_touched: list[int] = []
        self._carry_touched: list[int] = []
        self._open_len = 0
        self._open_touched = False
        self._prev_delimiter_touched = False
        self.clean_bytes = bytearray() if keep_clean else None
        self._positions: list[np.ndarray] | None = [] if track_positions else None
        self._rng = np.random.default_rng(plan.seed)
        self._clean_offset = 0
        self._pending: list[tuple[bytes, np.ndarray]] = []  # chunks ready for the host
        self._held: tuple[bytes, np.ndarray] | None = None  # a chunk waiting to be reordered
        self._outage_left = 0

    @property
    def plan(self) -> FaultPlan:
        """The faults applied from now on; replacing it ends an outage in progress.

        A test that swaps in a clean plan (``FaultPlan()``) to let a STOP and its ACK through
        gets a clean link from the next chunk on, not the rest of an earlier outage.
        """
        return self._plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        self._plan = plan
        self._outage_left = 0

    # ------------------------------------------------------------------ ByteLink
    def write(self, data: bytes) -> None:
        """Send host bytes to the device, unchanged."""
        self.inner.write(data)

    def close(self) -> None:
        """Close the inner link."""
        self.inner.close()

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        """Next damaged bytes from the device (``b""`` on timeout)."""
        if not self._pending:
            self._pull(max_bytes, timeout_s)
        if not self._pending:
            return b""
        data, positions = self._pending.pop(0)
        if len(data) > max_bytes:
            self._pending.insert(0, (data[max_bytes:], positions[max_bytes:]))
            data, positions = data[:max_bytes], positions[:max_bytes]
        if self._positions is not None:
            self._positions.append(positions)
        self.stats.bytes_out += len(data)
        return data

    def __getattr__(self, name):  # device, runner, connected, ... of the inner link
        return getattr(self.inner, name)

    # ------------------------------------------------------------------ books
    def delivered_positions(self) -> np.ndarray:
        """Clean-stream position of every byte delivered so far (-1: inserted), ``(n,)`` int64."""
        if self._positions is None:
            raise RuntimeError("FaultyLink was created without track_positions=True")
        if not self._positions:
            return np.zeros(0, np.int64)
        return np.concatenate(self._positions)

    # ------------------------------------------------------------------ internals
    def _pull(self, max_bytes: int, timeout_s: float) -> None:
        plan, rng = self.plan, self._rng
        if plan.stall_rate and rng.random() < plan.stall_rate:
            self.stats.stalls += 1
            time.sleep(plan.stall_s)
        if hasattr(self.inner, "read_chunks"):
            chunks = [c for _, c in self.inner.read_chunks(max_bytes, timeout_s)]
        else:
            chunk = self.inner.read(max_bytes, timeout_s)
            chunks = [chunk] if chunk else []
        for chunk in chunks:
            self._take_chunk(bytes(chunk))
        if not chunks and self._held is not None:  # nothing followed: release the held chunk
            self._pending.append(self._held)
            self._held = None

    def _take_chunk(self, chunk: bytes) -> None:
        plan, rng = self.plan, self._rng
        start = self._clean_offset
        self._clean_offset += len(chunk)
        self.stats.bytes_in += len(chunk)
        if self.clean_bytes is not None:
            self.clean_bytes += chunk
        positions = np.arange(start, start + len(chunk), dtype=np.int64)

        if self._outage_left or (plan.outage_rate and rng.random() < plan.outage_rate):
            if not self._outage_left:
                self.stats.outages += 1
                self._outage_left = plan.outage_chunks
            self._outage_left -= 1
            self.stats.outage_bytes += len(chunk)
            self._touch(range(start, start + len(chunk)))
            self._books(chunk, start)
            return

        data, positions = self._byte_faults(np.frombuffer(chunk, np.uint8), positions)
        self._books(chunk, start)
        pieces = [(data, positions)]
        if len(data) > 1 and plan.split_rate and rng.random() < plan.split_rate:
            self.stats.splits += 1
            cut = int(rng.integers(1, len(data)))
            pieces = [(data[:cut], positions[:cut]), (data[cut:], positions[cut:])]
        for piece in pieces:
            self._queue(piece)

    def _queue(self, piece: tuple[bytes, np.ndarray]) -> None:
        plan, rng = self.plan, self._rng
        if self._held is not None:
            self._pending.append(piece)
            self._pending.append(self._held)
            self._mark_reordered(self._held[1], piece[1])
            self._held = None
        elif plan.reorder_rate and rng.random() < plan.reorder_rate:
            self.stats.reorders += 1
            self._held = piece
        else:
            self._pending.append(piece)

    def _mark_reordered(self, first: np.ndarray, second: np.ndarray) -> None:
        for positions in (first, second):
            real = positions[positions >= 0]
            if real.size:
                self._touch((int(real[0]), int(real[-1])))

    def _touch(self, positions) -> None:
        positions = list(positions)
        if self._keep_touched:
            self.touched.extend(positions)
        if self._count_frames:
            self._chunk_touched.extend(positions)

    def _books(self, chunk: bytes, start: int) -> None:
        """Streaming frame books for one clean chunk (``count_frames``)."""
        if not self._count_frames:
            return
        n = len(chunk)
        hits = np.asarray(self._chunk_touched + self._carry_touched, np.int64) - start
        self._chunk_touched, self._carry_touched = [], []
        self._carry_touched = (hits[hits >= n] + start).tolist()  # e.g. insert after last byte
        mask = np.zeros(n, bool)
        mask[hits[(hits >= 0) & (hits < n)]] = True
        hit_before = np.r_[0, np.cumsum(mask)]  # touched bytes in chunk[:i]
        previous = -1
        stats = self.stats
        for k in np.flatnonzero(np.frombuffer(chunk, np.uint8) == 0).tolist():
            length = k - previous - 1 + self._open_len
            touched = (
                self._open_touched or self._prev_delimiter_touched
                or hit_before[k + 1] > hit_before[previous + 1]
            )  # fmt: skip
            if length > 0:
                stats.frames_sent += 1
                stats.frames_touched += bool(touched)
            self._prev_delimiter_touched = bool(mask[k])  # any delimiter resets the decoder
            self._open_len, self._open_touched = 0, False
            previous = k
        self._open_len += n - previous - 1
        self._open_touched = self._open_touched or bool(hit_before[n] > hit_before[previous + 1])

    def _byte_faults(self, data: np.ndarray, positions: np.ndarray):
        plan, rng = self.plan, self._rng
        n = data.size
        if n == 0 or not (
            plan.drop_rate or plan.flip_rate or plan.duplicate_rate or plan.insert_rate
        ):
            return data.tobytes(), positions
        data = data.copy()
        original_positions = positions
        flip = rng.random(n) < plan.flip_rate
        if flip.any():
            data[flip] ^= rng.integers(1, 256, int(flip.sum()), dtype=np.uint8)
            self.stats.flipped += int(flip.sum())
            positions = np.where(flip, -1, positions)  # delivered, but not the clean byte
        keep = rng.random(n) >= plan.drop_rate
        self.stats.dropped += int(n - keep.sum())
        copies = keep.astype(np.int64)
        dup = keep & (rng.random(n) < plan.duplicate_rate)
        copies[dup] += 1
        self.stats.duplicated += int(dup.sum())
        ins = keep & (rng.random(n) < plan.insert_rate)
        self.stats.inserted += int(ins.sum())
        changed = flip | ~keep | dup | ins
        if changed.any():
            self._touch(original_positions[changed].tolist())
            # the byte after a duplicate or an insert is hit too
            self._touch((original_positions[dup | ins] + 1).tolist())
        out_data = np.repeat(data, copies)
        out_pos = np.repeat(positions, copies)
        if ins.any():
            # insert a random byte after each chosen byte (after its duplicate, if any)
            ends = np.cumsum(copies)[ins]
            out_data = np.insert(out_data, ends, rng.integers(0, 256, ends.size, dtype=np.uint8))
            out_pos = np.insert(out_pos, ends, -1)
        return out_data.tobytes(), out_pos


def frame_spans(clean: bytes) -> list[tuple[int, int]]:
    """Spans of the frames in a clean COBS stream, ``[(start, end)]`` with ``end`` the delimiter.

    ``start`` is the first byte of the encoded frame; the previous delimiter is at ``start - 1``
    (or the frame is the first in the stream).
    """
    buf = np.frombuffer(clean, np.uint8)
    delimiters = np.flatnonzero(buf == 0)
    spans, start = [], 0
    for end in delimiters.tolist():
        if end > start:
            spans.append((start, end))
        start = end + 1
    return spans


def intact_frame_spans(clean: bytes, delivered_positions: np.ndarray) -> list[tuple[int, int]]:
    """The frames of the clean stream that reached the host byte for byte.

    A frame is intact when its preceding delimiter (unless it is the stream's first frame), its
    bytes and its own delimiter were delivered consecutively and unmodified. Such a frame must be
    decoded by any correct host.

    Parameters
    ----------
    clean : bytes
        The clean stream (``FaultyLink.clean_bytes``).
    delivered_positions : ndarray of int64, shape (n,)
        ``FaultyLink.delivered_positions()``.

    Returns
    -------
    list of (int, int)
        Spans as in :func:`frame_spans`.
    """
    pos = np.asarray(delivered_positions, np.int64)
    if pos.size == 0:
        return []
    # run_end[i]: the clean position at which the consecutive run through delivered byte i ends
    step_ok = np.r_[pos[1:] == pos[:-1] + 1, False] & (pos >= 0)
    run_id = np.cumsum(np.r_[True, ~step_ok[:-1]])
    last_index_of_run = np.searchsorted(run_id, run_id, side="right") - 1
    run_end = pos[last_index_of_run]
    first_delivery = np.full(len(clean) + 1, -1, np.int64)
    real = np.flatnonzero(pos >= 0)
    # first delivery of each clean position (later duplicates do not count)
    order = real[np.unique(pos[real], return_index=True)[1]]
    first_delivery[pos[order]] = order
    intact = []
    for start, end in frame_spans(clean):
        anchor = start - 1 if start > 0 else start
        i = first_delivery[anchor]
        if i >= 0 and run_end[i] >= end:
            intact.append((start, end))
    return intact
