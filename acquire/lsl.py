"""Publish EMG and angle as Lab Streaming Layer outlets, time-stamped by the device clock.

LabRecorder and other lab tools can then take tonuslab's streams. Samples are stamped with their
*device* time mapped to the host clock by the recorder's fitted clock mapping (never by arrival
time), then moved to LSL's clock (``pylsl.local_clock``). pylsl is a dependency of the plain
install (the ``lsl`` extra is kept for old install commands) and is imported only when a
publisher is created. Recording *from* LSL is :mod:`acquire.sources.lsl` (``lsl://``).

LSL's default discovery sends broadcast and multicast off the machine: tests (and anyone who wants
LSL to stay on one computer) point ``LSLAPICFG`` at a file from :func:`write_loopback_config`
before the first LSL call of the process.
"""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Callable, Sequence

import numpy as np

from acquire.errors import AcquisitionError
from firmware_iface.scaling import ChannelScaling


class LslError(AcquisitionError):
    """LSL cannot be used (pylsl missing) or was given inconsistent data."""


_UNITS = {"uV": "microvolts", "deg": "degrees"}

_LOOPBACK_CONFIG = """\
; liblsl configuration: keep discovery and data on this machine (127.0.0.1 only).
[ports]
IPv6 = disable

[multicast]
ResolveScope = machine
MachineAddresses = {{127.0.0.1}}
ListenAddress = 127.0.0.1

[lab]
KnownPeers = {{127.0.0.1}}
SessionID = {session_id}

[log]
; only fatal errors: tonuslab reports a lost stream in its own one line
level = -3
"""


def write_loopback_config(path: str | os.PathLike, session_id: str = "tonuslab") -> pathlib.Path:
    """Write a liblsl config that keeps LSL on the loopback interface; returns its path.

    Set ``os.environ["LSLAPICFG"]`` to it before the process's first LSL call. A distinct
    ``session_id`` also hides streams of other LSL sessions on the same machine.
    """
    path = pathlib.Path(path)
    path.write_text(_LOOPBACK_CONFIG.format(session_id=session_id))
    return path


def _import_pylsl():
    try:
        import pylsl
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise LslError(
            "LSL output needs pylsl, which is not installed: pip install 'tonuslab[lsl]'"
        ) from exc
    return pylsl


