"""``tonuslab record trigno://...`` and ``bitalino://...`` against the emulators (real TCP, pty).

The emulators run as their own commands (``python -m firmware_iface.emulator.trigno`` /
``.bitalino --pty``), print the URL to record from, and the recorder runs as ``tonuslab``.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys

import pytest

from acquire.session_file import open_session

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def tonuslab(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "tonuslab", *map(str, args)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def one_line_exit_2(proc) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tonuslab: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def emulator():
    procs = []

    def start(module, *args):
        p = subprocess.Popen(
            [sys.executable, "-m", f"firmware_iface.emulator.{module}", *args,
             "--serve-seconds", "60", "--profile", "simple"],
            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        procs.append(p)
        lines = [p.stdout.readline().strip()]
        if module == "bitalino":
            lines.append(p.stdout.readline().strip())
        return lines[-1]

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def test_record_from_the_trigno_emulator(tmp_path, emulator):
    url = emulator("trigno")
    assert url.startswith("trigno://127.0.0.1:")
    out = tmp_path / "t.h5"
    proc = tonuslab("record", url, "-o", out, "--duration", "2", "--plain")
    assert proc.returncode == 0, proc.stderr
    assert "state complete" in proc.stdout
    with open_session(out) as s:
        assert s.emg_rate_hz == 2148.1481 and s.device["source_kind"] == "trigno"
        assert s.emg_uv.shape[1] == 2 and s.emg.n_samples >= 2 * 2148
        assert s.angle_rate_hz == pytest.approx(148.148, abs=1e-3)


def test_record_from_the_bitalino_emulator_on_a_pty(tmp_path, emulator):
    url = emulator("bitalino", "--pty")
    assert url.startswith("bitalino:///dev/")
    out = tmp_path / "b.h5"
    proc = tonuslab("record", url, "-o", out, "--duration", "2", "--plain")
    assert proc.returncode == 0, proc.stderr
    with open_session(out) as s:
        assert s.emg_rate_hz == 1000.0 and s.device["source_kind"] == "bitalino"
        assert s.emg.n_samples >= 2000 and s.gaps == []


def test_bad_input_is_one_line_exit_2(tmp_path, emulator):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    out = tmp_path / "x.h5"
    line = one_line_exit_2(tonuslab("record", f"trigno://127.0.0.1:{free}", "-o", out))
    assert "cannot connect to the Trigno Control Utility" in line
    line = one_line_exit_2(tonuslab("record", "bitalino:///dev/no_such_port", "-o", out))
    assert "cannot open /dev/no_such_port" in line
    line = one_line_exit_2(tonuslab("record", "trigno://127.0.0.1?mode=turbo", "-o", out))
    assert "mode must be avanti or legacy" in line
    line = one_line_exit_2(tonuslab("record", "bitalino:///dev/x?rate=2000", "-o", out))
    assert "rate must be 1, 10, 100 or 1000 Hz" in line
    # the wrong device on the port: a BITalino where a Trigno TCU is expected
    bit = emulator("bitalino", "--tcp", "0").split("?")[0].removeprefix("bitalino://")
    line = one_line_exit_2(tonuslab("record", f"trigno://{bit}?timeout=1", "-o", out))
    assert "no Trigno Control Utility answers" in line
    assert not out.exists()


def test_cli_hreflex_triggers_the_stimulator_through_bitalino_o1(tmp_path, emulator):
    url = emulator("bitalino", "--pty", "--speed", "realtime")
    out = tmp_path / "h.h5"
    proc = tonuslab("record", url, "-o", out, "--protocol", "hreflex", "--ladder", "8,10",
                    "--interval", "0.5", "--trigger-after", "0.3", "--plain")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "tonuslab triggers the stimulator in 0.3 s" in proc.stdout
    with open_session(out) as s:
        stims = [e for e in s.events if e["kind"] == "stimulus"]
        assert [e["intensity_ma"] for e in stims] == [8.0, 10.0]
        assert all(e["params"]["intensity_from"] == "prompt" for e in stims)
    trigno = emulator("trigno")
    line = one_line_exit_2(tonuslab("record", trigno, "-o", tmp_path / "t.h5", "--protocol",
                                    "hreflex", "--trigger-after", "1"))  # fmt: skip
    assert "has no stimulator trigger output" in line
