"""Onset detectors on synthetic bursts with known onsets, and their kernels against references."""

import json

import numpy as np
import pytest

from dsp import SignalError
from dsp import onsets as O

RATE = 2000.0


def synthetic(seed, onset=2000, offset=3000, n=6000, noise_uv=5.0, burst_uv=60.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=noise_uv, size=n)
    x[onset:offset] += rng.normal(scale=burst_uv, size=offset - onset)
    return x


def reference_bursts(g, thr, min_on, min_off, start):
    """Slow reference of the burst state machine."""
    above = g > thr
    onsets, offsets = [], []
    i, n = start, len(g)
    while i < n:
        if above[i]:
            j = i
            while j < n and above[j]:
                j += 1
            if j - i >= min_on:
                k, end = j, n
                while k < n:
                    if not above[k]:
                        m = k
                        while m < n and not above[m]:
                            m += 1
                        if m - k >= min_off or m == n:
                            end = k
                            break
                        k = m
                    else:
                        k += 1
                onsets.append(i)
                offsets.append(end)
                i = end
                continue
            i = j
        else:
            i += 1
    return onsets, offsets


def reference_best_split(x, lo, hi, min_seg):
    best, arg = 0.0, -1
    seg = x[lo:hi]
    full = len(seg) * np.log(seg.sum() / len(seg))
    for t in range(min_seg, len(seg) - min_seg + 1):
        a, b = seg[:t], seg[t:]
        gain = full - len(a) * np.log(a.mean()) - len(b) * np.log(b.mean())
        if gain > best:
            best, arg = gain, lo + t
    return best, arg


def test_bursts_kernel_matches_reference():
    rng = np.random.default_rng(0)
    for _ in range(30):
        g = rng.random(400)
        g = np.convolve(g, np.ones(5) / 5, mode="same")
        thr = np.quantile(g, rng.uniform(0.3, 0.8))
        args = (thr, int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(0, 50)))
        on, off = O._bursts(g, *args)
        ron, roff = reference_bursts(g, *args)
        assert list(on) == ron and list(off) == roff


def test_best_split_matches_brute_force():
    rng = np.random.default_rng(1)
    x = rng.exponential(size=300)
    x[120:200] *= 9
    cs = np.concatenate([[0.0], np.cumsum(x)])
    g, t = O._best_split(cs, 10, 290, 5)
    rg, rt = reference_best_split(x, 10, 290, 5)
    assert t == rt and g == pytest.approx(rg, rel=1e-9)


@pytest.mark.parametrize("method", ["threshold", "tkeo", "changepoint"])
def test_detectors_find_synthetic_bursts(method):
    errors = []
    for seed in range(8):
        r = O.detect_onsets(synthetic(seed), RATE, method, baseline_s=(0.0, 0.5))
        assert r.onsets.size == 1, (seed, r.onsets)
        errors.append(abs(int(r.onsets[0]) - 2000))
        assert abs(int(r.offsets[0]) - 3000) < 60
    assert np.median(errors) < 20  # 10 ms
    assert max(errors) < 60


@pytest.mark.parametrize("method", ["threshold", "tkeo", "changepoint"])
def test_no_burst_in_pure_noise(method):
    x = np.random.default_rng(11).normal(scale=5.0, size=6000)
    assert O.detect_onsets(x, RATE, method, baseline_s=(0.0, 0.5)).onsets.size == 0


def test_two_bursts_and_offsets():
    x = synthetic(3, n=10000)
    x[6000:6600] += np.random.default_rng(9).normal(scale=60.0, size=600)
    r = O.detect_onsets_threshold(x, RATE, baseline_s=(0.0, 0.5))
    assert len(r.onsets) == 2
    assert abs(r.onsets[1] - 6000) < 40 and abs(r.offsets[1] - 6600) < 60


@pytest.mark.parametrize("method", ["threshold", "tkeo", "changepoint"])
def test_baseline_statistics_are_of_the_thresholded_signal(method):
    """Scaling the EMG by 10 scales the test signal; thresholds must follow that signal."""
    x = synthetic(4)
    r1 = O.detect_onsets(x, RATE, method, baseline_s=(0.0, 0.5))
    r10 = O.detect_onsets(10 * x, RATE, method, baseline_s=(0.0, 0.5))
    power = 1 if method == "threshold" else 2
    assert r10.threshold == pytest.approx(r1.threshold * 10**power, rel=1e-9)
    np.testing.assert_array_equal(r1.onsets, r10.onsets)
    assert r1.baseline_mean < r1.threshold


def test_result_carries_parameters_and_serialises():
    r = O.detect_onsets_threshold(synthetic(5), RATE, baseline_s=(0.0, 0.5), k_sd=2.0)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["method"] == "threshold"
    assert d["params"]["k_sd"] == 2.0 and d["params"]["baseline_s"] == [0.0, 0.5]
    assert d["params"]["min_duration_s"] == 0.03 and d["params"]["lowpass_hz"] == 50.0
    assert d["onsets_s"][0] == pytest.approx(d["onsets"][0] / RATE)
    assert r.first_onset == d["onsets"][0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"baseline_s": (0.0, 100.0)}, "baseline_s"),
        ({"baseline_s": "soon"}, "baseline_s"),
        ({"k_sd": -1}, "k_sd"),
        ({"min_duration_s": 0}, "min_duration_s"),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(SignalError, match=message):
        O.detect_onsets_threshold(synthetic(0), RATE, **kwargs)


def test_multichannel_input_is_rejected_and_unknown_method():
    with pytest.raises(SignalError, match="one channel"):
        O.detect_onsets_tkeo(np.zeros((100, 2)), RATE)
    with pytest.raises(SignalError, match="unknown onset detector"):
        O.detect_onsets(np.zeros(100), RATE, "magic")


def reference_binary_segmentation(x, min_seg, penalty, max_changes):
    """Slow reference: greedy binary segmentation with brute-force splits."""
    segments = [(0, len(x))]
    cps = []
    while len(cps) < max_changes:
        best = (penalty, None, None)
        for lo, hi in segments:
            if hi - lo < 2 * min_seg:
                continue
            g, t = reference_best_split(x, lo, hi, min_seg)
            if t >= 0 and g > best[0]:
                best = (g, t, (lo, hi))
        if best[1] is None:
            break
        _, t, (lo, hi) = best
        cps.append(t)
        segments.remove((lo, hi))
        segments += [(lo, t), (t, hi)]
    return sorted(cps)


def test_binary_segmentation_matches_reference():
    rng = np.random.default_rng(4)
    x = rng.exponential(size=400)
    x[100:180] *= 12
    x[250:300] *= 5
    cs = np.concatenate([[0.0], np.cumsum(x)])
    for penalty, max_changes in [(20.0, 10), (5.0, 3), (1e6, 5)]:
        got = O._binary_segmentation(cs, len(x), 8, penalty, max_changes)
        assert list(got) == reference_binary_segmentation(x, 8, penalty, max_changes)
