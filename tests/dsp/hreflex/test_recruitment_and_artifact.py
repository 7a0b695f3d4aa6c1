"""Recruitment fits and artifact detection on exact synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from dsp.hreflex import find_artifacts, fit_h, fit_m, h_model, m_model
from dsp.hreflex.artifact import bridge, rail_level_uv
from dsp.hreflex.recruitment import bootstrap_fits, intensity_for_m_fraction


def test_fit_m_recovers_sigmoid():
    i = np.linspace(0, 30, 40)
    p = np.array([6000.0, 14.0, 2.0, 20.0])
    f = fit_m(i, m_model(p, i))
    assert f.converged and f.r2 > 0.9999
    assert f.max_uv == pytest.approx(6020.0, rel=1e-4)
    assert f.i50_ma == pytest.approx(14.0, abs=1e-3)
    assert f.threshold_ma == pytest.approx(14.0 - 2.0 * np.log(19), abs=1e-2)
    assert f.slope_uv_per_ma == pytest.approx(6000 / 8, rel=1e-3)
    assert intensity_for_m_fraction(f, 0.25) == pytest.approx(14 + 2 * np.log(1 / 3), abs=1e-2)


def test_fit_h_recovers_peak_and_threshold():
    i = np.linspace(0, 30, 60)
    p = np.array([3000.0, 8.0, 1.0, 16.0, 1.5, 10.0])
    y = h_model(p, i)
    f = fit_h(i, y)
    grid = np.linspace(0, 30, 30001)
    true = h_model(p, grid)
    assert f.converged
    assert f.max_uv == pytest.approx(true.max(), rel=1e-3)
    assert f.intensity_at_max_ma == pytest.approx(grid[np.argmax(true)], abs=0.05)
    rise = true[: np.argmax(true)] - 10.0
    thr = grid[np.argmax(rise >= 0.05 * (true.max() - 10.0))]
    assert f.threshold_ma == pytest.approx(thr, abs=0.05)


def test_fit_h_on_noisy_data_and_bootstrap_interval_covers_truth():
    rng = np.random.default_rng(0)
    i = np.repeat(np.linspace(2, 28, 27), 2)
    pm = np.array([8000.0, 15.0, 1.5, 15.0])
    ph = np.array([3500.0, 8.0, 1.2, 14.0, 1.5, 15.0])
    m = m_model(pm, i) * rng.normal(1, 0.02, i.size)
    h = h_model(ph, i) * rng.normal(1, 0.08, i.size)
    mf, hf = fit_m(i, m), fit_h(i, h)
    ci = bootstrap_fits(i, m, h, mf, hf, n_boot=150, rng=np.random.default_rng(1))
    grid = np.linspace(2, 28, 5001)
    ratio = h_model(ph, grid).max() / (8015.0)
    assert ci["hmax_mmax"][0] < ratio < ci["hmax_mmax"][1]
    assert abs(hf.max_uv / mf.max_uv / ratio - 1) < 0.08
    assert hf.ci["max_uv"][0] < hf.max_uv < hf.ci["max_uv"][1]


def test_too_few_points_do_not_converge():
    assert not fit_m([1, 2], [3, 4]).converged
    assert not fit_h([1, 2, 3], [3, 4, 5]).converged


def test_find_artifacts_onset_and_saturation():
    rng = np.random.default_rng(2)
    rate = 5000.0
    x = rng.normal(0, 5, 20000)
    events = np.array([3000, 9000, 15000])
    for e, late in zip(events, (0, 2, 5), strict=True):
        x[e + late : e + late + 10] = 9000.0  # 2 ms at the rail
        x[e + late + 10 : e + late + 25] += 2000 * np.exp(-np.arange(15) / 3)
    x = np.clip(x, -9000, 9000)
    assert rail_level_uv(x) == 9000.0
    found = find_artifacts(x, rate, events)
    assert [a.onset_index - e for a, e in zip(found, events, strict=True)] == [0, 2, 5]
    assert [a.offset_ms for a in found] == pytest.approx([0.0, 0.4, 1.0])
    assert all(a.saturated_ms == pytest.approx(2.0) for a in found)
    assert all(a.blank_end_index - a.onset_index == 10 + 3 for a in found)  # 2 ms + 0.5 ms guard
    fixed = find_artifacts(x, rate, events, blank_ms=4.0)
    assert all(a.blank_end_index - a.onset_index == 20 for a in fixed)


def test_no_artifact_falls_back_to_event():
    x = np.random.default_rng(3).normal(0, 5, 5000)
    (a,) = find_artifacts(x, 5000.0, np.array([2000]))
    assert not a.detected and a.onset_index == 2000 and np.isnan(a.offset_ms)


def test_bridge_is_a_straight_line():
    y = np.arange(20.0)
    y[5:10] = 1000.0
    bridge(y, 5, 10)
    # neighbours: mean(3,4)=3.5 and mean(10,11)=10.5; line through them
    assert np.allclose(np.diff(y[4:11]), np.diff(y[4:11])[0], atol=0.6)
    assert y[5:10].max() < 11
    two = np.tile(np.arange(20.0)[:, None], (1, 2))
    two[5:10] = -50
    bridge(two, 5, 10)
    assert np.all(two[5:10] > 0)


def test_analytic_jacobians_match_finite_differences():
    from dsp.hreflex.recruitment import h_jacobian, m_jacobian

    i = np.linspace(0, 40, 57)
    for model, jac, p in (
        (m_model, m_jacobian, np.array([6000.0, 18.0, 2.5, 20.0])),
        (h_model, h_jacobian, np.array([3000.0, 10.0, 1.5, 20.0, 2.5, 15.0])),
    ):
        num = np.empty((i.size, p.size))
        for k in range(p.size):
            dp = np.zeros_like(p)
            dp[k] = 1e-6 * max(abs(p[k]), 1.0)
            num[:, k] = (model(p + dp, i) - model(p - dp, i)) / (2 * dp[k])
        np.testing.assert_allclose(jac(p, i), num, rtol=1e-5, atol=1e-6 * np.abs(num).max())
