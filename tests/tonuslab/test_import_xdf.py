"""XDF import (issue 15 part 2): fixtures written by the tests from the XDF 1.0 specification,
with a non-integer rate, an exact hole, a second stream on another clock, markers, a truncated
file and a corrupt one; pyxdf reads the same files as a peer."""

import json
import pathlib
import sys

import numpy as np
import pytest

from acquire.session_file import open_session
from tonuslab.cli import main
from tonuslab.io_import import import_xdf

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from xdf_writer import XdfWriter, stream_header

EMG_RATE = 2148.1481
ANGLE_RATE = 148.1481
HOLE = (3000, 200)  # 200 samples never sent, from sample 3000


def _lab_file(path, *, offset_s=2.5, hole=True, truncate_bytes=0, jitter_s=0.00005):
    """EMG (2 ch, uV) with a hole, an angle stream whose clock runs offset_s behind, markers."""
    rng = np.random.default_rng(0)
    w = XdfWriter()
    chans = [("biceps", "microvolts", "EMG"), ("triceps", "microvolts", "EMG")]
    w.header(1, stream_header("Trigno", "EMG", chans, EMG_RATE))
    w.header(2, stream_header("Gonio", "Angle", [("elbow", "degrees", "Angle")], ANGLE_RATE))
    w.header(3, stream_header("Stim", "Markers", [("label", "", "Markers")], 0, fmt="string"))
    n = 8000
    emg = (np.arange(n)[:, None] % 100 * 1.0 + np.array([0.0, 0.5])).astype(np.float32)
    t0 = 1000.0
    stamps = t0 + np.arange(n) / EMG_RATE + rng.normal(0, jitter_s, n)
    keep = np.ones(n, bool)
    if hole:
        keep[HOLE[0] : HOLE[0] + HOLE[1]] = False
    idx = np.flatnonzero(keep)
    for a in range(0, idx.size, 64):  # chunks of 64 samples
        sel = idx[a : a + 64]
        w.samples(1, stamps[sel], emg[sel])
    m = int(n / EMG_RATE * ANGLE_RATE)
    angle = 40.0 + 30.0 * np.sin(np.arange(m) / ANGLE_RATE)
    w.samples(2, t0 - offset_s + np.arange(m) / ANGLE_RATE, angle[:, None])
    for ct in (t0, t0 + 2.0, t0 + 3.5):
        w.clock_offset(2, ct, offset_s)  # the angle machine's clock + offset = the EMG's
        w.clock_offset(1, ct, 0.0)
    w.samples(3, [t0 + 1.0], ["stim 12.5mA"], fmt="string")
    w.footer(1, stamps[0], stamps[-1], int(keep.sum()))
    data = w.bytes()
    path.write_bytes(data[: len(data) - truncate_bytes] if truncate_bytes else data)
    return path, emg, angle


def test_values_rate_hole_clock_offset_and_markers(tmp_path):
    src, emg, angle = _lab_file(tmp_path / "lab.xdf")
    out = import_xdf(src, tmp_path / "lab.h5")
    with open_session(out) as s:
        assert s.emg_rate_hz == pytest.approx(EMG_RATE, abs=1e-4)  # stored as it is
        x = s.emg_uv
        assert x.shape[0] == 8000
        gaps = [g for g in s.gaps if g["stream"] == "emg"]
        assert [(g["start_index"], g["n_samples"]) for g in gaps] == [HOLE]  # exact, no dejitter
        ok = ~np.isnan(x[:, 0])
        np.testing.assert_allclose(x[ok], emg[ok], atol=0.002)  # quantised to 1 nV counts
        # the angle stream's clock ran 2.5 s behind: corrected, it starts with the EMG
        assert abs(s.angle.t0_s) < 0.01
        np.testing.assert_allclose(s.goniometer_deg[:100, 0], angle[:100], atol=0.01)
        stim = s.stimuli
        assert len(stim) == 1 and stim[0].intensity_ma == 12.5
        assert abs(stim[0].emg_sample_index - round(1.0 * EMG_RATE)) <= 2


def test_host_jitter_makes_no_false_gap(tmp_path):
    """1 ms of host jitter on every stamp (2 samples at 2148 Hz): no gap where none is."""
    src, _, _ = _lab_file(tmp_path / "jit.xdf", hole=False, jitter_s=0.001)
    with open_session(import_xdf(src, tmp_path / "jit.h5")) as s:
        assert s.emg.n_samples == 8000 and not [g for g in s.gaps if g["stream"] == "emg"]


def test_pyxdf_reads_the_same_values(tmp_path):
    pyxdf = pytest.importorskip("pyxdf")
    src, _, _ = _lab_file(tmp_path / "peer.xdf", hole=False)
    streams, _ = pyxdf.load_xdf(str(src), dejitter_timestamps=False)
    peer = next(st for st in streams if st["info"]["name"][0] == "Trigno")["time_series"]
    out = import_xdf(src, tmp_path / "peer.h5")
    with open_session(out) as s:
        np.testing.assert_allclose(s.emg_uv, np.asarray(peer, float), atol=0.002)


def test_truncated_file_imports_what_is_intact(tmp_path):
    src, _, _ = _lab_file(tmp_path / "cut.xdf", truncate_bytes=700)
    with pytest.warns(Warning, match="(?i)cut short|truncated|ends inside"):
        out = import_xdf(src, tmp_path / "cut.h5")
    with open_session(out) as s:
        assert s.state == "recovered" and s.emg.n_samples > 7000


def test_corrupt_file_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.xdf"
    data = bytearray(_lab_file(tmp_path / "ok.xdf")[0].read_bytes())
    data[4] = 9  # the first chunk's length field: 9 length bytes do not exist
    bad.write_bytes(bytes(data))
    assert main(["import", str(bad), "-o", str(tmp_path / "bad.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.xdf" in err and not (tmp_path / "bad.h5").exists()


def test_xdf_session_analyses_after_import(tmp_path, capsys):
    src, _, _ = _lab_file(tmp_path / "a.xdf")
    assert main(["import", str(src), "-o", str(tmp_path / "a.h5")]) == 0
    capsys.readouterr()
    assert main(["analyze", str(tmp_path / "a.h5"), "--json", "--no-write"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert "hreflex" in summary["analyses"] or "stretch_reflex" in summary["analyses"]
