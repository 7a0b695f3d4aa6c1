"""The fused conditioning chain against the same chain written with scipy."""

import itertools

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from dsp import SignalError
from dsp import chain as C

RATE = 2000.0


def scipy_chain(x, rate_hz=RATE, line_hz=50.0, size=100):
    bp = scipy.signal.butter(4, [20, 450], btype="bandpass", fs=rate_hz, output="sos")
    y = scipy.signal.sosfiltfilt(bp, x, axis=0)
    if line_hz is not None:
        nt = np.array([np.concatenate(scipy.signal.iirnotch(line_hz, 30, fs=rate_hz))])
        y = scipy.signal.sosfiltfilt(nt, y, axis=0)
    return np.sqrt(scipy.ndimage.uniform_filter1d(np.abs(y) ** 2, size, axis=0))


def scipy_causal_chain(x, rate_hz=RATE, size=100):
    """Slow reference of the streaming chain: sosfilt, |.|, trailing mean of squares."""
    bp = scipy.signal.butter(4, [20, 450], btype="bandpass", fs=rate_hz, output="sos")
    nt = np.array([np.concatenate(scipy.signal.iirnotch(50.0, 30, fs=rate_hz))])
    y = np.abs(scipy.signal.sosfilt(np.vstack([bp, nt]), x, axis=0))
    cs = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), y**2]), axis=0)
    n = np.arange(1, x.shape[0] + 1)
    lo = np.maximum(n - size, 0)
    return np.sqrt((cs[n] - cs[lo]) / (n - lo)[:, None])


@pytest.mark.parametrize("n_channels", [1, 3, 8, 16, 19])
def test_chain_matches_scipy(n_channels):
    x = np.random.default_rng(n_channels).normal(scale=40.0, size=(6000, n_channels))
    x += 30 * np.sin(2 * np.pi * 50 * np.arange(6000) / RATE)[:, None]
    y = C.condition_emg(x, RATE)
    ref = scipy_chain(x)
    np.testing.assert_allclose(y, ref, rtol=1e-9, atol=1e-9 * ref.max())


def test_chain_in_place_one_channel_and_no_notch():
    x = np.random.default_rng(0).normal(scale=40.0, size=(5000, 2))
    ref = scipy_chain(x, line_hz=None)
    x2 = x.copy()
    y = C.condition_emg(x2, RATE, line_hz=None, out=x2)
    assert np.shares_memory(y, x2)
    np.testing.assert_allclose(x2, ref, rtol=1e-9, atol=1e-9 * ref.max())
    one = C.condition_emg(x[:, 1], RATE, line_hz=None)
    assert one.shape == (5000,)
    np.testing.assert_allclose(one, ref[:, 1], rtol=1e-9, atol=1e-9 * ref.max())


def test_streaming_chain_matches_causal_reference():
    x = np.random.default_rng(1).normal(scale=40.0, size=(3000, 4))
    y = C.condition_emg_causal(x, RATE)
    np.testing.assert_allclose(y, scipy_causal_chain(x), rtol=1e-9)


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=10))
def test_streaming_chain_is_block_size_independent(cuts):
    # 5000 samples cross a re-summation point of the running RMS (every 4096 samples).
    x = np.random.default_rng(2).normal(scale=40.0, size=(5000, 3))
    offline = C.condition_emg_causal(x, RATE)
    s = C.StreamingConditioner(RATE, 3)
    edges = [0, *sorted(cuts), 5000]
    parts = [s.process(x[a:b]) for a, b in itertools.pairwise(edges)]
    np.testing.assert_array_equal(np.vstack(parts), offline)


def test_streaming_out_and_errors():
    s = C.StreamingConditioner(RATE, 2)
    block = np.zeros((40, 2))
    out = np.empty((40, 2))
    assert s.process(block, out=out) is out
    with pytest.raises(SignalError, match="channels"):
        s.process(np.zeros((40, 3)))
    with pytest.raises(SignalError, match="NaN"):
        s.process(np.full((40, 2), np.nan))
    with pytest.raises(SignalError, match="Nyquist"):
        C.StreamingConditioner(500.0, 2)
    with pytest.raises(SignalError, match="samples"):
        C.condition_emg(np.zeros((10, 2)), RATE)
    with pytest.raises(SignalError, match="band_hz"):
        C.condition_emg(np.zeros((1000, 2)), RATE, band_hz=20)


def test_out_argument_is_checked():
    x = np.zeros((1000, 2))
    with pytest.raises(SignalError, match="out must"):
        C.condition_emg(x, RATE, out=np.zeros((1000, 3)))
    with pytest.raises(SignalError, match="out must"):
        C.condition_emg(x, RATE, out=[0.0])
    ro = np.zeros((1000, 2))
    ro.flags.writeable = False
    with pytest.raises(SignalError, match="writable"):
        C.condition_emg(x, RATE, out=ro)
