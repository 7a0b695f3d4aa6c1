"""``tonuslab export FILE.h5 --nwb out.nwb``: write a session as NWB."""

from __future__ import annotations

import pathlib

from tonuslab.errors import UsageError

NAME = "export"
HELP = "Export a session file to NWB (EMG counts with conversion, angle, events, stretches)."


def add_arguments(parser) -> None:
    parser.add_argument("file", type=pathlib.Path, help="session file (.h5)")
    parser.add_argument("--nwb", type=pathlib.Path, required=True, help="NWB file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.add_argument(
        "--no-validate", action="store_true", help="skip reading the file back and validating"
    )
    parser.add_argument(
        "--subject-age", metavar="AGE", help="years (45), ISO 8601 (P45Y) or 'unknown'"
    )
    parser.add_argument("--subject-sex", metavar="SEX", help="M, F, O or U/unknown")
    parser.add_argument(
        "--experimenter", action="append", help="who recorded the session (repeatable)"
    )
    parser.add_argument("--institution", help="where the session was recorded")


def run(args) -> int:
    from tonuslab.io_nwb import export_nwb, validate_nwb

    if args.nwb.suffix.lower() != ".nwb":
        raise UsageError(f"name the NWB file *.nwb, not {args.nwb}")
    out = export_nwb(
        args.file, args.nwb, overwrite=args.overwrite, subject_age=args.subject_age,
        subject_sex=args.subject_sex, experimenter=args.experimenter,
        institution=args.institution,
    )  # fmt: skip
    if not args.no_validate:
        problems = validate_nwb(out)
        if problems:
            print(f"wrote {out}, but pynwb's validator reports {len(problems)} problem(s):")
            for p in problems[:20]:
                print(f"  {p}")
            return 1
    print(
        f"wrote {out} (read back and validated by pynwb)"
        if not args.no_validate
        else f"wrote {out}"
    )
    return 0
