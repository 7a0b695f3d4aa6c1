"""Printing for commands whose output is often piped (``tonuslab analyze x.h5 | head``)."""

from __future__ import annotations

import os
import sys


def emit(text: str) -> None:
    """Print ``text``; a reader that closed the pipe early is not an error."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would complain again when flushing at exit: point stdout at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
