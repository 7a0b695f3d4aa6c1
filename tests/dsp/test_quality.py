"""Signal quality on channels with known defects."""

import json

import numpy as np
import pytest
from naive import reference_gaps, reference_rail_samples, reference_snr, reference_window_sd

from dsp import SignalError
from dsp import quality as Q

RATE = 2000.0


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


@pytest.mark.parametrize(
    "rails", [(500, -500), (500, 500), (-np.inf, 500), (np.nan, 500), (1, 2, 3), "wide", 500]
)
def test_bad_rails_are_a_signal_error(rails):
    with pytest.raises(SignalError, match="rails_uv"):
        Q.channel_quality(np.zeros(4000), RATE, rails_uv=rails)


# ---------------------------------------------------------------------------------- SNR


def emg(rate_hz=RATE, seconds=20.0, noise_uv=5.0, burst_uv=0.0, hum_uv=0.0, line_hz=50.0, seed=3):
    rng = np.random.default_rng(seed)
    n = int(seconds * rate_hz)
    t = np.arange(n) / rate_hz
    bursts = (np.sin(2 * np.pi * 0.25 * t) > 0.5).astype(float)  # 1/3 of the time, 1.33 s each
    x = rng.normal(scale=noise_uv, size=n) + bursts * rng.normal(scale=burst_uv, size=n)
    return x + hum_uv * np.sin(2 * np.pi * line_hz * t), bursts.mean()


@pytest.mark.parametrize("rate_hz", [500.0, 1000.0, 2000.0, 4000.0, 10000.0])
@pytest.mark.parametrize("kind", ["noise", "quantised", "hum50", "hum60", "strong hum"])
def test_resting_channel_has_no_activity_and_no_snr_problem(rate_hz, kind):
    """Amplifier noise alone (and hum) is a healthy resting channel: SNR is undefined (NaN),
    activity 0, and no "low SNR" problem."""
    hum = {"hum50": 10.0, "hum60": 10.0, "strong hum": 300.0}.get(kind, 0.0)
    x, _ = emg(rate_hz, 60.0, hum_uv=hum, line_hz=60.0 if kind == "hum60" else 50.0)
    if kind == "quantised":
        x = np.round(x / 2.0) * 2.0  # 2 uV LSB
    q = Q.channel_quality(x, rate_hz, line_hz=60.0 if kind == "hum60" else 50.0)[0]
    assert np.isnan(q.snr_db) and q.activity_fraction == 0.0
    assert not any("SNR" in p for p in q.problems)
    if kind in ("noise", "quantised"):
        assert q.ok, q.problems
    assert json.loads(json.dumps(q.to_dict()))["snr_db"] is None


@pytest.mark.parametrize(
    ("burst_uv", "hum_uv", "flagged"),
    [(80.0, 0.0, False), (20.0, 0.0, False), (10.0, 0.0, True), (80.0, 20.0, False)],
)
def test_snr_of_bursts_over_noise(burst_uv, hum_uv, flagged):
    """SNR is activity power over resting power in the 20-450 Hz band; white noise and bursts
    keep 430/1000 of their power there, the hum all of it. The floor (quietest tenth of the
    windows) reads up to about 2 dB high for Gaussian noise. Low SNR is flagged only for weak
    activity."""
    x, duty = emg(burst_uv=burst_uv, hum_uv=hum_uv)
    q = Q.channel_quality(x, RATE)[0]
    rest = 0.43 * 5.0**2 + hum_uv**2 / 2
    expected = 10 * np.log10((0.43 * burst_uv**2 + rest) / rest)
    assert expected - 0.5 < q.snr_db < expected + 2.5
    assert q.activity_fraction == pytest.approx(duty, abs=0.05)
    assert any("low SNR" in p for p in q.problems) == flagged
    snr, activity = reference_snr(x, RATE)
    assert q.snr_db == pytest.approx(snr, rel=1e-9) and q.activity_fraction == activity


def test_snr_with_hum_is_lower_than_without():
    """Hum is part of the floor: it lowers the SNR of the same bursts, and hides them (no
    activity) once the bursts are under 6 dB above noise and hum."""
    clean = Q.channel_quality(emg(burst_uv=40.0)[0], RATE)[0]
    hummed = Q.channel_quality(emg(burst_uv=40.0, hum_uv=15.0)[0], RATE)[0]
    assert hummed.snr_db < clean.snr_db - 5.0
    assert any("low SNR" in p for p in hummed.problems)
    drowned = Q.channel_quality(emg(burst_uv=40.0, hum_uv=30.0)[0], RATE)[0]
    assert np.isnan(drowned.snr_db) and any("powerline" in p for p in drowned.problems)


def test_all_zero_channel_has_no_snr():
    q = Q.channel_quality(np.zeros((8000, 2)), RATE)
    for c in q:
        assert np.isnan(c.snr_db) and np.isnan(c.activity_fraction)
        assert c.flat_fraction == 1.0 and not any("SNR" in p for p in c.problems)


def test_snr_matches_reference_at_other_rates_and_across_gaps():
    for rate in (500.0, 4000.0):
        x, _ = emg(rate, burst_uv=30.0, seed=7)
        q = Q.channel_quality(x, rate)[0]
        snr, activity = reference_snr(x, rate)
        assert q.snr_db == pytest.approx(snr, rel=1e-9) and q.activity_fraction == activity
    # A gap splits the windows: the SNR is of the received runs, close to the gapless one.
    x, _ = emg(burst_uv=30.0, seed=8)
    gappy = x.copy()
    gappy[10000:10500] = np.nan
    assert Q.channel_quality(gappy, RATE)[0].snr_db == pytest.approx(
        Q.channel_quality(x, RATE)[0].snr_db, abs=0.5
    )
