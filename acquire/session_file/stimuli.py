"""Stimulus pulses of a session, parsed once from its events: :class:`Stimulus`.

The file reader (:attr:`acquire.session_file.SessionReader.stimuli`) and the researcher's
session (:attr:`tonuslab.Session.stimuli`) hand out the same objects; :func:`stimulus_arrays`
turns them into the arrays :func:`dsp.hreflex.analyze_hreflex` takes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Stimulus:
    """One stimulus pulse.

    Attributes
    ----------
    emg_sample_index : int
        Sample (row of ``emg_uv``) at which the pulse was delivered.
    time_s : float
        Its time on the session clock, seconds.
    intensity_ma : float
        Intensity in mA (NaN when not recorded).
    width_us : float | None
        Pulse width in microseconds.
    pulse_index : int
        0 for a single pulse or the first of a pair or train, 1 for the second, and so on.
    """

    emg_sample_index: int
    time_s: float
    intensity_ma: float
    width_us: float | None = None
    pulse_index: int = 0


def _finite_or_none(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def parse_stimuli(events: Iterable[Mapping], *, t0_s: float, emg_rate_hz: float) -> list[Stimulus]:
    """The stimulus pulses among ``events``, in their order.

    An event is a stimulus when its ``kind`` (or ``type``) starts with ``stim``. Its sample is
    ``emg_sample_index`` (or ``sample_index``), else ``round((time_s - t0_s) * emg_rate_hz)``;
    an event with neither is skipped.

    Parameters
    ----------
    events : iterable of dict
        Session events (``SessionReader.events`` or imported ones).
    t0_s : float
        Session time of EMG row 0, seconds.
    emg_rate_hz : float
        EMG sampling rate, Hz.

    Returns
    -------
    list of Stimulus
    """
    out = []
    for e in events:
        kind = str(e.get("kind", e.get("type", ""))).lower()
        if not kind.startswith("stim"):
            continue
        index = e.get("emg_sample_index", e.get("sample_index"))
        if index is None and e.get("time_s") is not None:
            index = round((float(e["time_s"]) - t0_s) * emg_rate_hz)
        if index is None:
            continue
        intensity, time_s = e.get("intensity_ma"), e.get("time_s")
        out.append(
            Stimulus(
                emg_sample_index=int(index),
                time_s=t0_s + int(index) / emg_rate_hz if time_s is None else float(time_s),
                intensity_ma=float("nan") if intensity is None else float(intensity),
                width_us=_finite_or_none(e.get("width_us")),
                pulse_index=int(e.get("pulse_index", 0) or 0),
            )
        )
    return out


def stimulus_arrays(stimuli: Sequence[Stimulus]) -> dict[str, np.ndarray]:
    """Stimuli as arrays for :func:`dsp.hreflex.analyze_hreflex`.

    Returns
    -------
    dict
        ``stim_sample_index`` (int64), ``stim_intensity_ma`` (mA), ``stim_width_us`` (us, NaN
        when unknown), both float64, and ``pulse_index`` (int64), each of shape (n_stimuli,).
    """
    return {
        "stim_sample_index": np.array([s.emg_sample_index for s in stimuli], dtype=np.int64),
        "stim_intensity_ma": np.array([s.intensity_ma for s in stimuli], dtype=np.float64),
        "stim_width_us": np.array(
            [np.nan if s.width_us is None else s.width_us for s in stimuli], dtype=np.float64
        ),
        "pulse_index": np.array([s.pulse_index for s in stimuli], dtype=np.int64),
    }
