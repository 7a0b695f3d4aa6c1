"""A synchronous byte link over BLE GATT, built on bleak's public ``BleakClient``.

The device sends its byte stream (COBS frames, see ``firmware_iface/PROTOCOL.md``) as
notifications on one characteristic and receives commands as writes on another. This module turns
that into the ByteLink every source shares (``write(bytes)``, ``read(max_bytes, timeout_s)``,
``close()``), so BLE goes through the same decode path as serial and TCP: frames split across
notifications, or several frames in one notification, are reassembled by the stream decoder.

Design rules (from bleak's known pitfalls, see the engineering notes):

- the notification callback only enqueues ``(host_time_s, bytes)``; parsing happens elsewhere;
- the MTU is read from ``char.max_write_without_response_size``; writes are split to it;
- on an unsolicited disconnect the link reports a ``disconnected`` event, ends the partial frame
  with a 0x00 delimiter, then reconnects with backoff: rescan, a *new* ``BleakClient``,
  re-subscribe, and reports ``reconnected``. The device's sample numbers give the exact gap.
"""

from __future__ import annotations

import asyncio
import collections
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from acquire.ble._loop import LoopThread
from acquire.errors import LinkLostError, SourceError
from firmware_iface.errors import LinkClosed

#: Default reconnect delays in seconds (the last one repeats).
DEFAULT_BACKOFF_S: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)

_ADDRESS_RE = re.compile(
    r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$"  # Linux / Windows MAC address
    r"|^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$"  # macOS CoreBluetooth UUID
)


class BleError(SourceError):
    """A BLE device cannot be used (not found, wrong GATT layout, link down)."""


class BleDeviceNotFoundError(BleError):
    """No device with the requested address or name advertised the tonuslab service."""


class BleUnavailableError(BleError):
    """This computer has no usable Bluetooth adapter (or no BlueZ service)."""


class BleNotConnectedError(BleError, LinkClosed):
    """The BLE link is down: a write while reconnecting, or a read after :meth:`BleLink.close`.

    Also a :class:`firmware_iface.errors.LinkClosed`, as the ByteLink contract asks.
    """


class BleLinkLostError(BleError, LinkLostError, LinkClosed):
    """The BLE link was lost and reconnecting gave up (a ``LinkClosed`` for the host client)."""


@dataclass(frozen=True)
class BleEvent:
    """Something that happened to a BLE link, for the recorder's log and gap records.

    Attributes
    ----------
    kind : str
        ``"connected"`` (first connection), ``"disconnected"`` (unsolicited), ``"reconnected"``,
        ``"gave_up"`` (reconnecting stopped; reads then raise :class:`BleLinkLostError`) or
        ``"closed"`` (by :meth:`BleLink.close`).
    host_time_s : float
        When it happened, on the link's clock (``time.monotonic`` unless injected).
    address : str
        Device address (or the target if it never resolved).
    attempts : int
        For ``reconnected`` and ``gave_up``: connection attempts made since the disconnect.
    downtime_s : float
        For ``reconnected`` and ``gave_up``: seconds since the disconnect.
    mtu_payload : int
        Largest write without response after (re)connecting, in bytes (0 if not connected).
    detail : str
        Human-readable detail (e.g. the last error while reconnecting).
    """

    kind: str
    host_time_s: float
    address: str
    attempts: int = 0
    downtime_s: float = 0.0
    mtu_payload: int = 0
    detail: str = ""


def is_ble_address(target: str) -> bool:
    """True if ``target`` is a Bluetooth address (or a macOS device UUID), not a name."""
    return bool(_ADDRESS_RE.match(target))


@dataclass
class _Connection:
    client: Any
    notify_char: Any
    write_char: Any
    address: str
    name: str | None
    generation: int
    write_with_response: bool
    mtu_payload: int = field(default=20)


