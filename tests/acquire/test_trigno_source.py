"""``trigno://`` source and decoder against the TCU emulator on real loopback sockets."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from acquire.errors import SourceChannelError, SourceError, SourceNotFoundError
from acquire.sources import decoder_for, open_source
from acquire.sources.base import SourceLost
from acquire.sources.trigno import parse_trigno_url
from firmware_iface.emulator.trigno import TrignoDevice, TrignoFaults, TrignoServer


def url_of(srv: TrignoServer, dev: TrignoDevice, extra: str = "") -> str:
    (v0, d0), (v1, d1) = dev.gonio_cal_points()
    return f"{srv.url}?emg=1,2&gonio=3&gonio_cal={v0:g}:{d0:g},{v1:g}:{d1:g}{extra}"


def record(url: str, seconds: float):
    src = open_source(url)
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
    items += dec.finish()
    return dec, items


def stream(items, k):
    return [b for b in items if b.stream == k]


@pytest.mark.parametrize(
    ("extra", "rate", "per_frame"),
    [("", 2148.1481, 29), ("&upsample=off", 1111.1111, 15), ("&mode=legacy", 2000.0, 27)],
)
def test_rates_stored_as_the_tcu_reports_them(extra, rate, per_frame):
    dev = TrignoDevice(profile="simple")
    with TrignoServer(dev, speed="fast") as srv:
        dec, items = record(url_of(srv, dev, extra), 0.6)
    assert dec.info.emg_rate_hz == rate
    assert dec.info.angle_rate_hz == pytest.approx(148.148, abs=1e-3)
    assert dec.info.index_origin == "clock" and dec.info.device["source_kind"] == "trigno"
    emg = stream(items, 0)
    assert sum(b.n_samples for b in emg) > 10 * per_frame
    assert [c.name for c in dec.info.channels] == ["slot1", "slot2", "slot3"]


class TappedTrigno(TrignoDevice):
    """The emulator with a tap on the frames it sends."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.sent = []

    def frame(self):
        out = super().frame()
        self.sent.append(out)
        return out


def test_emg_microvolts_and_goniometer_degrees():
    dev = TappedTrigno(profile="moderate_elbow", gonio_v0=0.2, gonio_v_per_deg=0.02)
    with TrignoServer(dev, speed="fast") as srv:
        dec, items = record(url_of(srv, dev), 0.6)
    emg = np.vstack([b.counts for b in stream(items, 0)]) * dec.info.channels[0].scale
    ang = np.vstack([b.counts for b in stream(items, 1)]) * dec.info.channels[2].scale
    volts = np.frombuffer(b"".join(f[0] for f in dev.sent), "<f4").reshape(-1, 16)
    aux = np.frombuffer(b"".join(f[1] for f in dev.sent), "<f4").reshape(-1, 16, 9)
    n, m = emg.shape[0], ang.shape[0]
    assert n > 1000 and m > 50
    # EMG: float32 volts of slots 1-2 to uV, within half a 1 nV count
    np.testing.assert_allclose(emg, volts[:n, :2].astype(np.float64) * 1e6, atol=6e-4)
    # goniometer adapter, slot 3 channel 1: two-point line volts -> degrees, within 0.001 deg
    deg = (aux[:m, 2, 0].astype(np.float64) - 0.2) / 0.02
    np.testing.assert_allclose(ang[:, 0], deg, atol=1e-3)
    assert np.ptp(emg) > 10  # microvolts, not volts


def test_stall_is_a_gap_with_its_best_estimate_and_a_pause_is_not():
    faults = TrignoFaults(stall_at_s=0.5, stall_s=0.3, pause_at_s=1.3, pause_s=0.25,
                          corrupt_every_frames=25)  # fmt: skip
    dev = TrignoDevice(profile="simple", faults=faults)
    with TrignoServer(dev) as srv:
        dec, items = record(url_of(srv, dev), 2.2)
    stall_frames = round(0.3 / 0.0135)  # frames whose time falls in the stall
    gaps = dec.stats["emg"]["gaps"]
    assert len(gaps) == 1, gaps  # the pause delivered everything late: no gap
    start, lost = gaps[0]
    assert abs(lost - stall_frames * 29) <= 29  # within one TCU frame
    assert abs(start - round(0.5 / 0.0135) * 29) <= 29
    assert len(dec.stats["aux"]["gaps"]) == 1
    # corrupt samples (NaN) were counted and left out, never raised
    assert dec.stats["emg"]["invalid_samples"] >= 3
    emg = stream(items, 0)
    idx = np.concatenate([b.first_index + np.arange(b.n_samples) for b in emg])
    assert np.all(np.diff(idx) > 0)


def test_disconnect_is_source_lost():
    dev = TrignoDevice(profile="simple", faults=TrignoFaults(disconnect_after_s=0.3))
    with TrignoServer(dev) as srv:
        src = open_source(url_of(srv, dev))
        src.open()
        with pytest.raises(SourceLost):
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                src.read(0.05)
        src.close()


def test_unreachable_wrong_device_and_bad_options_are_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with pytest.raises(SourceNotFoundError, match="cannot connect to the Trigno Control Utility"):
        open_source(f"trigno://127.0.0.1:{free}?timeout=1").open()
    # something else on the port: an HTTP-ish server that greets otherwise
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve():
        conn, _ = server.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        time.sleep(0.5)
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    with pytest.raises(SourceError, match="is not a Trigno Control Utility"):
        open_source(f"trigno://127.0.0.1:{port}?timeout=2").open()
    server.close()
    for url, words in [
        ("trigno://h?mode=turbo", "mode must be avanti or legacy"),
        ("trigno://h?upsample=maybe", "upsample must be on or off"),
        ("trigno://h?mode=legacy&upsample=off", "applies to mode=avanti only"),
        ("trigno://h?emg=17", "slots are 1..16"),
        ("trigno://h?gonio=3", "needs its two-point calibration"),
        ("trigno://h?speed=9", "unknown option 'speed'"),
        ("trigno://?emg=1", "give the TCU's host"),
    ]:
        with pytest.raises(SourceError, match=words):
            parse_trigno_url(url)
    assert parse_trigno_url("trigno://10.0.0.5").port == 50040


def test_slots_checked_against_the_sensors_paired():
    dev = TrignoDevice(profile="simple", emg_slots=(1,), gonio_slot=3)
    with TrignoServer(dev, speed="fast") as srv:
        with pytest.raises(SourceChannelError, match="no sensor is paired in slot 2"):
            open_source(f"{srv.url}?emg=1,2").open()
        with pytest.raises(SourceChannelError, match="not an EMG sensor"):
            open_source(f"{srv.url}?emg=3").open()
        with pytest.raises(SourceChannelError, match="not a goniometer adapter"):
            open_source(f"{srv.url}?gonio=1&gonio_cal=0:0,1:90").open()
        dec, _ = record(srv.url, 0.3)  # default: every paired EMG sensor
        assert [c.name for c in dec.info.channels] == ["slot1"]
