"""BITalino wire format (firmware_iface.foreign.bitalino) and emulator, over a real pty and TCP.

The CRC is checked against a bit-by-bit reference written here from the polynomial
(x^4 + x + 1), not against the module's own table. The peer check decodes the emulator's bytes
with the official ``bitalino`` package (GPLv3, a test oracle only; installed with --no-deps).
"""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_iface.emulator.bitalino import (
    BitalinoDevice,
    BitalinoFaults,
    BitalinoPty,
    BitalinoTcp,
)
from firmware_iface.foreign import bitalino as bp


def crc4_reference(data: bytes) -> int:
    """Bit by bit: shift every bit (MSB first) through x^4 + x + 1, CRC nibble taken as 0."""
    bits = []
    for i, b in enumerate(data):
        if i == len(data) - 1:
            b &= 0xF0
        bits += [(b >> k) & 1 for k in range(7, -1, -1)]
    reg = 0
    for bit in bits:
        top = (reg >> 3) & 1
        reg = ((reg << 1) & 0xF) | bit
        if top:
            reg ^= 0b0011
    return reg


def frames(n: int, nch: int, seed: int = 0, start: int = 0):
    rng = np.random.default_rng(seed)
    analog = np.stack(
        [rng.integers(0, 1 << bp.SLOT_BITS[k], n) for k in range(nch)], axis=1
    ).astype(np.int64)
    digital = rng.integers(0, 2, (n, 4))
    seq = (start + np.arange(n)) % 16
    return seq, digital, analog, bp.encode_frames(seq, digital, analog)


@pytest.mark.parametrize("nch", range(1, 7))
def test_frame_sizes_and_round_trip(nch):
    assert bp.frame_size(nch) == [3, 4, 6, 7, 8, 8][nch - 1]
    seq, digital, analog, raw = frames(200, nch, seed=nch)
    assert len(raw) == 200 * bp.frame_size(nch)
    rows = np.frombuffer(raw, np.uint8).reshape(200, -1)
    s, d, a = bp.decode_rows(rows, nch)
    np.testing.assert_array_equal(s, seq)
    np.testing.assert_array_equal(d, digital)
    np.testing.assert_array_equal(a, analog)
    # every frame carries the CRC of the reference implementation
    for r in rows[:50]:
        assert r[-1] & 0x0F == crc4_reference(bytes(r))


def test_crc_table_matches_the_bit_by_bit_reference():
    rng = np.random.default_rng(1)
    for _ in range(300):
        data = bytes(rng.integers(0, 256, int(rng.integers(1, 17))).astype(np.uint8))
        assert bp.crc4(data) == crc4_reference(data)


def test_commands():
    assert [bp.cmd_sampling_rate(r) for r in (1, 10, 100, 1000)] == [0x03, 0x43, 0x83, 0xC3]
    assert bp.cmd_start([0, 1]) == 0b00001101
    assert bp.cmd_start([5], simulated=True) == 0b10000010
    assert bp.cmd_digital_out(1, 0) == 0xB7 and bp.cmd_digital_out(0, 1) == 0xBB
    assert bp.cmd_battery_threshold(63) == 0xFC
    for bad in (lambda: bp.cmd_sampling_rate(500), lambda: bp.channel_mask([6]),
                lambda: bp.channel_mask([]), lambda: bp.cmd_battery_threshold(64)):  # fmt: skip
        with pytest.raises(bp.BitalinoCommandError):
            bad()
    for byte in range(256):  # every byte means something to the emulator, never an exception
        bp.decode_command(byte)
    assert bp.decode_command(0xC3) == ("rate", 1000)
    assert bp.decode_command(bp.cmd_start([0, 2])) == ("start", ((0, 2), False))


