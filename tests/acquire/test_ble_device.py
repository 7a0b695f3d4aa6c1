"""The emulated device served over BLE (bumble GATT server), read by DeviceClient over BleLink.

Host side: ``acquire.ble.open_ble_link`` -> bleak's ``BleakClient`` with the bumble backend ->
bumble central; device side: ``firmware_iface.emulator.ble_gatt.BleEmulator`` (a bumble GATT
server in front of the protocol emulator). Nothing of ours is mocked.
"""

import itertools
import threading
import time

import numpy as np
import pytest

pytest.importorskip("bumble")

from acquire.ble import open_ble_link
from acquire.ble.bumble_backend import LocalBleWorld
from firmware_iface.client import DeviceClient, SampleBlock
from firmware_iface.codec import StreamDecoder
from firmware_iface.emulator import SimpleSource
from firmware_iface.emulator.source import ANGLE_SCALE_DEG
from firmware_iface.messages import MsgType, Samples


@pytest.fixture
def world():
    w = LocalBleWorld()
    yield w
    w.close()


def expected_angle_counts(index, rate_hz=500.0):
    """The simple source's goniometer: a deterministic function of the sample number."""
    deg = 45.0 + 40.0 * np.sin(2 * np.pi * 0.5 * np.asarray(index) / rate_hz)
    return np.round(deg / ANGLE_SCALE_DEG).astype(np.int32)


def device_sample_numbers(wire: bytes) -> dict[int, list[int]]:
    """Sample numbers in every SAMPLES frame of a device's output, per stream."""
    numbers = {0: [], 1: []}
    for frame in StreamDecoder().feed(wire):
        if frame.msg_type == MsgType.SAMPLES:
            samples = Samples.unpack(frame.payload)
            n = samples.counts.shape[0]
            numbers[samples.stream] += range(samples.first_index, samples.first_index + n)
    return numbers


def collect(client, seconds, blocks):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        blocks += [b for b in client.read(0.05) if isinstance(b, SampleBlock)]


def covered(blocks, stream):
    """Received sample numbers of one stream, in arrival order."""
    return np.concatenate(
        [np.arange(b.first_index, b.end_index) for b in blocks if b.stream == stream]
    )


@pytest.mark.parametrize("max_chunk", [None, 20])
def test_identify_and_stream_over_ble(world, max_chunk):
    world.add_emulator(max_chunk=max_chunk)
    link = open_ble_link("ble://tonuslab-emu", **world.link_options())
    with DeviceClient(link, command_timeout_s=2.0) as client:
        info = client.identify()
        assert info.serial == "EMU-0001"
        assert [c.name for c in info.channels] == ["EMG1", "EMG2", "GON1"]
        client.start()
        blocks = []
        collect(client, 0.6, blocks)
        client.stop()
    emg = [b for b in blocks if b.stream == 0]
    counts = np.concatenate([b.counts for b in emg])
    assert covered(blocks, 0).tolist() == list(range(len(counts)))
    assert 200 <= len(counts) <= 1400  # about 0.6 s at 2 kHz, in real time
    # Bit-identical to what the device's source generated.
    reference = SimpleSource(seed=0).emg_block(len(counts))
    np.testing.assert_array_equal(counts, reference)
    if max_chunk is not None:
        # Every notification held at most 20 bytes: frames were split across many of them.
        assert link.notifications_received >= link.bytes_received / 20


