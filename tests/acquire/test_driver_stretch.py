"""A stretch session recorded from each native-driver emulator (fed by the virtual patient) and
analysed with ``tonuslab analyze``, as from a native tonuslab device.

The emulators run in this process on real loopback sockets (Trigno TCU) or a real pty
(BITalino). The operator (a recorder listener that reads the protocol's prompts) performs each
prompted stretch on the patient behind the emulator.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from acquire.protocols.stretch import StretchProtocol, StretchProtocolConfig
from acquire.recorder import Recorder
from acquire.session_file import open_session
from firmware_iface.emulator.bitalino import BitalinoDevice, BitalinoPty
from firmware_iface.emulator.trigno import TrignoDevice, TrignoServer
from tonuslab.cli import main

PROFILE = "mild_elbow"


def analyze(path, capsys) -> dict:
    capsys.readouterr()
    assert main(["analyze", str(path), "--json", "--no-write"]) == 0
    return json.loads(capsys.readouterr().out)


def run_stretch(url, path, patient):
    sign = patient.profile.goniometer_sign
    meta = {"protocol": "stretch", "joint": "elbow", "muscle": "biceps_brachii",
            "subject_id": "S01", "stretch_direction_sign": sign}  # fmt: skip
    rec = Recorder(url, path, metadata=meta)
    rec.open()

    def perform(kind, data):
        if kind == "prompt":
            patient.prompt(data["label"], data["params"])

    rec.listeners.append(perform)
    cfg = StretchProtocolConfig(range_velocity_deg_s=30.0, n_range=1,
                                velocities_deg_s=(60.0, 150.0, 300.0), repeats=2,
                                rest_s=0.3)  # fmt: skip
    messages = []
    protocol = StretchProtocol(rec, cfg, on_message=messages.append)
    protocol.attach()
    try:
        while rec.step(0.05) and not protocol.done:
            protocol.tick()
        for _ in range(20):
            rec.step(0.05)
    finally:
        rec.close()
    return messages


def check(path, patient, capsys, messages):
    with open_session(path) as s:
        results = [e["params"] for e in s.events if e["label"] == "stretch_result"]
        assert len(results) == 7 and all(r["detected"] for r in results), messages
        prompts = [e["params"]["velocity_deg_s"] for e in s.events if e["kind"] == "prompt"]
        # within 15 deg/s: a 10-bit goniometer (0.2 deg per code at 1 kHz) adds a little
        np.testing.assert_allclose([r["peak_velocity_deg_s"] for r in results], prompts,
                                   rtol=0.1, atol=15.0)  # fmt: skip
        device = dict(s.device)
    summary = analyze(path, capsys)
    # the ladder (6), and the slow range stretch when the analysis keeps it
    assert summary["n_stretches"] in (6, 7), summary["n_stretches"]
    print(json.dumps({k: summary[k] for k in ("n_stretches", "tsrt_deg")}))
    lam = patient.ground_truth()["stretch_reflex"]["lambda_deg"]
    assert summary["tsrt_deg"] == pytest.approx(lam, abs=6.0)
    return device


@pytest.mark.slow
def test_stretch_session_from_the_trigno_emulator_then_analyze(tmp_path, capsys):
    dev = TrignoDevice(profile=PROFILE, seed=3)
    with TrignoServer(dev) as srv:
        (v0, d0), (v1, d1) = dev.gonio_cal_points()
        url = f"{srv.url}?emg=1,2&gonio=3&gonio_cal={v0:g}:{d0:g},{v1:g}:{d1:g}"
        path = tmp_path / "trigno_stretch.h5"
        messages = run_stretch(url, path, dev.source)
    device = check(path, dev.source, capsys, messages)
    assert device["source_kind"] == "trigno"
    with open_session(path) as s:
        assert s.emg_rate_hz == 2148.1481 and s.angle_rate_hz == pytest.approx(148.148, abs=1e-3)


@pytest.mark.slow
def test_stretch_session_from_the_bitalino_emulator_then_analyze(tmp_path, capsys):
    dev = BitalinoDevice(profile=PROFILE, seed=3)
    with BitalinoPty(dev, speed="realtime") as emu:
        (c0, d0), (c1, d1) = dev.gonio_cal_points()
        url = f"bitalino://{emu.path}?emg=A1&gonio=A2&gonio_cal={c0:g}:{d0:g},{c1:g}:{d1:g}"
        path = tmp_path / "bitalino_stretch.h5"
        messages = run_stretch(url, path, dev.source)
    device = check(path, dev.source, capsys, messages)
    assert device["source_kind"] == "bitalino"
    with open_session(path) as s:
        assert s.emg_rate_hz == 1000.0 and s.gaps == []
