"""Stimulation safety on the emulated device: deadlines (expiry), the minimum interval on clocks
SET_TIME cannot move, BUSY, the pulse's place after the command, and the host's own checks.

PROTOCOL.md sections 4.5, 8.1-8.3.
"""

from __future__ import annotations

import math
import time

import pytest

from firmware_iface import auth
from firmware_iface.client import DeviceClient
from firmware_iface.codec import StreamDecoder, encode_frame
from firmware_iface.emulator import emulator_link, make_device
from firmware_iface.errors import CommandRejected, StimulationRefused
from firmware_iface.messages import (
    COUNTER_BOOT_STEP,
    SET_TIME,
    Ack,
    Config,
    ErrorCode,
    ErrorReply,
    MsgType,
    StimEvent,
    StimLimits,
    Stimulate,
)

KEY = bytes(range(32))
RATE = 5000


class Bench:
    """An emulated device driven frame by frame, its clock jumped ahead by hand."""

    def __init__(self, **kwargs):
        self.device = make_device(stim_key=KEY, **kwargs)
        self.seq = 0
        self.counter = 0
        self.send(MsgType.CONFIGURE, Config(emg_rate_hz=RATE).pack())

    def send(self, msg_type, payload=b""):
        """One command; returns its reply as ("ACK", body) or ("ERR", code)."""
        self.seq += 1
        self.device.receive(encode_frame(msg_type, self.seq, 0, payload))
        for f in StreamDecoder().feed(self.device.take_output()):
            if f.msg_type == MsgType.ACK and Ack.unpack(f.payload).acked_seq == self.seq:
                return "ACK", Ack.unpack(f.payload).body
            if f.msg_type == MsgType.ERROR and ErrorReply.unpack(f.payload).acked_seq == self.seq:
                return "ERR", ErrorCode(ErrorReply.unpack(f.payload).code)
        raise AssertionError("no reply")

    def run(self, us):
        """Let ``us`` of device time pass; returns the pulses delivered meanwhile."""
        dev = self.device
        dev.clock.run_ahead_to(dev.clock.now_us() + us)
        dev.advance(dev.clock.now_us())
        frames = StreamDecoder().feed(dev.take_output())
        return [StimEvent.unpack(f.payload) for f in frames if f.msg_type == MsgType.STIM_EVENT]

    def signed(self, *, mode=0, count=1, interval_us=0, valid_us=500_000, not_after_us=None):
        self.counter += 1
        if not_after_us is None:
            not_after_us = self.device.clock.uptime_us() + valid_us
        cmd = Stimulate(mode, count, 1000, 100, interval_us, self.counter, not_after_us)
        return auth.sign(cmd, KEY, self.device.serial).pack()

    def stimulate(self, **kwargs):
        return self.send(MsgType.STIMULATE, self.signed(**kwargs))


# ------------------------------------------------------------------ expiry (not_after_us)
def test_deadline_in_the_past_or_too_far_ahead_is_expired_and_delivers_nothing():
    b = Bench()
    b.send(MsgType.START)
    b.run(20_000)
    assert b.stimulate(valid_us=-1) == ("ERR", ErrorCode.EXPIRED)
    assert b.stimulate(valid_us=10_500_000) == ("ERR", ErrorCode.EXPIRED)
    # what a deadline that wrapped at 32 bits would look like: 2^32 us ahead, still refused
    assert b.stimulate(valid_us=2**32 - 1000) == ("ERR", ErrorCode.EXPIRED)
    assert b.run(50_000) == []
    assert b.stimulate()[0] == "ACK"
    assert len(b.run(50_000)) == 1


def test_held_back_command_is_refused_later_even_after_set_time_backwards():
    """The threat of PROTOCOL 8.1 (1): a peer swallows a STIMULATE and injects it later."""
    b = Bench()
    b.send(MsgType.START)
    b.run(20_000)
    held = b.signed(valid_us=300_000)
    time.sleep(0.35)  # the deadline is on the uptime clock: real time passes
    b.send(MsgType.STOP)
    assert b.send(MsgType.SET_TIME, SET_TIME.pack(0)) == ("ACK", b"")  # needs no MAC
    b.send(MsgType.START)
    b.run(20_000)
    assert b.send(MsgType.STIMULATE, held) == ("ERR", ErrorCode.EXPIRED)
    assert b.run(50_000) == []


