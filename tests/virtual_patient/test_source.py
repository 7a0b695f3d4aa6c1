"""PatientSource: the SignalSource protocol, block-size independence, commands that change
what is streamed."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import virtual_patient as vp
from virtual_patient import PatientSource, StretchSpec


def _configure(src, emg_rate=2000.0, n_emg=2, angle_rate=500.0):
    return src.configure(emg_rate, n_emg, angle_rate, 1, 16)


def test_channel_table():
    chans = _configure(PatientSource("moderate_elbow", seed=1))
    assert [c["kind"] for c in chans] == ["emg", "emg", "angle"]
    for c in chans:
        assert set(c) == {"name", "kind", "unit", "scale", "offset", "highpass_hz", "lowpass_hz"}
    assert chans[0]["unit"] == "uV" and chans[2]["unit"] == "deg"
    assert chans[0]["scale"] == pytest.approx(10000.0 / 2**15)


def test_blocks_before_configure_fail():
    with pytest.raises(vp.SourceStateError):
        PatientSource("healthy", seed=1).emg_block(10)


def _stream(src, sizes, emg=True):
    out = []
    for n in sizes:
        out.append(src.emg_block(n) if emg else src.angle_block(n))
    return np.concatenate(out)


@pytest.mark.parametrize("profile", ["severe_elbow", "plantarflexor_clonus"])
def test_concatenated_blocks_equal_one_long_block(profile):
    program = [StretchSpec(0.5, 250.0, shape="manual", hold_s=2.0)]
    total = 2000 * 6
    # every optional nuisance on, so all of them are checked for block independence
    profile = vp.get_profile(profile, ecg_uv=20.0, baseline_wander_uv=10.0, dc_offset_uv=5.0)
    a = PatientSource(profile, seed=7, program=program)
    b = PatientSource(profile, seed=7, program=program)
    _configure(a)
    _configure(b)
    rng = np.random.default_rng(0)
    sizes = []
    while sum(sizes) < total:
        sizes.append(int(rng.integers(1, 3000)))
    sizes[-1] -= sum(sizes) - total
    np.testing.assert_array_equal(_stream(a, sizes), b.emg_block(total))
    asizes = [1, 7, 499, 1000, 993]
    np.testing.assert_array_equal(_stream(a, asizes, emg=False), b.angle_block(sum(asizes)))


def test_stream_equals_batch_simulation():
    program = [StretchSpec(0.5, 200.0)]
    rec = vp.simulate_stretch_session("moderate_elbow", seed=4, stretches=program, duration_s=5)
    src = PatientSource("moderate_elbow", seed=4, program=program)
    _configure(src)
    np.testing.assert_array_equal(
        np.concatenate([src.emg_block(40) for _ in range(250)]), rec.emg_counts
    )
    np.testing.assert_array_equal(src.angle_block(2500), rec.angle_counts)


def test_stimulate_changes_later_blocks_and_truth():
    a = PatientSource("soleus_healthy", seed=2)
    b = PatientSource("soleus_healthy", seed=2)
    for s in (a, b):
        s.configure(5000.0, 1, 500.0, 1, 16)
        s.emg_block(1000)
    a.stimulate(1500, 20.0, 1000)
    xa = a.emg_block(1000)
    xb = b.emg_block(1000)
    np.testing.assert_array_equal(xa[:500], xb[:500])  # before the pulse: unchanged
    assert np.abs(xa[500:700].astype(float)).max() > 20 * np.abs(xb[500:700].astype(float)).max()
    truth = json.loads(json.dumps(a.ground_truth()))
    (st,) = truth["stimuli"]
    assert st["emg_sample_index"] == 1500 and st["intensity_ma"] == 20.0
    assert st["late"] is False and st["m_p2p_uv"] > 1000


def test_stretch_prompt_moves_the_angle():
    src = PatientSource("moderate_elbow", seed=3)
    _configure(src)
    rest = src.angle_block(250)
    src.emg_block(1000)
    src.prompt("stretch", {"velocity_deg_s": 150.0})
    moved = src.angle_block(1500)
    scale = 0.02
    assert np.ptp(rest[:, 0]) * scale < 2.0
    assert (moved[:, 0].max() - rest[:, 0].mean()) * scale > 100.0
    truth = src.ground_truth()
    assert len(truth["stretches"]) == 1
    assert truth["stretches"][0]["start_s"] >= 0.5
    assert truth["stretches"][0]["reflex"] is True
    src.prompt("relax", {})
    assert src.ground_truth()["prompts"][-1]["ignored"] is True


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=1500), min_size=1, max_size=12))
def test_block_split_never_changes_the_samples_with_stimuli(sizes):
    total = sum(sizes)
    a = PatientSource("soleus_spastic", seed=5)
    b = PatientSource("soleus_spastic", seed=5)
    for src in (a, b):
        src.configure(5000.0, 2, 500.0, 1, 16)
        for k, idx in enumerate((100, 2600, 5100)):
            src.stimulate(idx, 12.0 + k, 500)
    np.testing.assert_array_equal(_stream(a, sizes), b.emg_block(total))


def test_late_stimulus_is_flagged():
    src = PatientSource("soleus_healthy", seed=1)
    src.configure(5000.0, 1, 500.0, 1, 16)
    src.emg_block(1000)
    src.stimulate(500, 10.0, 1000)
    assert src.ground_truth()["stimuli"][0]["late"] is True


def test_reconfigure_restarts_the_stream():
    src = PatientSource("mild_elbow", seed=1, program="tsrt")
    _configure(src)
    first = src.emg_block(3000)
    src.emg_block(5000)
    _configure(src)
    np.testing.assert_array_equal(src.emg_block(3000), first)
    assert len(src.ground_truth()["stretches"]) == 22


def test_bad_stretch_prompts_raise_value_errors():
    # the emulator turns a ValueError from its source into an OUT_OF_RANGE reply
    src = PatientSource("moderate_elbow", seed=1)
    _configure(src)
    for params in ({}, {"velocity_deg_s": "fast"}, {"velocity_deg_s": -5.0},
                   {"velocity_deg_s": 100.0, "end_deg": 500.0}):  # fmt: skip
        with pytest.raises(ValueError):
            src.prompt("stretch", params)
    assert src.ground_truth()["stretches"] == []
    src.prompt("stretch", {"velocity_deg_s": "120", "shape": "manual"})
    assert len(src.ground_truth()["stretches"]) == 1


def test_pulse_index_counts_pulses_of_one_command():
    src = PatientSource("soleus_healthy", seed=1)
    src.configure(5000.0, 1, 500.0, 1, 16)
    src.emg_block(100)
    src.stimulate(200, 10.0, 500)  # a pair: both pulses before the next block
    src.stimulate(450, 10.0, 500)
    src.emg_block(6000)
    src.stimulate(6500, 10.0, 500)  # a new single command
    assert [s["pulse_index"] for s in src.ground_truth()["stimuli"]] == [0, 1, 0]


def test_stretch_prompt_goes_before_the_programmed_stretches_not_started_yet():
    # the reviewer's case: with program="tsrt" a prompt at 1 s used to wait until 301.6 s
    ref = PatientSource("moderate_elbow", seed=1, program="tsrt")
    _configure(ref)
    programmed = ref.ground_truth()["stretches"]
    src = PatientSource("moderate_elbow", seed=1, program="tsrt")
    _configure(src)
    rest = src.angle_block(500)  # 1 s of both streams
    src.emg_block(2000)
    src.prompt("stretch", {"velocity_deg_s": 100})
    truth = src.ground_truth()
    entry = truth["prompts"][-1]
    st = truth["stretches"]
    assert entry["start_s"] == pytest.approx(1.0 + vp.source.PROMPT_GAP_S)
    assert entry["stretch_index"] == 0 and len(st) == len(programmed) + 1
    assert [s["index"] for s in st] == list(range(len(st)))
    assert st[0]["start_s"] == entry["start_s"]
    assert st[0]["planned_peak_velocity_deg_s"] == 100.0
    # the programme waits: every programmed stretch is the same movement, later by one delay
    delay = entry["program_delay_s"]
    assert delay > 0
    for a, b in zip(programmed, st[1:], strict=True):
        assert b["start_s"] == pytest.approx(a["start_s"] + delay, abs=1e-9)
        assert b["dsrt_deg"] == pytest.approx(a["dsrt_deg"], abs=1e-9)
        assert b["peak_velocity_deg_s"] == pytest.approx(a["peak_velocity_deg_s"], abs=1e-9)
    assert st[0]["end_s"] < st[1]["start_s"]
    # the goniometer shows the prompted stretch at once, and the first programmed one later
    fa = 500.0
    ang = np.concatenate([rest, src.angle_block(int(st[1]["end_s"] * fa))])[:, 0] * 0.02
    t = np.arange(len(ang)) / fa
    moving = t[np.abs(ang - ang[0]) > 0.3]  # minimum jerk: 0.3 deg about 0.2 s after the start
    assert st[0]["start_s"] < moving[0] < st[0]["start_s"] + 0.3
    assert ang[(t > st[0]["return_start_s"] - 0.2) & (t < st[0]["return_start_s"])].min() > (
        ang[0] + 100.0
    )
    second = moving[moving > st[0]["end_s"]]
    assert st[1]["start_s"] < second[0] < st[1]["start_s"] + 2.0  # slow: 10 deg/s, 25 s long


def test_stretch_prompt_during_a_running_stretch_follows_it_and_prompts_queue():
    program = [StretchSpec(0.5, 100.0), StretchSpec(30.0, 150.0)]
    src = PatientSource("moderate_elbow", seed=2, program=program)
    plain = PatientSource("moderate_elbow", seed=2, program=program)
    for s in (src, plain):
        _configure(s)
    first = src.angle_block(750)  # 1.5 s: the first stretch is under way
    src.emg_block(3000)
    src.prompt("stretch", {"velocity_deg_s": 200, "hold_s": 0.5})
    src.prompt("stretch", {"velocity_deg_s": 50, "hold_s": 0.5})
    st = src.ground_truth()["stretches"]
    running, p1, p2, prog = st
    assert running["start_s"] == 0.5
    ends = [e.end_s for e in src.engine.episodes]
    assert p1["start_s"] == pytest.approx(ends[0] + vp.source.PROMPT_GAP_S)
    assert p2["start_s"] == pytest.approx(ends[1] + vp.source.PROMPT_GAP_S)
    assert p1["planned_peak_velocity_deg_s"] == 200 and p2["planned_peak_velocity_deg_s"] == 50
    # the later programmed stretch did not need to move (it starts after both prompts)
    assert prog["start_s"] == 30.0
    assert [p["program_delay_s"] for p in src.ground_truth()["prompts"]] == [0.0, 0.0]
    # the running stretch is unchanged up to its end
    n = int(ends[0] * 500)
    plain.angle_block(750)
    np.testing.assert_array_equal(src.angle_block(n - 750), plain.angle_block(n - 750))
    assert first.shape == (750, 1)


def test_start_after_an_hour_idle_costs_no_time_and_keeps_the_samples():
    """Issue 18 item 6 (bounded work per command): the sample clock runs on while the device
    is idle (PROTOCOL.md 4.6); a START after an hour used to make, then drop, an hour of
    virtual-patient samples (about 15 s in the recorder's process for sim://)."""
    import time as _time

    from firmware_iface.codec import StreamDecoder, encode_frame
    from firmware_iface.emulator import make_device
    from firmware_iface.messages import Config, MsgType, Samples

    def first_block_after_idle(skip: bool):
        source = PatientSource("mild_elbow", seed=4)
        if not skip:  # the old way: no skip method, samples made and dropped
            source.skip_emg = None
            source.skip_angle = None
        device = make_device(source)
        device.receive(encode_frame(MsgType.CONFIGURE, 1, 0, Config(emg_rate_hz=2000).pack()))
        device.receive(encode_frame(MsgType.START, 2, 0, b""))
        device.receive(encode_frame(MsgType.STOP, 3, 0, b""))
        device.clock.run_ahead_to(device.clock.now_us() + 600_000_000)  # 10 min idle
        t0 = _time.monotonic()
        device.receive(encode_frame(MsgType.START, 4, 0, b""))
        took = _time.monotonic() - t0
        device.clock.run_ahead_to(device.clock.now_us() + 50_000)
        device.advance(device.clock.now_us())
        frames = StreamDecoder().feed(device.take_output())
        blocks = [Samples.unpack(f.payload) for f in frames if f.msg_type == MsgType.SAMPLES]
        emg = next(b for b in blocks if b.stream == 0)
        return emg.first_index, emg.counts, took

    index, counts, took = first_block_after_idle(True)
    old_index, old_counts, old_took = first_block_after_idle(False)
    assert index == old_index >= 600 * 2000
    np.testing.assert_array_equal(counts, old_counts)
    assert took < 0.1 < old_took
