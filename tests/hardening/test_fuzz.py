"""Fuzzing in the default run: hypothesis over the three protocol input surfaces, and the stored
atheris corpus replayed through the same targets (``fuzz/harnesses.py``)."""

from __future__ import annotations

import pathlib
import sys
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "fuzz"))
import harnesses  # noqa: E402

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@settings(SETTINGS, deadline=timedelta(seconds=1))  # "no hang": each example within a second
@given(st.binary(max_size=4096))
def test_decoder_on_arbitrary_bytes(data):
    harnesses.decoder(data)


@SETTINGS
@given(st.binary(max_size=2048))
def test_device_command_parser_on_arbitrary_input(data):
    harnesses.device(data)


@SETTINGS
@given(
    st.lists(
        st.tuples(st.sampled_from(range(0x01, 0x0C)), st.integers(0, 255), st.binary(max_size=63)),
        max_size=12,
    )
)
def test_device_answers_every_well_framed_command(commands):
    data = bytearray(b"\x00")
    for msg_type, seq, payload in commands:
        data += bytes([msg_type, seq, len(payload)]) + payload
    harnesses.device(bytes(data))


@SETTINGS
@given(st.binary(max_size=4096))
def test_host_reader_on_arbitrary_device_bytes(data):
    harnesses.host(data)


@pytest.mark.parametrize("target", sorted(harnesses.TARGETS))
def test_stored_corpus_replays_cleanly(target):
    files = sorted((ROOT / "fuzz" / "corpus" / target).iterdir())
    assert files, f"empty corpus for {target}"
    for path in files:
        harnesses.TARGETS[target](path.read_bytes())


def test_device_invariant_can_fail():
    """The reply-count invariant is live: a device that skips acks breaks it."""
    from firmware_iface.codec import encode_frame
    from firmware_iface.emulator import Faults, make_device
    from firmware_iface.messages import MsgType

    dev = make_device(faults=Faults(skip_acks=True))
    dev.receive(encode_frame(MsgType.START, 1, 0, b""))
    assert harnesses._replies(dev.take_output()) == []
