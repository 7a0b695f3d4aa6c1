import json
import re
import subprocess
import sys

import numpy as np

from tonuslab.cli import main
from tonuslab.commands.demo import format_demo, run_demo


def test_run_demo_receives_10_s_without_gaps():
    result = run_demo(device_seconds=10.0)
    emg, angle = result.streams[0], result.streams[1]
    assert result.device_seconds >= 10.0
    assert emg.n_samples >= 10 * emg.rate_hz and angle.n_samples >= 10 * angle.rate_hz
    assert abs(emg.achieved_rate_hz - emg.rate_hz) < 1e-6 * emg.rate_hz
    assert emg.gaps == [] and angle.gaps == []
    np.testing.assert_array_equal(emg.index, np.arange(emg.n_samples))
    kinds = {e.kind for e in result.events}
    assert kinds == {"status", "marker"}
    assert result.link["lost_frames"] == 0 and result.link["corrupt_frames"] == 0
    text = format_demo(result)
    assert "EMG1" in text and "GON1" in text and "0 missing" in text


def test_demo_cli_prints_json(capsys):
    assert main(["demo", "--link-only", "--seconds", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["streams"]["emg"]["samples"] >= 4000
    assert out["device"]["serial"] == "EMU-0001"


def test_demo_console_command_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "tonuslab", "demo", "--link-only"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"streamed 10\.\d\d s of device time", proc.stdout), proc.stdout
    assert "0 missing in 0 gaps" in proc.stdout


def test_demo_bad_url_is_exit_2(capsys):
    assert main(["demo", "--url", "sim://simple?speed=warp"]) == 2
    assert "speed" in capsys.readouterr().err


def test_demo_in_real_time_takes_wall_time(capsys):
    assert main(["demo", "--url", "sim://simple?speed=realtime", "--seconds", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["wall_seconds"] >= 0.9
    assert out["streams"]["emg"]["missing_samples"] == 0


def test_default_demo_runs_the_whole_product(tmp_path):
    """The README's first command: record both sessions, analyse, report, print the profile."""
    proc = subprocess.run(
        [sys.executable, "-m", "tonuslab", "demo", "-o", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Spasticity profile" in proc.stdout and "simulator truth" in proc.stdout
    assert re.search(r"TSRT \(tonic stretch reflex threshold\)\s+\d+\.\d deg", proc.stdout)
    assert re.search(r"Hmax/Mmax\s+0\.\d+\s+95% CI", proc.stdout)
    for name in ("stretch.h5", "hreflex.h5", "report.html"):
        assert (tmp_path / "demo" / name).stat().st_size > 0
