"""Emulated Delsys Trigno base station + Trigno Control Utility SDK server (TCP, loopback).

Test equipment, written from the public document only: Delsys Inc., *Trigno Wireless System
SDK User's Guide* (MAN-025; ports, packet structure and command set summarised in
:mod:`firmware_iface.foreign.trigno`). No vendor code and no licence key are involved.

What it models: the command port (greeting, ``OK`` / ``INVALID COMMAND`` replies ending in
``\\r\\n\\r\\n``, the queries and mode commands of the SDK), the four data ports (EMG and
auxiliary, Avanti and backwards-compatible layouts; all 16 slots in every sample, unpaired
slots 0), the three EMG rates (backwards compatibility: 2000 Hz; otherwise 2148.1 Hz with
upsampling, 1111.1 Hz without), two auxiliary samples per 13.5 ms frame (148.1 Hz), and
little or big endian floats. The data ports use the command port + 1..4 (50041-50044 by
default); a test server takes any free block of five ports.

The bench it stands for: EMG sensors in ``emg_slots`` (default 1 and 2) on the patient's
muscles, and a goniometer adapter (type ``G``) in ``gonio_slot`` (default 3) whose first
auxiliary channel reads ``gonio_v0 + deg * gonio_v_per_deg`` volts (``gonio_cal_points()``
gives two points of that line for the driver's two-point calibration). Signals come from the
virtual patient (``virtual_patient.PatientSource``).

Faults (:class:`TrignoFaults`): a stall (nothing sent for a while and those samples lost, as
when the TCU drops a wireless stretch), a pause (nothing sent, then everything at once: no loss),
corrupted frames (NaN in a sample), a disconnect (the server closes every socket), and chunked
writes at random byte boundaries (partial TCP reads).

Entry point: ``python -m firmware_iface.emulator.trigno [--port 50040] [--profile NAME]
[--program tsrt]`` prints the ``trigno://`` URL, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from firmware_iface.emulator._signals import PhysicalSignals, patient_source
from firmware_iface.foreign import trigno as tp

FRAME_INTERVAL_S = 0.0135
GREETING = f"{tp.GREETING_PREFIX} Version 3.6.0 (tonuslab emulator)"


@dataclass
class TrignoFaults:
    """Deliberate defects; times are seconds after START."""

    stall_at_s: float | None = None
    stall_s: float = 0.0
    pause_at_s: float | None = None
    pause_s: float = 0.0
    corrupt_every_frames: int = 0
    disconnect_after_s: float | None = None
    chunked: bool = True


class TrignoDevice:
    """TCU state and frame generation (no I/O)."""

    def __init__(
        self,
        source=None,
        *,
        profile: str = "moderate_elbow",
        seed: int = 0,
        program=None,
        emg_slots: tuple[int, ...] = (1, 2),
        gonio_slot: int | None = 3,
        gonio_v0: float = 0.5,
        gonio_v_per_deg: float = 0.01,
        sensor_type: str = "D",
        faults: TrignoFaults | None = None,
    ) -> None:
        self.source = source if source is not None else patient_source(profile, seed, program)
        self.emg_slots = tuple(emg_slots)
        self.gonio_slot = gonio_slot
        self.gonio_v0 = float(gonio_v0)
        self.gonio_v_per_deg = float(gonio_v_per_deg)
        self.faults = faults or TrignoFaults()
        self.types = {s: sensor_type for s in self.emg_slots}
        if gonio_slot is not None:
            self.types[gonio_slot] = "G"
        self.backwards_compat = False
        self.upsample = True
        self.big_endian = False
        self.running = False
        self.frames = 0
        self.commands: list[str] = []
        self._signals: PhysicalSignals | None = None
        self._rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ modes and rates
    @property
    def emg_rate_hz(self) -> float:
        if self.backwards_compat:
            return 2000.0
        return 29 / FRAME_INTERVAL_S if self.upsample else 15 / FRAME_INTERVAL_S

    @property
    def emg_per_frame(self) -> int:
        return round(self.emg_rate_hz * FRAME_INTERVAL_S)

    @property
    def aux_per_frame(self) -> int:
        return 2

    @property
    def aux_per_sensor(self) -> int:
        return tp.AUX_PER_SENSOR_LEGACY if self.backwards_compat else tp.AUX_PER_SENSOR

    def gonio_cal_points(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Two ``(volts, degrees)`` points of the goniometer adapter's line."""
        return (self.gonio_v0, 0.0), (self.gonio_v0 + 100.0 * self.gonio_v_per_deg, 100.0)

    # ------------------------------------------------------------------ commands
    def command(self, text: str) -> str | None:
        """Reply to one command (None: close the connection)."""
        self.commands.append(text)
        t = " ".join(text.upper().split())
        words = t.split(" ")
        if t == "QUIT":
            return None
        if t == "START":
            self._start()
            return "OK"
        if t == "STOP":
            self.running = False
            return "OK"
        if t == "VERSION?":
            return "3.6.0"
        if t in ("BACKWARDS COMPATIBILITY ON", "BACKWARDS COMPATIBILITY OFF"):
            if self.running:
                return "INVALID COMMAND"
            self.backwards_compat = t.endswith("ON")
            return "OK"
        if t == "BACKWARDS COMPATIBILITY?":
            return "ON" if self.backwards_compat else "OFF"
        if t in ("UPSAMPLE ON", "UPSAMPLE OFF"):
            if self.running:
                return "INVALID COMMAND"
            self.upsample = t.endswith("ON")
            return "OK"
        if t == "UPSAMPLING?":
            return "UPSAMPLING ON" if self.upsample else "UPSAMPLING OFF"
        if t == "RATE?":
            return f"{self.emg_rate_hz:.4f}"
        if t == "FRAME INTERVAL?":
            return f"{FRAME_INTERVAL_S:.4f}"
        if t == "MAX SAMPLES EMG?":
            return str(self.emg_per_frame)
        if t == "MAX SAMPLES AUX?":
            return str(self.aux_per_frame)
        if t == "ENDIANNESS?":
            return "BIG" if self.big_endian else "LITTLE"
        if t in ("ENDIAN BIG", "ENDIAN LITTLE"):
            self.big_endian = t.endswith("BIG")
            return "OK"
        if len(words) == 3 and words[0] == "SENSOR" and words[1].isdigit():
            slot = int(words[1])
            if not 1 <= slot <= tp.N_SENSORS:
                return "INVALID COMMAND"
            paired = slot in self.types
            q = words[2]
            if q == "PAIRED?":
                return "YES" if paired else "NO"
            if q == "TYPE?":
                return self.types.get(slot, "INVALID SENSOR")
            if q == "MODE?":
                return "40" if paired else "INVALID SENSOR"
            if q == "SERIAL?":
                return f"EMU{slot:05d}" if paired else "INVALID SENSOR"
        return "INVALID COMMAND"

    def _start(self) -> None:
        self.running = True
        self.frames = 0
        self._signals = PhysicalSignals(
            self.source,
            emg_rate_hz=self.emg_rate_hz,
            angle_rate_hz=self.aux_per_frame / FRAME_INTERVAL_S,
            n_emg=max(1, len(self.emg_slots)),
        )

    # ------------------------------------------------------------------ data
    def frame(self) -> tuple[bytes, bytes]:
        """The next TCU frame: (EMG port bytes, auxiliary port bytes)."""
        ne, na, nv = self.emg_per_frame, self.aux_per_frame, self.aux_per_sensor
        emg = np.zeros((ne, tp.N_SENSORS), dtype=np.float64)
        uv = self._signals.emg_uv(ne)
        for j, slot in enumerate(self.emg_slots):
            emg[:, slot - 1] = uv[:, j] * 1e-6
        aux = np.zeros((na, tp.N_SENSORS, nv), dtype=np.float64)
        for slot in self.emg_slots:
            aux[:, slot - 1, 2] = 1.0  # accelerometer z: 1 g at rest
        deg = self._signals.angle_deg(na)
        if self.gonio_slot is not None:
            aux[:, self.gonio_slot - 1, 0] = self.gonio_v0 + deg * self.gonio_v_per_deg
        f = self.faults
        if f.corrupt_every_frames and (self.frames + 1) % f.corrupt_every_frames == 0:
            emg[0, :] = np.nan
        self.frames += 1
        dt = np.dtype(">f4" if self.big_endian else "<f4")
        return emg.astype(dt).tobytes(), aux.reshape(na, -1).astype(dt).tobytes()


