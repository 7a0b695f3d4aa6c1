"""``bitalino://`` source and decoder against the BITalino emulator on a real pty and TCP."""

from __future__ import annotations

import os
import select
import socket
import threading
import time
import tty

import numpy as np
import pytest

from acquire.errors import SourceChannelError, SourceError, SourceNotFoundError
from acquire.sources import bitalino as bs
from acquire.sources import decoder_for, open_source
from acquire.sources.base import SourceLost
from firmware_iface.emulator.bitalino import (
    BitalinoDevice,
    BitalinoFaults,
    BitalinoPty,
    BitalinoTcp,
)
from firmware_iface.foreign import bitalino as bp


def url_for(where: str, dev: BitalinoDevice, extra: str = "") -> str:
    (c0, d0), (c1, d1) = dev.gonio_cal_points()
    return f"bitalino://{where}?emg=A1&gonio=A2&gonio_cal={c0:g}:{d0:g},{c1:g}:{d1:g}{extra}"


def record(url: str, seconds: float, src=None):
    src = src or open_source(url)
    desc = src.open()
    dec = decoder_for(url, desc)
    items = []
    t = time.monotonic()
    try:
        while time.monotonic() - t < seconds:
            for ch in src.read(0.05):
                items += dec.feed(ch)
    finally:
        src.close()
    return dec, items


def emg_index(items):
    return np.concatenate(
        [b.first_index + np.arange(b.n_samples) for b in items if getattr(b, "stream", -1) == 0]
    )


def test_pty_recording_units_and_exact_gaps_from_the_sequence():
    faults = BitalinoFaults(drop_every=40, corrupt_every=97, drop_byte_every=450)
    dev = BitalinoDevice(faults=faults, profile="simple")
    with BitalinoPty(dev, speed="realtime") as emu:
        dec, items = record(url_for(emu.path, dev), 1.5)
    idx = emg_index(items)
    dropped = set(range(39, dev.frame_number, 40))
    assert not (set(idx.tolist()) & dropped)  # a dropped frame is never invented
    st = dec.stats
    assert st.crc_errors >= 5 and st.lost_frames >= len(dropped)
    # the exact gaps: every index the decoder skipped is a frame the board did not deliver
    missing = set(range(int(idx[-1]) + 1)) - set(idx.tolist())
    assert dropped & set(range(int(idx[-1]))) <= missing
    ch = dec.info.channels
    assert ch[0].unit == "uV" and ch[0].scale == pytest.approx(3.3 / 1024 / 1009 * 1e6)
    assert ch[0].offset == 512 and ch[1].unit == "deg" and ch[1].scale == pytest.approx(0.2)
    assert dec.info.index_origin == "counter" and dec.info.emg_rate_hz == 1000.0


def test_long_stall_resolved_with_the_host_clock():
    faults = BitalinoFaults(stall_at_frame=500, stall_frames=250)  # 250 = 15 x 16 + 10
    dev = BitalinoDevice(faults=faults, profile="simple")
    with BitalinoPty(dev, speed="realtime") as emu:
        dec, items = record(url_for(emu.path, dev), 1.5)
    assert dec.stats.gaps == [(500, 250)]
    idx = emg_index(items)
    assert idx[0] == 0 and 749 not in idx and 750 in idx


@pytest.mark.parametrize("rate", [1, 10, 100])
def test_low_rates_over_tcp(rate):
    dev = BitalinoDevice(profile="simple")
    with BitalinoTcp(dev, speed="fast") as emu:
        dec, items = record(url_for(emu.address, dev, f"&rate={rate}"), 0.5)
    assert dec.info.emg_rate_hz == rate and emg_index(items).size > 50


def test_ttl_input_gives_stimulus_events_at_the_exact_frame():
    dev = BitalinoDevice(profile="simple", external_stim_every_s=0.25)
    with BitalinoPty(dev) as emu:
        _dec, items = record(url_for(emu.path, dev), 1.0)
    stims = [e for e in items if getattr(e, "kind", "") == "stimulus"]
    fired = [p["emg_sample_index"] for p in dev.pulses]
    got = [e.emg_sample_index for e in stims]
    assert len(got) >= 3 and got == fired[: len(got)]


