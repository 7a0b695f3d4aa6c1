"""Exceptions raised by :mod:`acquire`."""


class AcquisitionError(Exception):
    """Base class for recording problems (source unreachable, disk full, bad session file)."""
