"""The golden vectors in data/vectors/, in both directions."""

import json
import pathlib

import pytest

from firmware_iface import auth
from firmware_iface.codec import StreamDecoder, cobs_decode, crc16, encode_frame
from firmware_iface.messages import Stimulate
from firmware_iface.vectors import build_vectors, payload_bytes, payload_fields

PATH = pathlib.Path(__file__).resolve().parents[2] / "data" / "vectors" / "protocol_v1.json"
DATA = json.loads(PATH.read_text())
VECTORS = DATA["vectors"]


def _json(x):
    return json.loads(json.dumps(x))


def _version_byte(vec):
    major, minor = map(int, vec["version"].split("."))
    return major << 4 | minor


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_decode_matches_meaning(vec):
    wire = bytes.fromhex(vec["wire_hex"])
    assert wire[-1] == 0 and 0 not in wire[:-1]
    assert cobs_decode(wire[:-1]).hex() == vec["frame_hex"]
    dec = StreamDecoder()
    (frame,) = dec.feed(wire)
    assert dec.stats.errors == 0
    assert (frame.msg_type, frame.seq, frame.time_us) == (vec["type"], vec["seq"], vec["time_us"])
    assert f"{frame.major}.{frame.minor}" == vec["version"]
    assert _json(payload_fields(frame.msg_type, frame.payload)) == vec["payload"]


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_encode_matches_bytes(vec):
    payload = payload_bytes(vec["type"], vec["payload"])
    wire = encode_frame(vec["type"], vec["seq"], vec["time_us"], payload, _version_byte(vec))
    assert wire.hex() == vec["wire_hex"]
    frame = bytes.fromhex(vec["frame_hex"])
    assert f"0x{crc16(frame[:-2]):04x}" == vec["crc16"]
    assert int.from_bytes(frame[-2:], "little") == crc16(frame[:-2])


def test_stimulate_vector_mac_verifies_with_the_documented_key():
    vec = next(v for v in VECTORS if v["name"] == "stimulate_pair")
    cmd = Stimulate.unpack(payload_bytes(vec["type"], vec["payload"]))
    key = bytes.fromhex(vec["mac_key_hex"])
    assert auth.verify(cmd, key, vec["mac_serial"])
    assert not auth.verify(cmd, bytes(32), vec["mac_serial"])
    assert not auth.verify(cmd, key, "EMU-0002")


def test_newer_minor_stimulate_vector_is_verified_over_its_raw_bytes_and_delivered():
    """PROTOCOL 3 and 8.2: the MAC covers every byte before it, appended fields included; a
    1.0 device verifies the raw payload and executes the fields it knows."""
    from firmware_iface.codec import StreamDecoder as Decoder
    from firmware_iface.emulator import make_device
    from firmware_iface.messages import Ack, Config, MsgType, StimEvent

    vec = next(v for v in VECTORS if v["name"] == "stimulate_newer_minor")
    wire = bytes.fromhex(vec["wire_hex"])
    (frame,) = Decoder().feed(wire)
    key = bytes.fromhex(vec["mac_key_hex"])
    assert (frame.major, frame.minor) == (1, 1)
    assert auth.verify_payload(frame.payload, key, vec["mac_serial"])
    assert auth.verify(Stimulate.unpack(frame.payload), key, vec["mac_serial"])
    tampered = bytearray(frame.payload)
    tampered[-17] ^= 1  # an appended byte: covered by the MAC
    assert not auth.verify_payload(bytes(tampered), key, vec["mac_serial"])

    device = make_device(stim_key=key, serial=vec["mac_serial"])
    device.clock.restart(uptime_us=2**32 - 200_000)  # 0.2 s before the vector's deadline
    device.receive(encode_frame(MsgType.CONFIGURE, 1, 0, Config(emg_rate_hz=5000).pack()))
    device.receive(encode_frame(MsgType.START, 2, 0))
    device.receive(wire)
    device.clock.run_ahead_to(device.clock.now_us() + 50_000)
    device.advance(device.clock.now_us())
    frames = Decoder().feed(device.take_output())
    acks = [Ack.unpack(f.payload) for f in frames if f.msg_type == MsgType.ACK]
    assert [a.acked_type for a in acks] == [MsgType.CONFIGURE, MsgType.START, MsgType.STIMULATE]
    (pulse,) = [StimEvent.unpack(f.payload) for f in frames if f.msg_type == MsgType.STIM_EVENT]
    assert (pulse.intensity_ua, pulse.width_us, pulse.counter) == (2000, 200, 8)


