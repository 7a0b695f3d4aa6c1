"""Operator-guided H-reflex where tonuslab triggers the stimulator through BITalino O1.

The emulated bench: O1 drives the stimulator's trigger input, its sync output is wired to I1,
and its intensity dial is the operator's (the test's operator sets it to each prompted value).
"""

from __future__ import annotations

import pytest

from acquire.errors import AcquisitionError
from acquire.protocols.operator_hreflex import OperatorHReflex, OperatorHReflexConfig
from acquire.recorder import Recorder
from acquire.session_file import open_session
from firmware_iface.emulator.bitalino import BitalinoDevice, BitalinoPty
from firmware_iface.emulator.trigno import TrignoDevice, TrignoServer


def test_o1_triggers_each_prompted_pulse_and_stop_is_immediate(tmp_path):
    dev = BitalinoDevice(profile="simple", stim_intensity_ma=0.0)
    with BitalinoPty(dev, speed="realtime") as emu:
        path = tmp_path / "h.h5"
        rec = Recorder(f"bitalino://{emu.path}?emg=A1&ttl=I1", path)
        rec.open()

        def operator(kind, data):  # sets the dial to the prompted intensity
            if kind == "prompt" and data["label"] == "stimulus":
                dev.stim_intensity_ma = data["params"]["intensity_ma"]

        rec.listeners.append(operator)
        cfg = OperatorHReflexConfig(ladder_ma=(8.0, 12.0, 16.0, 20.0), interval_s=0.6,
                                    wait_s=3.0, trigger_after_s=0.3)  # fmt: skip
        messages = []
        proto = OperatorHReflex(rec, cfg, on_message=messages.append)
        proto.attach()
        try:
            while rec.step(0.05) and not proto.done:
                proto.tick()
                if len(proto.results) == 3:
                    proto.stop()  # the operator stops after three pulses
            for _ in range(10):
                rec.step(0.05)
        finally:
            rec.close()
    assert [p["intensity_ma"] for p in dev.pulses] == [8.0, 12.0, 16.0]
    assert "tonuslab triggers the stimulator in 0.3 s" in messages[1]
    with open_session(path) as s:
        stims = [e for e in s.events if e["kind"] == "stimulus"]
        assert [e["intensity_ma"] for e in stims] == [8.0, 12.0, 16.0]
        # each pulse at exactly the frame the stimulator fired (the file's rows start at the
        # first frame received, so compare the spacing)
        fired = [p["emg_sample_index"] for p in dev.pulses]
        rows = [e["emg_sample_index"] for e in stims]
        assert [r - rows[0] for r in rows] == [f - fired[0] for f in fired]
        assert any(e["params"].get("stopped") for e in s.events if e["kind"] == "note")


def test_a_source_without_trigger_output_is_refused(tmp_path):
    dev = TrignoDevice(profile="simple")
    with TrignoServer(dev, speed="fast") as srv:
        rec = Recorder(f"{srv.url}?emg=1", tmp_path / "t.h5")
        rec.open()
        try:
            with pytest.raises(AcquisitionError, match="has no stimulator trigger output"):
                OperatorHReflex(rec, OperatorHReflexConfig(trigger_after_s=1.0))
        finally:
            rec.close()