def test_state_reply_round_trip_and_crc():
    raw = bp.encode_state([1, 2, 3, 1023, 5, 6], 800, 17, [1, 0, 1, 1])
    assert len(raw) == 16 and raw[-1] & 0x0F == crc4_reference(raw)
    st_ = bp.decode_state(raw)
    assert st_ == {"analog": [1, 2, 3, 1023, 5, 6], "battery": 800, "battery_threshold": 17,
                   "digital": [1, 0, 1, 1]}  # fmt: skip
    bad = bytearray(raw)
    bad[3] ^= 0x04
    assert bp.decode_state(bytes(bad)) is None


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.lists(st.integers(1, 40), min_size=1, max_size=80))
def test_frames_found_on_exact_boundaries_across_partial_reads(nch, cuts):
    _seq, digital, analog, raw = frames(300, nch, seed=nch + len(cuts))
    dec = bp.FrameDecoder(nch)
    pos, got = 0, []
    i = 0
    while pos < len(raw):
        step = cuts[i % len(cuts)]
        got.append(dec.feed(raw[pos : pos + step]))
        pos += step
        i += 1
    index = np.concatenate([g.index for g in got])
    np.testing.assert_array_equal(index, np.arange(300))
    np.testing.assert_array_equal(np.concatenate([g.analog for g in got]), analog)
    np.testing.assert_array_equal(np.concatenate([g.digital for g in got]), digital)
    assert dec.stats.crc_errors == 0 and dec.stats.lost_frames == 0


def test_sequence_gives_exact_gaps_and_wraps():
    _seq, _digital, _analog, raw = frames(400, 2)
    w = bp.frame_size(2)
    keep = np.ones(400, bool)
    keep[[10, 11, 12]] = False  # 3 lost
    keep[100:115] = False  # 15 lost: still exact from the 4-bit sequence
    rows = np.frombuffer(raw, np.uint8).reshape(400, w)[keep]
    dec = bp.FrameDecoder(2)
    out = dec.feed(rows.tobytes())
    np.testing.assert_array_equal(out.index, np.flatnonzero(keep))
    assert dec.stats.gaps == [(10, 3), (100, 15)] and dec.stats.lost_frames == 18


def test_more_than_15_lost_frames_resolved_with_the_host_estimate():
    _seq, _digital, _analog, raw = frames(200, 1)
    w = bp.frame_size(1)
    rows = np.frombuffer(raw, np.uint8).reshape(200, w)
    dec = bp.FrameDecoder(1)
    dec.feed(rows[:50].tobytes())
    # 40 lost: the sequence alone says 8 (40 mod 16); the host clock says about 41
    out = dec.feed(rows[90:].tobytes(), expected_lost=41.2)
    assert out.index[0] == 90 and dec.stats.gaps == [(50, 40)]


def test_corrupt_frames_and_dropped_bytes_are_counted_never_raised():
    _seq, _digital, analog, raw = frames(1000, 3, seed=4)
    w = bp.frame_size(3)
    buf = bytearray(raw)
    for f in (100, 300, 301, 700):
        buf[f * w + 1] ^= 0x20  # a flipped bit: CRC fails
    del buf[500 * w + 2]  # a lost byte: misaligned until resync
    dec = bp.FrameDecoder(3)
    out = [dec.feed(bytes(buf[i : i + 97])) for i in range(0, len(buf), 97)]
    index = np.concatenate([o.index for o in out])
    an = np.concatenate([o.analog for o in out])
    assert dec.stats.crc_errors >= 4 and dec.stats.resyncs >= 4
    assert set(index) <= set(range(1000)) and np.all(np.diff(index) > 0)
    np.testing.assert_array_equal(an, analog[index])  # every frame kept is a true frame
    assert len(index) >= 990
    # garbage never raises
    rng = np.random.default_rng(9)
    dec = bp.FrameDecoder(6)
    for _ in range(50):
        dec.feed(bytes(rng.integers(0, 256, int(rng.integers(0, 300))).astype(np.uint8)))


# ----------------------------------------------------------------------------- emulator
def _send(port, b):
    port.write(bytes(b) if isinstance(b, (bytes, bytearray, list)) else bytes([b]))


def _read_until(port, n, timeout=3.0):
    deadline = time.monotonic() + timeout
    buf = b""
    while len(buf) < n and time.monotonic() < deadline:
        buf += port.read(n - len(buf))
    return buf


