"""The stimulation watchdog (PROTOCOL.md 8.4, issue 18 item 4): a pair or train needs the
host's heartbeat; with the host frozen (SIGSTOP) the device stops it within the timeout."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

from firmware_iface import auth
from firmware_iface.client import DeviceClient, DeviceEvent
from firmware_iface.codec import StreamDecoder, encode_frame
from firmware_iface.emulator import emulator_link, make_device
from firmware_iface.messages import (
    HEARTBEAT_TIMEOUT_US,
    Config,
    ErrorCode,
    ErrorReply,
    MsgType,
    StimEvent,
    Stimulate,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
KEY = bytes(range(32))


def test_device_stops_a_train_after_the_timeout_without_a_host_frame():
    device = make_device(stim_key=KEY)
    device.receive(encode_frame(MsgType.CONFIGURE, 1, 0, Config(emg_rate_hz=5000).pack()))
    device.receive(encode_frame(MsgType.START, 2, 0, b""))
    cmd = Stimulate(2, 10, 1000, 100, 100_000, 1, device.clock.uptime_us() + 500_000)
    device.receive(encode_frame(MsgType.STIMULATE, 3, 0, auth.sign(cmd, KEY, device.serial).pack()))
    device.take_output()
    time.sleep(HEARTBEAT_TIMEOUT_US / 1e6 + 0.2)  # the host says nothing (uptime is real time)
    device.clock.run_ahead_to(device.clock.now_us() + 1_200_000)
    device.advance(device.clock.now_us())
    frames = StreamDecoder().feed(device.take_output())
    pulses = [StimEvent.unpack(f.payload) for f in frames if f.msg_type == MsgType.STIM_EVENT]
    errors = [ErrorReply.unpack(f.payload) for f in frames if f.msg_type == MsgType.ERROR]
    assert [p.pulse_index for p in pulses] == [0]  # the first pulse follows the command at once
    (err,) = errors
    assert err.code == ErrorCode.HEARTBEAT_LOST and err.acked_seq == 3
    assert "1 of 10 pulses" in err.text
    assert device.heartbeat_stops == 1 and not device._pulses
    # the signal source forgot the cancelled pulses: no response without a pulse
    assert len(device.source.ground_truth()["stimuli"]) == 1


def test_the_client_heartbeat_keeps_a_long_train_going():
    """3 s of train, longer than the 2 s timeout: the client pings while it runs."""
    link = emulator_link(make_device(stim_key=KEY), speed="realtime")
    client = DeviceClient(link, stim_key=KEY)
    try:
        client.connect()
        client.start()
        client.read(0.2)
        client.stimulate(1.0, 100, mode="train", pulses=30, interval_ms=100)
        assert client.heartbeat_active
        stims, deadline = [], time.monotonic() + 10
        while len(stims) < 30 and time.monotonic() < deadline:
            stims += [
                e for e in client.read(0.2) if isinstance(e, DeviceEvent) and e.kind == "stim"
            ]
        assert len(stims) == 30 and client.stats.heartbeat_stops == 0
        time.sleep(1.5)
        assert not client.heartbeat_active  # it ends with the train
    finally:
        client.close()


HOST = textwrap.dedent(
    """
    import json, sys, time
    from acquire.links import open_link
    from firmware_iface.client import DeviceClient, DeviceEvent
    client = DeviceClient(open_link(sys.argv[1]), stim_key=bytes(range(32)))
    client.connect()
    client.configure(emg_rate_hz=5000, n_emg=2)
    client.start()
    client.read(0.3)
    client.stimulate(1.0, 100, mode="train", pulses=50, interval_ms=100)
    print("accepted", flush=True)
    stims, reports, end = [], [], time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:
        for e in client.read(0.1):
            if isinstance(e, DeviceEvent) and e.kind == "stim":
                stims.append(e.emg_sample_index)
            elif isinstance(e, DeviceEvent) and e.kind == "watchdog":
                reports.append(e.message.text)
    print(json.dumps({"stims": stims, "reports": reports}), flush=True)
    client.stop()
    """
)


def _host(url, seconds):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", HOST, url, str(seconds)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _emulator(tmp_path):
    key = auth.write_key_file(tmp_path / "stim.key", KEY)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_iface.emulator", "--tcp", "0", "--speed", "realtime",
         "--key-file", str(key), "--serve-seconds", "60"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    return proc, proc.stdout.readline().strip()


def test_frozen_host_over_tcp_stops_the_train(tmp_path):
    """SIGSTOP the host process 0.5 s into a 5 s, 50-pulse train: the device stops it within
    the heartbeat timeout; before, the train ran to its end (44 more pulses)."""
    emu, url = _emulator(tmp_path)
    try:
        host = _host(url, 9.0)
        assert host.stdout.readline().strip() == "accepted", host.stderr.read()
        time.sleep(0.5)
        os.kill(host.pid, signal.SIGSTOP)
        time.sleep(4.0)
        os.kill(host.pid, signal.SIGCONT)
        out, err = host.communicate(timeout=60)
        assert host.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
    finally:
        emu.terminate()
        emu.wait(10)
    stims = result["stims"]
    # frozen at ~0.5 s, timeout 2 s: at most ~25 pulses at 100 ms (generous on a loaded machine)
    assert 3 <= len(stims) <= 35, result
    span_s = (stims[-1] - stims[0]) / 5000
    assert span_s <= 0.5 + HEARTBEAT_TIMEOUT_US / 1e6 + 1.0, result
    (report,) = result["reports"]
    assert "no host frame" in report and "of 50 pulses" in report


def test_a_live_host_over_tcp_gets_the_whole_train(tmp_path):
    emu, url = _emulator(tmp_path)
    try:
        host = _host(url, 7.0)
        assert host.stdout.readline().strip() == "accepted", host.stderr.read()
        out, err = host.communicate(timeout=60)
        assert host.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
    finally:
        emu.terminate()
        emu.wait(10)
    assert len(result["stims"]) == 50 and result["reports"] == [], result
