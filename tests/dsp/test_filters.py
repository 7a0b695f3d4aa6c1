"""Filters: design, zero-phase against scipy.signal.sosfiltfilt, causal and streaming."""

import itertools

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st
from naive import reference_sosfilt

from dsp import SignalError
from dsp import filters as F

RATE = 2000.0


@pytest.fixture(scope="module")
def noise():
    # 13 channels: one full SIMD group of 8 and a remainder group of 5
    return np.random.default_rng(42).normal(scale=50.0, size=(4000, 13))


def test_design_matches_scipy():
    sos = F.design_bandpass(20, 450, RATE, 4)
    ref = scipy.signal.butter(4, [20, 450], btype="bandpass", fs=RATE, output="sos")
    np.testing.assert_allclose(sos, ref, rtol=0, atol=1e-14)
    assert F.design_highpass(10, RATE, 2).shape == (1, 6)
    assert F.design_lowpass(6, RATE, 4).shape == (2, 6)


def test_notch_comb_removes_harmonics_and_skips_above_nyquist():
    sos = F.design_notch(RATE, 50.0, harmonics=30)
    assert sos.shape[0] == 19  # 50..950 Hz, 1000 Hz is Nyquist
    t = np.arange(40000) / RATE
    line = np.sin(2 * np.pi * 50 * t) + 0.5 * np.sin(2 * np.pi * 150 * t)
    y = F.notch(line, RATE, 50.0, harmonics=3)
    assert np.abs(y[4000:-4000]).max() < 1e-3
    sixty = F.design_notch(RATE, 60.0, harmonics=2)
    _w, h = scipy.signal.sosfreqz(sixty, worN=[60.0, 120.0, 90.0], fs=RATE)
    assert abs(h[0]) < 1e-6 and abs(h[1]) < 1e-6 and abs(h[2]) > 0.9


@pytest.mark.parametrize(
    "sos",
    [
        scipy.signal.butter(4, [20, 450], btype="bandpass", fs=RATE, output="sos"),
        scipy.signal.butter(2, 6, fs=RATE, output="sos"),
        scipy.signal.butter(5, 10, btype="highpass", fs=RATE, output="sos"),
        np.array([np.concatenate(scipy.signal.iirnotch(50, 30, fs=RATE))]),
        # 10 sections: beyond the unrolled SIMD kernels (one row at a time)
        np.vstack(
            [scipy.signal.butter(4, [20, 450], btype="bandpass", fs=RATE, output="sos")]
            + [np.concatenate(scipy.signal.iirnotch(50 * k, 30, fs=RATE)) for k in range(1, 7)]
        ),
    ],
)
def test_zero_phase_matches_sosfiltfilt(noise, sos):
    y = F.apply_zero_phase(noise, sos)
    ref = scipy.signal.sosfiltfilt(sos, noise, axis=0)
    scale = np.abs(ref).max()
    # Edges included: we use scipy's odd extension and initial conditions.
    assert np.abs(y - ref).max() <= 1e-9 * scale
    one = F.apply_zero_phase(noise[:, 2], sos)
    assert one.shape == (noise.shape[0],)
    np.testing.assert_array_equal(one, y[:, 2])


def test_zero_phase_in_place(noise):
    sos = F.design_bandpass(20, 450, RATE)
    x = noise.copy()
    y = F.apply_zero_phase(x, sos, out=x)
    assert y is x
    np.testing.assert_allclose(x, scipy.signal.sosfiltfilt(sos, noise, axis=0), rtol=0, atol=1e-9)


def test_many_channels_and_groups():
    x = np.random.default_rng(1).normal(size=(500, 21))
    sos = F.design_bandpass(20, 450, RATE)
    np.testing.assert_allclose(
        F.apply_zero_phase(x, sos), scipy.signal.sosfiltfilt(sos, x, axis=0), atol=1e-12
    )


def test_causal_equals_reference_and_scipy(noise):
    sos = F.design_bandpass(20, 450, RATE)
    x = noise[:300]
    y = F.apply_causal(x, sos)
    np.testing.assert_array_equal(y, scipy.signal.sosfilt(sos, x, axis=0))
    np.testing.assert_allclose(y, reference_sosfilt(sos, x), rtol=0, atol=1e-10)
    zi = np.random.default_rng(0).normal(size=(sos.shape[0], 2, x.shape[1]))
    np.testing.assert_allclose(
        F.apply_causal(x, sos, zi=zi), reference_sosfilt(sos, x, zi), rtol=0, atol=1e-10
    )


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=700), max_size=12))
def test_streaming_equals_offline_whatever_the_blocks(cuts):
    # 19 channels: two full 8-lane SIMD groups plus a remainder group of 3.
    rng = np.random.default_rng(7)
    x = rng.normal(scale=30.0, size=(700, 19))
    sos = np.vstack([F.design_bandpass(20, 450, RATE), F.design_notch(RATE, 50.0, 2)])
    offline = F.apply_causal(x, sos)
    np.testing.assert_array_equal(offline, scipy.signal.sosfilt(sos, x, axis=0))
    f = F.StreamingFilter(sos, n_channels=19)
    edges = [0, *sorted(cuts), 700]
    parts = [f.process(x[a:b]) for a, b in itertools.pairwise(edges)]
    np.testing.assert_array_equal(np.vstack(parts), offline)


def test_streaming_reset_and_channel_check():
    f = F.StreamingFilter(F.design_lowpass(10, RATE, 2), n_channels=2)
    a = f.process(np.ones((50, 2)))
    f.reset()
    np.testing.assert_array_equal(f.process(np.ones((50, 2))), a)
    with pytest.raises(SignalError, match="channels"):
        f.process(np.ones((5, 3)))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: F.design_bandpass(20, 1000, RATE), "Nyquist"),
        (lambda: F.design_bandpass(450, 20, RATE), "below"),
        (lambda: F.design_lowpass(10, -5), "rate_hz"),
        (lambda: F.design_lowpass(10, RATE, order=0), "order"),
        (lambda: F.bandpass(np.array([1.0, np.nan] * 100), RATE), "NaN"),
        (lambda: F.bandpass(np.zeros((10, 2, 2)), RATE), "shape"),
        (lambda: F.bandpass(np.array(["a"] * 100), RATE), "dtype"),
        (lambda: F.bandpass(np.zeros(20), RATE), "samples"),
        (lambda: F.apply_causal(np.zeros(20), np.zeros((2, 5))), "sections"),
        (lambda: F.design_notch(RATE, 50, harmonics=0), "harmonics"),
    ],
)
def test_bad_input_gives_one_line_signal_error(call, message):
    with pytest.raises(SignalError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_integer_input_is_accepted():
    x = np.arange(400, dtype=np.int32) % 7
    np.testing.assert_allclose(
        F.lowpass(x, RATE, 100.0),
        scipy.signal.sosfiltfilt(F.design_lowpass(100.0, RATE), x.astype(float)),
        atol=1e-12,
    )
