"""``lsl://`` end to end: real pylsl outlets (loopback only) recorded by the real recorder.

Each test pushes a known signal (the sample number is in the data), so every stored row can be
checked against the sample it must be, and every gap against the samples never pushed.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from acquire.capture import capture_path_for
from acquire.errors import LinkLostError, SourceRateChangedError
from acquire.recorder import Recorder, replay_capture
from acquire.session_file import open_session
from acquire.source_recorder import SOURCE_ERROR_STATE, SourceRecorder

from .lsl_outlets import Feeder, make_outlet, pylsl, unique

RATE = 2148.1481  # a real non-integer rate (Delsys Trigno EMG)


def numbered(idx):
    """E0 = sample number (uV), E1 = (n mod 1000) / 1000 mV (= n mod 1000 uV), angle = n/10 deg."""
    idx = np.asarray(idx, dtype=np.float64)
    return np.stack([idx, (idx % 1000) * 1e-3, (idx % 3600) / 10.0], axis=1)


CHANNELS = (("E0", "microvolts", "EMG"), ("E1", "mV", "EMG"), ("knee", "degrees", "Angle"))


def start(feeders) -> None:
    """Start the feeders on one time origin (sample 0 of each at the same instant)."""
    t0 = pylsl.local_clock() + 0.1
    for f in feeders:
        f.t0 = t0
        f.start()


def record(url, path, feeders, *, seconds=None, run=False, **kwargs) -> SourceRecorder:
    """Open ``url`` (the outlets exist, silent), start ``feeders``, record ``seconds``."""
    rec = Recorder(url, path, duration_s=seconds, **kwargs)
    assert isinstance(rec, SourceRecorder)
    rec.open()
    start(feeders)
    try:
        if run:
            rec.run()
        else:
            while rec.step(0.05):
                pass
    finally:
        rec.close()
        for f in feeders:
            f.stop()
    return rec


def check_numbered(session, *, second=True):
    """Every stored EMG row holds its own sample number; returns (first sample, rows kept)."""
    emg = session.emg_uv
    ok = ~np.isnan(emg[:, 0])
    first = emg[ok][0, 0] - np.flatnonzero(ok)[0]
    rows = np.arange(emg.shape[0])
    np.testing.assert_allclose(emg[ok, 0], first + rows[ok], atol=1e-3)
    if second:
        np.testing.assert_allclose(emg[ok, 1], (first + rows[ok]) % 1000, atol=2e-3)
    return int(first), ok


def test_known_values_non_integer_rate_exact_holes_and_replay(tmp_path):
    name = unique("Trigno")
    holes = [(6000, 300), (8000, 3)]  # about 2.8 s and 3.7 s after the outlet starts
    feeder = Feeder(lambda: make_outlet(name, CHANNELS, RATE), RATE, numbered, holes=holes)
    path = tmp_path / "s.h5"
    rec = record(f"lsl://{name}?emg=0,E1&angle=knee&jitter_ms=0", path, [feeder], seconds=4.5)
    assert rec.stats.samples["emg"] > 0
    with open_session(path) as s:
        assert s.emg_rate_hz == RATE and s.angle_rate_hz == RATE
        assert s.emg_channel_names == ["E0", "E1"]
        assert [c["unit"] for c in s.channels] == ["uV", "uV", "deg"]
        first, ok = check_numbered(s)
        np.testing.assert_allclose(s.goniometer_deg[ok, 0], ((first + np.flatnonzero(ok)) % 3600)
                                   / 10.0, atol=1e-3)  # fmt: skip
        gaps = [(g["stream"], g["start_index"], g["n_samples"]) for g in s.gaps]
        expected = [(st, h - first, n) for h, n in holes for st in ("emg", "angle")]
        assert sorted(gaps) == sorted(expected)
        assert s.device["source_kind"] == "lsl" and s.device["lsl_name"] == name
        assert s.attrs["index_origin"] == "clock"
        counts, gonio, events = s.emg_counts, s.goniometer_deg, s.events
    # the journal rebuilds the file bit for bit
    out = replay_capture(capture_path_for(path), tmp_path / "r.h5")
    with open_session(out) as r:
        np.testing.assert_array_equal(r.emg_counts, counts)
        np.testing.assert_array_equal(r.goniometer_deg, gonio)
        assert [(g["stream"], g["start_index"], g["n_samples"]) for g in r.gaps] == gaps
        assert [e["kind"] for e in r.events] == [e["kind"] for e in events]


def test_jittered_host_stamps_make_no_false_gaps(tmp_path):
    name = unique("Bridge")
    feeder = Feeder(lambda: make_outlet(name, CHANNELS[:2], 2000.0), 2000.0,
                    lambda i: numbered(i)[:, :2], chunk=40, jitter_s=1e-3)  # fmt: skip
    path = tmp_path / "j.h5"
    record(f"lsl://{name}", path, [feeder], seconds=3.0)
    with open_session(path) as s:
        assert s.gaps == [] and s.emg.n_samples == 6000
        assert s.emg_channel_names == ["E0", "E1"]  # default: the channels in volts


def test_second_stream_ttl_and_markers(tmp_path):
    emg_name, gonio_name, stim_name = unique("Amp"), unique("Gonio"), unique("Stim")
    fe, fa = 2000.0, 250.0
    edges = [5000, 6500, 8000]  # about 2.5, 3.25 and 4 s
    step_s = 3.6  # the joint moves at 3.6 s: seen in both streams

    def emg_signal(idx):
        ttl = np.zeros(idx.size)
        for e in edges:
            ttl[(idx >= e) & (idx < e + 10)] = 5.0
        return np.stack([idx, np.where(idx / fe >= step_s, 100.0, 0.0), ttl], axis=1)

    def angle_signal(idx):
        return np.where(idx / fa >= step_s, 30.0, 0.0)[:, None]

    emg = Feeder(lambda: make_outlet(emg_name, [("E0", "uV", "EMG"), ("E1", "uV", "EMG"),
                                                ("trig", "V", "Trigger")], fe),
                 fe, emg_signal)  # fmt: skip
    gonio = Feeder(lambda: make_outlet(gonio_name, [("elbow", "deg", "Angle")], fa, stream_type=
                                       "Angle"), fa, angle_signal, chunk=8)  # fmt: skip
    info = pylsl.StreamInfo(stim_name, "Markers", 1, 0, pylsl.cf_string, stim_name)
    markers = pylsl.StreamOutlet(info)
    pending = list(edges)

    def name_the_pulse(n):  # the stimulator's software names each pulse, 4 ms late
        while pending and n >= pending[0] + 40:
            e = pending.pop(0)
            markers.push_sample([f"stim {12.5 + edges.index(e)}mA"], emg.t0 + e / fe + 0.004)
        if n >= 7000 and not hasattr(name_the_pulse, "done"):
            name_the_pulse.done = True
            markers.push_sample(["relax"], emg.t0 + 7000 / fe)

    emg.hook = name_the_pulse
    path = tmp_path / "m.h5"
    url = f"lsl://{emg_name}?emg=0,1&ttl=trig&ttl_threshold=2.5&angle_stream={gonio_name}:elbow"
    record(f"{url}&markers={stim_name}", path, [emg, gonio], seconds=4.5)
    with open_session(path) as s:
        first, _ = check_numbered(s, second=False)
        stims = [e for e in s.events if e["kind"] == "stimulus"]
        assert [e["emg_sample_index"] for e in stims] == [e - first for e in edges]
        assert [e["intensity_ma"] for e in stims] == [12.5, 13.5, 14.5]
        assert all(e["params"]["marker_offset_ms"] == pytest.approx(4.0, abs=0.6) for e in stims)
        (relax,) = [e for e in s.events if e["kind"] == "marker"]
        assert relax["label"] == "relax" and relax["emg_sample_index"] == 7000 - first
        # the goniometer (own stream, own rate) lines up with the EMG to one angle sample
        t_emg = s.emg_time_s[np.argmax(s.emg_uv[:, 1] > 50)]
        t_angle = s.angle_time_s[np.argmax(s.goniometer_deg[:, 0] > 15)]
        assert s.angle_rate_hz == fa
        assert abs(t_angle - t_emg) <= 1 / fa + 1e-6


def test_outlet_vanishes_and_comes_back_with_the_gap_recorded(tmp_path):
    name = unique("Shimmer")
    rate = 1024.0
    feeder = Feeder(lambda: make_outlet(name, CHANNELS, rate, source_id=f"{name}-sid"), rate,
                    numbered, vanish=(int(2.5 * rate), 1.5))  # fmt: skip
    path = tmp_path / "v.h5"
    rec = record(f"lsl://{name}?angle=2", path, [feeder], seconds=6.0, reconnect=True,
                 reconnect_timeout_s=20.0)  # fmt: skip
    assert rec.stats.link_losses == 1
    with open_session(path) as s:
        first, _ = check_numbered(s)  # every row after the gap is its own sample: exact gap
        (gap,) = [g for g in s.gaps if g["stream"] == "emg"]
        assert gap["reason"] == "link_lost"
        assert gap["n_samples"] >= int(1.5 * rate)
        # the last chunks pushed just before the outlet was destroyed may never leave it (liblsl
        # drops an outlet's unsent buffer): the gap starts at most a few chunks early
        vanished = int(2.5 * rate) - first
        assert vanished - 3 * feeder.chunk <= gap["start_index"] <= vanished
        links = [e["label"] for e in s.events if e["kind"] == "link"]
        assert links == ["lost", "restored"] and s.state == "complete"


def test_without_reconnect_a_vanished_outlet_stops_the_recording_with_data_kept(tmp_path):
    name = unique("Gone")
    feeder = Feeder(lambda: make_outlet(name, CHANNELS, 1000.0), 1000.0, numbered,
                    vanish=(1500, 30.0))  # fmt: skip
    path = tmp_path / "g.h5"
    with pytest.raises(LinkLostError, match=r"vanished.*--reconnect"):
        record(f"lsl://{name}?angle=2", path, [feeder], run=True)
    with open_session(path) as s:
        assert s.state == "stopped_link_lost" and s.emg.n_samples > 200
        check_numbered(s)


def test_a_stream_back_at_another_rate_stops_with_everything_kept(tmp_path):
    name = unique("Reconf")
    rates = iter([1000.0, 500.0])
    feeder = Feeder(lambda: make_outlet(name, CHANNELS, next(rates), source_id=name), 1000.0,
                    numbered, vanish=(1500, 1.0))  # fmt: skip
    path = tmp_path / "r.h5"
    with pytest.raises(SourceRateChangedError, match="came back at 500 Hz instead of 1000 Hz"):
        record(f"lsl://{name}?angle=2", path, [feeder], run=True, reconnect=True)
    with open_session(path) as s:
        assert s.state == SOURCE_ERROR_STATE and s.emg.n_samples > 200
        check_numbered(s)


def test_the_recorder_does_not_record_its_own_republished_stream(tmp_path):
    """``--lsl`` republishing: an excluded source id is never resolved."""
    name = unique("Self")
    outlet = make_outlet(name, CHANNELS, 1000.0, source_id=f"tonuslab:{name}:emg")
    rec = Recorder(f"lsl://{name}?timeout=1.5", tmp_path / "x.h5")
    rec.exclude_source_ids({f"tonuslab:{name}:emg"})
    from acquire.errors import SourceNotFoundError

    with pytest.raises(SourceNotFoundError, match="no LSL stream with name="):
        rec.open()
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "x.capture").exists()
    del outlet


def test_the_capture_of_a_rate_change_replays_to_the_same_stop(tmp_path):
    name = unique("Reconf2")
    rates = iter([1000.0, 500.0])
    feeder = Feeder(lambda: make_outlet(name, CHANNELS, next(rates), source_id=name), 1000.0,
                    numbered, vanish=(1500, 1.0))  # fmt: skip
    path = tmp_path / "r.h5"
    with pytest.raises(SourceRateChangedError):
        record(f"lsl://{name}?angle=2", path, [feeder], run=True, reconnect=True)
    out = replay_capture(capture_path_for(path), tmp_path / "again.h5")
    with open_session(path) as a, open_session(out) as b:
        assert b.state == a.state == SOURCE_ERROR_STATE
        np.testing.assert_array_equal(a.emg_counts, b.emg_counts)
        assert [e["label"] for e in b.events if e["kind"] == "link"] == ["lost"]


def test_free_disk_stop_closes_the_file_with_the_data(tmp_path):
    from acquire.errors import DiskFullError

    name = unique("Disk")
    feeder = Feeder(lambda: make_outlet(name, CHANNELS, 1000.0), 1000.0, numbered)
    path = tmp_path / "d.h5"
    rec = Recorder(f"lsl://{name}?angle=2", path)
    rec.open()
    start([feeder])
    try:
        while rec.stats.samples["emg"] < 1500:
            rec.step(0.05)
        rec.writer._min_free_bytes = 1 << 62  # the filesystem now reports too little room
        with pytest.raises(DiskFullError, match="disk"):
            rec.run()
    finally:
        feeder.stop()
    with open_session(path) as s:
        assert s.state == "stopped_disk_full" and s.emg.n_samples >= 1000
        check_numbered(s)


def test_a_vanished_marker_stream_is_noted_and_the_recording_goes_on(tmp_path):
    name, stim_name = unique("Amp"), unique("Stim")
    feeder = Feeder(lambda: make_outlet(name, CHANNELS, 1000.0), 1000.0, numbered)
    info = pylsl.StreamInfo(stim_name, "Markers", 1, 0, pylsl.cf_string, stim_name)
    holder = {"outlet": pylsl.StreamOutlet(info)}

    def close_markers(n):
        if n >= 1000 and holder["outlet"] is not None:
            holder["outlet"].push_sample(["stim 5mA"], feeder.t0 + 0.9)
            time.sleep(0.2)
            holder["outlet"] = None  # the stimulator's software quits

    feeder.hook = close_markers
    path = tmp_path / "m.h5"
    record(f"lsl://{name}?angle=2&markers={stim_name}&refine=none", path, [feeder], seconds=3.0)
    with open_session(path) as s:
        assert s.state == "complete" and s.emg.n_samples == 3000 and s.gaps == []
        (note,) = [e for e in s.events if e["kind"] == "note"]
        assert note["label"].startswith(f"LSL stream {stim_name} lost") and note["time_s"] > 0.9
        (stim,) = [e for e in s.events if e["kind"] == "stimulus"]
        assert stim["emg_sample_index"] == 900 and stim["intensity_ma"] == 5.0
