"""Signal quality on channels with known defects."""

import json

import numpy as np
import pytest

from dsp import SignalError
from dsp import quality as Q

RATE = 2000.0


def reference_gaps(x):
    bad = np.isnan(x).any(axis=1) if x.ndim == 2 else np.isnan(x)
    runs, start = [], None
    for i, b in enumerate(bad):
        if b and start is None:
            start = i
        if not b and start is not None:
            runs.append([start, i])
            start = None
    if start is not None:
        runs.append([start, len(bad)])
    return np.array(runs, dtype=np.int64).reshape(-1, 2)


def reference_rail_samples(x, lo, hi, min_run):
    at = (x <= lo) | (x >= hi)
    total, run = 0, 0
    for a in [*at, False]:
        if a:
            run += 1
        else:
            total += run if run >= min_run else 0
            run = 0
    return total


def reference_window_sd(x, win):
    m = len(x) // win
    return np.array([np.std(x[i * win : (i + 1) * win], ddof=1) for i in range(m)])


@pytest.fixture(scope="module")
def recording():
    rng = np.random.default_rng(0)
    n = int(20 * RATE)
    t = np.arange(n) / RATE
    bursts = (np.sin(2 * np.pi * 0.25 * t) > 0.5).astype(float)
    good = rng.normal(scale=5, size=n) + bursts * rng.normal(scale=80, size=n)
    clipped = np.clip(good * 3, -200, 200)
    flat = rng.normal(scale=0.05, size=n)
    hum = 300 * np.sin(2 * np.pi * 50 * t) + rng.normal(scale=5, size=n)
    gappy = good.copy()
    gappy[5000:5200] = np.nan
    gappy[30000:30010] = np.nan
    return np.column_stack([good, clipped, flat, hum, gappy])


def test_known_defects_are_reported(recording):
    q = Q.channel_quality(recording, RATE)
    good, clipped, flat, hum, gappy = q
    assert good.ok, good.problems
    assert good.snr_db > 15
    assert clipped.saturation_fraction > 0.01 and not clipped.ok
    assert any("saturated" in p for p in clipped.problems)
    assert flat.flat_fraction == 1.0 and flat.electrode_off
    assert hum.powerline_ratio > 0.9 and hum.electrode_off
    assert good.powerline_ratio < 0.05
    assert gappy.n_gaps == 2 and gappy.gap_fraction == pytest.approx(210 / recording.shape[0])
    assert any("gap" in p for p in gappy.problems)
    assert gappy.snr_db == pytest.approx(good.snr_db, abs=1.0)
    json.dumps([c.to_dict() for c in q])


def test_explicit_rails():
    x = np.random.default_rng(1).normal(scale=50, size=10000)
    x[100:110] = 500.0
    q = Q.channel_quality(x, RATE, rails_uv=(-500, 500))[0]
    assert q.saturation_fraction == pytest.approx(10 / 10000)


def test_kernels_match_references():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, 3))
    x[rng.random(3000) < 0.01, rng.integers(0, 3)] = np.nan
    x[2990:] = np.nan
    np.testing.assert_array_equal(Q.find_gaps(x), reference_gaps(x))
    y = np.round(rng.normal(size=4000), 1)
    assert Q._rail_samples(y, -1.5, 1.5, 1) == reference_rail_samples(y, -1.5, 1.5, 1)
    y2 = np.clip(y, -1.0, 1.0)
    assert Q._rail_samples(y2, -1.0, 1.0, 3) == reference_rail_samples(y2, -1.0, 1.0, 3)
    np.testing.assert_allclose(Q._window_sd(y, 250), reference_window_sd(y, 250), rtol=1e-12)


def test_bad_input():
    with pytest.raises(SignalError, match="Inf"):
        Q.channel_quality(np.array([1.0, np.inf] * 2000), RATE)
    with pytest.raises(SignalError, match="line_hz"):
        Q.channel_quality(np.zeros(1000), 80.0)
    assert Q.channel_quality(np.full(4000, np.nan), RATE)[0].problems == ["no samples received"]