def test_emulator_on_a_pty_speaks_the_protocol():
    dev = BitalinoDevice(faults=BitalinoFaults(drop_every=20, corrupt_every=33))
    with BitalinoPty(dev) as emu, serial.Serial(emu.path, 115200, timeout=0.2) as port:
        _send(port, bp.CMD_VERSION)
        assert _read_until(port, 14) == b"BITalino_v5.1\n"
        _send(port, bp.cmd_battery_threshold(20))
        _send(port, bp.CMD_STATE)
        state = bp.decode_state(_read_until(port, 16))
        assert state["battery_threshold"] == 20
        _send(port, [bp.cmd_sampling_rate(100), bp.cmd_start([0, 1])])
        w = bp.frame_size(2)
        raw = _read_until(port, 300 * w)
        _send(port, bp.CMD_STOP)
        dec = bp.FrameDecoder(2)
        out = dec.feed(raw)
        assert dev.rate_hz == 100 and dev.channels == (0, 1)
        assert dec.stats.crc_errors >= 8 and dec.stats.lost_frames >= 20
        assert out.index[-1] + 1 >= 290 and not np.any(np.diff(out.index) <= 0)
        time.sleep(0.1)
        port.reset_input_buffer()
        _send(port, bp.CMD_VERSION)  # idle again: answers
        assert _read_until(port, 14) == b"BITalino_v5.1\n"


def test_emulator_over_tcp_and_disconnect():
    dev = BitalinoDevice(faults=BitalinoFaults(disconnect_after_frames=500))
    with BitalinoTcp(dev) as emu:
        s = socket.create_connection((emu.host, emu.port), timeout=3)
        s.sendall(bytes([bp.cmd_start([0])]))
        got = b""
        while True:
            data = s.recv(4096)
            if not data:
                break
            got += data
        s.close()
        out = bp.FrameDecoder(1).feed(got)
        np.testing.assert_array_equal(out.index, np.arange(500))


def test_emulator_simulated_mode_and_digital_outputs():
    dev = BitalinoDevice()
    dev.receive(bytes([bp.cmd_start(range(6), simulated=True), bp.cmd_digital_out(1, 1)]))
    dev.produce(400)
    out = bp.FrameDecoder(6).feed(dev.take_output())
    assert dev.mode == "simulated" and out.n == 400
    assert (out.digital[:, 2:] == 1).all()
    assert out.analog[:, :4].max() > 63 and out.analog[:, 4:].max() <= 63  # 6-bit slots 5, 6


def test_emulator_stimulator_wired_to_o1_and_i1():
    dev = BitalinoDevice(ttl_ms=3.0)
    dev.receive(bytes([bp.cmd_start([0, 1])]))
    dev.produce(100)
    dev.receive(bytes([bp.cmd_digital_out(1, 0)]))
    dev.produce(100)
    out = bp.FrameDecoder(2).feed(dev.take_output())
    i1 = out.digital[:, 0]
    assert dev.pulses[0]["emg_sample_index"] == 101
    np.testing.assert_array_equal(np.flatnonzero(i1), [101, 102, 103])


# ----------------------------------------------------------------------------- peer check
class TappedDevice(BitalinoDevice):
    """The emulator with a tap on the bytes it sends (the same bytes both decoders read)."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.sent = bytearray()

    def take_output(self) -> bytes:
        out = super().take_output()
        self.sent += out
        return out


@pytest.mark.parametrize(("channels", "rate"), [((0, 1), 1000), ((0, 1, 2, 3, 4, 5), 100),
                                                 ((4,), 10)])  # fmt: skip
def test_official_bitalino_package_agrees_sample_for_sample(channels, rate):
    official = pytest.importorskip(
        "bitalino",
        reason="the official bitalino package (GPLv3 peer) is missing: "
        "pip install --no-deps bitalino (.ci/run does)",
    )
    dev = TappedDevice(seed=5, external_stim_every_s=0.5, emg_channels=(0, 2, 4),
                       gonio_channel=1)  # fmt: skip
    with BitalinoPty(dev) as emu:
        board = official.BITalino(emu.path)
        assert board.isBitalino2
        board.start(rate, list(channels))
        theirs = np.vstack([board.read(100) for _ in range(8)])
        board.stop()
        board.close()
    n = theirs.shape[0]
    raw = bytes(dev.sent)
    # the stream after the 'version' reply (14 bytes) and the start command
    raw = raw[len(b"BITalino_v5.1\n") :]
    ours = bp.FrameDecoder(len(channels)).feed(raw)
    assert ours.n >= n
    np.testing.assert_array_equal(theirs[:, 0], ours.index[:n] % 16)
    np.testing.assert_array_equal(theirs[:, 1:5], ours.digital[:n])
    np.testing.assert_array_equal(theirs[:, 5:], ours.analog[:n])
