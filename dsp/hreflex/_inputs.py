"""Stage 0 of the H-reflex analysis: validated settings and inputs (two frozen records).

:func:`check_inputs` validates the options of :func:`dsp.hreflex.analyze_hreflex` into an
:class:`HReflexSettings` and the recording and stimulus arrays into an :class:`HReflexInputs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp.errors import SignalError
from dsp.hreflex.presets import MusclePreset, get_preset

#: Largest power of the onset model t**p (see :func:`dsp.hreflex.waves.onset_of_wave`).
ONSET_P_MAX = 3.0

#: Fewest trials at the test intensity for an M-stability figure before a better-filled level
#: one ladder step away is preferred.
MIN_STABILITY_TRIALS = 3

#: Usual block rates (Hz); a measured rate within 10% of one of these is snapped to it.
STANDARD_RATES_HZ = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)


class HReflexInputError(SignalError):
    """An input of :func:`analyze_hreflex` is unusable (shape, length, range, window)."""


def _rate_key(v: float) -> str:
    return f"{round(float(v), 3):g}"


def _snap_rate(rate_hz: float) -> float:
    if not np.isfinite(rate_hz) or rate_hz <= 0:
        return float("nan")
    for r in STANDARD_RATES_HZ:
        if abs(rate_hz - r) <= 0.1 * r:
            return r
    return float(rate_hz)


def _as_1d(name, v, n, dtype=float, allow_none=False):
    if v is None:
        if allow_none:
            return None
        raise HReflexInputError(f"{name} is required")
    a = np.asarray(v, dtype=dtype)
    if a.ndim == 0:
        a = np.full(n, a.item(), dtype=dtype)
    if a.shape != (n,):
        raise HReflexInputError(
            f"{name} has shape {a.shape}; expected ({n},), one value per stimulus"
        )
    return a


def _pair_roles(pidx: np.ndarray) -> np.ndarray:
    """0: not in a pair; 1: first of a pair; 2: second of a pair.

    A pair is a group of exactly two consecutive pulses with ``pulse_index`` 0 then 1; longer
    groups (0, 1, 2, ...) are trains or rate blocks, not pairs.
    """
    role = np.zeros(pidx.size, np.int64)
    i = 0
    while i < pidx.size:
        j = i + 1
        while j < pidx.size and pidx[j] == pidx[j - 1] + 1 and pidx[j] != 0:
            j += 1
        if j - i == 2 and pidx[i] == 0:
            role[i], role[i + 1] = 1, 2
        i = j
    return role


@dataclass(frozen=True)
class HReflexSettings:
    """The options of :func:`dsp.hreflex.analyze_hreflex`, validated (same names and meaning)."""

    muscle: str
    channel: int
    m_window_ms: tuple | None
    h_window_ms: tuple | None
    background_band_uv: tuple | None
    blank_ms: float | None
    artifact_search_ms: tuple
    artifact_offset_range_ms: tuple
    highpass_hz: float | None
    mains_hz: float | str | None
    artifact_tail: str
    recruitment_interval_s: tuple
    test_m_fraction: float
    qc_band: tuple
    test_tolerance: float
    rdd_discard: int
    baseline_rate_hz: float
    n_boot: int
    seed: object

    def rng(self) -> np.random.Generator:
        """The bootstrap's generator: the caller's, or a new one from the seed."""
        s = self.seed
        return s if isinstance(s, np.random.Generator) else np.random.default_rng(s)

    def to_dict(self, preset: MusclePreset, derived: dict) -> dict:
        """The result's ``parameters``: these settings with what the analysis derived.

        ``derived`` holds ``background_band_uv``, ``background_band_source``, ``mains_hz``,
        ``recruitment_rule`` and ``n_recruitment_stimuli``.
        """
        return {
            "muscle": preset.name,
            "preset": preset.to_dict(),
            "background_band_uv": list(derived["background_band_uv"]),
            "background_band_source": derived["background_band_source"],
            "blank_ms": self.blank_ms,
            "artifact_search_ms": list(self.artifact_search_ms),
            "artifact_offset_range_ms": list(self.artifact_offset_range_ms),
            "highpass_hz": self.highpass_hz,
            "mains_hz": derived["mains_hz"],
            "recruitment_interval_s": list(self.recruitment_interval_s),
            "recruitment_rule": derived["recruitment_rule"],
            "n_recruitment_stimuli": derived["n_recruitment_stimuli"],
            "test_m_fraction": self.test_m_fraction,
            "qc_band": list(self.qc_band),
            "test_tolerance": self.test_tolerance,
            "rdd_discard": self.rdd_discard,
            "baseline_rate_hz": self.baseline_rate_hz,
            "n_boot": self.n_boot,
        }


@dataclass(frozen=True)
class HReflexInputs:
    """The checked recording and stimuli.

    Attributes
    ----------
    x : ndarray, shape (n_samples,)
        The analysed EMG channel, uV.
    rate : float
        EMG rate, Hz; ``per_ms`` = samples per ms.
    idx : ndarray of int64, shape (n_stimuli,)
        Stimulus event sample indices (strictly increasing).
    intensity, width : ndarray, shape (n_stimuli,)
        mA and us (``width`` None when not given).
    pidx, pair_role : ndarray of int64, shape (n_stimuli,)
        Pulse index in its pair/train; 0 single, 1 first, 2 second of a pair.
    given_rate : ndarray or None
        Block rate of each stimulus given by the caller, Hz.
    preset : MusclePreset
    """

    x: np.ndarray
    rate: float
    per_ms: float
    idx: np.ndarray
    intensity: np.ndarray
    width: np.ndarray | None
    pidx: np.ndarray
    pair_role: np.ndarray
    given_rate: np.ndarray | None
    preset: MusclePreset

    @property
    def n_st(self) -> int:
        """Number of stimuli."""
        return int(self.idx.size)


def check_inputs(
    emg_uv, emg_rate_hz, stim_sample_index, stim_intensity_ma, *, stim_width_us=None,
    pulse_index=None, stim_rate_hz=None, muscle="soleus", channel=0, m_window_ms=None,
    h_window_ms=None, background_band_uv=None, blank_ms=None, artifact_search_ms=(-2.0, 2.0),
    artifact_offset_range_ms=(-5.0, 10.0), highpass_hz=None, mains_hz="auto",
    artifact_tail="template", recruitment_interval_s=(8.0, 15.0), test_m_fraction=0.2,
    qc_band=(0.15, 0.35), test_tolerance=0.03, rdd_discard=0, baseline_rate_hz=0.1,
    n_boot=200, seed=0,
) -> tuple[HReflexInputs, HReflexSettings]:  # fmt: skip
    """Validate the arguments of :func:`dsp.hreflex.analyze_hreflex` (same names, defaults).

    Returns
    -------
    inputs : HReflexInputs
    settings : HReflexSettings

    Raises
    ------
    HReflexInputError
        Wrong shapes, lengths, rates, channel or windows (one-line message).
    """
    x = np.asarray(emg_uv, dtype=np.float64)
    if x.ndim == 2:
        if not 0 <= channel < x.shape[1]:
            raise HReflexInputError(
                f"channel={channel} is out of range for emg_uv with {x.shape[1]} channels"
            )
        x = np.ascontiguousarray(x[:, channel])
    elif x.ndim != 1:
        raise HReflexInputError(
            f"emg_uv must be (n_samples,) or (n_samples, n_channels), got shape {x.shape}"
        )
    elif channel != 0:
        raise HReflexInputError(f"channel={channel} given but emg_uv has a single channel")
    rate = float(emg_rate_hz)
    if not np.isfinite(rate) or rate < 2000.0:
        raise HReflexInputError(
            f"emg_rate_hz={emg_rate_hz} is too low for H-reflex latencies; record at >= 5 kHz"
        )
    idx = np.asarray(stim_sample_index)
    if idx.ndim != 1 or idx.size == 0:
        raise HReflexInputError("stim_sample_index must be a non-empty 1-D array of sample indices")
    if not np.issubdtype(idx.dtype, np.integer):
        if not np.all(np.isfinite(idx)) or np.any(idx != np.round(idx)):
            raise HReflexInputError("stim_sample_index must hold whole sample numbers")
        idx = idx.astype(np.int64)
    idx = idx.astype(np.int64)
    n_st = idx.size
    if np.any(idx < 0) or np.any(idx >= x.shape[0]):
        raise HReflexInputError(
            f"stim_sample_index has values outside the recording (0..{x.shape[0] - 1})"
        )
    if np.any(np.diff(idx) <= 0):
        raise HReflexInputError("stim_sample_index must be strictly increasing")
    intensity = _as_1d("stim_intensity_ma", stim_intensity_ma, n_st)
    width = _as_1d("stim_width_us", stim_width_us, n_st, allow_none=True)
    pidx = _as_1d("pulse_index", pulse_index, n_st, dtype=np.int64, allow_none=True)
    if pidx is None:
        pidx = np.zeros(n_st, np.int64)
    if np.any(pidx < 0):
        raise HReflexInputError("pulse_index must be >= 0 (index of the pulse in its pair/train)")
    pair_role = _pair_roles(pidx)
    given_rate = _as_1d("stim_rate_hz", stim_rate_hz, n_st, allow_none=True)
    preset = get_preset(muscle)
    for name, w in (("m_window_ms", m_window_ms), ("h_window_ms", h_window_ms)):
        if w is not None and not (len(w) == 2 and 0 <= w[0] < w[1] <= preset.epoch_ms[1]):
            raise HReflexInputError(
                f"{name}={w} must be (start, end) with 0 <= start < end <= {preset.epoch_ms[1]} ms"
            )
    if not 0.0 <= test_tolerance < 1.0:
        raise HReflexInputError(f"test_tolerance={test_tolerance} must lie in [0, 1)")
    if not 0.0 < test_m_fraction < 1.0:
        raise HReflexInputError(f"test_m_fraction={test_m_fraction} must lie in (0, 1)")
    for name, w in (
        ("artifact_search_ms", artifact_search_ms),
        ("artifact_offset_range_ms", artifact_offset_range_ms),
    ):
        if not (len(w) == 2 and np.all(np.isfinite(w)) and w[0] < w[1]):
            raise HReflexInputError(f"{name}={w} must be (start, end) in ms with start < end")
    if artifact_tail not in ("template", "none"):
        raise HReflexInputError(f"artifact_tail={artifact_tail!r} must be 'template' or 'none'")
    inputs = HReflexInputs(
        x, rate, rate / 1000.0, idx, intensity, width, pidx, pair_role, given_rate, preset
    )
    settings = HReflexSettings(
        muscle=muscle, channel=channel, m_window_ms=m_window_ms, h_window_ms=h_window_ms,
        background_band_uv=background_band_uv, blank_ms=blank_ms,
        artifact_search_ms=artifact_search_ms, artifact_offset_range_ms=artifact_offset_range_ms,
        highpass_hz=highpass_hz, mains_hz=mains_hz, artifact_tail=artifact_tail,
        recruitment_interval_s=recruitment_interval_s, test_m_fraction=test_m_fraction,
        qc_band=qc_band, test_tolerance=test_tolerance, rdd_discard=rdd_discard,
        baseline_rate_hz=baseline_rate_hz, n_boot=n_boot, seed=seed,
    )  # fmt: skip
    return inputs, settings
