"""Serve the emulated device: ``python -m firmware_iface.emulator --pty`` or ``--tcp PORT``.

Prints the path or URL to connect to (e.g. ``tonuslab conformance URL``), then serves until
interrupted. ``--key-file`` pairs the device with that stimulation key.
"""

from __future__ import annotations

import argparse
import sys
import time

from firmware_iface.emulator import PtyEmulator, TcpEmulator, make_device
from firmware_iface.emulator.source import SimpleSource


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firmware_iface.emulator", description=__doc__)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal")
    where.add_argument("--tcp", type=int, metavar="PORT", help="serve on 127.0.0.1:PORT (0: any)")
    parser.add_argument("--speed", choices=("realtime", "fast"), default="realtime")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift-ppm", type=float, default=0.0)
    parser.add_argument("--key-file", help="pair the device with this stimulation key file")
    parser.add_argument("--serve-seconds", type=float, help="stop after this long (for tests)")
    args = parser.parse_args(argv)
    key = None
    if args.key_file:
        from firmware_iface.auth import load_key_file
        from firmware_iface.errors import ProtocolError

        try:
            key = load_key_file(args.key_file)
        except ProtocolError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    device = make_device(SimpleSource(args.seed), stim_key=key, drift_ppm=args.drift_ppm)
    if args.pty:
        server = PtyEmulator(device, speed=args.speed)
        print(server.path, flush=True)
    else:
        server = TcpEmulator(device, port=args.tcp, speed=args.speed)
        print(server.url, flush=True)
    try:
        deadline = None if args.serve_seconds is None else time.monotonic() + args.serve_seconds
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
