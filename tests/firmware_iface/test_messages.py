import math

import numpy as np
import pytest

from firmware_iface.errors import MalformedMessage
from firmware_iface.messages import (
    Ack,
    CalibrationReply,
    ChannelInfo,
    Config,
    DeviceInfo,
    ErrorReply,
    Marker,
    PingReply,
    Samples,
    Status,
    StimEvent,
    StimLimits,
    Stimulate,
    pack_prompt,
    unpack_prompt,
)


@pytest.mark.parametrize("bps", [2, 3, 4])
def test_samples_round_trip_at_the_extremes(bps):
    bits = 8 * bps
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    counts = np.array([[lo, hi, 0], [-1, 1, lo + 1]], dtype=np.int32)
    msg = Samples(1, 0xFFFFFFFE, counts, bps)
    back = Samples.unpack(msg.pack())
    assert back.first_index == 0xFFFFFFFE
    np.testing.assert_array_equal(back.counts, counts)
    assert back.counts.dtype == np.int32


def test_truncated_samples_payload_is_malformed():
    raw = Samples(0, 0, np.zeros((4, 2), np.int32), 2).pack()
    with pytest.raises(MalformedMessage):
        Samples.unpack(raw[:-1])


def test_device_info_round_trip_with_20_channels_fits_a_frame():
    channels = [ChannelInfo(f"EMG{k}", "emg", "uV", 0.05, 0.0, 10.0, 2000.0) for k in range(16)] + [
        ChannelInfo(f"GON{k}", "angle", "deg", 0.01, 12.5, None, None) for k in range(4)
    ]
    info = DeviceInfo(1, 3, "SN-123", (2, 1), (1, 4, 7), 0, Config(10000, 1000, 16, 4, 24, 6),
                      StimLimits(), 3, 42, tuple(channels))  # fmt: skip
    raw = info.pack()
    assert len(raw) <= 1024 - 10 - 3
    back = DeviceInfo.unpack(raw)
    assert back == info
    # a newer minor version may append fields: still readable
    assert DeviceInfo.unpack(raw + b"\x01\x02") == info


@pytest.mark.parametrize(
    "msg",
    [
        Config(500, 1, 1, 0, 16, 1),
        Ack(65535, 0x02, b"xyz"),
        ErrorReply(7, 0x42, 1, "unknown command 0x42"),
        PingReply(0xFFFFFFFF, 2**63, 2**63 + 5, 2**64 - 1),
        StimEvent(12345, 99, 25_000, 1000, 1, 2, 17),
        Marker(5, 6, 1, 1),
        Status(1, 50, 3900, -250, 2, 40),
        Stimulate(1, 2, 12_500, 500, 50_000, 9, 2**64 - 1, bytes(range(16))),
        Stimulate(0, 1, 1000, 100, 0, 10, 5, bytes(range(16)), extra=b"newer minor"),
        CalibrationReply(0, 1, -300, True, 0.012, 17.5),
    ],
)
def test_messages_round_trip(msg):
    assert type(msg).unpack(msg.pack()) == msg


def test_channel_without_filters_round_trips_none():
    ch = ChannelInfo("GON1", "angle", "deg", 0.01, 0.0, None, None)
    raw = ch.pack()
    back = ChannelInfo.unpack_from(raw, 0)
    assert back.highpass_hz is None and back.lowpass_hz is None
    assert math.isclose(back.scale, 0.01)


def test_config_problems_name_the_field():
    assert Config().problems() == []
    assert "emg_rate_hz" in Config(emg_rate_hz=20000).problems()[0]
    assert "n_emg" in Config(n_emg=17).problems()[0]
    assert "emg_bits" in Config(emg_bits=12).problems()[0]


def test_prompt_round_trip_and_malformed():
    assert unpack_prompt(pack_prompt("stretch", {"velocity_deg_s": 120})) == (
        "stretch",
        {"velocity_deg_s": 120},
    )
    with pytest.raises(MalformedMessage):
        unpack_prompt(b"\xff\xfe")


def test_stimulate_layout_is_41_bytes_and_keeps_appended_fields_for_the_mac():
    cmd = Stimulate(1, 2, 12_500, 500, 50_000, 9, 0x0102030405060708, bytes(range(16)))
    raw = cmd.pack()
    assert len(raw) == 41 and raw[17:25] == bytes.fromhex("0807060504030201")
    assert raw[-16:] == bytes(range(16))
    newer = raw[:25] + b"\xaa\xbb" + raw[25:]  # a 1.1 field appended before the MAC
    back = Stimulate.unpack(newer)
    assert back.extra == b"\xaa\xbb" and back.signed_part() == newer[:-16]
    with pytest.raises(MalformedMessage):
        Stimulate.unpack(raw[:40])
