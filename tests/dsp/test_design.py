"""dsp._design (NumPy filter design) against scipy.signal, the reference."""

import numpy as np
import pytest
import scipy.signal

from dsp import _design as D

RATE = 2000.0


@pytest.mark.parametrize(
    ("order", "wn", "btype"),
    [
        (4, [20, 450], "bandpass"),
        (3, [20, 450], "bandpass"),
        (2, [30, 300], "bandpass"),
        (8, [100, 300], "bandpass"),
        (4, 6.0, "lowpass"),
        (2, 50.0, "lowpass"),
        (5, 450.0, "lowpass"),
        (1, 20.0, "highpass"),
        (4, 10.0, "highpass"),
        (5, 10.0, "highpass"),
    ],
)
def test_butterworth_matches_scipy(order, wn, btype):
    ours = D.butter_sos(order, wn, btype, RATE)
    ref = scipy.signal.butter(order, wn, btype=btype, fs=RATE, output="sos")
    assert ours.shape == ref.shape
    if order % 2 == 0:  # odd orders: the real pole's zero may sit in another section
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-13 * np.abs(ref).max())
    _, h1 = scipy.signal.sosfreqz(ours, worN=2048, fs=RATE)
    _, h2 = scipy.signal.sosfreqz(ref, worN=2048, fs=RATE)
    np.testing.assert_allclose(h1, h2, rtol=0, atol=1e-11)
    np.testing.assert_allclose(D.sosfilt_zi(ours), scipy.signal.sosfilt_zi(ours), atol=1e-11)


@pytest.mark.parametrize(
    ("f0", "q", "rate"), [(50.0, 30.0, 2000.0), (60.0, 10.0, 1000.0), (150.0, 35.0, 5000.0)]
)
def test_notch_matches_scipy(f0, q, rate):
    b, a = scipy.signal.iirnotch(f0, q, fs=rate)
    np.testing.assert_allclose(D.iirnotch(f0, q, rate), np.concatenate([b, a]), atol=1e-15)
    sos = D.iirnotch(f0, q, rate)[None, :]
    np.testing.assert_allclose(D.sosfilt_zi(sos), scipy.signal.sosfilt_zi(sos), atol=1e-12)
