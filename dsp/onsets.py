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

Baseline
    By default (``baseline_s="quietest"``) the baseline is the quietest ``quiet_window_s``
    (1 s) of the test signal: the window, slid in steps of a tenth of its length, with the
    lowest mean. The minimum over many windows underestimates the rest level a little; the
    longer the window, the less (on the real recordings of ``docs/validation.md`` 0.25 s and
    0.5 s windows gave false alarms that 1 s did not). A real recording need not start at rest
    (the subject may already be contracting, or an amplifier may settle during the first
    100 ms), so the first 100 ms (Hodges & Bui 1996's pre-movement baseline) is only right when
    the protocol guarantees it; give ``baseline_s=(start_s, end_s)`` then. With the quietest
    window the whole signal is searched; with a given window only the samples after it.

Minimum on and off times (defaults, and where they come from)
    ``min_duration_s`` (time above threshold before an onset is accepted): Hodges & Bui (1996,
    Electroencephalogr. Clin. Neurophysiol. 101:511-519) compared 27 rules against the visual
    onsets of an experienced examiner: low-pass 10, 50 or 500 Hz, threshold 1, 2 or 3 SD over
    the baseline mean, and 20, 50 or 100 ms for which the signal must stay above it. The
    threshold detector's defaults (50 Hz envelope, 3 SD, 50 ms) are one cell of that grid.
    ``min_off_s`` (time below threshold that ends a burst): Hodges & Bui give no offset rule.
    Voluntary contractions hold an interference pattern whose 50 Hz envelope dips below a 3 SD
    threshold for tens of milliseconds while the muscle is still active, so an off-time as short
    as the on-time splits one contraction into several bursts. The default 0.25 s keeps a
    contraction whole and still separates contractions that are 0.25 s apart; it was checked on
    the real recordings of ``docs/validation.md`` (``tonuslab validate real-emg``).
    The change-point detector follows Staude et al. (2001, EURASIP J. Appl. Signal Process.
    2001(2):67-81): onset as a change in the variance of a zero-mean Gaussian signal, found by
    maximum likelihood, which Staude et al. found more robust than threshold rules to the
    signal-to-noise ratio and the background level. Its ``min_duration_s`` is the shortest
    segment, and bursts closer than ``min_off_s`` are joined as for the threshold rules.

Caps
    The change-point search stops at ``max_changes`` only when one is given (default: no cap).
    When a cap is reached an :class:`OnsetCapWarning` is issued and ``params["cap_reached"]``
    is True: the segments the search did not split are merged, so the bursts are not to be
    trusted without raising the cap.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from dsp import _validate as V
from dsp._jit import njit
from dsp.envelopes import tkeo
from dsp.errors import SignalError
from dsp.filters import apply_zero_phase, design_bandpass, design_lowpass

__all__ = [
    "OnsetCapWarning",
    "OnsetResult",
    "detect_onsets",
    "detect_onsets_changepoint",
    "detect_onsets_threshold",
    "detect_onsets_tkeo",
]


class OnsetCapWarning(UserWarning):
    """A detector stopped at a cap (``max_changes``): its bursts may be merged."""


#: Length of the quietest-window baseline (s) used when ``baseline_s="quietest"``.
QUIET_WINDOW_S = 1.0


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
            f"baseline_s must be 'quietest' or a (start_s, end_s) pair in seconds, got "
            f"{baseline_s!r}"
        ) from None
    i0 = round(t0 * rate_hz)
    i1 = round(t1 * rate_hz)
    if not (0 <= i0 < i1 <= n) or i1 - i0 < 3:
        raise SignalError(
            f"baseline_s=({t0:g}, {t1:g}) s must be an interval of at least 3 samples inside the "
            f"signal (0 to {n / rate_hz:g} s); choose a quiet stretch before the movement"
        )
    return i0, i1, [t0, t1]


def _quiet_width(quiet_window_s, rate_hz: float, n: int, per: int = 1) -> int:
    """Samples of the quietest-window baseline (``per`` input samples per test-signal sample)."""
    w = round(V.positive(quiet_window_s, "quiet_window_s", "s") * rate_hz / per)
    if w < 3 or w > n:
        raise SignalError(
            f"quiet_window_s={quiet_window_s:g} s must span at least 3 samples and fit in the "
            f"signal ({n * per / rate_hz:g} s); give a shorter window or baseline_s=(start, end)"
        )
    return w


