"""acquire.ble.BleLink through bleak's BleakClient, the bumble backend and a bumble GATT server.

The peripheral here is the generic byte-pipe GATT server of the emulated device
(``firmware_iface.emulator.ble_gatt``) fed with protocol frames; the end-to-end test with the
emulated device itself is in ``test_ble_device.py``.
"""

import asyncio
import threading
import time

import pytest

pytest.importorskip("bumble")

from acquire.ble import (
    NOTIFY_CHAR_UUID,
    SERVICE_UUID,
    WRITE_CHAR_UUID,
    BleDeviceNotFoundError,
    BleError,
    BleLink,
    BleLinkLostError,
    BleNotConnectedError,
    open_ble_link,
    parse_ble_url,
)
from acquire.ble.bumble_backend import LocalBleWorld
from firmware_iface.codec import StreamDecoder, encode_frame
from firmware_iface.emulator import ble_gatt
from firmware_iface.errors import LinkClosed


@pytest.fixture
def world():
    w = LocalBleWorld()
    yield w
    w.close()


def frames(n, payload_size=40, start=0):
    """``n`` wire frames with sequence numbers start.. and a payload naming the frame."""
    return [
        encode_frame(
            0x20, (start + i) & 0xFFFF, 1000 * i, bytes([(start + i) % 251]) * payload_size
        )
        for i in range(n)
    ]


def read_all(link, n_bytes, timeout_s=10.0):
    got = bytearray()
    deadline = time.monotonic() + timeout_s
    while len(got) < n_bytes and time.monotonic() < deadline:
        got += link.read(4096, 0.05)
    return bytes(got)


