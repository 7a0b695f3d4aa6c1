"""docs/api-reference.md is generated from the docstrings and must be current (issue 14)."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_api_reference_is_current():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "api_reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_api_reference_lists_the_public_entry_points():
    text = (ROOT / "docs" / "api-reference.md").read_text()
    names = ["analyze_stretch_reflex(", "analyze_hreflex(", "class SessionReader", "class Session",
             "write_results(", "class ChannelScaling", "class Recorder"]  # fmt: skip
    missing = [n for n in names if n not in text]
    assert missing == []
