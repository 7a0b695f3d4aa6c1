"""bleak backends that drive a `bumble <https://github.com/google/bumble>`_ central.

bleak chooses its platform backend at run time and accepts a custom one
(``BleakClient(address, backend=...)``, ``BleakScanner(backend=...)``). The classes made by
:func:`bleak_backends` implement bleak's :class:`~bleak.backends.client.BaseBleakClient` and
:class:`~bleak.backends.scanner.BaseBleakScanner` over a bumble :class:`~bumble.device.Device`
acting as the central. With the central on a :class:`bumble.link.LocalLink` next to an emulated
peripheral, the real driver code (``BleakClient``, our :mod:`acquire.ble` link) runs without any
Bluetooth hardware or BlueZ; this is how the BLE path is tested in CI.

Everything here must run on the event loop that owns the bumble devices (bumble is asyncio-only).
bumble is imported lazily by :func:`bleak_backends` and :func:`make_local_central`; importing this
module costs nothing.
"""

from __future__ import annotations

import asyncio
import uuid as uuid_module
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError

#: ATT MTU the backend asks for at connection time (what BlueZ, CoreBluetooth and WinRT do).
REQUESTED_ATT_MTU = 247

_PROPERTY_NAMES = {
    0x01: "broadcast",
    0x02: "read",
    0x04: "write-without-response",
    0x08: "write",
    0x10: "notify",
    0x20: "indicate",
    0x40: "authenticated-signed-writes",
    0x80: "extended-properties",
}


def _uuid_str(bumble_uuid) -> str:
    """bleak's normalised form (lower-case, 128-bit, dashed) of a bumble UUID."""
    little_endian = bumble_uuid.to_bytes(force_128=True)
    return str(uuid_module.UUID(bytes=bytes(reversed(little_endian))))


async def make_local_central(link, address: str = "C0:C0:C0:C0:C0:01"):
    """Create and power on a bumble central on ``link`` (a :class:`bumble.link.LocalLink`).

    Must be awaited on the event loop that will run the BLE link.

    Returns
    -------
    bumble.device.Device
        The powered central, ready for :func:`bleak_backends`.
    """
    from bumble.controller import Controller
    from bumble.device import Device
    from bumble.hci import Address
    from bumble.host import Host
    from bumble.transport.common import AsyncPipeSink

    controller = Controller("central", link=link, public_address=address)
    device = Device(
        name="tonuslab-host",
        address=Address(address),
        host=Host(controller, AsyncPipeSink(controller)),
    )
    await device.power_on()
    return device


def bleak_backends(central) -> tuple[type[BaseBleakClient], type[BaseBleakScanner]]:
    """Return ``(client_backend, scanner_backend)`` classes bound to a bumble central.

    Parameters
    ----------
    central : bumble.device.Device
        A powered-on bumble device used as the central (see :func:`make_local_central`).

    Returns
    -------
    tuple of type
        Pass the first as ``BleakClient(..., backend=...)`` and the second as
        ``BleakScanner(..., backend=...)`` (or to :func:`acquire.ble.open_ble_link`).
    """
    client_cls = type("BumbleBleakClient", (_BumbleClient,), {"central": central})
    scanner_cls = type("BumbleBleakScanner", (_BumbleScanner,), {"central": central})
    return client_cls, scanner_cls


