"""Session files for the front-door tests, written with acquire.session_file.write_session.

Signals come from the virtual patient when it is installed; otherwise from a small synthetic
generator here (test input only: a ramp stretch protocol with a reflex at DSRT = 70 - 0.15 w, and
an H-reflex protocol with a sigmoid M wave and a rising-then-falling H wave).
"""

from __future__ import annotations

import numpy as np
import pytest

EMG_SCALE_UV = 0.05
ANGLE_SCALE_DEG = 0.01
TRUE_TSRT_DEG = 70.0
TRUE_MU_S = 0.15


def synthetic_stretch(seed=0, velocities=(40, 70, 100, 130, 160, 200, 240, 280, 320, 360)):
    """Ramp stretches 0 -> 100 deg; reflex burst from the angle DSRT(w) = 70 - 0.15 w."""
    rng = np.random.default_rng(seed)
    fa, fe = 500.0, 2000.0
    angle_parts, bursts = [], []
    t = 0.0
    for w in velocities:
        rest = np.zeros(int(1.2 * fa))
        ramp_n = int(100.0 / w * fa)
        ramp = np.linspace(0, 100.0, ramp_n, endpoint=False)
        hold = np.full(int(0.4 * fa), 100.0)
        back = np.linspace(100.0, 0, int(2.0 * fa))
        t_ramp0 = t + rest.size / fa
        dsrt = TRUE_TSRT_DEG - TRUE_MU_S * w
        if dsrt < 100:
            onset = t_ramp0 + dsrt / w
            bursts.append((onset, t_ramp0 + ramp_n / fa + 0.1))
        seg = np.concatenate([rest, ramp, hold, back])
        angle_parts.append(seg)
        t += seg.size / fa
    angle = np.concatenate([*angle_parts, np.zeros(int(fa))])
    n_emg = int(angle.size / fa * fe)
    emg = rng.normal(0, 3.0, n_emg)
    te = np.arange(n_emg) / fe
    for a, b in bursts:
        sel = (te >= a) & (te < b)
        emg[sel] += rng.normal(0, 80.0, sel.sum())
    return {
        "emg_counts": np.round(emg / EMG_SCALE_UV).astype(np.int32)[:, None],
        "angle_counts": np.round(angle / ANGLE_SCALE_DEG).astype(np.int32)[:, None],
        "emg_rate_hz": fe,
        "angle_rate_hz": fa,
        "events": [],
    }


def synthetic_hreflex(seed=0, n_recruit=16, interval_s=8.5):
    """Single pulses at increasing intensity: artifact, M (sigmoid), H (rise-then-fall)."""
    rng = np.random.default_rng(seed)
    fe = 5000.0
    intensities = np.linspace(2.0, 32.0, n_recruit)
    n = int((n_recruit * interval_s + 2) * fe)
    emg = rng.normal(0, 2.0, n)
    events = []
    k = np.arange(int(0.012 * fe))

    def wave(center_ms, amp):
        tt = (k / fe * 1000.0) - 6.0
        return amp * (-tt / 1.5) * np.exp(-(tt**2) / (2 * 1.5**2)) * 1.6, int(center_ms / 1000 * fe)

    for i, mA in enumerate(intensities):
        idx = int((1.0 + i * interval_s) * fe)
        events.append(
            {
                "kind": "stimulus",
                "emg_sample_index": idx,
                "intensity_ma": float(mA),
                "width_us": 1000.0,
                "pulse_index": 0,
            }
        )
        emg[idx : idx + 3] += 1500.0
        m_amp = 4000.0 / (1 + np.exp(-(mA - 18.0) / 3.0))
        h_amp = 2000.0 / (1 + np.exp(-(mA - 8.0) / 2.0)) * (1 - 1 / (1 + np.exp(-(mA - 20) / 3)))
        for lat_ms, amp in ((8.0, m_amp), (32.0, h_amp)):
            shape, off = wave(lat_ms, amp)
            s = idx + off - int(0.006 * fe)
            emg[s : s + shape.size] += shape
    return {
        "emg_counts": np.round(emg / EMG_SCALE_UV).astype(np.int32)[:, None],
        "angle_counts": None,
        "emg_rate_hz": fe,
        "angle_rate_hz": None,
        "events": events,
    }


def write_test_session(path, data, *, muscle="soleus", metadata=None, gaps=()):
    from acquire.session_file import write_session

    channels = [
        {
            "name": muscle if i == 0 else f"emg{i}",
            "kind": "emg",
            "unit": "uV",
            "scale": EMG_SCALE_UV,
        }
        for i in range(data["emg_counts"].shape[1])
    ]
    if data["angle_counts"] is not None:
        channels.append(
            {"name": "goniometer", "kind": "angle", "unit": "deg", "scale": ANGLE_SCALE_DEG}
        )
    meta = {"subject_id": "S001", "muscle": muscle, **(metadata or {})}
    write_session(
        path,
        emg_counts=data["emg_counts"],
        emg_rate_hz=data["emg_rate_hz"],
        channels=channels,
        angle_counts=data["angle_counts"],
        angle_rate_hz=data["angle_rate_hz"],
        metadata=meta,
        device={"model": "test"},
        events=data["events"],
        gaps=gaps,
    )
    return path


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sessions")


@pytest.fixture(scope="session")
def stretch_file(session_dir):
    return write_test_session(
        session_dir / "stretch.h5",
        synthetic_stretch(),
        metadata={"passive_range_deg": [0.0, 100.0], "protocol": "stretch"},
    )


@pytest.fixture(scope="session")
def hreflex_file(session_dir):
    return write_test_session(
        session_dir / "hreflex.h5", synthetic_hreflex(), metadata={"protocol": "hreflex"}
    )


@pytest.fixture
def stretch_copy(stretch_file, tmp_path):
    import shutil

    return shutil.copy(stretch_file, tmp_path / "stretch.h5")


@pytest.fixture(scope="session")
def synth():
    """This module's helpers (synthetic_stretch, synthetic_hreflex, write_test_session, TRUE_*)."""
    import sys

    return sys.modules[__name__]
