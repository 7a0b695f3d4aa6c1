"""``tonuslab devices``: list serial ports (with USB ids), BLE devices advertising tonuslab and the
Lab Streaming Layer streams this computer sees (each with the ``lsl://`` URL that records it)."""

from __future__ import annotations

import argparse
import json
import sys

from acquire.discovery import format_ble_device, format_serial_port, list_serial_ports, scan_ble
from tonuslab.errors import UsageError

NAME = "devices"
HELP = "List serial ports (with USB ids), BLE devices advertising tonuslab and LSL streams."


def add_arguments(parser) -> None:
    parser.add_argument("--usb-only", action="store_true", help="list only USB serial adapters")
    parser.add_argument("--no-ble", action="store_true", help="skip the Bluetooth scan")
    parser.add_argument(
        "--ble-timeout", type=float, default=3.0, metavar="S", help="BLE scan time (default 3 s)"
    )
    parser.add_argument("--no-lsl", action="store_true", help="skip the LSL stream lookup")
    parser.add_argument(
        "--lsl-wait", type=float, default=1.0, metavar="S",
        help="time to wait for LSL streams to answer (default 1 s)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON list")
    # Route the BLE scan through a backend registered with acquire.ble.register_backend (tests).
    parser.add_argument("--ble-backend", default=None, help=argparse.SUPPRESS)


def run(args) -> int:
    if not args.ble_timeout > 0:
        raise UsageError(f"--ble-timeout must be positive, got {args.ble_timeout}")
    if not args.lsl_wait > 0:
        raise UsageError(f"--lsl-wait must be positive, got {args.lsl_wait}")
    ports = list_serial_ports(usb_only=args.usb_only)
    ble_devices = []
    ble_note = None
    if not args.no_ble:
        ble_devices, ble_note = _scan(args)
    streams, lsl_note = ([], None) if args.no_lsl else _lsl_streams(args.lsl_wait)

    if args.json:
        print(
            json.dumps([p.to_dict() for p in ports] + [d.to_dict() for d in ble_devices] + streams)
        )
    else:
        print(f"Serial ports ({len(ports)}):")
        for port in ports:
            print(f"  {format_serial_port(port)}")
        if not ports:
            print("  none found" + (" (USB only)" if args.usb_only else ""))
        if not args.no_ble and ble_note is None:
            print(f"BLE devices advertising tonuslab ({len(ble_devices)}):")
            for device in ble_devices:
                print(f"  {format_ble_device(device)}")
            if not ble_devices:
                print(f"  none found in {args.ble_timeout:g} s")
        if not args.no_lsl and lsl_note is None:
            from acquire.sources.lsl import format_lsl_stream

            print(f"LSL streams ({len(streams)}):")
            for stream in streams:
                print(f"  {format_lsl_stream(stream)}")
            if not streams:
                print(f"  none found in {args.lsl_wait:g} s")
    for note in (ble_note, lsl_note):
        if note is not None:
            print(note, file=sys.stderr)
    return 0


def _lsl_streams(wait_s: float):
    from acquire.errors import SourceError

    try:
        from acquire.sources.lsl import list_lsl_streams

        return list_lsl_streams(wait_s), None
    except SourceError as exc:
        return [], f"tonuslab: note: LSL lookup skipped: {exc}"


def _scan(args):
    from acquire.ble import BleUnavailableError, registered_backend

    options = {}
    if args.ble_backend is not None:
        spec = registered_backend(args.ble_backend)
        options = {"scanner_backend": spec["scanner_backend"], "loop": spec["loop"]}
    try:
        return scan_ble(args.ble_timeout, **options), None
    except BleUnavailableError as exc:
        return [], f"tonuslab: note: BLE scan skipped: {exc}"
