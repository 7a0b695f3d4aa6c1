"""EMG onset and offset detection: threshold over baseline, TKEO, and change-point detectors.

Every detector takes one channel of EMG in microvolts (``(n_samples,)`` or ``(n_samples, 1)``),
its sampling rate and a baseline window, and returns an :class:`OnsetResult` holding the
onsets, offsets, the test signal's baseline statistics and *all parameters used*.

Each detector computes its baseline statistics on the very signal it compares with the
threshold (the envelope for :func:`detect_onsets_threshold`, the TKEO envelope for
:func:`detect_onsets_tkeo`, the squared band-passed signal for
:func:`detect_onsets_changepoint`); comparing raw-signal statistics with a transformed test
signal is a known pitfall.

Onsets and offsets are sample indices into the input. A burst is ``[onset, offset)``: the
offset is the first sample after the burst (``n_samples`` when the burst runs to the end).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from dsp import _validate as V
from dsp._jit import njit
from dsp.envelopes import tkeo
from dsp.errors import SignalError
from dsp.filters import apply_zero_phase, design_bandpass, design_lowpass

__all__ = [
    "OnsetResult",
    "detect_onsets",
    "detect_onsets_changepoint",
    "detect_onsets_threshold",
    "detect_onsets_tkeo",
]


@dataclass
class OnsetResult:
    """Bursts found by one detector on one channel.

    Attributes
    ----------
    method : str
        ``"threshold"``, ``"tkeo"`` or ``"changepoint"``.
    onsets : ndarray, int64, (n_bursts,)
        First sample of each burst (index into the input signal).
    offsets : ndarray, int64, (n_bursts,)
        First sample after each burst (``n_samples`` if the burst reaches the end).
    rate_hz : float
        Sampling rate of the input, Hz.
    baseline_mean, baseline_sd : float
        Mean and SD of the test signal over the baseline window (unit of the test signal).
    threshold : float
        Level the test signal had to exceed (same unit). For the change-point detector, the
        segment mean square (uV^2) above which a segment counts as active.
    test_signal : str
        What was thresholded, e.g. ``"linear envelope (uV)"``.
    params : dict
        Every parameter used, defaults included (JSON-serialisable).
    """

    method: str
    onsets: np.ndarray
    offsets: np.ndarray
    rate_hz: float
    baseline_mean: float
    baseline_sd: float
    threshold: float
    test_signal: str
    params: dict = field(default_factory=dict)

    @property
    def onsets_s(self) -> np.ndarray:
        """Onset times in seconds from the first sample, (n_bursts,)."""
        return self.onsets / self.rate_hz

    @property
    def offsets_s(self) -> np.ndarray:
        """Offset times in seconds from the first sample, (n_bursts,)."""
        return self.offsets / self.rate_hz

    @property
    def first_onset(self) -> int | None:
        """Index of the first onset, or None when no burst was found."""
        return int(self.onsets[0]) if self.onsets.size else None

    def to_dict(self) -> dict:
        """JSON-serialisable form (sample indices and seconds)."""
        d = asdict(self)
        d["onsets"] = [int(i) for i in self.onsets]
        d["offsets"] = [int(i) for i in self.offsets]
        d["onsets_s"] = [float(t) for t in self.onsets_s]
        d["offsets_s"] = [float(t) for t in self.offsets_s]
        for k in ("rate_hz", "baseline_mean", "baseline_sd", "threshold"):
            d[k] = float(d[k])
        return d


# ------------------------------------------------------------------------------- kernels


@njit
def _bursts(g, threshold, min_on, min_off, start):
    """Runs of ``g > threshold`` lasting >= ``min_on`` samples; a burst ends at the first run of
    >= ``min_off`` samples not above the threshold. Scanning begins at ``start``.

    Returns (onsets, offsets) as int64 arrays.
    """
    n = g.shape[0]
    onsets = np.empty(n // max(min_on, 1) + 1, np.int64)
    offsets = np.empty_like(onsets)
    nb = 0
    i = start
    while i < n:
        # find a run above threshold of at least min_on samples
        if g[i] > threshold:
            j = i
            while j < n and g[j] > threshold:
                j += 1
            if j - i >= min_on:
                onset = i
                # find the end: first run of >= min_off samples at or below threshold
                k = j
                end = n
                while k < n:
                    if g[k] <= threshold:
                        m = k
                        while m < n and g[m] <= threshold:
                            m += 1
                        if m - k >= min_off or m == n:
                            end = k
                            break
                        k = m
                    else:
                        k += 1
                onsets[nb] = onset
                offsets[nb] = end
                nb += 1
                i = end
                continue
            i = j
        else:
            i += 1
    return onsets[:nb].copy(), offsets[:nb].copy()


@njit
def _best_split(cs, lo, hi, min_seg):
    """Best single change in variance of a zero-mean Gaussian on ``[lo, hi)``.

    ``cs`` is the cumulative sum of squares (``cs[0] = 0``). Cost of a segment of m samples
    with sum S: ``m * log(S / m)`` (twice the negative log-likelihood, up to constants).
    Returns (gain, split index); gain <= 0 when no split is possible.
    """
    m = hi - lo
    total = cs[hi] - cs[lo]
    if m < 2 * min_seg or total <= 0.0:
        return 0.0, -1
    full = m * math.log(total / m)
    best_gain = 0.0
    best = -1
    for t in range(lo + min_seg, hi - min_seg + 1):
        s1 = cs[t] - cs[lo]
        s2 = cs[hi] - cs[t]
        if s1 <= 0.0 or s2 <= 0.0:
            continue
        m1 = t - lo
        m2 = hi - t
        gain = full - m1 * math.log(s1 / m1) - m2 * math.log(s2 / m2)
        if gain > best_gain:
            best_gain = gain
            best = t
    return best_gain, best


@njit
def _binary_segmentation(cs, n, min_seg, penalty, max_changes):
    """Change points (sorted int64) by binary segmentation with a fixed penalty per change."""
    cps = np.empty(max_changes, np.int64)
    ncp = 0
    seg_lo = np.empty(max_changes + 1, np.int64)
    seg_hi = np.empty(max_changes + 1, np.int64)
    seg_gain = np.empty(max_changes + 1)
    seg_t = np.empty(max_changes + 1, np.int64)
    nseg = 1
    seg_lo[0] = 0
    seg_hi[0] = n
    g, t = _best_split(cs, 0, n, min_seg)
    seg_gain[0] = g
    seg_t[0] = t
    while ncp < max_changes:
        k = -1
        best = penalty
        for s in range(nseg):
            if seg_t[s] >= 0 and seg_gain[s] > best:
                best = seg_gain[s]
                k = s
        if k < 0:
            break
        t = seg_t[k]
        cps[ncp] = t
        ncp += 1
        hi = seg_hi[k]
        seg_hi[k] = t
        g, tt = _best_split(cs, seg_lo[k], t, min_seg)
        seg_gain[k] = g
        seg_t[k] = tt
        seg_lo[nseg] = t
        seg_hi[nseg] = hi
        g, tt = _best_split(cs, t, hi, min_seg)
        seg_gain[nseg] = g
        seg_t[nseg] = tt
        nseg += 1
    return np.sort(cps[:ncp])


# ------------------------------------------------------------------------------- helpers


def _baseline_slice(baseline_s, rate_hz: float, n: int) -> tuple[int, int, list]:
    try:
        t0, t1 = (float(v) for v in baseline_s)
    except (TypeError, ValueError):
        raise SignalError(
            f"baseline_s must be a (start_s, end_s) pair in seconds, got {baseline_s!r}"
        ) from None
    i0 = round(t0 * rate_hz)
    i1 = round(t1 * rate_hz)
    if not (0 <= i0 < i1 <= n) or i1 - i0 < 3:
        raise SignalError(
            f"baseline_s=({t0:g}, {t1:g}) s must be an interval of at least 3 samples inside the "
            f"signal (0 to {n / rate_hz:g} s); choose a quiet stretch before the movement"
        )
    return i0, i1, [t0, t1]


#: Butterworth orders of the pre-filter band-pass and of the envelope low-pass (in ``params``).
BANDPASS_ORDER = 4
LOWPASS_ORDER = 2
#: Highest upper corner of the pre-filter, as a fraction of the sampling rate.
TOP_FRACTION = 0.45


def _band(bandpass_hz, rate_hz: float) -> tuple[float, float] | None:
    """The pre-filter band actually used: ``bandpass_hz`` with its upper corner lowered to
    ``TOP_FRACTION * rate_hz`` when above it (a valid band at low sampling rates)."""
    if bandpass_hz is None:
        return None
    try:
        lo, hi = (float(v) for v in bandpass_hz)
    except (TypeError, ValueError):
        raise SignalError(
            f"bandpass_hz must be a (low_hz, high_hz) pair in Hz or None, got {bandpass_hz!r}"
        ) from None
    lo = V.positive(lo, "bandpass_hz low corner", "Hz")
    hi = V.positive(hi, "bandpass_hz high corner", "Hz")
    if lo >= hi:
        raise SignalError(f"bandpass_hz=({lo:g}, {hi:g}): the low corner must be below the high")
    top = TOP_FRACTION * rate_hz
    if lo >= top:
        raise SignalError(
            f"bandpass_hz low corner {lo:g} Hz must be below {TOP_FRACTION:g} x rate_hz = "
            f"{top:g} Hz"
        )
    return lo, min(hi, top)


def _filter_params(bandpass_hz, band, lowpass_hz=None, with_lowpass: bool = True) -> dict:
    """The filter entries of ``params``: the band used, the requested one if it differs, orders."""
    d = {
        "bandpass_hz": None if band is None else [band[0], band[1]],
        "bandpass_order": None if band is None else BANDPASS_ORDER,
    }
    if band is not None and float(bandpass_hz[1]) != band[1]:
        d["bandpass_hz_requested"] = [float(v) for v in bandpass_hz]
    if with_lowpass:
        d["lowpass_hz"] = None if lowpass_hz is None else float(lowpass_hz)
        d["lowpass_order"] = None if lowpass_hz is None else LOWPASS_ORDER
    return d


def _prefilter(x: np.ndarray, rate_hz: float, band) -> np.ndarray:
    if band is None:
        return x.copy()
    return apply_zero_phase(x, design_bandpass(band[0], band[1], rate_hz, BANDPASS_ORDER))


def _lowpass(g: np.ndarray, rate_hz: float, lowpass_hz) -> np.ndarray:
    if lowpass_hz is None:
        return g
    return apply_zero_phase(g, design_lowpass(lowpass_hz, rate_hz, LOWPASS_ORDER), out=g)


def _lowpass_corner(lowpass_hz, rate_hz: float) -> float | None:
    return None if lowpass_hz is None else V.cutoff(lowpass_hz, rate_hz, "lowpass_hz")


def _durations(rate_hz, min_duration_s, min_off_s) -> tuple[int, int]:
    min_on = max(1, round(V.positive(min_duration_s, "min_duration_s", "s") * rate_hz))
    off = min_duration_s if min_off_s is None else min_off_s
    min_off = max(1, round(V.positive(off, "min_off_s", "s") * rate_hz))
    return min_on, min_off


def _threshold_result(method, g, rate_hz, i0, i1, k_sd, min_on, min_off, test_signal, params):
    base = g[i0:i1]
    mean = float(base.mean())
    sd = float(base.std(ddof=1))
    thr = mean + float(k_sd) * sd
    onsets, offsets = _bursts(g, thr, min_on, min_off, i1)
    return OnsetResult(method, onsets, offsets, rate_hz, mean, sd, thr, test_signal, params)


# ----------------------------------------------------------------------------- detectors


def detect_onsets_threshold(
    emg_uv,
    rate_hz,
    *,
    baseline_s=(0.0, 0.1),
    k_sd: float = 3.0,
    min_duration_s: float = 0.03,
    min_off_s: float | None = None,
    lowpass_hz: float | None = 50.0,
    bandpass_hz: tuple[float, float] | None = (20.0, 450.0),
) -> OnsetResult:
    """Threshold over baseline (Hodges & Bui 1996 family).

    The EMG is band-passed (4th-order Butterworth, zero-phase), rectified and low-passed
    (2nd-order zero-phase Butterworth at ``lowpass_hz``) into a linear envelope. Its mean and SD
    over the baseline window give the threshold ``mean + k_sd * SD``; a burst starts where the
    envelope stays above it for ``min_duration_s`` and ends where it stays at or below it for
    ``min_off_s``. Only samples after the baseline window are searched.

    Parameters
    ----------
    emg_uv : array_like, (n_samples,) or (n_samples, 1)
        One EMG channel in microvolts, no NaN.
    rate_hz : float
        Sampling rate in Hz.
    baseline_s : (float, float)
        Baseline window (start, end) in seconds from the first sample (Hodges: 100 ms at rest).
    k_sd : float
        Threshold in baseline SDs (Hodges & Bui grid: 1, 2, 3).
    min_duration_s : float
        Minimum time above threshold (grid: 0.02, 0.05, 0.1 s; common rule 0.03 s).
    min_off_s : float or None
        Minimum time below threshold that ends a burst (default: ``min_duration_s``).
    lowpass_hz : float or None
        Envelope low-pass corner (grid: 10, 50, 500 Hz); None for the plain rectified signal.
    bandpass_hz : (float, float) or None
        Pre-filter band in Hz; None if the input is already conditioned. An upper corner above
        ``0.45 * rate_hz`` is lowered to that (e.g. 225 Hz at 500 Hz).

    Returns
    -------
    OnsetResult
        ``test_signal`` is the envelope (uV). ``params`` holds the filters *as applied*:
        ``bandpass_hz`` is the band used (``bandpass_hz_requested`` is added when the upper
        corner was lowered), ``bandpass_order`` (4) and ``lowpass_order`` (2) the Butterworth
        orders (None when that filter is off).
    """
    rate_hz = V.rate(rate_hz)
    x = V.one_channel(emg_uv, "emg_uv", min_samples=4)
    i0, i1, base = _baseline_slice(baseline_s, rate_hz, x.size)
    min_on, min_off = _durations(rate_hz, min_duration_s, min_off_s)
    k = V.positive(k_sd, "k_sd")
    band = _band(bandpass_hz, rate_hz)
    lowpass_hz = _lowpass_corner(lowpass_hz, rate_hz)
    g = np.abs(_prefilter(x, rate_hz, band))
    g = _lowpass(g, rate_hz, lowpass_hz)
    params = {
        "baseline_s": base,
        "k_sd": k,
        "min_duration_s": float(min_duration_s),
        "min_off_s": float(min_off_s if min_off_s is not None else min_duration_s),
        **_filter_params(bandpass_hz, band, lowpass_hz),
    }
    name = "linear envelope (uV)" if lowpass_hz is not None else "rectified EMG (uV)"
    return _threshold_result("threshold", g, rate_hz, i0, i1, k, min_on, min_off, name, params)


def detect_onsets_tkeo(
    emg_uv,
    rate_hz,
    *,
    baseline_s=(0.0, 0.1),
    k_sd: float = 8.0,
    min_duration_s: float = 0.025,
    min_off_s: float | None = None,
    lowpass_hz: float | None = 50.0,
    bandpass_hz: tuple[float, float] | None = (30.0, 300.0),
) -> OnsetResult:
    """TKEO-conditioned threshold detector (Li, Zhou & Aruin 2007; Solnik et al. 2010).

    Band-pass (zero-phase, default 30-300 Hz as Solnik), Teager-Kaiser energy
    ``x[n]^2 - x[n-1] x[n+1]``, rectification, low-pass at ``lowpass_hz``; the baseline mean and
    SD are taken *of that TKEO envelope* and the threshold is ``mean + k_sd * SD``.

    Parameters are as :func:`detect_onsets_threshold` (same filter orders; an upper band corner
    above ``0.45 * rate_hz`` is lowered to it); ``k_sd`` defaults higher because the TKEO
    envelope's baseline is tight and its bursts tall (squared amplitude).

    Returns
    -------
    OnsetResult
        ``test_signal`` is the TKEO envelope (uV^2); ``params`` records the filters as applied
        (band used, ``bandpass_hz_requested`` when lowered, ``bandpass_order``,
        ``lowpass_order``), as :func:`detect_onsets_threshold`.
    """
    rate_hz = V.rate(rate_hz)
    x = V.one_channel(emg_uv, "emg_uv", min_samples=4)
    i0, i1, base = _baseline_slice(baseline_s, rate_hz, x.size)
    min_on, min_off = _durations(rate_hz, min_duration_s, min_off_s)
    k = V.positive(k_sd, "k_sd")
    band = _band(bandpass_hz, rate_hz)
    lowpass_hz = _lowpass_corner(lowpass_hz, rate_hz)
    g = np.abs(tkeo(_prefilter(x, rate_hz, band)))
    g = _lowpass(g, rate_hz, lowpass_hz)
    params = {
        "baseline_s": base,
        "k_sd": k,
        "min_duration_s": float(min_duration_s),
        "min_off_s": float(min_off_s if min_off_s is not None else min_duration_s),
        **_filter_params(bandpass_hz, band, lowpass_hz),
    }
    return _threshold_result(
        "tkeo", g, rate_hz, i0, i1, k, min_on, min_off, "TKEO envelope (uV^2)", params
    )


def detect_onsets_changepoint(
    emg_uv,
    rate_hz,
    *,
    baseline_s=(0.0, 0.1),
    ratio: float = 4.0,
    min_duration_s: float = 0.03,
    penalty: float = 40.0,
    max_changes: int = 50,
    bandpass_hz: tuple[float, float] | None = (20.0, 450.0),
    decimate: int | None = None,
) -> OnsetResult:
    """Statistical change-point detector (changes in variance, binary segmentation).

    The band-passed EMG is modelled as zero-mean Gaussian with piecewise-constant variance.
    Change points are found by binary segmentation of the likelihood (Gaussian variance
    change, cost ``m log(S/m)``) with ``penalty`` per change, on the squared signal averaged in
    bins of ``decimate`` samples (default: 1 ms) to keep it fast and to tame the correlation of
    band-limited samples. A segment is *active* when its mean square exceeds ``ratio`` times the
    mean square of the same squared signal over the baseline window; consecutive active
    segments form a burst, kept when it lasts ``min_duration_s``.

    Parameters
    ----------
    emg_uv : array_like, (n_samples,) or (n_samples, 1)
        One EMG channel in microvolts, no NaN.
    rate_hz : float
        Sampling rate in Hz.
    baseline_s : (float, float)
        Baseline window in seconds.
    ratio : float
        Mean-square ratio over baseline that makes a segment active (4 = RMS doubled).
    min_duration_s : float
        Shortest burst kept, seconds; also the shortest segment considered.
    penalty : float
        Minimum gain in twice the log-likelihood (in bins) to accept a change.
    max_changes : int
        Upper bound on the number of change points.
    bandpass_hz : (float, float) or None
        Pre-filter band (4th-order Butterworth, zero-phase); None if already conditioned. An
        upper corner above ``0.45 * rate_hz`` is lowered to it.
    decimate : int or None
        Samples per bin, an integer from 1 to the baseline window's length in samples (default
        ``round(rate_hz / 1000)`` -- 1 ms -- limited to that range).

    Returns
    -------
    OnsetResult
        ``baseline_mean``/``baseline_sd`` are of the binned mean square (uV^2); ``threshold``
        is ``ratio * baseline_mean``; ``params["change_points"]`` lists all change points;
        ``params`` records the band used, ``bandpass_hz_requested`` when it was lowered, and
        ``bandpass_order``.
    """
    rate_hz = V.rate(rate_hz)
    x = V.one_channel(emg_uv, "emg_uv", min_samples=4)
    i0, i1, base = _baseline_slice(baseline_s, rate_hz, x.size)
    r = V.positive(ratio, "ratio")
    pen = V.positive(penalty, "penalty")
    if not isinstance(max_changes, int | np.integer) or max_changes < 1:
        raise SignalError(f"max_changes must be an integer >= 1, got {max_changes!r}")
    if decimate is None:
        q = max(1, min(round(rate_hz / 1000.0), i1 - i0))
    elif (
        isinstance(decimate, int | np.integer) and not isinstance(decimate, bool) and decimate >= 1
    ):
        q = int(decimate)
    else:
        raise SignalError(f"decimate must be an integer >= 1 (samples per bin), got {decimate!r}")
    if q > i1 - i0:
        raise SignalError(
            f"decimate={q} samples per bin is longer than the baseline window ({i1 - i0} "
            "samples); the baseline needs at least one whole bin"
        )
    band = _band(bandpass_hz, rate_hz)
    y = _prefilter(x, rate_hz, band)
    sq = y * y
    nb = sq.size // q
    bins = sq[: nb * q].reshape(nb, q).mean(axis=1)
    min_seg = max(1, round(V.positive(min_duration_s, "min_duration_s", "s") * rate_hz / q))
    b0, b1 = i0 // q, max(i0 // q + 1, i1 // q)
    base_bins = bins[b0:b1]
    mean = float(base_bins.mean())
    sd = float(base_bins.std(ddof=1)) if base_bins.size > 1 else 0.0
    thr = r * mean
    cs = np.concatenate([[0.0], np.cumsum(bins)])
    cps = _binary_segmentation(cs, nb, min_seg, pen, int(max_changes))
    edges = np.concatenate([[0], cps, [nb]])
    onsets, offsets = [], []
    in_burst = False
    for a, b in itertools.pairwise(edges):
        active = b > a and (cs[b] - cs[a]) / (b - a) > thr and a >= b1
        if active and not in_burst:
            onsets.append(a)
            in_burst = True
        elif not active and in_burst:
            offsets.append(a)
            in_burst = False
    if in_burst:
        offsets.append(nb)
    on = np.array(onsets, np.int64) * q
    off = np.minimum(np.array(offsets, np.int64) * q, x.size)
    keep = (off - on) >= round(min_duration_s * rate_hz)
    params = {
        "baseline_s": base,
        "ratio": r,
        "min_duration_s": float(min_duration_s),
        "penalty": pen,
        "max_changes": int(max_changes),
        **_filter_params(bandpass_hz, band, with_lowpass=False),
        "decimate": q,
        "change_points": [int(c) * q for c in cps],
    }
    return OnsetResult(
        "changepoint",
        on[keep],
        off[keep],
        rate_hz,
        mean,
        sd,
        thr,
        "binned mean square (uV^2)",
        params,
    )


DETECTORS = {
    "threshold": detect_onsets_threshold,
    "tkeo": detect_onsets_tkeo,
    "changepoint": detect_onsets_changepoint,
}


def detect_onsets(emg_uv, rate_hz, method: str = "threshold", **params) -> OnsetResult:
    """Run the detector named ``method`` (``"threshold"``, ``"tkeo"``, ``"changepoint"``)."""
    try:
        func = DETECTORS[method]
    except KeyError:
        raise SignalError(
            f"unknown onset detector {method!r}; choose one of {', '.join(DETECTORS)}"
        ) from None
    return func(emg_uv, rate_hz, **params)
