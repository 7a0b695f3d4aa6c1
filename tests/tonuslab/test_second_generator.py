"""The second, differently built H-reflex generator (issue 17 item 4): its truth is what a
perfect estimator would report, and the analysis's figures on it are held where they stand."""

import numpy as np
import pytest

from tonuslab.validation import second_hreflex as G


def test_truth_is_the_sampled_noiseless_waves():
    s = G.generate_session(3)
    t = s["truth"]
    rate = s["rate_hz"]
    t_ms = np.arange(int(0.08 * rate)) / rate * 1000.0
    assert np.ptp(G.m_shape(t_ms - t["m_latency_ms"])) == pytest.approx(1.0, abs=0.02)
    assert t["hmax_mmax"] == pytest.approx(t["hmax_p2p_uv"] / t["mmax_p2p_uv"])
    assert 0.1 < t["hmax_mmax"] < 0.8
    # the ladder reaches a supramaximal intensity and the pulses are 10-12 s apart
    gaps = np.diff(s["stim_sample_index"]) / rate
    assert gaps.min() >= 10.0 - 1e-6 and gaps.max() <= 12.0 + 1e-6


@pytest.mark.slow
def test_hmax_mmax_on_the_second_generator_holds_its_recorded_figures():
    """Recorded in docs/validation.md (40 sessions): coverage 82.5 %, within 5 % in 47.5 %.
    The issue's targets (coverage >= 90 %, within 5 % in >= 95 %) are not met yet; this test
    keeps the figures from getting worse while the estimator is improved."""
    r = G.run(20)
    assert r["n_estimated"] == 20
    assert r["coverage_95"] >= 0.75 and r["median_abs_error"] <= 0.08
