"""tonuslab device wire protocol v1: codec, messages, authentication, emulated device.

Importing this package pulls in no device I/O (no pyserial, no bleak). See ``PROTOCOL.md``.
"""

from firmware_iface.errors import ProtocolError

__all__ = ["ProtocolError"]