def test_a_power_cycle_invalidates_commands_signed_before_it():
    """The uptime restarts at power-on, so the counter jumps instead (PROTOCOL 8.2)."""
    b = Bench()
    b.device.clock.restart(uptime_us=5_000_000)
    held = b.signed(not_after_us=1_000_000)  # already past now; valid again after a reboot
    last = b.device.last_stim_counter
    b.device.power_cycle()
    assert b.device.last_stim_counter == last + COUNTER_BOOT_STEP
    assert b.device.clock.uptime_us() < 1_000_000
    b.send(MsgType.CONFIGURE, Config(emg_rate_hz=RATE).pack())
    b.send(MsgType.START)
    b.run(20_000)
    assert b.send(MsgType.STIMULATE, held) == ("ERR", ErrorCode.REPLAY)


def test_host_deadline_comes_from_ping_and_held_commands_expire_end_to_end():
    link = emulator_link(make_device(stim_key=KEY), speed="realtime")
    with DeviceClient(link, stim_key=KEY, stim_validity_s=0.3) as client:
        info = client.identify()
        client.start()
        device_uptime = link.device.clock.uptime_us()
        deadline = client.stim_deadline_us()
        assert 0.25e6 < deadline - device_uptime < 0.35e6  # validity, within the sync error
        held = Stimulate(0, 1, 1000, 100, 0, info.last_stim_counter + 1, deadline)
        held = auth.sign(held, KEY, info.serial).pack()
        time.sleep(0.4)
        with pytest.raises(CommandRejected, match="EXPIRED") as err:
            client.command(MsgType.STIMULATE, held)
        assert err.value.code == ErrorCode.EXPIRED
        assert client.stimulate(1.0, 100).counter == info.last_stim_counter + 2
        client.stop()


def test_host_recovers_from_a_power_cycled_device_with_one_new_command_per_reason():
    device = make_device(stim_key=KEY)
    device.clock.restart(uptime_us=60_000_000)
    link = emulator_link(device)
    with DeviceClient(link, stim_key=KEY) as client:
        client.start()
        first = client.stimulate(1.0, 100).counter
        with link.runner.lock:
            device.power_cycle()  # counter + 65536, uptime from 0: the client's sync is stale
        client.start()
        time.sleep(0.05)  # sample numbers restarted: the host times the interval by its clock
        # REPLAY (counter re-read with IDENTIFY), then EXPIRED (the MAC was valid: that counter
        # is used up; PING again), then delivered
        assert client.stimulate(1.0, 100).counter == first + COUNTER_BOOT_STEP + 2


def test_validity_outside_the_device_window_is_a_value_error():
    with pytest.raises(ValueError, match="stim_validity_s"):
        DeviceClient(emulator_link(make_device()), stim_validity_s=30)


# ------------------------------------------------------------------ minimum interval, BUSY
def test_min_interval_across_commands_is_counted_in_samples_not_on_the_settable_clock():
    b = Bench(limits=StimLimits(min_interval_us=100_000))
    b.send(MsgType.START)
    b.run(30_000)
    assert b.stimulate()[0] == "ACK"
    (first,) = b.run(15_000)
    # SET_TIME ten seconds ahead between the commands: the gap is still 20 ms of samples
    b.send(MsgType.STOP)
    b.send(MsgType.SET_TIME, SET_TIME.pack(b.device.clock.now_us() + 10_000_000))
    b.send(MsgType.START)
    assert b.stimulate() == ("ERR", ErrorCode.STIM_LIMIT)
    b.run(100_000)
    assert b.stimulate()[0] == "ACK"
    (second,) = b.run(15_000)
    assert (second.emg_sample_index - first.emg_sample_index) / RATE >= 0.1
    # SET_TIME back to 0: does not block stimulation 200 ms of samples later
    b.send(MsgType.STOP)
    b.send(MsgType.SET_TIME, SET_TIME.pack(0))
    b.send(MsgType.START)
    b.run(200_000)
    assert b.stimulate()[0] == "ACK"


