"""Envelopes against plain NumPy/scipy references."""

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
from naive import reference_moving_rms_trailing, reference_tkeo

from dsp import SignalError
from dsp import envelopes as E

RATE = 2000.0


@pytest.mark.parametrize(("n", "size"), [(3000, 100), (5000, 99), (60, 100), (7, 3), (1, 4)])
def test_centered_rms_matches_uniform_filter(n, size):
    x = np.random.default_rng(n).normal(scale=40, size=(n, 3))
    ref = np.sqrt(scipy.ndimage.uniform_filter1d(x**2, size, axis=0))
    y = E.moving_rms(x, RATE, size / RATE)
    np.testing.assert_allclose(y, ref, rtol=1e-9, atol=1e-9 * ref.max())


def test_centered_rms_in_place_kernel_and_long_run_does_not_drift():
    # 200 000 samples: the running sum is re-summed every RESUM_EVERY samples.
    rng = np.random.default_rng(5)
    x = (
        rng.normal(size=(200_000, 2))
        * np.where(np.arange(200_000) % 50_000 < 1000, 1e3, 1.0)[:, None]
    )
    ref = np.sqrt(scipy.ndimage.uniform_filter1d(x**2, 100, axis=0))
    x2 = x.copy()
    E._moving_rms_centered(x2, x2, 100)  # in place, as the fused chain uses it
    np.testing.assert_allclose(x2, ref, rtol=1e-7)


def test_trailing_rms_matches_reference():
    x = np.random.default_rng(2).normal(size=(9000, 2))
    y = E.moving_rms(x, RATE, 0.05, centered=False)
    np.testing.assert_allclose(y, reference_moving_rms_trailing(x, 100), rtol=1e-9)


def test_rectify_and_tkeo():
    x = np.random.default_rng(3).normal(size=(500, 4))
    np.testing.assert_array_equal(E.rectify(x), np.abs(x))
    np.testing.assert_allclose(E.tkeo(x), reference_tkeo(x), rtol=1e-12)
    np.testing.assert_allclose(E.tkeo(x[:, 1]), reference_tkeo(x[:, 1]), rtol=1e-12)
    # TKEO of a sinusoid A sin(w n) is A^2 sin^2(w): constant
    t = np.arange(1000)
    psi = E.tkeo(3.0 * np.sin(0.1 * t))
    np.testing.assert_allclose(psi, 9.0 * np.sin(0.1) ** 2, rtol=1e-9)


def test_linear_envelope_tracks_amplitude():
    rng = np.random.default_rng(4)
    amp = np.where((np.arange(8000) > 3000) & (np.arange(8000) < 5000), 100.0, 10.0)
    x = rng.normal(size=8000) * amp
    env = E.linear_envelope(x, RATE, 6.0)
    ref = scipy.signal.sosfiltfilt(scipy.signal.butter(2, 6.0, fs=RATE, output="sos"), np.abs(x))
    np.testing.assert_allclose(env, ref, atol=1e-9)
    assert env[4000] / env[1500] > 5
    causal = E.linear_envelope(x, RATE, 6.0, zero_phase=False)
    assert causal.shape == x.shape


def test_bad_input():
    with pytest.raises(SignalError, match="window_s"):
        E.moving_rms(np.zeros(10), RATE, 0.0)
    with pytest.raises(SignalError, match="shorter than one sample"):
        E.moving_rms(np.zeros(10), RATE, 1e-5)
    with pytest.raises(SignalError, match="3 samples"):
        E.tkeo(np.zeros(2))
    with pytest.raises(SignalError, match="NaN"):
        E.rectify(np.array([1.0, np.inf]))
