"""The fused conditioning chain against the same chain written with scipy."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from naive import scipy_causal_chain, scipy_chain

from dsp import SignalError
from dsp import chain as C

RATE = 2000.0


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
    # 5000 samples cross a re-summation point of the running RMS (every 4096 samples); 19
    # channels = two full 8-lane SIMD groups plus a remainder group of 3.
    x = np.random.default_rng(2).normal(scale=40.0, size=(5000, 19))
    offline = C.condition_emg_causal(x, RATE)
    np.testing.assert_allclose(offline, scipy_causal_chain(x), rtol=1e-9)
    s = C.StreamingConditioner(RATE, 19)
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


def _read_only(shape):
    a = np.zeros(shape)
    a.flags.writeable = False
    return a


BAD_OUTS = [
    pytest.param(lambda n: np.zeros((n, 3)), "out must", id="shape"),
    pytest.param(lambda n: [0.0], "out must", id="list"),
    pytest.param(lambda n: _read_only((n, 2)), "writable", id="read-only"),
    pytest.param(lambda n: np.zeros((n, 2), np.float32), "float64", id="float32"),
    pytest.param(lambda n: np.zeros((2, n)).T, "C-contiguous", id="fortran"),
    pytest.param(lambda n: np.zeros(2 * n), "out must", id="1-d"),
    pytest.param(lambda n: np.zeros((n, 2, 1)), "out must", id="3-d"),
]


@pytest.mark.parametrize(("make_out", "message"), BAD_OUTS)
def test_out_argument_is_checked(make_out, message):
    x = np.zeros((1000, 2))
    with pytest.raises(SignalError, match=message):
        C.condition_emg(x, RATE, out=make_out(1000))


@pytest.mark.parametrize(("make_out", "message"), BAD_OUTS)
def test_streaming_out_argument_is_checked(make_out, message):
    s = C.StreamingConditioner(RATE, 2)
    with pytest.raises(SignalError, match=message):
        s.process(np.zeros((40, 2)), out=make_out(40))
    assert s.n_seen == 0  # nothing was processed


def test_streaming_out_for_one_channel_and_in_place():
    x = np.random.default_rng(3).normal(scale=40.0, size=(300, 1))
    ref = C.condition_emg_causal(x, RATE)
    out = np.empty(300)
    y = C.StreamingConditioner(RATE, 1).process(x[:, 0], out=out)
    assert np.shares_memory(y, out)
    np.testing.assert_array_equal(out, ref[:, 0])
    block = x.copy()
    assert C.StreamingConditioner(RATE, 1).process(block, out=block) is block
    np.testing.assert_array_equal(block, ref)
