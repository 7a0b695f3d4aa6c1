import time

import numpy as np
import pytest

from firmware_iface import auth
from firmware_iface.client import DeviceClient, SampleBlock
from firmware_iface.codec import encode_frame
from firmware_iface.emulator import Faults, emulator_link, make_device
from firmware_iface.errors import (
    CommandRejected,
    CommandTimeout,
    LinkClosed,
    StimulationRefused,
)
from firmware_iface.link import FdLink, link_pair
from firmware_iface.messages import ErrorCode, MsgType

from .conftest import collect


def test_device_is_silent_until_the_host_speaks():
    host, dev_end = link_pair()
    from firmware_iface.emulator import DeviceRunner

    runner = DeviceRunner(make_device(), dev_end, speed="fast").start()
    try:
        assert host.read(100, 0.3) == b""
    finally:
        host.close()
        runner.stop()


def test_identify_reports_the_channel_table(client):
    info = client.identify()
    assert info.protocol_major == 1
    assert info.serial == "EMU-0001"
    assert [c.kind for c in info.channels] == ["emg", "emg", "angle"]
    assert info.channels[0].unit == "uV" and info.channels[2].unit == "deg"
    assert info.key_provisioned and info.has_stimulator


def test_configure_round_trip_and_gain_changes_scale(client):
    base = client.configure(emg_rate_hz=5000, n_emg=8, emg_bits=24, n_angle=2, angle_rate_hz=250)
    assert base.config.emg_rate_hz == 5000 and len(base.emg_channels) == 8
    assert len(base.angle_channels) == 2
    gained = client.configure(emg_gain=4)
    assert gained.config.emg_gain == 4
    assert gained.emg_channels[0].scale == pytest.approx(base.emg_channels[0].scale / 4)


def test_out_of_range_configuration_is_refused_by_the_device(client):
    from firmware_iface.messages import Config

    with pytest.raises(CommandRejected) as err:
        client.command(MsgType.CONFIGURE, Config(emg_rate_hz=50_000).pack())
    assert err.value.code == ErrorCode.OUT_OF_RANGE


def test_streaming_is_continuous_and_timestamps_follow_the_rate(client):
    client.configure(emg_rate_hz=2000, n_emg=4, emg_bits=16, n_angle=1, angle_rate_hz=500)
    client.start()
    items = collect(client, 3.0)
    client.stop()
    blocks = [b for b in items if isinstance(b, SampleBlock)]
    for stream, rate in ((0, 2000), (1, 500)):
        bs = [b for b in blocks if b.stream == stream]
        idx = np.array([b.first_index for b in bs])
        ends = np.array([b.end_index for b in bs])
        assert idx[0] == 0 and np.all(idx[1:] == ends[:-1])
        t = np.array([b.device_time_us for b in bs])
        slope = np.polyfit(idx - idx[0], t - t[0], 1)[0]
        assert slope == pytest.approx(1e6 / rate, rel=1e-6)
        assert bs[0].counts.shape[1] == (4 if stream == 0 else 1)
    assert client.stats.lost_frames == 0 and client.decoder.stats.errors == 0
    assert client.stats.missing(0) == 0


def test_unknown_and_malformed_commands_get_errors(client):
    with pytest.raises(CommandRejected) as err:
        client.command(0x3E)
    assert err.value.code == ErrorCode.UNKNOWN_COMMAND
    with pytest.raises(CommandRejected) as err:
        client.command(MsgType.CONFIGURE, b"\x01\x02")
    assert err.value.code == ErrorCode.MALFORMED
    with pytest.raises(CommandRejected) as err:
        client.command(MsgType.IDENTIFY, version=0x20)
    assert err.value.code == ErrorCode.UNSUPPORTED_VERSION


def test_corrupt_bytes_are_answered_with_frame_error(client):
    client.identify()
    bad = bytearray(encode_frame(MsgType.IDENTIFY, 99, 0))
    bad[3] ^= 0xFF
    client.send_raw(bytes(bad))
    client.ping()
    assert client.stats.device_frame_errors == 1


