"""The hreflex recording protocol: plan, host safety limits, background gating."""

from __future__ import annotations

import numpy as np
import pytest

from acquire import AcquisitionError
from acquire.protocols import PROTOCOLS
from acquire.protocols.hreflex import (
    BackgroundGate,
    HReflexProtocolConfig,
    PlanError,
    SafetyLimits,
    background_bins_uv,
    make_plan,
)


def test_default_plan_shape_and_intervals():
    plan = make_plan(HReflexProtocolConfig(test_intensity_ma=12.0))
    assert PROTOCOLS["hreflex"] == "acquire.protocols.hreflex"
    coarse = [p for p in plan.pulses if p.block == "recruitment"]
    fine = [p for p in plan.pulses if p.block == "recruitment_fine"]
    assert len(coarse) == 14 and len(fine) == 14  # coarse-then-fine ladder
    assert all(p.intensity_ma is None for p in fine)  # resolved after the coarse ladder
    offsets = sorted(p.fine_offset_ma for p in fine)
    assert offsets[0] == pytest.approx(-0.15 * 26) and offsets[-1] == pytest.approx(0.15 * 26)
    gaps = np.diff([p.t_s for p in coarse + fine])
    assert gaps.min() >= 10.0 and gaps.max() <= 12.0  # >= 10 s with jitter
    for f in (0.1, 0.2, 0.3, 1.0, 2.0):
        blk = [p for p in plan.pulses if p.block == f"rate_{f:g}hz"]
        assert len(blk) == 10
        assert np.allclose(np.diff([p.t_s for p in blk]), 1.0 / f)
        assert all(p.intensity_ma == 12.0 and p.rate_hz == f for p in blk)
    pairs = [p for p in plan.pulses if p.mode == "pair"]
    assert sorted({p.pair_interval_s for p in pairs}) == [2.5, 5.0]
    assert plan.n_pulses == 28 + 50 + 20
    d = plan.to_dict()
    assert d["time_compressed"] is False and len(d["pulses"]) == len(plan.pulses)


def test_orders():
    asc = make_plan(HReflexProtocolConfig(order="ascending", test_intensity_ma=10))
    v = [p.intensity_ma for p in asc.pulses if p.block == "recruitment"]
    assert v == sorted(v)
    rnd = make_plan(HReflexProtocolConfig(order="random", seed=3, test_intensity_ma=10))
    w = [p.intensity_ma for p in rnd.pulses if p.block == "recruitment"]
    assert sorted(w) == v and w != v


@pytest.mark.parametrize(
    "cfg,limits,match",
    [
        (dict(ladder_ma=(5.0, 45.0)), {}, "safety limit"),
        (dict(width_us=2000), {}, "width_us"),
        (dict(interval_s=0.2), {}, "minimum interval"),
        (dict(rate_blocks_hz=(5.0,)), {}, "rate block"),
        (dict(paired_intervals_s=(0.05,)), {}, "paired interval"),
        (dict(test_intensity_ma=-1.0), {}, "test_intensity_ma"),
        (dict(), dict(max_pulses=20), "more than the host limit"),
        (dict(order="sideways"), {}, "order"),
        (dict(ladder_ma=()), {}, "empty"),
    ],
)
def test_plans_breaking_limits_are_refused(cfg, limits, match):
    with pytest.raises(PlanError, match=match) as info:
        make_plan(HReflexProtocolConfig(**cfg), SafetyLimits(**limits))
    assert isinstance(info.value, AcquisitionError)
    assert "\n" not in str(info.value)


def test_test_intensity_resolved_later_and_checked():
    plan = make_plan(HReflexProtocolConfig())
    assert any(p.intensity_ma is None for p in plan.pulses)
    resolved = plan.with_fine_center(12.0).with_test_intensity(11.0)
    assert all(p.intensity_ma is not None for p in resolved.pulses)
    fine = [p.intensity_ma for p in resolved.pulses if p.block == "recruitment_fine"]
    assert min(fine) == pytest.approx(12.0 - 3.9) and max(fine) == pytest.approx(12.0 + 3.9)
    # clipped to the coarse range (4-30 mA)
    edge = [p.intensity_ma for p in plan.with_fine_center(5.0).pulses if p.block.endswith("fine")]
    assert min(edge) == 4.0 and max(edge) == pytest.approx(8.9)
    with pytest.raises(PlanError, match="fine ladder intensity"):
        plan.with_fine_center(float("nan"))
    with pytest.raises(PlanError):
        plan.with_test_intensity(100.0)


