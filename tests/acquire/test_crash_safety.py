"""Crash safety with real processes: SIGKILL at random moments, SIGTERM/SIGINT, a second reader."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from acquire.errors import SessionFileError
from acquire.recover import recover_session
from acquire.session_file import open_session

ROOT = pathlib.Path(__file__).resolve().parents[2]


def start_recorder(out: pathlib.Path, seed: int) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "tonuslab", "record", f"sim://simple?seed={seed}&speed=realtime",
        "-o", str(out), "--plain", "--emg-rate", "2000", "--n-emg", "4", "--subject", "K1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(path: pathlib.Path, proc, timeout_s: float = 30.0) -> float:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"recorder exited early: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError("recorder did not create its file")
        time.sleep(0.02)
    return time.monotonic()


def kill_and_check(tmp_path: pathlib.Path, seed: int, rng) -> bool:
    out = tmp_path / f"k{seed}.h5"
    proc = start_recorder(out, seed)
    t_file = wait_for(out, proc)
    time.sleep(float(rng.uniform(0.3, 2.5)))
    t_kill = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    opened = True
    try:
        with open_session(out) as s:
            killed_counts = s.emg_counts.copy()
            assert s.state == "recording"
    except SessionFileError:
        opened = False
        killed_counts = None
    report = recover_session(out)
    assert report.source == "capture"
    with open_session(out) as s:
        assert s.state == "recovered"
        counts = s.emg_counts
        # every sample up to the last flush (at most a second before the kill) is back
        assert counts.shape[0] / 2000.0 >= (t_kill - t_file) - 1.5
        if killed_counts is not None:
            assert counts.shape[0] >= killed_counts.shape[0]
            np.testing.assert_array_equal(counts[: killed_counts.shape[0]], killed_counts)
    return opened


def test_sigkill_at_random_moments(tmp_path):
    rng = np.random.default_rng(11)
    opened = [kill_and_check(tmp_path, seed, rng) for seed in range(4)]
    assert sum(opened) >= 3  # the flushed file itself opens (recover covers the rest)


@pytest.mark.slow
def test_sigkill_soak(tmp_path):
    rng = np.random.default_rng(12)
    opened = [kill_and_check(tmp_path, seed, rng) for seed in range(30)]
    assert sum(opened) >= 28


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_finalises_cleanly_and_second_process_reads_live(tmp_path, sig):
    out = tmp_path / "t.h5"
    proc = start_recorder(out, 3)
    wait_for(out, proc)
    time.sleep(1.2)
    # a second process (this test) reads the file while it is being recorded
    with open_session(out) as s:
        assert s.state == "recording"
        n1 = s.emg.n_samples
        assert n1 > 0 and np.isfinite(s.emg.read(0, n1)).all()
    time.sleep(1.2)
    with open_session(out) as s:
        n2 = s.emg.n_samples
    assert n2 > n1 + 1000  # it keeps growing, flushed at least every second
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "saved" in stdout
    with open_session(out) as s:
        assert s.state == "complete" and s.emg.n_samples >= n2
        assert s.clock["method"] == "lower-envelope"
    assert (tmp_path / "t.capture").exists()
