"""CI replays the sample captures in data/ and checks them against the stored expectation."""

from __future__ import annotations

import hashlib
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from acquire.session_file import open_session

ROOT = pathlib.Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "data" / "captures"
EXPECTED = json.loads((CAPTURES / "expected.json").read_text())


def digest(arr) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr, dtype="<i4").tobytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_capture_replays_to_the_stored_expectation(tmp_path, name):
    expected = EXPECTED[name]
    out = tmp_path / "replayed.h5"
    proc = subprocess.run(
        [sys.executable, "-m", "tonuslab", "replay", str(CAPTURES / name), "-o", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with open_session(out) as s:
        assert list(s.emg_counts.shape) == expected["emg_shape"]
        assert digest(s.emg_counts) == expected["emg_sha256"]
        assert digest(s.angle.counts[()]) == expected["angle_sha256"]
        kinds: dict[str, int] = {}
        for e in s.events:
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
        assert kinds == expected["events"]
        replayed = s.emg_counts.copy()
    # the stored session (recorded live) holds the very same samples
    with open_session(CAPTURES / expected["session"]) as live:
        np.testing.assert_array_equal(live.emg_counts, replayed)
        assert live.state == "complete"


def test_hreflex_sample_has_stimuli_at_emg_samples():
    with open_session(ROOT / "data" / "sessions" / "hreflex_soleus_spastic.h5") as s:
        stim = s.stimulus_arrays()
        assert len(stim["stim_sample_index"]) == 10
        assert stim["stim_intensity_ma"].tolist()[:3] == [4.0, 8.0, 12.0]
        assert (np.diff(stim["stim_sample_index"]) == 5000).all()
        assert s.emg_rate_hz == 5000.0 and s.metadata["muscle"] == "soleus"


def test_stretch_sample_has_prompts_and_feedback():
    with open_session(ROOT / "data" / "sessions" / "stretch_mild_elbow.h5") as s:
        prompts = [e for e in s.events if e["kind"] == "prompt"]
        results = [e for e in s.events if e["label"] == "stretch_result"]
        assert [p["params"]["velocity_deg_s"] for p in prompts] == [40.0, 80.0, 160.0, 240.0]
        achieved = [r["params"]["mean_velocity_deg_s"] for r in results]
        assert len(achieved) == 4 and achieved == sorted(achieved)
