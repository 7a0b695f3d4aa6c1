"""BITalino (r)evolution serial protocol: commands, frame layout, 4-bit CRC, streaming decoder.

Written from the public documents (no vendor code was copied):

- PLUX Wireless Biosignals, *BITalino (r)evolution Lab Guide* and *BITalino Serial Port API*
  ("MCU Block Diagram and Data Packet", https://bitalino.com/en/development/documentation);
  the command and frame bits are summarised below.
- PLUX, *Electromyography (EMG) Sensor Data Sheet* (BITalino EMG, REV B): the transfer function
  ``EMG(V) = (ADC / 2**n - 1/2) * VCC / G_EMG`` with ``VCC = 3.3 V``, ``G_EMG = 1009`` and
  ``n`` the channel resolution in bits (10 for A1-A4, 6 for A5-A6); range +-1.64 mV.
- PLUX support, "What are the sampling resolution options for BITalino devices?" (A1-A4
  10-bit, A5-A6 6-bit, I1/I2 and O1/O2 1-bit).

Commands (one byte; ``<...>`` are bit fields, most significant bit first)::

    sampling rate   <fs:2> 0 0 0 0 1 1      fs: 0 = 1 Hz, 1 = 10 Hz, 2 = 100 Hz, 3 = 1000 Hz
    start (live)    <A6..A1 mask:6> 0 1     channels of the mask stream, lowest first
    start (sim.)    <A6..A1 mask:6> 1 0     the device's simulated signals
    stop            0 0 0 0 0 0 0 0         (in acquisition; 0xFF stops from any mode)
    battery thr.    <thr:6> 0 0             idle only; 0 = 3.4 V ... 63 = 3.8 V
    digital out     1 0 1 1 O2 O1 1 1       (r)evolution: any mode
    state           0 0 0 0 1 0 1 1         idle: 16-byte reply (below)
    version         0 0 0 0 0 1 1 1         reply "BITalino_vX.Y\\n"

Frame (``frame_size(n)`` bytes for ``n`` channels; read from the LAST byte backwards as one
big-endian bit string)::

    <seq:4> <crc:4>  <I1> <I2> <O1> <O2>  <slot1:10> <slot2:10> <slot3:10> <slot4:10>
    <slot5:6> <slot6:6>  [zero padding up to the first byte]

Slot ``k`` carries the ``k``-th channel of the start mask (lowest channel first); slots 1-4 are
10-bit, 5-6 are 6-bit. ``seq`` counts frames modulo 16. The CRC is the 4-bit CRC with
polynomial x^4 + x + 1 over every bit of the frame, most significant first, with the CRC nibble
itself taken as zero. The state reply is A1..A6 and the battery as 16-bit little-endian words,
the battery threshold byte, then ``<I1 I2 O1 O2> <crc:4>`` with the same CRC over all 16 bytes.

Gaps: the 4-bit sequence is exact for up to 15 consecutive lost frames; longer losses are
resolved with the host clock (``resolve_gap``). Misaligned bytes (a dropped byte on a serial
link) are found by the CRC and the decoder re-synchronises on the next run of valid frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RATES_HZ = (1, 10, 100, 1000)
N_ANALOG = 6
#: bits of each slot (slot 1 first)
SLOT_BITS = (10, 10, 10, 10, 6, 6)
VCC_V = 3.3
EMG_GAIN = 1009.0
CMD_VERSION = 0x07
CMD_STATE = 0x0B
CMD_STOP = 0x00
CMD_STOP_ANY = 0xFF
STATE_REPLY_BYTES = 16


class BitalinoCommandError(ValueError):
    """A command cannot be encoded (rate, mask or threshold out of range)."""


def cmd_sampling_rate(rate_hz: int) -> int:
    """Command byte setting the sampling rate (1, 10, 100 or 1000 Hz)."""
    if int(rate_hz) not in RATES_HZ or float(rate_hz) != int(rate_hz):
        raise BitalinoCommandError(
            f"BITalino sampling rate must be one of {', '.join(map(str, RATES_HZ))} Hz, "
            f"got {rate_hz}"
        )
    return (RATES_HZ.index(int(rate_hz)) << 6) | 0x03


def channel_mask(channels) -> int:
    """6-bit mask of analog channel numbers 0..5 (A1..A6)."""
    mask = 0
    chans = list(channels)
    if not chans:
        raise BitalinoCommandError("BITalino needs at least one analog channel (A1..A6)")
    for c in chans:
        if int(c) != c or not 0 <= int(c) < N_ANALOG:
            raise BitalinoCommandError(f"BITalino analog channel must be 0..5 (A1..A6), got {c}")
        mask |= 1 << int(c)
    return mask


def cmd_start(channels, *, simulated: bool = False) -> int:
    """Command byte starting acquisition of ``channels`` (0..5), live or simulated."""
    return (channel_mask(channels) << 2) | (0x02 if simulated else 0x01)


def cmd_battery_threshold(value: int) -> int:
    """Command byte setting the battery threshold (0 = 3.4 V ... 63 = 3.8 V), idle only."""
    if int(value) != value or not 0 <= int(value) <= 63:
        raise BitalinoCommandError(f"BITalino battery threshold must be 0..63, got {value}")
    return int(value) << 2


def cmd_digital_out(o1: int, o2: int = 0) -> int:
    """Command byte setting the digital outputs O1 and O2 ((r)evolution layout)."""
    return 0xB3 | ((1 if o1 else 0) << 2) | ((1 if o2 else 0) << 3)


def decode_command(byte: int) -> tuple[str, object]:
    """What a command byte means: ``(name, argument)`` (used by the emulator).

    Names: ``"rate"`` (Hz), ``"start"`` ((channels tuple, simulated)), ``"stop"``,
    ``"stop_any"``, ``"battery"`` (threshold), ``"digital"`` ((o1, o2)), ``"state"``,
    ``"version"``, ``"pwm"``, ``"unknown"``. ``0x00`` is reported as ``"stop"``; in idle it
    also means battery threshold 0.
    """
    b = int(byte) & 0xFF
    if b == CMD_STOP:
        return "stop", None
    if b == CMD_STOP_ANY:
        return "stop_any", None
    if b == CMD_VERSION:
        return "version", None
    if b == CMD_STATE:
        return "state", None
    if b & 0xF3 == 0xB3:
        return "digital", ((b >> 2) & 1, (b >> 3) & 1)
    if b == 0xA3:
        return "pwm", None
    low = b & 0x03
    if low == 0x03 and b & 0x3C == 0:
        return "rate", RATES_HZ[b >> 6]
    if low in (0x01, 0x02):
        mask = b >> 2
        chans = tuple(i for i in range(N_ANALOG) if mask >> i & 1)
        return "start", (chans, low == 0x02)
    if low == 0x00:
        return "battery", b >> 2
    return "unknown", b


def frame_size(n_channels: int) -> int:
    """Bytes per frame for ``n_channels`` analog channels (1..6)."""
    n = int(n_channels)
    if not 1 <= n <= N_ANALOG:
        raise BitalinoCommandError(f"BITalino frames carry 1..6 analog channels, got {n}")
    return -(-(12 + sum(SLOT_BITS[:n])) // 8)


def _crc_table() -> np.ndarray:
    """``T[state, byte]``: the 4-bit CRC register after shifting in ``byte`` (MSB first)."""
    table = np.zeros((16, 256), dtype=np.uint8)
    for state in range(16):
        for byte in range(256):
            s = state
            for bit in range(7, -1, -1):
                top = s & 0x8
                s = ((s << 1) & 0xF) ^ ((byte >> bit) & 1)
                if top:
                    s ^= 0x3
            table[state, byte] = s
    return table


CRC_TABLE = _crc_table()


def crc4(data: bytes) -> int:
    """CRC-4 (x^4 + x + 1, MSB first, register from 0) of ``data`` with the last low nibble
    zeroed: the value a frame or state reply carries in its last four bits."""
    buf = bytearray(data)
    buf[-1] &= 0xF0
    s = 0
    for b in buf:
        s = int(CRC_TABLE[s, b])
    return s


def crc4_rows(frames: np.ndarray) -> np.ndarray:
    """CRC of each row of ``frames`` (uint8, (n, frame_bytes)); the last nibble is ignored."""
    n, width = frames.shape
    s = np.zeros(n, dtype=np.uint8)
    for j in range(width - 1):
        s = CRC_TABLE[s, frames[:, j]]
    return CRC_TABLE[s, frames[:, width - 1] & 0xF0]


def encode_frames(seq: np.ndarray, digital: np.ndarray, analog: np.ndarray) -> bytes:
    """Frames for ``n`` samples.

    Parameters
    ----------
    seq : numpy.ndarray, shape (n,)
        Sequence numbers (taken modulo 16).
    digital : numpy.ndarray, shape (n, 4)
        I1, I2, O1, O2 (0/1).
    analog : numpy.ndarray, shape (n, n_channels)
        Slot values (10-bit for slots 1-4, 6-bit for 5-6; clipped).

    Returns
    -------
    bytes
        ``n * frame_size(n_channels)`` bytes.
    """
    analog = np.asarray(analog, dtype=np.int64)
    n, nch = analog.shape
    width = frame_size(nch)
    # the frame as an integer whose most significant bits are the last byte's
    value = (np.asarray(seq, dtype=np.int64) & 0xF) << 4  # crc nibble 0 for now
    dig = np.asarray(digital, dtype=np.int64) & 1
    for k in range(4):
        value = (value << 1) | dig[:, k]
    used = 12
    for k in range(nch):
        bits = SLOT_BITS[k]
        value = (value << bits) | np.clip(analog[:, k], 0, (1 << bits) - 1)
        used += bits
    value = value << (8 * width - used)  # padding lands in the first bytes
    # byte j from the end = bits [8*(width-1-j) ...]: the integer's big-endian bytes, reversed
    out = np.empty((n, width), dtype=np.uint8)
    for j in range(width):
        out[:, width - 1 - j] = (value >> (8 * (width - 1 - j))) & 0xFF
    out[:, width - 1] |= crc4_rows(out)
    return out.tobytes()


def decode_rows(frames: np.ndarray, n_channels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fields of aligned, CRC-checked frames.

    Parameters
    ----------
    frames : numpy.ndarray, uint8, shape (n, frame_size(n_channels))

    Returns
    -------
    seq : numpy.ndarray, int64 (n,)
    digital : numpy.ndarray, int8 (n, 4)
        I1, I2, O1, O2.
    analog : numpy.ndarray, int32 (n, n_channels)
    """
    n, width = frames.shape
    value = np.zeros(n, dtype=np.uint64)
    for j in range(width):  # last byte most significant
        value = (value << np.uint64(8)) | frames[:, width - 1 - j].astype(np.uint64)
    pos = 8 * width
    seq = ((value >> np.uint64(pos - 4)) & np.uint64(0xF)).astype(np.int64)
    pos -= 8
    digital = np.empty((n, 4), dtype=np.int8)
    for k in range(4):
        pos -= 1
        digital[:, k] = (value >> np.uint64(pos)) & np.uint64(1)
    analog = np.empty((n, n_channels), dtype=np.int32)
    for k in range(n_channels):
        bits = SLOT_BITS[k]
        pos -= bits
        analog[:, k] = (value >> np.uint64(pos)) & np.uint64((1 << bits) - 1)
    return seq, digital, analog


