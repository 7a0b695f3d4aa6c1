"""Find a stimulus artifact's onset in recent EMG (pure): refines marker-timed pulses.

A marker sent by the software that fires a stimulator arrives milliseconds after the pulse (its
process, then LSL). The stimulus artifact is the sharpest event in the EMG: a jump of hundreds
to thousands of microvolts within one sample, where the EMG between pulses changes by a few
microvolts per sample. :func:`artifact_onset` returns the first sample of a search window whose
step from the previous sample, on any EMG channel, exceeds :data:`THRESHOLD` times that
channel's robust step noise (1.4826 x the median absolute step over the noise span just before
the window). On a clean recording this is the pulse's own sample (the virtual patient's pulses
are found at their exact sample, tests/acquire/test_lsl_hreflex.py); a window without such a
step returns None and the pulse keeps the marker's time.
"""

from __future__ import annotations

import numpy as np

#: Step size, in units of the robust step noise, that marks the artifact's onset.
THRESHOLD = 25.0


class RecentEmg:
    """The newest ``capacity`` EMG rows (microvolts) with their sample numbers."""

    def __init__(self, capacity: int, n_channels: int) -> None:
        self.capacity = int(capacity)
        self.index = np.empty(0, dtype=np.int64)
        self.values = np.empty((0, n_channels))

    def push(self, index: np.ndarray, values: np.ndarray) -> None:
        self.index = np.concatenate([self.index, index])[-self.capacity :]
        self.values = np.concatenate([self.values, values])[-self.capacity :]

    @property
    def newest(self) -> int | None:
        return int(self.index[-1]) if self.index.size else None


def artifact_onset(recent: RecentEmg, lo: int, hi: int, noise_n: int) -> int | None:
    """The sample number of the artifact's onset in ``[lo, hi]``, or None.

    Parameters
    ----------
    recent : RecentEmg
        Recent EMG (microvolts), holding ``[lo - noise_n - 1, hi]``.
    lo, hi : int
        Search window, sample numbers (inclusive).
    noise_n : int
        Samples just before the window used for the step noise.
    """
    idx, x = recent.index, recent.values
    if idx.size < 3:
        return None
    steps = np.abs(np.diff(x, axis=0))  # steps[k] is the step into row k + 1
    step_idx = idx[1:]
    contiguous = np.diff(idx) == 1
    quiet = contiguous & (step_idx < lo) & (step_idx >= lo - noise_n)
    if quiet.sum() < 8:
        return None
    noise = 1.4826 * np.median(steps[quiet], axis=0)
    noise = np.maximum(noise, 1e-3)
    window = contiguous & (step_idx >= lo) & (step_idx <= hi)
    above = window & np.any(steps > THRESHOLD * noise, axis=1)
    hits = np.flatnonzero(above)
    return int(step_idx[hits[0]]) if hits.size else None
