"""Operator-guided H-reflex over LSL: prompts, a lab stimulator's TTL trigger, the analysis.

The virtual patient's soleus EMG (5 kHz) and the stimulator's trigger output (a 0/5 V channel of
the same stream) are pushed on a real pylsl outlet (loopback only). The operator, played by a
recorder listener, reads each prompt, sets the intensity and fires the stimulator: the patient
gets the pulse at a sample and the trigger channel goes high at that same sample.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from acquire.capture import capture_path_for
from acquire.protocols.operator_hreflex import PULSE_LABEL, OperatorHReflex, OperatorHReflexConfig
from acquire.recorder import Recorder, replay_capture
from acquire.session_file import open_session
from tonuslab.cli import main
from virtual_patient import PatientSource

from .lsl_outlets import Feeder, make_outlet, pylsl, unique

FE = 5000.0


class Stimulator:
    """The patient on LSL plus a stimulator the operator fires (trigger out on channel 1).

    With ``markers``, the stimulator's software also sends ``stim <mA>mA`` on a marker stream,
    2-8 ms after each pulse (its own process), stamped when it sends it.
    """

    def __init__(self, seed=4, markers=False):
        self.patient = PatientSource("soleus_healthy", seed=seed)
        table = self.patient.configure(FE, 1, 500.0, 1, 16)
        self.scale = table[0]["scale"]
        self.lock = threading.Lock()
        self.pulses: list[int] = []
        self.name = unique("DS7A-EMG")
        chans = [("soleus", "microvolts", "EMG"), ("trigger", "V", "Trigger")]
        self.feeder = Feeder(lambda: make_outlet(self.name, chans, FE), FE, self._signal,
                             chunk=50)  # fmt: skip
        self.marker_outlet = None
        self._to_mark: list[tuple[int, float]] = []
        self._rng = np.random.default_rng(seed)
        if markers:
            self.marker_name = unique("DS7A-markers")
            info = pylsl.StreamInfo(self.marker_name, "Markers", 1, 0, pylsl.cf_string, "m")
            self.marker_outlet = pylsl.StreamOutlet(info)
            self.feeder.hook = self._send_markers

    def _send_markers(self, n):
        while self._to_mark and n >= self._to_mark[0][0]:
            at, ma = self._to_mark.pop(0)
            late = float(self._rng.uniform(0.002, 0.008))
            # sent once the pulse is out (plus the software's delay), stamped at sending
            self.marker_outlet.push_sample([f"stim {ma:g}mA"],
                                           self.feeder.t0 + at / FE + late)  # fmt: skip

    def _signal(self, idx):
        with self.lock:
            emg = self.patient.emg_block(idx.size)[:, 0] * self.scale
            ttl = np.zeros(idx.size)
            for p in self.pulses:
                ttl[(idx >= p) & (idx < p + 10)] = 5.0
        return np.stack([emg, ttl], axis=1)

    def operator(self, kind, data):
        """Reads the prompt, sets the intensity, fires 0.1 s later."""
        if kind == "prompt" and data.get("label") == "stimulus":
            with self.lock:
                at = self.feeder.n + int(0.1 * FE) + self.feeder.chunk
                ma = float(data["params"]["intensity_ma"])
                self.patient.stimulate(at, ma, 1000)
                self.pulses.append(at)
                self._to_mark.append((at, ma))


@pytest.mark.slow
def test_operator_guided_hreflex_over_lsl_analyses(tmp_path, capsys):
    st = Stimulator()
    path = tmp_path / "h.h5"
    rec = Recorder(f"lsl://{st.name}?ttl=trigger&ttl_threshold=2.5", path,
                   metadata={"protocol": "hreflex", "muscle": "soleus"})  # fmt: skip
    rec.open()
    rec.listeners.append(st.operator)
    ladder = tuple(np.arange(6.0, 36.1, 2.0))
    cfg = OperatorHReflexConfig(ladder_ma=ladder, interval_s=0.5, wait_s=5.0)
    protocol = OperatorHReflex(rec, cfg)
    protocol.attach()
    st.feeder.t0 = pylsl.local_clock() + 0.1
    st.feeder.start()
    try:
        while rec.step(0.05) and not protocol.done:
            protocol.tick()
        for _ in range(10):
            rec.step(0.05)
    finally:
        rec.close()
        st.feeder.stop()
    truth = st.patient.ground_truth()
    assert [r["status"] for r in protocol.results] == ["delivered"] * len(ladder)
    with open_session(path) as s:
        stims = [e for e in s.events if e["kind"] == "stimulus"]
        idx = np.array([e["emg_sample_index"] for e in stims])
        origin = int(s.file["streams/emg"].attrs["first_device_sample"])
        # every pulse at the exact sample the stimulator fired, with the prompted intensity
        np.testing.assert_array_equal(idx + origin, st.pulses)
        np.testing.assert_allclose([e["intensity_ma"] for e in stims], ladder)
        assert all(e["params"]["intensity_from"] == "prompt" for e in stims)
        assert all(e["width_us"] == 1000.0 for e in stims)
        notes = [e["params"] for e in s.events if e["label"] == PULSE_LABEL]
        assert [n["emg_sample_index"] for n in notes] == idx.tolist()
        emg, rate = s.emg_uv[:, 0].copy(), s.emg_rate_hz
        counts = s.emg_counts
    from dsp.hreflex import analyze_hreflex

    # the ladder here is 0.5 s apart (a test): use every pulse for the recruitment
    res = analyze_hreflex(emg, rate, idx, np.asarray(ladder), n_boot=0,
                          recruitment_interval_s=(0.0, 60.0))  # fmt: skip
    assert abs(res.mmax_uv / truth["hreflex"]["mmax_p2p_uv"] - 1) < 0.05
    assert abs(res.m_latency_ms - truth["hreflex"]["latency_ms"]["m"]) < 0.5
    assert res.artifact["offset_ms_max_abs"] < 0.5  # TTL pulses line up with the artifacts
    capsys.readouterr()
    assert main(["analyze", str(path), "--json", "--no-write"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert "hreflex" in summary["analyses"]
    # the journal (prompts included) rebuilds the same pulses
    out = replay_capture(capture_path_for(path), tmp_path / "r.h5")
    with open_session(out) as r:
        again = [e for e in r.events if e["kind"] == "stimulus"]
        assert [(e["emg_sample_index"], e["intensity_ma"]) for e in again] == [
            (e["emg_sample_index"], e["intensity_ma"]) for e in stims
        ]
        np.testing.assert_array_equal(r.emg_counts, counts)


def test_marker_timed_pulses_are_refined_onto_their_artifacts(tmp_path):
    """No trigger wired: pulses come from late markers and land on their artifacts' samples."""
    st = Stimulator(seed=5, markers=True)
    path = tmp_path / "m.h5"
    rec = Recorder(f"lsl://{st.name}?emg=0&markers={st.marker_name}", path)
    rec.open()
    rec.listeners.append(st.operator)
    ladder = (10.0, 14.0, 18.0, 22.0, 26.0, 30.0)
    protocol = OperatorHReflex(rec, OperatorHReflexConfig(ladder_ma=ladder, interval_s=0.5))
    protocol.attach()
    st.feeder.t0 = pylsl.local_clock() + 0.1
    st.feeder.start()
    try:
        while rec.step(0.05) and not protocol.done:
            protocol.tick()
    finally:
        rec.close()
        st.feeder.stop()
    with open_session(path) as s:
        stims = [e for e in s.events if e["kind"] == "stimulus"]
        origin = int(s.file["streams/emg"].attrs["first_device_sample"])
        assert [e["emg_sample_index"] + origin for e in stims] == st.pulses
        assert [e["intensity_ma"] for e in stims] == list(ladder)  # from the markers
        moved = [e["params"]["moved_ms"] for e in stims]
        assert all(-8.3 <= m <= -1.9 for m in moved), moved  # the markers' lateness, undone
        assert all(e["params"]["timing"] == "marker+artifact" for e in stims)
