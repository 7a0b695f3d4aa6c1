"""One forged or CRC-passing corrupted SAMPLES frame must not wreck a recording (issue 18 item 1).

The emulated device sends one implausible frame with a valid CRC (``Faults.forge_samples``,
``sim://...&forge=KIND``); the recorder sets it aside, counts it, records it in the file
(``quarantine`` events, root attributes ``quarantined_frames`` and ``quarantine``), keeps every
genuine sample, and a replay and a recovery of the capture decide alike.
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from acquire.recorder import Recorder, replay_capture
from acquire.recover import recover_session
from acquire.session_file import open_session
from firmware_iface.client import DeviceClient
from firmware_iface.emulator import Faults, emulator_link, make_device


def _record(tmp_path, forge, *, speed="fast", duration=3.0, after=60, name="q"):
    out = tmp_path / f"{name}.h5"
    url = f"sim://simple?seed=2&forge={forge}&forge_after={after}&speed={speed}"
    rec = Recorder(url, out, duration_s=duration)
    state = rec.run()
    return rec, out, state


def _emg(path):
    with open_session(path) as s:
        counts = s.emg.counts[:]
        return (
            counts,
            len(s.gaps),
            dict(s.attrs),
            [e for e in s.events if e["kind"] == "quarantine"],
        )


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        ("index_jump", "index"),
        ("huge_jump", "index"),
        ("channels", "shape"),
        ("time_wrap", "index"),
    ],
)
def test_forged_frame_is_set_aside_and_the_recording_goes_on(tmp_path, forge, reason):
    rec, out, state = _record(tmp_path, forge)
    assert state == "complete"
    assert rec.stats.quarantined == {reason: 1}
    counts, n_gaps, attrs, events = _emg(out)
    assert counts.shape == (6000, 2)  # 3 s at 2 kHz: every genuine sample, no 100M-row file
    assert n_gaps == 0  # nothing claimed missing
    assert attrs["quarantined_frames"] == 1 and attrs["quarantine"] == {reason: 1}
    (ev,) = events
    assert ev["label"] == reason and ev["params"]["stream"] == "emg"
    assert ev["params"]["n_samples"] == 20 and ev["params"]["detail"]

    # the same data as a clean recording of the same device and seed
    clean = tmp_path / "clean.h5"
    Recorder("sim://simple?seed=2", clean, duration_s=3.0).run()
    np.testing.assert_array_equal(counts, _emg(clean)[0])

    # replay and recover of the capture set the same frame aside
    replayed = replay_capture(out.with_suffix(".capture"), tmp_path / "r.h5")
    r_counts, r_gaps, r_attrs, r_events = _emg(replayed)
    np.testing.assert_array_equal(r_counts, counts)
    assert r_gaps == 0 and r_attrs["quarantine"] == {reason: 1} and len(r_events) == 1
    broken = tmp_path / "k.h5"
    shutil.copy(out.with_suffix(".capture"), tmp_path / "k.capture")
    report = recover_session(broken)
    assert "1 implausible frame(s) set aside" in report.message
    np.testing.assert_array_equal(_emg(broken)[0], counts)


def test_frame_moved_in_index_and_time_is_caught_by_the_clock_fit(tmp_path):
    """Index +40,000 and its header time moved to match: on the stream's line, but 20 s ahead
    of the device clock as the arrivals show it (real time)."""
    rec, out, state = _record(tmp_path, "time_jump", speed="realtime", duration=8.0, after=600)
    assert state == "complete" and rec.stats.quarantined == {"time": 1}
    counts, n_gaps, _attrs, events = _emg(out)
    assert counts.shape == (16000, 2) and n_gaps == 0
    assert "clock fit" in events[0]["params"]["detail"]
    replayed = replay_capture(out.with_suffix(".capture"), tmp_path / "r.h5")
    r_counts, _, r_attrs, _ = _emg(replayed)
    np.testing.assert_array_equal(r_counts, counts)
    assert r_attrs["quarantine"] == {"time": 1}


def test_client_re_anchors_when_the_line_really_moves():
    """A device restarted on the same link (power cycle): after a few frames that agree with
    each other, the new line is taken; the client does not quarantine the rest of the stream."""
    device = make_device()
    link = emulator_link(device)
    client = DeviceClient(link)
    try:
        client.connect()
        client.start()
        n = 0
        while n < 50:
            n += sum(1 for b in client.read(0.5) if getattr(b, "stream", None) == 0)
        with link.runner.lock:
            device.power_cycle()
        client.identify()
        client.start()
        after = 0
        while after < 30:
            after += sum(1 for b in client.read(0.5) if getattr(b, "stream", None) == 0)
        assert client.stats.quarantined_frames <= 2 * 2  # at most the re-anchoring frames
    finally:
        client.close()


def test_clean_and_lossy_links_quarantine_nothing():
    """Lost frames, a device-side overrun and a STOP/START pause are gaps, never implausible."""
    device = make_device(faults=Faults(drop_frame_every=7))
    link = emulator_link(device)
    client = DeviceClient(link)
    try:
        client.connect()
        client.start()
        for _ in range(10):
            client.read(0.1)
        client.stop()
        client.read(0.3)
        client.start()
        for _ in range(10):
            client.read(0.1)
        assert client.stats.missing(0) > 0
        assert client.stats.quarantined_frames == 0
    finally:
        client.close()


def test_recorder_client_keeps_a_long_train_alive_in_real_time(tmp_path):
    """Issue 18 item 4: a rate block goes out as one device-timed train, longer than the
    heartbeat timeout; the client's heartbeat keeps it going while the recorder records."""
    import threading

    from firmware_iface import auth

    key = auth.write_key_file(tmp_path / "k.key", bytes(range(32)))
    out = tmp_path / "train.h5"
    rec = Recorder(f"sim://simple?seed=1&speed=realtime&key_file={key}", out,
                   stim_key=bytes(range(32)), duration_s=5.0)  # fmt: skip
    rec.open()
    threading.Timer(0.5, lambda: rec.client.stimulate(1.0, 100, mode="train", pulses=25,
                                                      interval_ms=120)).start()  # fmt: skip
    assert rec.run() == "complete"
    with open_session(out) as s:
        assert len(s.stimulus_arrays()["stim_sample_index"]) == 25
        assert not [e for e in s.events if e["label"] == "stimulation_watchdog"]
    assert rec.stats.watchdog_stops == 0


