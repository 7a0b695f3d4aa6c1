"""Public API of the virtual patient: profiles, recordings, determinism, truth as JSON."""

import json

import numpy as np
import pytest

import virtual_patient as vp
from virtual_patient import StretchSpec

STRETCH = ["healthy", "mild_elbow", "moderate_elbow", "severe_elbow", "plantarflexor_clonus"]
HREFLEX = ["soleus_healthy", "soleus_spastic", "fcr_healthy"]


@pytest.mark.parametrize("name", STRETCH + HREFLEX)
def test_named_profiles_exist_and_are_listed(name):
    p = vp.get_profile(name)
    assert p.name == name
    assert name in vp.PROFILE_NAMES
    assert p.kind == ("hreflex" if name in HREFLEX else "stretch")
    json.dumps(p.to_dict())


def test_overrides_replace_fields_and_unknown_ones_fail():
    p = vp.get_profile("moderate_elbow", lambda_deg=70.0, mu_s=0.2)
    assert (p.lambda_deg, p.mu_s) == (70.0, 0.2)
    assert vp.get_profile("moderate_elbow").lambda_deg == 60.0
    with pytest.raises(vp.ProfileError, match="unknown profile parameter"):
        vp.get_profile("healthy", lamda_deg=3)
    with pytest.raises(vp.ProfileError, match="unknown profile"):
        vp.get_profile("nobody")
    with pytest.raises(vp.ProfileError, match="catch_depth"):
        vp.get_profile("healthy", catch_depth=1.5)
    assert issubclass(vp.ProfileError, ValueError)


def test_tardieu_grades_of_the_named_profiles():
    grades = {n: vp.tardieu_grade(vp.get_profile(n)) for n in STRETCH}
    assert grades == {
        "healthy": 0,
        "mild_elbow": 1,
        "moderate_elbow": 2,
        "severe_elbow": 2,
        "plantarflexor_clonus": 3,
    }
    assert vp.tardieu_grade(vp.get_profile("plantarflexor_clonus_sustained")) == 4


def _short_stretch_program():
    return [StretchSpec(1.0, 100.0), StretchSpec(9.0, 300.0, shape="manual")]


def test_stretch_recording_layout_units_and_counts():
    rec = vp.simulate_stretch_session(
        "moderate_elbow", seed=3, stretches=_short_stretch_program(), duration_s=14.0
    )
    assert rec.emg_uv.shape == (28000, 2) and rec.emg_uv.dtype == np.float64
    assert rec.emg_counts.shape == (28000, 2) and rec.emg_counts.dtype == np.int32
    assert rec.emg_uv.flags.c_contiguous
    np.testing.assert_array_equal(rec.emg_uv, rec.emg_counts * rec.emg_scale_uv)
    assert rec.angle_deg.shape == (7000,) and rec.angle_counts.shape == (7000, 1)
    assert rec.angle_counts.dtype == np.int32
    np.testing.assert_allclose(
        rec.angle_deg, (rec.angle_counts[:, 0] - rec.angle_offset_counts) * rec.angle_scale_deg
    )
    assert rec.emg_rate_hz == 2000.0 and rec.angle_rate_hz == 500.0
    assert rec.stretch_direction_sign == 1
    assert rec.events == []
    truth = json.loads(json.dumps(rec.truth))
    assert len(truth["stretches"]) == 2
    assert repr(rec) == (
        "Recording('moderate_elbow', 14.0 s, EMG 28000 x 2 at 2000 Hz, angle 7000 at 500 Hz, "
        "2 stretches, 0 stimuli)"
    )
    assert truth["stretch_reflex"]["lambda_deg"] == 60.0
    assert truth["stretch_reflex"]["passive_range_deg"] == [0.0, 140.0]


def test_same_seed_same_recording_other_seed_differs():
    kw = dict(stretches=_short_stretch_program(), duration_s=14.0)
    a = vp.simulate_stretch_session("severe_elbow", seed=11, **kw)
    b = vp.simulate_stretch_session("severe_elbow", seed=11, **kw)
    c = vp.simulate_stretch_session("severe_elbow", seed=12, **kw)
    np.testing.assert_array_equal(a.emg_counts, b.emg_counts)
    np.testing.assert_array_equal(a.angle_counts, b.angle_counts)
    assert a.truth == b.truth
    assert not np.array_equal(a.emg_counts, c.emg_counts)


