"""Physical-unit signals for the emulators of third-party devices (Trigno, BITalino).

Wraps a SignalSource (``docs/architecture.md``; usually ``virtual_patient.PatientSource``) so an
emulator can ask for the next EMG samples in microvolts and goniometer samples in degrees, and
then encode them the way its device would (float32 volts, 10-bit ADC codes, ...).
"""

from __future__ import annotations

import numpy as np


def patient_source(profile: str | None, seed: int = 0, program=None):
    """``virtual_patient.PatientSource(profile, ...)``, or the built-in ``SimpleSource``."""
    if not profile or profile == "simple":
        from firmware_iface.emulator.source import SimpleSource

        return SimpleSource(seed=seed)
    from virtual_patient import PatientSource  # lazily: the simulator ships with tonuslab

    return PatientSource(profile, seed=seed, program=program)


class PhysicalSignals:
    """The next EMG (uV) and goniometer (deg) samples of a SignalSource.

    Parameters
    ----------
    source : SignalSource
    emg_rate_hz, angle_rate_hz : float
        Rates asked of the source.
    n_emg : int
        EMG channels.
    """

    def __init__(self, source, *, emg_rate_hz: float, angle_rate_hz: float, n_emg: int):
        self.source = source
        self.emg_rate_hz = float(emg_rate_hz)
        self.angle_rate_hz = float(angle_rate_hz)
        table = source.configure(self.emg_rate_hz, int(n_emg), self.angle_rate_hz, 1, 16)
        emg = [c for c in table if c["kind"] == "emg"]
        ang = [c for c in table if c["kind"] == "angle"]
        self._emg_scale = np.array([c["scale"] for c in emg], dtype=np.float64)
        self._emg_offset = np.array([c["offset"] for c in emg], dtype=np.float64)
        self._ang_scale = float(ang[0]["scale"])
        self._ang_offset = float(ang[0]["offset"])
        self.emg_index = 0
        self.angle_index = 0

    def emg_uv(self, n: int) -> np.ndarray:
        """Next ``n`` EMG samples in uV, (n, n_emg) float64."""
        counts = self.source.emg_block(int(n))
        self.emg_index += int(n)
        return (counts - self._emg_offset) * self._emg_scale

    def angle_deg(self, n: int) -> np.ndarray:
        """Next ``n`` goniometer samples in degrees, (n,) float64."""
        counts = self.source.angle_block(int(n))
        self.angle_index += int(n)
        return (counts[:, 0] - self._ang_offset) * self._ang_scale

    def stimulate(self, emg_sample_index: int, intensity_ma: float, width_us: int) -> None:
        self.source.stimulate(int(emg_sample_index), float(intensity_ma), int(width_us))

    def prompt(self, kind: str, params: dict) -> None:
        self.source.prompt(kind, params)
