"""``tonuslab import FILE -o session.h5``: EDF/EDF+ or CSV to a tonuslab session file."""

from __future__ import annotations

import pathlib
import sys
import warnings

from tonuslab.errors import UsageError

NAME = "import"
HELP = "Import an EDF/EDF+ or CSV recording as a session file (analyses like a recorded one)."


def add_arguments(parser) -> None:
    parser.add_argument("file", type=pathlib.Path, help="EDF/EDF+ (.edf, .bdf) or CSV file")
    parser.add_argument("-o", "--out", type=pathlib.Path, required=True, help="session file (.h5)")
    parser.add_argument("--format", choices=["auto", "edf", "csv"], default="auto")
    parser.add_argument(
        "--emg",
        action="append",
        metavar="CHANNEL[:UNIT]",
        help="EMG channel/column (repeatable); CSV unit uV (default), mV or V. "
        "EDF default: every channel in uV/mV",
    )
    parser.add_argument("--angle", metavar="CHANNEL", help="goniometer channel/column (deg)")
    parser.add_argument("--time", metavar="COLUMN", help="CSV time column in seconds")
    parser.add_argument(
        "--stim",
        metavar="COLUMN",
        help="CSV column of stimulus intensity (mA) while a pulse is delivered, 0 elsewhere: "
        "each rising edge is one stimulus",
    )
    parser.add_argument(
        "--rate",
        type=float,
        help="sampling rate in Hz (CSV without a time "
        "column; EDF: override the EMG rate of a wrong header)",
    )
    parser.add_argument(
        "--stretch-sign",
        type=int,
        choices=[1, -1],
        default=1,
        help="+1 if the goniometer angle increases as the muscle lengthens, else -1",
    )
    parser.add_argument("--muscle", help="tested muscle, e.g. soleus, biceps_brachii")
    parser.add_argument("--subject", help="pseudonymous subject code, e.g. S014 (never a name)")
    parser.add_argument("--side", choices=["left", "right", "bilateral"])
    parser.add_argument("--label", help="session label, e.g. 'baseline'")
    parser.add_argument("--passive-range", nargs=2, type=float, metavar=("MIN_DEG", "MAX_DEG"))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")


def _options(args) -> dict:
    return {
        "subject_id": args.subject,
        "muscle": args.muscle,
        "side": args.side,
        "stretch_direction_sign": args.stretch_sign,
        "passive_range_deg": args.passive_range,
        "session_label": args.label,
    }


def run(args) -> int:
    from tonuslab.io_import import ImportDataWarning

    fmt = args.format
    if fmt == "auto":
        suffix = args.file.suffix.lower()
        fmt = {".edf": "edf", ".bdf": "edf", ".rec": "edf", ".csv": "csv", ".txt": "csv"}.get(
            suffix
        )
        if fmt is None:
            raise UsageError(f"cannot tell the format of {args.file}: use --format edf|csv")
    if not args.file.exists():
        raise FileNotFoundError(2, "No such file", str(args.file))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ImportDataWarning)
        out = _convert(fmt, args)
    for w in caught:
        if issubclass(w.category, ImportDataWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    print(f"imported {args.file} -> {out}")
    return 0


def _convert(fmt: str, args):
    from tonuslab.io_import import import_csv, import_edf

    if fmt == "edf":
        if args.time or args.stim:
            raise UsageError("--time and --stim are for CSV; EDF+ stimuli come from annotations")
        emg = [e.split(":", 1)[0] for e in args.emg] if args.emg else None
        out = import_edf(
            args.file,
            args.out,
            emg_channels=emg,
            angle_channel=args.angle,
            overwrite=args.overwrite,
            emg_rate_hz=args.rate,
            **_options(args),
        )
    else:
        if not args.emg:
            raise UsageError("CSV import needs the EMG column(s): --emg COLUMN[:UNIT]")
        emg_map = {}
        for spec in args.emg:
            name, _, unit = spec.partition(":")
            emg_map[name] = unit or "uV"
        out = import_csv(
            args.file,
            args.out,
            channel_map={"emg": emg_map, "angle": args.angle, "time": args.time, "stim": args.stim},
            rate_hz=args.rate,
            overwrite=args.overwrite,
            **_options(args),
        )
    return out