def test_no_global_random_state_used():
    np.random.seed(0)  # noqa: NPY002
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    vp.simulate_hreflex_session(
        "soleus_healthy", seed=1, stimuli=[vp.StimulusSpec(0.5, 15.0)], duration_s=1.0
    )
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002


def test_hreflex_recording_events_and_truth():
    stimuli = vp.paired_pulses(15.0, intervals_s=(1.0,), n_pairs=2, rest_s=5.0)
    rec = vp.simulate_hreflex_session("soleus_spastic", seed=5, stimuli=stimuli)
    assert rec.emg_rate_hz == 5000.0
    assert [e["pulse_index"] for e in rec.events] == [0, 1, 0, 1]
    for ev, s in zip(rec.events, stimuli, strict=True):
        assert ev["kind"] == "stimulus"
        assert ev["emg_sample_index"] == round(s.time_s * 5000.0)
        assert ev["intensity_ma"] == 15.0 and ev["width_us"] == 1000
    truth = json.loads(json.dumps(rec.truth))
    st = truth["stimuli"]
    assert len(st) == 4
    for key in ("m_p2p_uv", "h_p2p_uv", "m_latency_ms", "h_latency_ms", "time_s"):
        assert all(isinstance(s[key], float) for s in st)
    hr = truth["hreflex"]
    assert hr["hmax_mmax"] == 0.6
    assert hr["hmax_p2p_uv"] == pytest.approx(0.6 * hr["mmax_p2p_uv"])


def test_bad_programs_fail_clearly():
    with pytest.raises(vp.ProgramError, match="starts before the previous"):
        vp.simulate_stretch_session(
            "healthy", seed=0, stretches=[StretchSpec(1.0, 50.0), StretchSpec(2.0, 50.0)]
        )
    with pytest.raises(vp.ProgramError, match="increasing sample order"):
        vp.simulate_hreflex_session(
            "soleus_healthy",
            seed=0,
            stimuli=[vp.StimulusSpec(2.0, 10.0), vp.StimulusSpec(1.0, 10.0)],
        )
    with pytest.raises(vp.ProgramError, match="passive range"):
        vp.simulate_stretch_session("healthy", seed=0, stretches=[StretchSpec(1.0, 50.0, 400.0)])


def test_too_low_emg_rate_fails_clearly():
    with pytest.raises(vp.ProgramError, match="too low"):
        vp.simulate_stretch_session("healthy", seed=0, stretches=[], emg_rate_hz=50.0)
    rec = vp.simulate_stretch_session(
        "healthy", seed=0, stretches=[], emg_rate_hz=500.0, duration_s=1.0
    )
    assert rec.truth["emg_band_hz"] == [20.0, 225.0]