def encode_state(analog6, battery: int, threshold: int, digital4) -> bytes:
    """The 16-byte reply to the state command."""
    words = [*list(int(v) & 1023 for v in analog6), int(battery) & 1023]
    buf = bytearray()
    for w in words:
        buf += bytes((w & 0xFF, w >> 8))
    buf.append(int(threshold) & 0x3F)
    d = digital4
    buf.append((d[0] & 1) << 7 | (d[1] & 1) << 6 | (d[2] & 1) << 5 | (d[3] & 1) << 4)
    buf[-1] |= crc4(bytes(buf))
    return bytes(buf)


def decode_state(data: bytes) -> dict | None:
    """The state reply as a dict (None when the CRC fails)."""
    if len(data) != STATE_REPLY_BYTES or crc4(data) != data[-1] & 0x0F:
        return None
    words = [data[2 * i] | data[2 * i + 1] << 8 for i in range(7)]
    last = data[-1]
    return {
        "analog": words[:6],
        "battery": words[6],
        "battery_threshold": data[14],
        "digital": [last >> 7 & 1, last >> 6 & 1, last >> 5 & 1, last >> 4 & 1],
    }


def emg_uv_scale(bits: int = 10) -> tuple[float, float]:
    """``(scale_uv_per_count, offset_counts)`` of the EMG transfer function for ``bits``."""
    full = float(1 << int(bits))
    return VCC_V / EMG_GAIN / full * 1e6, full / 2.0


