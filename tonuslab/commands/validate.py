"""``tonuslab validate SUITE``: rerun an accuracy validation against the simulator."""

from __future__ import annotations

import importlib
import json
import pathlib

from tonuslab.errors import UsageError
from tonuslab.validation import SUITES

NAME = "validate"
HELP = "Rerun an accuracy validation of the metrics against the simulator's ground truth."


def add_arguments(parser) -> None:
    parser.add_argument("suite", choices=sorted(SUITES), help="which validation to run")
    parser.add_argument("--seeds", type=int, default=50, help="seeds per profile (default 50)")
    parser.add_argument("--quick", action="store_true", help="fewer stretches/stimuli per seed")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("-o", "--out", type=pathlib.Path, help="folder for per-seed details")


def run(args) -> int:
    if args.seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {args.seeds}")
    try:
        module = importlib.import_module(SUITES[args.suite])
    except ModuleNotFoundError as exc:
        raise UsageError(f"validation suite '{args.suite}' is not available ({exc.name})") from exc
    result = module.run(seeds=args.seeds, out_dir=args.out, quick=args.quick)
    print(json.dumps(result, indent=2) if args.json else module.format_table(result))
    return 0