def test_time_scale_is_marked_and_bounded():
    plan = make_plan(HReflexProtocolConfig(test_intensity_ma=10), time_scale=0.01)
    assert plan.to_dict()["time_compressed"] is True
    assert plan.duration_s == pytest.approx(make_plan(
        HReflexProtocolConfig(test_intensity_ma=10)).duration_s * 0.01)  # fmt: skip
    with pytest.raises(PlanError):
        make_plan(time_scale=2.0)


def test_background_bins_match_a_plain_reference():
    rng = np.random.default_rng(0)
    rate = 5000.0
    x = rng.normal(0, 10, (1234, 2)) + 50.0  # offset removed per bin
    bins = background_bins_uv(x, rate)
    n = 250
    k = 1234 // n
    ref = []
    for b in range(k):
        seg = x[1234 - k * n + b * n : 1234 - k * n + (b + 1) * n]
        ref.append(np.mean(np.abs(seg - seg.mean(axis=0)), axis=0))
    assert bins.shape == (4, 2)
    assert np.allclose(bins, np.array(ref))
    assert np.all(np.abs(bins - 10 * np.sqrt(2 / np.pi)) < 1.5)


def test_gate_accepts_quiet_and_rejects_active_background():
    rng = np.random.default_rng(1)
    gate = BackgroundGate((0.0, 20.0), n_bins=2)
    quiet = rng.normal(0, 5, 1000)
    ok, bins = gate.check(quiet, 5000.0)
    assert ok and len(bins) == 2
    active = quiet.copy()
    active[-250:] += rng.normal(0, 60, 250)  # the last bin is active
    ok, bins = gate.check(active, 5000.0)
    assert not ok and bins[-1] > 20.0
    ok, _ = gate.check(quiet[:300], 5000.0)  # not enough samples yet
    assert not ok


def test_choose_test_intensity_interpolates_m_and_stays_below_the_h_peak():
    from acquire.protocols.hreflex import PulseRecord, choose_test_intensity

    def rec(i, m, h, block="recruitment"):
        return PulseRecord(0, block, "single", i, 1000, 0.0, 0.1, 0, "delivered",
                           m_p2p_uv=m, h_p2p_uv=h)  # fmt: skip

    ladder = [rec(4, 10, 50), rec(8, 100, 900), rec(12, 1000, 1500), rec(16, 3000, 1000),
              rec(20, 5000, 300), rec(24, 5000, 100)]  # fmt: skip
    # 20% of 5000 = 1000 uV is reached exactly at 12 mA, the H peak
    assert choose_test_intensity(ladder) == 12.0
    # 10%: between 8 mA (100) and 12 mA (1000): 8 + 4 * 400 / 900
    assert choose_test_intensity(ladder, m_fraction=0.1) == pytest.approx(
        8 + 4 * 400 / 900, abs=0.01
    )
    # 40% (2000 uV at 14 mA) would pass the H peak at 12 mA: capped there
    assert choose_test_intensity(ladder, m_fraction=0.4) == 12.0
    assert choose_test_intensity([*ladder[:2], rec(9, 5, 5, block="rate_1hz")]) is None


def test_short_ladder_interval_is_warned_and_stored_in_the_plan():
    assert make_plan(HReflexProtocolConfig(test_intensity_ma=10)).warnings == []
    plan = make_plan(HReflexProtocolConfig(interval_s=5.0, test_intensity_ma=10))
    assert len(plan.warnings) == 1 and "below 10 s" in plan.warnings[0]
    assert plan.to_dict()["warnings"] == plan.warnings
    assert plan.with_test_intensity(11.0).warnings == plan.warnings


@pytest.mark.parametrize(
    "cfg,match",
    [(dict(emg_channel=-1), "emg_channel"), (dict(gate_band_uv=(20.0, 5.0)), "gate_band_uv"),
     (dict(gate_timeout_s=-1.0), "gate_timeout_s")],
)  # fmt: skip
def test_gate_and_channel_settings_are_checked(cfg, match):
    with pytest.raises(PlanError, match=match):
        make_plan(HReflexProtocolConfig(test_intensity_ma=10, **cfg))


def test_runner_windows_follow_the_muscle():
    from acquire.protocols.hreflex import RESPONSE_WINDOWS_MS

    # the FCR H-wave (~16 ms) sits inside the soleus M window: the muscle must reach the runner
    assert RESPONSE_WINDOWS_MS["soleus"]["m"][0] < 16.0 < RESPONSE_WINDOWS_MS["soleus"]["m"][1]
    assert RESPONSE_WINDOWS_MS["fcr"]["m"][1] < 16.0 < RESPONSE_WINDOWS_MS["fcr"]["h"][1]


