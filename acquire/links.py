"""Open a byte link to a device from a URL: ``open_link(url) -> ByteLink``.

==========================================  =====================================================
URL                                         link
==========================================  =====================================================
``sim://PROFILE?seed=N&speed=fast``         in-process emulated device (``PROFILE`` ``simple``
                                            uses the built-in source; any other name is a
                                            ``virtual_patient.PatientSource`` profile)
``tcp://HOST:PORT``                         TCP (e.g. the emulator's TCP server, a Wi-Fi bridge)
``serial:///dev/ttyACM0`` or ``/dev/tty..`` serial port or pty via pyserial (``?baud=N``)
``ble://ADDRESS``                           Bluetooth LE (``acquire.ble.open_ble_link``)
``replay://CAPTURE``                        a recorded capture (``acquire.replay.open_replay_link``)
==========================================  =====================================================

``sim://`` options: ``seed`` (int, default 0), ``speed`` (``fast`` | ``realtime``),
``drift_ppm``, ``latency_ms``, ``jitter_ms``, ``serial`` (device serial number), ``key_file``
(the emulated device is paired with the key in that file), ``program`` (passed to
``PatientSource``, e.g. ``tsrt``), ``forge`` (fault injection for tests: the device sends one
implausible SAMPLES frame with a valid CRC, ``Faults.forge_samples``: ``index_jump``,
``huge_jump``, ``channels``, ``time_jump``, ``time_wrap``; ``forge_after`` EMG frames, default
100). The
returned link has ``.device`` (the :class:`~firmware_iface.emulator.EmulatedDevice`) and
``.runner``.

Every problem raises a :class:`LinkError` (an :class:`acquire.AcquisitionError`) with one line.
Device I/O modules (pyserial, bleak) are imported only when their scheme is used.
"""

from __future__ import annotations

import importlib
import os
import select
import socket
import time
import urllib.parse

from acquire.errors import AcquisitionError
from firmware_iface.errors import LinkClosed


class LinkError(AcquisitionError):
    """A link could not be opened."""


class BadLinkUrl(LinkError):
    """The URL is malformed or names an unknown scheme, profile or option."""


class LinkUnavailable(LinkError):
    """The URL is fine but the device, port or module behind it cannot be reached."""


SCHEMES = ("sim", "tcp", "serial", "ble", "replay")
_SIM_OPTIONS = {
    "forge",
    "forge_after",
    "seed",
    "speed",
    "drift_ppm",
    "latency_ms",
    "jitter_ms",
    "serial",
    "key_file",
    "program",
}


def open_link(url: str):
    """Open the link named by ``url`` (see the module docstring for the schemes).

    Returns
    -------
    ByteLink
        ``write(bytes)``, ``read(max_bytes, timeout_s) -> bytes``, ``close()``.

    Raises
    ------
    BadLinkUrl, LinkUnavailable
        With a one-line message naming the problem and what to do.
    """
    if not isinstance(url, str) or not url.strip():
        raise BadLinkUrl("empty device URL; try sim://simple, tcp://HOST:PORT or a serial port")
    url = url.strip()
    if url.startswith("/") or (url.startswith("COM") and "://" not in url):
        return _open_serial(url, {})
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower()
    if scheme not in SCHEMES:
        raise BadLinkUrl(
            f"unknown device URL scheme {scheme or url!r}; use one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
            + " or a serial port path"
        )
    try:
        query = dict(
            urllib.parse.parse_qsl(
                parsed.query, keep_blank_values=True, strict_parsing=bool(parsed.query)
            )
        )
    except ValueError as exc:
        raise BadLinkUrl(f"malformed query in device URL {url!r}") from exc
    if scheme == "sim":
        return _open_sim(parsed.netloc or parsed.path.lstrip("/"), query, url)
    if scheme == "tcp":
        return _open_tcp(parsed, url)
    if scheme == "serial":
        path = (parsed.netloc + parsed.path) if parsed.netloc else parsed.path
        return _open_serial(path, query)
    module_name, func_name = {
        "ble": ("acquire.ble", "open_ble_link"),
        "replay": ("acquire.replay", "open_replay_link"),
    }[scheme]
    try:
        module = importlib.import_module(module_name)
        opener = getattr(module, func_name)
    except (ImportError, AttributeError) as exc:
        raise LinkUnavailable(
            f"{scheme}:// links need {module_name}.{func_name}, which is not available ({exc})"
        ) from exc
    return opener(url)


def _number(query: dict, name: str, kind, default):
    if name not in query:
        return default
    try:
        return kind(query[name])
    except ValueError as exc:
        raise BadLinkUrl(f"sim:// option {name}={query[name]!r} is not a {kind.__name__}") from exc


