"""Stages 1-2 of the stretch-reflex analysis: checked inputs, then conditioned signals.

:func:`check_inputs` validates the recordings (shapes, rates, channel, durations, Inf, a usable
EMG channel) into an :class:`Inputs` record; :func:`prepare_signals` filters the EMG and the
angle, finds the stretches (or follows the prompts) and returns a :class:`Signals` record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dsp.errors import SignalError
from dsp.quality import _stuck_fractions
from dsp.stretch_reflex._emg import condition, lowpass_envelope
from dsp.stretch_reflex._kinematics import find_stretches, smooth_kinematics
from dsp.stretch_reflex._onsets import OnsetSignals
from dsp.stretch_reflex._settings import StretchReflexSettings, _as_float_array


def _check_rate(rate, name: str) -> float:
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise SignalError(f"{name} must be a number in Hz, got {rate!r}") from None
    if not math.isfinite(rate) or rate <= 0:
        raise SignalError(f"{name} must be a positive number of hertz, got {rate}")
    return rate


def _rms(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.sqrt(np.mean(x * x))) if len(x) else math.nan


def _rest_level(x: np.ndarray, rate_hz: float) -> float:
    """10th percentile of the RMS of 100 ms windows: the quiet-muscle EMG level of the record."""
    w = max(1, int(0.1 * rate_hz))
    n = len(x) // w
    if n == 0:
        return _rms(x)
    blocks = x[: n * w].reshape(n, w)
    ok = np.all(np.isfinite(blocks), axis=1)
    if not np.any(ok):
        return math.nan
    return float(np.percentile(np.sqrt(np.mean(blocks[ok] ** 2, axis=1)), 10))


@dataclass(frozen=True)
class Inputs:
    """The checked recordings.

    Attributes
    ----------
    emg : ndarray, shape (n_emg, n_channels)
        EMG in uV, float64, NaN in gaps.
    angle : ndarray, shape (n_angle,)
        Angle in deg, NaN in gaps.
    emg_rate_hz, angle_rate_hz : float
    warnings : tuple of str
        A partly saturated channel.
    """

    emg: np.ndarray
    angle: np.ndarray
    emg_rate_hz: float
    angle_rate_hz: float
    warnings: tuple[str, ...]


def check_shapes(emg_uv, emg_rate_hz, angle_deg, angle_rate_hz, channel) -> Inputs:
    """Arrays, rates, shapes and channel (before the settings are checked)."""
    emg = _as_float_array(emg_uv, "emg_uv")
    angle = _as_float_array(angle_deg, "angle_deg")
    emg_rate = _check_rate(emg_rate_hz, "emg_rate_hz")
    ang_rate = _check_rate(angle_rate_hz, "angle_rate_hz")
    if emg.ndim == 1:
        emg = emg[:, None]
    if emg.ndim != 2:
        raise SignalError(
            f"emg_uv must be (n_samples,) or (n_samples, n_channels), got {emg.shape}"
        )
    if angle.ndim == 2 and angle.shape[1] == 1:
        angle = angle[:, 0]
    if angle.ndim != 1:
        raise SignalError(f"angle_deg must be (n_samples,) or (n_samples, 1), got {angle.shape}")
    if not isinstance(channel, (int, np.integer)) or not 0 <= channel < emg.shape[1]:
        raise SignalError(
            f"channel {channel!r} is not one of the {emg.shape[1]} EMG channels; pick 0.."
            f"{emg.shape[1] - 1}"
        )
    return Inputs(emg, angle, emg_rate, ang_rate, ())


def check_inputs(inputs: Inputs, settings: StretchReflexSettings) -> Inputs:
    """Durations, Inf samples and a usable channel; returns the record with its warnings.

    Raises
    ------
    dsp.SignalError
        See :func:`dsp.stretch_reflex.analyze_stretch_reflex`.
    """
    emg, angle = inputs.emg, inputs.angle
    emg_rate, ang_rate, channel = inputs.emg_rate_hz, inputs.angle_rate_hz, settings.channel
    if emg.shape[0] < emg_rate * 0.5 or angle.shape[0] < ang_rate * 0.5:
        raise SignalError("recording shorter than 0.5 s; record at least one full stretch")
    emg_duration_s, angle_duration_s = emg.shape[0] / emg_rate, angle.shape[0] / ang_rate
    if abs(emg_duration_s - angle_duration_s) > max(1.0, 0.005 * angle_duration_s):
        raise SignalError(
            f"the EMG covers {emg_duration_s:.2f} s at {emg_rate:g} Hz but the angle "
            f"{angle_duration_s:.2f} s at {ang_rate:g} Hz; both streams start together and must "
            "cover the same time: check the two sampling rates"
        )
    for name, values in (("emg_uv", emg[:, channel]), ("angle_deg", angle)):
        infinite = np.flatnonzero(np.isinf(values))
        if infinite.size:
            raise SignalError(
                f"{name} holds Inf at sample {int(infinite[0])} ({infinite.size} in all); "
                "mark samples never received with NaN"
            )
    quality_warning = _usable_channel(emg[:, channel], emg_rate, channel)
    return Inputs(emg, angle, emg_rate, ang_rate, (quality_warning,) if quality_warning else ())


def _usable_channel(x: np.ndarray, rate_hz: float, channel: int) -> str | None:
    """Refuse a channel that cannot show a reflex; return a warning for a partly damaged one.

    A saturated amplifier or an open electrode gives a flat (stuck) trace, and a flat trace
    has no reflex to detect: reporting "no reflex" there would pass a broken recording off as
    a healthy muscle. The tests are those of ``dsp.quality.channel_quality``.

    Raises
    ------
    dsp.SignalError
        When more than half of the channel is flat or stuck at a rail.
    """
    if not np.isfinite(x).any():
        raise SignalError(f"EMG channel {channel} holds no samples (all gaps)")
    # dsp.quality's definitions, without its powerline and SNR estimates (a quarter of the time)
    saturation, flat = _stuck_fractions(x, rate_hz)
    stuck = max(flat if np.isfinite(flat) else 0.0, saturation)
    if stuck > 0.5:
        raise SignalError(
            f"EMG channel {channel} is flat or stuck at one value in {stuck:.0%} of the recording "
            "(amplifier saturated or electrode off): no reflex can be judged; check the "
            "electrode and the gain, or analyse another channel"
        )
    if saturation > 0.001:
        return (
            f"EMG channel {channel} is saturated in {saturation:.1%} of samples: "
            "burst amplitudes of the affected stretches are underestimated"
        )
    return None


@dataclass(frozen=True)
class Signals:
    """The conditioned signals and the stretches to measure.

    Attributes
    ----------
    angle : ndarray, shape (n_angle,)
        The raw analysed angle (deg; NaN in gaps), for the gap test.
    raw, x : ndarray, shape (n_emg,)
        EMG after the notch only, and band-passed (uV).
    ang, vel, acc : ndarray, shape (n_angle,)
        Smoothed angle (deg), velocity (deg/s), acceleration (deg/s^2).
    vel_slow : ndarray, shape (n_angle,)
        Velocity low-passed at 5 Hz (hesitations).
    vel_noise : float
        Robust SD of the velocity at rest, deg/s.
    moves : list
        The stretches (``start``, ``end`` angle sample indices).
    prompts : ndarray or None
        The prompt time of each stretch, s.
    rest : float
        Quiet-muscle EMG RMS, uV.
    signals : OnsetSignals
        The onset detectors' signals; ``env`` is its envelope, ``env20`` the 20 Hz one (clonus).
    gaps_present : bool
    warnings : tuple of str
    """

    angle: np.ndarray
    raw: np.ndarray
    x: np.ndarray
    ang: np.ndarray
    vel: np.ndarray
    acc: np.ndarray
    vel_slow: np.ndarray
    vel_noise: float
    moves: list
    prompts: np.ndarray | None
    rest: float
    signals: OnsetSignals
    env: np.ndarray
    env20: np.ndarray
    t_ang: np.ndarray
    emg_rate_hz: float
    angle_rate_hz: float
    gaps_present: bool
    warnings: tuple[str, ...]

    def at(self, series: np.ndarray, t: float) -> float:
        """``series`` (on the angle's clock) interpolated at time ``t`` in s."""
        return float(np.interp(t, self.t_ang, series))


def prepare_signals(inputs: Inputs, settings: StretchReflexSettings) -> Signals:
    """Filter the EMG and the angle, find the stretches, match the prompts."""
    emg, angle = inputs.emg, inputs.angle
    emg_rate, ang_rate, channel = inputs.emg_rate_hz, inputs.angle_rate_hz, settings.channel
    warnings: list[str] = []
    raw, x = condition(
        np.ascontiguousarray(emg[:, channel]), emg_rate, settings.filter_band_hz, settings.line_hz
    )
    ang, vel, acc = smooth_kinematics(angle, ang_rate, settings.angle_cutoff_hz)
    # hesitations last 0.1-0.5 s: judge the velocity profile on a 5 Hz low-pass of it
    vel_slow = smooth_kinematics(angle, ang_rate, 5.0)[1]
    gaps_present = bool(np.any(~np.isfinite(angle)) or np.any(~np.isfinite(emg[:, channel])))
    if gaps_present:
        warnings.append("recording has gaps (NaN samples); stretches touching them are excluded")
    vel10 = smooth_kinematics(angle, ang_rate, 10.0)[1]
    moves = find_stretches(
        ang,
        vel,
        ang_rate,
        on_velocity_deg_s=settings.on_velocity_deg_s,
        rest_velocity_deg_s=settings.rest_velocity_deg_s,
        min_excursion_deg=settings.min_excursion_deg,
        merge_gap_s=0.25,
        max_backtrack_s=30.0,
        smooth_velocity=vel10,
    )
    # goniometer noise on the velocity (robust SD at rest): a release must stand out of it
    at_rest = np.abs(vel10) <= settings.rest_velocity_deg_s
    vel_noise = (
        1.4826 * float(np.median(np.abs(vel[at_rest] - np.median(vel[at_rest]))))
        if np.count_nonzero(at_rest) > 10
        else 0.0
    )
    prompts = None
    if settings.prompt_times_s is not None:
        prompts = np.sort(np.array(settings.prompt_times_s, dtype=np.float64))
        chosen, matched = [], []
        for k, p in enumerate(prompts):
            nxt = prompts[k + 1] if k + 1 < len(prompts) else math.inf
            cand = [m for m in moves if p - 0.25 <= m.start / ang_rate < nxt]
            if cand:
                chosen.append(cand[0])
                matched.append(p)
            else:
                warnings.append(f"no stretch found after the prompt at {p:.2f} s")
        moves, prompts = chosen, matched
    if not moves:
        warnings.append("no stretch found in the angle signal")

    rest = _rest_level(x, emg_rate)
    signals = OnsetSignals(raw, x, emg_rate, settings.envelope_hz, settings.detector_params)
    return Signals(
        angle=angle,
        raw=raw,
        x=x,
        ang=ang,
        vel=vel,
        acc=acc,
        vel_slow=vel_slow,
        vel_noise=vel_noise,
        moves=moves,
        prompts=prompts,
        rest=rest,
        signals=signals,
        env=signals.envelope,
        env20=lowpass_envelope(x, emg_rate, 20.0),  # clonus beats: one peak per beat
        t_ang=np.arange(len(ang)) / ang_rate,
        emg_rate_hz=emg_rate,
        angle_rate_hz=ang_rate,
        gaps_present=gaps_present,
        warnings=tuple(warnings),
    )
