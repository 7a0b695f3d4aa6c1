"""Soak over a real pty with byte corruption (slow; the full hour is ``benchmarks/run.py soak``)."""

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_soak", ROOT / "benchmarks/bench_soak.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_short_soak_loses_no_intact_frame_and_accounts_every_gap(tmp_path):
    bench = _bench()
    result = bench.soak(0.02, 1e-4, 4000, 16, tmp_path)
    assert result["faults_injected"] > 0 and result["emg_gap_rows"] > 0
    assert bench.check(result) == []


def test_soak_checks_can_fail():
    bench = _bench()
    good = {"frames_decoded": 10, "frames_intact": 10, "emg_fill_rows": 5, "emg_gap_rows": 5,
            "rss_growth_second_half_mib": 1.0}  # fmt: skip
    assert bench.check(good) == []
    assert len(bench.check({**good, "frames_decoded": 9})) == 1
    assert len(bench.check({**good, "emg_gap_rows": 4})) == 1
    assert len(bench.check({**good, "rss_growth_second_half_mib": 100.0})) == 1
