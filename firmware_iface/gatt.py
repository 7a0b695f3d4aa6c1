"""The BLE GATT layout of a tonuslab device (PROTOCOL.md section 9), defined once.

The host's BLE link (:mod:`acquire.ble`) and the emulated peripheral
(:mod:`firmware_iface.emulator.ble_gatt`) both import these names.
"""

#: The tonuslab service (advertised).
SERVICE_UUID = "7f3a0001-5c1e-4d6b-9a2f-3b8e1c0d7a51"
#: Host-to-device characteristic (write, write without response).
WRITE_CHAR_UUID = "7f3a0002-5c1e-4d6b-9a2f-3b8e1c0d7a51"
#: Device-to-host characteristic (notify, CCCD).
NOTIFY_CHAR_UUID = "7f3a0003-5c1e-4d6b-9a2f-3b8e1c0d7a51"

__all__ = ["NOTIFY_CHAR_UUID", "SERVICE_UUID", "WRITE_CHAR_UUID"]
