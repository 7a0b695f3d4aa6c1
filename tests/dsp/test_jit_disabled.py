"""With TONUSLAB_DISABLE_JIT=1 every kernel runs as plain Python and gives the same results."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

SCRIPT = r"""
import numpy as np, scipy.ndimage as nd, scipy.signal as ss
import dsp._jit
assert dsp._jit.JIT_DISABLED
from dsp import chain, envelopes, filters, onsets
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
y = np.random.default_rng(1).normal(size=3000)
y[1500:2200] *= 20
assert onsets.detect_onsets_threshold(y, 2000.0, baseline_s=(0, 0.5)).onsets.size == 1
print("ok")
"""


def test_kernels_run_without_the_jit():
    env = dict(os.environ, TONUSLAB_DISABLE_JIT="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=240
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
