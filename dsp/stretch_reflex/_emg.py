"""EMG conditioning, reflex-burst and clonus measurement for the stretch-reflex analysis."""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

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
    below = (env[onset:stop] < level).astype(np.int32)
    if quiet <= 1:
        idx = np.flatnonzero(below)
        return onset + int(idx[0]) if len(idx) else stop
    c = np.concatenate(([0], np.cumsum(below)))
    full = np.flatnonzero(c[quiet:] - c[:-quiet] == quiet)  # windows entirely below
    return onset + int(full[0]) if len(full) else stop


def clonus_episodes(
    env: np.ndarray,
    rate_hz: float,
    start: int,
    stop: int,
    noise_sd: float,
    *,
    min_beats: int,
    min_hz: float = 4.0,
    max_hz: float = 12.0,
    noise_factor: float = 8.0,
    relative_prominence: float = 1.0,
    track_prominence: float = 0.25,
    max_cv: float = 0.2,
) -> list[ClonusEpisode]:
    """Runs of at least ``min_beats`` regularly spaced EMG bursts (clonus beats).

    Parameters
    ----------
    env : ndarray, (n,)
        EMG envelope in uV (about 20 Hz low-pass, so single beats stay separate).
    rate_hz : float
    start, stop : int
        Search window (samples of ``env``), from the reflex onset to the next stretch or gap.
    noise_sd : float
        SD of ``env`` at rest (pre-stretch baseline), uV.
    min_beats : int
    min_hz, max_hz : float
        Beat rates accepted: clonus is 4-10 Hz; no margin below (rhythmic 3-4 Hz envelope
        fluctuations during long holds were taken for clonus on the simulator), some above.
    noise_factor, relative_prominence : float
        A beat is an envelope peak whose prominence exceeds both ``noise_factor * noise_sd`` and
        ``relative_prominence`` times the running median (0.5 s) of the envelope around it, so
        that the random fluctuation of tonic reflex activity does not count as beats.
    track_prominence : float
        Once ``min_beats`` (at least 3) beats are chained, the rhythm is followed through
        weaker beats: a peak
        within 20 % of a period of the next expected beat (or of the one after, a missed beat)
        counts when its prominence exceeds ``noise_factor * noise_sd`` and
        ``track_prominence`` times the running median. A fatigable clonus fades out; without
        this its last third (bursts at 5-25 % of the first one's amplitude on the simulator)
        went uncounted.
    max_cv : float
        Largest coefficient of variation of the beat intervals of an episode.

    Notes
    -----
    Consecutive beats ``1 / max_hz`` to ``1 / min_hz`` apart are chained; one missed beat (an
    interval of about two periods) is bridged. ``n_beats`` counts the bridged beats too;
    ``start_s``/``end_s`` are the first and last beat peaks, and ``duration_s`` is
    ``end_s - start_s`` plus one period (the median beat interval): n beats last n periods, so
    first-to-last peak alone is one period short (0.17 s at 6 Hz, which matters at Tardieu's
    10 s boundary between grades 3 and 4).
    """
    if stop - start < 3:
        return []
    # work at about 200 Hz: the 20 Hz envelope is smooth, and the running median stays cheap
    q = max(1, int(rate_hz // 200))
    seg = np.nan_to_num(env[start:stop:q], nan=0.0)
    fs = rate_hz / q
    local = ndimage.median_filter(seg, size=max(3, int(0.5 * fs)), mode="nearest")
    found, props = signal.find_peaks(
        seg, distance=max(1, int(fs / max_hz)), prominence=noise_factor * noise_sd
    )
    prom = props["prominences"]
    peaks = found[prom >= relative_prominence * local[found]] * q
    # weaker peaks may continue an established rhythm (a fatigable clonus fading out)
    weak = found[prom >= track_prominence * local[found]] * q
    episodes: list[ClonusEpisode] = []

    def extend(chain: list[int]) -> list[int]:
        """Follow an established rhythm through weaker beats (one missed beat bridged)."""
        if len(chain) < max(3, min_beats):
            return chain
        period = float(np.median(np.diff(chain)))
        tol = 0.2 * period
        out = list(chain)
        while True:
            nxt = None
            for k in (1, 2):  # the next beat, or the one after a missed beat
                expected = out[-1] + k * period
                cand = weak[(weak > out[-1]) & (np.abs(weak - expected) <= tol)]
                if len(cand):
                    nxt = int(cand[np.argmin(np.abs(cand - expected))])
                    break
            if nxt is None:
                return out
            out.append(nxt)

    def close(chain: list[int]) -> None:
        if len(chain) < 2:
            return
        t = np.asarray(chain, dtype=float) / rate_hz
        iv = np.diff(t)
        mult = np.maximum(1.0, np.round(iv / np.median(iv)))
        iv = iv / mult
        n_beats = int(mult.sum()) + 1
        if n_beats >= min_beats and np.std(iv) / np.mean(iv) <= max_cv:
            t0 = (start + chain[0]) / rate_hz
            t1 = (start + chain[-1]) / rate_hz
            period = float(np.median(iv))
            # n beats span n periods: first to last peak is one period short
            episodes.append(ClonusEpisode(t0, t1, n_beats, 1.0 / period, t1 - t0 + period))

    lo, hi = rate_hz / max_hz, rate_hz / min_hz
    chains: list[list[int]] = []
    chain: list[int] = []
    for pk in peaks.tolist():
        if chain:
            gap = pk - chain[-1]
            ok = lo <= gap <= hi
            if not ok and len(chain) >= 3:
                period = float(np.median(np.diff(chain)))
                ok = 1.7 * period <= gap <= 2.3 * period
            if not ok:
                chains.append(chain)
                chain = []
        chain.append(pk)
    chains.append(chain)
    last = -1
    for chain in chains:
        if chain and chain[0] > last:
            chain = extend(chain)
            close(chain)
            last = chain[-1]
    return episodes
