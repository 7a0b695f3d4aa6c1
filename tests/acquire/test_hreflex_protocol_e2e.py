"""The hreflex runner end to end: recorder + emulated device (in-process link) + virtual patient."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from acquire.protocols.hreflex import (
    RESPONSE_WINDOWS_MS,
    HReflexProtocolConfig,
    HReflexRunner,
    PlanError,
    StimulationStopped,
    choose_fine_center,
    choose_test_intensity,
    device_is_emulated,
    make_plan,
)
from acquire.recorder import Recorder
from acquire.session_file import open_session
from firmware_iface.auth import new_key, write_key_file

CONFIG = dict(emg_rate_hz=5000, n_emg=1, angle_rate_hz=500, n_angle=1, emg_bits=16)


def _record(tmp_path, plan, *, stop_after=None, seed=3):
    key = new_key()
    key_file = write_key_file(tmp_path / "stim.key", key)
    rec = Recorder(
        f"sim://soleus_healthy?seed={seed}&speed=fast&key_file={key_file}",
        tmp_path / "h.h5",
        metadata={"muscle": "soleus"},
        config=CONFIG,
        stim_key=key,
    )
    rec.open()
    seen = []

    def on_record(r):
        seen.append(r)
        if stop_after is not None and len(seen) == stop_after:
            runner.stop()

    runner = HReflexRunner(rec.client, rec, plan, on_record=on_record)
    box = {}

    def target():
        try:
            box["records"] = runner.run()
        except Exception as exc:  # the test inspects it
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while thread.is_alive():
        rec.step(0.02)
    end = rec.latest_emg_index() + CONFIG["emg_rate_hz"] // 5  # 200 ms more of data
    while rec.latest_emg_index() < end:
        rec.step(0.02)
    truth = rec.link.device.source.ground_truth()
    rec.close()
    return box, seen, truth, runner


def test_runner_drives_the_emulated_device_and_the_session_analyses(tmp_path):
    cfg = HReflexProtocolConfig(
        ladder_ma=tuple(np.arange(6.0, 36.1, 2.0)), ladder_repeats=1, order="ascending",
        rate_blocks_hz=(1.0,), pulses_per_block=4, paired_intervals_s=(2.5,),
        pairs_per_interval=2, gate_band_uv=(0.0, 60.0), test_intensity_ma=None,
    )  # fmt: skip
    plan = make_plan(cfg, time_scale=0.1)
    box, seen, truth, runner = _record(tmp_path, plan)
    assert "error" not in box, box.get("error")
    records = box["records"]
    assert len(records) == len(plan.pulses) == len(seen)
    assert all(r.time_compressed for r in records)
    delivered = [r for r in records if r.status == "delivered"]
    assert len(delivered) >= len(records) - 2  # the gate may skip a pulse or two
    # coarse-then-fine: the fine ladder sits on the coarse ladder's (quick) H peak
    coarse = [r for r in records if r.block == "recruitment"]
    fine = [r for r in records if r.block == "recruitment_fine"]
    assert len(coarse) == 16 and len(fine) == 14
    assert runner.fine_center_ma == choose_fine_center(coarse)
    assert abs(runner.fine_center_ma - truth["hreflex"]["i_hmax_ma"]) <= 4.0  # a 2 mA ladder
    span = 0.15 * (36.0 - 6.0)
    assert min(r.intensity_ma for r in fine) == pytest.approx(runner.fine_center_ma - span)
    assert max(r.intensity_ma for r in fine) == pytest.approx(runner.fine_center_ma + span)
    # the automatic test intensity: M at ~20% of the largest M, on the rising H limb
    test = {r.intensity_ma for r in records if not r.block.startswith("recruitment")}
    assert len(test) == 1
    (test_ma,) = test
    assert 11.0 <= test_ma <= 18.0
    assert test_ma == choose_test_intensity(coarse + fine)
    with open_session(tmp_path / "h.h5") as s:
        stim = [e for e in s.events if e["kind"] == "stimulus"]
        n_expected = sum(2 if r.mode == "pair" else 1 for r in delivered)
        assert len(stim) == n_expected
        # every delivered pulse is the device's stimulus event at the recorded sample
        by_index = {e["emg_sample_index"]: e for e in stim}
        for r in delivered:
            assert round(by_index[r.first_emg_index]["intensity_ma"], 3) == round(r.intensity_ma, 3)
        # rate blocks of 1 Hz or more went out as device-timed trains of at most 5 s (plan
        # time): pulse indices count within each train, and steps inside a train are exact
        from acquire.protocols.hreflex.runner import MAX_TRAIN_S, TRAIN_MIN_RATE_HZ

        rate_blocks = [r for r in delivered if r.block.startswith("rate_")]
        fast = {r.block for r in rate_blocks if r.rate_hz * plan.time_scale >= TRAIN_MIN_RATE_HZ}
        assert fast
        for block in fast:
            members = [r for r in delivered if r.block == block]
            pidx_block = [by_index[r.first_emg_index]["pulse_index"] for r in members]
            per_train = int(MAX_TRAIN_S * members[0].rate_hz * plan.time_scale) + 1
            assert pidx_block == [j % per_train for j in range(len(members))]
            step = round(5000 / members[0].rate_hz)  # compressed rate
            for a, b, pa in zip(members, members[1:], pidx_block[1:], strict=False):
                if pa:  # inside one train
                    assert b.first_emg_index - a.first_emg_index == step
        emg = np.asarray(s.emg_uv[:, 0], dtype=float)
        idx = np.array([e["emg_sample_index"] for e in stim])
        # safety in device time: no two pulses closer than the (compressed) minimum interval
        assert np.diff(idx).min() >= plan.limits.min_interval_s * plan.time_scale * 5000 - 1
        inten = np.array([e["intensity_ma"] for e in stim])
        pidx = np.array([e["pulse_index"] for e in stim])
        rate = float(s.emg_rate_hz)
    from dsp.hreflex import analyze_hreflex

    # compressed intervals: the recruitment is 0.5 s apart here, so use every pulse
    res = analyze_hreflex(emg, rate, idx, inten, pulse_index=pidx, n_boot=0,
                          recruitment_interval_s=(0.0, 60.0))  # fmt: skip
    mmax = truth["hreflex"]["mmax_p2p_uv"]
    assert abs(res.mmax_uv / mmax - 1) < 0.05
    assert abs(res.m_latency_ms - truth["hreflex"]["latency_ms"]["m"]) < 0.5
    assert res.artifact["offset_ms_max_abs"] < 0.5  # device events line up with the artifacts


def test_stop_halts_stimulation_at_once(tmp_path):
    cfg = HReflexProtocolConfig(
        ladder_ma=(8.0, 10.0, 12.0, 14.0, 16.0), ladder_repeats=2, rate_blocks_hz=(),
        paired_intervals_s=(), gate_band_uv=None,
    )  # fmt: skip
    plan = make_plan(cfg, time_scale=0.05)
    box, seen, _, runner = _record(tmp_path, plan, stop_after=3)
    assert isinstance(box.get("error"), StimulationStopped)
    assert runner.stopped and len(seen) == 3
    with open_session(tmp_path / "h.h5") as s:
        assert len([e for e in s.events if e["kind"] == "stimulus"]) == 3


def test_compressed_plan_refused_on_a_device_that_is_not_the_emulator():
    from firmware_iface.client import DeviceClient
    from firmware_iface.emulator import TcpEmulator, make_device
    from firmware_iface.emulator.source import SimpleSource

    key = new_key()
    server = TcpEmulator(make_device(SimpleSource(seed=1), serial="TL-0042", stim_key=key))
    try:
        from acquire.links import open_link

        client = DeviceClient(open_link(server.url), stim_key=key)
        client.identify()
        assert not device_is_emulated(client)
        plan = make_plan(HReflexProtocolConfig(test_intensity_ma=10.0), time_scale=0.1)
        with pytest.raises(PlanError, match="emulated device"):
            HReflexRunner(client, None, plan)
        HReflexRunner(client, None, make_plan(HReflexProtocolConfig(test_intensity_ma=10.0)))
        client.close()
    finally:
        server.close()


def test_compression_below_the_device_minimum_interval_is_refused(tmp_path):
    from acquire.links import open_link
    from firmware_iface.client import DeviceClient

    key = new_key()
    key_file = write_key_file(tmp_path / "k.key", key)
    client = DeviceClient(open_link(f"sim://simple?seed=1&key_file={key_file}"), stim_key=key)
    try:
        client.identify()
        assert device_is_emulated(client)
        cfg = HReflexProtocolConfig(test_intensity_ma=10.0)
        with pytest.raises(PlanError, match="minimum interval"):
            HReflexRunner(client, None, make_plan(cfg, time_scale=0.01))  # 4.5 ms < 10 ms
        HReflexRunner(client, None, make_plan(cfg, time_scale=0.05))
    finally:
        client.close()


class ActiveBackground:
    """The recorder's view of the EMG with an active background added on some channels.

    Test input for the gate: a subject who does not relax. ``always`` channels are active all
    the time; on ``channel`` the background is active for the first ``bursts[k]`` gate checks of
    the pulse that follows ``k`` finished pulses (inf: never quiet). Counting checks, not
    device time, keeps the waits exact whatever the emulator's speed. Everything else (clock,
    samples) is the real recorder's.
    """

    def __init__(self, rec, seen, bursts, *, channel, always=()):
        self.rec, self.seen, self.bursts = rec, seen, bursts
        self.channel, self.always = channel, tuple(always)
        self.emg_rate_hz = rec.emg_rate_hz
        self.rng = np.random.default_rng(0)
        self.checks = {}

    def latest_emg_index(self):
        return self.rec.latest_emg_index()

    def emg_uv_between(self, first_index, stop_index):
        return self.rec.emg_uv_between(first_index, stop_index)  # the quick measures: no noise

    def recent_emg_uv(self, n):
        x = np.array(self.rec.recent_emg_uv(n), dtype=float)
        for c in self.always:
            x[:, c] += self.rng.normal(0.0, 300.0, x.shape[0])
        k = len(self.seen)
        gate_check = n == round(0.1 * self.emg_rate_hz)  # two 50 ms bins
        if k in self.bursts and gate_check:
            self.checks[k] = self.checks.get(k, 0) + 1
            if self.checks[k] <= self.bursts[k]:
                x[:, self.channel] += self.rng.normal(0.0, 300.0, x.shape[0])
        return x


def test_gate_waits_then_skips_on_active_background_on_the_gated_channel(tmp_path):
    """Gate and quick measures on emg_channel=1; channel 0 is active throughout (ignored)."""
    cfg = HReflexProtocolConfig(
        ladder_ma=(8.0, 12.0, 16.0, 20.0, 24.0), ladder_repeats=1, order="ascending",
        rate_blocks_hz=(1.0,), pulses_per_block=4, paired_intervals_s=(), pairs_per_interval=0,
        gate_band_uv=(0.0, 60.0), gate_timeout_s=5.0, test_intensity_ma=14.0, emg_channel=1,
        fine_ladder_pulses=0,
    )  # fmt: skip
    scale, rate = 0.1, 5000
    plan = make_plan(cfg, time_scale=scale)
    key = new_key()
    key_file = write_key_file(tmp_path / "stim.key", key)
    rec = Recorder(
        f"sim://soleus_healthy?seed=4&speed=fast&key_file={key_file}", tmp_path / "g.h5",
        metadata={"muscle": "soleus"}, config=dict(CONFIG, n_emg=2), stim_key=key,
    )  # fmt: skip
    rec.open()
    seen = []
    # pulse 0 fails 4 gate checks (waits 4 x 50 ms) then goes; pulse 2 never sees a quiet
    # background and is skipped after the (compressed) 0.5 s timeout; the rate block (pulses
    # 5-8, one device-timed train) waits before its first pulse
    monitor = ActiveBackground(rec, seen, {0: 4, 2: math.inf, 5: 2}, channel=1, always=(0,))
    runner = HReflexRunner(rec.client, monitor, plan, on_record=seen.append)
    box = {}
    thread = threading.Thread(target=lambda: box.update(records=runner.run()), daemon=True)
    thread.start()
    while thread.is_alive():
        rec.step(0.02)
    end = rec.latest_emg_index() + rate // 5
    while rec.latest_emg_index() < end:
        rec.step(0.02)
    rec.close()
    records = box["records"]
    assert [r.status for r in records] == ["delivered", "delivered", "skipped_background"] + [
        "delivered"
    ] * 6
    assert records[0].gate_wait_s == pytest.approx(0.2)
    assert records[2].gate_wait_s == pytest.approx(5.0 * scale)
    # the train is gated once, before its first pulse: at least the forced wait
    assert records[5].gate_wait_s >= 0.1 - 1e-9
    assert all(records[k].gate_wait_s == 0 for k in (1, 3, 4, 6, 7, 8))
    assert "outside [0.0, 60.0] uV" in records[2].message
    assert max(records[2].background_uv) > 60.0  # the gate's bins are recorded
    # the skipped pulse's wait shifts what follows: pulse 3 is planned at its spacing from the
    # pulse the device last placed (pulse 1) plus the wait
    idx = {r.number: r.first_emg_index for r in records if r.status == "delivered"}
    spacing = round((plan.pulses[3].t_s - plan.pulses[1].t_s) * scale * rate)
    waited = round(records[2].gate_wait_s * rate)
    assert records[3].planned_emg_index == idx[1] + spacing + waited
    # (where the device then places it is not checked: in fast mode the runner's send-ahead
    # maps a few ms of host scheduling onto hundreds of ms of device time under load)
    # the quick M/H measures come from channel 1 (the file holds both channels)
    with open_session(tmp_path / "g.h5") as s:
        emg = np.asarray(s.emg_uv, dtype=float)
    a, b = (round(v * rate / 1000) for v in RESPONSE_WINDOWS_MS["soleus"]["m"])
    for r in records[:2]:
        seg = emg[r.first_emg_index + a : r.first_emg_index + b, 1]
        assert r.m_p2p_uv == pytest.approx(float(seg.max() - seg.min()), rel=1e-6)


def test_gated_channel_beyond_the_recording_is_refused(tmp_path):
    cfg = HReflexProtocolConfig(
        ladder_ma=(8.0, 10.0), ladder_repeats=1, rate_blocks_hz=(), paired_intervals_s=(),
        emg_channel=3,
    )  # fmt: skip
    box, seen, _, _ = _record(tmp_path, make_plan(cfg, time_scale=0.05))
    assert isinstance(box.get("error"), PlanError) and "emg_channel=3" in str(box["error"])
    assert seen == []
