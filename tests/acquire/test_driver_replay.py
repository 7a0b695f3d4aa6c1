"""Recordings from the native drivers are rebuilt bit for bit from their journal (``replay``),
faults included: the decoders read only the journalled bytes and arrival times."""

from __future__ import annotations

import time

import numpy as np

from acquire.recorder import Recorder
from acquire.session_file import open_session
from firmware_iface.emulator.bitalino import BitalinoDevice, BitalinoFaults, BitalinoPty
from firmware_iface.emulator.trigno import TrignoDevice, TrignoFaults, TrignoServer


def record(url, path, seconds):
    rec = Recorder(url, path)
    rec.open()
    deadline = time.monotonic() + seconds
    try:
        while rec.step(0.05) and time.monotonic() < deadline:
            pass
    finally:
        rec.close()


def replay_matches(path, tmp_path):
    out = tmp_path / "replayed.h5"
    rec = Recorder(f"replay://{path.with_suffix('.capture')}", out)
    rec.open()
    try:
        while rec.step(0.05):
            pass
    finally:
        rec.close()
    with open_session(path) as a, open_session(out) as b:
        np.testing.assert_array_equal(a.emg_counts, b.emg_counts)
        np.testing.assert_array_equal(a.goniometer_deg, b.goniometer_deg)
        assert a.gaps == b.gaps
        assert [e["emg_sample_index"] for e in a.events if e["kind"] == "stimulus"] == [
            e["emg_sample_index"] for e in b.events if e["kind"] == "stimulus"
        ]
        return a.gaps, a.emg.n_samples


def test_bitalino_recording_with_faults_replays_bit_for_bit(tmp_path):
    faults = BitalinoFaults(drop_every=300, corrupt_every=211, stall_at_frame=1500,
                            stall_frames=120)  # fmt: skip
    dev = BitalinoDevice(profile="simple", faults=faults, external_stim_every_s=0.5)
    with BitalinoPty(dev, speed="realtime") as emu:
        (c0, d0), (c1, d1) = dev.gonio_cal_points()
        url = f"bitalino://{emu.path}?emg=A1&gonio=A2&gonio_cal={c0:g}:{d0:g},{c1:g}:{d1:g}"
        path = tmp_path / "b.h5"
        record(url, path, 3.0)
    gaps, n = replay_matches(path, tmp_path)
    assert n >= 2500
    big = [(g["start_index"], g["n_samples"]) for g in gaps if g["n_samples"] > 1]
    # frame 1499 (every 300th dropped) then the stall of frames 1500-1619: 121, exact although
    # the 4-bit sequence alone cannot tell 121 from 9 (the host clock picks the multiple of 16)
    assert (1499, 121) in big, big


def test_trigno_recording_with_a_stall_replays_bit_for_bit(tmp_path):
    faults = TrignoFaults(stall_at_s=1.0, stall_s=0.4, corrupt_every_frames=40)
    dev = TrignoDevice(profile="simple", faults=faults)
    with TrignoServer(dev) as srv:
        (v0, d0), (v1, d1) = dev.gonio_cal_points()
        url = f"{srv.url}?emg=1,2&gonio=3&gonio_cal={v0:g}:{d0:g},{v1:g}:{d1:g}"
        path = tmp_path / "t.h5"
        record(url, path, 3.0)
    gaps, _ = replay_matches(path, tmp_path)
    stall = [g for g in gaps if g["stream"] == "emg" and g["n_samples"] > 100]
    assert len(stall) == 1 and abs(stall[0]["n_samples"] - round(0.4 / 0.0135) * 29) <= 29
    assert stall[0]["n_samples"] % 29 == 0


def test_reconnect_after_the_board_vanishes(tmp_path):
    dev = BitalinoDevice(profile="simple")
    with BitalinoPty(dev, speed="realtime") as emu:
        url = f"bitalino://{emu.path}?emg=A1"
        path = tmp_path / "r.h5"
        rec = Recorder(url, path, duration_s=2.5, reconnect=True, reconnect_timeout_s=5)
        rec.open()
        try:
            steps = 0
            while rec.step(0.05):
                steps += 1
                if steps == 20:
                    rec.source._port.close()  # the port goes away under the recorder
        finally:
            rec.close()
    with open_session(path) as s:
        assert s.emg.n_samples > 1000
        assert s.state == "complete"
        # the samples the board sent while the port was away: one link_lost gap (host clock)
        assert [g["reason"] for g in s.gaps] == ["link_lost"] and s.gaps[0]["n_samples"] > 0