def test_stimulation_pair_events_at_sample_precision(client):
    client.configure(emg_rate_hz=5000, n_emg=2)
    client.start()
    collect(client, 0.2)
    accepted = client.stimulate(12.5, 500, mode="pair", interval_ms=50)
    stims, deadline = [], time.monotonic() + 10
    while len(stims) < 2 and time.monotonic() < deadline:
        stims += [e for e in client.read(0.2) if getattr(e, "kind", "") == "stim"]
    client.stop()
    assert [e.message.pulse_index for e in stims] == [0, 1]
    assert stims[0].emg_sample_index == accepted.first_emg_index
    assert stims[1].emg_sample_index - stims[0].emg_sample_index == 250
    assert stims[1].device_time_us - stims[0].device_time_us == 50_000
    assert stims[0].message.intensity_ma == pytest.approx(12.5)
    assert stims[0].message.width_us == 500


def test_stimulation_without_key_is_refused_by_host_and_device(device):
    link = emulator_link(device)
    c = DeviceClient(link)
    try:
        c.start()
        with pytest.raises(StimulationRefused):
            c.stimulate(5, 200)
        info = c.identify()
        from firmware_iface.messages import Stimulate

        forged = Stimulate(0, 1, 5000, 200, 0, info.last_stim_counter + 1, c.stim_deadline_us())
        forged = auth.sign(forged, b"\x01" * 32, info.serial)  # wrong key
        with pytest.raises(CommandRejected) as err:
            c.command(MsgType.STIMULATE, forged.pack())
        assert err.value.code == ErrorCode.AUTH_FAILED
    finally:
        c.close()


def test_replayed_stimulate_is_refused(client, key):
    client.start()
    client.stimulate(5, 200)
    info = client.identify()
    from firmware_iface.messages import Stimulate

    replay = Stimulate(0, 1, 5000, 200, 0, info.last_stim_counter, client.stim_deadline_us())
    replay = auth.sign(replay, key, info.serial)
    with pytest.raises(CommandRejected) as err:
        client.command(MsgType.STIMULATE, replay.pack())
    assert err.value.code == ErrorCode.REPLAY


def test_limits_enforced_by_host_and_by_device(client, key):
    client.start()
    with pytest.raises(StimulationRefused, match="intensity"):
        client.stimulate(150, 200)
    with pytest.raises(StimulationRefused, match="interval"):
        client.stimulate(5, 200, mode="train", pulses=5, interval_ms=2)
    info = client.identify()
    from firmware_iface.messages import Stimulate

    over = Stimulate(0, 1, 200_000, 200, 0, info.last_stim_counter + 1, client.stim_deadline_us())
    over = auth.sign(over, key, info.serial)
    with pytest.raises(CommandRejected) as err:
        client.command(MsgType.STIMULATE, over.pack())
    assert err.value.code == ErrorCode.STIM_LIMIT


def test_silent_device_raises_command_timeout_with_one_line():
    link = emulator_link(make_device(faults=Faults(skip_acks=True)))
    c = DeviceClient(link, command_timeout_s=0.2, retries=0)
    try:
        with pytest.raises(CommandTimeout) as err:
            c.start()
        assert "\n" not in str(err.value) and "START" in str(err.value)
    finally:
        c.close()


def test_ping_set_time_status_prompt_calibrate(client, device):
    client.set_time(5_000_000_000)
    p = client.ping()
    assert 5_000_000_000 <= p.device_rx_us <= p.device_tx_us < 5_000_000_000 + 10_000_000
    assert p.rtt_s >= 0
    client.prompt("stretch", velocity_deg_s=120)
    assert device.source.ground_truth()["prompts"][0]["params"]["velocity_deg_s"] == 120
    assert client.status().battery_pct == device.battery_pct
    client.start()
    collect(client, 0.05, stream=1)
    first = client.calibrate(0, 0, 0.0)
    collect(client, 0.3, stream=1)
    second = client.calibrate(0, 1, 90.0)
    assert second.complete and second.raw_counts != first.raw_counts
    # the calibration maps the two readings to the two reference angles
    assert (first.raw_counts - second.offset) * second.scale == pytest.approx(0.0, abs=1e-9)
    assert (second.raw_counts - second.offset) * second.scale == pytest.approx(90.0)
    assert client.info.angle_channels[0].scale == pytest.approx(second.scale)


def test_marker_button_event(client, device):
    client.start()
    collect(client, 0.1)
    with client.link.runner.lock:
        now = device.press_button(marker_id=3)
        scheduled = device.press_button(marker_id=2, at_emg_index=now + 700)
    assert scheduled == now + 700
    markers, deadline = [], time.monotonic() + 10
    while len(markers) < 2 and time.monotonic() < deadline:
        markers += [e for e in client.read(0.2) if getattr(e, "kind", "") == "marker"]
    by_id = {m.message.marker_id: m for m in markers}
    assert by_id[3].emg_sample_index == now and by_id[2].emg_sample_index == now + 700
    assert by_id[2].device_time_us - by_id[3].device_time_us == 700 * 500


