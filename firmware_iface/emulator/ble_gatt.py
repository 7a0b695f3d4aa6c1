"""Serve a byte stream (the emulated device) as a BLE GATT peripheral with bumble.

The peripheral exposes the tonuslab GATT layout (``firmware_iface/PROTOCOL.md``, "BLE
transport"): the host writes command bytes to the write characteristic (with or without response)
and receives the device's byte stream as notifications on the notify characteristic, packed and
cut to the negotiated ATT MTU (a notification may hold several frames or part of one).

Used on a :class:`bumble.link.LocalLink` next to a bumble central, it lets the host's real BLE
driver (bleak's ``BleakClient`` with the bumble backend) run end to end in CI. ``drop_link``
disconnects from the device side, optionally staying silent for a while, to test reconnection.

bumble is imported lazily (inside the functions), so importing this module needs no bumble.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from firmware_iface.gatt import NOTIFY_CHAR_UUID, SERVICE_UUID, WRITE_CHAR_UUID

DEFAULT_ADDRESS = "D0:D0:D0:D0:D0:01"
DEFAULT_NAME = "tonuslab-emu"


class GattBytePeripheral:
    """A bumble peripheral carrying a byte pipe over GATT.

    Create with :meth:`create` on the event loop that owns ``link``. Bytes written by the host go
    to ``on_host_bytes`` (called on that loop); :meth:`send` (thread-safe) queues bytes for the
    host. Bytes sent while no host is subscribed are dropped, as a radio would lose them.

    Attributes
    ----------
    device : bumble.device.Device
        The bumble device (peripheral role).
    notifications_sent : int
        Notifications sent so far.
    bytes_dropped : int
        Bytes discarded because no host was subscribed (e.g. during a dropped link).
    """

    def __init__(self) -> None:  # use create()
        self.device = None
        self.on_host_bytes: Callable[[bytes], None] | None = None
        #: Called (on the event loop) when the host disconnects or is disconnected.
        self.on_disconnect: Callable[[], None] | None = None
        self.notifications_sent = 0
        self.bytes_sent = 0
        self.bytes_dropped = 0
        self.connections_seen = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._wake: asyncio.Event | None = None
        self._sender: asyncio.Task | None = None
        self._connection = None
        self._subscribed = False
        self._advertising_data = b""
        self._max_chunk: int | None = None
        self._notify_char = None
        self._quiet = False
        self._stalled = False
        self._connected_event: asyncio.Event | None = None

    @classmethod
    async def create(
        cls,
        link,
        *,
        on_host_bytes: Callable[[bytes], None] | None = None,
        address: str = DEFAULT_ADDRESS,
        name: str = DEFAULT_NAME,
        max_chunk: int | None = None,
        advertise: bool = True,
    ) -> GattBytePeripheral:
        """Create, power on and (by default) advertise the peripheral on ``link``.

        Parameters
        ----------
        link : bumble.link.LocalLink
            The in-process link shared with the central.
        on_host_bytes : callable, optional
            Receives each write from the host (bytes), on the event loop.
        address, name : str
            Bluetooth address and advertised local name.
        max_chunk : int, optional
            Cap on bytes per notification, below the MTU limit (tests use it to split frames).
        advertise : bool
            Start advertising the tonuslab service at once.
        """
        from bumble import gatt
        from bumble.controller import Controller
        from bumble.core import UUID, AdvertisingData
        from bumble.device import Device
        from bumble.hci import Address
        from bumble.host import Host
        from bumble.transport.common import AsyncPipeSink

        self = cls()
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._connected_event = asyncio.Event()
        self.on_host_bytes = on_host_bytes
        self._max_chunk = max_chunk
        controller = Controller("peripheral", link=link, public_address=address)
        device = Device(
            name=name, address=Address(address), host=Host(controller, AsyncPipeSink(controller))
        )
        self.device = device

        def on_write(_connection, value) -> None:
            if self.on_host_bytes is not None:
                self.on_host_bytes(bytes(value))

        write_char = gatt.Characteristic(
            WRITE_CHAR_UUID,
            gatt.Characteristic.Properties.WRITE
            | gatt.Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
            gatt.Characteristic.WRITEABLE,
            gatt.CharacteristicValue(write=on_write),
        )
        notify_char = gatt.Characteristic(
            NOTIFY_CHAR_UUID,
            gatt.Characteristic.Properties.NOTIFY,
            gatt.Characteristic.READABLE,
            b"",
        )
        self._notify_char = notify_char
        device.add_service(gatt.Service(SERVICE_UUID, [write_char, notify_char]))
        device.on("connection", self._on_connection)
        device.on("characteristic_subscription", self._on_subscription)
        await device.power_on()
        self._advertising_data = bytes(
            AdvertisingData(
                [
                    (AdvertisingData.FLAGS, bytes([0x06])),
                    (
                        AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                        bytes(UUID(SERVICE_UUID)),
                    ),
                    (AdvertisingData.COMPLETE_LOCAL_NAME, name.encode()),
                ]
            )
        )
        self._sender = asyncio.get_running_loop().create_task(self._send_loop())
        if advertise:
            await self.start_advertising()
        return self

    # ------------------------------------------------------------------------------ state
    @property
    def connected(self) -> bool:
        """True while a host is connected."""
        return self._connection is not None

    @property
    def subscribed(self) -> bool:
        """True while the connected host has notifications enabled."""
        return self._connection is not None and self._subscribed

    @property
    def att_mtu(self) -> int:
        """ATT MTU of the current connection (23 before the exchange, 0 if not connected)."""
        return self._connection.att_mtu if self._connection is not None else 0

    @property
    def pending_bytes(self) -> int:
        """Bytes queued for notification and not yet sent."""
        return len(self._buffer)

    async def wait_subscribed(self, timeout_s: float = 5.0) -> None:
        """Wait until a host is connected and subscribed."""
        async with asyncio.timeout(timeout_s):
            while not self.subscribed:
                self._connected_event.clear()
                await self._connected_event.wait()

    # ------------------------------------------------------------------------------ control
    async def start_advertising(self) -> None:
        """Advertise the tonuslab service and name (connectable)."""
        await self.device.start_advertising(
            advertising_data=self._advertising_data,
            advertising_interval_min=20,
            advertising_interval_max=20,
        )

    async def drop_link(self, silent_s: float = 0.0, fade_s: float = 0.0) -> None:
        """Disconnect the host from the device side, then advertise again after ``silent_s``.

        With ``fade_s`` > 0 nothing gets through for that long before the disconnect (a radio
        fade ending in a supervision timeout): bytes queued meanwhile are lost with the link.
        Bytes sent while disconnected are dropped too (all counted in :attr:`bytes_dropped`).
        """
        self._quiet = True
        try:
            if fade_s > 0:
                self._stalled = True
                await asyncio.sleep(fade_s)
            connection = self._connection
            if self.device.is_advertising:
                await self.device.stop_advertising()
            if connection is not None:
                await connection.disconnect()
            if silent_s > 0:
                await asyncio.sleep(silent_s)
        finally:
            self._quiet = False
            self._stalled = False
        await self._readvertise()

    async def _readvertise(self) -> None:
        if not self._quiet and self._connection is None and not self.device.is_advertising:
            await self.start_advertising()

    async def close(self) -> None:
        """Stop sending, disconnect and power off."""
        self._quiet = True
        if self._sender is not None:
            self._sender.cancel()
        if self.device.is_advertising:
            await self.device.stop_advertising()
        if self._connection is not None:
            try:
                await self._connection.disconnect()
            except Exception:  # best effort at teardown
                pass

    def send(self, data: bytes) -> None:
        """Queue bytes for the host (thread-safe); dropped if no host is subscribed."""
        if not data:
            return
        with self._lock:
            if not self.subscribed:
                self.bytes_dropped += len(data)
                return
            self._buffer += data
        self._loop.call_soon_threadsafe(self._wake.set)

    # ------------------------------------------------------------------------------ internals
    def _on_connection(self, connection) -> None:
        self._connection = connection
        self._subscribed = False
        self.connections_seen += 1
        connection.on("disconnection", lambda reason: self._on_disconnection(connection))
        self._connected_event.set()

    def _on_disconnection(self, connection) -> None:
        if self._connection is connection:
            with self._lock:
                self._connection = None
                self._subscribed = False
                self.bytes_dropped += len(self._buffer)
                self._buffer.clear()
            self._connected_event.set()
            if self.on_disconnect is not None:
                self.on_disconnect()
            if not self._quiet:  # a device advertises again once its host has gone
                self._loop.create_task(self._readvertise())

    def _on_subscription(self, connection, characteristic, notify_enabled, indicate_enabled):
        if characteristic is self._notify_char and connection is self._connection:
            self._subscribed = bool(notify_enabled)
            self._connected_event.set()

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while not self._stalled:
                connection = self._connection
                if connection is None:
                    break
                size = connection.att_mtu - 3
                if self._max_chunk is not None:
                    size = min(size, self._max_chunk)
                with self._lock:
                    if not self._buffer:
                        break
                    chunk = bytes(self._buffer[:size])
                    del self._buffer[:size]
                try:
                    await self.device.notify_subscriber(connection, self._notify_char, chunk)
                except Exception:
                    with self._lock:
                        self.bytes_dropped += len(chunk)
                    continue
                self.notifications_sent += 1
                self.bytes_sent += len(chunk)
                # notify_subscriber need not suspend: yield so host writes and link traffic
                # are served between notifications (a radio interleaves them too).
                await asyncio.sleep(0)


class _PeripheralByteLink:
    """The device's side of the radio as a ByteLink, for :class:`DeviceRunner`.

    ``read`` returns what the host wrote; ``write`` queues notifications, blocking while more
    than ``capacity`` bytes wait (the radio's back-pressure) and dropping bytes while no host is
    subscribed (what the device does on a disconnect is up to :class:`BleEmulator`).
    """

    def __init__(self, capacity: int = 16384) -> None:
        self.peripheral: GattBytePeripheral | None = None
        self.capacity = capacity
        #: Every byte the device produced, heard or not (when recording is on).
        self.output_log: bytearray | None = None
        self._rx = bytearray()
        self._cond = threading.Condition()
        self._closed = False

    def host_bytes(self, data: bytes) -> None:
        with self._cond:
            self._rx += data
            self._cond.notify_all()

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        from firmware_iface.errors import LinkClosed

        with self._cond:
            if not self._rx and not self._closed:
                self._cond.wait(max(0.0, timeout_s))
            if self._closed:
                raise LinkClosed("BLE emulator stopped")
            out = bytes(self._rx[:max_bytes])
            del self._rx[:max_bytes]
            return out

    def write(self, data: bytes) -> None:
        from firmware_iface.errors import LinkClosed

        peripheral = self.peripheral
        while (
            not self._closed and peripheral.subscribed and peripheral.pending_bytes > self.capacity
        ):
            time.sleep(0.001)
        if self._closed:
            raise LinkClosed("BLE emulator stopped")
        if self.output_log is not None:
            self.output_log += data
        peripheral.send(data)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class BleEmulator:
    """The emulated device (:class:`~firmware_iface.emulator.EmulatedDevice`) as a BLE peripheral.

    A :class:`GattBytePeripheral` on ``link`` carries the protocol byte stream; a
    :class:`~firmware_iface.emulator.DeviceRunner` thread runs the device on it.

    On a disconnect the device follows ``PROTOCOL.md`` (sections 5 and 9): it returns to IDLE and
    cancels pending stimulation; the host reconnects and resumes with IDENTIFY and START, and
    sample numbers continue. Frames queued for the radio when the link dropped are lost, which
    the host sees as an exact gap in sample numbers. With ``stop_on_disconnect=False`` the device
    keeps streaming, unheard, through the outage (a firmware that never stops sampling): the
    gap then spans the whole outage and streaming resumes as soon as the host re-subscribes.

    Parameters
    ----------
    link : bumble.link.LocalLink
        The in-process radio shared with the host's central.
    loop : asyncio.AbstractEventLoop
        The running loop (in another thread) that owns ``link``.
    device : EmulatedDevice, optional
        Default: ``make_device()`` (the simple signal source).
    speed : {"realtime", "fast"}
        ``"fast"`` runs the device clock ahead as fast as notifications drain.
    name, address, max_chunk
        As for :meth:`GattBytePeripheral.create`.
    stop_on_disconnect : bool
        Return to IDLE when the host goes away (default, as the protocol requires).
    record_output : bool
        Keep every byte the device produced, heard by the host or not, in :attr:`output_log`
        (tests use it as the oracle of what was lost).
    """

    def __init__(
        self,
        link,
        loop: asyncio.AbstractEventLoop,
        device=None,
        *,
        speed: str = "realtime",
        name: str = DEFAULT_NAME,
        address: str = DEFAULT_ADDRESS,
        max_chunk: int | None = None,
        stop_on_disconnect: bool = True,
        record_output: bool = False,
    ) -> None:
        from firmware_iface.emulator.runner import DeviceRunner, make_device

        self.loop = loop
        self._device_link = _PeripheralByteLink()
        if record_output:
            self._device_link.output_log = bytearray()
        self.peripheral = asyncio.run_coroutine_threadsafe(
            GattBytePeripheral.create(
                link,
                on_host_bytes=self._device_link.host_bytes,
                address=address,
                name=name,
                max_chunk=max_chunk,
            ),
            loop,
        ).result(30)
        self._device_link.peripheral = self.peripheral
        self.runner = DeviceRunner(
            device or make_device(), self._device_link, speed=speed, name="ble"
        )
        if stop_on_disconnect:
            self.peripheral.on_disconnect = self._host_lost
        self.runner.start()

    def _host_lost(self) -> None:
        with self.runner.lock:  # back to IDLE, pending pulses cancelled (PROTOCOL.md 5 and 9)
            self.runner.device.host_lost()

    @property
    def output_log(self) -> bytes | None:
        """Everything the device sent (with ``record_output=True``), else None."""
        log = self._device_link.output_log
        return None if log is None else bytes(log)

    @property
    def device(self):
        """The :class:`~firmware_iface.emulator.EmulatedDevice` (hold ``runner.lock`` to touch)."""
        return self.runner.device

    def drop_link(self, silent_s: float = 0.0, fade_s: float = 0.0) -> None:
        """Disconnect from the device side and stay unreachable for ``silent_s`` seconds.

        ``fade_s``: first let nothing through for that long (what is queued is then lost).
        Returns at once; the device advertises again after ``fade_s + silent_s``.
        """
        asyncio.run_coroutine_threadsafe(self.peripheral.drop_link(silent_s, fade_s), self.loop)

    def close(self) -> None:
        """Stop the device thread and the peripheral."""
        self._device_link.close()
        self.runner.stop()
        try:
            asyncio.run_coroutine_threadsafe(self.peripheral.close(), self.loop).result(5)
        except Exception:
            pass

    def __enter__(self) -> BleEmulator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
