"""The ``tonuslab`` command line.

Every subcommand is a module in :mod:`tonuslab.commands` that defines

``NAME`` (str), ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.

Modules are discovered at start-up, so adding a command never touches this file. User mistakes
(anything in :data:`tonuslab.errors.USER_ERRORS`) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from tonuslab import __version__
from tonuslab.errors import USER_ERRORS

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2."""

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"tonuslab: error: {message} (see '{self.prog} --help')\n")


def _command_modules():
    import tonuslab.commands as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"tonuslab.commands.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            yield module


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every discovered subcommand."""
    parser = _Parser(
        prog="tonuslab",
        description="Instrumented spasticity measurement: record, analyse, report.",
    )
    parser.add_argument("--version", action="version", version=f"tonuslab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in _command_modules():
        command_parser = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        if hasattr(module, "add_arguments"):
            module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tonuslab`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args._run(args) or EXIT_OK)
    except KeyboardInterrupt:
        print("tonuslab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader of our output went away (e.g. `| head`): not an error
        _silence_stdout()
        return EXIT_OK
    except USER_ERRORS as exc:
        message = str(exc) or exc.__class__.__name__
        if isinstance(exc, FileNotFoundError) and exc.filename:
            message = f"no such file: {exc.filename}"
        print(f"tonuslab: error: {message}", file=sys.stderr)
        return EXIT_USAGE


def console_main() -> None:
    """The ``tonuslab`` console script and ``python -m tonuslab``: :func:`main`, then exit.

    After a full disk, HDF5's own exit handler may crash (a segmentation fault, seen in about a
    third of real-ENOSPC runs) while closing a file whose last write failed, turning the clear
    one-line error and exit code 2 into a crash. Everything that can be saved is closed or
    flushed by then (the recorder closes the file and the journal before the error reaches
    here), so the process then leaves without running exit handlers.
    """
    import warnings

    # NumPy's RuntimeWarnings ("Mean of empty slice", "invalid value in divide") are internal
    # detail: results carry NaN and the analyses' own quality flags say why. On a terminal they
    # only push the one-line error off the screen. TONUSLAB_WARNINGS=1 shows them.
    if os.environ.get("TONUSLAB_WARNINGS", "0") in ("", "0"):
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"numpy(\..*)?$")
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"(dsp|tonuslab)\..*")
    code = main()
    session_file = sys.modules.get("acquire.session_file")  # only if a command loaded it
    if session_file is not None and session_file.hdf5_unsafe_to_finalize():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    console_main()
