"""bleak's public BleakClient/BleakScanner over the bumble test backend and a bumble GATT server.

These check the test backend itself (so the BLE link tests exercise real bleak code paths):
scanning with a service filter, connection, MTU exchange, service discovery, notifications,
writes with and without response, and unsolicited versus requested disconnects.
"""

import asyncio
import threading

import pytest

pytest.importorskip("bumble")

from bleak import BleakClient, BleakScanner

from acquire.ble.bumble_backend import LocalBleWorld
from firmware_iface.emulator import ble_gatt


@pytest.fixture
def world():
    w = LocalBleWorld()
    yield w
    w.close()


def test_scanner_filters_on_the_tonuslab_service(world):
    world.add_peripheral(name="tonuslab-emu", address="D0:D0:D0:D0:D0:01")

    async def other_device():
        # A second peripheral that advertises no tonuslab service must not be listed.
        from bumble.controller import Controller
        from bumble.device import Device
        from bumble.hci import Address
        from bumble.host import Host
        from bumble.transport.common import AsyncPipeSink

        controller = Controller("other", link=world.link, public_address="D0:D0:D0:D0:D0:99")
        device = Device(
            name="headphones",
            address=Address("D0:D0:D0:D0:D0:99"),
            host=Host(controller, AsyncPipeSink(controller)),
        )
        await device.power_on()
        await device.start_advertising(advertising_interval_min=20, advertising_interval_max=20)

    world.run(other_device())

    async def scan(service_uuids):
        return await BleakScanner.discover(
            timeout=0.3,
            return_adv=True,
            service_uuids=service_uuids,
            backend=world.scanner_backend,
        )

    everything = world.run(scan(None))
    ours = world.run(scan([ble_gatt.SERVICE_UUID]))
    assert set(everything) == {"D0:D0:D0:D0:D0:01", "D0:D0:D0:D0:D0:99"}
    assert list(ours) == ["D0:D0:D0:D0:D0:01"]
    _device, adv = ours["D0:D0:D0:D0:D0:01"]
    assert adv.local_name == "tonuslab-emu"
    assert adv.service_uuids == [ble_gatt.SERVICE_UUID]


def test_bleak_client_connect_mtu_services_notify_write_and_disconnects(world):
    received_by_device: list[bytes] = []
    peripheral = world.add_peripheral(on_host_bytes=received_by_device.append)
    notifications: list[bytes] = []
    unsolicited = threading.Event()

    async def session():
        device = await BleakScanner.find_device_by_name(
            "tonuslab-emu", timeout=2.0, backend=world.scanner_backend
        )
        assert device is not None
        client = BleakClient(
            device,
            disconnected_callback=lambda c: unsolicited.set(),
            backend=world.client_backend,
        )
        await client.connect()
        assert client.is_connected
        assert client.mtu_size == 247
        service = client.services.get_service(ble_gatt.SERVICE_UUID)
        assert service is not None
        notify = service.get_characteristic(ble_gatt.NOTIFY_CHAR_UUID)
        write = service.get_characteristic(ble_gatt.WRITE_CHAR_UUID)
        assert notify.properties == ["notify"]
        assert set(write.properties) == {"write", "write-without-response"}
        assert write.max_write_without_response_size == 244
        # The CCCD is discovered as a descriptor, as on real platforms.
        assert [d.uuid[4:8] for d in notify.descriptors] == ["2902"]

        await client.start_notify(notify, lambda _c, data: notifications.append(bytes(data)))
        await peripheral.wait_subscribed()
        peripheral.send(bytes(range(200)) * 3)  # 600 bytes -> 244 + 244 + 112
        await client.write_gatt_char(write, b"without-response", response=False)
        await client.write_gatt_char(write, b"with-response", response=True)
        for _ in range(100):
            if sum(map(len, notifications)) >= 600:
                break
            await asyncio.sleep(0.01)
        await peripheral.drop_link()
        for _ in range(100):
            if not client.is_connected:
                break
            await asyncio.sleep(0.01)
        assert not client.is_connected

        # A requested disconnect must not call disconnected_callback.
        called = []
        client2 = BleakClient(
            device, disconnected_callback=called.append, backend=world.client_backend
        )
        await client2.connect()
        await client2.disconnect()
        assert not client2.is_connected
        assert called == []

    world.run(session())
    assert [len(n) for n in notifications] == [244, 244, 112]
    assert b"".join(notifications) == bytes(range(200)) * 3
    assert received_by_device == [b"without-response", b"with-response"]
    assert unsolicited.is_set()
