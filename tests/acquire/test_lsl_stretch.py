"""A stretch session recorded from LSL outlets fed by the virtual patient, analysed like a native.

The outlets stand for a lab's amplifier bridge: the virtual patient's EMG (float microvolts) and
goniometer (float degrees) on real pylsl outlets (loopback only). In the Python API test the
operator (here: a recorder listener that reads the protocol's prompts) performs each prompted
stretch on the patient; in the CLI test the patient performs a programmed ladder and
``tonuslab record lsl://... --protocol stretch`` watches it.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest

from acquire.protocols.stretch import StretchProtocol, StretchProtocolConfig
from acquire.recorder import Recorder
from acquire.session_file import open_session
from tonuslab.cli import main
from virtual_patient import PatientSource, StretchSpec

from .lsl_outlets import Feeder, make_outlet, pylsl, unique, wait_for_consumer

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROFILE = "mild_elbow"


class PatientOutlets:
    """The virtual patient streamed on LSL: EMG (2 ch, uV) and goniometer (deg)."""

    def __init__(self, *, fe=2000.0, fa=500.0, program=None, one_stream=False, seed=3):
        self.patient = PatientSource(PROFILE, seed=seed, program=program)
        table = self.patient.configure(fe, 2, fa, 1, 16)
        self.emg_scale = np.array([c["scale"] for c in table if c["kind"] == "emg"])
        ang = next(c for c in table if c["kind"] == "angle")
        self.angle_scale, self.angle_offset = ang["scale"], ang["offset"]
        self.lock = threading.Lock()
        self.emg_name, self.angle_name = unique("VP-EMG"), unique("VP-Gonio")
        chans = [("biceps", "microvolts", "EMG"), ("triceps", "microvolts", "EMG")]
        if one_stream:
            chans.append(("elbow", "degrees", "Angle"))
        self.emg = Feeder(lambda: make_outlet(self.emg_name, chans, fe), fe, self._emg)
        self.one_stream = one_stream
        self.feeders = [self.emg]
        if not one_stream:
            self.gonio = Feeder(
                lambda: make_outlet(self.angle_name, [("elbow", "degrees", "Angle")], fa,
                                    stream_type="Angle"), fa, self._angle, chunk=8,
            )  # fmt: skip
            self.feeders.append(self.gonio)

    def _emg(self, idx):
        with self.lock:
            emg = self.patient.emg_block(idx.size) * self.emg_scale
            if not self.one_stream:
                return emg
            ang = (self.patient.angle_block(idx.size)[:, :1] - self.angle_offset) * (
                self.angle_scale
            )
        return np.hstack([emg, ang])

    def _angle(self, idx):
        with self.lock:
            return (self.patient.angle_block(idx.size) - self.angle_offset) * self.angle_scale

    def start(self):
        t0 = pylsl.local_clock() + 0.1
        for f in self.feeders:
            f.t0 = t0
            f.start()

    def stop(self):
        for f in self.feeders:
            f.stop()

    def perform(self, kind, data):
        """The operator: a prompt of the protocol is performed on the patient."""
        if kind == "prompt":
            with self.lock:
                self.patient.prompt(data["label"], data["params"])


def analyze(path, capsys) -> dict:
    capsys.readouterr()
    assert main(["analyze", str(path), "--json", "--no-write"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_stretch_protocol_over_lsl_then_analyze(tmp_path, capsys):
    vp = PatientOutlets()
    path = tmp_path / "lsl_stretch.h5"
    sign = vp.patient.profile.goniometer_sign
    meta = {"protocol": "stretch", "joint": "elbow", "muscle": "biceps_brachii",
            "subject_id": "S01", "stretch_direction_sign": sign}  # fmt: skip
    rec = Recorder(f"lsl://{vp.emg_name}?angle_stream={vp.angle_name}", path, metadata=meta)
    rec.open()
    rec.listeners.append(vp.perform)
    cfg = StretchProtocolConfig(range_velocity_deg_s=30.0, n_range=1,
                                velocities_deg_s=(60.0, 150.0, 300.0), repeats=2,
                                rest_s=0.3)  # fmt: skip
    messages = []
    protocol = StretchProtocol(rec, cfg, on_message=messages.append)
    protocol.attach()
    vp.start()
    try:
        while rec.step(0.05) and not protocol.done:
            protocol.tick()
        for _ in range(20):
            rec.step(0.05)
    finally:
        rec.close()
        vp.stop()
    truth = vp.patient.ground_truth()
    with open_session(path) as s:
        results = [e["params"] for e in s.events if e["label"] == "stretch_result"]
        assert len(results) == 7 and all(r["detected"] for r in results), messages
        prompts = [e["params"]["velocity_deg_s"] for e in s.events if e["kind"] == "prompt"]
        np.testing.assert_allclose([r["peak_velocity_deg_s"] for r in results], prompts,
                                   rtol=0.25)  # fmt: skip
        assert s.gaps == [] and s.angle_rate_hz == 500.0
    summary = analyze(path, capsys)
    assert summary["n_stretches"] == 6  # the ladder (the slow stretch gives the range)
    assert all(st["used_in_fit"] for st in summary["stretches"])
    # the threshold of the virtual patient is found as from a native recording
    lam = truth["stretch_reflex"]["lambda_deg"]
    assert summary["tsrt_deg"] == pytest.approx(lam, abs=4.0)


@pytest.mark.slow
def test_cli_record_lsl_stretch_protocol_then_analyze(tmp_path, capsys):
    program = [StretchSpec(1.0 + 6.0 * k, v, end_deg=100.0, hold_s=0.5)
               for k, v in enumerate((90.0, 180.0, 270.0))]  # fmt: skip
    vp = PatientOutlets(fa=2000.0, program=program, one_stream=True)
    out = tmp_path / "S1.h5"
    url = f"lsl://{vp.emg_name}?emg=0,1&angle=2"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tonuslab", "record", url, "-o", str(out), "--protocol",
         "stretch", "--range-stretches", "1", "--range-velocity", "90", "--velocities",
         "180,270", "--repeats", "1", "--rest", "0.3", "--plain", "--joint", "elbow",
         "--muscle", "biceps_brachii", "--direction-sign", str(vp.patient.profile.goniometer_sign)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_for_consumer(vp.emg.outlet, 30)
        vp.start()
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        vp.stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert stdout.count("achieved") == 3, stdout
    with open_session(out) as s:
        assert s.emg_rate_hz == 2000.0 and s.angle_rate_hz == 2000.0
        assert s.device["source_kind"] == "lsl" and s.gaps == []
    summary = analyze(out, capsys)
    # three stretches are too few for a threshold fit; each is found and measured
    assert summary["n_stretches"] == 3
    achieved = [st["peak_velocity_deg_s"] for st in summary["stretches"]]
    np.testing.assert_allclose(achieved, [90.0, 180.0, 270.0], rtol=0.15)