def wait_for(predicate, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_gatt_layout_is_the_one_in_the_protocol_spec():
    """Both sides import firmware_iface.gatt; the spec's table is what a firmware team reads."""
    import pathlib
    import re

    import firmware_iface

    spec = (pathlib.Path(firmware_iface.__file__).parent / "PROTOCOL.md").read_text()
    section = spec[spec.index("## 9. BLE transport") :]
    uuids = re.findall(r"`([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})`", section)
    assert uuids[:3] == [SERVICE_UUID, WRITE_CHAR_UUID, NOTIFY_CHAR_UUID]
    assert (ble_gatt.SERVICE_UUID, ble_gatt.WRITE_CHAR_UUID, ble_gatt.NOTIFY_CHAR_UUID) == (
        SERVICE_UUID,
        WRITE_CHAR_UUID,
        NOTIFY_CHAR_UUID,
    )


def test_gatt_layout_matches_protocol_md():
    import pathlib
    import re

    import firmware_iface

    text = (pathlib.Path(firmware_iface.__file__).parent / "PROTOCOL.md").read_text()
    section = text[text.index("BLE transport") :]
    rows = dict(
        re.findall(
            r"\| (tonuslab service|host-to-device|device-to-host)[^|]*\| `([0-9a-f-]{36})`", section
        )
    )
    assert rows == {
        "tonuslab service": SERVICE_UUID,
        "host-to-device": WRITE_CHAR_UUID,
        "device-to-host": NOTIFY_CHAR_UUID,
    }


def test_url_parsing_and_bad_urls():
    assert parse_ble_url("ble://AA:BB:CC:DD:EE:FF") == ("AA:BB:CC:DD:EE:FF", {})
    target, options = parse_ble_url("ble://tonus%20lab?scan_timeout_s=2.5&reconnect=0")
    assert target == "tonus lab"
    assert options == {"scan_timeout_s": 2.5, "reconnect": False}
    for bad in (
        "ble://",
        "ble://x?colour=red",
        "ble://x?scan_timeout_s=soon",
        "ble://x?backend=no",
    ):
        with pytest.raises(BleError) as info:
            parse_ble_url(bad)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("max_chunk", [None, 7])
def test_frames_split_across_and_packed_into_notifications(world, max_chunk):
    peripheral = world.add_peripheral(max_chunk=max_chunk)
    wire = frames(300)
    payload = b"".join(wire)
    with open_ble_link("ble://tonuslab-emu", **world.link_options()) as link:
        assert link.mtu_payload == 244
        world.run(peripheral.wait_subscribed())
        for i in range(0, len(wire), 10):  # bursts of 10 frames, as a device sends blocks
            peripheral.send(b"".join(wire[i : i + 10]))
        got = read_all(link, len(payload))
        notifications = link.notifications_received
    assert got == payload
    decoder = StreamDecoder()
    decoded = decoder.feed(got)
    assert [f.seq for f in decoded] == list(range(300))
    assert decoder.stats.errors == 0
    if max_chunk is None:
        # Several frames per notification (each frame is 52 bytes on the wire, the MTU 244).
        assert notifications == pytest.approx(len(payload) / 244, abs=30)
        assert notifications < len(wire) / 2
    else:
        # Every frame is split across notifications of at most 7 bytes.
        assert notifications >= len(payload) / 7


def test_writes_are_split_to_the_negotiated_mtu(world):
    received: list[bytes] = []
    world.add_peripheral(on_host_bytes=received.append)
    command = bytes(range(256)) * 4  # 1024 bytes
    with open_ble_link("ble://tonuslab-emu", **world.link_options()) as link:
        link.write(command)
        assert wait_for(lambda: sum(map(len, received)) == len(command))
    assert [len(c) for c in received] == [244, 244, 244, 244, 48]
    assert b"".join(received) == command


def test_open_by_address_and_through_a_registered_backend(world):
    world.add_peripheral(address="D0:D0:D0:D0:D0:42", name="bench-unit")
    name = world.register("test-world")
    link = open_ble_link(f"ble://d0:d0:d0:d0:d0:42?backend={name}&scan_timeout_s=2")
    try:
        assert link.connected
        assert link.address == "D0:D0:D0:D0:D0:42"
        assert link.device_name == "bench-unit"
        assert [e.kind for e in link.pop_events()] == ["connected"]
    finally:
        link.close()
    assert not link.connected
    with pytest.raises(LinkClosed):
        link.read(10, 0.01)


def test_unknown_device_is_a_clear_error(world):
    world.add_peripheral(name="tonuslab-emu")
    started = time.monotonic()
    with pytest.raises(BleDeviceNotFoundError) as info:
        open_ble_link("ble://no-such-device?scan_timeout_s=0.3", **world.link_options())
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "no-such-device" in message and "\n" not in message


def test_disconnect_is_reported_and_the_link_reconnects(world):
    peripheral = world.add_peripheral()
    events = []
    seen = threading.Event()

    def on_event(event):
        events.append(event)
        if event.kind == "reconnected":
            seen.set()

    link = open_ble_link(
        "ble://tonuslab-emu?reconnect=1",
        on_event=on_event,
        backoff_s=(0.05, 0.1),
        **world.link_options(),
    )
    try:
        world.run(peripheral.wait_subscribed())
        first = b"".join(frames(20))
        peripheral.send(first)
        assert read_all(link, len(first)) == first
        # Half a frame, then the device drops the link and stays silent for 0.3 s.
        half = frames(1, start=20)[0][:25]
        peripheral.send(half)
        time.sleep(0.1)
        world.run(peripheral.drop_link(silent_s=0.3))
        assert wait_for(lambda: not link.connected, 5)
        with pytest.raises(BleNotConnectedError):
            link.write(b"start")
        assert seen.wait(10), [e.kind for e in events]
        assert link.connected and link.disconnect_count == 1
        world.run(peripheral.wait_subscribed())
        after = b"".join(frames(20, start=100))
        peripheral.send(after)
        got = read_all(link, len(half) + 1 + len(after))
    finally:
        link.close()
    # The partial frame is closed by a delimiter, so the decoder drops it and resynchronises.
    assert got == half + b"\x00" + after
    decoder = StreamDecoder()
    assert [f.seq for f in decoder.feed(first + got)] == list(range(20)) + list(range(100, 120))
    kinds = [e.kind for e in events]
    assert kinds == ["connected", "disconnected", "reconnected", "closed"]
    reconnected = events[2]
    assert reconnected.attempts >= 1
    assert 0.25 < reconnected.downtime_s < 5
    assert reconnected.mtu_payload == 244
    assert events[1].host_time_s < reconnected.host_time_s
    assert peripheral.connections_seen == 2


def test_gives_up_after_the_limit_and_reads_then_fail(world):
    peripheral = world.add_peripheral()
    link = open_ble_link(
        "ble://tonuslab-emu?reconnect=1&give_up_after_s=0.5&scan_timeout_s=0.2",
        backoff_s=(0.05,),
        **world.link_options(),
    )
    try:
        world.run(peripheral.wait_subscribed())
        peripheral.send(b"\x01\x02\x03")
        assert wait_for(lambda: link.bytes_received == 3)
        # The device goes away for longer than the link is willing to wait.
        asyncio.run_coroutine_threadsafe(peripheral.drop_link(silent_s=30), world.loop)
        assert wait_for(lambda: any(e.kind == "gave_up" for e in link.pop_events()), 10)
        # Bytes received before the loss are still delivered, then the loss is raised.
        assert link.read(100, 0.1) == b"\x01\x02\x03\x00"
        with pytest.raises(BleLinkLostError) as info:
            link.read(100, 0.1)
        assert isinstance(info.value, LinkClosed)
    finally:
        link.close()


def test_thousands_of_notifications_arrive_in_order(world):
    peripheral = world.add_peripheral(max_chunk=60)
    wire = frames(3000, payload_size=30)  # 42-43 bytes each; about 2100 notifications
    payload = b"".join(wire)
    with open_ble_link("ble://tonuslab-emu", **world.link_options()) as link:
        world.run(peripheral.wait_subscribed())
        started = time.monotonic()
        for i in range(0, len(wire), 50):
            peripheral.send(b"".join(wire[i : i + 50]))
        chunks = []
        deadline = time.monotonic() + 30
        while sum(len(d) for _, d in chunks) < len(payload) and time.monotonic() < deadline:
            chunks += link.read_chunks(65536, 0.05)
        elapsed = time.monotonic() - started
    arrival = [t for t, _ in chunks]
    assert arrival == sorted(arrival)
    decoded = StreamDecoder().feed(b"".join(d for _, d in chunks))
    assert [f.seq for f in decoded] == list(range(3000))
    assert peripheral.notifications_sent >= len(payload) // 60
    print(f"{peripheral.notifications_sent} notifications in {elapsed:.2f} s")


def test_open_link_routes_ble_urls_to_the_ble_link(world):
    from acquire.links import open_link

    world.add_peripheral(address="D0:D0:D0:D0:D0:07")
    name = world.register("links-test")
    for url in (f"ble://tonuslab-emu?backend={name}", f"ble://D0:D0:D0:D0:D0:07?backend={name}"):
        link = open_link(url)
        try:
            assert isinstance(link, BleLink)
            assert link.connected and link.address == "D0:D0:D0:D0:D0:07"
        finally:
            link.close()


def test_link_methods_refuse_to_run_on_the_event_loop_thread(world):
    peripheral = world.add_peripheral()
    errors = []

    def on_event(event):
        if event.kind == "disconnected":
            try:
                link.close()
            except RuntimeError as exc:
                errors.append(exc)

    link = open_ble_link(
        "ble://tonuslab-emu", on_event=on_event, reconnect=True, backoff_s=(0.05,),
        **world.link_options(),
    )  # fmt: skip
    try:
        world.run(peripheral.drop_link())
        assert wait_for(lambda: any(e.kind == "reconnected" for e in link.pop_events()), 10)
        assert len(errors) == 1 and "event-loop thread" in str(errors[0])
        assert link.connected  # the refused close did not break the link
    finally:
        link.close()


def test_without_in_link_reconnect_a_disconnect_ends_the_link_like_a_lost_port(world):
    peripheral = world.add_peripheral()
    link = open_ble_link("ble://tonuslab-emu", **world.link_options())
    try:
        world.run(peripheral.wait_subscribed())
        peripheral.send(b"\x05\x06")
        assert wait_for(lambda: link.bytes_received == 2)
        world.run(peripheral.drop_link())
        assert read_all(link, 3, timeout_s=5) == b"\x05\x06\x00"
        with pytest.raises(BleLinkLostError) as info:
            link.read(10, 1.0)
        assert isinstance(info.value, LinkClosed)  # what the recorder's reconnect loop catches
        assert [e.kind for e in link.pop_events()] == ["connected", "disconnected", "gave_up"]
    finally:
        link.close()
    # Reopening the URL (the recorder's reconnect) rescans and connects a new BleakClient.
    with open_ble_link("ble://tonuslab-emu", **world.link_options()) as again:
        assert again.connected
    assert peripheral.connections_seen == 2
