"""Find devices to record from: serial ports (with USB ids) and BLE devices advertising tonuslab.

Used by ``tonuslab devices``. pyserial and bleak are imported only inside the functions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SerialPortInfo:
    """One serial port as the technician needs to see it.

    Attributes
    ----------
    device : str
        Path or name to pass to ``tonuslab record`` (``/dev/ttyACM0``, ``COM3``).
    description : str
        pyserial's description (product name for USB devices).
    vid, pid : int or None
        USB vendor and product ids (None for non-USB ports).
    serial_number, manufacturer, location : str or None
        USB serial number, manufacturer string and bus location, when known.
    """

    device: str
    description: str = ""
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    manufacturer: str | None = None
    location: str | None = None

    @property
    def is_usb(self) -> bool:
        """True for USB serial adapters (a vendor and product id are known)."""
        return self.vid is not None and self.pid is not None

    @property
    def usb_id(self) -> str | None:
        """``"VVVV:PPPP"`` in hexadecimal, or None for non-USB ports."""
        return f"{self.vid:04X}:{self.pid:04X}" if self.is_usb else None

    def to_dict(self) -> dict:
        """JSON-serialisable form (as printed by ``tonuslab devices --json``)."""
        return {
            "kind": "serial",
            "device": self.device,
            "description": self.description,
            "usb_id": self.usb_id,
            "serial_number": self.serial_number,
            "manufacturer": self.manufacturer,
            "location": self.location,
        }


@dataclass(frozen=True)
class BleDeviceInfo:
    """A BLE device that advertised the tonuslab service during a scan."""

    address: str
    name: str | None
    rssi: int | None
    service_uuids: tuple[str, ...] = field(default=())

    @property
    def url(self) -> str:
        """The source URL to record from it (by address: names need not be unique)."""
        return f"ble://{self.address}"

    def to_dict(self) -> dict:
        """JSON-serialisable form (as printed by ``tonuslab devices --json``)."""
        return {
            "kind": "ble",
            "address": self.address,
            "name": self.name,
            "rssi": self.rssi,
            "url": self.url,
        }


def serial_port_info(port) -> SerialPortInfo:
    """Convert a pyserial ``ListPortInfo`` into a :class:`SerialPortInfo`."""
    description = port.description if port.description not in (None, "n/a") else ""
    return SerialPortInfo(
        device=port.device,
        description=description,
        vid=port.vid,
        pid=port.pid,
        serial_number=port.serial_number or None,
        manufacturer=port.manufacturer or None,
        location=port.location or None,
    )


def list_serial_ports(*, usb_only: bool = False, ports: Iterable | None = None) -> list:
    """Serial ports on this computer, USB adapters first, then by device name.

    Parameters
    ----------
    usb_only : bool
        Keep only USB serial adapters.
    ports : iterable of pyserial ``ListPortInfo``, optional
        Ports to describe instead of ``serial.tools.list_ports.comports()``.

    Returns
    -------
    list of SerialPortInfo
    """
    if ports is None:
        from serial.tools import list_ports

        ports = list_ports.comports()
    infos = [serial_port_info(p) for p in ports]
    if usb_only:
        infos = [p for p in infos if p.is_usb]
    return sorted(infos, key=lambda p: (not p.is_usb, p.device))


async def scan_ble_async(
    timeout_s: float = 3.0, *, service_uuid: str | None = None, scanner_backend=None
) -> list[BleDeviceInfo]:
    """Scan for BLE devices advertising the tonuslab service (see :func:`scan_ble`)."""
    from bleak import BleakScanner

    from acquire.ble import SERVICE_UUID, BleUnavailableError, describe_ble_error

    uuid = (service_uuid or SERVICE_UUID).lower()
    try:
        found = await BleakScanner.discover(
            timeout=timeout_s, return_adv=True, service_uuids=[uuid], backend=scanner_backend
        )
    except Exception as exc:
        raise BleUnavailableError(describe_ble_error(exc)) from exc
    devices = [
        BleDeviceInfo(
            address=device.address,
            name=adv.local_name or device.name,
            rssi=adv.rssi,
            service_uuids=tuple(adv.service_uuids),
        )
        for device, adv in found.values()
        if uuid in [u.lower() for u in adv.service_uuids]
    ]
    return sorted(devices, key=lambda d: (-(d.rssi if d.rssi is not None else -999), d.address))


def scan_ble(
    timeout_s: float = 3.0,
    *,
    service_uuid: str | None = None,
    scanner_backend=None,
    loop: asyncio.AbstractEventLoop | None = None,
) -> list[BleDeviceInfo]:
    """Scan for BLE devices advertising the tonuslab service, strongest signal first.

    Parameters
    ----------
    timeout_s : float
        How long to listen, in seconds.
    service_uuid : str, optional
        Service to look for (default: the tonuslab service, ``acquire.ble.SERVICE_UUID``).
    scanner_backend : type, optional
        bleak scanner backend (default: the platform's); tests pass the bumble one.
    loop : asyncio.AbstractEventLoop, optional
        Run the scan on this running loop (from another thread) instead of a new one.

    Raises
    ------
    acquire.ble.BleUnavailableError
        No usable Bluetooth adapter (one-line message).
    """
    coroutine = scan_ble_async(
        timeout_s, service_uuid=service_uuid, scanner_backend=scanner_backend
    )
    if loop is not None:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout_s + 30)
    return asyncio.run(coroutine)


def format_serial_port(port: SerialPortInfo) -> str:
    """One line for a serial port: device, USB id, serial number, description."""
    parts = [f"{port.device:<16}"]
    parts.append(f"USB {port.usb_id}" if port.is_usb else "(not USB)")
    if port.serial_number:
        parts.append(f"SER={port.serial_number}")
    text = " ".join(x for x in (port.manufacturer, port.description) if x)
    if text:
        parts.append(f"- {text}")
    return "  ".join(parts)


def format_ble_device(device: BleDeviceInfo) -> str:
    """One line for a BLE device: URL, name, signal strength."""
    rssi = f"{device.rssi} dBm" if device.rssi is not None else "RSSI n/a"
    return f"{device.url:<26}  {device.name or '(no name)'}  {rssi}"
