"""C3D import (issue 15 part 2): fixtures written with ezc3d by the test: analog EMG in volts,
a joint angle from a point, an event naming a pulse; a damaged file is one line."""

import numpy as np
import pytest

from acquire.session_file import open_session
from tonuslab.cli import main

ezc3d = pytest.importorskip("ezc3d")


def _c3d(path, n_frames=500):
    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [100]
    c["parameters"]["POINT"]["LABELS"]["value"] = ("LKneeAngles",)
    c["parameters"]["ANALOG"]["RATE"]["value"] = [1000]
    c["parameters"]["ANALOG"]["LABELS"]["value"] = ("EMG_SOL", "EMG_TA")
    c.add_parameter("ANALOG", "UNITS", ["V", "mV"])
    t = np.arange(n_frames) / 100.0
    pts = np.zeros((4, 1, n_frames))
    pts[0, 0] = 30.0 + 20.0 * np.sin(t)
    pts[3] = 1.0
    c["data"]["points"] = pts
    analog = np.zeros((1, 2, n_frames * 10))
    analog[0, 0] = 1e-4 * np.sin(np.arange(n_frames * 10) / 5.0)  # 100 uV in volts
    analog[0, 1] = 0.02  # 20 uV in millivolts
    c["data"]["analogs"] = analog
    c.add_parameter("EVENT", "USED", [1])
    c.add_parameter("EVENT", "TIMES", np.array([[0.0], [1.5]]))  # minutes, seconds
    c.add_parameter("EVENT", "LABELS", ["stim 12.5mA"])
    c.add_parameter("EVENT", "CONTEXTS", ["Left"])
    c.write(str(path))
    return path


def test_emg_units_angle_from_a_point_and_a_stimulus_event(tmp_path, capsys):
    src = _c3d(tmp_path / "lab.c3d")
    assert main(["import", str(src), "-o", str(tmp_path / "lab.h5"), "--angle",
                 "LKneeAngles:X"]) == 0  # fmt: skip
    with open_session(tmp_path / "lab.h5") as s:
        assert s.emg_rate_hz == 1000.0 and s.angle_rate_hz == 100.0
        expected = 100.0 * np.sin(np.arange(5000) / 5.0)
        np.testing.assert_allclose(s.emg_uv[:, 0], expected, atol=0.01)  # V -> uV
        np.testing.assert_allclose(s.emg_uv[:, 1], 20.0, atol=0.01)  # mV -> uV
        np.testing.assert_allclose(s.goniometer_deg[:, 0], 30 + 20 * np.sin(np.arange(500) / 100),
                                   atol=0.01)  # fmt: skip
        (stim,) = s.stimuli
        assert stim.intensity_ma == 12.5 and stim.emg_sample_index == 1500
    assert main(["analyze", str(tmp_path / "lab.h5"), "--no-write"]) == 0  # analysed as recorded


def test_damaged_c3d_is_one_line(tmp_path, capsys):
    src = _c3d(tmp_path / "ok.c3d")
    bad = tmp_path / "bad.c3d"
    bad.write_bytes(src.read_bytes()[:300])
    assert main(["import", str(bad), "-o", str(tmp_path / "bad.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.c3d" in err and not (tmp_path / "bad.h5").exists()
