"""``tonuslab replay CAPTURE -o FILE.h5``: rebuild a session from a wire capture."""

from __future__ import annotations

import pathlib

from tonuslab.errors import UsageError

NAME = "replay"
HELP = "Rebuild a session file from a wire capture (bit-identical samples)."


def add_arguments(parser) -> None:
    parser.add_argument("capture", type=pathlib.Path, help="the .capture file")
    parser.add_argument("-o", "--output", required=True, type=pathlib.Path, help="FILE.h5")
    parser.add_argument(
        "--speed", default="fast",
        help="'fast' (as fast as possible, default), 'realtime', or a factor such as 2",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace FILE.h5")


def run(args) -> int:
    from acquire.recorder import replay_capture

    if not args.capture.exists():
        raise FileNotFoundError(2, "No such file", str(args.capture))
    if args.speed == "fast":
        speed = None
    elif args.speed == "realtime":
        speed = 1.0
    else:
        try:
            speed = float(args.speed)
        except ValueError:
            raise UsageError("--speed must be fast, realtime or a number") from None
        if speed <= 0:
            raise UsageError("--speed must be positive")
    if args.output.resolve() == args.capture.resolve():
        raise UsageError("the output must not be the capture itself")
    out = replay_capture(args.capture, args.output, speed=speed, overwrite=args.overwrite)
    from acquire.session_file import open_session

    with open_session(out) as s:
        print(
            f"replayed {args.capture} -> {out}: {s.emg.n_samples} EMG samples "
            f"({s.emg.n_samples / s.emg_rate_hz:.1f} s), {len(s.gaps)} gaps, "
            f"{len(s.events)} events" + _quarantined(s.attrs)
        )
    return 0


def _quarantined(attrs) -> str:
    """``, 1 implausible frame set aside (index 1)`` when the replay set frames aside."""
    counts = attrs.get("quarantine") or {}
    if not isinstance(counts, dict) or not sum(counts.values()):
        return ""
    from tonuslab.commands.record import _quarantine_text

    return ", " + _quarantine_text(counts)