def test_min_interval_across_a_configure_is_measured_on_the_uptime_clock():
    b = Bench(limits=StimLimits(min_interval_us=100_000))
    b.send(MsgType.START)
    b.run(20_000)
    assert b.stimulate()[0] == "ACK"
    assert len(b.run(20_000)) == 1
    b.send(MsgType.STOP)
    b.send(MsgType.CONFIGURE, Config(emg_rate_hz=RATE).pack())  # sample numbers restart
    b.send(MsgType.START)
    b.run(20_000)
    assert b.stimulate() == ("ERR", ErrorCode.STIM_LIMIT)
    time.sleep(0.12)
    assert b.stimulate()[0] == "ACK"


def test_busy_while_a_pair_runs_then_the_interval_applies_from_its_last_pulse():
    b = Bench(limits=StimLimits(min_interval_us=60_000))
    b.send(MsgType.START)
    b.run(20_000)
    assert b.stimulate(mode=1, count=2, interval_us=100_000)[0] == "ACK"
    assert b.stimulate() == ("ERR", ErrorCode.BUSY)
    assert b.stimulate(mode=2, count=60, interval_us=20_000) == ("ERR", ErrorCode.BUSY)
    assert len(b.run(40_000)) == 1
    assert b.stimulate() == ("ERR", ErrorCode.BUSY)  # the second pulse is still to come
    pulses = b.run(80_000)  # past the end of the frame that holds the second pulse
    assert len(pulses) == 1 and pulses[0].pulse_index == 1
    # the last pulse was about 20 ms ago: a first pulse 20 ms after it is refused on the sample
    # clock; 60 ms of samples later it is accepted
    assert b.stimulate() == ("ERR", ErrorCode.STIM_LIMIT)
    b.run(60_000)
    assert b.stimulate()[0] == "ACK"


# ------------------------------------------------------------------ where the pulse goes
@pytest.mark.parametrize("after_us", [19_400, 21_000, 29_900])
def test_first_pulse_is_the_first_sample_at_least_2_ms_after_the_command(after_us):
    """Not 2 ms after the last sample sent (which lags the command by up to a frame)."""
    b = Bench()
    b.send(MsgType.START)
    t0 = b.device._run_t0_us
    b.device.clock.run_ahead_to(t0 + after_us)
    b.device.advance(b.device.clock.now_us())  # frames of 10 ms: the last one ended earlier
    b.device.take_output()
    before = b.device.clock.now_us() - t0
    status, body = b.stimulate()
    after = b.device.clock.now_us() - t0
    assert status == "ACK"
    first = int.from_bytes(body[4:8], "little")
    assert first * 1e6 / RATE >= before + 2000
    assert first <= math.ceil((after + 2000) * RATE / 1e6)
    (pulse,) = b.run(40_000)
    assert pulse.emg_sample_index == first
    assert pulse.device_time_us - t0 == pytest.approx(first * 1e6 / RATE, abs=1)


