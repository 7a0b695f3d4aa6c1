"""Burst and movement tables for recordings without a reflex test (issue 17 item 1)."""

import numpy as np
import pytest

from dsp.activity import burst_table, movement_table
from dsp.errors import SignalError

RATE = 2000.0


def _bursts(carriers_hz, rng, *, on_s=1.0, off_s=2.0, amp_uv=200.0, noise_uv=3.0):
    """Rest, then one burst per carrier: a band-limited burst centred on that frequency."""
    pieces, onsets = [rng.normal(0, noise_uv, int(off_s * RATE))], []
    t = np.arange(int(on_s * RATE)) / RATE
    for f in carriers_hz:
        onsets.append(sum(p.size for p in pieces) / RATE)
        # narrow-band noise: a carrier with a slowly wandering phase, ramped in and out
        phase = np.cumsum(rng.normal(0, 0.05, t.size))
        ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
        pieces.append(
            amp_uv * ramp * np.sin(2 * np.pi * f * t + phase) + rng.normal(0, noise_uv, t.size)
        )
        pieces.append(rng.normal(0, noise_uv, int(off_s * RATE)))
    return np.concatenate(pieces), np.array(onsets)


def test_burst_table_finds_each_burst_and_its_frequency():
    rng = np.random.default_rng(1)
    carriers = [150.0, 120.0, 100.0, 80.0]  # a fatigue series: the spectrum moves down
    x, onsets = _bursts(carriers, rng)
    rows = burst_table(np.column_stack([x, rng.normal(0, 3.0, x.size)]), RATE)
    ch0 = [r for r in rows if r["channel"] == 0]
    assert len(ch0) == len(carriers) and not [r for r in rows if r["channel"] == 1]
    got = np.array([r["onset_s"] for r in ch0])
    assert np.max(np.abs(got - onsets)) < 0.05
    assert all(abs(r["duration_s"] - 1.0) < 0.1 for r in ch0)
    medians = [r["median_frequency_hz"] for r in ch0]
    for m, f in zip(medians, carriers, strict=True):
        assert abs(m - f) < 0.1 * f
    assert all(np.diff(medians) < 0)  # the fatigue index falls as the carrier does
    for r in ch0:  # iEMG and peak from the band-passed burst: bounded by the raw amplitude
        assert 0.5 * 200 * 2 / np.pi < r["iemg_uv_s"] < 1.2 * 200 and r["peak_uv"] < 260


def test_gaps_are_marked_and_bad_shapes_refused():
    rng = np.random.default_rng(2)
    x, _ = _bursts([100.0], rng)
    x[int(2.5 * RATE) : int(2.6 * RATE)] = np.nan
    (row,) = burst_table(x, RATE)
    assert row["touches_gap"] is True
    with pytest.raises(SignalError):
        burst_table(np.zeros((0, 2)), RATE)


def test_movement_table_gives_range_velocity_and_direction():
    rate = 500.0
    t = np.arange(int(12 * rate)) / rate
    ramp = lambda t0: np.clip((1 - np.cos(np.pi * np.clip(t - t0, 0, 1))) / 2, 0, 1)  # noqa: E731
    # 10 -> 70 deg at 1 s, back to 10 at 5 s, up to 70 again at 9 s: 1 s cosine ramps
    angle = 10.0 + 60.0 * (ramp(1.0) - ramp(5.0) + ramp(9.0))
    rows = movement_table(angle, rate)
    assert [r["direction"] for r in rows] == [1, -1, 1]
    for r, t0 in zip(rows, (1.0, 5.0, 9.0), strict=True):
        assert abs(r["range_deg"] - 60.0) < 3.0
        assert abs(r["peak_velocity_deg_s"] - 60.0 * np.pi / 2) < 10.0  # peak of a cosine ramp
        assert abs(r["start_s"] - t0) < 0.2 and 0.7 < r["duration_s"] < 1.3
