"""Device-to-host clock mapping: lower envelope of arrival times, plus round-trip pings.

Samples are timed by the device clock, never by arrival. To place a session on the host's clock
we fit ``host_time_s = a + b * device_time_s`` through the *fastest* packet of each window (the
lower envelope of arrival minus device time), which is robust to delivery jitter that only ever
delays packets. What remains in ``a`` is the one-way latency of the fastest packets; round-trip
pings (the device answers with its clock) measure it, and half the median round trip is
subtracted.
"""

from __future__ import annotations

import math

import numpy as np

from acquire.session_file import ANCHOR_DTYPE, PING_DTYPE

WRAP_32 = 1 << 32


class Unwrap32:
    """Unwrap a 32-bit counter (device time in us, sample indices) into a 64-bit one.

    A step backwards by more than half the range is taken as a wrap.
    """

    def __init__(self) -> None:
        self._last: int | None = None
        self._high = 0

    def __call__(self, value: int) -> int:
        value = int(value) & 0xFFFFFFFF
        if self._last is not None:
            if value < self._last and self._last - value > WRAP_32 // 2:
                self._high += WRAP_32
            elif value > self._last and value - self._last > WRAP_32 // 2:
                # a late value from before the last wrap
                return self._high - WRAP_32 + value
        self._last = value
        return self._high + value


class ClockFitter:
    """Fit the device-to-host clock mapping incrementally.

    Parameters
    ----------
    window_s : float
        Device-time window of the lower envelope: the fastest arrival per window is one anchor.
    """

    def __init__(self, window_s: float = 1.0) -> None:
        self.window_us = int(window_s * 1e6)
        # window index -> (host - device lag, device_time_us, host_time_s) of its fastest packet
        self._windows: dict[int, tuple[float, int, float]] = {}
        self._pings: list[tuple[int, float, float]] = []
        self._rtts: list[float] = []

    def add_arrival(self, device_time_us: int, host_time_s: float) -> None:
        """A packet whose newest sample was taken at ``device_time_us`` arrived at host time."""
        key = int(device_time_us) // self.window_us
        lag = host_time_s - device_time_us * 1e-6
        best = self._windows.get(key)
        if best is None or lag < best[0]:
            self._windows[key] = (lag, int(device_time_us), float(host_time_s))

    def add_ping(
        self, device_time_us: int, host_send_s: float, host_recv_s: float, device_busy_s: float = 0
    ) -> None:
        """A round trip: sent at ``host_send_s``, answered with ``device_time_us``, received."""
        self._pings.append((int(device_time_us), float(host_send_s), float(host_recv_s)))
        self._rtts.append(max(0.0, host_recv_s - host_send_s - device_busy_s))

    def anchors(self) -> np.ndarray:
        """Envelope points so far, one per window in device-time order, ``ANCHOR_DTYPE``."""
        pts = [(v[1], v[2]) for _k, v in sorted(self._windows.items())]
        return np.array(pts, dtype=ANCHOR_DTYPE)

    def pings(self) -> np.ndarray:
        return np.array(self._pings, dtype=PING_DTYPE)

    def fit(self, device_time_origin_us: int = 0) -> dict:
        """The current mapping ``host_time_s = offset_s + (1 + drift_ppm*1e-6) * session_time_s``.

        ``session_time_s = (device_time_us - device_time_origin_us) / 1e6``.

        Returns
        -------
        dict
            ``offset_s``, ``drift_ppm``, ``residual_sd_s``, ``residual_max_s``,
            ``one_way_latency_s`` (NaN without pings), ``round_trip_s``, ``n_anchors``,
            ``n_pings``, ``method``.
        """
        a = self.anchors()
        out = {
            "method": "none",
            "host_clock": "monotonic",
            "n_anchors": int(a.shape[0]),
            "n_pings": len(self._pings),
        }
        if a.shape[0] == 0:
            return out
        x = (a["device_time_us"] - device_time_origin_us) * 1e-6
        y = a["host_time_s"]
        if a.shape[0] >= 3 and np.ptp(x) > 0:
            slope, intercept = _lower_fit(x, y)
        else:
            slope, intercept = 1.0, float(np.min(y - x))
        resid = y - (intercept + slope * x)
        if self._rtts:
            rtt = float(np.median(self._rtts))
            latency = rtt / 2.0
        else:
            rtt = latency = float("nan")
        out.update(
            method="lower-envelope",
            offset_s=float(intercept - (0.0 if math.isnan(latency) else latency)),
            drift_ppm=float((slope - 1.0) * 1e6),
            residual_sd_s=float(np.std(resid)),
            residual_max_s=float(np.max(np.abs(resid))),
            one_way_latency_s=latency,
            round_trip_s=rtt,
        )
        return out


def _lower_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least squares on envelope points, dropping points far above the line (slow windows)."""
    keep = np.ones(x.shape[0], dtype=bool)
    slope, intercept = 1.0, 0.0
    for _ in range(3):
        slope, intercept = np.polyfit(x[keep], y[keep], 1)
        resid = y - (intercept + slope * x)
        mad = np.median(np.abs(resid[keep] - np.median(resid[keep]))) + 1e-9
        new = resid < np.median(resid[keep]) + 4.0 * 1.4826 * mad
        if new.sum() < 3 or (new == keep).all():
            break
        keep = new
    return float(slope), float(intercept)
