"""Serve the emulated device: ``python -m firmware_iface.emulator --pty`` or ``--tcp PORT``.

Prints the path or URL to connect to (e.g. ``tonuslab conformance URL``), then serves until
interrupted. ``--key-file`` pairs the device with that stimulation key. ``--profile NAME``
streams a virtual patient (``virtual_patient.PatientSource``; ``--program tsrt`` runs the TSRT
stretch programme from the start, ``none`` waits for stretch prompts; stimulation commands give
M and H waves) instead of the built-in test signal; ``--seed`` seeds either source.
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
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="stream this virtual patient (virtual_patient.PROFILE_NAMES), not the test signal",
    )
    parser.add_argument(
        "--program",
        choices=("tsrt", "none"),
        help="with --profile: the TSRT stretch programme from the start, or none (default: wait "
        "for stretch prompts)",
    )
    args = parser.parse_args(argv)
    try:
        source = _source(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    key = None
    if args.key_file:
        from firmware_iface.auth import load_key_file
        from firmware_iface.errors import ProtocolError

        try:
            key = load_key_file(args.key_file)
        except ProtocolError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    device = make_device(source, stim_key=key, drift_ppm=args.drift_ppm)
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


def _source(args):
    """The signal source: a virtual patient for ``--profile``, else :class:`SimpleSource`.

    Raises
    ------
    ValueError
        ``--program`` without ``--profile``, an unknown profile or a seed below 0.
    """
    if args.profile is None:
        if args.program is not None:
            raise ValueError("--program needs --profile NAME")
        return SimpleSource(args.seed)
    # imported here: the emulator itself never depends on the simulator
    from virtual_patient import PROFILE_NAMES, PatientSource

    if args.profile not in PROFILE_NAMES:
        raise ValueError(
            f"unknown profile {args.profile!r}; choose one of: {', '.join(PROFILE_NAMES)}"
        )
    if args.seed < 0:
        raise ValueError("--seed must be >= 0 for a virtual patient")
    program = "tsrt" if args.program == "tsrt" else None
    return PatientSource(args.profile, seed=args.seed, program=program)


if __name__ == "__main__":
    sys.exit(main())
