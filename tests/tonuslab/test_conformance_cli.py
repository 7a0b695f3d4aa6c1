"""``tonuslab conformance`` against the emulator over a real pty and over TCP."""

import json

import pytest

from firmware_iface import auth
from firmware_iface.conformance import CHECKS
from firmware_iface.emulator import Faults, PtyEmulator, TcpEmulator, make_device
from tonuslab.cli import main

KEY = bytes(range(32))


@pytest.fixture
def key_file(tmp_path):
    return str(auth.write_key_file(tmp_path / "stim.key", KEY))


def test_emulator_passes_over_a_pty(key_file, capsys):
    with PtyEmulator(make_device(stim_key=KEY)) as pty:
        code = main(["conformance", pty.path, "--key-file", key_file, "--seconds", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    # fast: the watchdog check passes when the pty's buffer stalls the device, else it skips
    assert out.count("PASS") in (10, 11) and "device conforms" in out


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_realtime_emulator_passes_every_check_including_the_clocks(transport, key_file, capsys):
    """In real time nothing is skipped: the device clock and the sampling rate are timed."""
    device = make_device(stim_key=KEY)
    device.open_pairing_window(3600)  # the pairing button held: the re-pairing check runs
    server = (PtyEmulator if transport == "pty" else TcpEmulator)(device, speed="realtime")
    with server:
        url = server.path if transport == "pty" else server.url
        code = main(["conformance", url, "--key-file", key_file, "--seconds", "1", "--json"])
    report = json.loads(capsys.readouterr().out)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert code == 0 and set(statuses.values()) == {"PASS"}, statuses
    assert len(statuses) == len(CHECKS)


def test_emulator_passes_over_tcp_as_json(key_file, capsys):
    with TcpEmulator(make_device(stim_key=KEY)) as server:
        code = main(["conformance", server.url, "--key-file", key_file, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["passed"]
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses.pop("clock vs host") == "SKIP"
    assert statuses.pop("sampling rate vs clock") == "SKIP"
    assert statuses.pop("re-pairing replay") == "SKIP"  # the pairing button is not held
    # fast over TCP: the socket buffers hold the whole train, so the watchdog cannot be timed
    assert statuses.pop("stimulation watchdog") in ("PASS", "SKIP")
    assert set(statuses.values()) == {"PASS"}


def test_mistimed_device_fails_with_exit_code_1(key_file, capsys):
    device = make_device(stim_key=KEY, faults=Faults(timestamp_error_ppm=300))
    with TcpEmulator(device) as server:
        code = main(["conformance", server.url, "--key-file", key_file, "--seconds", "1"])
    out = capsys.readouterr().out
    assert code == 1
    line = next(s for s in out.splitlines() if s.startswith("timestamps vs rate"))
    assert "FAIL" in line and "+300 ppm" in line


def test_sim_url_without_key_passes_with_skip(capsys):
    assert main(["conformance", "sim://simple", "--seconds", "0.5"]) == 0
    assert "SKIP" in capsys.readouterr().out


@pytest.mark.parametrize("url", ["gopher://x", "tcp://127.0.0.1:1", "/dev/no-such-port"])
def test_bad_url_is_one_line_exit_2(url, capsys):
    assert main(["conformance", url]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_key_file_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "k"
    bad.write_text("nothex\n")
    bad.chmod(0o600)
    assert main(["conformance", "sim://simple", "--key-file", str(bad)]) == 2
    assert "hex" in capsys.readouterr().err


def test_emulator_served_from_its_own_process_over_tcp(key_file, capsys):
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_iface.emulator", "--tcp", "0", "--speed", "fast",
         "--key-file", key_file, "--serve-seconds", "60"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("tcp://127.0.0.1:")
        code = main(["conformance", url, "--key-file", key_file, "--seconds", "1"])
        assert code == 0, capsys.readouterr().out
    finally:
        proc.terminate()
        proc.wait(10)
