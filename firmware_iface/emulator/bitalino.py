"""Emulated BITalino (r)evolution board over a pty or TCP, fed by the virtual patient.

Test equipment, written from the public documents only (no vendor code):

- PLUX, *BITalino Serial Port API* / *(r)evolution Lab Guide*: command bytes, frame layout,
  4-bit CRC and sequence, state reply (summarised in :mod:`firmware_iface.foreign.bitalino`);
- PLUX, *EMG Sensor Data Sheet*: ``EMG(V) = (ADC / 2**n - 1/2) * VCC / 1009``, VCC = 3.3 V,
  used here backwards to turn the patient's microvolts into 10-bit codes.

What it models: idle / live / simulated modes; sampling rate 1/10/100/1000 Hz; the start mask
(slot k = k-th channel of the mask); battery threshold; digital outputs O1/O2 (any mode); the
state command; the version string ``BITalino_v5.1`` (a (r)evolution board, so the official
``bitalino`` package's 16-byte state reply applies). The wiring of the bench it stands for:

- ``emg_channels`` (default A1) carry the EMG sensor on the patient's muscles;
- ``gonio_channel`` (default A2) an analog goniometer: ``code = gonio_code0 + deg *
  gonio_codes_per_deg`` (the two-point calibration the driver needs: ``gonio_cal_points()``);
- O1 drives an external stimulator's trigger input; the stimulator's intensity dial is
  ``stim_intensity_ma`` (the operator's setting, never sent by the host); each O1 rising edge
  fires one pulse one sample later, and the stimulator's TTL sync output is wired to I1 (high
  for ``ttl_ms``). ``external_stim_every_s`` makes the stimulator fire on its own schedule.

Faults (:class:`BitalinoFaults`): dropped frames (the sequence still advances), corrupted frames
(one bit flipped: the CRC fails), dropped single bytes (misalignment), a stall (frames due during
it are lost, as over a broken Bluetooth link), a disconnect after so many frames.

Entry point: ``python -m firmware_iface.emulator.bitalino --pty | --tcp PORT [--profile NAME]
[--program tsrt] [--speed fast|realtime]`` prints the port path or ``HOST:PORT`` and the
``bitalino://`` URL to record from, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import socket
import sys
import threading
import time
import tty
from dataclasses import dataclass

import numpy as np

from firmware_iface.emulator._signals import PhysicalSignals, patient_source
from firmware_iface.foreign import bitalino as bp

VERSION = "BITalino_v5.1"


@dataclass
class BitalinoFaults:
    """Deliberate defects. ``*_every``: every N-th frame (0 = never)."""

    drop_every: int = 0
    corrupt_every: int = 0
    drop_byte_every: int = 0
    stall_at_frame: int | None = None
    stall_frames: int = 0
    disconnect_after_frames: int | None = None


class BitalinoDevice:
    """The board's state machine (no I/O): bytes in with :meth:`receive`, frames out with
    :meth:`produce` / :meth:`take_output`.

    Parameters
    ----------
    source : SignalSource, optional
        Default: ``virtual_patient.PatientSource(profile, seed=seed, program=program)``.
    emg_channels : tuple of int
        Analog channels (0..5 = A1..A6) with an EMG sensor.
    gonio_channel : int or None
        Analog channel with the goniometer.
    """

    def __init__(
        self,
        source=None,
        *,
        profile: str = "moderate_elbow",
        seed: int = 0,
        program=None,
        emg_channels: tuple[int, ...] = (0,),
        gonio_channel: int | None = 1,
        gonio_code0: float = 100.0,
        gonio_codes_per_deg: float = 5.0,
        stim_intensity_ma: float = 12.0,
        stim_width_us: int = 1000,
        ttl_ms: float = 2.0,
        external_stim_every_s: float | None = None,
        faults: BitalinoFaults | None = None,
        version: str = VERSION,
    ) -> None:
        self.source = source if source is not None else patient_source(profile, seed, program)
        self.emg_channels = tuple(emg_channels)
        self.gonio_channel = gonio_channel
        self.gonio_code0 = float(gonio_code0)
        self.gonio_codes_per_deg = float(gonio_codes_per_deg)
        self.stim_intensity_ma = float(stim_intensity_ma)
        self.stim_width_us = int(stim_width_us)
        self.ttl_ms = float(ttl_ms)
        self.external_stim_every_s = external_stim_every_s
        self.faults = faults or BitalinoFaults()
        self.version = version
        self.mode = "idle"
        self.rate_hz = 1000
        self.channels: tuple[int, ...] = ()
        self.outputs = [0, 0]
        self.battery_threshold = 0
        self.battery_code = 800
        self.frame_number = 0  # frames generated since START (sent or not)
        self.frames_sent = 0
        self.pulses: list[dict] = []  # stimulator pulses: emg sample index, intensity
        self.disconnected = False
        self._out = bytearray()
        self._pwm_pending = False
        self._signals: PhysicalSignals | None = None
        self._decim = 1
        self._ttl_until = -1
        self._ttl_from = -1
        self._pending_fire: int | None = None
        self.commands: list[tuple[str, object]] = []

    # ------------------------------------------------------------------ calibration truth
    def gonio_cal_points(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Two ``(code, degrees)`` points of the goniometer's line (for the driver's URL)."""
        return (self.gonio_code0, 0.0), (self.gonio_code0 + 150.0 * self.gonio_codes_per_deg, 150.0)

    # ------------------------------------------------------------------ host side
    def receive(self, data: bytes) -> None:
        for b in data:
            if self._pwm_pending:
                self._pwm_pending = False
                continue
            name, arg = bp.decode_command(b)
            self.commands.append((name, arg))
            if name == "version":
                if self.mode == "idle":
                    self._out += (self.version + "\n").encode("ascii")
            elif name == "state":
                if self.mode == "idle":
                    self._out += self._state_reply()
            elif name == "digital":
                self._set_outputs(*arg)
            elif name == "pwm":
                self._pwm_pending = True
            elif self.mode != "idle":
                if name in ("stop", "stop_any"):
                    self.mode = "idle"
                # other commands are ignored while acquiring (as the board does)
            elif name == "stop_any":
                pass
            elif name in ("stop", "battery"):
                self.battery_threshold = int(arg or 0)
            elif name == "rate":
                self.rate_hz = int(arg)
            elif name == "start":
                chans, simulated = arg
                self._start(chans, simulated)

    def _state_reply(self) -> bytes:
        analog = [512] * 6
        return bp.encode_state(
            analog, self.battery_code, self.battery_threshold, [0, 0, *self.outputs]
        )

    def _start(self, chans, simulated: bool) -> None:
        self.channels = tuple(sorted(chans))
        self.mode = "simulated" if simulated else "live"
        self.frame_number = 0
        self.frames_sent = 0
        self._ttl_until = -1
        self._ttl_from = -1
        self._pending_fire = None
        if not simulated:
            n_emg = max(1, len(self.emg_channels))
            # the patient is simulated at 1000 Hz at least (its EMG band reaches 500 Hz) and
            # sampled at the board's rate: 1, 10 and 100 Hz take every k-th sample (the board's
            # own anti-aliasing is not modelled)
            self._decim = max(1, 1000 // self.rate_hz)
            fs = self.rate_hz * self._decim
            self._signals = PhysicalSignals(
                self.source, emg_rate_hz=fs, angle_rate_hz=fs, n_emg=n_emg
            )

    def _set_outputs(self, o1: int, o2: int) -> None:
        if o1 and not self.outputs[0] and self.mode == "live":
            self._pending_fire = self.frame_number + 1  # the stimulator fires one sample later
        self.outputs = [int(o1), int(o2)]

    def host_lost(self) -> None:
        """The host went away (port closed): back to idle."""
        self.mode = "idle"
        self._out.clear()

    # ------------------------------------------------------------------ device side
    def produce(self, n: int) -> None:
        """Generate the next ``n`` frames (in acquisition) into the output buffer."""
        if self.mode == "idle" or n <= 0 or self.disconnected:
            return
        f = self.faults
        if f.disconnect_after_frames is not None:
            n = min(n, f.disconnect_after_frames - self.frame_number)
            if n <= 0:
                self.disconnected = True
                return
        first = self.frame_number
        idx = first + np.arange(n)
        analog = np.full((n, len(self.channels)), 512, dtype=np.int64)
        digital = np.zeros((n, 4), dtype=np.int64)
        digital[:, 2] = self.outputs[0]
        digital[:, 3] = self.outputs[1]
        if self.mode == "simulated":
            for k in range(len(self.channels)):
                top = (1 << bp.SLOT_BITS[k]) - 1
                analog[:, k] = (idx * (k + 1) * 8) % (top + 1)
            digital[:, 0] = (idx // 500) % 2
        else:
            self._fire_stimulator(first, n)
            sig = self._signals
            k = self._decim
            emg_uv = sig.emg_uv(n * k)[::k]
            deg = sig.angle_deg(n * k)[::k]
            for k, ch in enumerate(self.channels):
                bits = bp.SLOT_BITS[k]
                if ch in self.emg_channels:
                    j = self.emg_channels.index(ch)
                    sc, off = bp.emg_uv_scale(bits)
                    analog[:, k] = np.round(emg_uv[:, j] / sc + off)
                elif ch == self.gonio_channel:
                    code = self.gonio_code0 + deg * self.gonio_codes_per_deg
                    analog[:, k] = np.round(code / (1 << (10 - bits)))
                analog[:, k] = np.clip(analog[:, k], 0, (1 << bits) - 1)
            # the stimulator's sync output (I1) is high from the pulse for ttl_ms
            digital[:, 0] = ((idx >= self._ttl_from) & (idx < self._ttl_until)).astype(np.int64)
        raw = (
            np.frombuffer(bp.encode_frames(idx & 0xF, digital, analog), dtype=np.uint8)
            .reshape(n, -1)
            .copy()
        )
        self.frame_number += n
        keep = np.ones(n, dtype=bool)
        if f.drop_every:
            keep &= (idx + 1) % f.drop_every != 0
        if f.stall_at_frame is not None and f.stall_frames:
            keep &= ~((idx >= f.stall_at_frame) & (idx < f.stall_at_frame + f.stall_frames))
        if f.corrupt_every:
            bad = (idx + 1) % f.corrupt_every == 0
            raw[bad, 0] ^= 0x10
        rows = raw[keep]
        out = bytearray(rows.tobytes())
        if f.drop_byte_every:
            width = raw.shape[1]
            for i in sorted(np.flatnonzero((idx[keep] + 1) % f.drop_byte_every == 0), reverse=True):
                del out[i * width + width // 2]
        self.frames_sent += int(keep.sum())
        self._out += out

    def _fire_stimulator(self, first: int, n: int) -> None:
        rate = self.rate_hz
        fires = []
        if self._pending_fire is not None and self._pending_fire < first + n:
            fires.append(max(first, self._pending_fire))
            self._pending_fire = None
        every = self.external_stim_every_s
        if every:
            step = max(1, round(every * rate))
            k0 = -(-max(first, 1) // step)
            fires += list(range(k0 * step, first + n, step))
        for at in fires:
            self._signals.stimulate(at * self._decim, self.stim_intensity_ma, self.stim_width_us)
            self._ttl_until = at + max(1, round(self.ttl_ms * rate / 1000.0))
            self._ttl_from = at
            self.pulses.append(
                {"emg_sample_index": at, "intensity_ma": self.stim_intensity_ma,
                 "width_us": self.stim_width_us}
            )  # fmt: skip

    def take_output(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out


class _Server:
    """Serve one :class:`BitalinoDevice` on a file descriptor or socket, on a thread."""

    def __init__(self, device: BitalinoDevice, speed: str) -> None:
        if speed not in ("fast", "realtime"):
            raise ValueError(f"speed must be fast or realtime, got {speed!r}")
        self.device = device
        self.speed = speed
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self.error: BaseException | None = None

    def _pump(self, read_fn, write_fn, wait_fn) -> None:
        """Loop: commands in, frames out, until the host goes or :meth:`close`."""
        dev = self.device
        pending = bytearray()
        t0 = None
        sent_at_t0 = 0
        while not self._stop.is_set():
            readable, writable = wait_fn(bool(pending), 0.005 if dev.mode != "idle" else 0.02)
            if readable:
                data = read_fn()
                if data is None:
                    return  # host gone
                with self.lock:
                    was = dev.mode
                    dev.receive(data)
                    if dev.mode != "idle" and was == "idle":
                        t0, sent_at_t0 = time.monotonic(), 0
            with self.lock:
                if dev.mode != "idle" and len(pending) < 4096:
                    if self.speed == "fast":
                        dev.produce(64)
                    else:
                        due = int((time.monotonic() - t0) * dev.rate_hz) - sent_at_t0
                        dev.produce(due)
                        sent_at_t0 += max(0, due)
                pending += dev.take_output()
                if dev.disconnected and not pending:
                    return
            if pending and (writable or not readable):
                n = write_fn(pending)
                if n is None:
                    return
                del pending[:n]

    def close(self) -> None:
        self._stop.set()


class BitalinoPty(_Server):
    """The emulated board behind a real pseudo-terminal: open :attr:`path` with pyserial.

    Closing the port (DTR drop) returns the board to idle; the next host finds it silent.
    """

    def __init__(self, device: BitalinoDevice | None = None, *, speed: str = "fast"):
        super().__init__(device or BitalinoDevice(), speed)
        self._master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(self._master)
        self.path = os.ttyname(slave)
        self._slave = slave  # held: the master never reads EIO while no host has the port
        os.set_blocking(self._master, False)
        self._thread = threading.Thread(target=self._run, name="bitalino-pty", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        fd = self._master

        def wait(want_write, timeout):
            r, w, _ = select.select([fd], [fd] if want_write else [], [], timeout)
            return bool(r), bool(w)

        def read():
            try:
                return os.read(fd, 4096)
            except BlockingIOError:
                return b""
            except OSError:
                return None

        def write(buf):
            try:
                return os.write(fd, buf[:4096])
            except BlockingIOError:
                return 0
            except OSError:
                return None

        try:
            self._pump(read, write, wait)
        except BaseException as exc:  # surfaced to tests through .error
            self.error = exc
        finally:
            if self.device.disconnected:  # the board "vanished": the port goes away
                with contextlib.suppress(OSError):
                    os.close(self._slave)
                with contextlib.suppress(OSError):
                    os.close(fd)

    def close(self) -> None:
        super().close()
        self._thread.join(2.0)
        for fd in (self._slave, self._master):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BitalinoTcp(_Server):
    """The emulated board as a TCP server on loopback (one host at a time), like a BITalino
    with a Wi-Fi or serial-to-TCP bridge. :attr:`address` is ``HOST:PORT``."""

    def __init__(
        self, device: BitalinoDevice | None = None, *, host="127.0.0.1", port=0, speed="fast"
    ):
        super().__init__(device or BitalinoDevice(), speed)
        self._server = socket.create_server((host, port))
        self._server.settimeout(0.1)
        self.host, self.port = self._server.getsockname()[:2]
        self.connections = 0
        self._thread = threading.Thread(target=self._run, name="bitalino-tcp", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.setblocking(False)

            def wait(want_write, timeout, conn=conn):
                r, w, _ = select.select([conn], [conn] if want_write else [], [], timeout)
                return bool(r), bool(w)

            def read(conn=conn):
                try:
                    data = conn.recv(4096)
                except BlockingIOError:
                    return b""
                except OSError:
                    return None
                return data or None

            def write(buf, conn=conn):
                try:
                    return conn.send(bytes(buf[:65536]))
                except BlockingIOError:
                    return 0
                except OSError:
                    return None

            try:
                self._pump(read, write, wait)
            except BaseException as exc:
                self.error = exc
            finally:
                with self.lock:
                    self.device.host_lost()
                conn.close()
            if self.device.disconnected:
                break

    def close(self) -> None:
        super().close()
        self._server.close()
        self._thread.join(2.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_iface.emulator.bitalino", description=__doc__.split("\n")[0]
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal")
    where.add_argument("--tcp", type=int, metavar="PORT", help="serve on 127.0.0.1:PORT (0: any)")
    parser.add_argument("--speed", choices=("realtime", "fast"), default="realtime")
    parser.add_argument("--profile", default="moderate_elbow", help="virtual patient profile")
    parser.add_argument("--program", choices=("tsrt", "none"), default="none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stim-ma", type=float, default=12.0, help="stimulator dial (mA)")
    parser.add_argument("--serve-seconds", type=float, help="stop after this long (for tests)")
    args = parser.parse_args(argv)
    try:
        device = BitalinoDevice(
            profile=args.profile,
            seed=args.seed,
            program=None if args.program == "none" else args.program,
            stim_intensity_ma=args.stim_ma,
        )
    except (ValueError, KeyError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.pty:
        server = BitalinoPty(device, speed=args.speed)
        where_s = server.path
    else:
        server = BitalinoTcp(device, port=args.tcp, speed=args.speed)
        where_s = server.address
    (c0, d0), (c1, d1) = device.gonio_cal_points()
    print(where_s, flush=True)
    print(f"bitalino://{where_s}?emg=A1&gonio=A2&gonio_cal={c0:g}:{d0:g},{c1:g}:{d1:g}", flush=True)
    try:
        deadline = None if args.serve_seconds is None else time.monotonic() + args.serve_seconds
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
