"""The stretch protocol's feedback: velocity achieved, irregular stretches, active muscle."""

from __future__ import annotations

import numpy as np
import pytest

from acquire.protocols.stretch import StretchProtocolConfig, StretchResult, assess_stretch

CFG = StretchProtocolConfig()


def bell(peak: float, n: int = 500) -> np.ndarray:
    x = np.linspace(0, 1, n)
    return peak * 30 * x**2 * (1 - x) ** 2 / 1.875  # minimum-jerk velocity, peak = `peak`


def test_regular_stretch_is_ok():
    v = bell(120.0)
    a = assess_stretch(v, pre_stretch_rms_uv=4.0, resting_rms_uv=3.0, config=CFG)
    assert a["peak_velocity_deg_s"] == pytest.approx(120.0, rel=0.01)
    assert 80 < a["mean_velocity_deg_s"] < 120
    assert not a["irregular"] and not a["muscle_active"]


def test_jerky_stretch_is_irregular():
    v = bell(120.0)
    t = np.linspace(0, 1, v.size)
    jerky = v * (1 + 0.8 * np.sin(2 * np.pi * 6 * t))  # stop-and-go hand movement
    a = assess_stretch(jerky, 4.0, 3.0, CFG)
    assert a["irregular"] and a["velocity_cv"] > CFG.irregular_cv


def test_active_muscle_before_the_stretch():
    v = bell(60.0)
    assert assess_stretch(v, 60.0, 5.0, CFG)["muscle_active"]
    assert not assess_stretch(v, 12.0, 5.0, CFG)["muscle_active"]  # below the absolute floor
    assert not assess_stretch(v, 40.0, 20.0, CFG)["muscle_active"]  # a noisy but resting muscle


def test_message_shows_velocity_and_warnings():
    r = StretchResult(2, "ladder", 120.0, True, 130.0, 95.0, 0.5, irregular=True,
                      muscle_active=True, pre_stretch_rms_uv=60.0)  # fmt: skip
    text = r.message(10)
    assert "3/10" in text and "achieved 95 deg/s" in text
    assert "irregular" in text and "already active" in text
    assert "no stretch detected" in StretchResult(0, "range", 15.0, False).message(3)
    assert CFG.steps()[:3] == [("range", 15.0), ("range", 15.0), ("ladder", 30.0)]