def test_a_train_stopped_by_the_watchdog_is_a_note_in_the_file(tmp_path):
    """Without the heartbeat (ended by hand, the recorder's own pings 10 s apart) the device
    stops the train after 2 s and the recorder writes what it reported."""
    import threading

    from firmware_iface import auth

    key = auth.write_key_file(tmp_path / "k.key", bytes(range(32)))
    out = tmp_path / "stopped.h5"
    rec = Recorder(f"sim://simple?seed=1&speed=realtime&key_file={key}", out,
                   stim_key=bytes(range(32)), duration_s=6.0, ping_interval_s=10.0)  # fmt: skip

    def train():
        rec.client.stimulate(1.0, 100, mode="train", pulses=40, interval_ms=100)
        rec.client.end_heartbeat()  # the host "freezes" as far as the device can tell

    rec.open()
    rec._last_ping = time.monotonic()  # the recorder's next ping comes 10 s later
    threading.Timer(0.5, train).start()
    assert rec.run() == "complete"
    assert rec.stats.watchdog_stops == 1
    with open_session(out) as s:
        n = len(s.stimulus_arrays()["stim_sample_index"])
        (note,) = [e for e in s.events if e["label"] == "stimulation_watchdog"]
    assert 5 <= n < 40 and f"{n} of 40 pulses" in note["params"]["text"]
