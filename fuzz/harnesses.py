"""Fuzz targets for the protocol's input surfaces, each with the invariants it must keep.

Three surfaces take bytes from outside:

``decoder``
    :class:`firmware_iface.codec.StreamDecoder` on arbitrary bytes fed in arbitrary pieces.
``device``
    The emulated device's command parser (:meth:`EmulatedDevice.receive`), which is the
    reference for firmware: arbitrary bytes, and well-framed commands with arbitrary payloads.
``host``
    :class:`firmware_iface.client.DeviceClient` reading arbitrary device-to-host bytes.

Each target raises ``AssertionError`` when an invariant breaks (no exception other than the
documented ones, bounded memory, a reply to every command, no unauthenticated pulse). They run
under atheris (``python fuzz/run.py NAME``) and on the stored corpus in the default test run.
"""

from __future__ import annotations

import struct

from firmware_iface.codec import MAX_ENCODED, StreamDecoder, encode_frame
from firmware_iface.errors import LinkClosed
from firmware_iface.messages import ErrorCode, ErrorReply, MsgType

STIM_KEY = bytes(range(32))


def _pieces(data: bytes):
    """Split ``data`` by its own leading bytes into feed-sized pieces (deterministic)."""
    if not data:
        return [b""]
    sizes = data[: 1 + data[0] % 8]
    pieces, pos, body = [], 0, data[len(sizes) :]
    for i in range(len(body)):
        size = 1 + sizes[i % len(sizes)] * 4
        if pos >= len(body):
            break
        pieces.append(body[pos : pos + size])
        pos += size
    return pieces


def decoder(data: bytes) -> None:
    """Arbitrary bytes in arbitrary pieces: frames out or counted errors, bounded buffer."""
    dec = StreamDecoder()
    total = 0
    for piece in _pieces(data):
        frames = dec.feed(piece)
        total += len(frames)
        assert dec.buffered <= MAX_ENCODED, "decoder buffer exceeded MAX_ENCODED"
        for frame in frames:
            assert 0 <= frame.msg_type <= 255 and 0 <= frame.seq <= 0xFFFF
    assert dec.stats.frames == total


def _replies(output: bytes):
    return [f for f in StreamDecoder().feed(output) if f.msg_type in (MsgType.ACK, MsgType.ERROR)]


def device(data: bytes) -> None:
    """The device's command parser: a reply to every frame, no internal error, no free pulse."""
    from firmware_iface.emulator import make_device

    dev = make_device(stim_key=STIM_KEY)
    if not data:
        return
    if data[0] & 1:  # raw bytes, any framing
        dev.receive(data[1:])
        expect_replies = None
    else:  # well-framed commands: [type, seq_lo, len] + payload, repeated
        wire, expect_replies, pos = bytearray(), 0, 1
        while pos + 3 <= len(data):
            msg_type, seq, length = data[pos], data[pos + 1], data[pos + 2] % 64
            payload = data[pos + 3 : pos + 3 + length]
            pos += 3 + length
            wire += encode_frame(msg_type, seq, 0, payload)
            expect_replies += 1
        dev.receive(bytes(wire))
    dev.advance(dev.clock.now_us() + 20_000)  # let a started stream run a little
    replies = _replies(dev.take_output())
    if expect_replies is not None:
        assert len(replies) == expect_replies, f"{expect_replies} commands, {len(replies)} replies"
    for reply in replies:
        if reply.msg_type == MsgType.ERROR:
            code = ErrorReply.unpack(reply.payload).code
            assert code != ErrorCode.INTERNAL, "a command raised inside the device"
    assert not dev._pulses, "a pulse was scheduled without a valid MAC"


class _OneShotLink:
    """A ByteLink that delivers fixed bytes once (the outer edge: a device's output)."""

    def __init__(self, data: bytes):
        self.pieces = _pieces(data)

    def write(self, data: bytes) -> None:
        pass

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        if not self.pieces:
            raise LinkClosed("fuzz input exhausted")
        return self.pieces.pop(0)

    def close(self) -> None:
        pass


def host(data: bytes) -> None:
    """The host's reader on arbitrary device bytes: items or counted errors, never a crash."""
    from firmware_iface.client import DeviceClient

    wire = bytearray()
    if data and data[0] & 1:  # turn the input into valid-CRC frames of device message types
        pos = 1
        while pos + 2 <= len(data):
            msg_type = 0x80 + data[pos] % 0x20
            length = data[pos + 1] % 96
            wire += encode_frame(
                msg_type, pos & 0xFFFF, pos * 100, data[pos + 2 : pos + 2 + length]
            )
            pos += 2 + length
        wire += struct.pack("<B", 0)
    else:
        wire += data[1:]
    link = _OneShotLink(bytes(wire))
    client = DeviceClient(link, command_timeout_s=0.01)
    try:
        for _ in range(len(link.pieces) + 2):
            client.read(1e-4)
    except LinkClosed:
        pass
    else:
        raise AssertionError("the client stopped reading before the link was exhausted")
    assert client.decoder.buffered <= MAX_ENCODED


TARGETS = {"decoder": decoder, "device": device, "host": host}
