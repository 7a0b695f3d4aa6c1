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
    wire = encode_frame(vec["type"], vec["seq"], vec["time_us"], payload)
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
    }
    assert getattr(dec.stats, field[vec["expect"]]) == 1


def test_crc_check_value_in_file():
    assert f"0x{crc16(DATA['crc_check']['input_ascii'].encode()):04x}" == DATA["crc_check"]["crc16"]


def test_file_is_what_the_generator_writes():
    assert _json(build_vectors()) == DATA


def test_protocol_document_example_matches_the_vectors():
    doc = (PATH.parents[2] / "firmware_iface" / "PROTOCOL.md").read_text()
    for name in ("identify", "configure"):
        vec = next(v for v in VECTORS if v["name"] == name)
        assert vec["wire_hex"] in doc and vec["frame_hex"] in doc
