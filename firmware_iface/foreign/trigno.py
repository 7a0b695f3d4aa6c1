"""Delsys Trigno Control Utility (TCU) TCP SDK: ports, commands, replies, float32 frames.

Written from the public document (no vendor code was copied): Delsys Inc., *Trigno Wireless
System SDK User's Guide* (MAN-025, "Trigno SDK User Guide"; sections "Data Ports", "Packet
Structure", "Command Port"), distributed with the Trigno Control Utility and at
https://delsys.com/support/ (SDK downloads). Summary:

- The TCU is a TCP server. Command port 50040: ASCII commands, each ended by ``\\r\\n\\r\\n``;
  every reply (and the greeting sent on connect, ``Delsys Trigno System Digital Protocol
  Version ...``) ends with ``\\r\\n\\r\\n``. Replies: ``OK``, ``INVALID COMMAND``, or the value
  asked for.
- Data ports: EMG 50043 (16 sensors x 1 float32 per sample), auxiliary 50044 (16 sensors x 9
  float32: accelerometer, gyroscope, magnetometer, or an adapter's channels). With
  ``BACKWARDS COMPATIBILITY ON`` the legacy ports stream instead: EMG 50041 (16 floats), ACC
  50042 (16 x 3 floats). Values are volts (EMG) or the auxiliary sensor's unit; little-endian
  unless ``ENDIAN BIG``. A port always carries all 16 slots; unpaired slots are 0.
- The stream has **no sample counter and no timestamps**: the host knows only the order of the
  samples and when the bytes arrived.
- Commands used by tonuslab: ``SENSOR n PAIRED?``, ``SENSOR n TYPE?``, ``SENSOR n MODE?``,
  ``SENSOR n SERIAL?``, ``BACKWARDS COMPATIBILITY ON|OFF|?``, ``UPSAMPLE ON|OFF``,
  ``UPSAMPLING?``, ``RATE?`` (EMG samples per second as streamed), ``FRAME INTERVAL?``
  (seconds per TCU frame, 0.0135), ``MAX SAMPLES EMG?`` / ``MAX SAMPLES AUX?`` (samples per
  frame per sensor), ``ENDIANNESS?``, ``START``, ``STOP``, ``VERSION?``.
- Rates as streamed: EMG 1111.1, 2000 (backwards compatibility) or 2148.1 Hz depending on the
  mode; auxiliary data 2 samples per 13.5 ms frame, about 148.1 Hz. They are stored as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TERMINATOR = b"\r\n\r\n"
COMMAND_PORT = 50040
#: data ports relative to the command port (the TCU defaults 50041..50044)
PORT_OFFSETS = {"emg_legacy": 1, "aux_legacy": 2, "emg": 3, "aux": 4}
N_SENSORS = 16
AUX_PER_SENSOR = 9
AUX_PER_SENSOR_LEGACY = 3
GREETING_PREFIX = "Delsys Trigno System Digital Protocol"
#: sensor type codes (``SENSOR n TYPE?``) that tonuslab knows; anything else is reported as is
SENSOR_KINDS = {
    "A": "emg",  # Trigno standard EMG sensor
    "D": "emg",  # Trigno IM / Avanti EMG + IMU
    "L": "emg",  # Trigno Mini
    "O": "emg",  # Avanti
    "G": "goniometer",  # goniometer adapter (analog input on the auxiliary channels)
}


def encode_command(text: str) -> bytes:
    """The bytes of one command (``text`` without terminator)."""
    if "\r" in text or "\n" in text:
        raise ValueError("a Trigno command is one line")
    return text.encode("ascii") + TERMINATOR


class ReplySplitter:
    """Split the command port's byte stream into replies at ``\\r\\n\\r\\n``, across reads."""

    def __init__(self, max_bytes: int = 1 << 16) -> None:
        self._buf = bytearray()
        self.max_bytes = max_bytes
        self.overflows = 0

    def feed(self, data: bytes) -> list[str]:
        self._buf += data
        out = []
        while True:
            i = self._buf.find(TERMINATOR)
            if i < 0:
                break
            out.append(self._buf[:i].decode("ascii", "replace").strip())
            del self._buf[: i + len(TERMINATOR)]
        if len(self._buf) > self.max_bytes:  # no terminator for a long time: not a TCU
            self.overflows += 1
            self._buf.clear()
        return out


def split_commands(buf: bytearray) -> list[str]:
    """Complete commands at the front of ``buf`` (removed from it); for the emulator."""
    out = []
    while True:
        i = buf.find(TERMINATOR)
        if i < 0:
            return out
        out.append(buf[:i].decode("ascii", "replace").strip())
        del buf[: i + len(TERMINATOR)]


@dataclass
class FloatStreamStats:
    """Bytes and samples seen by a :class:`FloatFrameDecoder`; ``invalid_samples`` counts
    samples holding a non-finite value or one beyond ``limit`` (a corrupt frame)."""

    bytes: int = 0
    samples: int = 0
    invalid_samples: int = 0


class FloatFrameDecoder:
    """Samples of ``n_values`` float32 each from a TCP byte stream, on exact boundaries.

    Parameters
    ----------
    n_values : int
        Floats per sample (16 on the EMG port, 144 or 48 on the auxiliary port).
    big_endian : bool
    limit : float
        A sample with a value of larger magnitude (or NaN/inf) is counted as invalid; its row
        comes back in ``invalid`` so the caller can store it as a gap. Never raises.
    """

    def __init__(self, n_values: int, *, big_endian: bool = False, limit: float = 1e3) -> None:
        self.n_values = int(n_values)
        self.width = 4 * self.n_values
        self.dtype = np.dtype(">f4" if big_endian else "<f4")
        self.limit = float(limit)
        self.stats = FloatStreamStats()
        self._buf = bytearray()

    def feed(self, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        """``(values, invalid)``: float32 ``(n, n_values)`` of the complete samples received so
        far, and a bool ``(n,)`` marking the corrupt ones. A partial sample waits for the rest."""
        self._buf += data
        self.stats.bytes += len(data)
        m = len(self._buf) // self.width
        if m == 0:
            return np.empty((0, self.n_values), np.float32), np.zeros(0, bool)
        raw = bytes(self._buf[: m * self.width])
        del self._buf[: m * self.width]
        values = np.frombuffer(raw, dtype=self.dtype).reshape(m, self.n_values)
        with np.errstate(invalid="ignore"):
            invalid = ~(np.abs(values) <= self.limit).all(axis=1)
        self.stats.samples += m
        self.stats.invalid_samples += int(invalid.sum())
        return values.astype(np.float32, copy=False), invalid

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)
