"""``tonuslab devices``: serial formatting and filters, BLE scan (bumble), and no adapter."""

import json
import subprocess
import sys

import pytest
from serial.tools.list_ports_common import ListPortInfo

from acquire.discovery import (
    BleDeviceInfo,
    format_ble_device,
    format_serial_port,
    list_serial_ports,
)
from tonuslab.cli import main


def _usb_port(device, vid, pid, serial, manufacturer, product):
    port = ListPortInfo(device, skip_link_detection=True)
    port.vid, port.pid, port.serial_number = vid, pid, serial
    port.manufacturer, port.product, port.location = manufacturer, product, "1-1.2:1.0"
    port.apply_usb_info()
    return port


def _ports():
    return [
        ListPortInfo("/dev/ttyS0", skip_link_detection=True),
        _usb_port("/dev/ttyUSB0", 0x0403, 0x6001, "A10K4Z", "FTDI", "FT232R USB UART"),
        _usb_port("/dev/ttyACM0", 0x2E8A, 0x000A, None, "Raspberry Pi", "Pico"),
    ]


def test_serial_ports_usb_first_with_ids_and_usb_only_filter():
    infos = list_serial_ports(ports=_ports())
    assert [p.device for p in infos] == ["/dev/ttyACM0", "/dev/ttyUSB0", "/dev/ttyS0"]
    assert [p.usb_id for p in infos] == ["2E8A:000A", "0403:6001", None]
    assert [p.device for p in list_serial_ports(usb_only=True, ports=_ports())] == [
        "/dev/ttyACM0",
        "/dev/ttyUSB0",
    ]
    line = format_serial_port(infos[1])
    assert line.startswith("/dev/ttyUSB0")
    assert "USB 0403:6001" in line and "SER=A10K4Z" in line and "FTDI" in line
    assert "(not USB)" in format_serial_port(infos[2])
    assert infos[1].to_dict()["usb_id"] == "0403:6001"


def test_ble_device_line_and_url():
    device = BleDeviceInfo("D0:D0:D0:D0:D0:01", "tonuslab-emu", -50)
    assert device.url == "ble://D0:D0:D0:D0:D0:01"
    line = format_ble_device(device)
    assert "ble://D0:D0:D0:D0:D0:01" in line and "tonuslab-emu" in line and "-50 dBm" in line
    assert "(no name)" in format_ble_device(BleDeviceInfo("AA:BB:CC:DD:EE:FF", None, None))


def test_no_bluetooth_adapter_gives_one_note_and_exit_zero():
    # A real call: this machine has no Bluetooth in the kernel and no BlueZ. Where one exists,
    # the scan runs and the BLE section is printed instead.
    proc = subprocess.run(
        [sys.executable, "-m", "tonuslab", "devices", "--ble-timeout", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Serial ports (")
    assert "Traceback" not in proc.stderr
    if "BLE scan skipped" in proc.stderr:
        assert len(proc.stderr.strip().splitlines()) == 1
        assert "BLE devices" not in proc.stdout
    else:  # pragma: no cover - only on a computer with Bluetooth
        assert "BLE devices advertising tonuslab" in proc.stdout


def test_bad_timeout_is_a_usage_error(capsys):
    assert main(["devices", "--ble-timeout", "0"]) == 2
    err = capsys.readouterr().err
    assert "--ble-timeout" in err and len(err.strip().splitlines()) == 1


def test_ble_devices_found_through_bleak_scanner_on_bumble(capsys):
    pytest.importorskip("bumble")
    from acquire.ble.bumble_backend import LocalBleWorld

    world = LocalBleWorld()
    try:
        world.add_peripheral(name="tonuslab-emu", address="D0:D0:D0:D0:D0:01")
        world.add_peripheral(name="tonuslab-bench", address="D0:D0:D0:D0:D0:02")
        name = world.register("devices-test")
        assert main(["devices", "--ble-backend", name, "--ble-timeout", "0.3"]) == 0
        out = capsys.readouterr().out
        assert main(["devices", "--ble-backend", name, "--ble-timeout", "0.3", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
    finally:
        world.close()
    assert "BLE devices advertising tonuslab (2):" in out
    assert "ble://D0:D0:D0:D0:D0:01" in out and "tonuslab-bench" in out
    ble = [d for d in listed if d["kind"] == "ble"]
    assert sorted(d["name"] for d in ble) == ["tonuslab-bench", "tonuslab-emu"]
    assert all(d["url"].startswith("ble://D0:D0") for d in ble)
