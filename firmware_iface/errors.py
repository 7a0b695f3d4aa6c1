"""Exceptions raised by :mod:`firmware_iface`.

Every exception is a subclass of :class:`ProtocolError` with a one-line message naming the problem
and what to do about it. The CLI prints that line and exits with code 2.
"""


class ProtocolError(Exception):
    """Base class for protocol-level problems (malformed message, bad reply, version mismatch)."""


class CommandTimeout(ProtocolError):
    """The device did not answer a command (no ack and no error) within the timeout."""


class CommandRejected(ProtocolError):
    """The device answered a command with an ERROR frame.

    Attributes
    ----------
    code : int
        The protocol error code (see :class:`firmware_iface.messages.ErrorCode`).
    """

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)
        self.code = code


class VersionMismatch(ProtocolError):
    """The device speaks a protocol major version this host does not support."""


class LinkClosed(ProtocolError):
    """The byte link was closed (by us, by the device, or the cable/radio went away)."""


class MalformedMessage(ProtocolError):
    """A frame decoded correctly but its payload does not match its message type."""


class StimulationRefused(ProtocolError):
    """The host refused to send a stimulate command (limit exceeded or no authentication key)."""


class AuthenticationError(ProtocolError):
    """No usable stimulation key (missing, unreadable or malformed key file)."""