@pytest.mark.parametrize("stop_on_disconnect", [True, False], ids=["protocol", "keeps-sampling"])
def test_disconnect_mid_session_reconnects_and_the_gap_is_exact(world, stop_on_disconnect):
    emulator = world.add_emulator(stop_on_disconnect=stop_on_disconnect, record_output=True)
    events = []
    reconnected = threading.Event()

    def on_event(event):
        events.append(event)
        if event.kind == "reconnected":
            reconnected.set()

    link = open_ble_link(
        "ble://tonuslab-emu?reconnect=1",
        on_event=on_event,
        backoff_s=(0.05, 0.1),
        **world.link_options(),
    )
    with DeviceClient(link, command_timeout_s=2.0) as client:
        client.identify()
        client.start()
        blocks = []
        collect(client, 0.5, blocks)
        # 0.1 s of radio fade (queued frames are lost), then the link drops; 0.4 s unreachable.
        emulator.drop_link(silent_s=0.4, fade_s=0.1)
        deadline = time.monotonic() + 10
        while not reconnected.is_set() and time.monotonic() < deadline:
            collect(client, 0.05, blocks)
        assert reconnected.is_set(), [e.kind for e in events]
        split = len(blocks)
        if stop_on_disconnect:
            # What the recorder does on "reconnected" (PROTOCOL.md section 9).
            client.identify()
            client.start()
        collect(client, 0.5, blocks)
        gaps = {stream: list(client.stats.gaps[stream]) for stream in (0, 1)}

    kinds = [e.kind for e in events]
    assert kinds[:3] == ["connected", "disconnected", "reconnected"]
    downtime_s = events[2].downtime_s
    assert downtime_s >= 0.4

    for stream, rate in ((0, 2000.0), (1, 500.0)):
        index = covered(blocks, stream)
        assert len(gaps[stream]) <= 1, gaps
        first_missing, n_missing = gaps[stream][0] if gaps[stream] else (index[-1] + 1, 0)
        # Received samples and the gap record tile the sample numbers exactly.
        expected = np.r_[0:first_missing, first_missing + n_missing : index[-1] + 1]
        np.testing.assert_array_equal(index, expected)
        resumed = sum(b.n_samples for b in blocks[split:] if b.stream == stream)
        assert resumed > 0.3 * rate  # streaming resumed after the reconnection
        # The gap is what the device sampled while the host could not hear it, whether the
        # device kept streaming or went IDLE (its sample clock runs on: PROTOCOL.md 4.6).
        assert n_missing == pytest.approx((0.1 + downtime_s) * rate, rel=0.35)
        # ... so device time and sample numbers agree across the outage: t = t0 + index / rate.
        emg = [b for b in blocks if b.stream == stream]
        jumps = [
            (b.device_time_us - a.device_time_us) * 1e-6 - (b.first_index - a.first_index) / rate
            for a, b in itertools.pairwise(emg)
        ]
        assert max(abs(j) for j in jumps) < 1.5 / rate

    # Oracle: every sample the device sent (heard or not). The host's gap records name exactly
    # the samples sent but never heard plus, for a device that went IDLE, the numbers its sample
    # clock consumed while nobody listened; nothing else, up to the last one received.
    produced = device_sample_numbers(emulator.output_log)
    for stream in (0, 1):
        index = covered(blocks, stream)
        heard = set(index.tolist())
        sent_not_heard = {i for i in set(produced[stream]) - heard if i < index[-1]}
        never_sent = set(range(index[-1])) - set(produced[stream])
        recorded = {i for first, n in gaps[stream] for i in range(first, first + n)}
        assert recorded == sent_not_heard | never_sent
        assert sent_not_heard
        assert bool(never_sent) == stop_on_disconnect

    # The numbering after the gap is right, not merely consistent: every received goniometer
    # sample equals the source's value at that sample number, and EMG is bit-identical.
    angle = np.concatenate([b.counts[:, 0] for b in blocks if b.stream == 1])
    np.testing.assert_array_equal(angle, expected_angle_counts(covered(blocks, 1)))
    emg_index = covered(blocks, 0)
    reference = SimpleSource(seed=0).emg_block(int(emg_index[-1]) + 1)
    emg = np.concatenate([b.counts for b in blocks if b.stream == 0])
    np.testing.assert_array_equal(emg, reference[emg_index])


def test_high_rate_stream_has_no_loss(world):
    # 16 EMG channels at 4 kHz, the device running ahead as fast as notifications drain.
    emulator = world.add_emulator(speed="fast")
    link = open_ble_link("ble://tonuslab-emu", **world.link_options())
    with DeviceClient(link, command_timeout_s=2.0) as client:
        client.identify()
        client.configure(emg_rate_hz=4000, n_emg=16, n_angle=1, angle_rate_hz=500)
        assert emulator.peripheral.att_mtu == 247
        client.start()
        blocks = []
        started = time.monotonic()
        while time.monotonic() - started < 30:
            collect(client, 0.1, blocks)
            if sum(b.n_samples for b in blocks if b.stream == 0) >= 16000:
                break
        elapsed = time.monotonic() - started
        client.stop()
        lost = client.stats.lost_frames
        missing = client.stats.missing(0) + client.stats.missing(1)
    n_emg = sum(b.n_samples for b in blocks if b.stream == 0)
    assert n_emg >= 16000
    assert lost == 0 and missing == 0
    assert covered(blocks, 0).tolist() == list(range(n_emg))
    assert link.notifications_received >= 2000  # 16 ch x 2 bytes x 16000 samples / 244 bytes
    print(
        f"{link.notifications_received} notifications, {link.bytes_received} bytes, {elapsed:.2f} s"
    )


def test_conformance_battery_passes_over_ble(world):
    from firmware_iface import auth
    from firmware_iface.conformance import run_conformance
    from firmware_iface.emulator import make_device

    key = auth.new_key()
    world.add_emulator(make_device(stim_key=key))
    with open_ble_link("ble://tonuslab-emu", **world.link_options()) as link:
        report = run_conformance(link, stim_key=key, stream_seconds=1.0, timeout_s=2.0)
    assert report.passed, report.table()
    assert {c.name for c in report.checks} >= {
        "identify",
        "sequence continuity",
        "stimulation auth",
    }