class TrignoServer:
    """A :class:`TrignoDevice` served like the TCU: command port + four data ports on loopback.

    Parameters
    ----------
    device : TrignoDevice, optional
    port : int
        Command port; 0 picks a free block of five consecutive ports.
    speed : "realtime" | "fast"
        ``fast`` sends frames as fast as the host reads them (the host clock then carries no
        timing, so the driver's stall estimate means nothing; for quick tests only).
    """

    def __init__(self, device: TrignoDevice | None = None, *, host="127.0.0.1", port=0,
                 speed="realtime"):  # fmt: skip
        if speed not in ("fast", "realtime"):
            raise ValueError(f"speed must be fast or realtime, got {speed!r}")
        self.device = device or TrignoDevice()
        self.speed = speed
        self.host = host
        self._listeners = self._bind(host, port)
        self.port = self._listeners["command"].getsockname()[1]
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._conns: dict[str, list[socket.socket]] = {k: [] for k in self._listeners}
        self._pending: dict[socket.socket, bytearray] = {}
        self._cmd_buf: dict[socket.socket, bytearray] = {}
        self.error: BaseException | None = None
        self.disconnected = False
        self._thread = threading.Thread(target=self._run, name="trigno-emu", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"trigno://{self.host}:{self.port}"

    @staticmethod
    def _bind(host: str, port: int) -> dict[str, socket.socket]:
        names = ["command", *tp.PORT_OFFSETS]
        for _attempt in range(50):
            socks = {}
            try:
                first = socket.create_server((host, port))
                socks["command"] = first
                base = first.getsockname()[1]
                for name, off in tp.PORT_OFFSETS.items():
                    socks[name] = socket.create_server((host, base + off))
                for s in socks.values():
                    s.setblocking(False)
                return socks
            except OSError:
                for s in socks.values():
                    s.close()
                if port:
                    raise
        raise OSError(f"no free block of {len(names)} ports")

    # ------------------------------------------------------------------ serving
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # surfaced to tests through .error
            self.error = exc
        finally:
            self._close_all()

    def _loop(self) -> None:
        dev = self.device
        t0 = None
        held: list[tuple[bytes, bytes]] = []
        sent_frames = 0
        while not self._stop.is_set():
            rlist = list(self._listeners.values()) + self._conns["command"]
            for k in tp.PORT_OFFSETS:
                rlist += self._conns[k]
            wlist = [s for s, p in self._pending.items() if p]
            r, w, _ = select.select(rlist, wlist, [], 0.002)
            for s in r:
                self._readable(s)
            for s in w:
                self._flush(s)
            with self.lock:
                if not dev.running:
                    t0 = None
                    held.clear()
                    continue
                if t0 is None:
                    t0, sent_frames = time.monotonic(), 0
                el = time.monotonic() - t0
                f = dev.faults
                if f.disconnect_after_s is not None and el >= f.disconnect_after_s:
                    dev.running = False
                    self._close_all(keep_listeners=False)
                    self.disconnected = True  # after the ports are gone: tests wait for this
                    return
                if self.speed == "fast":
                    backlog = max((len(p) for p in self._pending.values()), default=0)
                    due = 4 if backlog < 1 << 16 else 0
                else:
                    due = int(el / FRAME_INTERVAL_S) - sent_frames
                for _ in range(max(0, due)):
                    t_frame = sent_frames * FRAME_INTERVAL_S
                    sent_frames += 1
                    frame = dev.frame()
                    if (
                        f.stall_at_s is not None
                        and f.stall_at_s <= t_frame < f.stall_at_s + f.stall_s
                    ):
                        continue  # lost
                    held.append(frame)
                paused = f.pause_at_s is not None and f.pause_at_s <= el < f.pause_at_s + f.pause_s
                if not paused and held:
                    emg_key = "emg_legacy" if dev.backwards_compat else "emg"
                    aux_key = "aux_legacy" if dev.backwards_compat else "aux"
                    emg_b = b"".join(h[0] for h in held)
                    aux_b = b"".join(h[1] for h in held)
                    held.clear()
                    for s in self._conns[emg_key]:
                        self._queue(s, emg_b)
                    for s in self._conns[aux_key]:
                        self._queue(s, aux_b)

    def _readable(self, s: socket.socket) -> None:
        for name, lst in self._listeners.items():
            if s is lst:
                try:
                    conn, _ = s.accept()
                except OSError:
                    return
                conn.setblocking(False)
                self._conns[name].append(conn)
                self._pending[conn] = bytearray()
                if name == "command":
                    self._cmd_buf[conn] = bytearray()
                    self._queue(conn, tp.encode_command(GREETING))
                return
        try:
            data = s.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(s)
            return
        if s in self._cmd_buf:
            buf = self._cmd_buf[s]
            buf += data
            for cmd in tp.split_commands(buf):
                with self.lock:
                    reply = self.device.command(cmd)
                if reply is None:
                    self._drop(s)
                    return
                self._queue(s, tp.encode_command(reply))

    def _queue(self, s: socket.socket, data: bytes) -> None:
        if s in self._pending:
            self._pending[s] += data
            self._flush(s)

    def _flush(self, s: socket.socket) -> None:
        buf = self._pending.get(s)
        if not buf:
            return
        n = len(buf)
        if self.device.faults.chunked and n > 1:
            n = int(self.device._rng.integers(1, n + 1))
        try:
            sent = s.send(bytes(buf[:n]))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(s)
            return
        del buf[:sent]

    def _drop(self, s: socket.socket) -> None:
        for lst in self._conns.values():
            if s in lst:
                lst.remove(s)
        self._pending.pop(s, None)
        if self._cmd_buf.pop(s, None) is not None and not self._conns["command"]:
            with self.lock:
                self.device.running = False  # the host went away
        with contextlib.suppress(OSError):
            s.close()

    def _close_all(self, keep_listeners: bool = False) -> None:
        for lst in self._conns.values():
            for s in list(lst):
                with contextlib.suppress(OSError):
                    s.close()
            lst.clear()
        self._pending.clear()
        self._cmd_buf.clear()
        if not keep_listeners:
            for s in self._listeners.values():
                with contextlib.suppress(OSError):
                    s.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_iface.emulator.trigno", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=0, help="command port (0: any free block)")
    parser.add_argument("--speed", choices=("realtime", "fast"), default="realtime")
    parser.add_argument("--profile", default="moderate_elbow", help="virtual patient profile")
    parser.add_argument("--program", choices=("tsrt", "none"), default="none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--serve-seconds", type=float, help="stop after this long (for tests)")
    args = parser.parse_args(argv)
    try:
        device = TrignoDevice(
            profile=args.profile, seed=args.seed,
            program=None if args.program == "none" else args.program,
        )  # fmt: skip
        server = TrignoServer(device, port=args.port, speed=args.speed)
    except (ValueError, KeyError, LookupError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    (v0, d0), (v1, d1) = device.gonio_cal_points()
    print(f"{server.url}?emg=1,2&gonio=3&gonio_cal={v0:g}:{d0:g},{v1:g}:{d1:g}", flush=True)
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
