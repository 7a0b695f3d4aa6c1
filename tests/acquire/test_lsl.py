"""acquire.lsl.LslPublisher received by a real pylsl inlet, kept on the loopback interface."""

import os
import pathlib
import tempfile
import time
import uuid

import numpy as np
import pytest

# liblsl reads its configuration at the first LSL call of the process: set it before importing.
_CONFIG_DIR = pathlib.Path(tempfile.mkdtemp(prefix="tonuslab-lsl-"))
_SESSION = f"tonuslab-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"

from acquire.lsl import LslError, LslPublisher, write_loopback_config  # noqa: E402

os.environ.setdefault("LSLAPICFG", str(write_loopback_config(_CONFIG_DIR / "lsl.cfg", _SESSION)))
pylsl = pytest.importorskip("pylsl")

CHANNELS = [
    {"name": "biceps", "kind": "emg", "unit": "uV", "scale": 0.15, "offset": 0.0,
     "highpass_hz": 20.0, "lowpass_hz": 450.0},
    {"name": "triceps", "kind": "emg", "unit": "uV", "scale": 0.15, "offset": 0.0,
     "highpass_hz": 20.0, "lowpass_hz": 450.0},
    {"name": "elbow", "kind": "angle", "unit": "deg", "scale": 0.01, "offset": 1000.0,
     "highpass_hz": None, "lowpass_hz": None},
]  # fmt: skip


def _device_to_host(device_time_s):
    # A device clock running 50 ppm fast, started 12.5 s after the host's epoch.
    return 12.5 + device_time_s * (1.0 + 50e-6)


def _inlet(source_id):
    found = pylsl.resolve_byprop("source_id", source_id, minimum=1, timeout=10.0)
    assert found, f"stream {source_id} not found on loopback"
    inlet = pylsl.StreamInlet(found[0], max_buflen=10, processing_flags=0)
    inlet.open_stream(timeout=10.0)
    return inlet


def _pull(inlet, n, timeout_s=10.0):
    values, stamps = [], []
    deadline = time.monotonic() + timeout_s
    while len(stamps) < n and time.monotonic() < deadline:
        chunk, ts = inlet.pull_chunk(timeout=0.2)
        values += chunk
        stamps += ts
    return np.asarray(values), np.asarray(stamps)


def test_loopback_config_keeps_lsl_on_this_machine(tmp_path):
    text = write_loopback_config(tmp_path / "x.cfg", "abc").read_text()
    assert "ResolveScope = machine" in text
    assert "{127.0.0.1}" in text and "SessionID = abc" in text


def test_samples_units_and_device_clock_timestamps_reach_an_inlet():
    name = f"tl-{uuid.uuid4().hex[:6]}"
    with LslPublisher(
        CHANNELS, 2000.0, 500.0, name=name, device_to_host=_device_to_host
    ) as publisher:
        emg_inlet = _inlet(f"tonuslab:{name}:emg")
        angle_inlet = _inlet(f"tonuslab:{name}:angle")

        info = emg_inlet.info()
        assert (info.name(), info.type(), info.channel_count()) == (f"{name}-EMG", "EMG", 2)
        assert info.nominal_srate() == 2000.0
        channel = info.desc().child("channels").child("channel")
        assert channel.child_value("label") == "biceps"
        assert channel.child_value("unit") == "microvolts"
        assert channel.next_sibling().child_value("label") == "triceps"
        angle_info = angle_inlet.info()
        angle_channel = angle_info.desc().child("channels").child("channel")
        assert (angle_info.type(), angle_channel.child_value("unit")) == ("Angle", "degrees")

        deadline = time.monotonic() + 10
        while not publisher.have_consumers() and time.monotonic() < deadline:
            time.sleep(0.01)

        rng = np.random.default_rng(3)
        counts = rng.integers(-2000, 2000, size=(200, 2), dtype=np.int32)
        # Samples 0..99, then samples 150..249 (a gap of 50 samples) in two blocks.
        publisher.push_emg(counts[:100], first_sample_device_time_s=10.0)
        publisher.push_emg(counts[100:], first_sample_device_time_s=10.0 + 150 / 2000.0)
        angle = np.array([[900.0], [-45.5], [120.25]])  # already in degrees (float)
        publisher.push_angle(angle, first_sample_device_time_s=10.0)
        values, stamps = _pull(emg_inlet, 200)
        angle_values, angle_stamps = _pull(angle_inlet, 3)

    assert values.shape == (200, 2)
    np.testing.assert_allclose(values, counts * 0.15, rtol=1e-6)
    index = np.r_[0:100, 150:250]
    offset = pylsl.local_clock() - time.monotonic()
    expected = np.array([_device_to_host(10.0 + i / 2000.0) for i in index]) + offset
    # Device-clock stamps (with the 50 ppm drift), not arrival times: within 20 us.
    np.testing.assert_allclose(stamps, expected, atol=2e-5, rtol=0)
    assert stamps[100] - stamps[99] == pytest.approx(51 / 2000.0 * (1 + 50e-6), abs=2e-6)
    np.testing.assert_allclose(angle_values[:, 0], [900.0, -45.5, 120.25])
    expected_angle = [_device_to_host(10.0 + i / 500.0) + offset for i in range(3)]
    np.testing.assert_allclose(angle_stamps, expected_angle, atol=2e-5, rtol=0)
    assert publisher.samples_pushed == {"emg": 200, "angle": 3}


def test_counts_convert_with_offset_and_bad_blocks_are_refused():
    with LslPublisher(CHANNELS, 1000.0, 100.0, name=f"tl-{uuid.uuid4().hex[:6]}") as publisher:
        inlet = _inlet(publisher_source := f"tonuslab:{publisher.name}:angle")
        assert publisher_source
        deadline = time.monotonic() + 10
        while not publisher.have_consumers() and time.monotonic() < deadline:
            time.sleep(0.01)
        publisher.push_angle(np.array([1000, 1100, 500], dtype=np.int32), 0.0)
        values, stamps = _pull(inlet, 3)
        np.testing.assert_allclose(values[:, 0], [0.0, 1.0, -5.0], atol=1e-6)
        # Without a clock mapping the first push anchors device time to "now".
        assert abs(stamps[0] - pylsl.local_clock()) < 5.0
        assert np.diff(stamps) == pytest.approx([0.01, 0.01], abs=1e-9)
        with pytest.raises(LslError):
            publisher.push_emg(np.zeros((4, 3)), 0.0)
    with pytest.raises(LslError):
        publisher.push_emg(np.zeros((4, 2)), 0.0)
    with pytest.raises(LslError):
        LslPublisher([{"name": "x", "kind": "other"}], 1000.0, 100.0)