def _quietest_window(g: np.ndarray, width: int) -> tuple[int, int]:
    """``(i0, i1)`` of the window of ``width`` samples of ``g`` with the lowest mean.

    Windows start every ``max(1, width // 10)`` samples (and at ``len(g) - width``).

    Parameters
    ----------
    g : ndarray, (n,)
        Test signal (envelope, TKEO envelope or binned mean square), finite.
    width : int
        Window length in samples, ``3 <= width <= n``.
    """
    step = max(1, width // 10)
    starts = np.unique(np.append(np.arange(0, g.size - width + 1, step), g.size - width))
    cs = np.concatenate([[0.0], np.cumsum(g, dtype=np.float64)])
    means = cs[starts + width] - cs[starts]
    i0 = int(starts[int(np.argmin(means))])
    return i0, i0 + width


def _baseline(baseline_s, g: np.ndarray, rate_hz: float, quiet_window_s, per: int = 1):
    """Baseline ``(i0, i1)`` in test-signal samples, its record for ``params``, search start.

    ``per`` is the number of input samples per test-signal sample (change-point bins).
    """
    if isinstance(baseline_s, str):
        if baseline_s != "quietest":
            raise SignalError(
                f"baseline_s must be 'quietest' or a (start_s, end_s) pair in seconds, got "
                f"{baseline_s!r}"
            )
        i0, i1 = _quietest_window(g, _quiet_width(quiet_window_s, rate_hz, g.size, per))
        return i0, i1, [i0 * per / rate_hz, i1 * per / rate_hz], 0
    i0, i1, rec = _baseline_slice(baseline_s, rate_hz, g.size * per)
    return i0, i1, rec, i1


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


def _threshold_result(
    method, g, rate_hz, baseline_s, quiet_window_s, k_sd, min_on, min_off, test_signal, params
):
    i0, i1, rec, start = _baseline(baseline_s, g, rate_hz, quiet_window_s)
    base = g[i0:i1]
    mean = float(base.mean())
    sd = float(base.std(ddof=1))
    thr = mean + float(k_sd) * sd
    if params["min_off_s"] is None:
        onsets, offsets = _bursts(g, thr, min_on, min_on, start)
    else:
        onsets, offsets = _joined_runs(g[start:] > thr, min_on, min_off)
        onsets, offsets = onsets + start, offsets + start
    params = {"baseline_s": rec, "baseline_rule": _rule(baseline_s, quiet_window_s), **params}
    return OnsetResult(method, onsets, offsets, rate_hz, mean, sd, thr, test_signal, params)


def _check_baseline(baseline_s, quiet_window_s, rate_hz: float, n: int) -> None:
    """Refuse a bad baseline before any filtering (the quietest window is chosen later)."""
    if isinstance(baseline_s, str):
        if baseline_s != "quietest":
            raise SignalError(
                f"baseline_s must be 'quietest' or a (start_s, end_s) pair in seconds, got "
                f"{baseline_s!r}"
            )
        _quiet_width(quiet_window_s, rate_hz, n)
    else:
        _baseline_slice(baseline_s, rate_hz, n)


def _joined_runs(above: np.ndarray, min_on: int, min_off: int) -> tuple[np.ndarray, np.ndarray]:
    """Bursts from a boolean test ``above`` (n,): runs of True lasting ``min_on`` samples or
    more, joined when fewer than ``min_off`` samples separate them.

    Shorter runs of True neither start nor extend a burst. Returns ``(onsets, offsets)``,
    int64, with ``offsets`` the first sample after each burst.
    """
    edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
    on, off = edges[::2].astype(np.int64), edges[1::2].astype(np.int64)
    keep = (off - on) >= min_on
    on, off = on[keep], off[keep]
    if on.size > 1:
        on, off = _join_close(on, off, min_off)
    return on, off


def _rule(baseline_s, quiet_window_s) -> str:
    if isinstance(baseline_s, str):
        return f"quietest {float(quiet_window_s):g} s"
    return "given"


# ----------------------------------------------------------------------------- detectors


def detect_onsets_threshold(
    emg_uv,
    rate_hz,
    *,
    baseline_s="quietest",
    quiet_window_s: float = QUIET_WINDOW_S,
    k_sd: float = 3.0,
    min_duration_s: float = 0.05,
    min_off_s: float | None = 0.25,
    lowpass_hz: float | None = 50.0,
    bandpass_hz: tuple[float, float] | None = (20.0, 450.0),
) -> OnsetResult:
    """Threshold over baseline (Hodges & Bui 1996 family).

    The EMG is band-passed (4th-order Butterworth, zero-phase), rectified and low-passed
    (2nd-order zero-phase Butterworth at ``lowpass_hz``) into a linear envelope. Its mean and SD
    over the baseline window give the threshold ``mean + k_sd * SD``; a burst starts where the
    envelope stays above it for ``min_duration_s`` and ends where it stays at or below it for
    ``min_off_s``. With a given baseline window only samples after it are searched; with the
    quietest window (default) the whole signal is. The defaults and their sources are in the
    module docstring.

    Parameters
    ----------
    emg_uv : array_like, (n_samples,) or (n_samples, 1)
        One EMG channel in microvolts, no NaN.
    rate_hz : float
        Sampling rate in Hz.
    baseline_s : "quietest" or (float, float)
        ``"quietest"``: the quietest ``quiet_window_s`` of the envelope (default); or a window
        (start, end) in seconds from the first sample, e.g. rest before a cue (Hodges & Bui
        1996 used the 100 ms before the movement).
    quiet_window_s : float
        Length of the quietest-window baseline, s (default 1; ignored with a given window).
    k_sd : float
        Threshold in baseline SDs (Hodges & Bui grid: 1, 2, 3).
    min_duration_s : float
        Minimum time above threshold before an onset counts, s (Hodges & Bui grid: 0.02,
        0.05, 0.1 s; default 0.05).
    min_off_s : float or None
        Bursts are runs above threshold lasting ``min_duration_s`` or more, joined when less
        than ``min_off_s`` apart (default 0.25 s: a voluntary contraction is not split by the
        dips of its envelope); shorter excursions neither start nor extend a burst. None: the
        reflex rule of :mod:`dsp.stretch_reflex` -- a burst ends at the first ``min_duration_s``
        at or below threshold, and any excursion above extends it.
    lowpass_hz : float or None
        Envelope low-pass corner (Hodges & Bui grid: 10, 50, 500 Hz); None for the plain
        rectified signal.
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
    _check_baseline(baseline_s, quiet_window_s, rate_hz, x.size)
    min_on, min_off = _durations(rate_hz, min_duration_s, min_off_s)
    k = V.positive(k_sd, "k_sd")
    band = _band(bandpass_hz, rate_hz)
    lowpass_hz = _lowpass_corner(lowpass_hz, rate_hz)
    g = np.abs(_prefilter(x, rate_hz, band))
    g = _lowpass(g, rate_hz, lowpass_hz)
    params = {
        "k_sd": k,
        "min_duration_s": float(min_duration_s),
        "min_off_s": None if min_off_s is None else float(min_off_s),
        **_filter_params(bandpass_hz, band, lowpass_hz),
    }
    name = "linear envelope (uV)" if lowpass_hz is not None else "rectified EMG (uV)"
    return _threshold_result(
        "threshold", g, rate_hz, baseline_s, quiet_window_s, k, min_on, min_off, name, params
    )


def detect_onsets_tkeo(
    emg_uv,
    rate_hz,
    *,
    baseline_s="quietest",
    quiet_window_s: float = QUIET_WINDOW_S,
    k_sd: float = 8.0,
    min_duration_s: float = 0.025,
    min_off_s: float | None = 0.25,
    lowpass_hz: float | None = 50.0,
    bandpass_hz: tuple[float, float] | None = (30.0, 300.0),
) -> OnsetResult:
    """TKEO-conditioned threshold detector (Li, Zhou & Aruin 2007; Solnik et al. 2010).

    Band-pass (zero-phase, default 30-300 Hz as Solnik), Teager-Kaiser energy
    ``x[n]^2 - x[n-1] x[n+1]``, rectification, low-pass at ``lowpass_hz``; the baseline mean and
    SD are taken *of that TKEO envelope* and the threshold is ``mean + k_sd * SD``.

    Parameters are as :func:`detect_onsets_threshold` (same baseline rule, off-time and filter
    orders; an upper band corner above ``0.45 * rate_hz`` is lowered to it); ``k_sd`` defaults
    higher because the TKEO envelope's baseline is tight and its bursts tall (squared
    amplitude), and ``min_duration_s`` to 25 ms (Solnik et al. 2010 used 25 ms).

    Returns
    -------
    OnsetResult
        ``test_signal`` is the TKEO envelope (uV^2); ``params`` records the filters as applied
        (band used, ``bandpass_hz_requested`` when lowered, ``bandpass_order``,
        ``lowpass_order``), as :func:`detect_onsets_threshold`.
    """
    rate_hz = V.rate(rate_hz)
    x = V.one_channel(emg_uv, "emg_uv", min_samples=4)
    _check_baseline(baseline_s, quiet_window_s, rate_hz, x.size)
    min_on, min_off = _durations(rate_hz, min_duration_s, min_off_s)
    k = V.positive(k_sd, "k_sd")
    band = _band(bandpass_hz, rate_hz)
    lowpass_hz = _lowpass_corner(lowpass_hz, rate_hz)
    g = np.abs(tkeo(_prefilter(x, rate_hz, band)))
    g = _lowpass(g, rate_hz, lowpass_hz)
    params = {
        "k_sd": k,
        "min_duration_s": float(min_duration_s),
        "min_off_s": None if min_off_s is None else float(min_off_s),
        **_filter_params(bandpass_hz, band, lowpass_hz),
    }
    return _threshold_result(
        "tkeo", g, rate_hz, baseline_s, quiet_window_s, k, min_on, min_off,
        "TKEO envelope (uV^2)", params,
    )  # fmt: skip


def detect_onsets_changepoint(
    emg_uv,
    rate_hz,
    *,
    baseline_s="quietest",
    quiet_window_s: float = QUIET_WINDOW_S,
    ratio: float = 4.0,
    min_duration_s: float = 0.03,
    min_off_s: float | None = 0.25,
    penalty: float = 40.0,
    max_changes: int | None = None,
    bandpass_hz: tuple[float, float] | None = (20.0, 450.0),
    decimate: int | None = None,
) -> OnsetResult:
    """Statistical change-point detector (changes in variance, binary segmentation).

    After Staude et al. (2001): the band-passed EMG is modelled as zero-mean Gaussian with
    piecewise-constant variance, and onsets are maximum-likelihood change points. They are
    found by binary segmentation of the likelihood (Gaussian variance change, cost
    ``m log(S/m)``) with ``penalty`` per change, on the squared signal averaged in bins of
    ``decimate`` samples (default: 1 ms) to keep it fast and to tame the correlation of
    band-limited samples. A segment is *active* when its mean square exceeds ``ratio`` times the
    mean square of the same squared signal over the baseline window; consecutive active
    segments form a burst, bursts less than ``min_off_s`` apart are joined, and a burst is kept
    when it lasts ``min_duration_s``.

    Parameters
    ----------
    emg_uv : array_like, (n_samples,) or (n_samples, 1)
        One EMG channel in microvolts, no NaN.
    rate_hz : float
        Sampling rate in Hz.
    baseline_s : "quietest" or (float, float)
        As :func:`detect_onsets_threshold` (the quietest window of the binned mean square).
    quiet_window_s : float
        Length of the quietest-window baseline, s.
    ratio : float
        Mean-square ratio over baseline that makes a segment active (4 = RMS doubled).
    min_duration_s : float
        Shortest burst kept, seconds; also the shortest segment considered.
    min_off_s : float or None
        Bursts separated by less than this (s) are one burst (default 0.25, as the threshold
        detector's off-time); None joins only adjacent active segments.
    penalty : float
        Minimum gain in twice the log-likelihood (in bins) to accept a change.
    max_changes : int or None
        Cap on the number of change points (default None: no cap). A cap that is reached gives
        an :class:`OnsetCapWarning` and ``params["cap_reached"] = True``: the segments left
        unsplit are merged, so raise the cap.
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
        ``params`` records the band used, ``bandpass_hz_requested`` when it was lowered,
        ``bandpass_order`` and ``cap_reached``.

    Warns
    -----
    OnsetCapWarning
        When ``max_changes`` change points were found (the cap was reached).
    """
    rate_hz = V.rate(rate_hz)
    x = V.one_channel(emg_uv, "emg_uv", min_samples=4)
    _check_baseline(baseline_s, quiet_window_s, rate_hz, x.size)
    r = V.positive(ratio, "ratio")
    pen = V.positive(penalty, "penalty")
    if max_changes is not None and (
        not isinstance(max_changes, int | np.integer)
        or isinstance(max_changes, bool)
        or max_changes < 1
    ):
        raise SignalError(f"max_changes must be None or an integer >= 1, got {max_changes!r}")
    if isinstance(baseline_s, str):
        base_len = _quiet_width(quiet_window_s, rate_hz, x.size)
    else:
        i0, i1, _ = _baseline_slice(baseline_s, rate_hz, x.size)
        base_len = i1 - i0
    if decimate is None:
        q = max(1, min(round(rate_hz / 1000.0), base_len))
    elif (
        isinstance(decimate, int | np.integer) and not isinstance(decimate, bool) and decimate >= 1
    ):
        q = int(decimate)
    else:
        raise SignalError(f"decimate must be an integer >= 1 (samples per bin), got {decimate!r}")
    if q > base_len:
        raise SignalError(
            f"decimate={q} samples per bin is longer than the baseline window ({base_len} "
            "samples); the baseline needs at least one whole bin"
        )
    min_off = None if min_off_s is None else V.positive(min_off_s, "min_off_s", "s")
    band = _band(bandpass_hz, rate_hz)
    y = _prefilter(x, rate_hz, band)
    sq = y * y
    nb = sq.size // q
    bins = sq[: nb * q].reshape(nb, q).mean(axis=1)
    min_seg = max(1, round(V.positive(min_duration_s, "min_duration_s", "s") * rate_hz / q))
    if isinstance(baseline_s, str):
        width = max(1, min(nb, round(base_len / q)))
        b0, b1 = _quietest_window(bins, width) if width >= 3 else (0, width)
        rec, search_from = [b0 * q / rate_hz, b1 * q / rate_hz], 0
    else:
        b0, b1 = i0 // q, max(i0 // q + 1, i1 // q)
        rec, search_from = _baseline_slice(baseline_s, rate_hz, x.size)[2], b1
    base_bins = bins[b0:b1]
    mean = float(base_bins.mean())
    sd = float(base_bins.std(ddof=1)) if base_bins.size > 1 else 0.0
    thr = r * mean
    cs = np.concatenate([[0.0], np.cumsum(bins)])
    limit = int(max_changes) if max_changes is not None else max(1, nb // min_seg + 1)
    cps = _binary_segmentation(cs, nb, min_seg, pen, limit)
    cap_reached = max_changes is not None and cps.size >= int(max_changes)
    if cap_reached:
        warnings.warn(
            f"change-point detector stopped at max_changes={int(max_changes)}: segments it did "
            "not split are merged, so bursts may be joined; raise max_changes (or leave it "
            "None)",
            OnsetCapWarning,
            stacklevel=2,
        )
    on, off = _active_runs(cs, cps, nb, thr, search_from)
    on = on * q
    off = np.minimum(off * q, x.size)
    if min_off is not None and on.size > 1:
        on, off = _join_close(on, off, round(min_off * rate_hz))
    keep = (off - on) >= round(min_duration_s * rate_hz)
    params = {
        "baseline_s": rec,
        "baseline_rule": _rule(baseline_s, quiet_window_s),
        "ratio": r,
        "min_duration_s": float(min_duration_s),
        "min_off_s": min_off,
        "penalty": pen,
        "max_changes": None if max_changes is None else int(max_changes),
        "cap_reached": bool(cap_reached),
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


def _active_runs(cs, cps, nb: int, thr: float, search_from: int) -> tuple[np.ndarray, np.ndarray]:
    """(onsets, offsets) in bins of the runs of segments whose mean exceeds ``thr``."""
    edges = np.concatenate([[0], cps, [nb]])
    onsets, offsets = [], []
    in_burst = False
    for a, b in itertools.pairwise(edges):
        active = b > a and (cs[b] - cs[a]) / (b - a) > thr and a >= search_from
        if active and not in_burst:
            onsets.append(a)
            in_burst = True
        elif not active and in_burst:
            offsets.append(a)
            in_burst = False
    if in_burst:
        offsets.append(nb)
    return np.array(onsets, np.int64), np.array(offsets, np.int64)


def _join_close(on: np.ndarray, off: np.ndarray, min_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Bursts ``[on, off)`` with gaps shorter than ``min_gap`` samples joined into one."""
    starts = np.concatenate([[True], (on[1:] - off[:-1]) >= min_gap])
    idx = np.flatnonzero(starts)
    ends = np.append(idx[1:], on.size) - 1
    return on[idx], off[ends]


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