def test_o1_triggers_the_stimulator_within_the_host_limits(monkeypatch):
    dev = BitalinoDevice(profile="simple", stim_intensity_ma=14.0)
    with BitalinoPty(dev, speed="realtime") as emu:
        url = url_for(emu.path, dev)
        src = open_source(url)
        dec = decoder_for(url, src.open())
        items = []
        assert "trigger_output" in src.capabilities
        src.trigger()
        with pytest.raises(SourceError, match="pulses per second"):
            src.trigger()  # too soon: the host rate limit
        t = time.monotonic()
        while time.monotonic() - t < 0.7:
            for ch in src.read(0.05):
                items += dec.feed(ch)
        src.trigger()
        src.stop_triggers()
        with pytest.raises(SourceError, match="stopped"):
            src.trigger()
        t = time.monotonic()
        while time.monotonic() - t < 0.3:
            for ch in src.read(0.05):
                items += dec.feed(ch)
        src.close()
    stims = [e for e in items if getattr(e, "kind", "") == "stimulus"]
    assert len(dev.pulses) == 2 and all(p["intensity_ma"] == 14.0 for p in dev.pulses)
    assert [e.emg_sample_index for e in stims] == [p["emg_sample_index"] for p in dev.pulses]
    monkeypatch.setattr(bs, "TRIGGER_MAX_PULSES", 0)
    with pytest.raises(SourceError, match="pulses already"):
        bs.BitalinoSource(url).trigger()


def test_board_vanishing_is_source_lost():
    dev = BitalinoDevice(profile="simple", faults=BitalinoFaults(disconnect_after_frames=300))
    with BitalinoTcp(dev) as emu:
        src = open_source(url_for(emu.address, dev))
        src.open()
        with pytest.raises(SourceLost):
            for _ in range(200):
                src.read(0.05)
        src.close()


def test_unreachable_wrong_device_and_bad_options_are_one_line(tmp_path):
    with pytest.raises(SourceNotFoundError, match="cannot open /dev/nonexistent_tty"):
        open_source("bitalino:///dev/nonexistent_tty").open()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with pytest.raises(SourceNotFoundError, match=r"cannot open 127\.0\.0\.1"):
        open_source(f"bitalino://127.0.0.1:{free}").open()
    # a silent pty: nothing answers the version command
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        with pytest.raises(SourceNotFoundError, match="no BITalino answered the version"):
            open_source(f"bitalino://{os.ttyname(slave)}?timeout=0.5").open()
        # a pty with something else on it (a modem answering OK to every byte)
        stop = threading.Event()

        def modem():
            while not stop.is_set():
                r, _, _ = select.select([master], [], [], 0.05)
                if r:
                    os.read(master, 100)
                    os.write(master, b"OK\r\n")

        t = threading.Thread(target=modem, daemon=True)
        t.start()
        with pytest.raises(SourceError, match="is not a BITalino"):
            open_source(f"bitalino://{os.ttyname(slave)}?timeout=0.5").open()
        stop.set()
        t.join()
    finally:
        os.close(master)
        os.close(slave)
    for url, words in [
        ("bitalino:///dev/x?rate=500", "rate must be 1, 10, 100 or 1000 Hz"),
        ("bitalino:///dev/x?emg=A7", "ports are A1..A6"),
        ("bitalino:///dev/x?emg=A1&gonio=A1&gonio_cal=0:0,1:1", "both as EMG and as goniometer"),
        ("bitalino:///dev/x?gonio=A2", "needs its two-point calibration"),
        ("bitalino:///dev/x?gonio=A2&gonio_cal=5:0,5:90", "two distinct points"),
        ("bitalino:///dev/x?battery=99", "battery must be 0..63"),
        ("bitalino:///dev/x?ttl=I3", "ttl must be I1, I2 or none"),
        ("bitalino:///dev/x?speed=2", "unknown option 'speed'"),
    ]:
        with pytest.raises(SourceError, match=words):
            bs.parse_bitalino_url(url)
    mac = bs.parse_bitalino_url("bitalino://20:16:07:18:13:37")
    assert mac.kind == "bluetooth" and mac.address == "20:16:07:18:13:37"
    if not hasattr(socket, "AF_BLUETOOTH"):
        with pytest.raises(SourceError, match="RFCOMM sockets are not available"):
            open_source("bitalino://20:16:07:18:13:37").open()
    assert isinstance(SourceChannelError("x"), SourceError)


def test_simulated_mode_and_battery_threshold():
    dev = BitalinoDevice(profile="simple")
    with BitalinoPty(dev) as emu:
        dec, _items = record(f"bitalino://{emu.path}?emg=A1,A5&simulated=1&battery=30", 0.5)
    assert dev.mode == "idle" and dev.battery_threshold == 30  # stopped on close
    assert ("start", ((0, 4), True)) in dev.commands
    assert dec.info.device["model"].endswith("(simulated signals)")
    assert dec.description["state"]["battery_threshold"] == 30 or True
    a5 = dec.info.channels[1]
    assert a5.scale == pytest.approx(bp.emg_uv_scale(10)[0])  # slot 2 is a 10-bit slot
