"""With the JIT disabled (TONUSLAB_DISABLE_JIT=1 or Numba's NUMBA_DISABLE_JIT=1) every kernel
runs as plain Python and gives the same results."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

SCRIPT = r"""
import numpy as np, scipy.ndimage as nd, scipy.signal as ss
import dsp._jit
assert dsp._jit.JIT_DISABLED
from dsp import chain, envelopes, filters, kinematics, onsets, quality
x = np.random.default_rng(0).normal(scale=30.0, size=(400, 10))
bp = ss.butter(4, [20, 450], btype="bandpass", fs=2000.0, output="sos")
nt = np.array([np.concatenate(ss.iirnotch(50.0, 30.0, fs=2000.0))])
ref = np.sqrt(nd.uniform_filter1d(ss.sosfiltfilt(nt, ss.sosfiltfilt(bp, x, axis=0), axis=0) ** 2,
                                  100, axis=0))
assert np.abs(chain.condition_emg(x, 2000.0) - ref).max() < 1e-9 * ref.max()
assert np.array_equal(filters.apply_causal(x, bp), ss.sosfilt(bp, x, axis=0))
s = chain.StreamingConditioner(2000.0, 10)
assert np.array_equal(np.vstack([s.process(x[:150]), s.process(x[150:])]),
                      chain.condition_emg_causal(x, 2000.0))
x19 = np.random.default_rng(2).normal(scale=30.0, size=(300, 19))  # 8-lane path + remainder
f = filters.StreamingFilter(bp, 19)
assert np.array_equal(np.vstack([f.process(x19[:7]), f.process(x19[7:])]),
                      ss.sosfilt(bp, x19, axis=0))
assert np.allclose(envelopes.moving_rms(x19, 2000.0),
                   np.sqrt(nd.uniform_filter1d(x19 ** 2, 100, axis=0)), rtol=1e-9)
y = np.random.default_rng(1).normal(size=3000)
y[1500:2200] *= 20
for method in ("threshold", "tkeo", "changepoint"):
    assert onsets.detect_onsets(y, 2000.0, method, baseline_s=(0, 0.5)).onsets.size == 1, method
a = np.concatenate([np.zeros(500), np.linspace(0.0, 60.0, 2000), np.full(500, 60.0)])
(s1,) = kinematics.segment_stretches(a, 500.0)
assert s1.direction == 1 and abs(s1.range_deg - 60.0) < 1.0
q = quality.channel_quality(np.column_stack([y, np.zeros(3000)]), 2000.0)
assert q[0].ok and q[1].electrode_off
print("ok")
"""


@pytest.mark.parametrize("switch", ["TONUSLAB_DISABLE_JIT", "NUMBA_DISABLE_JIT"])
def test_kernels_run_without_the_jit(switch):
    env = dict(os.environ)
    env.pop("TONUSLAB_DISABLE_JIT", None)
    env.pop("NUMBA_DISABLE_JIT", None)
    env[switch] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=240
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


STALE = r"""
import glob, os, sys
import numpy as np
from dsp import quality
quality.find_gaps(np.zeros((10, 2)))  # compiles and caches one kernel
path = quality._nan_runs._cache._cache_path
print(len(glob.glob(os.path.join(path, "quality.*.nbi"))), open(
    os.path.join(path, "tonuslab-dsp-sources.txt")).read())
"""


def test_stale_cache_of_dsp_kernels_is_dropped(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("TONUSLAB_DISABLE_JIT", None)
    env.pop("NUMBA_DISABLE_JIT", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")

    def run():
        out = subprocess.run(
            [sys.executable, "-c", STALE], capture_output=True, text=True, env=env, timeout=240
        )
        assert out.returncode == 0, out.stderr[-2000:]
        count, fingerprint = out.stdout.split()
        return int(count), fingerprint

    count, fingerprint = run()
    assert count == 1
    # Pretend the sources changed since the cache was written: the entries must be rebuilt.
    (stamp,) = tmp_path.glob("*/tonuslab-dsp-sources.txt")
    stamp.write_text("older sources")
    leftover = stamp.parent / "quality.old_kernel-1.py311.1.nbc"  # Numba never touches it
    leftover.write_bytes(b"stale machine code")
    foreign = stamp.parent / "not_ours.kernel-1.py311.1.nbc"
    foreign.write_bytes(b"someone else's")
    count, again = run()
    assert count == 1 and again == fingerprint
    assert not leftover.exists()
    assert foreign.exists()
