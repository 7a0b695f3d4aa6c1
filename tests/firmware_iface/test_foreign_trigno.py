"""Trigno TCU SDK wire format (firmware_iface.foreign.trigno) and its emulator, over real TCP."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_iface.emulator.trigno import FRAME_INTERVAL_S, TrignoDevice, TrignoServer
from firmware_iface.foreign import trigno as tp


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 200), min_size=1, max_size=50), st.booleans())
def test_float_frames_on_exact_boundaries_across_partial_reads(cuts, big):
    rng = np.random.default_rng(len(cuts))
    values = rng.normal(0, 1e-3, (120, 16)).astype(np.float32)
    raw = values.astype(">f4" if big else "<f4").tobytes()
    dec = tp.FloatFrameDecoder(16, big_endian=big)
    got, pos, i = [], 0, 0
    while pos < len(raw):
        v, bad = dec.feed(raw[pos : pos + cuts[i % len(cuts)]])
        assert not bad.any()
        got.append(v)
        pos += cuts[i % len(cuts)]
        i += 1
    np.testing.assert_array_equal(np.concatenate(got), values)
    assert dec.pending_bytes == 0 and dec.stats.samples == 120


def test_corrupt_samples_are_counted_not_raised():
    values = np.zeros((10, 16), np.float32)
    values[3, 5] = np.nan
    values[7, 0] = 5e4  # beyond 1 kV: not a sensor value
    dec = tp.FloatFrameDecoder(16)
    _, bad = dec.feed(values.tobytes())
    np.testing.assert_array_equal(np.flatnonzero(bad), [3, 7])
    assert dec.stats.invalid_samples == 2


def test_replies_split_across_reads_and_a_non_tcu_overflows():
    sp = tp.ReplySplitter(max_bytes=64)
    data = b"OK\r\n\r\nYES\r\n\r\n2148.1481\r\n\r\n"
    out = []
    for b in data:
        out += sp.feed(bytes([b]))
    assert out == ["OK", "YES", "2148.1481"]
    assert sp.feed(b"x" * 100) == [] and sp.overflows == 1
    assert tp.encode_command("START") == b"START\r\n\r\n"
    with pytest.raises(ValueError):
        tp.encode_command("A\r\nB")


def _ask(sock, buf: tp.ReplySplitter, text: str) -> str:
    sock.sendall(tp.encode_command(text))
    while True:
        out = buf.feed(sock.recv(4096))
        if out:
            return out[0]


def _command_port(port: int):
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    sp = tp.ReplySplitter()
    greeting = []
    while not greeting:
        greeting = sp.feed(s.recv(4096))
    assert greeting[0].startswith(tp.GREETING_PREFIX)
    return s, sp


def test_emulator_command_port_modes_and_rates():
    dev = TrignoDevice(emg_slots=(1, 2), gonio_slot=3)
    with TrignoServer(dev, speed="fast") as srv:
        s, sp = _command_port(srv.port)
        assert _ask(s, sp, "SENSOR 1 PAIRED?") == "YES"
        assert _ask(s, sp, "SENSOR 3 TYPE?") == "G"
        assert _ask(s, sp, "SENSOR 9 PAIRED?") == "NO"
        assert _ask(s, sp, "SENSOR 17 TYPE?") == "INVALID COMMAND"
        assert _ask(s, sp, "FLY TO THE MOON") == "INVALID COMMAND"
        assert _ask(s, sp, "RATE?") == "2148.1481"
        assert _ask(s, sp, "UPSAMPLE OFF") == "OK"
        assert float(_ask(s, sp, "RATE?")) == pytest.approx(1111.1, abs=0.05)
        assert _ask(s, sp, "BACKWARDS COMPATIBILITY ON") == "OK"
        assert _ask(s, sp, "RATE?") == "2000.0000"
        assert _ask(s, sp, "MAX SAMPLES EMG?") == "27"
        assert _ask(s, sp, "MAX SAMPLES AUX?") == "2"
        assert _ask(s, sp, "FRAME INTERVAL?") == f"{FRAME_INTERVAL_S:.4f}"
        assert _ask(s, sp, "START") == "OK"
        assert _ask(s, sp, "UPSAMPLE ON") == "INVALID COMMAND"  # not while streaming
        s.close()


def test_emulator_data_ports_carry_16_float32_sensors_in_chunks():
    dev = TrignoDevice(emg_slots=(2,), gonio_slot=5)
    with TrignoServer(dev, speed="fast") as srv:
        cmd, sp = _command_port(srv.port)
        emg = socket.create_connection(("127.0.0.1", srv.port + 3), timeout=3)
        aux = socket.create_connection(("127.0.0.1", srv.port + 4), timeout=3)
        time.sleep(0.1)
        assert _ask(cmd, sp, "START") == "OK"
        dec_e, dec_a = tp.FloatFrameDecoder(16), tp.FloatFrameDecoder(16 * 9)
        reads = 0
        while dec_e.stats.samples < 29 * 20 or dec_a.stats.samples < 40:
            for s, d in ((emg, dec_e), (aux, dec_a)):
                s.settimeout(0.05)
                try:
                    d.feed(s.recv(5000))
                    reads += 1
                except TimeoutError:
                    pass
        # the emulator writes at random byte boundaries: the decoder holds partial samples
        assert reads > 10
        for s in (cmd, emg, aux):
            s.close()
    assert dec_e.stats.invalid_samples == 0


def test_emulator_disconnect_closes_every_port():
    from firmware_iface.emulator.trigno import TrignoFaults

    dev = TrignoDevice(faults=TrignoFaults(disconnect_after_s=0.3))
    with TrignoServer(dev) as srv:
        cmd, sp = _command_port(srv.port)
        emg = socket.create_connection(("127.0.0.1", srv.port + 3), timeout=3)
        time.sleep(0.1)
        assert _ask(cmd, sp, "START") == "OK"
        emg.settimeout(3)
        n = 0
        while True:
            data = emg.recv(65536)
            if not data:
                break
            n += len(data)
        deadline = time.monotonic() + 3
        while not srv.disconnected and time.monotonic() < deadline:
            time.sleep(0.01)
        assert n > 0 and srv.disconnected
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", srv.port), timeout=1)
