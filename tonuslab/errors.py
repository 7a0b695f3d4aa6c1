"""Exceptions of the tonuslab front door, and the set of errors the CLI treats as user mistakes."""

from __future__ import annotations

# A session file that cannot be read or does not hold what the operation needs raises
# ``SessionFileError``: one class whichever layer found the problem (re-exported from acquire; its
# subclasses name the case: NotASessionFileError, TruncatedSessionError, NewerSchemaError,
# OlderSchemaError).
from acquire.errors import AcquisitionError, SessionFileError
from dsp.errors import SignalError
from firmware_iface.errors import ProtocolError


class TonuslabError(Exception):
    """Base class for errors raised by the :mod:`tonuslab` API."""


class UsageError(TonuslabError):
    """A command-line argument or API parameter is wrong (CLI exit code 2)."""


#: Exceptions that mean "the user or the environment gave us something we cannot use".
#: The CLI prints their one-line message and exits with code 2, never a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    TonuslabError,
    AcquisitionError,
    ProtocolError,
    SignalError,
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
)

__all__ = ["USER_ERRORS", "SessionFileError", "TonuslabError", "UsageError"]
