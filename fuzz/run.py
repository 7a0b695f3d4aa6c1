"""Run a fuzz target under atheris: ``python fuzz/run.py decoder|device|host [libFuzzer flags]``.

Examples::

    python fuzz/run.py decoder -runs=2000000              # a fixed number of inputs
    python fuzz/run.py device -max_total_time=600          # ten minutes
    python fuzz/run.py host -max_total_time=60 -print_final_stats=1

The corpus in ``fuzz/corpus/NAME`` seeds the run and new interesting inputs are added to it.
Needs the ``fuzz`` extra (``pip install -e ".[fuzz]"``).
"""

from __future__ import annotations

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("decoder", "device", "host"):
        print(__doc__)
        return 2
    import atheris

    sys.path.insert(0, str(HERE))
    with atheris.instrument_imports():
        import harnesses

        import firmware_iface.client
        import firmware_iface.codec
        import firmware_iface.emulator.device
        import firmware_iface.messages  # noqa: F401
    target = harnesses.TARGETS[argv[0]]
    corpus = HERE / "corpus" / argv[0]
    corpus.mkdir(parents=True, exist_ok=True)
    atheris.Setup([sys.argv[0], *argv[1:], str(corpus)], target)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