def test_cobs_long_run_vector_has_a_full_block():
    vec = next(v for v in VECTORS if v["name"] == "samples_long_run")
    assert "ff" in [vec["wire_hex"][i : i + 2] for i in range(0, len(vec["wire_hex"]), 2)]


@pytest.mark.parametrize("vec", DATA["invalid"], ids=[v["name"] for v in DATA["invalid"]])
def test_invalid_vectors_are_dropped_and_counted(vec):
    dec = StreamDecoder()
    assert dec.feed(bytes.fromhex(vec["wire_hex"])) == []
    field = {
        "crc_error": "crc_errors",
        "cobs_error": "cobs_errors",
        "length_error": "length_errors",
        "oversize": "oversize",
    }
    assert getattr(dec.stats, field[vec["expect"]]) == 1 == dec.stats.errors
    # and the receiver is back in step: the next frame decodes
    assert len(dec.feed(bytes.fromhex(VECTORS[0]["wire_hex"]))) == 1


@pytest.mark.parametrize("vec", DATA["accept"], ids=[v["name"] for v in DATA["accept"]])
def test_noncanonical_cobs_is_accepted_by_both_decoders(vec):
    from firmware_iface.fastdecode import decode_samples

    wire = bytes.fromhex(vec["wire_hex"])
    assert wire != bytes.fromhex(vec["canonical_wire_hex"])
    assert cobs_decode(wire[:-1]).hex() == vec["frame_hex"]
    dec = StreamDecoder()
    (frame,) = dec.feed(wire)
    assert dec.stats.errors == 0
    assert _json(payload_fields(frame.msg_type, frame.payload)) == vec["payload"]
    fast = decode_samples(wire)
    assert fast.n_frames == 1 and fast.cobs_errors == fast.length_errors == fast.crc_errors == 0
    assert fast.streams[0].counts.tolist() == vec["payload"]["counts"]
    # the canonical encoder writes the other form
    payload = payload_bytes(vec["type"], vec["payload"])
    encoded = encode_frame(vec["type"], vec["seq"], vec["time_us"], payload)
    assert encoded.hex() == vec["canonical_wire_hex"]


def test_major_2_frames_are_refused_by_device_and_host():
    from firmware_iface.client import DeviceClient
    from firmware_iface.emulator import make_device
    from firmware_iface.errors import VersionMismatch
    from firmware_iface.link import link_pair

    refuse = {v["name"]: v for v in DATA["refuse"]}
    # the device answers the major-2 IDENTIFY with exactly the error_unsupported_version payload
    wire = bytes.fromhex(refuse["identify_major_2"]["wire_hex"])
    (frame,) = StreamDecoder().feed(wire)
    assert (frame.major, frame.msg_type, frame.seq) == (2, 1, 1)
    device = make_device()
    device.receive(wire)
    (reply,) = StreamDecoder().feed(device.take_output())
    expected = next(v for v in VECTORS if v["name"] == "error_unsupported_version")
    assert (reply.msg_type, reply.version) == (expected["type"], 0x10)
    assert _json(payload_fields(reply.msg_type, reply.payload)) == expected["payload"]
    # a host that receives the major-2 ACK stops with VersionMismatch
    host, dev = link_pair()
    dev.write(bytes.fromhex(refuse["ack_major_2"]["wire_hex"]))
    with DeviceClient(host, command_timeout_s=2.0, retries=0) as client:
        with pytest.raises(VersionMismatch, match="upgrade"):
            client.identify()


def test_crc_check_value_in_file():
    assert f"0x{crc16(DATA['crc_check']['input_ascii'].encode()):04x}" == DATA["crc_check"]["crc16"]


def test_file_is_what_the_generator_writes():
    assert _json(build_vectors()) == DATA


def test_protocol_document_example_matches_the_vectors():
    doc = (PATH.parents[2] / "firmware_iface" / "PROTOCOL.md").read_text()
    for name in ("identify", "configure"):
        vec = next(v for v in VECTORS if v["name"] == name)
        assert vec["wire_hex"] in doc and vec["frame_hex"] in doc
