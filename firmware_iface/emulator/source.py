"""The simple built-in signal source: band-limited noise on EMG, a sine on the goniometer.

Implements the SignalSource contract of ``docs/architecture.md``. A stimulus adds a short
biphasic artifact followed by an M-wave-like deflection, so stimulation is visible in the data.
"""

from __future__ import annotations

import numpy as np

#: Microvolts per count at gain 1 for 16- and 24-bit EMG (a +/-5 mV and +/-400 mV input range).
EMG_SCALE_UV = {16: 0.15, 24: 0.05}
ANGLE_SCALE_DEG = 0.01
ANGLE_OFFSET_COUNTS = 0.0


class SimpleSource:
    """Noise EMG (about 10 uV RMS) and a 0.5 Hz, 40 deg sine on every goniometer channel.

    Parameters
    ----------
    seed : int
        Seed of the noise generator (``numpy.random.default_rng``).
    """

    def __init__(self, seed: int = 0):
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self.configure(2000.0, 2, 500.0, 1, 16)

    def configure(self, emg_rate_hz, n_emg, angle_rate_hz, n_angle, emg_bits) -> list[dict]:
        self.emg_rate_hz = float(emg_rate_hz)
        self.angle_rate_hz = float(angle_rate_hz)
        self.n_emg = int(n_emg)
        self.n_angle = int(n_angle)
        self.emg_bits = int(emg_bits)
        self._emg_index = 0
        self._angle_index = 0
        self._stimuli: list[tuple[int, float, int]] = []
        self._all_stimuli: list[tuple[int, float, int]] = []
        self._prompts: list[dict] = []
        scale = EMG_SCALE_UV[self.emg_bits]
        table = [
            {
                "name": f"EMG{k + 1}",
                "kind": "emg",
                "unit": "uV",
                "scale": scale,
                "offset": 0.0,
                "highpass_hz": 10.0,
                "lowpass_hz": min(0.45 * emg_rate_hz, 2000.0),
            }
            for k in range(self.n_emg)
        ]
        table += [
            {
                "name": f"GON{k + 1}",
                "kind": "angle",
                "unit": "deg",
                "scale": ANGLE_SCALE_DEG,
                "offset": ANGLE_OFFSET_COUNTS,
                "highpass_hz": None,
                "lowpass_hz": None,
            }
            for k in range(self.n_angle)
        ]
        return table

    def emg_block(self, n: int) -> np.ndarray:
        scale = EMG_SCALE_UV[self.emg_bits]
        uv = self._rng.normal(0.0, 10.0, size=(n, self.n_emg))
        start = self._emg_index
        for index, intensity_ma, _width_us in self._stimuli:
            # 1 ms artifact then an M-wave-like bump 5-15 ms after the pulse
            for lag_ms, amp in ((0.0, 50.0 * intensity_ma), (5.0, 20.0 * intensity_ma)):
                first = index + round(lag_ms * 1e-3 * self.emg_rate_hz)
                dur = max(1, round((1.0 if lag_ms == 0 else 10.0) * 1e-3 * self.emg_rate_hz))
                a, b = max(first, start), min(first + dur, start + n)
                if a < b:
                    phase = (np.arange(a, b) - first) / dur
                    uv[a - start : b - start, :] += (amp * np.sin(2 * np.pi * phase))[:, None]
        self._stimuli = [s for s in self._stimuli if s[0] + self.emg_rate_hz >= start + n]
        self._emg_index += n
        limit = 2 ** (self.emg_bits - 1) - 1
        return np.clip(np.round(uv / scale), -limit - 1, limit).astype(np.int32)

    def angle_block(self, n: int) -> np.ndarray:
        t = (self._angle_index + np.arange(n)) / self.angle_rate_hz
        deg = 45.0 + 40.0 * np.sin(2 * np.pi * 0.5 * t)
        self._angle_index += n
        counts = np.round(deg / ANGLE_SCALE_DEG + ANGLE_OFFSET_COUNTS).astype(np.int32)
        return np.repeat(counts[:, None], self.n_angle, axis=1)

    def stimulate(self, emg_sample_index: int, intensity_ma: float, width_us: int) -> None:
        stimulus = (int(emg_sample_index), float(intensity_ma), int(width_us))
        self._stimuli.append(stimulus)
        self._all_stimuli.append(stimulus)

    def cancel_stimuli(self, from_index: int) -> None:
        """Forget the pulses scheduled at EMG sample ``from_index`` or later (not delivered)."""
        self._stimuli = [s for s in self._stimuli if s[0] < from_index]
        self._all_stimuli = [s for s in self._all_stimuli if s[0] < from_index]

    def prompt(self, kind: str, params: dict) -> None:
        self._prompts.append({"kind": kind, "params": dict(params), "emg_index": self._emg_index})

    def ground_truth(self) -> dict:
        return {
            "source": "simple",
            "seed": self._seed,
            "stimuli": [
                {"emg_sample_index": i, "intensity_ma": a, "width_us": w}
                for i, a, w in self._all_stimuli
            ],
            "prompts": list(self._prompts),
        }