def test_runner_windows_come_from_the_dsp_preset_table():
    from acquire.protocols.hreflex import RESPONSE_WINDOWS_MS, response_windows_ms
    from dsp.hreflex.presets import MUSCLE_PRESETS

    for name, preset in MUSCLE_PRESETS.items():
        assert response_windows_ms(name) == {"m": preset.quick_m_ms, "h": preset.quick_h_ms}
        assert RESPONSE_WINDOWS_MS[name] == response_windows_ms(name)
        # the quick windows are recording settings, not analysis settings
        assert "quick_m_ms" not in preset.to_dict() and "m_search_ms" in preset.to_dict()
    with pytest.raises(PlanError, match="muscle='biceps'"):
        response_windows_ms("biceps")


class _Sink:
    """A session's event list (what the recorder's add_host_event appends to)."""

    def __init__(self):
        self.events = []

    def add_host_event(self, kind, *, label="", params=None):
        self.events.append({"kind": kind, "label": label, "params": dict(params or {})})


def test_notes_written_by_the_protocol_are_read_back_by_its_parser():
    from acquire.protocols.hreflex import (
        PulseRecord,
        read_notes,
        write_protocol_note,
        write_pulse_note,
    )

    plan = make_plan(HReflexProtocolConfig(test_intensity_ma=10, gate_band_uv=(0.0, 30.0)),
                     time_scale=0.1)  # fmt: skip
    sink = _Sink()
    assert read_notes(sink.events) == {}
    write_protocol_note(sink, plan, muscle="fcr", windows_ms={"m": (2.5, 11.0), "h": (12.0, 30.0)},
                        emg_channel=1)  # fmt: skip
    base = dict(block="recruitment", mode="single", intensity_ma=8.0, width_us=1000,
                pair_interval_s=0.0, rate_hz=0.1, planned_emg_index=0,
                time_compressed=True)  # fmt: skip
    write_pulse_note(sink, PulseRecord(0, status="delivered", first_emg_index=500, **base))
    write_pulse_note(sink, PulseRecord(1, status="skipped_background", **base))
    write_pulse_note(sink, PulseRecord(2, status="delivered", first_emg_index=None, **base))
    r = read_notes(sink.events, {})
    assert r["gate_band_uv"] == [0.0, 30.0] and r["time_scale"] == 0.1 and r["time_compressed"]
    assert r["n_pulse_notes"] == 3 and r["n_skipped_background"] == 1
    assert list(r["pulses"]) == [500] and r["pulses"][500]["number"] == 0
    assert sink.events[0]["params"]["runner"] == {
        "muscle": "fcr", "windows_ms": {"m": [2.5, 11.0], "h": [12.0, 30.0]}, "emg_channel": 1
    }  # fmt: skip


def test_fine_center_is_the_smoothed_coarse_h_peak():
    from acquire.protocols.hreflex import PulseRecord, choose_fine_center

    def rec(i, h, block="recruitment"):
        return PulseRecord(0, block, "single", i, 1000, 0.0, 0.1, 0, "delivered", h_p2p_uv=h)

    h = {4: 50, 6: 400, 8: 900, 10: 1000, 12: 700, 14: 1300, 16: 100, 18: 50}  # 14: one outlier
    ladder = [rec(i, v) for i, v in h.items()]
    # 3-point means: 8 -> 767, 10 -> 867, 12 -> 1000, 14 -> 700: the peak region, not the outlier
    assert choose_fine_center(ladder) == 12.0
    assert choose_fine_center(ladder[:2]) is None
    assert choose_fine_center([*ladder[:2], rec(9, 5000.0, block="rate_1hz")]) is None


@pytest.mark.parametrize(
    "fields",
    [
        {"interval_s": float("nan")},
        {"interval_s": float("inf")},
        {"jitter_s": float("nan")},
        {"paired_intervals_s": (float("nan"),)},
        {"paired_intervals_s": (2.5, float("inf"))},
        {"rate_blocks_hz": (float("nan"),)},
        {"ladder_ma": (4.0, float("nan"))},
        {"test_intensity_ma": float("nan")},
        {"block_rest_s": float("inf")},
        {"pair_rest_s": float("nan")},
        {"gate_band_uv": (0.0, float("inf"))},
        {"gate_timeout_s": float("nan")},
        {"fine_span": float("nan")},
    ],
)
def test_nan_and_inf_plan_parameters_are_refused_with_one_line(fields):
    """Issue 18 item 3: NaN compares False with every limit; the plan refuses it by name."""
    with pytest.raises(PlanError) as info:
        make_plan(HReflexProtocolConfig(**fields))
    name = next(iter(fields))
    assert name in str(info.value) and "\n" not in str(info.value)


def test_nan_time_scale_and_limits_are_refused():
    with pytest.raises(PlanError, match="time_scale"):
        make_plan(time_scale=float("nan"))
    with pytest.raises(PlanError, match="min_interval_s"):
        make_plan(limits=SafetyLimits(min_interval_s=float("nan")))
