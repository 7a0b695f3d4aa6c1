"""The emulated device: protocol v1 over any byte stream, with a pluggable signal source.

Quick use::

    from firmware_iface.emulator import emulator_link, make_device
    link = emulator_link(make_device(stim_key=key), speed="fast")   # a ByteLink

Signal sources follow the SignalSource contract in ``docs/architecture.md``; the built-in one is
:class:`SimpleSource`. ``virtual_patient.PatientSource`` plugs in the same way.
"""

from firmware_iface.emulator.device import DeviceClock, EmulatedDevice, Faults
from firmware_iface.emulator.runner import (
    DeviceRunner,
    EmulatorLink,
    PtyEmulator,
    TcpEmulator,
    emulator_link,
    make_device,
)
from firmware_iface.emulator.source import SimpleSource

__all__ = [
    "DeviceClock",
    "DeviceRunner",
    "EmulatedDevice",
    "EmulatorLink",
    "Faults",
    "PtyEmulator",
    "SimpleSource",
    "TcpEmulator",
    "emulator_link",
    "make_device",
]
