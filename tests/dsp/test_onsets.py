"""Onset detectors on synthetic bursts with known onsets, and their kernels against references."""

import json

import numpy as np
import pytest
from naive import (
    reference_best_split,
    reference_binary_segmentation,
    reference_bursts,
    reference_test_signal,
)

from dsp import SignalError
from dsp import onsets as O

RATE = 2000.0


def synthetic(seed, onset=2000, offset=3000, n=6000, noise_uv=5.0, burst_uv=60.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=noise_uv, size=n)
    x[onset:offset] += rng.normal(scale=burst_uv, size=offset - onset)
    return x


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
    """Baseline mean and SD equal those of the independently rebuilt test signal's baseline
    window (not of the raw EMG), and the threshold follows from them."""
    x = synthetic(4)
    t0, t1 = 0.2, 0.7  # not at the start: a wrong window offset would show
    r = O.detect_onsets(x, RATE, method, baseline_s=(t0, t1))
    g = reference_test_signal(x, RATE, method)
    per_s = RATE if method != "changepoint" else 1000.0  # samples or 1 ms bins per second
    base = g[round(t0 * per_s) : round(t1 * per_s)]
    assert r.baseline_mean == pytest.approx(base.mean(), rel=1e-9)
    assert r.baseline_sd == pytest.approx(base.std(ddof=1), rel=1e-9)
    if method == "changepoint":
        assert r.threshold == pytest.approx(4.0 * base.mean(), rel=1e-9)
        return
    k = {"threshold": 3.0, "tkeo": 8.0}[method]
    assert r.threshold == pytest.approx(base.mean() + k * base.std(ddof=1), rel=1e-9)
    min_on = round(r.params["min_duration_s"] * RATE)
    on, off = reference_bursts(g, r.threshold, min_on, min_on, round(t1 * RATE))
    assert list(r.onsets) == on and list(r.offsets) == off
    # The raw EMG's statistics are different numbers altogether.
    assert abs(r.baseline_sd - x[round(t0 * RATE) : round(t1 * RATE)].std(ddof=1)) > 0.1


def test_result_carries_parameters_and_serialises():
    r = O.detect_onsets_threshold(synthetic(5), RATE, baseline_s=(0.0, 0.5), k_sd=2.0)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["method"] == "threshold"
    assert d["params"]["k_sd"] == 2.0 and d["params"]["baseline_s"] == [0.0, 0.5]
    assert d["params"]["min_duration_s"] == 0.05 and d["params"]["lowpass_hz"] == 50.0
    assert d["params"]["min_off_s"] == 0.25 and d["params"]["baseline_rule"] == "given"
    assert d["onsets_s"][0] == pytest.approx(d["onsets"][0] / RATE)
    assert r.first_onset == d["onsets"][0]


@pytest.mark.parametrize("method", ["threshold", "tkeo", "changepoint"])
def test_params_record_the_band_and_orders_used_at_500_hz(method):
    """At 500 Hz the default upper corners (450 or 300 Hz) are lowered to 0.45 x 500 = 225 Hz:
    params hold the band applied, the request, and the Butterworth orders."""
    rate = 500.0
    x = synthetic(6, onset=500, offset=750, n=1500)
    r = O.detect_onsets(x, rate, method, baseline_s=(0.0, 0.5))
    requested = [30.0, 300.0] if method == "tkeo" else [20.0, 450.0]
    assert r.params["bandpass_hz"] == [requested[0], 225.0]
    assert r.params["bandpass_hz_requested"] == requested
    assert r.params["bandpass_order"] == 4
    if method == "changepoint":
        assert "lowpass_order" not in r.params
    else:
        assert r.params["lowpass_hz"] == 50.0 and r.params["lowpass_order"] == 2
    # The recorded band reproduces the result, and then nothing was lowered.
    again = O.detect_onsets(
        x, rate, method, baseline_s=(0.0, 0.5), bandpass_hz=tuple(r.params["bandpass_hz"])
    )
    assert again.threshold == r.threshold
    np.testing.assert_array_equal(again.onsets, r.onsets)
    assert "bandpass_hz_requested" not in again.params
    json.dumps(r.to_dict())
    # At 2 kHz the requested band is used as is; without a pre-filter there is no order.
    r2 = O.detect_onsets(synthetic(6), RATE, method, baseline_s=(0.0, 0.5))
    assert r2.params["bandpass_hz"] == requested and "bandpass_hz_requested" not in r2.params
    r3 = O.detect_onsets(synthetic(6), RATE, method, baseline_s=(0.0, 0.5), bandpass_hz=None)
    assert r3.params["bandpass_hz"] is None and r3.params["bandpass_order"] is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"baseline_s": (0.0, 100.0)}, "baseline_s"),
        ({"baseline_s": "soon"}, "baseline_s"),
        ({"k_sd": -1}, "k_sd"),
        ({"min_duration_s": 0}, "min_duration_s"),
        ({"lowpass_hz": 5000.0}, "lowpass_hz"),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(SignalError, match=message):
        O.detect_onsets_threshold(synthetic(0), RATE, **kwargs)


@pytest.mark.parametrize("method", ["threshold", "tkeo", "changepoint"])
@pytest.mark.parametrize(
    "band",
    [(20.0,), 20.0, "wide", (20.0, "x"), (300.0, 100.0), (-5.0, 100.0), (950.0, 990.0)],
)
def test_bad_band_is_a_signal_error(method, band):
    with pytest.raises(SignalError, match="bandpass_hz"):
        O.detect_onsets(synthetic(0), RATE, method, baseline_s=(0.0, 0.5), bandpass_hz=band)


@pytest.mark.parametrize(
    ("decimate", "message"),
    [
        (2.7, "integer"),
        (2.0, "integer"),
        (True, "integer"),
        (0, "integer"),
        ("2", "integer"),
        (10**6, "baseline window"),
        (1001, "baseline window"),  # baseline 0-0.5 s = 1000 samples
    ],
)
def test_bad_decimate_is_a_signal_error(decimate, message):
    with pytest.raises(SignalError, match=message):
        O.detect_onsets_changepoint(synthetic(0), RATE, baseline_s=(0.0, 0.5), decimate=decimate)
    r = O.detect_onsets_changepoint(synthetic(0), RATE, baseline_s=(0.0, 0.5), decimate=1000)
    assert np.isfinite(r.baseline_mean) and r.params["decimate"] == 1000


def test_multichannel_input_is_rejected_and_unknown_method():
    with pytest.raises(SignalError, match="one channel"):
        O.detect_onsets_tkeo(np.zeros((100, 2)), RATE)
    with pytest.raises(SignalError, match="unknown onset detector"):
        O.detect_onsets(np.zeros(100), RATE, "magic")


def test_binary_segmentation_matches_reference():
    rng = np.random.default_rng(4)
    x = rng.exponential(size=400)
    x[100:180] *= 12
    x[250:300] *= 5
    cs = np.concatenate([[0.0], np.cumsum(x)])
    for penalty, max_changes in [(20.0, 10), (5.0, 3), (1e6, 5)]:
        got = O._binary_segmentation(cs, len(x), 8, penalty, max_changes)
        assert list(got) == reference_binary_segmentation(x, 8, penalty, max_changes)
