"""analyze_hreflex on the virtual patient: quick default checks; the 50-seed run is slow-marked."""

from __future__ import annotations

import numpy as np
import pytest

from tonuslab.validation import hreflex as V


@pytest.mark.parametrize(
    "profile,seed,rate", [("soleus_spastic", 1, 5000.0), ("fcr_healthy", 2, 8000.0)]
)
def test_one_session_against_the_truth(profile, seed, rate):
    """Budgets from these two (seeded, deterministic) quick sessions, measured at the commit that
    set them: Hmax/Mmax vs the same fit on the true amplitudes 0.1% / 0.5%, vs the model 6.9% /
    8.1% (31 ladder pulses: twice the 50-seed spread), Mmax 2.3% / 0.2%, latencies <= 0.05 ms,
    depression vs the realised ratios <= 0.013."""
    rec = V.simulate(profile, seed, rate, quick=True)
    res = V.analyse(rec, n_boot=30, seed=seed)
    err = V.compare(res, rec.truth)
    # measurement error (same fit on the true pulse amplitudes of the same pulses) is small ...
    assert abs(err["hmax_mmax_rel_vs_realised"]) < 0.01
    assert abs(err["mmax_rel_vs_realised"]) < 0.005
    assert abs(err["mmax_rel"]) < 0.03
    # ... latencies well within the 0.5 ms budget, with the artifact saturating the ADC
    assert abs(err["m_latency_ms"]) < 0.2 and abs(err["h_latency_ms"]) < 0.2
    assert err["saturated_ms_max"] >= 1.5
    assert err["m_sweep_rel_median_saturated_2ms"] is None or (
        err["m_sweep_rel_median_saturated_2ms"] < 0.01
    )
    covered = []
    for kind in ("rdd", "ppd"):
        vals = [v for v in err[kind].values() if v]
        assert len(vals) == (4 if kind == "rdd" else 2)
        assert all(abs(v["err_realised"]) < 0.02 for v in vals)
        covered += [v["ci_covers_model"] for v in vals]
    # the depression intervals cover the model's ratio (5 and 6 of 6 here)
    assert sum(covered) >= 5
    # against the model's Hmax/Mmax: sampling variability of a 31-pulse ladder on top
    assert abs(err["hmax_mmax_rel"]) < 0.10


def test_table_formats_and_is_markdown():
    rows = []
    for seed in range(2):
        rec = V.simulate("soleus_healthy", seed, 4000.0, quick=True)
        row = V.compare(V.analyse(rec, n_boot=20, seed=seed), rec.truth)
        row.update(profile="soleus_healthy", seed=seed, emg_rate_hz=4000.0)
        rows.append(row)
    result = {
        "suite": "hreflex", "seeds": 2, "quick": True, "profiles": ["soleus_healthy"],
        "rates_hz": [4000.0], "targets": V.TARGETS, "elapsed_s": 1.0,
        "pooled": V.summarise(rows), "by_profile": {"soleus_healthy": V.summarise(rows)},
    }  # fmt: skip
    table = V.format_table(result)
    assert "| Mmax, relative |" in table and "| soleus_healthy |" in table
    assert result["pooled"]["mmax_rel"]["within_target"] == 1.0
    assert np.isfinite(result["pooled"]["h_latency_ms"]["max_abs"])


@pytest.mark.slow
def test_fifty_seeds_meet_the_measurement_budgets():
    """The published run (``tonuslab validate hreflex --seeds 50``); see docs/validation.md."""
    result = V.run(seeds=50)
    p = result["pooled"]
    assert p["mmax_rel"]["within_target"] >= 0.99
    assert p["m_latency_ms"]["within_target"] >= 0.95
    assert p["h_latency_ms"]["within_target"] >= 0.9
    assert p["hmax_mmax_rel_vs_realised"]["within_target"] >= 0.99
    for k, v in p.items():
        if k.endswith("_vs_realised") and k.startswith(("rdd_", "ppd_")):
            assert v["within_target"] >= 0.98, k
    assert p["hmax_mmax_ci_coverage"] >= 0.85
