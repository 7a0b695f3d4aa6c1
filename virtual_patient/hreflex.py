"""H-reflex model: recruitment (M sigmoid, H rise-and-fall), rate-dependent depression, wave
shapes, the stimulus artifact, and protocol helpers (recruitment ladder, frequency blocks, paired
pulses).

Amplitudes are peak-to-peak in microvolts at unit channel gain; the recorded channel multiplies
them by its gain (``truth["channels"][0]["gain"]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ProgramError
from .profiles import Profile

__all__ = [
    "StimulusSpec",
    "depression_factor",
    "frequency_blocks",
    "paired_pulses",
    "recruitment",
    "recruitment_ladder",
    "test_intensity_ma",
    "wave_template",
]


@dataclass(frozen=True)
class StimulusSpec:
    """One stimulus pulse of a program.

    Parameters
    ----------
    time_s : float
        Pulse onset (s from the start of the session); rounded to the nearest EMG sample.
    intensity_ma : float
        Current (mA).
    width_us : int
        Pulse width (microseconds).
    pulse_index : int
        Index of the pulse within its pair or train (0 for the first).
    """

    time_s: float
    intensity_ma: float
    width_us: int = 1000
    pulse_index: int = 0


def _sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float)))


def _h_shape(p: Profile, i: np.ndarray | float) -> np.ndarray:
    up = _sigmoid((np.asarray(i, dtype=float) - p.h_up_i50_ma) / p.h_up_slope_ma)
    down = 1.0 - _sigmoid((np.asarray(i, dtype=float) - p.h_down_i50_ma) / p.h_down_slope_ma)
    return up * down


def _h_peak(p: Profile) -> tuple[float, float]:
    """(intensity of the H maximum, maximum of the unnormalised shape)."""
    lo, hi = 0.0, max(p.stim_range_ma[1], p.h_down_i50_ma + 10 * p.h_down_slope_ma)
    grid = np.linspace(lo, hi, 20001)
    s = _h_shape(p, grid)
    k = int(np.argmax(s))
    return float(grid[k]), float(s[k])


def recruitment(p: Profile, intensity_ma: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Expected (M, H) peak-to-peak amplitudes at an intensity (unit gain, no depression).

    M = Mmax * sigmoid((I - m_i50) / m_slope); H = Hmax * up(I) * (1 - down(I)) / peak, so the
    maximum of H over intensity is exactly ``hmax_mmax * mmax_uv``.

    Parameters
    ----------
    p : Profile
    intensity_ma : float or ndarray, shape (k,)
        Stimulus intensity (mA).

    Returns
    -------
    m_uv, h_uv : ndarray
        Same shape as ``intensity_ma``, microvolts peak-to-peak.
    """
    i = np.asarray(intensity_ma, dtype=float)
    m = p.mmax_uv * _sigmoid((i - p.m_i50_ma) / p.m_slope_ma)
    _, peak = _h_peak(p)
    h = p.hmax_mmax * p.mmax_uv * _h_shape(p, i) / peak if peak > 0 else np.zeros_like(i)
    return m, h


def test_intensity_ma(p: Profile, m_fraction: float | None = None) -> float:
    """Intensity (mA) where the expected M is ``m_fraction`` of Mmax (default: the profile's
    ``h_test_m_fraction``, 0.2), on the rising H limb for the named profiles.

    Raises
    ------
    ProgramError
        ``m_fraction`` outside (0, 1).
    """
    frac = p.h_test_m_fraction if m_fraction is None else m_fraction
    if not 0 < frac < 1:
        raise ProgramError("m_fraction must lie strictly between 0 and 1")
    i = p.m_i50_ma + p.m_slope_ma * math.log(frac / (1 - frac))
    return float(i)


def depression_factor(p: Profile, interval_s: float | None) -> float:
    """Rate-dependent depression factor of H for a stimulus ``interval_s`` after the previous.

    Interpolated linearly in log(interval) through the profile's table; 1.0 for the first
    stimulus (``None``) and beyond the table, the first value below it.
    """
    if interval_s is None:
        return 1.0
    xs = np.log(np.asarray(p.depression_interval_s))
    return float(np.interp(math.log(max(interval_s, 1e-6)), xs, p.depression_ratio, right=1.0))


def wave_template(phases: int, n_dense: int = 20001) -> tuple[float, float]:
    """(normalisation, first-peak position in [0, 1]) of the compact wave shape.

    shape(u) = sin(phases * pi * u) * sin(pi * u)**2 for u in [0, 1], 0 outside: smooth,
    zero mean for 2 phases, starts exactly at u = 0 (the onset latency).
    """
    u = np.linspace(0.0, 1.0, n_dense)
    s = _shape(phases, u)
    p2p = float(s.max() - s.min())
    d = np.diff(s)
    first = int(np.flatnonzero(np.sign(d[1:]) != np.sign(d[:-1]))[0]) + 1
    return p2p, float(u[first])


def _shape(phases: int, u: np.ndarray) -> np.ndarray:
    inside = (u >= 0) & (u <= 1)
    uc = np.where(inside, u, 0.0)
    return np.where(inside, np.sin(phases * np.pi * uc) * np.sin(np.pi * uc) ** 2, 0.0)


def render_wave(
    t_rel_s: np.ndarray, onset_s: float, duration_s: float, phases: int, p2p_uv: float
) -> np.ndarray:
    """Wave samples (uV) at times ``t_rel_s`` (s after the stimulus); continuous p2p = p2p_uv."""
    norm, _ = _TEMPLATES[phases]
    return (p2p_uv / norm) * _shape(phases, (t_rel_s - onset_s) / duration_s)


