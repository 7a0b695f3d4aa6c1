"""EMG conditioning, reflex-burst and clonus measurement for the stretch-reflex analysis."""

from __future__ import annotations

import numpy as np

from dsp.envelopes import linear_envelope
from dsp.filters import apply_zero_phase, design_bandpass, design_lowpass, design_notch, padlen_for
from dsp.stretch_reflex._kinematics import finite_runs
from dsp.stretch_reflex._result import ClonusEpisode


def per_run(x: np.ndarray, func, min_len: int) -> np.ndarray:
    """Apply ``func`` to each run of finite samples of ``x`` (NaN elsewhere).

    Runs shorter than ``min_len`` samples stay NaN (too short to filter).
    """
    out = np.full(x.shape, np.nan)
    for a, b in finite_runs(x):
        if b - a >= min_len:
            out[a:b] = func(x[a:b])
    return out


def condition(
    x: np.ndarray, rate_hz: float, band_hz: tuple[float, float], line_hz: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Notched raw EMG and notched + band-passed EMG (zero-phase, per finite run).

    Returns
    -------
    notched, conditioned : ndarray, (n,)
        uV; NaN in gaps and in runs too short to filter.
    """
    bp = design_bandpass(band_hz[0], band_hz[1], rate_hz, 4)
    min_len = padlen_for(bp) + 1
    if line_hz is not None:
        harmonics = max(1, min(5, int((0.45 * rate_hz) // line_hz)))
        nt = design_notch(rate_hz, line_hz, harmonics)
        min_len = max(min_len, padlen_for(nt) + 1)
        notched = per_run(x, lambda s: apply_zero_phase(s, nt), min_len)
    else:
        notched = per_run(x, lambda s: s, min_len)
    return notched, per_run(notched, lambda s: apply_zero_phase(s, bp), min_len)


def lowpass_envelope(x: np.ndarray, rate_hz: float, cutoff_hz: float) -> np.ndarray:
    """Linear envelope (|x| then zero-phase 2nd-order low-pass), per finite run."""
    lp = design_lowpass(cutoff_hz, rate_hz, 2)
    return per_run(x, lambda s: linear_envelope(s, rate_hz, cutoff_hz, 2), padlen_for(lp) + 1)


def segments_above(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop (half-open) indices of the True runs of ``mask``."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def burst_offset(env: np.ndarray, onset: int, stop: int, level: float, quiet: int) -> int:
    """First index after ``onset`` where ``env`` stays below ``level`` for ``quiet`` samples."""
    below = env[onset:stop] < level
    run = 0
    for k in range(len(below)):
        run = run + 1 if below[k] else 0
        if run >= quiet:
            return onset + k - quiet + 1
    return stop


def clonus_episodes(
    env: np.ndarray,
    rate_hz: float,
    start: int,
    stop: int,
    level: float,
    *,
    min_beats: int,
    min_hz: float = 3.0,
    max_hz: float = 12.0,
    min_burst_s: float = 0.02,
    merge_s: float = 0.025,
    max_cv: float = 0.35,
) -> list[ClonusEpisode]:
    """Runs of at least ``min_beats`` regularly spaced bursts of ``env`` above ``level``.

    Bursts: runs above ``level`` longer than ``min_burst_s`` (dips shorter than ``merge_s``
    bridged). Consecutive burst onsets ``min_hz``-``max_hz`` apart are chained; a chain whose
    intervals have a coefficient of variation below ``max_cv`` is an episode.
    """
    if stop - start < 3:
        return []
    seg = env[start:stop]
    mask = np.nan_to_num(seg, nan=0.0) > level
    on, off = segments_above(mask)
    if len(on) == 0:
        return []
    merge = round(merge_s * rate_hz)
    bursts: list[list[int]] = []
    for a, b in zip(on.tolist(), off.tolist(), strict=True):
        if bursts and a - bursts[-1][1] < merge:
            bursts[-1][1] = b
        else:
            bursts.append([a, b])
    min_len = round(min_burst_s * rate_hz)
    bursts = [bb for bb in bursts if bb[1] - bb[0] >= min_len]
    episodes: list[ClonusEpisode] = []
    chain: list[list[int]] = []

    def close(chain):
        if len(chain) < 2:
            return
        onsets = np.array([c[0] for c in chain], dtype=float) / rate_hz
        iv = np.diff(onsets)
        mult = np.maximum(1.0, np.round(iv / np.median(iv)))  # bridged intervals count twice
        iv = iv / mult
        n_beats = int(mult.sum()) + 1
        if n_beats >= min_beats and np.std(iv) / np.mean(iv) <= max_cv:
            t0 = (start + chain[0][0]) / rate_hz
            t1 = (start + chain[-1][1]) / rate_hz
            episodes.append(ClonusEpisode(t0, t1, n_beats, float(1.0 / np.median(iv)), t1 - t0))

    lo, hi = rate_hz / max_hz, rate_hz / min_hz
    for bb in bursts:
        if chain:
            gap = bb[0] - chain[-1][0]
            ok = lo <= gap <= hi
            if not ok and len(chain) >= 3:
                # one beat missed (below the level): bridge an interval of about two periods
                period = np.median(np.diff([c[0] for c in chain]))
                ok = 1.7 * period <= gap <= 2.3 * period
            if not ok:
                close(chain)
                chain = []
        chain.append(bb)
    close(chain)
    return episodes
