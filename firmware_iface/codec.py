"""Framing of protocol v1: COBS with a 0x00 delimiter, an 8-byte header and a CRC-16 trailer.

A frame on the wire is ``COBS(header + payload + crc16_le) + b"\\x00"``:

====== ====== =============================================================
offset size   field (little-endian)
====== ====== =============================================================
0      1      version: ``major << 4 | minor`` (protocol 1.0 is ``0x10``)
1      1      message type (:class:`firmware_iface.messages.MsgType`)
2      2      sequence number, per direction, +1 per frame, wraps at 65536
4      4      device time in microseconds (wraps every 71.6 minutes)
8      n      payload
8+n    2      CRC-16/CCITT-FALSE of bytes 0 .. 8+n-1
====== ====== =============================================================

:class:`StreamDecoder` turns arbitrary bytes into :class:`Frame` objects: it never raises on input,
counts what it drops, and holds at most one maximum-size frame in memory. See ``PROTOCOL.md``.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass, field

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0
VERSION_BYTE = (PROTOCOL_MAJOR << 4) | PROTOCOL_MINOR

HEADER = struct.Struct("<BBHI")
HEADER_SIZE = HEADER.size  # 8
CRC_SIZE = 2
#: Largest decoded frame (header + payload + CRC) a v1 peer sends or accepts.
MAX_FRAME = 1024
MAX_PAYLOAD = MAX_FRAME - HEADER_SIZE - CRC_SIZE
#: Largest COBS-encoded frame, without its delimiter.
MAX_ENCODED = MAX_FRAME + (MAX_FRAME + 253) // 254 + 1
MIN_FRAME = HEADER_SIZE + CRC_SIZE


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor).

    ``crc16(b"123456789") == 0x29B1``.
    """
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes | bytearray) -> bytes:
    """Consistent Overhead Byte Stuffing: the result contains no 0x00 byte.

    Canonical form: a 254-byte run of non-zero bytes at the very end is not followed by an
    empty block.
    """
    out = bytearray()
    parts = bytes(data).split(b"\x00")
    last = len(parts) - 1
    for k, part in enumerate(parts):
        full_blocks = 0
        while len(part) >= 254:
            out.append(0xFF)
            out += part[:254]
            part = part[254:]
            full_blocks += 1
        if k == last and full_blocks and not part:
            break
        out.append(len(part) + 1)
        out += part
    return bytes(out)


class CobsError(ValueError):
    """Not a valid COBS encoding (internal to the decoder; counted, never raised to users)."""


def cobs_decode(encoded: bytes | bytearray) -> bytes:
    """Invert :func:`cobs_encode`; raises :class:`CobsError` on a malformed encoding.

    Each code byte ``c`` is followed by ``c - 1`` data bytes; the next code byte stands where the
    encoder removed a zero (unless ``c`` was 0xFF, a full block with no zero after it). So the
    decoder copies the frame, writes 0 over every code byte but the first, drops those after a
    0xFF block and the first: one Python step per block, no per-byte work.
    """
    n = len(encoded)
    if n == 0:
        return b""
    if 0 in encoded:
        raise CobsError("zero byte inside a COBS frame")
    out = bytearray(encoded)
    after_full_block = []  # code bytes that follow a 0xFF block: they stand for no zero
    i = 0
    while True:
        code = encoded[i]
        j = i + code
        if j > n:
            raise CobsError("COBS block runs past the end of the frame")
        if j == n:
            break
        if code < 0xFF:
            out[j] = 0
        else:
            after_full_block.append(j)
        i = j
    for position in reversed(after_full_block):
        del out[position]
    del out[0]
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame.

    Attributes
    ----------
    msg_type : int
        Message type byte.
    seq : int
        Sequence number (0..65535).
    time_us : int
        Device time in microseconds, as sent (32-bit, wraps); see :class:`Unwrapper`.
    payload : bytes
        Message payload.
    version : int
        Version byte, ``major << 4 | minor``.
    """

    msg_type: int
    seq: int
    time_us: int
    payload: bytes
    version: int = VERSION_BYTE

    @property
    def major(self) -> int:
        return self.version >> 4

    @property
    def minor(self) -> int:
        return self.version & 0x0F


def frame_bytes(
    msg_type: int, seq: int, time_us: int, payload: bytes = b"", version: int = VERSION_BYTE
) -> bytes:
    """Header + payload + CRC, before COBS (the bytes the CRC and the test vectors talk about)."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the maximum {MAX_PAYLOAD}")
    body = HEADER.pack(version, msg_type, seq & 0xFFFF, time_us & 0xFFFFFFFF) + payload
    return body + struct.pack("<H", crc16(body))


def encode_frame(
    msg_type: int, seq: int, time_us: int, payload: bytes = b"", version: int = VERSION_BYTE
) -> bytes:
    """The wire bytes of one frame: ``COBS(frame_bytes(...)) + b"\\x00"``."""
    return cobs_encode(frame_bytes(msg_type, seq, time_us, payload, version)) + b"\x00"


