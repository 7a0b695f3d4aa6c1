"""Stretch prompts fuzzed against the emulated device with a virtual patient (issue 18 item 6).

Before: ``velocity_deg_s`` 0.001 or ``hold_s`` 1e6 made the virtual patient allocate 7.5-75 GiB
inside the recorder's process (``sim://``); ``null`` raised TypeError (an ``INTERNAL`` reply),
a huge integer OverflowError, and some prompts took 5 s. Now every PROMPT gets one ACK or one
ERROR (never ``INTERNAL``) within a second, in bounded memory.
"""

from __future__ import annotations

import json
import math
import time
import tracemalloc
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_iface.codec import StreamDecoder, encode_frame
from firmware_iface.emulator import make_device
from firmware_iface.messages import Ack, Config, ErrorCode, ErrorReply, MsgType
from virtual_patient import PatientSource

#: Peak Python allocation allowed for one prompt (one stretch of at most 120 s on the 4 kHz grid
#: is about 31 MB).
MAX_PROMPT_BYTES = 64 << 20

NUMBERS = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=5),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.001, 0.0001, 1e-300, 1e308, 1e6, -1.0, 0.0, 5.0, 30.0, 1000.0]),
)
KEYS = ("velocity_deg_s", "peak_velocity_deg_s", "end_deg", "hold_s", "return_velocity_deg_s",
        "overshoot_deg", "shape")  # fmt: skip


def _device():
    device = make_device(PatientSource("mild_elbow", seed=1))
    device.receive(encode_frame(MsgType.CONFIGURE, 1, 0, Config(emg_rate_hz=2000).pack()))
    device.take_output()
    return device


def _prompt(device, seq, params):
    try:
        payload = json.dumps({"kind": "stretch", "params": params}).encode()
    except ValueError:  # json cannot write this value (e.g. a lone surrogate)
        payload = b'{"kind":"stretch","params":{}}'
    device.receive(encode_frame(MsgType.PROMPT, seq, 0, payload[:1000]))
    replies = []
    for f in StreamDecoder().feed(device.take_output()):
        if f.msg_type == MsgType.ACK:
            replies.append(("ACK", Ack.unpack(f.payload).acked_seq))
        elif f.msg_type == MsgType.ERROR:
            reply = ErrorReply.unpack(f.payload)
            replies.append((ErrorCode(reply.code).name, reply.acked_seq))
    return replies


@settings(max_examples=300, deadline=timedelta(seconds=1),
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(st.dictionaries(st.sampled_from(KEYS), NUMBERS, max_size=5))
def test_every_prompt_gets_one_reply_fast_in_bounded_memory(params):
    device = _device()
    tracemalloc.start()
    try:
        replies = _prompt(device, 7, params)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(replies) == 1 and replies[0][1] == 7, replies
    assert replies[0][0] != "INTERNAL", (params, replies)
    assert peak < MAX_PROMPT_BYTES, (params, peak)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"velocity_deg_s": 0.001}, "OUT_OF_RANGE"),
        ({"velocity_deg_s": 0.0001}, "OUT_OF_RANGE"),
        ({"velocity_deg_s": 120, "hold_s": 1e6}, "OUT_OF_RANGE"),
        ({"velocity_deg_s": None}, "MALFORMED"),
        ({"velocity_deg_s": "fast"}, "MALFORMED"),
        ({"velocity_deg_s": True}, "MALFORMED"),
        ({"velocity_deg_s": math.nan}, "OUT_OF_RANGE"),
        ({"velocity_deg_s": math.inf}, "OUT_OF_RANGE"),
        ({"velocity_deg_s": 10**400}, "OUT_OF_RANGE"),
        ({"velocity_deg_s": 1e308}, "OUT_OF_RANGE"),
        ({}, "MALFORMED"),
        ({"velocity_deg_s": 120, "shape": "zigzag"}, "OUT_OF_RANGE"),
        ({"velocity_deg_s": 120, "hold_s": None}, "ACK"),  # null: the default hold
        ({"velocity_deg_s": 120}, "ACK"),
    ],
)
def test_the_cases_the_fuzzer_found(params, code):
    device = _device()
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        replies = _prompt(device, 3, params)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert replies == [(code, 3)]
    assert time.monotonic() - t0 < 1.0 and peak < MAX_PROMPT_BYTES


def test_the_queue_of_prompted_stretches_is_bounded():
    device = _device()
    codes = [_prompt(device, k, {"velocity_deg_s": 10.0, "hold_s": 30.0})[0][0] for k in range(8)]
    assert codes[:4] == ["ACK"] * 4 and set(codes[4:]) == {"OUT_OF_RANGE"}
