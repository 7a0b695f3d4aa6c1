"""Signal quality per EMG channel: gaps, saturation, flat line / electrode off, powerline, SNR.

Works on recordings with gaps: samples never received are NaN (``docs/architecture.md``), and
every statistic here ignores them and reports them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.signal

from dsp import _validate as V
from dsp._jit import njit
from dsp.errors import SignalError
from dsp.filters import apply_zero_phase, design_bandpass, padlen_for

__all__ = ["ChannelQuality", "channel_quality", "find_gaps"]

#: Thresholds that turn figures into problems (see :func:`channel_quality`).
LIMITS = {
    "saturation_fraction": 0.001,
    "flat_fraction": 0.5,
    "powerline_ratio": 0.2,
    "electrode_off_powerline_ratio": 0.8,
    "snr_db": 10.0,
    "gap_fraction": 0.0,
}

#: SNR estimate (see :func:`channel_quality`): fraction of the quietest windows that make the
#: noise floor, power ratio over the floor that makes a window active (+6 dB), and the shortest
#: activity in windows.
SNR_FLOOR_FRACTION = 0.1
SNR_ACTIVE_RATIO = 4.0
SNR_MIN_ACTIVE_WINDOWS = 2


@dataclass
class ChannelQuality:
    """Quality figures of one channel.

    Attributes
    ----------
    channel : int
        Column index.
    saturation_fraction : float
        Fraction of received samples stuck at a rail (runs of >= 3 equal samples at the
        channel's extreme or at ``rails_uv``).
    flat_fraction : float
        Fraction of ``window_s`` windows whose SD is below ``flat_sd_uv``.
    electrode_off : bool
        Mostly flat, or the signal is mostly mains (an open input picks up hum).
    powerline_ratio : float
        Excess power within +-1 Hz of the mains harmonics (above the median of the bins 3-10 Hz
        away) / power in 10-500 Hz (Welch, 1 Hz bins); about 0 for clean EMG.
    snr_db : float
        Activity over noise floor, dB: 10 log10(mean power of the active windows / noise floor)
        (definition in :func:`channel_quality`). NaN when there is no activity (a resting
        channel), when the noise floor is zero (an all-zero trace) or when no stretch of
        samples is long enough.
    activity_fraction : float
        Fraction of the analysed windows that are active (0.0 for a channel at rest throughout;
        NaN when not computable).
    gap_fraction : float
        Fraction of samples that are NaN.
    n_gaps : int
        Number of NaN runs.
    problems : list of str
        Human-readable findings; empty when the channel looks usable.
    """

    channel: int
    saturation_fraction: float
    flat_fraction: float
    electrode_off: bool
    powerline_ratio: float
    snr_db: float
    activity_fraction: float
    gap_fraction: float
    n_gaps: int
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_dict(self) -> dict:
        """JSON-serialisable form (NaN becomes None)."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None
        d["ok"] = self.ok
        return d


@njit
def _nan_runs(x):
    """[start, stop) runs where any column of ``x`` (n, ch) is NaN, as (k, 2) int64."""
    n, nch = x.shape
    out = np.empty((n // 2 + 1, 2), np.int64)
    k = 0
    in_gap = False
    for i in range(n):
        bad = False
        for c in range(nch):
            v = x[i, c]
            if v != v:
                bad = True
                break
        if bad and not in_gap:
            out[k, 0] = i
            in_gap = True
        elif not bad and in_gap:
            out[k, 1] = i
            k += 1
            in_gap = False
    if in_gap:
        out[k, 1] = n
        k += 1
    return out[:k].copy()


def find_gaps(x) -> np.ndarray:
    """Runs of samples where any channel is NaN.

    Parameters
    ----------
    x : array_like, (n_samples,) or (n_samples, n_channels)

    Returns
    -------
    ndarray, int64, (n_gaps, 2)
        ``[start, stop)`` sample indices of each gap.
    """
    x2, _ = V.signal(x, allow_nan=True, min_samples=0)
    return _nan_runs(x2)


@njit
def _rail_samples(x, lo, hi, min_run):
    """Samples in runs of >= ``min_run`` consecutive values <= lo or >= hi (NaN breaks runs)."""
    n = x.shape[0]
    total = 0
    run = 0
    for i in range(n + 1):
        at = i < n and (x[i] <= lo or x[i] >= hi)
        if at:
            run += 1
        else:
            if run >= min_run:
                total += run
            run = 0
    return total


@njit
def _window_sd(x, win):
    """SD of each full window of ``win`` samples; NaN when the window holds a NaN."""
    nw = x.shape[0] // win
    out = np.empty(nw)
    for w in range(nw):
        s = 0.0
        ok = True
        for i in range(w * win, (w + 1) * win):
            v = x[i]
            if v != v:
                ok = False
                break
            s += v
        if not ok:
            out[w] = np.nan
            continue
        m = s / win
        ss = 0.0
        for i in range(w * win, (w + 1) * win):
            d = x[i] - m
            ss += d * d
        out[w] = math.sqrt(ss / (win - 1)) if win > 1 else 0.0
    return out


def _stuck_fractions(x, rate_hz, *, flat_sd_uv=0.5, window_s=1.0, rails_uv=None):
    """Saturated and flat fractions of one EMG channel (no validation: callers validate).

    Shared by :func:`channel_quality` and the stretch-reflex channel check.

    Parameters
    ----------
    x : ndarray, float64, shape (n,)
        EMG in uV, NaN in gaps, at least one finite sample.
    rate_hz : float
        Sampling rate, Hz.
    flat_sd_uv, window_s : float
        A ``window_s`` window whose SD is below ``flat_sd_uv`` is flat.
    rails_uv : (float, float), optional
        ADC limits, uV; without them, runs of >= 3 samples at the channel's own extremes count.

    Returns
    -------
    saturation, flat : float
        Fraction of the finite samples at the rails; fraction of the gap-free windows that are
        flat (NaN when there is none).
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    n_ok = int(np.isfinite(x).sum())
    if rails_uv is None:
        lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
        sat = _rail_samples(x, lo, hi, 3) / n_ok if hi > lo else 0.0
    else:
        sat = _rail_samples(x, float(rails_uv[0]), float(rails_uv[1]), 1) / n_ok
    sds = _window_sd(x, max(1, round(window_s * rate_hz)))
    sds = sds[np.isfinite(sds)]
    return float(sat), float((sds < flat_sd_uv).mean()) if sds.size else math.nan


def _finite_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _powerline_ratio(x, rate_hz, line_hz):
    runs = [r for r in _finite_runs(np.isfinite(x)) if r[1] - r[0] >= int(rate_hz)]
    if not runs:
        return math.nan
    a, b = max(runs, key=lambda r: r[1] - r[0])
    seg = x[a:b]
    f, p = scipy.signal.welch(seg, fs=rate_hz, nperseg=int(rate_hz), detrend="constant")
    band = (f >= 10.0) & (f <= min(500.0, rate_hz / 2))
    total = p[band].sum()
    if total <= 0:
        return math.nan
    excess = 0.0
    k = 1
    while k * line_hz <= min(500.0, rate_hz / 2):
        d = np.abs(f - k * line_hz)
        line = band & (d <= 1.0)
        neighbours = p[band & (d >= 3.0) & (d <= 10.0)]
        floor = float(np.median(neighbours)) if neighbours.size else 0.0
        excess += float(np.clip(p[line] - floor, 0.0, None).sum())
        k += 1
    return excess / float(total)


def _snr_window(lo_hz: float, hi_hz: float, rate_hz: float) -> int:
    """SNR window in samples: 50 ms, longer when the band is narrow so that
    ``2 x bandwidth x window >= 40`` (a noise window's power then varies by about +-20 %)."""
    return max(1, round(max(0.05, 20.0 / (hi_hz - lo_hz)) * rate_hz))


def _window_powers(x, rate_hz):
    """Mean square of the 20-450 Hz band in consecutive windows of each finite run of ``x``:
    a list of ``(n_windows,)`` arrays (uV^2), one per run long enough."""
    lo, hi = 20.0, min(450.0, 0.45 * rate_hz)
    if lo >= hi:
        return []
    sos = design_bandpass(lo, hi, rate_hz, 4)
    win = _snr_window(lo, hi, rate_hz)
    powers = []
    for a, b in _finite_runs(np.isfinite(x)):
        if b - a <= padlen_for(sos) or b - a < win:
            continue
        y = apply_zero_phase(x[a:b], sos)
        m = (b - a) // win
        powers.append((y[: m * win] ** 2).reshape(m, win).mean(axis=1))
    return powers


def _active_windows(p: np.ndarray, floor: float) -> np.ndarray:
    """Windows in runs of >= SNR_MIN_ACTIVE_WINDOWS consecutive windows above the threshold."""
    above = p > SNR_ACTIVE_RATIO * floor
    active = np.zeros_like(above)
    for a, b in _finite_runs(above):
        if b - a >= SNR_MIN_ACTIVE_WINDOWS:
            active[a:b] = True
    return active


def _snr_db(x, rate_hz) -> tuple[float, float]:
    """``(snr_db, activity_fraction)`` as defined in :func:`channel_quality`."""
    powers = _window_powers(x, rate_hz)
    if not powers:
        return math.nan, math.nan
    pw = np.sort(np.concatenate(powers))
    floor = float(pw[: max(1, math.ceil(SNR_FLOOR_FRACTION * pw.size))].mean())
    if not floor > 0.0:
        return math.nan, math.nan
    active = np.concatenate([p[_active_windows(p, floor)] for p in powers])
    if active.size == 0:
        return math.nan, 0.0
    return float(10.0 * math.log10(active.mean() / floor)), active.size / pw.size


def channel_quality(
    emg_uv,
    rate_hz,
    *,
    line_hz: float = 50.0,
    rails_uv: tuple[float, float] | None = None,
    flat_sd_uv: float = 0.5,
    window_s: float = 1.0,
) -> list[ChannelQuality]:
    """Quality report of each EMG channel of a recording.

    Parameters
    ----------
    emg_uv : array_like, (n_samples,) or (n_samples, n_channels)
        EMG in microvolts; NaN marks samples never received (gaps).
    rate_hz : float
        Sampling rate in Hz.
    line_hz : float
        Mains frequency (50 or 60 Hz).
    rails_uv : (float, float) or None
        ADC limits in microvolts (``(min_count - offset) * scale`` and the same for the max);
        None: each channel's own extremes, counted only in runs of >= 3 equal samples.
    flat_sd_uv : float
        A window whose SD is below this is flat (amplifier off, electrode shorted).
    window_s : float
        Window for the flat-line test, seconds.

    Returns
    -------
    list of ChannelQuality
        One per channel, in column order. Problems are flagged at: saturation > 0.1 % of
        samples, flat > 50 % of windows, powerline > 20 % of the 10-500 Hz power (electrode
        off when > 80 % or mostly flat), SNR < 10 dB while the muscle is active, any gap.

    Notes
    -----
    SNR. The EMG band (20-450 Hz, at most 0.45 x ``rate_hz``; 4th-order zero-phase
    Butterworth) is cut into windows of 50 ms (longer below about 1 kHz, so that a window of
    noise has 2 x bandwidth x duration >= 40 degrees of freedom) within each run of received
    samples; each window's mean square is its power (uV^2).

    - Noise floor: the mean power of the quietest 10 % of windows.
    - Activity: runs of at least 2 consecutive windows (100 ms) whose power exceeds 4x the
      floor (+6 dB). Windows of amplifier noise alone rarely exceed 3.5x and practically never
      twice in a row.
    - ``snr_db = 10 log10(mean power of the active windows / noise floor)``, i.e.
      ``20 log10(RMS during activity / RMS at rest)``; at least 6 dB by construction. The
      quietest tenth of Gaussian noise lies 1-2 dB under its mean power, so the SNR reads that
      much high.

    Mains hum is not removed: it is part of the floor, so hum lowers the SNR of activity and a
    channel of hum and noise alone shows no activity (the hum itself is ``powerline_ratio``).
    A channel at rest throughout has ``activity_fraction`` 0 and ``snr_db`` NaN and is not
    flagged: there is nothing to judge. Low SNR is flagged only when activity is present but
    its RMS is under 3.2x (10 dB) the resting RMS. An all-zero trace has a zero floor:
    ``snr_db`` and ``activity_fraction`` are NaN (it is flagged flat).
    """
    rate_hz = V.rate(rate_hz)
    V.cutoff(line_hz, rate_hz, "line_hz")
    flat = V.positive(flat_sd_uv, "flat_sd_uv", "uV")
    win = V.window_samples(window_s, rate_hz)
    x2, _ = V.signal(emg_uv, "emg_uv", allow_nan=True, min_samples=1)
    if np.isinf(x2).any():
        raise SignalError("emg_uv contains Inf; use NaN for samples never received")
    if rails_uv is not None:
        try:
            rail_lo, rail_hi = (float(v) for v in rails_uv)
        except (TypeError, ValueError):
            raise SignalError(f"rails_uv must be a (low, high) pair, got {rails_uv!r}") from None
        if not (math.isfinite(rail_lo) and math.isfinite(rail_hi)) or rail_lo >= rail_hi:
            raise SignalError(
                f"rails_uv must be finite (low, high) ADC limits in uV with low < high, got "
                f"{rails_uv!r}"
            )
    out = []
    n = x2.shape[0]
    for c in range(x2.shape[1]):
        x = np.ascontiguousarray(x2[:, c])
        finite = np.isfinite(x)
        n_ok = int(finite.sum())
        gaps = _nan_runs(x[:, None])
        gap_fraction = 1.0 - n_ok / n
        if n_ok == 0:
            out.append(
                ChannelQuality(
                    c,
                    math.nan,
                    math.nan,
                    True,
                    math.nan,
                    math.nan,
                    math.nan,
                    1.0,
                    len(gaps),
                    ["no samples received"],
                )
            )
            continue
        sat, flat_fraction = _stuck_fractions(
            x, rate_hz, flat_sd_uv=flat, window_s=win / rate_hz,
            rails_uv=None if rails_uv is None else (rail_lo, rail_hi),
        )  # fmt: skip
        pl = _powerline_ratio(x, rate_hz, float(line_hz))
        snr, activity = _snr_db(x, rate_hz)
        off = bool(
            (flat_fraction >= LIMITS["flat_fraction"])
            or (pl == pl and pl >= LIMITS["electrode_off_powerline_ratio"])
        )
        problems = []
        if sat > LIMITS["saturation_fraction"]:
            problems.append(f"saturated: {100 * sat:.2g}% of samples at the rails")
        if flat_fraction >= LIMITS["flat_fraction"]:
            problems.append(f"flat line in {100 * flat_fraction:.0f}% of {window_s:g} s windows")
        if pl == pl and pl > LIMITS["powerline_ratio"]:
            problems.append(f"powerline: {100 * pl:.0f}% of the 10-500 Hz power at {line_hz:g} Hz")
        if off:
            problems.append("electrode off or disconnected")
        if snr == snr and snr < LIMITS["snr_db"]:
            problems.append(f"low SNR ({snr:.1f} dB between activity and rest)")
        if gap_fraction > LIMITS["gap_fraction"]:
            problems.append(f"{len(gaps)} gap(s), {100 * gap_fraction:.2g}% of samples missing")
        out.append(
            ChannelQuality(
                c,
                float(sat),
                flat_fraction,
                off,
                pl,
                snr,
                activity,
                gap_fraction,
                len(gaps),
                problems,
            )
        )
    return out
