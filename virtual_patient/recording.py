"""The recording object returned by the batch simulators."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Recording"]


@dataclass
class Recording:
    """A simulated session as the device would record it, plus its ground truth.

    Attributes
    ----------
    emg_uv : ndarray, shape (n, n_emg), float64
        EMG in microvolts as recorded: ``emg_counts * emg_scale_uv`` (quantised, saturated).
    emg_counts : ndarray, shape (n, n_emg), int32
        ADC counts (offset 0).
    emg_scale_uv : float
        Microvolts per count.
    emg_rate_hz : float
    angle_deg : ndarray, shape (m,), float64
        Goniometer reading in degrees: ``(angle_counts[:, 0] - angle_offset_counts) *
        angle_scale_deg``. Analysed angle = ``stretch_direction_sign * angle_deg`` (increases as
        the tested muscle lengthens); includes the goniometer's gain and offset error and noise.
    angle_counts : ndarray, shape (m, 1), int32
    angle_scale_deg : float
    angle_offset_counts : int
    angle_rate_hz : float
    stretch_direction_sign : int
        +1 or -1 (the profile's ``goniometer_sign``).
    events : list of dict
        Stimulus pulses in time order: ``kind`` ("stimulus"), ``emg_sample_index``, ``time_s``,
        ``intensity_ma``, ``width_us``, ``pulse_index`` (index in its pair or train).
    truth : dict
        JSON-serialisable ground truth (see docs/simulator.md).
    channel_names : list of str
    """

    emg_uv: np.ndarray
    emg_counts: np.ndarray
    emg_scale_uv: float
    emg_rate_hz: float
    angle_deg: np.ndarray
    angle_counts: np.ndarray
    angle_scale_deg: float
    angle_offset_counts: int
    angle_rate_hz: float
    stretch_direction_sign: int
    events: list = field(default_factory=list)
    truth: dict = field(default_factory=dict)
    channel_names: list = field(default_factory=list)

    def __repr__(self) -> str:
        n, ch = self.emg_uv.shape
        name = self.truth.get("profile", {}).get("name", "?")
        return (
            f"Recording({name!r}, {self.duration_s:.1f} s, EMG {n} x {ch} at "
            f"{self.emg_rate_hz:g} Hz, angle {self.angle_deg.shape[0]} at "
            f"{self.angle_rate_hz:g} Hz, {len(self.truth.get('stretches', []))} stretches, "
            f"{len(self.events)} stimuli)"
        )

    @property
    def emg_time_s(self) -> np.ndarray:
        """Time of each EMG sample (s), shape (n,)."""
        return np.arange(self.emg_uv.shape[0]) / self.emg_rate_hz

    @property
    def angle_time_s(self) -> np.ndarray:
        """Time of each angle sample (s), shape (m,)."""
        return np.arange(self.angle_deg.shape[0]) / self.angle_rate_hz

    @property
    def analysed_angle_deg(self) -> np.ndarray:
        """``stretch_direction_sign * angle_deg`` (deg): increases as the muscle lengthens."""
        return self.stretch_direction_sign * self.angle_deg

    @property
    def duration_s(self) -> float:
        return self.emg_uv.shape[0] / self.emg_rate_hz
