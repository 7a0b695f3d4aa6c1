import pytest

from firmware_iface import auth
from firmware_iface.client import DeviceClient
from firmware_iface.emulator import emulator_link, make_device


@pytest.fixture
def key():
    return bytes(range(32))


@pytest.fixture
def device(key):
    return make_device(stim_key=key)


@pytest.fixture
def client(device, key):
    link = emulator_link(device, speed="fast")
    c = DeviceClient(link, stim_key=key, command_timeout_s=2.0)
    yield c
    c.close()


def collect(client, device_seconds, stream=0):
    """Read until ``device_seconds`` of the given stream have arrived; returns all items."""
    items, first, last = [], None, None
    while last is None or last - first < device_seconds * 1e6:
        for it in client.read(1.0):
            items.append(it)
            if getattr(it, "stream", None) == stream:
                first = it.device_time_us if first is None else first
                last = it.device_time_us
    return items


__all__ = ["auth", "collect"]
