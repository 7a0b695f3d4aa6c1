"""Onset detectors against the simulator's known reflex onsets (error budget)."""

import json

import numpy as np
import pytest

pytest.importorskip("virtual_patient")

from tonuslab.validation import onsets as V


@pytest.mark.parametrize("detector", ["threshold", "tkeo", "changepoint"])
def test_error_budget_at_nominal_noise(detector):
    records = []
    for seed in (0, 1):
        records += V._session_errors("moderate_elbow", 1.0, seed, quick=True)[detector]
    s = V._summary(records)
    assert s["n_reflex"] >= 10
    assert s["detected"] == s["n_reflex"]
    # Budget: 10 ms median absolute error, 25 ms at the 90th percentile.
    assert s["median_abs_error_ms"] < 10.0
    assert s["p90_abs_error_ms"] < 25.0


def test_few_false_onsets_without_reflex():
    """Healthy profile: no reflex in range; pops and motion may still trip a detector rarely."""
    for detector in ("threshold", "tkeo", "changepoint"):
        records = []
        for seed in (0, 1):
            records += V._session_errors("healthy", 1.0, seed, quick=True)[detector]
        assert len(records) >= 10 and not any(r["reflex"] for r in records)
        false = sum(r["detected_s"] is not None for r in records)
        assert false <= 0.1 * len(records), (detector, false)


@pytest.mark.slow
def test_full_suite_runs_and_formats(tmp_path):
    result = V.run(seeds=1, out_dir=tmp_path, quick=True)
    json.dumps(result)
    table = V.format_table(result)
    assert table.count("\n| ") == 1 + 3 * len(V.NOISE_SCALES)
    assert len(list(tmp_path.glob("onsets_*.json"))) == len(V.PROFILES) * len(V.NOISE_SCALES)
    nominal = [r for r in result["rows"] if r["noise_scale"] == 1.0]
    assert all(np.isfinite(r["median_abs_error_ms"]) for r in nominal)