class _BumbleScanner(BaseBleakScanner):
    """bleak scanner backend over a bumble central's LE scanning."""

    central: Any = None

    def __init__(
        self,
        detection_callback=None,
        service_uuids: list[str] | None = None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._active = scanning_mode != "passive"
        self._listening = False

    def _on_advertisement(self, advertisement) -> None:
        from bumble.core import AdvertisingData

        data = advertisement.data
        service_uuids: list[str] = []
        for kind in (
            AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
            AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
            AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
            AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
        ):
            service_uuids.extend(_uuid_str(u) for u in data.get(kind) or [])
        if not self.is_allowed_uuid(service_uuids):
            return
        name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(
            AdvertisingData.SHORTENED_LOCAL_NAME
        )
        manufacturer = data.get(AdvertisingData.MANUFACTURER_SPECIFIC_DATA)
        adv = AdvertisementData(
            local_name=name,
            manufacturer_data=dict([manufacturer]) if manufacturer else {},
            service_data={},
            service_uuids=service_uuids,
            tx_power=None,
            rssi=int(advertisement.rssi),
            platform_data=(advertisement,),
        )
        address = advertisement.address.to_string(False)
        device = self.create_or_update_device(address, address, name, advertisement.address, adv)
        self.call_detection_callbacks(device, adv)

    async def start(self) -> None:
        self.seen_devices = {}
        if not self._listening:
            self.central.on("advertisement", self._on_advertisement)
            self._listening = True
        await self.central.start_scanning(active=self._active, filter_duplicates=False)

    async def stop(self) -> None:
        if self._listening:
            self.central.remove_listener("advertisement", self._on_advertisement)
            self._listening = False
        if self.central.is_scanning:
            await self.central.stop_scanning()


class _BumbleClient(BaseBleakClient):
    """bleak client backend over a bumble central (connect, MTU, discovery, notify, write)."""

    central: Any = None

    def __init__(self, address_or_ble_device, **kwargs: Any) -> None:
        super().__init__(
            address_or_ble_device,
            disconnected_callback=kwargs.pop("disconnected_callback", None),
            timeout=kwargs.pop("timeout", 10.0),
        )
        self._peer_address = (
            address_or_ble_device.details if isinstance(address_or_ble_device, BLEDevice) else None
        )
        self._connection = None
        self._peer = None
        self._disconnecting = False
        self._disconnected = asyncio.Event()
        self._name = (
            address_or_ble_device.name if isinstance(address_or_ble_device, BLEDevice) else None
        )

    @property
    def name(self) -> str:
        return self._name or self.address

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and not self._disconnected.is_set()

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        from bumble.device import Peer
        from bumble.hci import Address

        address = self._peer_address or Address(self.address)
        try:
            connection = await self.central.connect(address, timeout=self._timeout)
        except Exception as exc:  # bumble raises its own connection errors and timeouts
            raise BleakDeviceNotFoundError(self.address, f"cannot connect: {exc}") from exc
        self._connection = connection
        self._disconnected.clear()
        connection.on("disconnection", self._on_disconnection)
        peer = Peer(connection)
        self._peer = peer
        await peer.request_mtu(REQUESTED_ATT_MTU)
        await peer.discover_all()
        self.services = self._build_services(peer)

    def _build_services(self, peer) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        connection = self._connection
        for service in peer.services:
            bleak_service = BleakGATTService(service, service.handle, _uuid_str(service.uuid))
            collection.add_service(bleak_service)
            for characteristic in service.characteristics:
                properties = [
                    name for bit, name in _PROPERTY_NAMES.items() if characteristic.properties & bit
                ]
                bleak_char = BleakGATTCharacteristic(
                    characteristic,
                    characteristic.handle,
                    _uuid_str(characteristic.uuid),
                    properties,
                    lambda: connection.att_mtu - 3,
                    bleak_service,
                )
                collection.add_characteristic(bleak_char)
                for descriptor in characteristic.descriptors:
                    collection.add_descriptor(
                        BleakGATTDescriptor(
                            descriptor, descriptor.handle, _uuid_str(descriptor.type), bleak_char
                        )
                    )
        return collection

    def _on_disconnection(self, reason) -> None:
        self._disconnected.set()
        if not self._disconnecting and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        if self._connection is None or self._disconnected.is_set():
            return
        self._disconnecting = True
        try:
            await self._connection.disconnect()
            await asyncio.wait_for(self._disconnected.wait(), timeout=self._timeout)
        except Exception as exc:
            if not self._disconnected.is_set():
                raise BleakError(f"disconnect failed: {exc}") from exc

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("pairing is not supported by the bumble test backend")

    async def unpair(self) -> None:
        raise NotImplementedError("pairing is not supported by the bumble test backend")

    def _require_connection(self):
        if not self.is_connected:
            raise BleakError("Not connected")
        return self._peer

    async def read_gatt_char(self, characteristic, *, use_cached=False, **kwargs) -> bytearray:
        return bytearray(await self._require_connection().read_value(characteristic.obj))

    async def read_gatt_descriptor(self, descriptor, *, use_cached=False, **kwargs) -> bytearray:
        return bytearray(await self._require_connection().read_value(descriptor.obj))

    async def write_gatt_char(self, characteristic, data, response: bool) -> None:
        await self._require_connection().write_value(
            characteristic.obj, bytes(data), with_response=response
        )

    async def write_gatt_descriptor(self, descriptor, data) -> None:
        await self._require_connection().write_value(descriptor.obj, bytes(data), True)

    async def start_notify(self, characteristic, callback, **kwargs: Any) -> None:
        def subscriber(value: bytes) -> None:
            callback(bytearray(value))

        characteristic.obj.bleak_subscriber = subscriber
        await self._require_connection().subscribe(characteristic.obj, subscriber)

    async def stop_notify(self, characteristic) -> None:
        subscriber = getattr(characteristic.obj, "bleak_subscriber", None)
        await self._require_connection().unsubscribe(characteristic.obj, subscriber)


class LocalBleWorld:
    """An in-process BLE radio: a bumble ``LocalLink`` and a central, on one event-loop thread.

    Peripherals (the emulated device's GATT server, :mod:`firmware_iface.emulator.ble_gatt`) join
    the same link with :meth:`add_peripheral`. :meth:`link_options` gives the keyword arguments
    that route :class:`acquire.ble.BleLink` through this world, and :meth:`register` makes it
    selectable in a URL (``ble://NAME?backend=<name>``).

    Examples
    --------
    >>> world = LocalBleWorld()                                     # doctest: +SKIP
    >>> device = world.add_peripheral(on_host_bytes=print)          # doctest: +SKIP
    >>> link = open_ble_link("ble://tonuslab-emu", **world.link_options())  # doctest: +SKIP
    """

    def __init__(self, central_address: str = "C0:C0:C0:C0:C0:01") -> None:
        from acquire.ble._loop import LoopThread

        self.loop_thread = LoopThread(name="tonuslab-ble-world")
        self.loop = self.loop_thread.loop
        self._registered: list[str] = []

        async def build():
            from bumble.link import LocalLink

            link = LocalLink()
            return link, await make_local_central(link, central_address)

        self.link, self.central = self.run(build())
        self.client_backend, self.scanner_backend = bleak_backends(self.central)
        self.peripherals: list = []
        self.emulators: list = []

    def run(self, coroutine, timeout_s: float | None = 30.0):
        """Run a coroutine on the world's loop and return its result."""
        return self.loop_thread.run(coroutine, timeout_s)

    def add_peripheral(self, **kwargs):
        """Create an advertising :class:`~firmware_iface.emulator.ble_gatt.GattBytePeripheral`."""
        from firmware_iface.emulator.ble_gatt import GattBytePeripheral

        peripheral = self.run(GattBytePeripheral.create(self.link, **kwargs))
        self.peripherals.append(peripheral)
        return peripheral

    def add_emulator(self, device=None, **kwargs):
        """Serve an emulated device over BLE (a ``firmware_iface.emulator.ble_gatt.BleEmulator``).

        ``device`` defaults to ``firmware_iface.emulator.make_device()``; keyword arguments go to
        ``BleEmulator`` (``speed``, ``name``, ``address``, ``max_chunk``).
        """
        from firmware_iface.emulator.ble_gatt import BleEmulator

        emulator = BleEmulator(self.link, self.loop, device, **kwargs)
        self.emulators.append(emulator)
        return emulator

    def link_options(self) -> dict:
        """Keyword arguments for :class:`acquire.ble.BleLink` / ``open_ble_link``."""
        return {
            "client_backend": self.client_backend,
            "scanner_backend": self.scanner_backend,
            "loop": self.loop,
        }

    def register(self, name: str = "local") -> str:
        """Register this world as ``ble://...?backend=<name>``; returns the name."""
        from acquire.ble import register_backend

        register_backend(name, **self.link_options())
        self._registered.append(name)
        return name

    def close(self) -> None:
        """Unregister, close the peripherals and stop the loop thread."""
        from acquire.ble import register_backend

        for name in self._registered:
            register_backend(name)
        self._registered.clear()
        for emulator in self.emulators:
            emulator.close()
        for peripheral in self.peripherals:
            try:
                self.run(peripheral.close(), 5.0)
            except Exception:
                pass
        self.loop_thread.stop()
