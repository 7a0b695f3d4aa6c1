import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_iface.codec import (
    MAX_ENCODED,
    MAX_PAYLOAD,
    CobsError,
    Frame,
    StreamDecoder,
    Unwrapper,
    cobs_decode,
    cobs_encode,
    crc16,
    encode_frame,
    frame_bytes,
)


def test_crc_check_value():
    assert crc16(b"123456789") == 0x29B1


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        (b"", b"\x01"),
        (b"\x00", b"\x01\x01"),
        (b"\x00\x00", b"\x01\x01\x01"),
        (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
        (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
        (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
        (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
        (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
        (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    ],
)
def test_cobs_reference_vectors(raw, encoded):
    # the examples of the COBS paper / Wikipedia
    assert cobs_encode(raw) == encoded
    assert cobs_decode(encoded) == raw


@given(st.binary(max_size=2000))
def test_cobs_round_trip_has_no_zero(data):
    enc = cobs_encode(data)
    assert 0 not in enc
    assert cobs_decode(enc) == data
    assert len(enc) <= len(data) + len(data) // 254 + 1


def _cobs_decode_reference(encoded: bytes) -> bytes | None:
    """Byte-at-a-time COBS decoding as PROTOCOL.md describes it; None if malformed."""
    out, i = bytearray(), 0
    while i < len(encoded):
        code = encoded[i]
        if code == 0 or i + code > len(encoded):
            return None
        for k in range(1, code):
            if encoded[i + k] == 0:
                return None
            out.append(encoded[i + k])
        i += code
        if code < 0xFF and i < len(encoded):
            out.append(0)
    return bytes(out)


@given(
    st.one_of(
        st.binary(max_size=600).map(cobs_encode),  # valid encodings
        st.binary(max_size=600),  # mostly malformed
        st.lists(
            st.sampled_from([b"\xff" + bytes(range(1, 255)), b"\x01", b"\x02a", b"\x05abc"]),
            max_size=6,
        ).map(b"".join),
    )
)
def test_cobs_decode_matches_the_byte_at_a_time_reference(encoded):
    expected = _cobs_decode_reference(encoded)
    if expected is None:
        with pytest.raises(CobsError):
            cobs_decode(encoded)
    else:
        assert cobs_decode(encoded) == expected


@pytest.mark.parametrize("bad", [b"\x05\x11", b"\x02\x00", b"\x00"])
def test_cobs_decode_rejects_malformed(bad):
    with pytest.raises(CobsError):
        cobs_decode(bad)


def test_frame_layout_is_header_payload_crc():
    raw = frame_bytes(0x90, 0x1234, 0xDEADBEEF, b"\x01\x02")
    assert raw[:8] == struct.pack("<BBHI", 0x10, 0x90, 0x1234, 0xDEADBEEF)
    assert raw[8:10] == b"\x01\x02"
    assert struct.unpack("<H", raw[10:])[0] == crc16(raw[:10])


def test_decoder_round_trip_split_anywhere():
    wire = b"".join(encode_frame(0x90, k, 1000 * k, bytes([k, 0, 255])) for k in range(20))
    for cut in range(0, len(wire), 7):
        dec = StreamDecoder()
        frames = dec.feed(wire[:cut]) + dec.feed(wire[cut:])
        assert [f.seq for f in frames] == list(range(20))
        assert dec.stats.errors == 0
    dec = StreamDecoder()
    frames = [f for b in wire for f in dec.feed(bytes([b]))]
    assert frames[5] == Frame(0x90, 5, 5000, bytes([5, 0, 255]))


def test_decoder_counts_corruption_and_recovers_at_next_frame():
    good = [encode_frame(0x80, k, k, b"abc") for k in range(3)]
    corrupt = bytearray(good[1])
    corrupt[4] ^= 0x40
    dec = StreamDecoder()
    frames = dec.feed(good[0] + bytes(corrupt) + good[2])
    assert [f.seq for f in frames] == [0, 2]
    assert dec.stats.errors == 1


def test_decoder_memory_is_bounded_without_delimiters():
    dec = StreamDecoder()
    for _ in range(50):
        assert dec.feed(b"\x55" * 1000) == []
        assert dec.buffered <= MAX_ENCODED
    assert dec.stats.oversize == 1
    frames = dec.feed(b"\x00" + encode_frame(1, 1, 1))
    assert len(frames) == 1


def test_max_payload_frame_round_trips_and_larger_is_refused():
    payload = bytes(range(256)) * (MAX_PAYLOAD // 256) + bytes(MAX_PAYLOAD % 256)
    wire = encode_frame(0x90, 1, 2, payload)
    assert StreamDecoder().feed(wire)[0].payload == payload
    with pytest.raises(ValueError):
        encode_frame(0x90, 1, 2, payload + b"x")


def test_unwrapper_handles_wrap_and_small_backward_steps():
    u = Unwrapper(32)
    values = [0xFFFFFF00, 0xFFFFFFF0, 0x10, 0x8, 0x100000]
    assert [u(v) for v in values] == [
        0xFFFFFF00, 0xFFFFFFF0, 0x100000010, 0x100000008, 0x100100000,
    ]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_decoder_on_arbitrary_bytes_only_returns_frames(data):
    dec = StreamDecoder()
    frames = dec.feed(data)
    assert all(isinstance(f, Frame) for f in frames)
    assert dec.buffered <= MAX_ENCODED
