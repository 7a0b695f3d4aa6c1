"""The emulated device streams the virtual patient: stimulation commands and stretch prompts
change what it sends, as the patient's ground truth says.

Uses firmware_iface's emulator and client (skipped if they are not importable); the simulator
itself never imports firmware_iface.
"""

import numpy as np
import pytest

emulator = pytest.importorskip("firmware_iface.emulator")
client_mod = pytest.importorskip("firmware_iface.client")

import virtual_patient as vp  # noqa: E402

KEY = bytes(range(32))


def _client(source):
    device = emulator.make_device(source, stim_key=KEY)
    link = emulator.emulator_link(device, speed="fast")
    return client_mod.DeviceClient(link, stim_key=KEY, command_timeout_s=2.0), device


def _collect(client, stream, n_samples):
    """Sample blocks of one stream until n_samples have arrived: (first index, counts)."""
    blocks = []
    got = 0
    for _ in range(2000):
        for it in client.read(0.5):
            if isinstance(it, client_mod.SampleBlock) and it.stream == stream:
                blocks.append(it)
                got += it.n_samples
        if got >= n_samples:
            break
    blocks.sort(key=lambda b: b.first_index)
    first = blocks[0].first_index
    counts = np.concatenate([b.counts for b in blocks])
    return first, counts, blocks


def _collect_until_stretch_ends(client, source, stream, rate_hz):
    """Angle blocks from the stream's start until the first prompted stretch has ended."""
    blocks = []
    for _ in range(200):
        for it in client.read(0.2):
            if isinstance(it, client_mod.SampleBlock) and it.stream == stream:
                blocks.append(it)
        stretches = source.ground_truth()["stretches"]
        if stretches and blocks:
            end_index = stretches[0]["end_s"] * rate_hz
            if max(b.first_index + b.n_samples for b in blocks) > end_index:
                break
    else:
        raise AssertionError("the prompted stretch never completed in the stream")
    blocks.sort(key=lambda b: b.first_index)
    return blocks[0].first_index, np.concatenate([b.counts for b in blocks]), blocks


@pytest.mark.timeout(60)
def test_stimulation_through_the_emulator_gives_the_true_m_and_h():
    source = vp.PatientSource("soleus_healthy", seed=1)
    client, _device = _client(source)
    try:
        info = client.configure(emg_rate_hz=5000, n_emg=1, emg_bits=16, n_angle=1,
                                angle_rate_hz=500)  # fmt: skip
        scale = info.emg_channels[0].scale
        client.start()
        _, _, before = _collect(client, 0, 2500)
        accepted = client.stimulate(15.0, 1000)
        after = []
        for _ in range(20):  # until the samples cover the pulse and 300 ms after it
            after += _collect(client, 0, 2500)[2]
            if max(b.first_index + b.n_samples for b in after) > accepted.first_emg_index + 1500:
                break
        client.stop()
        blocks = sorted(before + after, key=lambda b: b.first_index)
        first = blocks[0].first_index
        # samples placed by their index (a block read inside a command's wait is not lost)
        counts = np.zeros((blocks[-1].first_index + blocks[-1].n_samples - first, 1))
        for b in blocks:
            counts[b.first_index - first : b.first_index - first + b.n_samples] = b.counts[:, :1]
    finally:
        client.close()
    truth = source.ground_truth()
    (st,) = truth["stimuli"]
    assert st["emg_sample_index"] == accepted.first_emg_index
    assert st["intensity_ma"] == pytest.approx(15.0) and st["late"] is False
    uv = counts[:, 0] * scale
    i = st["emg_sample_index"] - first
    fs = 5000.0

    def ptp(lo_ms, hi_ms):
        return np.ptp(uv[i + int(lo_ms * fs / 1000) : i + int(hi_ms * fs / 1000)])

    h_win = (st["h_latency_ms"] - 1, st["h_latency_ms"] + 14)
    assert ptp(*h_win) == pytest.approx(st["h_p2p_uv"], rel=0.1, abs=30)
    assert ptp(*h_win) > 10 * ptp(100, 200)  # the response stands out from the background


@pytest.mark.timeout(60)
def test_stretch_prompt_through_the_emulator_moves_the_goniometer():
    source = vp.PatientSource("moderate_elbow", seed=2)
    client, _device = _client(source)
    try:
        info = client.configure(emg_rate_hz=2000, n_emg=2, emg_bits=16, n_angle=1,
                                angle_rate_hz=500)  # fmt: skip
        ch = info.angle_channels[0]
        client.start()
        client.prompt("stretch", velocity_deg_s=200)
        # The prompt lands at whatever sample the device has reached (a loaded machine may
        # have streamed seconds of data by then): collect until the whole stretch is covered.
        _first, counts, _ = _collect_until_stretch_ends(client, source, stream=1, rate_hz=500)
        client.stop()
    finally:
        client.close()
    deg = (counts[:, 0] - ch.offset) * ch.scale
    truth = source.ground_truth()
    (s,) = truth["stretches"]
    assert s["reflex"] and s["peak_velocity_deg_s"] == pytest.approx(200, rel=0.05)
    assert deg.max() - deg[:5].mean() > 100.0
    assert deg.max() == pytest.approx(s["max_angle_deg"], abs=0.5)


