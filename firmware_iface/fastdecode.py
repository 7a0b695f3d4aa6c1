"""Vectorised decoding of whole captures: bytes in, per-stream NumPy sample arrays out.

:func:`decode_samples` COBS-decodes and CRC-checks every frame of a buffer in one compiled pass,
then gathers each stream's samples into one ``(n_samples, n_channels)`` int32 array with its
unwrapped sample numbers. It is the fast path for replaying captures and for throughput; the
streaming :class:`~firmware_iface.codec.StreamDecoder` is the reference it is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_iface._jit import njit
from firmware_iface.codec import HEADER_SIZE, MAX_ENCODED, MAX_FRAME, MIN_FRAME, PROTOCOL_MAJOR
from firmware_iface.messages import SAMPLES_HEAD, MsgType


def _crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint16)
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table[i] = crc & 0xFFFF
    return table


CRC_TABLE = _crc_table()


@njit
def _decode_frames(buf, table, out, starts, lengths, errors):
    """COBS-decode and CRC-check every delimited frame of ``buf``.

    Writes frames (without CRC) to ``out``; ``starts``/``lengths`` receive their positions.
    ``errors`` gets [cobs/oversize, length, crc]. Returns (n_frames, bytes consumed).
    """
    n = buf.shape[0]
    n_frames = 0
    pos_out = 0
    seg_start = 0
    consumed = 0
    i = 0
    while i < n:
        if buf[i] != 0:
            i += 1
            continue
        # segment buf[seg_start:i]
        seg_len = i - seg_start
        consumed = i + 1
        if seg_len == 0:
            seg_start = i + 1
            i += 1
            continue
        if seg_len > MAX_ENCODED:
            errors[0] += 1
            seg_start = i + 1
            i += 1
            continue
        j = seg_start
        w = pos_out
        ok = True
        crc = 0xFFFF
        crc1 = crc  # the CRC state one and two bytes ago: the last two bytes are the CRC itself
        crc2 = crc
        while j < i:
            code = int(buf[j])
            end = j + code
            if end > i:
                ok = False
                break
            for k in range(j + 1, end):
                b = int(buf[k])
                out[w] = b
                w += 1
                crc2 = crc1
                crc1 = crc
                crc = ((crc << 8) & 0xFFFF) ^ int(table[((crc >> 8) ^ b) & 0xFF])
            j = end
            if code < 255 and j < i:
                out[w] = 0
                w += 1
                crc2 = crc1
                crc1 = crc
                crc = ((crc << 8) & 0xFFFF) ^ int(table[(crc >> 8) & 0xFF])
        crc = crc2
        length = w - pos_out
        if not ok:
            errors[0] += 1
        elif length < MIN_FRAME or length > MAX_FRAME:
            errors[1] += 1
        elif crc != (int(out[w - 2]) | (int(out[w - 1]) << 8)):
            errors[2] += 1
        else:
            starts[n_frames] = pos_out
            lengths[n_frames] = length - 2
            n_frames += 1
            pos_out = w - 2
        seg_start = i + 1
        i += 1
    return n_frames, consumed


@njit
def _gather_samples(out, starts, n_samples, n_channels, bps, sample_offsets, counts):
    """Copy frame sample data (little-endian signed 2/3/4-byte) into ``counts``."""
    for f in range(starts.shape[0]):
        p = starts[f] + 16  # header (8) + samples head (8)
        row0 = sample_offsets[f]
        for s in range(n_samples[f]):
            for c in range(n_channels):
                if bps == 2:
                    v = np.int32(out[p]) | (np.int32(out[p + 1]) << 8)
                    if v >= 0x8000:
                        v -= 0x10000
                elif bps == 3:
                    v = (
                        np.int32(out[p])
                        | (np.int32(out[p + 1]) << 8)
                        | (np.int32(out[p + 2]) << 16)
                    )
                    if v >= 0x800000:
                        v -= 0x1000000
                else:
                    u = (
                        np.int64(out[p])
                        | (np.int64(out[p + 1]) << 8)
                        | (np.int64(out[p + 2]) << 16)
                        | (np.int64(out[p + 3]) << 24)
                    )
                    if u >= 0x80000000:
                        u -= 0x100000000
                    v = np.int32(u)
                counts[row0 + s, c] = v
                p += bps


@dataclass
class SampleArrays:
    """One stream of a decoded capture.

    Attributes
    ----------
    counts : numpy.ndarray
        int32 ``(n_samples, n_channels)``, in arrival order.
    index : numpy.ndarray
        int64 ``(n_samples,)`` unwrapped device sample numbers of ``counts`` rows.
    frame_index : numpy.ndarray
        int64 first sample number of each frame (unwrapped).
    frame_time_us : numpy.ndarray
        int64 device time of each frame's first sample (unwrapped microseconds).
    """

    counts: np.ndarray
    index: np.ndarray
    frame_index: np.ndarray
    frame_time_us: np.ndarray

    @property
    def missing(self) -> int:
        """Samples absent between the first and the last received (exact gap count)."""
        if self.index.size == 0:
            return 0
        return int(self.index[-1] - self.index[0] + 1 - np.unique(self.index).size)


@dataclass
class CaptureDecode:
    """Result of :func:`decode_samples`: per-stream arrays plus frame/error counts."""

    streams: dict[int, SampleArrays]
    n_frames: int
    cobs_errors: int
    length_errors: int
    crc_errors: int
    other_frames: int
    consumed: int


def _unwrap32(raw: np.ndarray) -> np.ndarray:
    raw = raw.astype(np.int64)
    if raw.size == 0:
        return raw
    step = np.diff(raw) % (1 << 32)
    step[step >= (1 << 31)] -= 1 << 32
    return np.concatenate(([raw[0]], raw[0] + np.cumsum(step)))


def _u32(out: np.ndarray, pos: np.ndarray) -> np.ndarray:
    b = out[pos[:, None] + np.arange(4)].astype(np.int64)
    return b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)


def decode_samples(data: bytes | bytearray | memoryview | np.ndarray) -> CaptureDecode:
    """Decode every SAMPLES frame in ``data`` into per-stream arrays.

    Parameters
    ----------
    data : bytes-like or uint8 array
        Raw wire bytes (any number of frames; a trailing partial frame is ignored and
        reported through ``consumed``).

    Returns
    -------
    CaptureDecode
        ``streams[stream_id]`` is a :class:`SampleArrays`. Corrupt frames are counted, never
        raised; frames of another major version or other types are counted in ``other_frames``.
    """
    buf = np.frombuffer(bytes(data), dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    buf = np.ascontiguousarray(buf, dtype=np.uint8)
    out = np.empty(buf.shape[0] + 16, dtype=np.uint8)
    max_frames = buf.shape[0] // (MIN_FRAME + 1) + 1
    starts = np.empty(max_frames, dtype=np.int64)
    lengths = np.empty(max_frames, dtype=np.int64)
    errors = np.zeros(3, dtype=np.int64)
    n, consumed = _decode_frames(buf, CRC_TABLE, out, starts, lengths, errors)
    starts, lengths = starts[:n], lengths[:n]
    version = out[starts]
    types = out[starts + 1]
    is_samples = (
        ((version >> 4) == PROTOCOL_MAJOR)
        & (types == MsgType.SAMPLES)
        & (lengths >= HEADER_SIZE + SAMPLES_HEAD.size)
    )
    s_starts = starts[is_samples]
    s_lengths = lengths[is_samples]
    stream = out[s_starts + 8]
    nch = out[s_starts + 9].astype(np.int64)
    bps = out[s_starts + 10].astype(np.int64)
    nsamp = out[s_starts + 11].astype(np.int64)
    valid = (
        (nch > 0) & (nsamp > 0) & ((bps == 2) | (bps == 3) | (bps == 4))
        & (s_lengths >= 16 + nsamp * nch * bps)
    )  # fmt: skip
    other = int(n - valid.sum())
    streams: dict[int, SampleArrays] = {}
    for sid in np.unique(stream[valid]):
        sel = valid & (stream == sid)
        # one stream has one layout; frames of another layout (reconfiguration) are counted
        layouts, counts_per = np.unique(
            np.stack([nch[sel], bps[sel]], axis=1), axis=0, return_counts=True
        )
        ch, bp = layouts[np.argmax(counts_per)]
        keep = sel & (nch == ch) & (bps == bp)
        other += int(sel.sum() - keep.sum())
        f_starts = s_starts[keep]
        f_n = nsamp[keep]
        offsets = np.concatenate(([0], np.cumsum(f_n)[:-1])).astype(np.int64)
        total = int(f_n.sum())
        counts = np.empty((total, int(ch)), dtype=np.int32)
        _gather_samples(out, f_starts, f_n, int(ch), int(bp), offsets, counts)
        first = _unwrap32(_u32(out, f_starts + 12))
        time_us = _unwrap32(_u32(out, f_starts + 4))
        index = np.repeat(first - offsets, f_n) + np.arange(total, dtype=np.int64)
        streams[int(sid)] = SampleArrays(counts, index, first, time_us)
    return CaptureDecode(
        streams, int(n), int(errors[0]), int(errors[1]), int(errors[2]), other, int(consumed)
    )
