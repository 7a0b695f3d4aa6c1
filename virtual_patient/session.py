"""Batch simulators: a whole stretch or H-reflex session as one :class:`Recording`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .engine import Engine
from .errors import ProgramError
from .hreflex import StimulusSpec, recruitment_ladder
from .profiles import Profile, get_profile
from .recording import Recording
from .stretch import StretchSpec, tsrt_protocol

__all__ = ["simulate_hreflex_session", "simulate_stretch_session"]


def _render(engine: Engine, duration_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EMG counts (n, n_emg) int32, EMG uV (n, n_emg) float64, angle counts (m, n_angle)."""
    n = round(duration_s * engine.fe)
    m = round(duration_s * engine.fa)
    counts = np.empty((n, engine.n_emg), dtype=np.int32)
    emg_uv = np.empty((n, engine.n_emg), dtype=np.float64)
    block = engine.chunk  # whole chunks: the engine hands out views, no copies
    for i in range(0, n, block):
        k = min(block, n - i)
        engine.render_into(i, counts[i : i + k], emg_uv[i : i + k])
    acounts = engine.angle_counts(0, m)
    return counts, emg_uv, acounts


def _recording(engine: Engine, counts, emg_uv, acounts, events) -> Recording:
    p = engine.profile
    angle_deg = (acounts[:, 0].astype(np.float64) - p.angle_offset_counts) * p.angle_scale_deg
    return Recording(
        emg_uv=emg_uv,
        emg_counts=counts,
        emg_scale_uv=engine.emg_scale_uv,
        emg_rate_hz=engine.fe,
        angle_deg=angle_deg,
        angle_counts=acounts,
        angle_scale_deg=p.angle_scale_deg,
        angle_offset_counts=p.angle_offset_counts,
        angle_rate_hz=engine.fa,
        stretch_direction_sign=p.goniometer_sign,
        events=events,
        truth=engine.truth(),
        channel_names=[c["name"] for c in engine.channel_table() if c["kind"] == "emg"],
    )


def _as_profile(profile: str | Profile) -> Profile:
    return get_profile(profile) if isinstance(profile, str) else profile


def simulate_stretch_session(
    profile: str | Profile,
    *,
    seed: int,
    emg_rate_hz: float = 2000.0,
    angle_rate_hz: float = 500.0,
    stretches: Sequence[StretchSpec] | None = None,
    n_emg: int = 2,
    emg_bits: int = 16,
    duration_s: float | None = None,
) -> Recording:
    """Simulate a session of passive stretches.

    Parameters
    ----------
    profile : str or Profile
        Profile name (see :func:`get_profile`) or a Profile.
    seed : int
        Seed of every random draw; the same seed gives the same recording.
    emg_rate_hz, angle_rate_hz : float
        Sampling rates (Hz).
    stretches : sequence of StretchSpec, optional
        The program; default :func:`tsrt_protocol` (2 slow + 20 stretches at 5 velocities).
    n_emg : int
        EMG channels; channel 0 is the tested muscle, the others neighbours (cross-talk).
    emg_bits : int
        ADC resolution; full scale is the profile's ``emg_full_scale_uv``.
    duration_s : float, optional
        Session length (s); default: 2 s after the last stretch ends.

    Returns
    -------
    Recording
        ``truth["stretches"]`` holds one record per stretch (see docs/simulator.md).
    """
    p = _as_profile(profile)
    engine = Engine(
        p,
        seed,
        emg_rate_hz=emg_rate_hz,
        n_emg=n_emg,
        angle_rate_hz=angle_rate_hz,
        emg_bits=emg_bits,
    )
    program = tsrt_protocol(p) if stretches is None else list(stretches)
    for spec in program:
        engine.add_stretch(spec)
    if duration_s is None:
        duration_s = engine.stretches_end_s + 2.0
    if duration_s <= 0:
        raise ProgramError("duration_s must be > 0")
    counts, emg_uv, acounts = _render(engine, duration_s)
    return _recording(engine, counts, emg_uv, acounts, [])


def simulate_hreflex_session(
    profile: str | Profile,
    *,
    seed: int,
    emg_rate_hz: float = 5000.0,
    angle_rate_hz: float = 500.0,
    stimuli: Sequence[StimulusSpec] | None = None,
    n_emg: int = 1,
    emg_bits: int = 16,
    duration_s: float | None = None,
) -> Recording:
    """Simulate an H-reflex session (stimuli, M and H waves, artifacts, background EMG).

    Parameters
    ----------
    profile : str or Profile
    seed : int
    emg_rate_hz, angle_rate_hz : float
    stimuli : sequence of StimulusSpec, optional
        The program, in time order; default :func:`recruitment_ladder` over the profile's
        ``stim_range_ma`` in 1 mA steps, 10 s apart.
    n_emg : int
    emg_bits : int
    duration_s : float, optional
        Default: 2 s after the last stimulus.

    Returns
    -------
    Recording
        ``events`` lists the pulses; ``truth["stimuli"]`` the true M and H of each,
        ``truth["hreflex"]`` the session values (Mmax, Hmax, Hmax/Mmax, depression curve).
    """
    p = _as_profile(profile)
    engine = Engine(
        p,
        seed,
        emg_rate_hz=emg_rate_hz,
        n_emg=n_emg,
        angle_rate_hz=angle_rate_hz,
        emg_bits=emg_bits,
    )
    program = recruitment_ladder(p) if stimuli is None else list(stimuli)
    events = []
    for s in program:
        idx = math.floor(s.time_s * engine.fe + 0.5)
        engine.add_stimulus(idx, s.intensity_ma, s.width_us, s.pulse_index)
        events.append(
            {
                "kind": "stimulus",
                "emg_sample_index": idx,
                "time_s": idx / engine.fe,
                "intensity_ma": float(s.intensity_ma),
                "width_us": s.width_us,
                "pulse_index": s.pulse_index,
            }
        )
    if duration_s is None:
        duration_s = (events[-1]["time_s"] if events else 0.0) + 2.0
    if duration_s <= 0:
        raise ProgramError("duration_s must be > 0")
    counts, emg_uv, acounts = _render(engine, duration_s)
    return _recording(engine, counts, emg_uv, acounts, events)