def test_import_pulls_in_no_device_io_and_nothing_of_ours():
    import subprocess
    import sys

    code = (
        "import sys, virtual_patient; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('serial', 'bleak', 'bumble', 'tonuslab', 'firmware_iface', 'acquire', 'dsp', 'numba')]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    ("base", "override", "field"),
    [
        ("plantarflexor_clonus", {"reflex_adaptation_s": 0.0}, "reflex_adaptation_s"),
        ("plantarflexor_clonus", {"catch_duration_s": 0.0}, "catch_duration_s"),
        ("plantarflexor_clonus", {"clonus_burst_sd_s": 0.0}, "clonus_burst_sd_s"),
        ("plantarflexor_clonus", {"reflex_rise_s": -0.001}, "reflex_rise_s"),
        ("plantarflexor_clonus", {"reflex_release_s": 0.0}, "reflex_release_s"),
        ("plantarflexor_clonus", {"tonic_fluctuation_s": 0.0}, "tonic_fluctuation_s"),
        ("plantarflexor_clonus", {"reflex_tonic_fraction": 1.5}, "reflex_tonic_fraction"),
        ("plantarflexor_clonus", {"reflex_onset_uv": -50.0}, "reflex_onset_uv"),
        ("plantarflexor_clonus", {"clonus_duration_s": 0.0}, "clonus_duration_s"),
        ("moderate_elbow", {"goniometer_gain": 0.0}, "goniometer_gain"),
        ("moderate_elbow", {"lambda_deg": float("nan")}, "lambda_deg"),
        ("moderate_elbow", {"crosstalk": 0.9}, "crosstalk"),
        ("soleus_healthy", {"hmax_mmax": -0.5}, "hmax_mmax"),
        ("soleus_healthy", {"hmax_mmax": 1.2}, "hmax_mmax"),
        ("soleus_healthy", {"m_slope_ma": 0.0}, "m_slope_ma"),
        ("soleus_healthy", {"h_duration_ms": 0.0}, "h_duration_ms"),
        ("soleus_healthy", {"artifact_tail_s": 0.0}, "artifact_tail_s"),
        ("soleus_healthy", {"h_test_m_fraction": 1.0}, "h_test_m_fraction"),
        ("soleus_healthy", {"artifact_channel_decay": -0.1}, "artifact_channel_decay"),
        ("soleus_healthy", {"pop_decay_s": (0.0, 0.3)}, "pop_decay_s"),
        ("soleus_healthy", {"stim_range_ma": (10.0, 5.0)}, "stim_range_ma"),
        ("soleus_healthy", {"depression_interval_s": (0.0, 1.0)}, "depression_interval_s"),
    ],
)
def test_out_of_range_parameters_raise_a_one_line_profile_error(base, override, field):
    with pytest.raises(vp.ProfileError, match=field) as err:
        vp.get_profile(base, **override)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"profile {base!r}: ")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_nan_signal_is_never_quantised():
    # a profile corrupted after validation (frozen dataclass bypassed): the audit's case,
    # adaptation 0 gave NaN EMG and counts of -2**31 from a 16-bit ADC
    p = vp.get_profile("plantarflexor_clonus")
    object.__setattr__(p, "reflex_adaptation_s", 0.0)
    with pytest.raises(vp.ProfileError, match="NaN"):
        vp.simulate_stretch_session(p, seed=0, stretches=[StretchSpec(0.5, 250.0)], n_emg=1)
    src = vp.PatientSource(p, seed=0, program=[StretchSpec(0.5, 250.0)])
    src.configure(2000.0, 1, 500.0, 1, 16)
    with pytest.raises(vp.ProfileError, match="NaN"):
        for _ in range(10):
            src.emg_block(1000)


def test_uncalibrated_variants_read_a_gain_and_offset_error_with_the_truth_in_true_angle():
    prog = [StretchSpec(0.5, 100.0, end_deg=120.0, hold_s=2.0)]
    ref = vp.simulate_stretch_session("moderate_elbow", seed=2, stretches=prog, n_emg=1)
    unc = vp.simulate_stretch_session(
        "moderate_elbow_uncalibrated", seed=2, stretches=prog, n_emg=1
    )
    # the patient is the same: EMG and every true angle and time of the truth
    np.testing.assert_array_equal(unc.emg_counts, ref.emg_counts)
    assert unc.truth["stretches"] == ref.truth["stretches"]
    g = unc.truth["goniometer"]
    assert (g["gain"], g["offset_deg"]) == vp.GONIOMETER_ERRORS["moderate_elbow"] == (0.97, -3.0)
    # read with the nominal scale, the angle is off by 3-7 deg
    err = unc.angle_deg - ref.angle_deg
    assert np.abs(err).min() > 3.0 and np.abs(err).max() > 6.0
    # the truth's own formula and a two-point calibration (rest, then held at 120 deg) undo it
    t = unc.angle_time_s
    s = unc.truth["stretches"][0]
    rest = unc.angle_counts[t < 0.4, 0].mean()
    hold = unc.angle_counts[(t > s["movement_end_s"] + 0.2) & (t < s["return_start_s"]), 0]
    scale = (120.0 - 5.0) / (hold.mean() - rest)
    calibrated = (unc.angle_counts[:, 0] - rest) * scale + 5.0
    np.testing.assert_allclose(calibrated, ref.angle_deg, atol=0.1)
    true = (g["sign"] * unc.angle_deg - g["offset_deg"]) / g["gain"]
    np.testing.assert_allclose(true, ref.angle_deg, atol=0.05)