# ------------------------------------------------------------------ the host's own checks
def test_host_refuses_a_second_command_too_soon_after_the_previous_pulse():
    link = emulator_link(make_device(stim_key=KEY), speed="realtime")
    limits = StimLimits(min_interval_us=150_000)
    with DeviceClient(link, stim_key=KEY, host_limits=limits) as client:
        client.start()
        client.read(0.1)
        client.stimulate(1.0, 100, mode="pair", interval_ms=150)
        sent_before = link.device.commands_seen.count(MsgType.STIMULATE)
        with pytest.raises(StimulationRefused, match="still running"):
            client.stimulate(1.0, 100)
        time.sleep(0.25)  # the pair is over; its last pulse about 100 ms ago
        client.read(0.05)
        with pytest.raises(StimulationRefused, match="after the previous pulse"):
            client.stimulate(1.0, 100)
        assert link.device.commands_seen.count(MsgType.STIMULATE) == sent_before  # none sent
        time.sleep(0.25)
        client.read(0.05)
        client.stimulate(1.0, 100)
        client.stop()


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"intensity_ma": math.nan, "width_us": 200}, "intensity"),
        ({"intensity_ma": math.inf, "width_us": 200}, "intensity"),
        ({"intensity_ma": -math.inf, "width_us": 200}, "intensity"),
        ({"intensity_ma": 1e308, "width_us": 200}, "intensity"),
        ({"intensity_ma": 1.0, "width_us": math.nan}, "width"),
        ({"intensity_ma": 1.0, "width_us": math.inf}, "width"),
        ({"intensity_ma": 1.0, "width_us": 1 << 40}, "width"),
        (
            {"intensity_ma": 1.0, "width_us": 200, "mode": "pair", "interval_ms": math.nan},
            "interval",
        ),
        (
            {"intensity_ma": 1.0, "width_us": 200, "mode": "pair", "interval_ms": math.inf},
            "interval",
        ),
        ({"intensity_ma": 1.0, "width_us": 200, "mode": "pair", "interval_ms": -20.0}, "interval"),
        ({"intensity_ma": 1.0, "width_us": 200, "mode": "train", "pulses": math.nan}, "pulses"),
        ({"intensity_ma": "1", "width_us": 200}, "intensity"),
    ],
)
def test_nan_inf_and_out_of_range_parameters_are_refused_before_anything_is_sent(kwargs, word):
    """Issue 18 item 3: NaN/inf intensity, width or interval raise StimulationRefused (not
    ValueError, OverflowError or struct.error), and nothing reaches the device."""
    device = make_device(stim_key=KEY)
    link = emulator_link(device)
    client = DeviceClient(link, stim_key=KEY)
    try:
        client.connect()
        client.start()
        client.read(0.2)
        seen = len(device.commands_seen)
        with pytest.raises(StimulationRefused, match=word) as info:
            client.stimulate(**kwargs)
        assert "\n" not in str(info.value)
        assert MsgType.STIMULATE not in device.commands_seen[seen:]
        # the client still works: a valid pulse goes out afterwards
        assert client.stimulate(1.0, 200).counter > 0
    finally:
        client.close()


def test_command_from_an_earlier_boot_is_refused_after_power_cycle_and_re_pairing():
    """Issue 18 item 2: PAIR used to reset the counter to 0, cancelling the +65,536 power-on
    step; once the uptime reached the old deadline again, the recorded command was accepted."""
    bench = Bench()
    recorded = bench.signed(valid_us=5_000_000)  # swallowed by an attacker, never delivered
    bench.device.power_cycle()
    assert bench.device.last_stim_counter == COUNTER_BOOT_STEP
    bench.device.open_pairing_window(30)
    assert bench.send(MsgType.PAIR, KEY)[0] == "ACK"  # re-paired with the same key
    assert bench.device.last_stim_counter == COUNTER_BOOT_STEP  # the counter never goes back
    bench.send(MsgType.CONFIGURE, Config(emg_rate_hz=RATE).pack())
    assert bench.send(MsgType.START)[0] == "ACK"
    # the new boot's uptime has not passed the recorded deadline: only the counter stops it
    assert bench.send(MsgType.STIMULATE, recorded) == ("ERR", ErrorCode.REPLAY)
    assert bench.run(100_000) == []


def test_the_same_attack_succeeds_on_a_device_that_resets_its_counter_at_pair():
    """The broken behaviour, kept as a fault: what the conformance check must catch."""
    from firmware_iface.emulator import Faults

    bench = Bench(faults=Faults(reset_counter_on_pair=True))
    recorded = bench.signed(valid_us=5_000_000)
    bench.device.power_cycle()
    bench.device.open_pairing_window(30)
    bench.send(MsgType.PAIR, KEY)
    bench.send(MsgType.CONFIGURE, Config(emg_rate_hz=RATE).pack())
    bench.send(MsgType.START)
    assert bench.send(MsgType.STIMULATE, recorded)[0] == "ACK"
    assert len(bench.run(100_000)) == 1


def test_host_pairing_keeps_the_counter():
    device = make_device()
    link = emulator_link(device)
    client = DeviceClient(link)
    try:
        client.connect()
        with link.runner.lock:
            device.last_stim_counter = 70_000
            device.open_pairing_window(30)
        client.pair(KEY)
        client.start()
        assert client.stimulate(1.0, 200).counter == 70_001
    finally:
        client.close()
