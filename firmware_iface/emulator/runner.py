"""Drive an :class:`EmulatedDevice` over a byte link, a pseudo-terminal or a TCP socket."""

from __future__ import annotations

import os
import socket
import threading
import tty

from firmware_iface.emulator.device import DeviceClock, EmulatedDevice, Faults
from firmware_iface.errors import LinkClosed
from firmware_iface.link import FdLink, MemoryLink, SocketLink, link_pair

SPEEDS = ("fast", "realtime")
#: Device time produced per step when running as fast as possible.
FAST_STEP_US = 20_000


class DeviceRunner:
    """A thread that serves one :class:`EmulatedDevice` over one :class:`ByteLink`.

    ``speed="realtime"`` emits each frame when the device clock reaches it;
    ``speed="fast"`` runs the device clock ahead as fast as the link accepts the bytes
    (back-pressure from the link paces it). Hold :attr:`lock` to touch the device from another
    thread (e.g. ``device.press_button()``).
    """

    def __init__(self, device: EmulatedDevice, link, *, speed: str = "fast", name: str = "emu"):
        if speed not in SPEEDS:
            raise ValueError(f"speed must be one of {SPEEDS}, got {speed!r}")
        self.device = device
        self.link = link
        self.speed = speed
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"tonuslab-{name}", daemon=True)

    def start(self) -> DeviceRunner:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        dev, link = self.device, self.link
        try:
            if dev.faults.greeting:  # a non-conforming device that talks first
                with self.lock:
                    dev._send(0x93, dev._status().pack())
                    link.write(dev.take_output())
            while not self._stop.is_set():
                with self.lock:
                    due = dev.next_due_us()
                if due is None:
                    timeout = 0.02
                elif self.speed == "fast":
                    timeout = 0.0
                else:
                    timeout = min(0.02, dev.clock.host_seconds_until(due))
                data = link.read(65536, timeout)
                with self.lock:
                    if data:
                        dev.receive(data)
                    due = dev.next_due_us()
                    if due is not None:
                        if self.speed == "fast":
                            target = due + FAST_STEP_US
                            dev.clock.run_ahead_to(target)
                            dev.advance(target)
                        else:
                            dev.advance(dev.clock.now_us())
                    out = dev.take_output()
                if out:
                    link.write(out)
        except LinkClosed:
            pass
        except BaseException as exc:  # surfaced to whoever checks runner.error
            self.error = exc
        finally:
            try:
                link.close()
            except Exception:
                pass


def make_device(
    source=None,
    *,
    serial: str = "EMU-0001",
    stim_key: bytes | None = None,
    drift_ppm: float = 0.0,
    faults: Faults | None = None,
    **kwargs,
) -> EmulatedDevice:
    """An :class:`EmulatedDevice` with the given source (``SimpleSource(seed=0)`` when None)."""
    return EmulatedDevice(
        source=source, serial=serial, stim_key=stim_key, clock=DeviceClock(drift_ppm),
        faults=faults or Faults(), **kwargs,
    )  # fmt: skip


class EmulatorLink:
    """The host end of an in-process link to a running emulator (a :class:`ByteLink`).

    Attributes
    ----------
    runner : DeviceRunner
        The emulator thread; ``runner.device`` is the :class:`EmulatedDevice`.
    """

    def __init__(self, host_end: MemoryLink, runner: DeviceRunner):
        self._link = host_end
        self.runner = runner

    @property
    def device(self) -> EmulatedDevice:
        return self.runner.device

    def write(self, data: bytes) -> None:
        self._link.write(data)

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        return self._link.read(max_bytes, timeout_s)

    def close(self) -> None:
        self._link.close()
        self.runner.stop()


def emulator_link(
    device: EmulatedDevice | None = None,
    *,
    speed: str = "fast",
    latency_s: float = 0.0,
    jitter_s: float = 0.0,
    seed: int | None = None,
    capacity: int = 1 << 16,
) -> EmulatorLink:
    """Start an emulator on an in-process link; returns the host end (close it to stop).

    ``capacity`` bounds the bytes in flight per direction, hence how far a ``speed="fast"``
    device runs ahead of the host's reading.
    """
    device = device or make_device()
    host_end, device_end = link_pair(
        capacity=capacity, latency_s=latency_s, jitter_s=jitter_s, seed=seed
    )
    runner = DeviceRunner(device, device_end, speed=speed).start()
    return EmulatorLink(host_end, runner)


class PtyEmulator:
    """The emulator behind a real pseudo-terminal: open :attr:`path` with pyserial."""

    def __init__(self, device: EmulatedDevice | None = None, *, speed: str = "fast"):
        master, slave = os.openpty()
        tty.setraw(slave)
        self._slave = slave  # kept open so the master never sees a hang-up between host opens
        self.path = os.ttyname(slave)
        self.runner = DeviceRunner(
            device or make_device(), FdLink(master), speed=speed, name="pty"
        ).start()

    @property
    def device(self) -> EmulatedDevice:
        return self.runner.device

    def close(self) -> None:
        self.runner.stop()
        self.runner.link.close()
        try:
            os.close(self._slave)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class TcpEmulator:
    """The emulator as a TCP server on loopback: one host at a time, device state persists.

    Connect to ``tcp://127.0.0.1:<port>``. When a host disconnects, streaming stops.
    """

    def __init__(
        self,
        device: EmulatedDevice | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: str = "fast",
    ):
        self.device = device or make_device()
        self.speed = speed
        self._server = socket.create_server((host, port))
        self._server.settimeout(0.1)
        self.host, self.port = self._server.getsockname()[:2]
        self._stop = threading.Event()
        self.runner: DeviceRunner | None = None
        self._thread = threading.Thread(target=self._serve, name="tonuslab-tcp-emu", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            runner = DeviceRunner(self.device, SocketLink(conn), speed=self.speed, name="tcp")
            self.runner = runner
            runner.start()
            while runner.alive and not self._stop.is_set():
                runner._thread.join(0.1)
            with runner.lock:
                self.device.host_lost()
            runner.stop()

    def close(self) -> None:
        self._stop.set()
        if self.runner is not None:
            self.runner.stop()
            try:
                self.runner.link.close()
            except Exception:
                pass
        self._server.close()
        self._thread.join(2.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
