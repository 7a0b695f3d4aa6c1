"""``tonuslab record --lsl`` end to end: a real recording process publishes, a pylsl inlet here
receives, and what it receives is the session file's data with device-clock timestamps."""

import os
import pathlib
import subprocess
import sys
import tempfile
import uuid

import numpy as np
import pytest

from acquire.lsl import write_loopback_config

_CONFIG = pathlib.Path(tempfile.mkdtemp(prefix="tonuslab-lsl-rec-")) / "lsl.cfg"
os.environ.setdefault(
    "LSLAPICFG", str(write_loopback_config(_CONFIG, f"tonuslab-rec-{uuid.uuid4().hex[:8]}"))
)
pylsl = pytest.importorskip("pylsl")

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_record_lsl_publishes_the_recorded_samples_with_device_clock_stamps(tmp_path):
    from acquire.session_file import open_session

    out = tmp_path / "lsl.h5"
    cmd = [
        sys.executable, "-m", "tonuslab", "record", "sim://simple?seed=3&speed=realtime",
        "-o", str(out), "--plain", "--duration", "4", "--lsl", "--no-capture",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        found = pylsl.resolve_byprop("type", "EMG", minimum=1, timeout=30.0)
        assert found, "no EMG outlet from tonuslab record --lsl"
        info = found[0]
        assert info.name() == "tonuslab-EMU-0001-EMG"
        inlet = pylsl.StreamInlet(info, max_buflen=30, processing_flags=0)
        inlet.open_stream(timeout=10.0)
        values, stamps = [], []
        while proc.poll() is None:
            chunk, ts = inlet.pull_chunk(timeout=0.2)
            values += chunk
            stamps += ts
        received_at = pylsl.local_clock()
        chunk, ts = inlet.pull_chunk(timeout=0.5)
        values += chunk
        stamps += ts
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    values = np.asarray(values)
    stamps = np.asarray(stamps)
    assert len(stamps) > 2000  # more than 1 s of the 4 s at 2 kHz reached the inlet

    with open_session(out) as session:
        emg_uv = session.emg_uv
        rate = session.emg_rate_hz
    # The inlet joined late: find where its first sample sits in the file, then every sample
    # must be the file's, in order.
    head = values[:20]
    candidates = np.flatnonzero(np.all(np.isclose(emg_uv, head[0], atol=1e-3), axis=1))
    matches = [
        int(i)
        for i in candidates
        if i + len(head) <= len(emg_uv) and np.allclose(emg_uv[i : i + len(head)], head, atol=1e-3)
    ]
    assert len(matches) == 1, matches
    first = matches[0]
    np.testing.assert_allclose(values, emg_uv[first : first + len(values)], rtol=1e-6, atol=1e-4)
    # Stamps come from the device clock: spaced by the sample period (up to the clock fit's
    # corrections), not by the bursty arrival of blocks, and close to LSL's clock.
    steps = np.diff(stamps)
    assert np.mean(np.abs(steps - 1 / rate) < 5e-6) > 0.98
    assert abs(stamps[-1] - received_at) < 2.0
