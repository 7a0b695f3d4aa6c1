"""The README: its quick start is what CI runs, its walk-through runs as written."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _quick_start_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)


def test_quick_start_has_exactly_two_commands():
    commands = _quick_start_commands()
    assert len(commands) == 2, commands
    assert all("\n" not in c for c in commands)
    assert commands[0].endswith("tonuslab demo")


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = _quick_start_commands()[1]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


# ------------------------------------------------------------------ the walk-through, as written
def _walkthrough_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## A session, from device to result", 1)[1].split("\n## ", 1)[0]


def _walkthrough_commands() -> list[str]:
    """The walk-through's shell command lines as written (continuation lines joined)."""
    (block,) = re.findall(r"```bash\n(.+?)\n```", _walkthrough_section(), flags=re.S)
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def _walkthrough_python() -> str:
    (block,) = re.findall(r"```python\n(.+?)\n```", _walkthrough_section(), flags=re.S)
    return block


def test_walkthrough_commands_parse_and_need_no_hardware():
    """Fast drift check: every command is accepted by the CLI's parser as written."""
    import importlib
    import shlex

    from tonuslab.cli import build_parser

    commands = _walkthrough_commands()
    steps = [shlex.split(c, comments=True)[:2] for c in commands]
    assert [s[1] for s in steps if s[0] == "tonuslab"] == [
        "record",
        "analyze",
        "report",
        "compare",
        "batch",
    ]
    parser = build_parser()
    for command in commands:
        words = shlex.split(command, comments=True)
        assert "/dev/" not in command and "ble://" not in command, command
        if words[0] == "tonuslab":
            parser.parse_args(words[1:])  # exits (SystemExit) on an unknown option
        else:
            assert words[:2] == ["python", "-c"], command
            module = re.search(r"from (\S+) import (\w+)", words[2])
            assert hasattr(importlib.import_module(module[1]), module[2])
    assert shlex.split(commands[0])[2].startswith("sim://")
    assert len(commands) == 6


@pytest.mark.slow
def test_walkthrough_runs_as_written(tmp_path):
    """Runs the README walk-through's commands in an empty folder (40-60 s on 2 busy cores)."""
    import csv
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    outputs = []
    for command in _walkthrough_commands():
        proc = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"{command}\n{proc.stderr[-2000:]}"
        assert "Traceback" not in proc.stderr, command
        outputs.append(proc.stdout)
    record, analyze, report, _simulate, compare, batch = outputs
    assert "report written to S014_elbow_L.html" in report
    assert "state complete" in record and "0 packets lost" in record
    assert "Spasticity profile" in analyze and "tsrt_deg" in analyze
    html = (tmp_path / "S014_elbow_L.html").read_text()
    assert html.count("data:image/png;base64,") >= 4  # every figure of a stretch session
    assert len(sorted((tmp_path / "bolus").glob("bolus_*h.h5"))) == 7
    assert "RESPONDER" in compare and "TSRT" in compare
    with open(tmp_path / "cohort.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 7 and {r["status"] for r in rows} == {"ok"}
    assert "7 of 7 sessions analysed" in batch
    # and the Python API lines below it
    proc = subprocess.run(
        [sys.executable, "-c", _walkthrough_python()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
