"""Exceptions raised by :mod:`firmware_iface`."""


class ProtocolError(Exception):
    """Base class for protocol-level problems (malformed message, bad reply, version mismatch)."""
