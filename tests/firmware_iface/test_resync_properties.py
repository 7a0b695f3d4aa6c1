"""Property tests: the decoder resynchronises within the next frame after any damage."""

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_iface.codec import MAX_ENCODED, StreamDecoder, encode_frame

frame_st = st.tuples(
    st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF),
    st.binary(max_size=300),
)  # fmt: skip
frames_st = st.lists(frame_st, min_size=3, max_size=12)
#: "No hang": every example must finish within a second (decoding it takes microseconds to a few
#: milliseconds; a slow example fails as DeadlineExceeded, a real hang ends in pytest-timeout).
DEADLINE = timedelta(seconds=1)
SETTINGS = settings(
    max_examples=150, deadline=DEADLINE, suppress_health_check=[HealthCheck.too_slow]
)


def _wire(frames):
    parts = [encode_frame(t, s, tm, p) for t, s, tm, p in frames]
    return parts


def _keys(decoded):
    return [(f.msg_type, f.seq, f.time_us, f.payload) for f in decoded]


def _feed_in_chunks(data: bytes, cuts: list[int]):
    dec = StreamDecoder()
    out, start = [], 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        out += dec.feed(data[start:cut]) if cut >= start else []
        start = max(start, cut)
    out += dec.feed(data[start:])
    return out, dec


@SETTINGS
@given(frames_st, st.lists(st.integers(0, 10_000), max_size=20))
def test_any_split_gives_the_same_frames(frames, cuts):
    data = b"".join(_wire(frames))
    decoded, dec = _feed_in_chunks(data, cuts)
    assert _keys(decoded) == list(map(tuple, frames))
    assert dec.stats.errors == 0


@SETTINGS
@given(
    frames_st,
    st.data(),
    st.sampled_from(["flip", "insert", "delete", "truncate"]),
    st.lists(st.integers(0, 10_000), max_size=5),
)
def test_damage_in_one_frame_costs_at_most_that_frame_and_the_next(frames, data, kind, cuts):
    parts = _wire(frames)
    k = data.draw(st.integers(0, len(parts) - 1), label="damaged frame")
    part = bytearray(parts[k])
    pos = data.draw(st.integers(0, len(part) - 1), label="position")
    if kind == "flip":
        part[pos] ^= data.draw(st.integers(1, 255), label="xor")
    elif kind == "insert":
        part[pos:pos] = data.draw(st.binary(min_size=1, max_size=40), label="inserted")
    elif kind == "delete":
        del part[pos : pos + data.draw(st.integers(1, 20), label="deleted")]
    else:
        part = part[:pos]  # the rest of this frame is lost, delimiter included
    damaged = b"".join(parts[:k]) + bytes(part) + b"".join(parts[k + 1 :])
    decoded, dec = _feed_in_chunks(damaged, cuts)
    got = _keys(decoded)
    originals = list(map(tuple, frames))
    assert all(g in originals for g in got)  # no invented frame (CRC)
    # every frame before the damage and every frame from k+2 on is received, in order
    must = originals[:k] + originals[k + 2 :]
    it = iter(got)
    assert all(any(m == g for g in it) for m in must)
    assert dec.buffered <= MAX_ENCODED


@SETTINGS
@given(frames_st, st.binary(min_size=1, max_size=3000))
def test_garbage_before_and_between_frames(frames, garbage):
    parts = _wire(frames)
    data = garbage + parts[0] + garbage + b"".join(parts[1:])
    decoded, _ = _feed_in_chunks(data, [])
    got = _keys(decoded)
    originals = list(map(tuple, frames))
    # garbage can swallow at most the frame right after it (if it ends without a delimiter)
    assert originals[2:] == got[-len(originals[2:]) :] or originals[2:] == []


@SETTINGS
@given(st.lists(st.binary(max_size=5000), max_size=8), st.lists(st.integers(0, 40_000)))
def test_arbitrary_bytes_give_frames_or_counted_errors_in_bounded_memory(chunks, cuts):
    """Any bytes, in any chunks: only frames come out, everything else is counted, the buffer
    stays under one maximal frame, and a valid frame after the garbage is received."""
    data = b"".join(chunks)
    decoded, dec = _feed_in_chunks(data, cuts)
    assert all(isinstance(f.payload, bytes) for f in decoded)
    assert dec.buffered <= MAX_ENCODED
    assert dec.stats.bytes_in == len(data)
    marker = encode_frame(0x93, 7, 7, b"after the garbage")
    assert _keys(dec.feed(b"\x00" + marker))[-1] == (0x93, 7, 7, b"after the garbage")
