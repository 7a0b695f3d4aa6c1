"""``tonuslab record --protocol hreflex``: bad numbers refused before anything opens, and a
protocol aborted by the device or by a wrong channel exits non-zero (issue 18 item 3)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import urllib.parse

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def tonuslab(*args, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "tonuslab", *map(str, args)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture
def key(tmp_path):
    from firmware_iface.auth import new_key, write_key_file

    return write_key_file(tmp_path / "stim.key", new_key())


@pytest.mark.parametrize(
    "option",
    [
        ("--interval", "nan"),
        ("--interval", "inf"),
        ("--pair-intervals", "nan"),
        ("--pair-intervals", "2.5,inf"),
        ("--rate-blocks", "nan"),
        ("--ladder", "4,nan"),
        ("--test-intensity", "nan"),
        ("--gate-timeout", "inf"),
        ("--time-scale", "nan"),
    ],
)
def test_nan_and_inf_stimulation_options_are_refused_before_anything_opens(tmp_path, key, option):
    out = tmp_path / "never.h5"
    proc = tonuslab("record", "sim://soleus_healthy", "-o", out, "--protocol", "hreflex",
                    "--key-file", key, *option)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "finite" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not (tmp_path / "never.capture").exists()


def _run(tmp_path, url, key, *extra):
    out = tmp_path / "h.h5"
    proc = tonuslab(
        "record", url, "-o", out, "--protocol", "hreflex", "--key-file", key,
        "--time-scale", "0.05", "--emg-rate", "5000", "--n-emg", "1", "--plain", *extra,
    )  # fmt: skip
    return proc, out


def test_wrong_device_key_aborts_the_protocol_and_exits_non_zero(tmp_path, key):
    """AUTH_FAILED: the device is paired with another key than --key-file."""
    from acquire.session_file import open_session
    from firmware_iface.auth import new_key, write_key_file

    other = write_key_file(tmp_path / "other.key", new_key())
    url = f"sim://soleus_healthy?seed=1&speed=realtime&key_file={urllib.parse.quote(str(other))}"
    proc, out = _run(tmp_path, url, key)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "aborted" in lines[0] and "AUTH_FAILED" in lines[0], proc.stderr
    with open_session(out) as s:  # the recording up to the abort is saved
        assert s.attrs["state"] == "complete"
        assert len(s.stimulus_arrays()["stim_sample_index"]) == 0


def test_emg_channel_beyond_the_recording_aborts_and_exits_non_zero(tmp_path, key):
    proc, out = _run(tmp_path, "sim://soleus_healthy?seed=1&speed=realtime", key,
                     "--emg-channel", "99")  # fmt: skip
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "emg_channel=99" in lines[0], proc.stderr
    assert out.exists()


@pytest.mark.parametrize(
    ("option", "name"),
    [
        (("--velocities", "0.001"), "--velocities"),
        (("--velocities", "30,nan"), "--velocities"),
        (("--velocities", "inf"), "--velocities"),
        (("--range-velocity", "0.0001"), "--range-velocity"),
        (("--range-velocity", "nan"), "--range-velocity"),
        (("--rest", "inf"), "--rest"),
        (("--rest", "-1"), "--rest"),
        (("--repeats", "-1"), "--repeats"),
        (("--passive-range", "0", "nan"), "--passive-range"),
    ],
)
def test_stretch_options_no_device_performs_are_refused_before_anything_opens(
    tmp_path, option, name
):
    """Issue 18 item 6: 0.001 deg/s made the virtual patient allocate 7.5 GiB (sim://)."""
    out = tmp_path / "never.h5"
    proc = tonuslab("record", "sim://mild_elbow", "-o", out, "--protocol", "stretch", "--plain",
                    *option)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tonuslab: error: {name}"), proc.stderr
    assert not out.exists() and not (tmp_path / "never.capture").exists()
