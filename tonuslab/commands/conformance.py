"""``tonuslab conformance URL``: run the protocol v1 test battery against a device."""

from __future__ import annotations

import json

from tonuslab.errors import UsageError

NAME = "conformance"
HELP = "Check that a device (URL: sim://, tcp://, serial port, ble://) speaks protocol v1."


def add_arguments(parser) -> None:
    parser.add_argument("url", help="device URL, e.g. /dev/ttyACM0, tcp://HOST:PORT, sim://simple")
    parser.add_argument(
        "--key-file",
        help="stimulation key file (64 hex digits, mode 0600); enables the expiry, re-pairing "
        "(hold the device's pairing button during the battery), pulse-timing, limits and "
        "watchdog checks, which deliver pulses at <= 1 mA (a device that ignores its limits "
        "may deliver one over-limit pulse: bench with a load only)",
    )
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="device seconds of streaming (default 2)"
    )
    parser.add_argument(
        "--timeout", type=float, default=1.0, help="reply timeout per command in s (default 1)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args) -> int:
    from acquire.links import open_link
    from firmware_iface.auth import load_key_file
    from firmware_iface.conformance import run_conformance

    if args.seconds <= 0 or args.timeout <= 0:
        raise UsageError("--seconds and --timeout must be positive")
    key = load_key_file(args.key_file) if args.key_file else None
    link = open_link(args.url)
    try:
        report = run_conformance(
            link, stim_key=key, stream_seconds=args.seconds, timeout_s=args.timeout
        )
    finally:
        link.close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        if report.device:
            d = report.device
            print(f"device {d['serial']}: protocol {d['protocol']}, firmware {d['firmware']}, "
                  f"hardware {d['hardware']}")  # fmt: skip
        print(report.table())
    return 0 if report.passed else 1
