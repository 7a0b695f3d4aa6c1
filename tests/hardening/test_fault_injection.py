"""Fault-injected links: every intact frame is delivered and every gap is counted to the sample.

The emulated device streams through a :class:`acquire.faults.FaultyLink` that drops, flips,
duplicates and inserts bytes, stalls, splits and reorders chunks and cuts outages. The link's
books say exactly which frames of the device's clean output reached the host byte for byte; the
host (the real :class:`DeviceClient` decode path) must deliver every one of them, deliver nothing
the device did not send, and count each gap with the exact number of missing samples.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from acquire.faults import FaultPlan, FaultyLink, frame_spans, intact_frame_spans
from firmware_iface.client import DeviceClient, SampleBlock
from firmware_iface.codec import StreamDecoder
from firmware_iface.emulator import PtyEmulator, emulator_link, make_device
from firmware_iface.messages import MsgType, Samples

PLANS = {
    "bytes": FaultPlan.byte_errors(2e-3, seed=1),
    "chunks": FaultPlan(split_rate=0.3, reorder_rate=0.05, stall_rate=0.02, stall_s=0.005, seed=2),
    "outages": FaultPlan(outage_rate=0.01, outage_chunks=4, flip_rate=2e-4, seed=3),
    "everything": FaultPlan(
        drop_rate=5e-4,
        flip_rate=5e-4,
        duplicate_rate=5e-4,
        insert_rate=5e-4,
        split_rate=0.2,
        reorder_rate=0.03,
        outage_rate=0.005,
        seed=4,
    ),
}


def _stream_through(faulty: FaultyLink, plan: FaultPlan, n_emg_samples: int):
    """Configure and start cleanly, stream under ``plan``, stop cleanly; return the blocks."""
    client = DeviceClient(faulty, command_timeout_s=2.0)
    client.identify()
    client.configure(emg_rate_hz=2000, n_emg=4, angle_rate_hz=500, n_angle=1)
    client.start()
    faulty.plan = plan
    faulty._rng = np.random.default_rng(plan.seed)
    blocks: list[SampleBlock] = []
    emg_seen = 0
    while emg_seen < n_emg_samples:
        for item in client.read(0.5):
            if isinstance(item, SampleBlock):
                blocks.append(item)
                emg_seen += len(item.counts) if item.stream == 0 else 0
    faulty.plan = FaultPlan()  # let the STOP and its ACK through
    client.stop()
    for item in client.read(0.3):
        if isinstance(item, SampleBlock):
            blocks.append(item)
    return client, blocks


def _sent_sample_frames(clean: bytes):
    """Sample frames the device sent, keyed by their span in the clean stream."""
    frames = {}
    decoder = StreamDecoder()
    for span in frame_spans(clean):
        start, end = span
        decoded = decoder.feed(clean[start : end + 1])
        if decoded and decoded[0].msg_type == MsgType.SAMPLES:
            frames[span] = Samples.unpack(decoded[0].payload)
    return frames


def _check_books(faulty: FaultyLink, client: DeviceClient, blocks: list[SampleBlock]):
    clean = bytes(faulty.clean_bytes)
    sent = _sent_sample_frames(clean)
    intact = set(intact_frame_spans(clean, faulty.delivered_positions()))
    by_key = {(b.stream, b.first_index): b for b in blocks}

    # 1. every intact sample frame was delivered, with identical counts
    intact_samples = [sent[s] for s in sent if s in intact]
    assert intact_samples, "the run delivered no intact sample frame"
    for frame in intact_samples:
        block = by_key.get((frame.stream, frame.first_index))
        assert block is not None, f"intact frame {frame.stream}/{frame.first_index} lost"
        np.testing.assert_array_equal(block.counts, frame.counts)

    # 2. nothing was delivered that the device did not send
    sent_by_key = {(f.stream, f.first_index): f for f in sent.values()}
    for key, block in by_key.items():
        assert key in sent_by_key, f"host delivered a frame the device never sent: {key}"
        np.testing.assert_array_equal(block.counts, sent_by_key[key].counts)

    # 3. every gap is counted with the exact number of missing samples: the samples never
    #    delivered are exactly those of the sent frames that were not delivered
    reordered = faulty.stats.reorders > 0
    for stream in (0, 1):
        mine = [b for b in blocks if b.stream == stream]
        lo = min(b.first_index for b in mine)
        hi = max(b.first_index + len(b.counts) for b in mine)
        have = np.zeros(hi - lo, bool)
        for b in mine:
            have[b.first_index - lo : b.first_index - lo + len(b.counts)] = True
        should_miss = np.zeros(hi - lo, bool)
        for f in sent_by_key.values():
            if f.stream == stream and (stream, f.first_index) not in by_key:
                a, z = f.first_index - lo, f.first_index - lo + len(f.counts)
                should_miss[max(a, 0) : max(min(z, hi - lo), 0)] = True
        np.testing.assert_array_equal(~have, should_miss)
        if not reordered:  # in-order delivery: each block's gap_before is already exact
            assert sum(b.gap_before for b in mine) == int((~have).sum())
            for previous, block in itertools.pairwise(mine):
                expected = block.first_index - (previous.first_index + len(previous.counts))
                assert block.gap_before == expected
    return len(intact_samples), len(sent)


@pytest.mark.parametrize("plan_name", sorted(PLANS))
def test_in_process_link_under_faults(plan_name):
    plan = PLANS[plan_name]
    inner = emulator_link(make_device(), speed="fast")
    faulty = FaultyLink(inner, FaultPlan(), keep_clean=True, track_positions=True)
    try:
        client, blocks = _stream_through(faulty, plan, n_emg_samples=40_000)
    finally:
        faulty.close()
    assert faulty.stats.total > 0, "no fault was injected"
    n_intact, n_sent = _check_books(faulty, client, blocks)
    assert n_intact < n_sent or plan_name == "chunks"


def test_pty_link_under_byte_faults():
    from acquire.links import open_link

    with PtyEmulator(make_device(), speed="fast") as emulator:
        inner = open_link(emulator.path)
        faulty = FaultyLink(inner, FaultPlan(), keep_clean=True, track_positions=True)
        try:
            client, blocks = _stream_through(faulty, PLANS["everything"], n_emg_samples=30_000)
        finally:
            faulty.close()
    assert faulty.stats.dropped and faulty.stats.flipped and faulty.stats.inserted
    n_intact, n_sent = _check_books(faulty, client, blocks)
    assert 0 < n_intact < n_sent


def test_intact_frame_accounting_detects_a_single_flip():
    """The books themselves: one flipped byte costs exactly the frame it sits in."""
    from firmware_iface.codec import encode_frame

    frames = [encode_frame(MsgType.SAMPLES, i, i * 1000, bytes([1, 2, 3, i])) for i in range(5)]
    clean = b"".join(frames)
    spans = frame_spans(clean)
    positions = np.arange(len(clean), dtype=np.int64)
    assert intact_frame_spans(clean, positions) == spans
    hit = spans[2][0] + 1
    damaged = positions.copy()
    damaged[hit] = -1  # as if replaced by an inserted byte
    assert intact_frame_spans(clean, damaged) == [s for k, s in enumerate(spans) if k != 2]
    dropped_delimiter = np.delete(positions, spans[1][1])
    assert intact_frame_spans(clean, dropped_delimiter) == [spans[0], spans[3], spans[4]]


def test_a_new_plan_ends_an_outage_in_progress():
    """Swapping in a clean plan (as the tests do before STOP) gives a clean link at once."""
    from firmware_iface.link import link_pair

    host, device = link_pair()
    faulty = FaultyLink(host, FaultPlan(outage_rate=1.0, outage_chunks=1000, seed=5))
    device.write(b"lost in the outage")
    assert faulty.read(4096, 0.5) == b""
    assert faulty.stats.outages == 1
    faulty.plan = FaultPlan()
    device.write(b"after the swap")
    assert faulty.read(4096, 0.5) == b"after the swap"


def test_bumble_ble_link_under_notification_faults():
    """bleak's BleakClient over an in-process bumble link: notifications split, reordered, lost."""
    from acquire.ble import open_ble_link
    from acquire.ble.bumble_backend import LocalBleWorld

    world = LocalBleWorld()
    try:
        world.add_emulator(speed="fast")
        inner = open_ble_link("ble://tonuslab-emu", **world.link_options())
        faulty = FaultyLink(inner, FaultPlan(), keep_clean=True, track_positions=True)
        try:
            client, blocks = _stream_through(faulty, PLANS["everything"], n_emg_samples=12_000)
        finally:
            faulty.close()
    finally:
        world.close()
    assert faulty.stats.splits and faulty.stats.reorders
    n_intact, n_sent = _check_books(faulty, client, blocks)
    assert 0 < n_intact < n_sent


@pytest.mark.parametrize("plan_name", ["bytes", "outages"])
def test_streaming_frame_books_agree_with_the_exact_books(plan_name):
    """The constant-memory books used by the soak never overstate what arrived intact."""
    inner = emulator_link(make_device(), speed="fast")
    faulty = FaultyLink(
        inner, FaultPlan(), keep_clean=True, track_positions=True, count_frames=True
    )
    try:
        client, _ = _stream_through(faulty, PLANS[plan_name], n_emg_samples=20_000)
    finally:
        faulty.close()
    clean = bytes(faulty.clean_bytes)
    exact_intact = len(intact_frame_spans(clean, faulty.delivered_positions()))
    complete = len(frame_spans(clean))
    assert faulty.stats.frames_sent == complete
    assert faulty.stats.frames_intact <= exact_intact
    assert faulty.stats.frames_intact >= exact_intact - max(3, exact_intact // 200)
    assert client.decoder.stats.frames >= faulty.stats.frames_intact