@dataclass
class DecoderStats:
    """What a :class:`FrameDecoder` has seen (counts only; it never raises)."""

    frames: int = 0
    crc_errors: int = 0
    resyncs: int = 0
    bytes_skipped: int = 0
    lost_frames: int = 0
    gaps: list = field(default_factory=list)


@dataclass
class DecodedFrames:
    """Frames decoded from one ``feed``: ``index`` are frame numbers from 0 (unwrapped with the
    sequence), ``digital`` (n, 4) I1 I2 O1 O2, ``analog`` (n, n_channels) int32 codes."""

    index: np.ndarray
    digital: np.ndarray
    analog: np.ndarray

    @property
    def n(self) -> int:
        return int(self.index.shape[0])


class FrameDecoder:
    """Turn a BITalino byte stream into frames on exact boundaries, across partial reads.

    Parameters
    ----------
    n_channels : int
        Analog channels in the start mask (1..6).
    confirm : int
        Consecutive valid frames needed to accept a new alignment after a CRC failure.

    Notes
    -----
    A frame whose CRC fails is counted (``stats.crc_errors``) and skipped. After a failure the
    decoder looks for the byte offset at which ``confirm`` consecutive frames pass the CRC (a
    4-bit CRC passes a random frame one time in 16, so one frame is not proof); the bytes
    before it are counted in ``stats.bytes_skipped``. A frame that passes the CRC but jumps in
    sequence counts as lost frames only when the next ``confirm - 1`` frames pass and follow it
    one by one (a misaligned frame passes a 4-bit CRC by chance); a jump at the end of a read
    waits for the next bytes. Frame numbers are unwrapped from the
    4-bit sequence: a jump of ``d`` (1..15) means ``d - 1`` lost frames; ``expected_lost``
    (from the host clock) picks the multiple of 16 when more may have been lost.
    """

    def __init__(self, n_channels: int, *, confirm: int = 3) -> None:
        self.n_channels = int(n_channels)
        self.width = frame_size(self.n_channels)
        self.confirm = int(confirm)
        self.stats = DecoderStats()
        self._buf = bytearray()
        self._synced = True
        self._skipped_since_loss = 0
        self._next_index = 0
        self._last_seq: int | None = None

    def feed(self, data: bytes, *, expected_lost: float | None = None) -> DecodedFrames:
        """Decode the complete frames in ``data`` plus what was left over; never raises.

        ``expected_lost`` (frames, from the host clock) resolves a sequence jump of more than
        15 frames: the gap is the ``d - 1 + 16 k`` nearest to it.
        """
        self._buf += data
        w = self.width
        outs = []
        while True:
            buf = self._buf
            if not self._synced:
                off = self._find_alignment()
                if off is None:
                    keep = max(0, len(buf) - (self.confirm * w - 1))
                    if keep:
                        self.stats.bytes_skipped += keep
                        self._skipped_since_loss += keep
                        del buf[:keep]
                    break
                if off:
                    self.stats.bytes_skipped += off
                    del buf[:off]
                self._synced = True
                self.stats.resyncs += 1
            m = len(buf) // w
            if m == 0:
                break
            rows = np.frombuffer(bytes(buf[: m * w]), dtype=np.uint8).reshape(m, w)
            ok = crc4_rows(rows) == (rows[:, w - 1] & 0x0F)
            ok, m = self._confirm_jumps(rows, ok, m)
            if m == 0:
                break
            n_ok = m if ok[:m].all() else int(np.argmin(ok[:m]))
            if n_ok:
                outs.append(self._emit(rows[:n_ok], expected_lost))
                expected_lost = None
                del buf[: n_ok * w]
            if n_ok < m:  # the frame at n_ok failed: count it, then find the alignment again
                self.stats.crc_errors += 1
                self._synced = False
                self._skipped_since_loss = 0
                continue
            break
        if not outs:
            return DecodedFrames(
                np.empty(0, np.int64),
                np.empty((0, 4), np.int8),
                np.empty((0, self.n_channels), np.int32),
            )
        if len(outs) == 1:
            return outs[0]
        return DecodedFrames(
            np.concatenate([o.index for o in outs]),
            np.concatenate([o.digital for o in outs]),
            np.concatenate([o.analog for o in outs]),
        )

    def _confirm_jumps(self, rows: np.ndarray, ok: np.ndarray, m: int):
        """A frame that passes the CRC but jumps in sequence is a loss only if the next
        ``confirm - 1`` frames pass and follow it one by one; otherwise it is a misaligned
        frame that passed the 4-bit CRC by chance (one time in 16) and counts as corrupt.
        A jump too close to the end of the buffer waits for more bytes (returns a smaller m).
        """
        seq = (rows[:, -1] >> 4).astype(np.int16)
        steps = np.empty(m, dtype=np.int16)
        steps[0] = 1 if self._last_seq is None else (seq[0] - self._last_seq) % 16
        if m > 1:
            steps[1:] = np.diff(seq) % 16
        need = self.confirm - 1
        for i in np.flatnonzero(ok & (steps != 1)):
            if not ok[i]:
                continue
            if i + need >= m:
                return ok, int(i)  # confirm with the next bytes
            after = slice(i + 1, i + 1 + need)
            if not (ok[after].all() and (steps[after] == 1).all()):
                ok = ok.copy()
                ok[i] = False
                break  # everything after a failure is realigned anyway
        return ok, m

    def _find_alignment(self) -> int | None:
        """Offset where ``confirm`` consecutive frames pass the CRC with consecutive sequence
        numbers, else None.

        The old alignment (an offset that is a whole number of frames: one corrupted frame
        skipped) is preferred when it is back within ``confirm + 1`` frames of the smallest
        such offset; otherwise the smallest offset. Slowly varying signals make a
        misaligned frame pass the 4-bit CRC far more often than one time in 16, so the
        sequence numbers must also follow each other.
        """
        buf, w, k = self._buf, self.width, self.confirm
        if len(buf) < k * w:
            return None
        arr = np.frombuffer(bytes(buf), dtype=np.uint8)
        n_off = len(buf) - k * w + 1
        good = np.ones(n_off, dtype=bool)
        seqs = []
        for j in range(k):
            # frame j of every candidate offset: rows starting at off + j*w
            idx = np.arange(n_off)[:, None] + j * w + np.arange(w)[None, :]
            rows = arr[idx]
            good &= crc4_rows(rows) == (rows[:, w - 1] & 0x0F)
            seqs.append(rows[:, w - 1] >> 4)
        for j in range(1, k):
            good &= (seqs[j].astype(np.int16) - seqs[j - 1]) % 16 == 1
        hits = np.flatnonzero(good)
        if not hits.size:
            return None
        # the old alignment wins if it is back within a few frames of the first hit
        phase = (hits + self._skipped_since_loss) % w
        whole = hits[(phase == 0) & (hits < hits[0] + (k + 1) * w)]
        return int(whole[0]) if whole.size else int(hits[0])

    def _emit(self, rows: np.ndarray, expected_lost: float | None) -> DecodedFrames:
        seq, digital, analog = decode_rows(rows, self.n_channels)
        # frame numbers: each step is ((seq[i] - seq[i-1] - 1) mod 16) + 1
        prev = self._last_seq
        steps = np.empty(seq.shape[0], dtype=np.int64)
        if prev is None:
            steps[0] = 1
        else:
            steps[0] = ((seq[0] - prev - 1) % 16) + 1
        if seq.shape[0] > 1:
            steps[1:] = ((np.diff(seq) - 1) % 16) + 1
        if prev is not None and expected_lost is not None and expected_lost > 15.5:
            lost0 = steps[0] - 1
            k = max(0, round((expected_lost - lost0) / 16.0))
            steps[0] += 16 * k
        index = np.cumsum(steps)
        index += -1 if prev is None else self._next_index - 1  # the first frame ever is 0
        lost = steps - 1
        if lost.any():
            for i in np.flatnonzero(lost):
                start = int(index[i] - lost[i])
                self.stats.gaps.append((start, int(lost[i])))
                self.stats.lost_frames += int(lost[i])
            del self.stats.gaps[:-1000]
        self._last_seq = int(seq[-1])
        self._next_index = int(index[-1]) + 1
        self.stats.frames += int(seq.shape[0])
        return DecodedFrames(index, digital, analog)