def test_device_overruns_show_as_gaps_and_status(key):
    link = emulator_link(make_device(faults=Faults(drop_frame_every=10)))
    c = DeviceClient(link)
    try:
        c.start()
        items = collect(c, 2.0)
        c.stop()
        assert c.stats.missing(0) > 0
        assert c.stats.lost_frames == 0  # the device skipped them: not a link loss
        status = [e.message for e in items if getattr(e, "kind", "") == "status"]
        assert status[-1].dropped_samples > 0
        gaps = [b for b in items if isinstance(b, SampleBlock) and b.gap_before and b.stream == 0]
        assert all(b.gap_before == gaps[0].gap_before for b in gaps)
    finally:
        c.close()


def test_realtime_clock_drift_visible_through_pings():
    link = emulator_link(make_device(drift_ppm=5000.0), speed="realtime")
    c = DeviceClient(link)

    def best_ping():  # the fastest of a few round trips: least disturbed by a busy machine
        return min((c.ping() for _ in range(5)), key=lambda p: p.rtt_s)

    try:
        a = best_ping()
        time.sleep(1.0)
        b = best_ping()
        host_dt = 0.5 * (b.host_send_s + b.host_recv_s - a.host_send_s - a.host_recv_s) * 1e6
        dev_dt = 0.5 * (b.device_rx_us + b.device_tx_us - a.device_rx_us - a.device_tx_us)
        assert (dev_dt / host_dt - 1) * 1e6 == pytest.approx(5000, abs=1500)
    finally:
        c.close()


def test_closed_link_raises_link_closed(client):
    client.identify()
    client.link.runner.stop()
    client.link._link.close()
    with pytest.raises(LinkClosed):
        client.identify()


def test_pairing_only_inside_the_window_then_stimulation_works(device):
    link = emulator_link(make_device())
    c = DeviceClient(link)
    new_key = auth.new_key()
    try:
        with pytest.raises(CommandRejected) as err:
            c.pair(new_key)
        assert err.value.code == ErrorCode.PAIRING_CLOSED
        with link.runner.lock:
            link.device.open_pairing_window(seconds=30)
        c.pair(new_key)
        assert c.identify().key_provisioned
        c.start()
        assert c.stimulate(1.0, 100).counter == 1
        with link.runner.lock:
            link.device.open_pairing_window(seconds=0)
        with pytest.raises(CommandRejected):
            c.pair(auth.new_key())
    finally:
        c.close()


def test_realtime_pacing_follows_the_wall_clock():
    link = emulator_link(make_device(), speed="realtime")
    c = DeviceClient(link)
    try:
        c.start()
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 1.0:
            n += sum(b.n_samples for b in c.read(0.1) if getattr(b, "stream", None) == 0)
        c.stop()
        assert 1400 <= n <= 2200  # 2000 Hz for ~1 s; never as fast as possible
    finally:
        c.close()


def test_link_latency_and_jitter_show_in_round_trips():
    link = emulator_link(make_device(), latency_s=0.02, jitter_s=0.005, seed=3)
    c = DeviceClient(link)
    try:
        rtts = [c.ping().rtt_s for _ in range(10)]
        assert min(rtts) >= 0.04  # 20 ms each way at least
        assert max(rtts) - min(rtts) > 0.001  # jitter
    finally:
        c.close()


class _DropFirstWrite:
    """A transport that loses the first command it carries (a fault at the outer edge)."""

    def __init__(self, link):
        self._link, self.dropped = link, 0

    def write(self, data):
        if not self.dropped:
            self.dropped += 1
            return
        self._link.write(data)

    def read(self, max_bytes, timeout_s):
        return self._link.read(max_bytes, timeout_s)

    def close(self):
        self._link.close()


def test_idempotent_commands_are_resent_after_a_lost_frame():
    link = _DropFirstWrite(emulator_link(make_device()))
    c = DeviceClient(link, command_timeout_s=0.3, retries=1)
    try:
        assert c.identify().serial == "EMU-0001"
        assert link.dropped == 1
    finally:
        c.close()