def parse_frame_bytes(raw: bytes) -> Frame | None:
    """Check length and CRC of a de-stuffed frame; None when either is wrong."""
    if len(raw) < MIN_FRAME or len(raw) > MAX_FRAME:
        return None
    body = raw[:-2]
    if crc16(body) != (raw[-2] | (raw[-1] << 8)):
        return None
    version, msg_type, seq, time_us = HEADER.unpack_from(body)
    return Frame(msg_type, seq, time_us, bytes(body[HEADER_SIZE:]), version)


@dataclass
class DecoderStats:
    """What a :class:`StreamDecoder` has seen. ``errors`` is the sum of the error counters."""

    frames: int = 0
    bytes_in: int = 0
    crc_errors: int = 0
    cobs_errors: int = 0
    length_errors: int = 0
    oversize: int = 0
    bytes_discarded: int = 0

    @property
    def errors(self) -> int:
        return self.crc_errors + self.cobs_errors + self.length_errors + self.oversize


@dataclass
class StreamDecoder:
    """Arbitrary bytes in, CRC-checked frames out.

    ``feed(data)`` returns the frames completed by ``data``. It never raises on any input, never
    blocks, and buffers at most :data:`MAX_ENCODED` bytes: an over-long run without a delimiter is
    discarded up to the next 0x00 (counted in ``stats.oversize``). Empty frames (consecutive
    delimiters) are idle fill and are not errors.
    """

    stats: DecoderStats = field(default_factory=DecoderStats)
    _buf: bytearray = field(default_factory=bytearray, repr=False)
    _discarding: bool = False

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        data = bytes(data)
        self.stats.bytes_in += len(data)
        frames: list[Frame] = []
        start = 0
        n = len(data)
        while start <= n:
            z = data.find(b"\x00", start)
            if z < 0:
                rest = data[start:]
                if self._discarding:
                    self.stats.bytes_discarded += len(rest)
                elif len(self._buf) + len(rest) > MAX_ENCODED:
                    self.stats.bytes_discarded += len(self._buf) + len(rest)
                    self.stats.oversize += 1
                    self._buf.clear()
                    self._discarding = True
                else:
                    self._buf += rest
                break
            chunk = data[start:z]
            start = z + 1
            if self._discarding:
                self._discarding = False
                self.stats.bytes_discarded += len(chunk) + 1
                continue
            if self._buf:
                if len(self._buf) + len(chunk) > MAX_ENCODED:
                    self.stats.bytes_discarded += len(self._buf) + len(chunk) + 1
                    self.stats.oversize += 1
                    self._buf.clear()
                    continue
                self._buf += chunk
                encoded = bytes(self._buf)
                self._buf.clear()
            else:
                encoded = chunk
            if not encoded:
                continue
            frame = self._decode(encoded)
            if frame is not None:
                frames.append(frame)
        return frames

    def _decode(self, encoded: bytes) -> Frame | None:
        if len(encoded) > MAX_ENCODED:
            self.stats.oversize += 1
            self.stats.bytes_discarded += len(encoded) + 1
            return None
        try:
            raw = cobs_decode(encoded)
        except CobsError:
            self.stats.cobs_errors += 1
            self.stats.bytes_discarded += len(encoded) + 1
            return None
        if len(raw) < MIN_FRAME or len(raw) > MAX_FRAME:
            self.stats.length_errors += 1
            self.stats.bytes_discarded += len(encoded) + 1
            return None
        frame = parse_frame_bytes(raw)
        if frame is None:
            self.stats.crc_errors += 1
            self.stats.bytes_discarded += len(encoded) + 1
            return None
        self.stats.frames += 1
        return frame

    @property
    def buffered(self) -> int:
        """Bytes held waiting for a delimiter (never more than :data:`MAX_ENCODED`)."""
        return len(self._buf)


class Unwrapper:
    """Extend a wrapping counter (32-bit device time, 32-bit sample index) to a Python int.

    Steps are taken modulo ``2**bits`` and interpreted as the shortest signed step, so forward
    wrap-around and small backward steps (reordering) are both handled, as long as consecutive
    values are less than half the range apart (35 minutes for microsecond time, 2.4 days of
    10 kHz samples).
    """

    def __init__(self, bits: int = 32):
        self.modulus = 1 << bits
        self._half = self.modulus >> 1
        self._last: int | None = None
        self._value = 0

    def __call__(self, raw: int) -> int:
        raw = int(raw) % self.modulus
        if self._last is None:
            self._value = raw
        else:
            step = (raw - self._last) % self.modulus
            if step >= self._half:
                step -= self.modulus
            self._value += step
        self._last = raw
        return self._value

    def reset(self) -> None:
        self._last = None
        self._value = 0
