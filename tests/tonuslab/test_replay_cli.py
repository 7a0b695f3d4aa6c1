"""``tonuslab replay`` and ``tonuslab recover`` from the command line."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np

from acquire.session_file import open_session

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "data"


def tonuslab(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "tonuslab", *map(str, args)], cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def test_replay_at_recorded_pace_is_identical_and_paced(tmp_path):
    capture = DATA / "captures" / "hreflex_soleus_spastic.capture"
    t0 = time.monotonic()
    proc = tonuslab("replay", capture, "-o", tmp_path / "r.h5", "--speed", "5")
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert elapsed >= 10.5 / 5 * 0.8  # 10.5 s recorded, replayed at 5x
    with (
        open_session(tmp_path / "r.h5") as r,
        open_session(DATA / "sessions" / "hreflex_soleus_spastic.h5") as ref,
    ):
        np.testing.assert_array_equal(r.emg_counts, ref.emg_counts)
        np.testing.assert_array_equal(r.angle.counts[()], ref.angle.counts[()])


def test_replay_errors(tmp_path):
    proc = tonuslab("replay", tmp_path / "none.capture", "-o", tmp_path / "x.h5")
    assert proc.returncode == 2 and "no such file" in proc.stderr
    bad = tmp_path / "bad.capture"
    bad.write_bytes(b"not a capture")
    proc = tonuslab("replay", bad, "-o", tmp_path / "x.h5")
    assert proc.returncode == 2 and "not a tonuslab wire capture" in proc.stderr


def test_recover_cli(tmp_path):
    name = "stretch_mild_elbow"
    session = tmp_path / f"{name}.h5"
    shutil.copy(DATA / "sessions" / f"{name}.h5", session)
    shutil.copy(DATA / "captures" / f"{name}.capture", tmp_path / f"{name}.capture")
    proc = tonuslab("recover", session)
    assert proc.returncode == 0 and "nothing to recover" in proc.stdout
    # simulate a recorder killed half-way: truncate the file's samples, state "recording"
    with h5py.File(session, "r+") as f:
        f.attrs["state"] = "recording"
        f["streams/emg/counts"].resize((20000, 2))
    proc = tonuslab("recover", session)
    assert proc.returncode == 0, proc.stderr
    assert "wire capture" in proc.stdout
    with open_session(session) as s, open_session(DATA / "sessions" / f"{name}.h5") as ref:
        assert s.state == "recovered"
        np.testing.assert_array_equal(s.emg_counts, ref.emg_counts)
    assert (tmp_path / f"{name}.damaged.h5").exists()
    proc = tonuslab("recover", tmp_path / "missing.h5")
    assert proc.returncode == 2