def test_iter_items_stops_after_the_requested_device_time(client):
    client.start()
    blocks = [b for b in client.iter_items(device_seconds=1.0) if isinstance(b, SampleBlock)]
    emg = [b for b in blocks if b.stream == 0]
    assert emg[-1].device_time_us - emg[0].device_time_us >= 1e6
    assert emg[-1].device_time_us - emg[0].device_time_us < 1.1e6
    client.stop()
    # what was in flight before STOP drains, then the idle rule ends the iteration
    list(client.iter_items(idle_timeout_s=0.3))
    assert client.read(0.3) == []


def test_host_ignores_newer_minor_messages_and_refuses_other_majors():
    from firmware_iface.errors import VersionMismatch
    from firmware_iface.messages import Ack, Samples

    host, dev = link_pair()
    c = DeviceClient(host, command_timeout_s=0.5, retries=0)
    samples = Samples(0, 0, np.zeros((4, 1), np.int32), 2).pack()
    dev.write(
        encode_frame(0xA7, 0, 0, b"future message", version=0x13)  # newer minor, unknown type
        + encode_frame(MsgType.SAMPLES, 1, 0, samples + b"extra", version=0x13)  # appended field
        + encode_frame(MsgType.SAMPLES, 2, 0, samples, version=0x20)  # another major: ignored
    )
    items = c.read(0.5)
    assert len(items) == 1 and items[0].counts.shape == (4, 1)
    assert c.stats.unknown_frames == 1 and c.stats.version_errors == 1
    # a device whose IDENTIFY reply says major 2 is refused with one line
    info = make_device().info()
    body = info.pack()
    body = bytes([2]) + body[1:]
    dev.write(encode_frame(MsgType.ACK, 3, 0, Ack(1, MsgType.IDENTIFY, body).pack()))
    with pytest.raises(VersionMismatch, match="upgrade"):
        c.identify()
    c.close()


def test_reply_in_a_major_2_header_raises_version_mismatch_not_timeout():
    """A device answering IDENTIFY in protocol 2.0 frames: VersionMismatch at once (section 3)."""
    import threading

    from firmware_iface.codec import StreamDecoder
    from firmware_iface.errors import VersionMismatch
    from firmware_iface.messages import Ack

    host, dev = link_pair()
    body = make_device().info().pack()
    body = bytes([2, 0]) + body[2:]

    def serve():  # a protocol-2 device: every reply in a 0x20 header
        decoder = StreamDecoder()
        while True:
            try:
                data = dev.read(4096, 0.1)
            except LinkClosed:
                return
            for f in decoder.feed(data):
                reply = Ack(f.seq, f.msg_type, body).pack()
                dev.write(encode_frame(MsgType.ACK, 0, 0, reply, version=0x20))

    threading.Thread(target=serve, daemon=True).start()
    c = DeviceClient(host, command_timeout_s=5.0, retries=2)
    started = time.monotonic()
    try:
        with pytest.raises(VersionMismatch, match=r"IDENTIFY in protocol 2\.0.*upgrade") as err:
            c.identify()
        assert "\n" not in str(err.value)
        assert time.monotonic() - started < 2.0  # no waiting out the 5 s timeout (x3 attempts)
        assert c.stats.version_errors == 1 and c.stats.foreign_version == 0x20
    finally:
        c.close()


def test_second_host_with_stale_counter_recovers_from_replay(device, key):
    first = DeviceClient(emulator_link(device), stim_key=key)
    try:
        first.identify()
        first.start()
        for _ in range(3):
            first.stimulate(1.0, 100)
            time.sleep(0.02)
        # a second client that identified before those pulses has a stale counter
        first._stim_counter = 0
        first.info = type(first.info)(**{**first.info.__dict__, "last_stim_counter": 0})
        time.sleep(0.05)
        assert first.stimulate(1.0, 100).counter == 4
    finally:
        first.close()


def test_tcp_device_returns_to_idle_when_the_host_disappears():
    import socket

    from firmware_iface.emulator import TcpEmulator
    from firmware_iface.link import SocketLink

    with TcpEmulator(make_device()) as server:
        first = DeviceClient(SocketLink(socket.create_connection((server.host, server.port))))
        first.start()
        assert first.read(1.0)
        first.close()  # no STOP: the cable is pulled
        second = DeviceClient(SocketLink(socket.create_connection((server.host, server.port))))
        try:
            assert second.identify().state == 0
            assert second.read(0.3) == []  # silent: not streaming for the new host
        finally:
            second.close()


