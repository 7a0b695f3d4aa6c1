"""``tonuslab recover FILE.h5``: restore a session after the recorder was killed."""

from __future__ import annotations

import pathlib

NAME = "recover"
HELP = "Restore a session file after a crash (from its wire capture, or what the file holds)."


def add_arguments(parser) -> None:
    parser.add_argument("session", type=pathlib.Path, help="the session file (FILE.h5)")
    parser.add_argument("--capture", type=pathlib.Path, help="capture (default FILE.capture)")
    parser.add_argument("--force", action="store_true", help="rebuild even a complete file")


def run(args) -> int:
    from acquire.recover import recover_session

    report = recover_session(args.session, capture=args.capture, force=args.force)
    print(report.message)
    return 0
