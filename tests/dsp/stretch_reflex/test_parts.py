"""The pieces of the stretch-reflex analysis: line fit and bootstrap, clonus beats, catch dip."""

from __future__ import annotations

import numpy as np
import pytest

from dsp.quality import _stuck_fractions, channel_quality
from dsp.stretch_reflex._emg import burst_offset, clonus_episodes
from dsp.stretch_reflex._fit import bootstrap_lines, fit_dsrt_line, ols, robust_inliers
from dsp.stretch_reflex._kinematics import find_stretches, finite_runs, smooth_kinematics
from dsp.stretch_reflex._stretches import _catch, _dip_depth


def test_ols_recovers_exact_line():
    v = np.array([10.0, 50, 100, 200, 300])
    a, b, r2 = ols(v, 80 - 0.2 * v)
    assert a == pytest.approx(80) and b == pytest.approx(-0.2) and r2 == pytest.approx(1.0)
    assert np.isnan(ols(np.array([5.0, 5.0]), np.array([1.0, 2.0]))[0])


def test_bootstrap_matches_a_loop_and_is_seeded():
    rng = np.random.default_rng(1)
    v = rng.uniform(20, 300, 15)
    d = 70 - 0.15 * v + rng.normal(0, 2, 15)
    ia, sb = bootstrap_lines(v, d, 50, np.random.default_rng(7))
    idx = np.random.default_rng(7).integers(0, 15, size=(50, 15))
    for k in range(50):
        a, b, _ = ols(v[idx[k]], d[idx[k]])
        assert ia[k] == pytest.approx(a) and sb[k] == pytest.approx(b)


def test_interval_coverage_on_a_linear_model():
    # 300 sessions of 16 stretches, Gaussian DSRT scatter: the 95% intervals cover ~95%
    rng = np.random.default_rng(2)
    cover_l = cover_m = 0
    n = 300
    for _ in range(n):
        v = np.repeat([40.0, 90, 160, 230], 4) * rng.uniform(0.85, 1.15, 16)
        d = 60 - 0.2 * v + rng.normal(0, 3, 16)
        f = fit_dsrt_line(v, d, n_boot=400, rng=rng)
        cover_l += f.tsrt_ci_deg[0] <= 60 <= f.tsrt_ci_deg[1]
        cover_m += f.mu_ci_s[0] <= 0.2 <= f.mu_ci_s[1]
    assert 0.91 <= cover_l / n <= 0.99
    assert 0.91 <= cover_m / n <= 0.99


def test_fit_under_determined_gives_nan():
    f = fit_dsrt_line(
        np.array([50.0, 50.0, 50.0]), np.array([1.0, 2, 3]), n_boot=10, rng=np.random.default_rng(0)
    )
    assert np.isnan(f.tsrt_deg) and np.isnan(f.tsrt_ci_deg[0])