def test_pty_device_returns_to_idle_when_the_host_closes_the_port():
    """USB-serial: closing the port drops DTR; the device stops, and the next host to open
    the port reads nothing before it speaks (PROTOCOL.md sections 1 and 5)."""
    import serial

    from firmware_iface.emulator import PtyEmulator

    with PtyEmulator(make_device(), speed="realtime") as pty:
        for session in range(3):
            port = serial.Serial(pty.path, 921600, timeout=0.3)
            try:
                assert port.read(65536) == b""  # silent until spoken to, every session
                port.write(b"\x00" + encode_frame(MsgType.START, 1, 0))
                time.sleep(0.2)
                assert len(port.read(65536)) > 1000  # streaming for this host
            finally:
                port.close()  # no STOP: the host crashed or was closed
            deadline = time.monotonic() + 2.0
            while pty.device.state != 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert pty.device.state == 0 and pty.hangups == session + 1
        port = serial.Serial(pty.path, 921600, timeout=0.3)
        try:
            assert port.read(65536) == b""
            client = DeviceClient(FdLink(port.fileno(), close_fd=False))
            assert client.identify().state == 0
        finally:
            port.close()


def test_connect_stops_a_device_left_streaming_and_drains_it():
    """A device still streaming for a host that vanished without STOP on a link that did not
    tell it: connect() sends STOP, drops what was in flight and starts with clean books."""
    link = emulator_link(make_device(), speed="realtime")
    first = DeviceClient(link)
    first.start()
    assert first.read(0.5)  # the first host streams, then goes away without STOP
    second = DeviceClient(link)
    info = second.connect()
    assert info.state == 0
    assert second.read(0.3) == []
    assert second.stats.lost_frames == 0 and second.stats.frames == 1  # IDENTIFY's ACK only
    assert second.decoder.stats.errors == 0
    second.start()
    blocks = [b for b in collect(second, 0.3) if isinstance(b, SampleBlock)]
    assert blocks and all(b.gap_before == 0 for b in blocks)
    second.close()


def _two_runs(key, between):
    """Stream 0.3 s, STOP, ``between(client)``, START, stream 0.3 s: sample blocks of each run."""
    link = emulator_link(make_device(stim_key=key), speed="realtime")
    with DeviceClient(link, command_timeout_s=2.0) as client:
        client.configure(emg_rate_hz=2000, n_emg=2, angle_rate_hz=500, n_angle=1)
        runs = []
        for k in range(2):
            if k:
                between(client)
            client.start()
            runs.append([b for b in collect(client, 0.3) if isinstance(b, SampleBlock)])
            client.stop()
    return runs


def test_pause_is_an_exact_gap_on_one_sample_clock(key):
    """STOP, a pause, START: the sample numbers skip exactly the paused samples (PROTOCOL 4.6)."""
    before, after = _two_runs(key, between=lambda client: time.sleep(0.5))
    for stream, rate in ((0, 2000.0), (1, 500.0)):
        blocks = [b for b in before + after if b.stream == stream]
        first = blocks[0]
        for b in blocks:  # one clock: t = t0 + index / rate, across the pause
            expected_us = first.device_time_us + (b.first_index - first.first_index) * 1e6 / rate
            assert abs(b.device_time_us - expected_us) <= 1
        resumed = next(b for b in after if b.stream == stream)
        last_before = [b for b in before if b.stream == stream][-1]
        skipped = resumed.first_index - (last_before.first_index + len(last_before.counts))
        assert skipped == pytest.approx(0.5 * rate, rel=0.4)


@pytest.mark.timeout(30)
def test_set_time_moves_time_stamps_not_sample_numbers(key):
    """SET_TIME between runs: sample numbers run on (PROTOCOL 4.3, 4.6), time stamps jump.

    A regression: the emulator once derived the sample clock from the settable clock, so a
    SET_TIME ten days ahead made the next START generate ten days of signal to skip.
    """
    ten_days_us = 10 * 86_400 * 1_000_000
    moved = {}

    def set_time_ahead(client):
        moved["origin_us"] = client.ping().device_tx_us + ten_days_us
        client.set_time(moved["origin_us"])

    before, after = _two_runs(key, between=set_time_ahead)
    new_origin_us = moved["origin_us"]
    last_before = [b for b in before if b.stream == 0][-1]
    resumed = next(b for b in after if b.stream == 0)
    skipped = resumed.first_index - (last_before.first_index + len(last_before.counts))
    assert 0 <= skipped < 2000 * 3  # the real pause (well under 3 s), not ten days
    # the header time (32 bits on the wire) follows the new clock: within seconds of the value
    assert (resumed.device_time_us - new_origin_us) % 2**32 < 5_000_000