def render_artifact(t_rel_s: np.ndarray, p: Profile, intensity_ma: float, width_us: float):
    """Stimulus artifact (uV, unit gain) at times after the pulse onset."""
    a = p.artifact_uv_per_ma * intensity_ma
    w = width_us * 1e-6
    out = np.zeros_like(t_rel_s)
    during = (t_rel_s >= 0) & (t_rel_s < w)
    out[during] = a
    after = t_rel_s >= w
    ta = t_rel_s[after] - w
    out[after] = -a * (
        p.artifact_tail_fraction * np.exp(-ta / p.artifact_tail_s)
        + p.artifact_slow_fraction * np.exp(-ta / p.artifact_slow_s)
    )
    return out


def artifact_duration_s(p: Profile, width_us: float) -> float:
    return width_us * 1e-6 + 12 * max(p.artifact_tail_s, p.artifact_slow_s)


_TEMPLATES = {k: wave_template(k) for k in (2, 3)}


def recruitment_ladder(
    p: Profile,
    *,
    start_ma: float | None = None,
    stop_ma: float | None = None,
    step_ma: float = 1.0,
    interval_s: float = 10.0,
    order: str = "ascending",
    rng: np.random.Generator | None = None,
    start_s: float = 1.0,
    width_us: int = 1000,
) -> list[StimulusSpec]:
    """Stimuli at increasing (or shuffled) intensities, ``interval_s`` apart.

    Parameters
    ----------
    p : Profile
    start_ma, stop_ma : float, optional
        Range (mA, inclusive); default the profile's ``stim_range_ma``.
    step_ma : float
        Step (mA).
    interval_s : float
        Onset-to-onset interval (s); 10 s keeps rate-dependent depression out (factor 0.93 in
        the named profiles).
    order : {"ascending", "random"}
        Random order needs ``rng`` (numpy.random.Generator).
    start_s : float
        Time of the first stimulus (s).
    width_us : int

    Returns
    -------
    list of StimulusSpec
    """
    lo = p.stim_range_ma[0] if start_ma is None else start_ma
    hi = p.stim_range_ma[1] if stop_ma is None else stop_ma
    if step_ma <= 0 or hi < lo or interval_s <= 0:
        raise ProgramError("recruitment_ladder needs step_ma > 0, stop >= start, interval > 0")
    levels = np.round(np.arange(lo, hi + step_ma / 2, step_ma), 6)
    if order == "random":
        if rng is None:
            raise ProgramError("a random-order ladder needs rng (numpy.random.Generator)")
        levels = rng.permutation(levels)
    elif order != "ascending":
        raise ProgramError(f"order must be 'ascending' or 'random', got {order!r}")
    return [
        StimulusSpec(start_s + k * interval_s, float(v), width_us) for k, v in enumerate(levels)
    ]


def frequency_blocks(
    intensity_ma: float,
    *,
    frequencies_hz: tuple[float, ...] = (0.1, 0.2, 0.3, 1.0, 2.0),
    n_per_block: int = 10,
    rest_s: float = 20.0,
    start_s: float = 1.0,
    width_us: int = 1000,
) -> list[StimulusSpec]:
    """Blocks of ``n_per_block`` stimuli at each frequency, separated by ``rest_s``.

    Parameters
    ----------
    intensity_ma : float
        Test intensity (mA), e.g. :func:`test_intensity_ma`.
    frequencies_hz : tuple of float
        Block rates in the order given (Hz).
    n_per_block : int
    rest_s : float
        Pause between the last pulse of a block and the first of the next (s).
    start_s : float
    width_us : int

    Returns
    -------
    list of StimulusSpec
        ``pulse_index`` counts pulses within a block (0 for the first).
    """
    out = []
    t = start_s
    for f in frequencies_hz:
        if f <= 0:
            raise ProgramError("frequencies must be > 0 Hz")
        for k in range(n_per_block):
            out.append(StimulusSpec(round(t + k / f, 6), float(intensity_ma), width_us, k))
        t += (n_per_block - 1) / f + rest_s
    return out


def paired_pulses(
    intensity_ma: float,
    *,
    intervals_s: tuple[float, ...] = (0.1, 0.5, 1.0, 2.5, 5.0),
    n_pairs: int = 3,
    rest_s: float = 20.0,
    start_s: float = 1.0,
    width_us: int = 1000,
) -> list[StimulusSpec]:
    """``n_pairs`` pairs of pulses at each conditioning-test interval.

    Parameters
    ----------
    intensity_ma : float
    intervals_s : tuple of float
        Onset-to-onset interval within a pair (s).
    n_pairs : int
    rest_s : float
        Pause after each pair (s).
    start_s : float
    width_us : int

    Returns
    -------
    list of StimulusSpec
        Conditioning pulses have ``pulse_index`` 0, test pulses 1.
    """
    out = []
    t = start_s
    for isi in intervals_s:
        for _ in range(n_pairs):
            out.append(StimulusSpec(round(t, 6), float(intensity_ma), width_us, 0))
            out.append(StimulusSpec(round(t + isi, 6), float(intensity_ma), width_us, 1))
            t += isi + rest_s
    return out


def __getattr__(name: str):
    if name == "Stimulus":  # the old name (before issue 14); removed in the next release
        import warnings

        warnings.warn("virtual_patient.Stimulus is now StimulusSpec", DeprecationWarning, 2)
        return StimulusSpec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
