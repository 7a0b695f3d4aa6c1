"""docs/simulator.md and the architecture contract stay in step with the code."""

import dataclasses
import pathlib
import re

import virtual_patient as vp

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_profile_is_documented_and_every_documented_profile_exists():
    text = (ROOT / "docs" / "simulator.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.M))
    assert documented == set(vp.PROFILE_NAMES)


def test_documented_profile_fields_exist():
    text = (ROOT / "docs" / "simulator.md").read_text()
    fields = {f.name for f in dataclasses.fields(vp.Profile)}
    cited = set(re.findall(r"`([a-z0-9_]+_(?:deg|s|uv|hz|ma|ms|fraction|depth|cv))`", text))
    truth_keys = {
        "dsrt_deg", "start_s", "end_s", "time_s", "angle_deg", "emg_onset_s", "release_s",
        "movement_end_s", "return_start_s", "threshold_crossing_s", "resistance_start_s",
        "duration_s", "burst_times_s", "interval_s", "m_p2p_uv", "h_p2p_uv", "h_fresh_p2p_uv",
        "m_latency_ms", "h_latency_ms", "m_peak_latency_ms", "h_peak_latency_ms",
        "artifact_peak_uv", "background_emg_uv", "h_expected_p2p_uv", "m_expected_p2p_uv",
        "m_model_p2p_uv", "h_model_p2p_uv", "mmax_p2p_uv", "hmax_p2p_uv", "i_hmax_ma",
        "test_intensity_ma", "latency_ms", "passive_range_deg", "rest_deg", "end_deg",
        "start_deg", "max_angle_deg", "emg_rate_hz", "emg_scale_uv", "emg_band_hz",
        "peak_velocity_deg_s", "planned_peak_velocity_deg_s", "dsrt_velocity_deg_s",
        "angle_at_emg_onset_deg", "velocity_at_emg_onset_deg_s", "min_velocity_deg_s",
        "velocity_before_deg_s", "deceleration_deg_s2", "intensity_ma", "frequency_hz",
        "offset_deg", "angle_scale_deg", "width_us", "return_velocity_deg_s",
        "planned_duration_s", "velocity_deg_s", "slow_velocity_deg_s", "depression_interval_s",
        "hold_s", "rest_s", "step_ma", "start_ma", "stop_ma", "frequencies_hz", "intervals_s",
        "velocities_deg_s", "tardieu_v3_deg_s", "overshoot_deg", "peak_envelope_uv",
        "mean_envelope_100ms_uv", "powerline_rms_uv", "r1_deg", "r2_deg", "tardieu_r1_deg",
        "tardieu_r2_deg", "program_delay_s",
    }  # fmt: skip
    unknown = sorted(c for c in cited if c not in fields and c not in truth_keys)
    assert unknown == []


def test_recording_has_the_contract_fields():
    names = {f.name for f in dataclasses.fields(vp.Recording)}
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text[text.index("## Contract: simulator") : text.index("## Contract: metrics")]
    for field in ("emg_uv", "emg_counts", "emg_scale_uv", "angle_deg", "angle_counts",
                  "angle_scale_deg", "angle_offset_counts", "stretch_direction_sign", "events",
                  "truth", "emg_rate_hz", "angle_rate_hz", "channel_names"):  # fmt: skip
        assert field in names and f"`{field}" in section
    for name in ("get_profile", "simulate_stretch_session", "simulate_hreflex_session",
                 "PatientSource", "tsrt_protocol", "recruitment_ladder", "frequency_blocks",
                 "paired_pulses", "test_intensity_ma", "tardieu_grade"):  # fmt: skip
        assert hasattr(vp, name) and name in section
