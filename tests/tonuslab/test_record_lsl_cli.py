"""``tonuslab record lsl://...`` and ``tonuslab devices`` against real loopback LSL outlets.

The outlets live in this test process; the recorder runs as the ``tonuslab`` command in a
subprocess with the same loopback-only ``LSLAPICFG`` (set by tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from acquire.session_file import open_session

from ..acquire.lsl_outlets import Feeder, make_outlet, pylsl, unique, wait_for_consumer

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
CHANNELS = (("E0", "microvolts", "EMG"), ("E1", "microvolts", "EMG"), ("knee", "deg", "Angle"))


def tonuslab(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "tonuslab", *map(str, args)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def one_line_exit_2(proc) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tonuslab: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_devices_lists_the_lsl_streams_seen():
    name = unique("Trigno")
    outlet = make_outlet(name, CHANNELS, 2148.1481, source_id=f"{name}-sid")
    proc = tonuslab("devices", "--no-ble", "--lsl-wait", "1.5")
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if name in x)
    assert f"lsl://{name}?source_id={name}-sid" in line
    assert "type EMG, 3 ch float32 at 2148.15 Hz" in line and "host " in line
    proc = tonuslab("devices", "--no-ble", "--json")
    (mine,) = [d for d in json.loads(proc.stdout) if d.get("name") == name]
    assert mine["kind"] == "lsl" and mine["rate_hz"] == 2148.1481 and mine["channels"] == 3
    del outlet


def test_no_stream_within_the_timeout(tmp_path):
    line = one_line_exit_2(
        tonuslab("record", "lsl://NoSuchStream?timeout=1", "-o", tmp_path / "x.h5")
    )
    assert "no LSL stream with name='NoSuchStream' found within 1 s" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("emg=0&angle=7", "angle=7: LSL stream '{name}' has 3 channels (0 to 2: 0=E0, 1=raw, 2="),
        ("emg=0,1", "EMG channel 1 (raw) of LSL stream '{name}' is in 'counts', not a voltage"),
        ("emgs=0", "unknown option 'emgs'"),
    ],
)
def test_bad_channels_and_units_are_one_line(tmp_path, query, words):
    name = unique("Raw")
    outlet = make_outlet(name, [("E0", "uV", "EMG"), ("raw", "counts", "EMG"),
                                ("knee", "deg", "")], 1000.0)  # fmt: skip
    line = one_line_exit_2(
        tonuslab("record", f"lsl://{name}?{query}&timeout=3", "-o", tmp_path / "x.h5")
    )
    assert words.format(name=name) in line
    assert not (tmp_path / "x.h5").exists()
    del outlet


def test_configuring_an_lsl_stream_is_refused(tmp_path):
    line = one_line_exit_2(tonuslab("record", "lsl://A", "--emg-rate", "2000", "-o",
                                    tmp_path / "x.h5"))  # fmt: skip
    assert "cannot be configured (emg_rate_hz)" in line


def test_rate_change_mid_recording_exits_2_with_the_data_kept(tmp_path):
    name = unique("Reconf")
    rates = iter([1000.0, 500.0])
    feeder = Feeder(lambda: make_outlet(name, CHANNELS, next(rates), source_id=name), 1000.0,
                    lambda i: np.stack([i, i, i % 90], 1), vanish=(1500, 1.0))  # fmt: skip
    out = tmp_path / "r.h5"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tonuslab", "record", f"lsl://{name}?angle=2", "-o", str(out),
         "--plain", "--reconnect"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_for_consumer(feeder.outlet, 30)
        feeder.start()
        _, err = proc.communicate(timeout=60)
    finally:
        feeder.stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, err
    assert err.strip().splitlines()[-1].startswith("tonuslab: error: LSL stream")
    assert "came back at 500 Hz instead of 1000 Hz" in err and "Traceback" not in err
    with open_session(out) as s:
        assert s.emg.n_samples >= 1400 and s.state.startswith("stopped_")


def test_kill_9_then_recover_rebuilds_from_the_journal(tmp_path):
    name = unique("Crash")
    feeder = Feeder(lambda: make_outlet(name, CHANNELS, 2000.0), 2000.0,
                    lambda i: np.stack([i, i % 1000, i % 90], 1))  # fmt: skip
    out = tmp_path / "k.h5"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tonuslab", "record", f"lsl://{name}?angle=2", "-o", str(out),
         "--plain"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_for_consumer(feeder.outlet, 30)
        feeder.start()
        time.sleep(4.0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        feeder.stop()
    pushed = feeder.n
    rec = tonuslab("recover", out)
    assert rec.returncode == 0, rec.stderr
    with open_session(out) as s:
        assert s.state == "recovered"
        emg = s.emg_uv
        n = emg.shape[0]
        # at most about a second is lost (the journal reaches the disk at least once a second)
        assert n >= pushed - 2 * 2000 and n <= pushed
        np.testing.assert_allclose(emg[:, 0], np.arange(n) + emg[0, 0], atol=1e-3)
        assert s.gaps == []


def test_lsl_source_republished_with_lsl_and_replayed_from_its_capture(tmp_path):
    name = unique("Repub")
    feeder = Feeder(lambda: make_outlet(name, CHANNELS, 1000.0, source_id=f"{name}-sid"), 1000.0,
                    lambda i: np.stack([i, i % 1000, i % 90], 1))  # fmt: skip
    out = tmp_path / "p.h5"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tonuslab", "record", f"lsl://{name}?angle=2", "-o", str(out),
         "--plain", "--lsl", "--duration", "4"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_for_consumer(feeder.outlet, 30)
        feeder.start()
        found = pylsl.resolve_byprop("name", f"tonuslab-{name}-sid-EMG", 1, 20.0)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        feeder.stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert found and found[0].source_id() == f"tonuslab:tonuslab-{name}-sid:emg"
    assert "LSL outlets" in stdout
    rep = tonuslab("replay", out.with_suffix(".capture"), "-o", tmp_path / "r.h5")
    assert rep.returncode == 0, rep.stderr
    with open_session(out) as a, open_session(tmp_path / "r.h5") as b:
        np.testing.assert_array_equal(a.emg_counts, b.emg_counts)
        np.testing.assert_array_equal(a.goniometer_deg, b.goniometer_deg)
        assert a.emg.n_samples == 4000


def test_cli_operator_guided_hreflex_takes_the_prompted_intensities(tmp_path):
    """The stimulator fires every second on its own; each prompt names the next pulse."""
    name = unique("DS8R")
    rate = 2000.0
    fire = [int(rate * (1.5 + k)) for k in range(6)]

    def signal_(i):
        ttl = np.zeros(i.size)
        for f in fire:
            ttl[(i >= f) & (i < f + 4)] = 5.0
        return np.stack([np.sin(i / 7.0) * 20.0, ttl], 1)

    chans = [("soleus", "uV", "EMG"), ("trig", "V", "Trigger")]
    feeder = Feeder(lambda: make_outlet(name, chans, rate), rate, signal_)
    out = tmp_path / "h.h5"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tonuslab", "record", f"lsl://{name}?ttl=trig&ttl_threshold=2.5",
         "-o", str(out), "--plain", "--protocol", "hreflex", "--ladder", "8,10,12",
         "--interval", "0.3", "--muscle", "soleus"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_for_consumer(feeder.outlet, 30)
        feeder.start()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        feeder.stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "set 8 mA and deliver one pulse" in stdout and "3 pulses recorded" in stdout
    with open_session(out) as s:
        stims = [e for e in s.events if e["kind"] == "stimulus"]
        assert [e["intensity_ma"] for e in stims[:3]] == [8.0, 10.0, 12.0]
        first = int(s.file["streams/emg"].attrs["first_device_sample"])
        assert [e["emg_sample_index"] + first for e in stims[:3]] == fire[:3]


def test_cli_operator_guided_hreflex_refuses_what_it_cannot_do(tmp_path):
    line = one_line_exit_2(tonuslab("record", "lsl://A", "-o", tmp_path / "x.h5", "--protocol",
                                    "hreflex", "--rate-blocks", "1,2"))  # fmt: skip
    assert "--rate-blocks: not available in the operator-guided H-reflex" in line
