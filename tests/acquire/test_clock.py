"""Clock mapping: lower envelope of arrival times is robust to delivery jitter."""

from __future__ import annotations

import numpy as np

from acquire.clock import ClockFitter, Unwrap32


def simulate(drift_ppm=50.0, jitter_sd_s=0.015, latency_s=0.004, seconds=120, seed=3):
    rng = np.random.default_rng(seed)
    dev_us = np.arange(0, seconds * 1_000_000, 10_000)  # a packet every 10 ms
    true_host = 1000.0 + (dev_us * 1e-6) * (1 + drift_ppm * 1e-6)
    arrival = true_host + latency_s + np.abs(rng.normal(0, jitter_sd_s, dev_us.size))
    return dev_us, true_host, arrival


def test_lower_envelope_recovers_drift_and_offset_under_jitter():
    dev_us, true_host, arrival = simulate()
    fitter = ClockFitter(window_s=1.0)
    for d, a in zip(dev_us, arrival, strict=True):
        fitter.add_arrival(int(d), float(a))
    # round trips of 2 x 4 ms
    for k in range(20):
        fitter.add_ping(k * 1000, 10.0 + k, 10.0 + k + 0.008)
    fit = fitter.fit(device_time_origin_us=0)
    assert fit["method"] == "lower-envelope"
    assert abs(fit["drift_ppm"] - 50.0) < 3.0
    mapped = fit["offset_s"] + (1 + fit["drift_ppm"] * 1e-6) * dev_us * 1e-6
    assert np.max(np.abs(mapped - true_host)) < 0.001  # under 1 ms everywhere
    assert abs(fit["one_way_latency_s"] - 0.004) < 1e-9
    # the naive fit on arrival times is biased by the mean jitter (about 12 ms)
    _slope, intercept = np.polyfit(dev_us * 1e-6, arrival, 1)
    assert abs(intercept - 1000.0) > 0.008
    assert fit["n_anchors"] == 120 and fitter.anchors().shape == (120,)


def test_fit_without_data_says_none():
    assert ClockFitter().fit()["method"] == "none"


def test_unwrap32():
    u = Unwrap32()
    values = [0xFFFFFF00, 0xFFFFFFF0, 0x10, 0x100, 0xFFFFFFF8]
    assert [u(v) for v in values] == [
        0xFFFFFF00,
        0xFFFFFFF0,
        (1 << 32) + 0x10,
        (1 << 32) + 0x100,
        0xFFFFFFF8,
    ]
