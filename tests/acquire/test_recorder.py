"""The recorder end to end against the emulated device (in-process link), and its replay."""

from __future__ import annotations

import numpy as np
import pytest

from acquire.capture import read_capture
from acquire.errors import LinkLostError, PersonalDataError
from acquire.recorder import Recorder, replay_capture
from acquire.session_file import FILL_VALUE, open_session
from firmware_iface.emulator import Faults, emulator_link, make_device
from firmware_iface.emulator.source import SimpleSource

CONFIG = dict(emg_rate_hz=2000, n_emg=3, angle_rate_hz=500, n_angle=1, emg_bits=16)


def test_record_then_replay_is_bit_identical(tmp_path):
    out = tmp_path / "s.h5"
    rec = Recorder(
        "sim://simple?seed=4",
        out,
        metadata={"subject_id": "S9", "muscle": "soleus"},
        config=CONFIG,
        duration_s=3.0,
    )
    rec.open()
    rec.add_marker("start")
    rec.prompt("stretch", velocity_deg_s=90)
    assert rec.run() == "complete"
    capture = tmp_path / "s.capture"
    assert capture.exists()
    kinds = {r.kind_name for r in read_capture(capture)}
    assert {"header", "rx", "tx", "event"} <= kinds
    with open_session(out) as s:
        assert s.state == "complete"
        assert s.emg_counts.shape == (6000, 3)  # exactly --duration of session time
        assert s.angle.counts.shape == (1500, 1)
        assert s.device["device_id"] == "EMU-0001"
        assert s.device["protocol_version"].startswith("1.")
        assert s.clock["method"] == "lower-envelope" and s.clock["n_anchors"] >= 1
        assert {"marker", "prompt", "status"} <= {e["kind"] for e in s.events}
        assert s.gaps == []
        live = s.emg_counts.copy(), s.angle.counts[()]
    replayed = replay_capture(capture, tmp_path / "r.h5")
    with open_session(replayed) as r:
        np.testing.assert_array_equal(r.emg_counts, live[0])
        np.testing.assert_array_equal(r.angle.counts[()], live[1])
        assert [e["label"] for e in r.events if e["kind"] == "marker"] == ["start"]
        assert r.metadata["muscle"] == "soleus"


def test_dropped_frames_become_exact_gaps(tmp_path):
    """Device-side frame drops: each becomes a gap of exactly the samples not received."""
    device = make_device(SimpleSource(seed=2), faults=Faults(drop_frame_every=7))
    rec = Recorder(
        "sim://faulty",
        tmp_path / "g.h5",
        config=CONFIG,
        duration_s=2.0,
        link_opener=lambda url: emulator_link(device),
    )
    rec.run()
    with open_session(tmp_path / "g.h5") as s:
        counts = s.emg_counts
        missing = (counts == FILL_VALUE).all(axis=1)
        assert missing.any()
        emg_gaps = [g for g in s.gaps if g["stream"] == "emg"]
        assert sum(g["n_samples"] for g in emg_gaps) == missing.sum()
        for g in emg_gaps:
            assert missing[g["start_index"] : g["start_index"] + g["n_samples"]].all()
            assert g["reason"] == "sequence"
        assert np.isnan(s.emg_uv[missing]).all() and not np.isnan(s.emg_uv[~missing]).any()
        # received samples sit at their device sample number: compare with the source itself
        reference = SimpleSource(seed=2)
        reference.configure(2000.0, 3, 500.0, 1, 16)
        expected = reference.emg_block(counts.shape[0])
        np.testing.assert_array_equal(counts[~missing], expected[~missing])


def test_personal_data_refused_before_opening(tmp_path):
    with pytest.raises(PersonalDataError):
        Recorder("sim://simple", tmp_path / "x.h5", metadata={"patient_name": "Jane"})
    assert not list(tmp_path.iterdir())


def test_link_lost_without_reconnect_keeps_data(tmp_path):
    link = emulator_link(make_device(SimpleSource(seed=1)), speed="realtime")
    rec = Recorder("sim://x", tmp_path / "l.h5", config=CONFIG, link_opener=lambda url: link)
    rec.open()
    for _ in range(20):
        rec.step(0.05)
    link.runner.stop()
    link._link.close()
    with pytest.raises(LinkLostError, match="lost"):
        rec.run()
    with open_session(tmp_path / "l.h5") as s:
        assert s.state == "stopped_link_lost"
        assert s.emg.n_samples > 0
        assert any(e["kind"] == "link" and e["label"] == "lost" for e in s.events)


def test_clock_mapping_recovers_device_drift_under_jitter(tmp_path):
    """Device clock 2000 ppm fast, 15 ms delivery jitter: the stored mapping finds the drift.

    (A short run on a loaded machine: the drift must be large to be measurable in 12 s; the
    lower-envelope fit itself is checked to a few ppm in test_clock.py.)"""
    url = "sim://simple?seed=1&speed=realtime&drift_ppm=2000&latency_ms=3&jitter_ms=15"
    rec = Recorder(url, tmp_path / "c.h5", config=CONFIG, duration_s=12.0, ping_interval_s=0.5)
    rec.run()
    with open_session(tmp_path / "c.h5") as s:
        clock = s.clock
        assert clock["method"] == "lower-envelope" and 11 <= clock["n_anchors"] <= 14
        # host seconds per device second = 1 / (1 + 2000e-6): drift_ppm about -1996
        assert abs(clock["drift_ppm"] + 1996) < 400, clock["drift_ppm"]
        assert 0.002 < clock["one_way_latency_s"] < 0.1
        assert clock["n_pings"] >= 10 and s.clock["pings"].shape[0] == clock["n_pings"]
        # arrival-time stamping would scatter by the jitter; the envelope residual is far less
        assert clock["residual_sd_s"] < 0.005


def test_emg_between_device_indices_matches_the_file_across_gaps(tmp_path):
    """The runner's atomic read of recent EMG: aligned with device sample numbers, gaps NaN."""
    device = make_device(SimpleSource(seed=5), faults=Faults(drop_frame_every=5))
    opener = lambda url: emulator_link(device)  # noqa: E731
    rec = Recorder("sim://faulty", tmp_path / "b.h5", config=CONFIG, link_opener=opener)
    rec.open()
    while rec.latest_emg_index() < (Recorder.RECENT_EMG_S + 1) * 2000:
        rec.step(0.02)
    latest = rec.latest_emg_index()
    first, stop = latest - 3000, latest - 100
    window = rec.emg_uv_between(first, stop)
    assert rec.emg_uv_between(latest - 10, latest + 2) is None  # not received yet
    held = int(2000 * Recorder.RECENT_EMG_S)
    assert rec.emg_uv_between(latest - held - 10, latest - held + 10) is None  # older than held
    rec.close()
    with open_session(tmp_path / "b.h5") as s:
        emg = np.asarray(s.emg_uv)
        origin = s.emg.first_device_sample  # row i is device sample origin + i
    expected = emg[first - origin : stop - origin]
    assert np.isnan(expected).any()  # the span holds dropped frames
    np.testing.assert_array_equal(window, expected)
