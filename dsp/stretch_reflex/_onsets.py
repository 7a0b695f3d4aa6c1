"""Reflex-onset detection inside one stretch window.

Each detector takes the band-passed EMG of the channel, a baseline window (before the stretch)
and a search window, and returns the onset sample index or -1. Baseline statistics are always
computed on the same test function as the one thresholded (the pitfall named in
shared/guide/domain.md).
"""

from __future__ import annotations

import numpy as np

from dsp.stretch_reflex._emg import lowpass_envelope, segments_above


class OnsetContext:
    """Per-recording caches of the test functions (envelopes) used by the detectors."""

    def __init__(self, x_bp: np.ndarray, rate_hz: float, envelope_hz: float):
        self.x = x_bp
        self.rate = rate_hz
        self.envelope_hz = envelope_hz
        self._cache: dict[str, np.ndarray] = {}

    def envelope(self) -> np.ndarray:
        if "env" not in self._cache:
            self._cache["env"] = lowpass_envelope(self.x, self.rate, self.envelope_hz)
        return self._cache["env"]

    def tkeo_envelope(self) -> np.ndarray:
        if "tkeo" not in self._cache:
            x = self.x
            psi = np.full_like(x, np.nan)
            psi[1:-1] = x[1:-1] ** 2 - x[:-2] * x[2:]
            self._cache["tkeo"] = lowpass_envelope(psi, self.rate, self.envelope_hz)
        return self._cache["tkeo"]


def first_run_above(test: np.ndarray, start: int, stop: int, level: float, min_len: int) -> int:
    """Index of the first run of ``test[start:stop] > level`` lasting ``min_len`` samples."""
    seg = np.nan_to_num(test[start:stop], nan=-np.inf) > level
    on, off = segments_above(seg)
    long = np.flatnonzero(off - on >= min_len)
    if len(long) == 0:
        # a run may continue past the search window: accept it if it lasts long enough there
        if len(on) and off[-1] == len(seg):
            tail = np.nan_to_num(test[start + on[-1] : stop + min_len], nan=-np.inf) > level
            if np.all(tail[:min_len]) and len(tail) >= min_len:
                return start + int(on[-1])
        return -1
    return start + int(on[long[0]])


def _threshold_on(test, baseline, search, sd, min_len):
    b = test[baseline[0] : baseline[1]]
    b = b[np.isfinite(b)]
    if len(b) < 10:
        return -1, np.nan
    level = float(np.mean(b) + sd * np.std(b))
    return first_run_above(test, search[0], search[1], level, min_len), level


def detect_threshold(ctx: OnsetContext, baseline, search, sd, min_len) -> int:
    """Envelope above baseline mean + ``sd`` SD for ``min_len`` samples (Hodges & Bui 1996)."""
    return _threshold_on(ctx.envelope(), baseline, search, sd, min_len)[0]


def detect_tkeo(ctx: OnsetContext, baseline, search, sd, min_len) -> int:
    """Same rule on the low-passed Teager-Kaiser energy (Solnik 2010)."""
    return _threshold_on(ctx.tkeo_envelope(), baseline, search, sd, min_len)[0]


def detect_changepoint(ctx: OnsetContext, baseline, search, sd, min_len) -> int:
    """Maximum-likelihood variance changepoint, in a window around the threshold onset.

    The threshold detector gates (no threshold onset, no onset); the changepoint of the squared
    band-passed EMG is then searched between the baseline start and 50 ms after that onset.
    """
    coarse = detect_threshold(ctx, baseline, search, sd, min_len)
    if coarse < 0:
        return -1
    a = baseline[0]
    b = min(len(ctx.x), coarse + int(0.05 * ctx.rate))
    e = ctx.x[a:b] ** 2
    if not np.all(np.isfinite(e)) or len(e) < 20:
        return coarse
    c = np.cumsum(e)
    k = np.arange(5, len(e) - 5)
    n1 = k.astype(float)
    n2 = len(e) - n1
    v1 = c[k - 1] / n1
    v2 = (c[-1] - c[k - 1]) / n2
    ll = -(n1 * np.log(v1 + 1e-300) + n2 * np.log(v2 + 1e-300))
    ll[v2 <= v1] = -np.inf
    if not np.any(np.isfinite(ll)):
        return coarse
    cp = a + int(k[np.argmax(ll)])
    return max(cp, search[0])


DETECTORS = {
    "threshold": detect_threshold,
    "tkeo": detect_tkeo,
    "changepoint": detect_changepoint,
}