class BleLink:
    """A ByteLink over BLE: notifications in, writes out, reconnection in between.

    Parameters
    ----------
    target : str
        Device address (``AA:BB:CC:DD:EE:FF``, or a macOS UUID) or advertised local name.
    service_uuid, notify_uuid, write_uuid : str
        GATT layout: the service the device advertises, the characteristic that notifies the
        device-to-host bytes, the characteristic the host writes commands to.
    client_backend, scanner_backend : type, optional
        bleak backends (``BleakClient(backend=...)``, ``BleakScanner(backend=...)``); ``None``
        means bleak's platform backend. Tests pass the bumble backends
        (:func:`acquire.ble.bumble_backend.bleak_backends`).
    loop : asyncio.AbstractEventLoop, optional
        A running loop (in another thread) to drive bleak on; by default the link starts its own.
    scan_timeout_s, connect_timeout_s : float
        Limits for finding the device and for connecting (including service discovery).
    reconnect : bool
        Reconnect inside the link after an unsolicited disconnect (rescan, new ``BleakClient``,
        re-subscribe) and report it as events, reads returning ``b""`` meanwhile. Default
        ``False``: the disconnect ends the link (reads raise :class:`BleLinkLostError`, a
        ``LinkClosed``), as a vanished serial port does, and the recorder's own reconnect loop
        reopens the URL, which rescans, connects a new ``BleakClient`` and re-subscribes.
    backoff_s : sequence of float
        Delays before successive reconnect attempts; the last repeats.
    give_up_after_s : float or None
        Stop reconnecting after this long (``None``: never give up until closed).
    on_event : callable, optional
        Called with each :class:`BleEvent` on the BLE event-loop thread: it must return quickly
        and must not call :meth:`write` or :meth:`close` (they raise ``RuntimeError`` there).
        Events are also kept for :meth:`pop_events`.
    clock : callable
        Host clock for arrival times and events, in seconds (default ``time.monotonic``).
    """

    def __init__(
        self,
        target: str,
        *,
        service_uuid: str,
        notify_uuid: str,
        write_uuid: str,
        client_backend: type | None = None,
        scanner_backend: type | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        scan_timeout_s: float = 10.0,
        connect_timeout_s: float = 20.0,
        reconnect: bool = False,
        backoff_s: Sequence[float] = DEFAULT_BACKOFF_S,
        give_up_after_s: float | None = None,
        on_event: Callable[[BleEvent], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not target:
            raise BleError("empty BLE target: give an address or a device name (ble://NAME)")
        if not backoff_s or min(backoff_s) < 0:
            raise ValueError("backoff_s must be a non-empty sequence of non-negative delays")
        self.target = target
        self.service_uuid = service_uuid.lower()
        self.notify_uuid = notify_uuid.lower()
        self.write_uuid = write_uuid.lower()
        self._client_backend = client_backend
        self._scanner_backend = scanner_backend
        self._scan_timeout_s = float(scan_timeout_s)
        self._connect_timeout_s = float(connect_timeout_s)
        self._reconnect = bool(reconnect)
        self._backoff_s = tuple(float(d) for d in backoff_s)
        self._give_up_after_s = give_up_after_s
        self._on_event = on_event
        self._clock = clock

        self._own_loop: LoopThread | None = None
        if loop is None:
            self._own_loop = LoopThread()
            loop = self._own_loop.loop
        self._loop = loop
        self._loop_thread_id: int | None = None
        loop.call_soon_threadsafe(self._note_loop_thread)

        self._cond = threading.Condition()
        self._chunks: collections.deque[tuple[float, bytes]] = collections.deque()
        self._events: collections.deque[BleEvent] = collections.deque()
        self._connection: _Connection | None = None
        self._generation = 0
        self._closing = False
        self._closed = False
        self._failure: BaseException | None = None
        self._reconnect_task: asyncio.Task | None = None
        self.bytes_received = 0
        self.notifications_received = 0
        self.disconnect_count = 0

    # ----------------------------------------------------------------------------- lifecycle
    def open(self) -> BleLink:
        """Find the device, connect, subscribe; raises :class:`BleError` subclasses on failure."""
        self._check_thread()
        try:
            self._run(
                self._connect_once(first=True), self._scan_timeout_s + self._connect_timeout_s
            )
        except BaseException:
            self._stop_own_loop()
            raise
        return self

    def close(self) -> None:
        """Disconnect and stop; idempotent. Bytes already received stay readable."""
        self._check_thread()
        with self._cond:
            if self._closed:
                return
            self._closing = True
        try:
            self._run(self._shutdown(), 10.0)
        except Exception:  # a failing disconnect must not hide recorded data
            pass
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._stop_own_loop()

    def __enter__(self) -> BleLink:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ----------------------------------------------------------------------------- status
    @property
    def connected(self) -> bool:
        """True while a GATT connection is up and subscribed."""
        connection = self._connection
        return connection is not None and connection.client.is_connected

    @property
    def address(self) -> str:
        """Address of the connected (or last connected) device."""
        connection = self._connection
        return connection.address if connection is not None else self.target

    @property
    def device_name(self) -> str | None:
        """Advertised name of the connected device, if known."""
        connection = self._connection
        return connection.name if connection is not None else None

    @property
    def mtu_payload(self) -> int:
        """Bytes per write without response (``max_write_without_response_size``); 0 if down."""
        connection = self._connection
        return connection.mtu_payload if connection is not None and self.connected else 0

    def pop_events(self) -> list[BleEvent]:
        """Return and forget the events since the last call (thread-safe)."""
        with self._cond:
            events = list(self._events)
            self._events.clear()
        return events

    # ----------------------------------------------------------------------------- ByteLink
    def read(self, max_bytes: int = 65536, timeout_s: float | None = 0.1) -> bytes:
        """Return up to ``max_bytes`` received bytes, waiting up to ``timeout_s`` for the first.

        Returns ``b""`` on timeout (also while reconnecting). Raises :class:`BleLinkLostError`
        once reconnecting gave up and every received byte was read, and
        :class:`BleNotConnectedError` after :meth:`close` when nothing is left.
        """
        chunks = self.read_chunks(max_bytes, timeout_s)
        return b"".join(data for _, data in chunks)

    def read_chunks(
        self, max_bytes: int = 65536, timeout_s: float | None = 0.1
    ) -> list[tuple[float, bytes]]:
        """Like :meth:`read`, keeping each notification's host arrival time.

        Returns
        -------
        list of (float, bytes)
            ``(host_time_s, data)`` per notification (the last one may be cut at ``max_bytes``;
            its remainder keeps the same arrival time).
        """
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        deadline = None if timeout_s is None else time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while not self._chunks:
                if self._failure is not None:
                    raise self._failure
                if self._closed:
                    raise BleNotConnectedError(f"BLE link to {self.address} is closed")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                self._cond.wait(remaining)
            out: list[tuple[float, bytes]] = []
            budget = max_bytes
            while self._chunks and budget > 0:
                arrival, data = self._chunks.popleft()
                if len(data) > budget:
                    self._chunks.appendleft((arrival, data[budget:]))
                    data = data[:budget]
                out.append((arrival, data))
                budget -= len(data)
            return out

    def write(self, data: bytes) -> int:
        """Send ``data`` to the device, split to the negotiated MTU; returns ``len(data)``.

        Raises :class:`BleNotConnectedError` while the link is down (the caller decides whether to
        retry after a ``reconnected`` event).
        """
        self._check_thread()
        data = bytes(data)
        if not data:
            return 0
        connection = self._connection
        if self._closing or connection is None or not connection.client.is_connected:
            raise BleNotConnectedError(
                f"BLE link to {self.address} is down; wait for it to reconnect and retry"
            )
        try:
            self._run(self._write(connection, data), self._connect_timeout_s)
        except BleError:
            raise
        except Exception as exc:
            raise BleNotConnectedError(f"BLE write to {self.address} failed: {exc}") from exc
        return len(data)

    # ----------------------------------------------------------------------------- internals
    def _check_thread(self) -> None:
        if self._loop_thread_id == threading.get_ident():
            raise RuntimeError(
                "BleLink.open/write/close cannot be called from its event-loop thread "
                "(e.g. from on_event); hand the work to another thread"
            )

    def _run(self, coroutine, timeout_s: float):
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise BleError(
                f"BLE operation on {self.target} timed out after {timeout_s:.0f} s"
            ) from None

    def _note_loop_thread(self) -> None:
        self._loop_thread_id = threading.get_ident()

    def _stop_own_loop(self) -> None:
        if self._own_loop is not None:
            self._own_loop.stop()
            self._own_loop = None

    def _emit(self, kind: str, **fields: Any) -> None:
        event = BleEvent(kind=kind, host_time_s=self._clock(), address=self.address, **fields)
        with self._cond:
            self._events.append(event)
        if self._on_event is not None:
            self._on_event(event)

    def _on_notify(self, generation: int, data: bytearray) -> None:
        # bleak calls this on the loop for every notification: only enqueue.
        arrival = self._clock()
        with self._cond:
            if generation != self._generation or self._closed:
                return
            self._chunks.append((arrival, bytes(data)))
            self.bytes_received += len(data)
            self.notifications_received += 1
            self._cond.notify_all()

    async def _find_device(self):
        from bleak import BleakScanner

        wanted = self.target.lower()
        by_address = is_ble_address(self.target)

        def matches(device, adv) -> bool:
            if by_address:
                return device.address.lower() == wanted
            return adv.local_name == self.target or device.name == self.target

        try:
            device = await BleakScanner.find_device_by_filter(
                matches,
                timeout=self._scan_timeout_s,
                service_uuids=[self.service_uuid],
                backend=self._scanner_backend,
            )
        except Exception as exc:
            raise BleUnavailableError(
                f"cannot scan for BLE devices: {describe_ble_error(exc)}"
            ) from exc
        if device is None:
            raise BleDeviceNotFoundError(
                f"no BLE device '{self.target}' advertising the tonuslab service was found in "
                f"{self._scan_timeout_s:g} s; check it is on, in range and not connected elsewhere "
                "(see 'tonuslab devices')"
            )
        return device

    async def _connect_once(self, first: bool = False) -> None:
        from bleak import BleakClient

        device = await self._find_device()
        with self._cond:
            self._generation += 1
            generation = self._generation
        client = BleakClient(
            device,
            disconnected_callback=lambda _client: self._on_disconnect(generation),
            timeout=self._connect_timeout_s,
            backend=self._client_backend,
        )
        try:
            await client.connect()
        except Exception as exc:
            raise BleError(f"cannot connect to BLE device {device.address}: {exc}") from exc
        try:
            services = client.services
            notify_char = services.get_characteristic(self.notify_uuid)
            write_char = services.get_characteristic(self.write_uuid)
            if notify_char is None or write_char is None:
                raise BleError(
                    f"BLE device {device.address} lacks the tonuslab GATT characteristics "
                    f"({self.notify_uuid}, {self.write_uuid}); is it a tonuslab device?"
                )
            with_response = "write-without-response" not in write_char.properties
            connection = _Connection(
                client=client,
                notify_char=notify_char,
                write_char=write_char,
                address=device.address,
                name=device.name,
                generation=generation,
                write_with_response=with_response,
                mtu_payload=int(write_char.max_write_without_response_size),
            )
            self._connection = connection
            await client.start_notify(
                notify_char, lambda _char, data: self._on_notify(generation, data)
            )
        except BaseException:
            await _quiet_disconnect(client)
            raise
        if first:
            self._emit("connected", mtu_payload=connection.mtu_payload)

    async def _write(self, connection: _Connection, data: bytes) -> None:
        # Re-read the size each time: some platforms raise it a little after connecting.
        size = max(1, int(connection.write_char.max_write_without_response_size))
        if connection.write_with_response:
            size = min(max(size, 20), 512)
        for start in range(0, len(data), size):
            await connection.client.write_gatt_char(
                connection.write_char,
                data[start : start + size],
                response=connection.write_with_response,
            )

    def _on_disconnect(self, generation: int) -> None:
        reconnecting = self._reconnect_task is not None and not self._reconnect_task.done()
        with self._cond:
            if generation != self._generation or self._closing or reconnecting:
                # A drop during a reconnect attempt makes that attempt fail and retry.
                return
            self.disconnect_count += 1
            # End any partial frame so the stream decoder resynchronises cleanly.
            self._chunks.append((self._clock(), b"\x00"))
            self._cond.notify_all()
        self._emit("disconnected")
        if self._reconnect:
            self._reconnect_task = self._loop.create_task(self._reconnect_loop())
        else:
            self._fail("BLE device disconnected and reconnect is off")

    def _fail(self, detail: str, attempts: int = 0, downtime_s: float = 0.0) -> None:
        with self._cond:
            self._failure = BleLinkLostError(f"lost BLE link to {self.address}: {detail}")
            self._cond.notify_all()
        self._emit("gave_up", attempts=attempts, downtime_s=downtime_s, detail=detail)

    async def _reconnect_loop(self) -> None:
        started = self._clock()
        attempts = 0
        last_error = ""
        while not self._closing:
            delay = self._backoff_s[min(attempts, len(self._backoff_s) - 1)]
            await asyncio.sleep(delay)
            if self._closing:
                return
            attempts += 1
            old = self._connection
            if old is not None:
                await _quiet_disconnect(old.client)
            try:
                await self._connect_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                last_error = str(exc)
                elapsed = self._clock() - started
                if self._give_up_after_s is not None and elapsed >= self._give_up_after_s:
                    self._fail(last_error, attempts, elapsed)
                    return
                continue
            self._emit(
                "reconnected",
                attempts=attempts,
                downtime_s=self._clock() - started,
                mtu_payload=self.mtu_payload,
            )
            return

    async def _shutdown(self) -> None:
        task = self._reconnect_task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        connection = self._connection
        if connection is not None:
            await _quiet_disconnect(connection.client)
        self._emit("closed")


async def _quiet_disconnect(client) -> None:
    try:
        if client.is_connected:
            await asyncio.wait_for(client.disconnect(), 5.0)
    except Exception:  # best effort while tearing down
        pass


def describe_ble_error(exc: BaseException) -> str:
    """One line explaining a bleak start-up failure (mostly: no adapter, no BlueZ)."""
    from bleak.exc import BleakBluetoothNotAvailableError, BleakDBusError

    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
        return "no Bluetooth service on this computer (BlueZ/D-Bus not running or no adapter)"
    if isinstance(exc, BleakBluetoothNotAvailableError):
        return f"Bluetooth is not available ({exc})"
    if isinstance(exc, BleakDBusError):
        return f"BlueZ refused: {exc.dbus_error}"
    return f"{exc.__class__.__name__}: {exc}"
