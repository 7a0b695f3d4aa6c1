"""``tonuslab import FILE -o session.h5``: EDF/EDF+, CSV, XDF, C3D or OpenSignals to a session."""

from __future__ import annotations

import pathlib
import sys
import warnings

from tonuslab.errors import UsageError

NAME = "import"
HELP = (
    "Import an EDF/EDF+, CSV, XDF (LabRecorder), C3D or OpenSignals recording as a session file "
    "(analyses like a recorded one)."
)


def add_arguments(parser) -> None:
    parser.add_argument(
        "file",
        type=pathlib.Path,
        help="EDF/EDF+ (.edf, .bdf), CSV (.csv, .txt), XDF (.xdf, .xdfz), C3D (.c3d) or "
        "OpenSignals (.txt, .h5) file",
    )
    parser.add_argument("-o", "--out", type=pathlib.Path, required=True, help="session file (.h5)")
    parser.add_argument(
        "--format", choices=["auto", "edf", "csv", "xdf", "c3d", "opensignals"], default="auto"
    )
    parser.add_argument(
        "--emg",
        action="append",
        metavar="CHANNEL[:UNIT]",
        help="EMG channel/column (repeatable); unit uV (default for CSV), mV or V overrides the "
        "file's. EDF default: every channel in uV/mV. XDF: STREAM[:CH,CH...][:UNIT] (default: "
        "the stream of type EMG). C3D: analog label. OpenSignals: A1, A2...",
    )
    parser.add_argument(
        "--angle",
        metavar="CHANNEL",
        help="goniometer channel/column (deg). XDF: STREAM[:CH]; C3D: analog label or "
        "POINT[:X|Y|Z]",
    )
    parser.add_argument("--time", metavar="COLUMN", help="CSV time column in seconds")
    parser.add_argument(
        "--stim",
        metavar="COLUMN",
        help="CSV column of stimulus intensity (mA) while a pulse is delivered, 0 elsewhere: "
        "each rising edge is one stimulus. XDF: a marker stream, or STREAM:CH of a TTL channel. "
        "OpenSignals: a digital input (I1...)",
    )
    parser.add_argument(
        "--no-header",
        action="store_true",
        help="CSV without a header row: give columns by 0-based index (--emg 1 --angle 2)",
    )
    parser.add_argument(
        "--jitter-ms",
        type=float,
        default=5.0,
        help="XDF: jitter margin of the gap rule (a stamp step beyond 1.5 periods plus this is "
        "a gap; default 5 ms)",
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
    from tonuslab.io_import import FORMATS, ImportDataWarning, detect_format

    fmt = args.format
    if fmt == "auto":
        fmt = detect_format(args.file)
        if fmt is None:
            raise UsageError(
                f"cannot tell the format of {args.file}: use --format {'|'.join(FORMATS)}"
            )
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
    from tonuslab import io_import

    common = {"overwrite": args.overwrite, **_options(args)}
    if fmt != "csv" and (args.time or args.no_header):
        raise UsageError("--time and --no-header are for CSV files")
    if fmt == "edf":
        if args.stim:
            raise UsageError("--stim is not for EDF: EDF+ stimuli come from annotations")
        return io_import.import_edf(
            args.file,
            args.out,
            emg_channels=args.emg or None,
            angle_channel=args.angle,
            emg_rate_hz=args.rate,
            **common,
        )
    if fmt == "xdf":
        if args.emg and len(args.emg) > 1:
            raise UsageError("XDF: give the EMG channels in one --emg STREAM:CH,CH,...")
        return io_import.import_xdf(
            args.file,
            args.out,
            emg=args.emg[0] if args.emg else None,
            angle=args.angle,
            stim=args.stim,
            jitter_ms=args.jitter_ms,
            **common,
        )
    if fmt == "c3d":
        return io_import.import_c3d(args.file, args.out, emg=args.emg, angle=args.angle, **common)
    if fmt == "opensignals":
        emg = [e.partition(":")[0] for e in args.emg] if args.emg else None
        return io_import.import_opensignals(
            args.file, args.out, emg=emg, angle=args.angle, stim=args.stim, **common
        )
    if not args.emg and not args.angle:
        raise UsageError("CSV import needs the EMG column(s): --emg COLUMN[:UNIT] (or --angle)")
    emg_map = {}
    for spec in args.emg or []:
        name, _, unit = spec.partition(":")
        emg_map[name] = unit or "uV"
    return io_import.import_csv(
        args.file,
        args.out,
        channel_map={"emg": emg_map, "angle": args.angle, "time": args.time, "stim": args.stim},
        rate_hz=args.rate,
        no_header=args.no_header,
        **common,
    )