def _beats(rate, t0, f, n, amp, dur, jitter=0.0, seed=0, fade_s=None, level=3.0):
    """Envelope (uV) with ``n`` Gaussian beats at ``f`` Hz from ``t0`` on a ``level`` uV floor;
    ``fade_s``: the beat amplitude decays as exp(-(t - t0) / fade_s) (a fatigable clonus)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(dur * rate)) / rate
    env = np.full(t.shape, level) + rng.normal(0, 0.3, t.shape)
    for k in range(n):
        tk = t0 + k / f + rng.normal(0, jitter)
        a = amp if fade_s is None else amp * np.exp(-(k / f) / fade_s)
        env += a * np.exp(-0.5 * ((t - tk) / 0.012) ** 2)
    return env


def test_clonus_episode_counts_beats_and_rate():
    rate = 2000.0
    env = _beats(rate, 1.0, 6.0, 30, 60.0, 8.0, jitter=0.004)
    eps = clonus_episodes(env, rate, 0, len(env), 0.3, min_beats=4)
    assert len(eps) == 1
    ep = eps[0]
    assert ep.n_beats == 30
    assert ep.frequency_hz == pytest.approx(6.0, abs=0.15)
    assert ep.start_s == pytest.approx(1.0, abs=0.01)
    assert ep.end_s - ep.start_s == pytest.approx(29 / 6.0, abs=0.05)  # first to last peak
    assert ep.duration_s == pytest.approx(30 / 6.0, abs=0.05)  # 30 beats = 30 periods


def test_fading_clonus_is_followed_to_its_last_beats():
    # 31 beats at 6 Hz fading to 5 % of the first (the simulator's fatigable clonus) over
    # 15 uV of tonic activity: the strong beats start the episode, the rhythm is then tracked
    # through the weak ones (a prominence of 8 x the noise SD is still required)
    rate = 2000.0
    env = _beats(rate, 1.0, 6.0, 31, 60.0, 8.0, jitter=0.004, fade_s=5.0 / 3.0, level=15.0)
    ep = clonus_episodes(env, rate, 0, len(env), 0.3, min_beats=4)
    assert len(ep) == 1
    assert ep[0].n_beats >= 27
    assert ep[0].duration_s == pytest.approx(31 / 6.0, abs=0.7)
    # without tracking (weak beats must stand out of the running median as much as strong
    # ones) the episode stops where the beats sink below the tonic level (after about 14)
    short = clonus_episodes(env, rate, 0, len(env), 0.3, min_beats=4, track_prominence=1.0)
    assert short[0].n_beats < 20


def test_clonus_needs_regular_beats_and_enough_of_them():
    rate = 2000.0
    few = _beats(rate, 1.0, 6.0, 3, 60.0, 4.0)
    assert clonus_episodes(few, rate, 0, len(few), 0.3, min_beats=4) == []
    rng = np.random.default_rng(3)
    irregular = np.full(int(6 * rate), 3.0)
    t = np.arange(len(irregular)) / rate
    for tk in np.cumsum(rng.uniform(0.09, 0.5, 12)):
        irregular += 60 * np.exp(-0.5 * ((t - tk) / 0.012) ** 2)
    assert clonus_episodes(irregular, rate, 0, len(irregular), 0.3, min_beats=4) == []


def _ramp(v0, v1, n):
    """``n`` samples from ``v0`` towards ``v1`` (raised cosine)."""
    return v0 + (v1 - v0) * 0.5 * (1 - np.cos(np.pi * np.arange(n) / n))


def test_catch_with_and_without_release_and_not_at_the_stretch_end():
    # 500 Hz samples from the reflex onset; catch window 200 samples (0.4 s), 50 ms = 25 samples
    kw = {"limit": 200, "min_drop": 40.0, "min_rise": 10.0, "min_residual": 40.0, "window": 25}
    # fall 200 -> 80 deg/s in 40 ms, release back to 150, then the end of the stretch
    released = np.concatenate(
        [np.full(30, 200.0), _ramp(200, 80, 20), _ramp(80, 150, 30), _ramp(150, 0, 80)]
    )
    caught, release, k = _catch(released, **kw)
    assert caught and release
    assert released[k] == pytest.approx(np.min(released[30:80]), abs=1.0)  # velocity minimum
    # fall 200 -> 80 deg/s in 40 ms, then the stretch goes on at 80 deg/s: a catch, no release
    held = np.concatenate([np.full(30, 200.0), _ramp(200, 80, 20), np.full(150, 80.0)])
    caught, release, k = _catch(held, **kw)
    assert caught and not release
    assert 30 <= k <= 55  # where the fall levels off
    # the ordinary end of a stretch: the velocity falls to rest, never levels off while moving
    end = np.concatenate([np.full(30, 200.0), _ramp(200, 0, 100), np.zeros(50)])
    assert _catch(end, **kw) == (False, False, -1)
    # a gentle slowing by the examiner (200 -> 150 deg/s over 0.3 s) then a steady pace: not
    # abrupt enough for a catch (40 deg/s are lost in no 50 ms window)
    gentle = np.concatenate([np.full(30, 200.0), _ramp(200, 150, 150), np.full(150, 150.0)])
    assert _catch(gentle, **kw)[0] is False
    # a smooth stretch: no drop at all
    smooth = np.concatenate([np.linspace(0, 200, 50), np.linspace(200, 0, 80)])
    assert _catch(smooth, **{**kw, "limit": 40})[0] is False
    assert _dip_depth(smooth)[0] == pytest.approx(0.0)


def test_kinematics_and_segmentation_with_a_gap():
    rate = 500.0
    t = np.arange(int(12 * rate)) / rate
    angle = np.full(t.shape, 10.0)
    for t0 in (1.0, 6.0):  # two 90-degree stretches of 1 s (raised cosine)
        m = (t >= t0) & (t < t0 + 1.0)
        angle[m] = 10 + 45 * (1 - np.cos(np.pi * (t[m] - t0)))
        angle[t >= t0 + 1.0] = 100.0
        back = (t >= t0 + 2.0) & (t < t0 + 4.0)
        angle[back] = 100 - 45 * (1 - np.cos(np.pi * (t[back] - t0 - 2.0) / 2.0))
        angle[t >= t0 + 4.0] = 10.0
    angle[int(8.5 * rate) : int(8.6 * rate)] = np.nan
    assert finite_runs(angle) == [(0, int(8.5 * rate)), (int(8.6 * rate), len(angle))]
    a, v, _ = smooth_kinematics(angle, rate, 20.0)
    assert np.all(np.isnan(v[int(8.5 * rate) : int(8.6 * rate)]))
    assert np.nanmax(v) == pytest.approx(45 * np.pi, rel=0.02)  # peak of the raised cosine
    moves = find_stretches(
        a,
        v,
        rate,
        on_velocity_deg_s=5.0,
        rest_velocity_deg_s=1.0,
        min_excursion_deg=15.0,
        merge_gap_s=0.25,
    )
    assert len(moves) == 2
    for m, t0 in zip(moves, (1.0, 6.0), strict=True):
        assert m.start / rate == pytest.approx(t0, abs=0.04)
        assert a[m.end] == pytest.approx(100.0, abs=0.5)


def _burst_offset_reference(env, onset, stop, level, quiet):
    run = 0
    for k, below in enumerate(env[onset:stop] < level):
        run = run + 1 if below else 0
        if run >= quiet:
            return onset + k - quiet + 1
    return stop


def test_burst_offset_matches_a_loop():
    rng = np.random.default_rng(0)
    for _ in range(300):
        env = rng.random(400)
        onset = int(rng.integers(0, 100))
        stop = int(rng.integers(onset, 400))
        quiet = int(rng.integers(1, 6))
        got = burst_offset(env, onset, stop, 0.7, quiet)
        assert got == _burst_offset_reference(env, onset, stop, 0.7, quiet)


def test_robust_inliers_drop_wild_dsrts_only():
    rng = np.random.default_rng(4)
    v = np.repeat([40.0, 90, 160, 230, 300], 4) * rng.uniform(0.9, 1.1, 20)
    d = 60 - 0.2 * v + rng.normal(0, 0.8, 20)
    assert robust_inliers(v, d).all()
    d[[3, 11]] -= [15.0, 25.0]  # two false early onsets
    keep = robust_inliers(v, d)
    assert list(np.flatnonzero(~keep)) == [3, 11]
    assert robust_inliers(v[:5], d[:5]).all()  # too few points to judge


@pytest.mark.parametrize("case", ["clean", "flat", "clipped", "gap_and_flat", "sparse_gaps"])
def test_stuck_fractions_match_channel_quality(case):
    # the analysis' own flat / saturation test gives dsp.quality.channel_quality's figures
    rng = np.random.default_rng(0)
    x = rng.normal(0, 5, 20000)
    if case == "flat":
        x[:12000] = 0.0
    elif case == "clipped":
        x = np.clip(x, -6, 6)
    elif case == "gap_and_flat":
        x[5000:5100] = np.nan
        x[8000:16000] = 3.0
    elif case == "sparse_gaps":
        x[::7] = np.nan
    q = channel_quality(x, 2000.0)[0]
    sat, flat = _stuck_fractions(x, 2000.0)
    assert sat == pytest.approx(q.saturation_fraction)
    assert flat == pytest.approx(q.flat_fraction, nan_ok=True)