def _angle_blocks_until(client, index):
    """Goniometer blocks until the stream has passed sample ``index``."""
    blocks = []
    for _ in range(2000):
        for it in client.read(0.2):
            if isinstance(it, client_mod.SampleBlock) and it.stream == 1:
                blocks.append(it)
        if blocks and max(b.first_index + b.n_samples for b in blocks) > index:
            return blocks
    raise AssertionError(f"the goniometer stream never reached sample {index}")


@pytest.mark.timeout(60)
def test_two_point_calibration_through_the_emulator_recovers_the_true_angle():
    # goniometer gain 0.97, offset -3 deg: read with the nominal table the angle is 3-7 deg off
    source = vp.PatientSource("moderate_elbow_uncalibrated", seed=3)
    fa = 500.0
    device = emulator.make_device(source, stim_key=KEY)
    # a small link buffer keeps the fast device within about a second of the host
    link = emulator.emulator_link(device, speed="fast", capacity=4096)
    client = client_mod.DeviceClient(link, stim_key=KEY, command_timeout_s=2.0)
    try:
        info = client.configure(emg_rate_hz=1000, n_emg=1, emg_bits=16, n_angle=1,
                                angle_rate_hz=int(fa))  # fmt: skip
        nominal = info.angle_channels[0]
        client.start()
        _angle_blocks_until(client, int(0.5 * fa))
        rest_deg = source.profile.rest_angle_deg  # the joint rests there (5 deg)
        client.calibrate(0, 0, rest_deg)
        client.prompt("stretch", velocity_deg_s=150, end_deg=120.0, hold_s=4.0)
        for _ in range(100):
            stretches = source.ground_truth()["stretches"]
            if stretches:
                break
            client.read(0.05)
        (s,) = stretches
        # the examiner holds the joint at 120 deg: second calibration point during the hold
        _angle_blocks_until(client, int((s["movement_end_s"] + 0.3) * fa))
        reply = client.calibrate(0, 1, 120.0)
        assert reply.complete
        blocks = _angle_blocks_until(client, int((s["end_s"] + 0.5) * fa))
        client.stop()
    finally:
        client.close()
    # after the calibration: the rest of the hold, the return and rest, against the true angle
    blocks.sort(key=lambda b: b.first_index)
    first = blocks[0].first_index
    counts = np.concatenate([b.counts for b in blocks])[:, 0].astype(float)
    true = source.engine.joint_angle_deg(first, len(counts))
    calibrated = (counts - reply.offset) * reply.scale
    raw = (counts - nominal.offset) * nominal.scale
    assert np.ptp(true) > 100.0  # the return from 120 deg is in the comparison
    assert np.abs(calibrated - true).max() < 0.3
    assert np.abs(calibrated - true).mean() < 0.1
    assert np.abs(raw - true).min() > 3.0 and np.abs(raw - true).max() > 6.0


def _collect_both(client, n_emg_samples, n_angle_samples):
    """EMG and goniometer blocks until both streams hold that many samples: {stream: counts}."""
    blocks = {0: [], 1: []}
    need = {0: n_emg_samples, 1: n_angle_samples}
    for _ in range(2000):
        for it in client.read(0.2):
            if isinstance(it, client_mod.SampleBlock):
                blocks[it.stream].append(it)
        if all(sum(b.n_samples for b in blocks[k]) >= need[k] for k in need):
            break
    out = {}
    for k, bs in blocks.items():
        bs.sort(key=lambda b: b.first_index)
        assert bs[0].first_index == 0 and all(b.gap_before == 0 for b in bs)
        out[k] = np.concatenate([b.counts for b in bs])[: need[k]]
    return out


@pytest.mark.timeout(60)
def test_standalone_emulator_streams_the_virtual_patient_over_tcp():
    import subprocess
    import sys

    links = pytest.importorskip("acquire.links")
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_iface.emulator", "--tcp", "0", "--speed", "fast",
         "--profile", "moderate_elbow", "--program", "tsrt", "--seed", "3",
         "--serve-seconds", "50"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("tcp://127.0.0.1:")
        client = client_mod.DeviceClient(links.open_link(url), command_timeout_s=5.0)
        try:
            assert client.identify().serial
            client.configure(emg_rate_hz=2000, n_emg=2, emg_bits=16, n_angle=1,
                             angle_rate_hz=500)  # fmt: skip
            client.start()
            got = _collect_both(client, 2000 * 6, 500 * 6)
            client.stop()
        finally:
            client.close()
    finally:
        proc.terminate()
        proc.wait(10)
    # sample for sample the virtual patient of that profile, seed and programme
    local = vp.PatientSource("moderate_elbow", seed=3, program="tsrt")
    local.configure(2000.0, 2, 500.0, 1, 16)
    np.testing.assert_array_equal(got[0], local.emg_block(2000 * 6))
    np.testing.assert_array_equal(got[1], local.angle_block(500 * 6))
    # the TSRT programme's first (slow) stretch starts at 2 s: the goniometer leaves rest
    deg = got[1][:, 0] * 0.02
    assert np.ptp(deg[:900]) < 0.5 and deg[-1] - deg[:900].mean() > 2.0


def test_standalone_emulator_refuses_a_bad_profile_or_program(capsys):
    from firmware_iface.emulator.__main__ import main

    assert main(["--tcp", "0", "--profile", "nobody"]) == 2
    assert "unknown profile 'nobody'" in capsys.readouterr().err
    assert main(["--tcp", "0", "--program", "tsrt"]) == 2
    assert "--program needs --profile" in capsys.readouterr().err