class LslPublisher:
    """Two LSL outlets, ``<name>-EMG`` (type ``EMG``) and ``<name>-Angle`` (type ``Angle``).

    Parameters
    ----------
    channel_table : sequence of dict
        One dict per channel, EMG first then angle, as in the signal-source contract:
        ``name``, ``kind`` (``"emg"`` or ``"angle"``), ``unit`` (``"uV"`` or ``"deg"``),
        ``scale``, ``offset`` (physical = (counts - offset) * scale) and optional
        ``highpass_hz``/``lowpass_hz``.
    emg_rate_hz, angle_rate_hz : float
        Nominal sampling rates of the two streams.
    name : str
        Stream name prefix; ``source_id`` defaults to ``"tonuslab:" + name`` so LSL clients can
        recover the stream after a restart.
    device_to_host : callable, optional
        Maps device time (s) to host time (s, on ``host_clock``); the recorder passes its fitted
        clock mapping and may replace it later with :meth:`set_clock_mapping`. Without one, the
        first push anchors device time to the current time (an offset only, no drift).
    host_clock : callable
        The host clock ``device_to_host`` maps to (default ``time.monotonic``).
    source_id : str, optional
        LSL source identifier.

    Notes
    -----
    Samples are sent as float32 physical values (microvolts, degrees): integer blocks are
    converted with each channel's scale and offset, float blocks are taken as physical already.
    Each stream's description lists the channels (label, unit, type, filter corners) and the
    acquisition (``manufacturer`` = tonuslab).
    """

    def __init__(
        self,
        channel_table: Sequence[dict],
        emg_rate_hz: float,
        angle_rate_hz: float,
        name: str = "tonuslab",
        *,
        device_to_host: Callable[[float], float] | None = None,
        host_clock: Callable[[], float] = time.monotonic,
        source_id: str | None = None,
    ) -> None:
        pylsl = _import_pylsl()
        self._pylsl = pylsl
        table = [dict(c) for c in channel_table]
        self.emg_channels = [c for c in table if c.get("kind") == "emg"]
        self.angle_channels = [c for c in table if c.get("kind") == "angle"]
        if not self.emg_channels and not self.angle_channels:
            raise LslError("the channel table has no 'emg' or 'angle' channel to publish")
        for rate, label in ((emg_rate_hz, "emg_rate_hz"), (angle_rate_hz, "angle_rate_hz")):
            if not rate > 0:
                raise LslError(f"{label} must be positive, got {rate}")
        self.emg_rate_hz = float(emg_rate_hz)
        self.angle_rate_hz = float(angle_rate_hz)
        self.name = name
        self._device_to_host = device_to_host
        self._host_clock = host_clock
        self._anchor: float | None = None
        self._lsl_minus_host = self._measure_clock_offset()
        source = source_id or f"tonuslab:{name}"
        self._emg = self._outlet(
            f"{name}-EMG", "EMG", self.emg_channels, self.emg_rate_hz, f"{source}:emg"
        )
        self._angle = self._outlet(
            f"{name}-Angle", "Angle", self.angle_channels, self.angle_rate_hz, f"{source}:angle"
        )
        self._emg_conv = _converter(self.emg_channels)
        self._angle_conv = _converter(self.angle_channels)
        self.samples_pushed = {"emg": 0, "angle": 0}

    # ------------------------------------------------------------------------------ public
    def set_clock_mapping(self, device_to_host: Callable[[float], float]) -> None:
        """Replace the device-to-host time mapping (e.g. after the clock fit improved)."""
        self._device_to_host = device_to_host

    def lsl_time(self, device_time_s: float) -> float:
        """The LSL timestamp (``pylsl.local_clock`` seconds) of a device time in seconds."""
        if self._device_to_host is None:
            if self._anchor is None:
                self._anchor = self._host_clock() - device_time_s
            host = device_time_s + self._anchor
        else:
            host = float(self._device_to_host(device_time_s))
        return host + self._lsl_minus_host

    def push_emg(self, block, first_sample_device_time_s: float) -> None:
        """Publish an EMG block, ``(n_samples, n_emg)`` counts (int) or microvolts (float).

        ``first_sample_device_time_s`` is the device time of the block's first sample; later
        samples are ``1 / emg_rate_hz`` apart.
        """
        self._push(self._emg, self._emg_conv, block, first_sample_device_time_s, "emg")

    def push_angle(self, block, first_sample_device_time_s: float) -> None:
        """Publish an angle block, ``(n_samples, n_angle)`` counts (int) or degrees (float)."""
        self._push(self._angle, self._angle_conv, block, first_sample_device_time_s, "angle")

    def have_consumers(self) -> bool:
        """True if any LSL inlet is connected to either outlet."""
        return any(o is not None and o.have_consumers() for o in (self._emg, self._angle))

    def close(self) -> None:
        """Destroy the outlets (idempotent); inlets see the streams end."""
        self._emg = None
        self._angle = None

    def __enter__(self) -> LslPublisher:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------------------ internals
    def _measure_clock_offset(self) -> float:
        # local_clock and the host clock are both monotonic; take the tightest of a few reads.
        best = None
        for _ in range(5):
            before = self._host_clock()
            lsl_now = self._pylsl.local_clock()
            after = self._host_clock()
            if best is None or after - before < best[0]:
                best = (after - before, lsl_now - (before + after) / 2)
        return best[1]

    def _outlet(self, stream_name, stream_type, channels, rate, source_id):
        if not channels:
            return None
        pylsl = self._pylsl
        info = pylsl.StreamInfo(
            stream_name, stream_type, len(channels), rate, pylsl.cf_float32, source_id
        )
        desc = info.desc()
        acquisition = desc.append_child("acquisition")
        acquisition.append_child_value("manufacturer", "tonuslab")
        acquisition.append_child_value("model", "tonuslab device protocol v1")
        xml_channels = desc.append_child("channels")
        for channel in channels:
            node = xml_channels.append_child("channel")
            node.append_child_value("label", str(channel.get("name", "")))
            unit = str(channel.get("unit", ""))
            node.append_child_value("unit", _UNITS.get(unit, unit))
            node.append_child_value("type", stream_type)
            for key in ("highpass_hz", "lowpass_hz"):
                if channel.get(key) is not None:
                    node.append_child_value(key, repr(float(channel[key])))
        return pylsl.StreamOutlet(info, chunk_size=0, max_buffered=60)

    def _push(self, outlet, convert, block, first_time_s, kind) -> None:
        if outlet is None:
            if self._emg is None and self._angle is None:
                raise LslError("the LSL publisher is closed")
            raise LslError(f"no {kind} channels were declared in the channel table")
        data = np.asarray(block)
        if data.ndim == 1:
            data = data.reshape(-1, 1) if outlet.channel_count == 1 else data.reshape(1, -1)
        if data.ndim != 2 or data.shape[1] != outlet.channel_count:
            raise LslError(
                f"{kind} block of shape {np.shape(block)} does not match the "
                f"{outlet.channel_count} {kind} channel(s) of the channel table"
            )
        n = data.shape[0]
        if n == 0:
            return
        values = convert(data)
        rate = self.emg_rate_hz if kind == "emg" else self.angle_rate_hz
        # Stamp every sample: interpolating the mapped first and last times is exact for the
        # (linear) clock mapping, so drift within a block is kept, unlike liblsl's nominal-rate
        # back-filling from a single stamp.
        first = self.lsl_time(float(first_time_s))
        if n == 1:
            stamps = [first]
        else:
            last = self.lsl_time(float(first_time_s) + (n - 1) / rate)
            stamps = np.linspace(first, last, n).tolist()
        outlet.push_chunk(values, stamps)
        self.samples_pushed[kind] += n


def _converter(channels: Sequence[dict]) -> Callable[[np.ndarray], np.ndarray]:
    scaling = ChannelScaling.from_channels(channels)

    def convert(data: np.ndarray) -> np.ndarray:
        if np.issubdtype(data.dtype, np.integer):
            return np.ascontiguousarray(scaling.to_physical(data).astype(np.float32))
        return np.ascontiguousarray(data, dtype=np.float32)

    return convert