def _open_sim(profile: str, query: dict, url: str):
    from firmware_iface.emulator import emulator_link, make_device
    from firmware_iface.emulator.source import SimpleSource

    if not profile:
        raise BadLinkUrl("sim:// needs a profile, e.g. sim://simple?seed=1")
    unknown = sorted(set(query) - _SIM_OPTIONS)
    if unknown:
        raise BadLinkUrl(
            f"unknown sim:// option {unknown[0]!r}; known: {', '.join(sorted(_SIM_OPTIONS))}"
        )
    seed = _number(query, "seed", int, 0)
    speed = query.get("speed", "fast")
    if speed not in ("fast", "realtime"):
        raise BadLinkUrl(f"sim:// speed must be fast or realtime, got {speed!r}")
    drift_ppm = _number(query, "drift_ppm", float, 0.0)
    latency_s = _number(query, "latency_ms", float, 0.0) / 1000.0
    jitter_s = _number(query, "jitter_ms", float, 0.0) / 1000.0
    if latency_s < 0 or jitter_s < 0:
        raise BadLinkUrl("sim:// latency_ms and jitter_ms must not be negative")
    key = None
    if "key_file" in query:
        from firmware_iface.auth import load_key_file

        key = load_key_file(query["key_file"])
    if profile == "simple":
        source = SimpleSource(seed=seed)
    else:
        source = _patient_source(profile, seed, query.get("program") or None)
    faults = None
    if "forge" in query:
        from firmware_iface.emulator import Faults
        from firmware_iface.emulator.device import FORGED_FRAMES

        if query["forge"] not in FORGED_FRAMES:
            raise BadLinkUrl(
                f"sim:// forge must be one of {', '.join(FORGED_FRAMES)}, got {query['forge']!r}"
            )
        after = _number(query, "forge_after", int, 100)
        if after < 1:
            raise BadLinkUrl("sim:// forge_after must be >= 1")
        faults = Faults(forge_samples=query["forge"], forge_after_frames=after)
    device = make_device(
        source, serial=query.get("serial", "EMU-0001")[:16], stim_key=key, drift_ppm=drift_ppm,
        faults=faults,
    )  # fmt: skip
    return emulator_link(device, speed=speed, latency_s=latency_s, jitter_s=jitter_s, seed=seed)


def _patient_source(profile: str, seed: int, program: str | None):
    from virtual_patient import PatientSource  # the simulator ships with tonuslab

    try:
        return PatientSource(profile, seed=seed, program=program)
    except (KeyError, ValueError, LookupError) as exc:
        raise BadLinkUrl(
            f"sim:// profile {profile!r} is not known to the simulator ({exc})"
        ) from exc


def _open_tcp(parsed, url: str):
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError as exc:
        raise BadLinkUrl(f"bad port in {url!r}; use tcp://HOST:PORT") from exc
    if not host or port is None:
        raise BadLinkUrl(f"{url!r} needs a host and a port: tcp://HOST:PORT")
    from firmware_iface.link import SocketLink

    try:
        sock = socket.create_connection((host, port), timeout=5.0)
    except OSError as exc:
        raise LinkUnavailable(
            f"cannot connect to {host}:{port} ({exc.strerror or exc}); is the device listening?"
        ) from exc
    return SocketLink(sock)


def _open_serial(path: str, query: dict):
    if not path:
        raise BadLinkUrl("serial:// needs a port path, e.g. serial:///dev/ttyACM0")
    try:
        baud = int(query.get("baud", 921600))
    except ValueError as exc:
        raise BadLinkUrl(f"serial baud {query['baud']!r} is not an integer") from exc
    unknown = sorted(set(query) - {"baud"})
    if unknown:
        raise BadLinkUrl(f"unknown serial option {unknown[0]!r}; known: baud")
    try:
        import serial
    except ImportError as exc:  # pragma: no cover - pyserial is a dependency
        raise LinkUnavailable("serial links need pyserial: pip install pyserial") from exc
    if not os.path.exists(path) and path.startswith("/"):
        raise LinkUnavailable(f"no serial port at {path}; is the device plugged in?")
    try:
        port = serial.Serial(path, baudrate=baud, timeout=0, write_timeout=5.0)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise LinkUnavailable(f"cannot open serial port {path} ({exc})") from exc
    return SerialLink(port)


class SerialLink:
    """A ByteLink over an open ``serial.Serial`` (non-blocking reads, select on POSIX)."""

    def __init__(self, port):
        self.port = port
        self._closed = False

    def write(self, data: bytes) -> None:
        import serial

        if self._closed:
            raise LinkClosed("serial link closed")
        try:
            self.port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise LinkClosed(f"serial port lost while writing ({exc})") from exc

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        import serial

        if self._closed:
            raise LinkClosed("serial link closed")
        try:
            fileno = self.port.fileno() if hasattr(self.port, "fileno") else None
            if fileno is not None:
                ready, _, _ = select.select([fileno], [], [], max(0.0, timeout_s))
                if not ready:
                    return b""
            else:  # pragma: no cover - Windows
                deadline = time.monotonic() + timeout_s
                while not self.port.in_waiting and time.monotonic() < deadline:
                    time.sleep(0.001)
            data = self.port.read(max_bytes)
        except (serial.SerialException, OSError, TypeError) as exc:
            raise LinkClosed(f"serial port lost ({exc})") from exc
        return data

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.port.close()
            except Exception:
                pass
