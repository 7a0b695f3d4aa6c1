"""The rules that make the onset detectors hold on real EMG (issue 17, item 2): the quietest
baseline window, on/off times that keep a contraction whole, and caps that warn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from naive import reference_joined_runs, reference_quietest

from dsp import onsets as O
from dsp.errors import SignalError

RATE = 2000.0


def test_quietest_window_matches_reference():
    rng = np.random.default_rng(3)
    for _ in range(40):
        g = np.abs(rng.normal(size=int(rng.integers(30, 400)))) * rng.uniform(0.5, 3)
        width = int(rng.integers(3, len(g) + 1))
        assert O._quietest_window(g, width) == reference_quietest(list(g), width)


def test_joined_runs_matches_reference():
    rng = np.random.default_rng(4)
    for _ in range(60):
        above = rng.random(int(rng.integers(1, 300))) < rng.uniform(0.2, 0.8)
        min_on, min_off = int(rng.integers(1, 8)), int(rng.integers(1, 12))
        on, off = O._joined_runs(above, min_on, min_off)
        ron, roff = reference_joined_runs(list(above), min_on, min_off)
        assert list(on) == ron and list(off) == roff


def contraction(rng, n, amp=80.0):
    """Band-limited noise bursts with an envelope that dips, as a voluntary contraction's."""
    t = np.arange(n) / RATE
    return rng.normal(scale=amp, size=n) * (0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t)) ** 2


def test_recording_that_starts_active_is_read_from_its_quietest_window():
    rng = np.random.default_rng(5)
    x = rng.normal(scale=4.0, size=int(8 * RATE))
    x[:3000] += contraction(rng, 3000)  # active for the first 1.5 s
    x[10000:12000] += contraction(rng, 2000)  # a contraction at 5 s
    r = O.detect_onsets_threshold(x, RATE)
    assert r.params["baseline_rule"] == "quietest 1 s"
    t0, t1 = r.params["baseline_s"]
    assert t0 >= 1.5 and (t1 <= 5.0 or t0 >= 6.0)  # inside the rest, not in a contraction
    assert r.onsets.tolist()[0] < 20 and abs(int(r.onsets[1]) - 10000) < 100
    assert r.onsets.size == 2
    first_100ms = O.detect_onsets_threshold(x, RATE, baseline_s=(0.0, 0.1))
    assert first_100ms.onsets.size != 2  # the old default misreads it: the test can fail


@pytest.mark.parametrize("method", ["threshold", "tkeo", "changepoint"])
def test_a_contraction_with_envelope_dips_is_one_burst(method):
    rng = np.random.default_rng(6)
    x = rng.normal(scale=4.0, size=int(6 * RATE))
    burst = contraction(rng, 4000)
    burst[1500:1600] *= 0.02  # a 50 ms near-silence inside the contraction
    x[4000:8000] += burst
    r = O.detect_onsets(x, RATE, method)
    assert r.onsets.size == 1, r.onsets
    assert abs(int(r.onsets[0]) - 4000) < 100 and abs(int(r.offsets[0]) - 8000) < 200
    if method != "changepoint":
        short = O.detect_onsets(x, RATE, method, min_off_s=0.02)
        assert short.onsets.size > 1  # a 20 ms off-time splits it


def test_min_off_none_keeps_the_reflex_rule():
    rng = np.random.default_rng(7)
    x = rng.normal(scale=4.0, size=8000)
    x[3000:5000] += contraction(rng, 2000)
    r = O.detect_onsets_threshold(x, RATE, baseline_s=(0.0, 0.5), min_off_s=None)
    g = np.abs(O._prefilter(x, RATE, (20.0, 450.0)))
    g = O._lowpass(g, RATE, 50.0)
    base = g[:1000]
    thr = base.mean() + 3.0 * base.std(ddof=1)
    on, off = O._bursts(g, thr, 100, 100, 1000)
    assert r.onsets.tolist() == on.tolist() and r.offsets.tolist() == off.tolist()
    assert r.params["min_off_s"] is None


def three_bursts():
    rng = np.random.default_rng(8)
    x = rng.normal(scale=4.0, size=int(6 * RATE))
    for a in (2500, 5500, 8500):
        x[a : a + 1200] += rng.normal(scale=60.0, size=1200)
    return x


def test_change_point_cap_reached_warns_and_is_recorded():
    x = three_bursts()
    with pytest.warns(O.OnsetCapWarning, match="max_changes=2"):
        capped = O.detect_onsets_changepoint(x, RATE, max_changes=2)
    assert capped.params["cap_reached"] is True
    assert capped.onsets.size < 3  # what the cap does: bursts merged or lost
    with warnings.catch_warnings():
        warnings.simplefilter("error", O.OnsetCapWarning)
        free = O.detect_onsets_changepoint(x, RATE)
    assert free.params["cap_reached"] is False and free.params["max_changes"] is None
    assert free.onsets.size == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"quiet_window_s": 20.0}, "quiet_window_s"),
        ({"quiet_window_s": -1.0}, "quiet_window_s"),
        ({"baseline_s": "quiet"}, "baseline_s"),
        ({"min_off_s": 0.0}, "min_off_s"),
    ],
)
@pytest.mark.parametrize("method", ["threshold", "tkeo", "changepoint"])
def test_bad_baseline_and_off_time_are_signal_errors(method, kwargs, message):
    with pytest.raises(SignalError, match=message):
        O.detect_onsets(three_bursts(), RATE, method, **kwargs)


def test_bad_cap_is_a_signal_error():
    for bad in (0, 2.5, True):
        with pytest.raises(SignalError, match="max_changes"):
            O.detect_onsets_changepoint(three_bursts(), RATE, max_changes=bad)
