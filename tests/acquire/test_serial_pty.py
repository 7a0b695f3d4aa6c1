"""Serial end to end: the recorder on a real pseudo-terminal with the emulated device behind it,
including a vanished port (USB unplugged) that comes back."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from acquire.errors import LinkLostError
from acquire.recorder import Recorder, replay_capture
from acquire.session_file import FILL_VALUE, open_session
from firmware_iface.emulator import PtyEmulator, make_device
from firmware_iface.emulator.source import SimpleSource

CONFIG = dict(emg_rate_hz=2000, n_emg=4, angle_rate_hz=500, n_angle=1, emg_bits=16)


def reference_emg(seed: int, n: int) -> np.ndarray:
    src = SimpleSource(seed=seed)
    src.configure(2000.0, 4, 500.0, 1, 16)
    return src.emg_block(n)


def test_record_over_pty_matches_the_device(tmp_path):
    with PtyEmulator(make_device(SimpleSource(seed=5)), speed="realtime") as emu:
        out = tmp_path / "pty.h5"
        rec = Recorder(emu.path, out, config=CONFIG, duration_s=1.5, metadata={"subject_id": "P1"})
        assert rec.run() == "complete"
    with open_session(out) as s:
        assert s.emg_counts.shape == (3000, 4) and s.gaps == []
        np.testing.assert_array_equal(s.emg_counts, reference_emg(5, 3000))
        assert s.attrs["source_url"] == emu.path
        # realtime device: the fitted drift is small and the envelope residual tiny
        assert abs(s.clock["drift_ppm"]) < 5000
        assert s.clock["residual_sd_s"] < 0.05


def test_vanished_port_is_reported_and_recording_resumes(tmp_path):
    device = make_device(SimpleSource(seed=6))
    port = tmp_path / "ttyEMU"
    emu = PtyEmulator(device, speed="realtime")
    os.symlink(emu.path, port)
    out = tmp_path / "unplug.h5"
    rec = Recorder(str(port), out, config=CONFIG, reconnect=True, reconnect_timeout_s=20)
    events = []
    rec.listeners.append(lambda kind, data: events.append((kind, dict(data))))
    rec.open()
    state = {}

    def unplug_and_replug():
        time.sleep(1.0)
        emu.close()  # the cable is pulled
        os.unlink(port)
        time.sleep(0.7)
        with emu.runner.lock:  # samples produced while unplugged never reach the host
            device.advance(device.clock.now_us())
            device.take_output()
        state["emu2"] = emu2 = PtyEmulator(device, speed="realtime")
        os.symlink(emu2.path, port)  # plugged back (a new pty, same port name)
        time.sleep(1.5)
        rec.request_stop()

    t = threading.Thread(target=unplug_and_replug)
    t.start()
    try:
        rec.run()
    finally:
        t.join()
        state["emu2"].close()
    kinds = [(k, d.get("event")) for k, d in events if k == "link"]
    assert kinds == [("link", "lost"), ("link", "restored")]
    with open_session(out) as s:
        assert s.state == "complete"
        counts = s.emg_counts
        missing = (counts == FILL_VALUE).all(axis=1)
        gaps = [g for g in s.gaps if g["stream"] == "emg"]
        assert gaps and all(g["reason"] == "link_lost" for g in gaps)
        assert sum(g["n_samples"] for g in gaps) == missing.sum() > 0
        assert (~missing[-1000:]).all()  # recording resumed after the port came back
        np.testing.assert_array_equal(counts[~missing], reference_emg(6, counts.shape[0])[~missing])
        labels = [e["label"] for e in s.events if e["kind"] == "link"]
        assert labels == ["lost", "restored"]
        live_gaps = s.gaps
    # the capture replays to the same samples and the same gaps, reasons included
    replayed = replay_capture(tmp_path / "unplug.capture", tmp_path / "replayed.h5")
    with open_session(replayed) as r:
        np.testing.assert_array_equal(r.emg_counts, counts)
        assert [(g["stream"], g["start_index"], g["n_samples"], g["reason"]) for g in r.gaps] == [
            (g["stream"], g["start_index"], g["n_samples"], g["reason"]) for g in live_gaps
        ]


def test_vanished_port_without_reconnect_is_a_clear_error(tmp_path):
    emu = PtyEmulator(make_device(SimpleSource(seed=7)), speed="realtime")
    rec = Recorder(emu.path, tmp_path / "x.h5", config=CONFIG)
    rec.open()
    threading.Timer(0.8, emu.close).start()
    with pytest.raises(LinkLostError, match="--reconnect"):
        rec.run()
    with open_session(tmp_path / "x.h5") as s:
        assert s.state == "stopped_link_lost" and s.emg.n_samples > 500
