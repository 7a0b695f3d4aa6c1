"""Stimulation authentication: HMAC-SHA256 over each STIMULATE with a monotonic counter.

The device and the host share a 32-byte key, established at pairing (PAIR command, accepted only
while the device's pairing window is open after a physical button press). Each STIMULATE carries
a counter that must exceed the last one the device accepted (replay protection) and a MAC:

``mac = HMAC-SHA256(key, b"tonuslab-stim-v1" + serial(16 bytes, NUL-padded) + payload[:-16])[:16]``

over the raw payload bytes before the MAC, whatever a newer minor version appended. Each command
also carries a deadline on the device's uptime clock (``not_after_us``), so a command held back
by an attacker cannot be delivered later.

The host keeps the key in a key file: one line of 64 hex digits, readable only by its owner.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import pathlib
import secrets
import stat

from firmware_iface.errors import AuthenticationError
from firmware_iface.messages import MAC_SIZE, Stimulate

KEY_SIZE = 32
MAC_DOMAIN = b"tonuslab-stim-v1"
#: Environment variable naming the default key file.
KEY_FILE_ENV = "TONUSLAB_STIM_KEY_FILE"


def serial_bytes(serial: str) -> bytes:
    return serial.encode("ascii")[:16].ljust(16, b"\x00")


def compute_mac(key: bytes, serial: str, signed_part: bytes) -> bytes:
    """The 16-byte MAC of a STIMULATE payload's signed part (everything before the MAC)."""
    digest = hmac.new(key, MAC_DOMAIN + serial_bytes(serial) + signed_part, hashlib.sha256)
    return digest.digest()[:MAC_SIZE]


def sign(command: Stimulate, key: bytes, serial: str) -> Stimulate:
    """Return ``command`` with its MAC filled in."""
    return dataclasses.replace(command, mac=compute_mac(key, serial, command.signed_part()))


def verify(command: Stimulate, key: bytes, serial: str) -> bool:
    """Constant-time check of a STIMULATE's MAC (over :meth:`Stimulate.signed_part`, which for a
    command from :meth:`Stimulate.unpack` is exactly the payload bytes before the MAC)."""
    return hmac.compare_digest(compute_mac(key, serial, command.signed_part()), command.mac)


def verify_payload(payload: bytes, key: bytes, serial: str) -> bool:
    """Constant-time check of a raw STIMULATE payload: the MAC is its last 16 bytes and covers
    every byte before them, fields of a newer minor version included (PROTOCOL.md 8.2).

    A payload shorter than a MAC never verifies.
    """
    payload = bytes(payload)
    if len(payload) <= MAC_SIZE:
        return False
    mac = compute_mac(key, serial, payload[:-MAC_SIZE])
    return hmac.compare_digest(mac, payload[-MAC_SIZE:])


def new_key() -> bytes:
    """A fresh random 32-byte key."""
    return secrets.token_bytes(KEY_SIZE)


def write_key_file(path: str | os.PathLike, key: bytes) -> pathlib.Path:
    """Store ``key`` as 64 hex digits in a file readable only by its owner (mode 0600)."""
    if len(key) != KEY_SIZE:
        raise AuthenticationError(f"a stimulation key has {KEY_SIZE} bytes, got {len(key)}")
    path = pathlib.Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
    os.chmod(path, 0o600)
    return path


def load_key_file(path: str | os.PathLike | None = None) -> bytes:
    """Read a key file (default: ``$TONUSLAB_STIM_KEY_FILE``).

    Raises
    ------
    AuthenticationError
        No path given, the file is missing or unreadable, readable by others, or not 64 hex digits.
    """
    if path is None:
        path = os.environ.get(KEY_FILE_ENV)
        if not path:
            raise AuthenticationError(
                f"no stimulation key: pass a key file (--key-file) or set {KEY_FILE_ENV}"
            )
    path = pathlib.Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as exc:
        message = f"cannot read stimulation key file {path}: {exc.strerror}"
        raise AuthenticationError(message) from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuthenticationError(
            f"stimulation key file {path} is readable by others; run: chmod 600 {path}"
        )
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_SIZE:
        raise AuthenticationError(
            f"stimulation key file {path} must hold {2 * KEY_SIZE} hex digits on one line"
        )
    return key
