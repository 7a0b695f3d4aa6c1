"""Drive an :class:`EmulatedDevice` over a byte link, a pseudo-terminal or a TCP socket."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import termios
import threading
import time
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
                            # frame by frame, each the moment it completes on the device clock
                            # (as in real time): the clock never runs ahead of the last frame
                            # sent by more than the real time that passes, so a command arrives
                            # where the host has seen the samples
                            target = due + FAST_STEP_US
                            while due is not None and due <= target:
                                dev.clock.run_ahead_to(due)
                                if not dev.advance(due):
                                    break
                                due = dev.next_due_us()
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


class _PtyMasterLink(FdLink):
    """The device end of a pseudo-terminal, with the hang-up of a USB-serial port's DTR line.

    The emulator holds a descriptor of the slave end until a host has opened the tty and
    spoken (so that nothing hangs up before there is a host); then it lets go, and when the
    host closes the port, no process has the slave open any more: the master reads EIO (poll:
    HUP), which is what a real device sees as DTR dropping. Then ``on_hangup()`` runs, the
    slave is held again (its stale input flushed), and the next host finds a device that is
    silent until spoken to (PROTOCOL.md sections 1 and 5).
    """

    def __init__(self, master: int, path: str, on_hangup):
        super().__init__(master)
        self._path = path
        self._on_hangup = on_hangup
        self._hold: int | None = None
        self._hold_slave()

    def _hold_slave(self) -> None:
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as exc:  # the emulator is being closed
            raise LinkClosed(f"pty {self._path} gone ({exc.strerror})") from exc
        tty.setraw(fd)
        termios.tcflush(fd, termios.TCIOFLUSH)
        self._hold = fd

    def _release_slave(self) -> None:
        if self._hold is not None:
            with contextlib.suppress(OSError):
                os.close(self._hold)
            self._hold = None

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        if self._closed:
            raise LinkClosed("link closed")
        try:
            ready, _, _ = select.select([self._fd], [], [], max(0.0, timeout_s))
            if not ready:
                return b""
            data = os.read(self._fd, max_bytes)
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise LinkClosed(f"tty closed ({exc.strerror})") from exc
            if self._closed:
                raise LinkClosed("link closed") from exc
            if self._hold is None:  # the host closed the port: DTR dropped
                self._on_hangup()
                self._hold_slave()
            else:  # cannot happen while we hold the slave; do not spin if it does
                time.sleep(min(timeout_s, 0.01))
            return b""
        if not data:
            raise LinkClosed("tty closed")
        self._release_slave()  # a host has opened the port and spoken
        return data

    def close(self) -> None:
        self._release_slave()
        super().close()


class PtyEmulator:
    """The emulator behind a real pseudo-terminal: open :attr:`path` with pyserial.

    Like a USB-serial device, it returns to IDLE (streaming stopped, pending stimulation
    cancelled) when the host closes the port, and is silent for the next host until that host
    speaks. :attr:`hangups` counts the host closes seen.
    """

    def __init__(self, device: EmulatedDevice | None = None, *, speed: str = "fast"):
        master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self.hangups = 0
        self.runner: DeviceRunner | None = None
        link = _PtyMasterLink(master, self.path, self._host_closed_port)
        os.close(slave)  # the link holds its own descriptor of the slave end
        self.runner = DeviceRunner(device or make_device(), link, speed=speed, name="pty").start()

    @property
    def device(self) -> EmulatedDevice:
        return self.runner.device

    def _host_closed_port(self) -> None:
        """The host closed the tty (DTR drop): back to IDLE, output for the old host dropped."""
        self.hangups += 1
        with self.runner.lock:
            self.device.host_lost()
            self.device.take_output()

    def close(self) -> None:
        """Unplug: the runner stops and the device loses its host."""
        self.runner.stop()
        self.runner.link.close()
        with self.runner.lock:
            self.device.host_lost()

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
