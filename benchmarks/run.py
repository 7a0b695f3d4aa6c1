"""Run tonuslab's benchmarks: ``python benchmarks/run.py NAME [NAME ...]`` or ``... all``.

Each benchmark is a module ``benchmarks/bench_NAME.py`` with a ``main(argv: list[str]) -> int``
that prints its figures (ours and the peer's, measured in the same run) and returns 0.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent


def available() -> dict[str, pathlib.Path]:
    """Benchmark names and their files."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def main(argv: list[str]) -> int:
    os.environ.setdefault("NUMBA_CACHE_DIR", str(HERE.parent / ".numba_cache"))
    benches = available()
    names = argv[:1] and (list(benches) if argv[0] == "all" else [argv[0]])
    if not names:
        print("usage: python benchmarks/run.py NAME|all [options]")
        print("benchmarks: " + ", ".join(benches))
        return 2
    unknown = [n for n in names if n not in benches]
    if unknown:
        print(f"unknown benchmark {unknown[0]!r}; available: {', '.join(benches)}")
        return 2
    status = 0
    for name in names:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", benches[name])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"== {name}")
        status |= int(module.main(argv[1:]) or 0)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
