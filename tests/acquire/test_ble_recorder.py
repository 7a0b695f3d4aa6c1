"""The recorder over BLE: bleak BleakClient -> bumble -> the emulated device's GATT server.

The link drops mid-session (a radio fade, then the device is unreachable for a while); the
recorder's reconnect loop reopens the ``ble://`` URL (rescan, new BleakClient, re-subscribe),
identifies and restarts the device, and the session file holds exactly the samples the device
produced and the host heard, with the rest recorded as gaps.
"""

import threading
import time

import numpy as np
import pytest

pytest.importorskip("bumble")

from acquire.ble.bumble_backend import LocalBleWorld
from acquire.recorder import Recorder
from acquire.session_file import open_session
from firmware_iface.codec import StreamDecoder
from firmware_iface.emulator import SimpleSource
from firmware_iface.messages import MsgType, Samples


@pytest.fixture
def world():
    w = LocalBleWorld()
    yield w
    w.close()


def produced_samples(wire: bytes) -> dict[int, set[int]]:
    numbers = {0: set(), 1: set()}
    for frame in StreamDecoder().feed(wire):
        if frame.msg_type == MsgType.SAMPLES:
            s = Samples.unpack(frame.payload)
            numbers[s.stream].update(range(s.first_index, s.first_index + s.counts.shape[0]))
    return numbers


def test_recorder_over_ble_survives_a_dropped_link_with_exact_gaps(world, tmp_path):
    emulator = world.add_emulator(record_output=True)
    name = world.register("recorder-test")
    path = tmp_path / "ble.h5"
    recorder = Recorder(
        f"ble://tonuslab-emu?backend={name}&scan_timeout_s=2",
        path,
        metadata={"subject_id": "S001", "protocol": "free"},
        reconnect=True,
        reconnect_timeout_s=20.0,
        duration_s=2.0,
    )
    recorder.open()
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(state=recorder.run()), daemon=True)
    thread.start()
    time.sleep(0.6)
    emulator.drop_link(silent_s=0.4, fade_s=0.1)
    thread.join(60)
    assert not thread.is_alive()
    assert outcome["state"] == "complete"
    assert recorder.stats.link_losses == 1

    produced = produced_samples(emulator.output_log)
    with open_session(path) as session:
        gaps = session.gaps
        counts = session.emg_counts
        n_rows = counts.shape[0]
        link_events = [e for e in session.events if e["kind"] == "link"]
    emg_gaps = [g for g in gaps if g["stream"] == "emg"]
    assert len(emg_gaps) == 1
    gap_rows = {
        i for g in emg_gaps for i in range(g["start_index"], g["start_index"] + g["n_samples"])
    }
    # The gap is exactly the rows the host never heard: those the device sent during the fade,
    # and those its sample clock counted while it was idle without a host (PROTOCOL.md 4.6).
    heard = set(range(n_rows)) - gap_rows
    sent = {i for i in produced[0] if i < n_rows}
    lost_in_fade = sent - heard
    skipped_while_idle = set(range(n_rows)) - sent
    assert lost_in_fade | skipped_while_idle == gap_rows
    assert lost_in_fade and skipped_while_idle
    assert len(gap_rows) > 0.5 * 2000  # the whole outage (0.1 s fade + 0.4 s silence + reconnect)
    # Heard rows are bit-identical to what the source generated; gap rows hold the fill value.
    reference = SimpleSource(seed=0).emg_block(n_rows)
    rows = np.array(sorted(heard))
    np.testing.assert_array_equal(counts[rows], reference[rows])
    assert n_rows >= 2 * 2000 - 10  # 2 s of device time recorded, outage included
    assert len(link_events) >= 2  # lost, then restored
