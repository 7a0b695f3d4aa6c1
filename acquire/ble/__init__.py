"""BLE source: a ByteLink over the tonuslab GATT service, on bleak's public ``BleakClient``.

``open_ble_link("ble://ADDRESS-or-NAME")`` scans for a device advertising the tonuslab service,
connects, subscribes and returns a :class:`BleLink` (``read``/``write``/``close``) that feeds the
shared frame decoder. See :mod:`acquire.ble.link` for reconnection and events, and
:mod:`acquire.ble.bumble_backend` for the in-process test backend.

bleak is imported only when a link is opened or a scan runs.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from acquire.ble.link import (
    DEFAULT_BACKOFF_S,
    BleDeviceNotFoundError,
    BleError,
    BleEvent,
    BleLink,
    BleLinkLostError,
    BleNotConnectedError,
    BleUnavailableError,
    describe_ble_error,
    is_ble_address,
)
from firmware_iface.gatt import NOTIFY_CHAR_UUID, SERVICE_UUID, WRITE_CHAR_UUID

__all__ = [
    "DEFAULT_BACKOFF_S",
    "NOTIFY_CHAR_UUID",
    "SERVICE_UUID",
    "WRITE_CHAR_UUID",
    "BleDeviceNotFoundError",
    "BleError",
    "BleEvent",
    "BleLink",
    "BleLinkLostError",
    "BleNotConnectedError",
    "BleUnavailableError",
    "describe_ble_error",
    "is_ble_address",
    "open_ble_link",
    "parse_ble_url",
    "register_backend",
    "registered_backend",
]


#: Named bleak backends selectable with ``ble://...?backend=NAME`` (see :func:`register_backend`).
_BACKENDS: dict[str, dict[str, Any]] = {}

_URL_OPTIONS = {
    "scan_timeout_s": float,
    "connect_timeout_s": float,
    "give_up_after_s": float,
    "reconnect": lambda v: v.lower() not in ("0", "false", "no", "off"),
}


def register_backend(name: str, *, client_backend=None, scanner_backend=None, loop=None) -> None:
    """Make a bleak backend selectable by name in a URL (``ble://NAME?backend=<name>``).

    Used by tests and demos to route :func:`acquire.links.open_link` through the bumble backend
    (with the event loop that owns the bumble devices). ``None`` for both backends removes it.
    """
    if client_backend is None and scanner_backend is None:
        _BACKENDS.pop(name, None)
        return
    _BACKENDS[name] = {
        "client_backend": client_backend,
        "scanner_backend": scanner_backend,
        "loop": loop,
    }


def registered_backend(name: str) -> dict[str, Any]:
    """The options registered under ``name`` (``client_backend``, ``scanner_backend``, ``loop``).

    Raises :class:`BleError` (one line) for an unknown name.
    """
    if name not in _BACKENDS:
        known = ", ".join(sorted(_BACKENDS)) or "none registered"
        raise BleError(f"unknown BLE backend '{name}' ({known})")
    return dict(_BACKENDS[name])


def parse_ble_url(url: str) -> tuple[str, dict[str, Any]]:
    """Split ``ble://TARGET?option=value&...`` into the target and :class:`BleLink` options."""
    if not url.startswith("ble://"):
        raise BleError(f"not a BLE URL: {url!r} (expected ble://ADDRESS-or-NAME)")
    rest = url[len("ble://") :]
    target, _, query = rest.partition("?")
    target = urllib.parse.unquote(target).strip().rstrip("/")
    if not target:
        raise BleError("empty BLE target: give an address or a device name (ble://NAME)")
    options: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if key == "backend":
            options.update(registered_backend(value))
        elif key in _URL_OPTIONS:
            try:
                options[key] = _URL_OPTIONS[key](value)
            except ValueError:
                raise BleError(f"bad value for {key} in {url!r}: {value!r}") from None
        else:
            allowed = ", ".join(["backend", *sorted(_URL_OPTIONS)])
            raise BleError(f"unknown option '{key}' in {url!r} (allowed: {allowed})")
    return target, options


def open_ble_link(url: str, **options: Any) -> BleLink:
    """Open ``ble://ADDRESS-or-NAME`` and return a connected, subscribed :class:`BleLink`.

    Parameters
    ----------
    url : str
        ``ble://`` followed by a Bluetooth address (or macOS device UUID) or the advertised name,
        optionally with ``?scan_timeout_s=&connect_timeout_s=&reconnect=&give_up_after_s=`` and
        ``backend=NAME`` (a backend registered with :func:`register_backend`).
    **options
        Keyword arguments of :class:`BleLink` (``client_backend``, ``scanner_backend``, ``loop``,
        ``on_event``, ...); they override the URL's.

    Raises
    ------
    BleDeviceNotFoundError, BleUnavailableError, BleError
        One-line, user-facing (subclasses of :class:`acquire.AcquisitionError`).
    """
    target, url_options = parse_ble_url(url)
    url_options.update(options)
    url_options.setdefault("service_uuid", SERVICE_UUID)
    url_options.setdefault("notify_uuid", NOTIFY_CHAR_UUID)
    url_options.setdefault("write_uuid", WRITE_CHAR_UUID)
    return BleLink(target, **url_options).open()
