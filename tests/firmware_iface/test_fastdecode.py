import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from naive import reference_decode

from firmware_iface.codec import StreamDecoder, encode_frame
from firmware_iface.emulator import make_device
from firmware_iface.fastdecode import decode_samples
from firmware_iface.messages import Config, MsgType, Samples


def _capture(config: Config, seconds: float, seed=0, **faults) -> bytes:
    from firmware_iface.emulator import Faults
    from firmware_iface.emulator.source import SimpleSource

    dev = make_device(SimpleSource(seed), faults=Faults(**faults))
    dev.receive(encode_frame(MsgType.CONFIGURE, 1, 0, config.pack()))
    dev.receive(encode_frame(MsgType.START, 2, 0))
    dev.take_output()
    dev.advance(dev._run_t0_us + int(seconds * 1e6))
    return dev.take_output()


@pytest.mark.parametrize(
    "config",
    [
        Config(10000, 1000, 16, 4, 24, 1),
        Config(2000, 500, 2, 1, 16, 1),
        Config(500, 100, 1, 0, 16, 8),
    ],
)
def test_fast_decode_matches_the_reference_decoder(config):
    buf = _capture(config, 0.5)
    fast = decode_samples(buf)
    ref = reference_decode(buf)
    assert set(fast.streams) == set(ref)
    for sid, (counts, index) in ref.items():
        np.testing.assert_array_equal(fast.streams[sid].counts, counts)
        np.testing.assert_array_equal(fast.streams[sid].index, index)
    assert fast.crc_errors == fast.cobs_errors == fast.length_errors == 0


def test_fast_decode_counts_gaps_and_corruption_like_the_reference():
    buf = bytearray(_capture(Config(2000, 500, 4, 1, 24, 1), 1.0, drop_frame_every=7))
    rng = np.random.default_rng(1)
    for pos in rng.choice(len(buf), 20, replace=False):
        buf[pos] ^= 0x5A
    fast = decode_samples(bytes(buf))
    ref = reference_decode(bytes(buf))
    dec = StreamDecoder()
    dec.feed(bytes(buf))
    assert fast.cobs_errors + fast.length_errors + fast.crc_errors == dec.stats.errors
    np.testing.assert_array_equal(fast.streams[0].counts, ref[0][0])
    assert fast.streams[0].missing > 0
    # frame times follow the frame sample numbers at the configured rate
    s = fast.streams[0]
    dt = np.diff(s.frame_time_us) / np.diff(s.frame_index)
    assert np.allclose(dt, 500.0, atol=1.0)


def test_fast_decode_unwraps_sample_numbers_past_2_to_32():
    frames = b"".join(
        encode_frame(
            MsgType.SAMPLES,
            k,
            k,
            Samples(0, (0xFFFFFFF0 + 8 * k) & 0xFFFFFFFF, np.full((8, 1), k, np.int32), 2).pack(),
        )
        for k in range(4)
    )
    s = decode_samples(frames).streams[0]
    assert s.index[0] == 0xFFFFFFF0 and s.index[-1] == 0xFFFFFFF0 + 31
    assert s.missing == 0


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=4000))
def test_fast_decode_survives_arbitrary_bytes(data):
    result = decode_samples(data)
    assert result.n_frames >= 0
    for s in result.streams.values():
        assert s.counts.shape[0] == s.index.shape[0]


def test_kernels_give_the_same_result_with_the_jit_disabled(tmp_path):
    import os
    import subprocess
    import sys

    buf = _capture(Config(2000, 500, 3, 1, 24, 1), 0.2)
    path = tmp_path / "capture.bin"
    path.write_bytes(buf)
    code = (
        "import sys, numpy as np; from firmware_iface.fastdecode import decode_samples; "
        f"r = decode_samples(open({str(path)!r}, 'rb').read()); "
        "np.save(sys.argv[1], r.streams[0].counts)"
    )
    env = {**os.environ, "TONUSLAB_DISABLE_JIT": "1"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "py.npy")], env=env, check=True)
    np.testing.assert_array_equal(
        np.load(tmp_path / "py.npy"), decode_samples(buf).streams[0].counts
    )
