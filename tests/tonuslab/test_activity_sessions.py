"""EMG-only and goniometer-only sessions are analysed, reported and batched (issue 17 item 1)."""

import csv

import numpy as np

from acquire.session_file import FILL_VALUE, write_session
from tonuslab.analysis import analyze_file
from tonuslab.cli import main

RATE = 2000.0


def _emg_only(path, rng):
    x = rng.normal(0, 3.0, int(12 * RATE))
    for k in range(3):  # three 1 s contractions, at 2, 5 and 8 s
        a = int((2 + 3 * k) * RATE)
        x[a : a + int(RATE)] += 150.0 * np.sin(2 * np.pi * 90.0 * np.arange(int(RATE)) / RATE)
    counts = np.round(np.column_stack([x, rng.normal(0, 3.0, x.size)]) / 0.1).astype(np.int32)
    chans = [{"name": n, "kind": "emg", "unit": "uV", "scale": 0.1} for n in ("biceps", "triceps")]
    return write_session(path, emg_counts=counts, emg_rate_hz=RATE, channels=chans)


def test_emg_only_session_gives_a_burst_table_everywhere(tmp_path, capsys):
    path = _emg_only(tmp_path / "emg.h5", np.random.default_rng(0))
    summary = analyze_file(path)
    assert summary["analyses"] == ["emg_bursts"]
    biceps = [b for b in summary["bursts"] if b["channel_name"] == "biceps"]
    assert [round(b["onset_s"]) for b in biceps] == [2, 5, 8]
    assert all(abs(b["median_frequency_hz"] - 90.0) < 9.0 for b in biceps)
    assert main(["report", str(path), "-o", str(tmp_path / "r.html")]) == 0
    assert "EMG bursts per channel" in (tmp_path / "r.html").read_text()
    assert main(["batch", str(tmp_path), "-o", str(tmp_path / "c.csv")]) == 0
    with (tmp_path / "c.csv").open() as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["status"] == "ok" and row["n_bursts"] == str(len(summary["bursts"]))
    capsys.readouterr()
    assert main(["analyze", str(path), "--no-write"]) == 0
    assert "EMG bursts (per channel)" in capsys.readouterr().out


def test_goniometer_without_emg_samples_gives_a_movement_table(tmp_path):
    rate_a = 500.0
    t = np.arange(int(10 * rate_a)) / rate_a
    ramp = lambda t0: (1 - np.cos(np.pi * np.clip(t - t0, 0, 1))) / 2  # noqa: E731
    angle = 20.0 + 50.0 * (ramp(2.0) - ramp(6.0))
    chans = [{"name": "emg", "kind": "emg", "unit": "uV", "scale": 0.1},
             {"name": "gonio", "kind": "angle", "unit": "deg", "scale": 0.01}]  # fmt: skip
    path = write_session(
        tmp_path / "gonio.h5", channels=chans, emg_rate_hz=RATE, angle_rate_hz=rate_a,
        emg_counts=np.full((int(10 * RATE), 1), FILL_VALUE, np.int32),  # electrodes not recorded
        angle_counts=np.round(angle / 0.01).astype(np.int32)[:, None],
    )  # fmt: skip
    summary = analyze_file(path, write=False)
    assert "movements" in summary["analyses"]
    assert [m["direction"] for m in summary["movements"]] == [1, -1]
    assert all(abs(m["range_deg"] - 50.0) < 3.0 for m in summary["movements"])
    assert any("stretch_reflex: not analysed" in f for f in summary["quality_flags"])


def test_a_channel_never_received_prints_no_warning(tmp_path):
    """An EMG-only session whose second channel was never received: bursts from the first, and
    nothing on stderr (no NumPy RuntimeWarning before the result, issue 18 item 8)."""
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    n = int(12 * RATE)
    x = rng.normal(0, 3.0, n)
    x[4000:6000] += 150.0 * np.sin(np.arange(2000) * 2 * np.pi * 90.0 / RATE)
    counts = np.column_stack([np.round(x / 0.1), np.full(n, FILL_VALUE)]).astype(np.int32)
    chans = [{"name": c, "kind": "emg", "unit": "uV", "scale": 0.1} for c in ("a", "b")]
    path = write_session(tmp_path / "nan.h5", emg_counts=counts, emg_rate_hz=RATE, channels=chans)
    proc = subprocess.run([sys.executable, "-m", "tonuslab", "analyze", str(path), "--no-write"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "EMG bursts (per channel)" in proc.stdout
