"""Golden test vectors of protocol v1: build them, and map frames to/from their JSON meaning.

``data/vectors/protocol_v1.json`` was written by ``python -m firmware_iface.vectors`` and is then
the fixed reference: the tests decode every vector's wire bytes and compare with its meaning, and
encode its meaning and compare with the bytes. Firmware authors run the same two checks.
"""

from __future__ import annotations

import json
import struct
import sys
from dataclasses import asdict

import numpy as np

from firmware_iface import auth
from firmware_iface.codec import (
    HEADER,
    MAX_FRAME,
    PROTOCOL_MAJOR,
    VERSION_BYTE,
    cobs_encode,
    crc16,
    encode_frame,
    frame_bytes,
)
from firmware_iface.messages import (
    PING,
    SET_TIME,
    Ack,
    Calibrate,
    CalibrationReply,
    ChannelInfo,
    Config,
    DeviceInfo,
    ErrorCode,
    ErrorReply,
    Marker,
    MsgType,
    PingReply,
    Samples,
    Status,
    StimEvent,
    StimLimits,
    Stimulate,
    pack_prompt,
    unpack_prompt,
)

TEST_KEY = bytes(range(32))
TEST_SERIAL = "EMU-0001"


# ---------------------------------------------------------------------- meaning <-> payload
def _ack_body_fields(acked_type: int, body: bytes) -> dict:
    if acked_type == MsgType.IDENTIFY:
        return DeviceInfo.unpack(body).to_dict()
    if acked_type == MsgType.CONFIGURE:
        return asdict(Config.unpack(body))
    if acked_type == MsgType.PING:
        return asdict(PingReply.unpack(body))
    if acked_type == MsgType.CALIBRATE:
        return asdict(CalibrationReply.unpack(body))
    if acked_type == MsgType.STIMULATE:
        counter, first = struct.unpack_from("<II", body)
        return {"counter": counter, "first_pulse_emg_index": first}
    if acked_type == MsgType.GET_STATUS:
        return asdict(Status.unpack(body))
    return {}


def _ack_body_bytes(acked_type: int, f: dict) -> bytes:
    if acked_type == MsgType.IDENTIFY:
        return DeviceInfo(
            f["protocol_major"], f["protocol_minor"], f["serial"], tuple(f["hw_version"]),
            tuple(f["fw_version"]), f["state"], Config(**f["config"]), StimLimits(**f["limits"]),
            f["stim_flags"], f["last_stim_counter"],
            tuple(ChannelInfo.from_dict(c) for c in f["channels"]),
        ).pack()  # fmt: skip
    if acked_type == MsgType.CONFIGURE:
        return Config(**f).pack()
    if acked_type == MsgType.PING:
        return PingReply(**f).pack()
    if acked_type == MsgType.CALIBRATE:
        return CalibrationReply(**f).pack()
    if acked_type == MsgType.STIMULATE:
        return struct.pack("<II", f["counter"], f["first_pulse_emg_index"])
    if acked_type == MsgType.GET_STATUS:
        return Status(**f).pack()
    return b""


def payload_fields(msg_type: int, payload: bytes) -> dict:
    """The JSON meaning of a payload (inverse of :func:`payload_bytes`)."""
    t = MsgType(msg_type)
    if t in (MsgType.IDENTIFY, MsgType.START, MsgType.STOP, MsgType.GET_STATUS):
        return {}
    if t == MsgType.CONFIGURE:
        return asdict(Config.unpack(payload))
    if t == MsgType.PING:
        return {"token": PING.unpack_from(payload)[0]}
    if t == MsgType.SET_TIME:
        return {"device_time_us": SET_TIME.unpack_from(payload)[0]}
    if t == MsgType.CALIBRATE:
        return asdict(Calibrate.unpack(payload))
    if t == MsgType.STIMULATE:
        d = asdict(Stimulate.unpack(payload))
        d["mac"] = d["mac"].hex()
        d["extra"] = d["extra"].hex()  # fields a newer minor appended (empty in 1.0)
        return d
    if t == MsgType.PROMPT:
        kind, params = unpack_prompt(payload)
        return {"kind": kind, "params": params}
    if t == MsgType.PAIR:
        return {"key": payload[:32].hex()}
    if t == MsgType.ACK:
        ack = Ack.unpack(payload)
        return {
            "acked_seq": ack.acked_seq,
            "acked_type": ack.acked_type,
            "body": _ack_body_fields(ack.acked_type, ack.body),
        }
    if t == MsgType.ERROR:
        err = ErrorReply.unpack(payload)
        return {**asdict(err), "code_name": err.code_name}
    if t == MsgType.SAMPLES:
        s = Samples.unpack(payload)
        return {
            "stream": s.stream,
            "first_index": s.first_index,
            "bytes_per_sample": s.bytes_per_sample,
            "counts": s.counts.tolist(),
        }
    cls = {MsgType.STIM_EVENT: StimEvent, MsgType.MARKER: Marker, MsgType.STATUS: Status}[t]
    return asdict(cls.unpack(payload))


def payload_bytes(msg_type: int, f: dict) -> bytes:
    """Encode a payload from its JSON meaning."""
    t = MsgType(msg_type)
    if t in (MsgType.IDENTIFY, MsgType.START, MsgType.STOP, MsgType.GET_STATUS):
        return b""
    if t == MsgType.CONFIGURE:
        return Config(**f).pack()
    if t == MsgType.PING:
        return PING.pack(f["token"])
    if t == MsgType.SET_TIME:
        return SET_TIME.pack(f["device_time_us"])
    if t == MsgType.CALIBRATE:
        return Calibrate(**f).pack()
    if t == MsgType.STIMULATE:
        extra = bytes.fromhex(f.get("extra", ""))
        return Stimulate(**{**f, "mac": bytes.fromhex(f["mac"]), "extra": extra}).pack()
    if t == MsgType.PROMPT:
        return pack_prompt(f["kind"], f["params"])
    if t == MsgType.PAIR:
        return bytes.fromhex(f["key"])
    if t == MsgType.ACK:
        body = _ack_body_bytes(f["acked_type"], f["body"])
        return Ack(f["acked_seq"], f["acked_type"], body).pack()
    if t == MsgType.ERROR:
        return ErrorReply(f["acked_seq"], f["acked_type"], f["code"], f["text"]).pack()
    if t == MsgType.SAMPLES:
        counts = np.array(f["counts"], dtype=np.int32)
        return Samples(f["stream"], f["first_index"], counts, f["bytes_per_sample"]).pack()
    cls = {MsgType.STIM_EVENT: StimEvent, MsgType.MARKER: Marker, MsgType.STATUS: Status}[t]
    return cls(**f).pack()


# ---------------------------------------------------------------------- the vectors
def _vector(
    name, direction, description, msg_type, seq, time_us, payload, version=VERSION_BYTE, **extra
) -> dict:
    raw = frame_bytes(msg_type, seq, time_us, payload, version)
    return {
        "name": name,
        "direction": direction,
        "description": description,
        "wire_hex": encode_frame(msg_type, seq, time_us, payload, version).hex(),
        "frame_hex": raw.hex(),
        "crc16": f"0x{crc16(raw[:-2]):04x}",
        "version": f"{version >> 4}.{version & 0x0F}",
        "type": int(msg_type),
        "type_name": MsgType(msg_type).name,
        "seq": seq,
        "time_us": time_us,
        # a frame of another major is never interpreted: its payload is given as bytes only
        **(
            {"payload": payload_fields(msg_type, payload)}
            if version >> 4 == PROTOCOL_MAJOR
            else {"payload_hex": payload.hex()}
        ),
        **extra,
    }


def build_vectors() -> dict:
    """All golden vectors (the content of ``data/vectors/protocol_v1.json``)."""
    H, D = "host->device", "device->host"
    v = []
    v.append(
        _vector("identify", H, "IDENTIFY, the host's first command", MsgType.IDENTIFY, 1, 0, b"")
    )
    cfg = Config(5000, 500, 8, 1, 24, 2)
    v.append(
        _vector(
            "configure",
            H,
            "5 kHz x 8 EMG x 24 bit, gain 2; 1 goniometer at 500 Hz",
            MsgType.CONFIGURE,
            2,
            0,
            cfg.pack(),
        )
    )
    v.append(_vector("start", H, "START", MsgType.START, 3, 0, b""))
    v.append(_vector("stop", H, "STOP", MsgType.STOP, 4, 0, b""))
    v.append(
        _vector("ping", H, "PING with token 0xDEADBEEF", MsgType.PING, 5, 0, PING.pack(0xDEADBEEF))
    )
    v.append(
        _vector(
            "set_time",
            H,
            "SET_TIME to 1234567890123 us",
            MsgType.SET_TIME,
            6,
            0,
            SET_TIME.pack(1234567890123),
        )
    )
    v.append(
        _vector(
            "calibrate",
            H,
            "CALIBRATE goniometer 0, point 1 at 90.000 deg",
            MsgType.CALIBRATE,
            7,
            0,
            Calibrate(0, 1, 90000).pack(),
        )
    )
    stim = auth.sign(Stimulate(1, 2, 12500, 500, 50000, 7, 1_500_000), TEST_KEY, TEST_SERIAL)
    v.append(
        _vector(
            "stimulate_pair",
            H,
            "STIMULATE pair 12.5 mA, 500 us, 50 ms apart, counter 7, valid until device uptime "
            "1.5 s; MAC with the test key 000102..1f and serial EMU-0001",
            MsgType.STIMULATE,
            8,
            0,
            stim.pack(),
            mac_key_hex=TEST_KEY.hex(),
            mac_serial=TEST_SERIAL,
        )
    )
    newer = Stimulate(0, 1, 2000, 200, 0, 8, 0x0000_0001_0000_0000, extra=bytes([1, 2, 3, 4]))
    v.append(
        _vector(
            "stimulate_newer_minor",
            H,
            "STIMULATE from a 1.1 host: single 2 mA, 200 us, counter 8, deadline uptime 2^32 us "
            "(past the 32-bit wrap), then 4 bytes a newer minor appended (01020304) before the "
            "MAC; the MAC covers them. A 1.0 device verifies it and delivers the known fields",
            MsgType.STIMULATE,
            9,
            0,
            auth.sign(newer, TEST_KEY, TEST_SERIAL).pack(),
            version=0x11,
            mac_key_hex=TEST_KEY.hex(),
            mac_serial=TEST_SERIAL,
        )
    )
    v.append(_vector("get_status", H, "GET_STATUS", MsgType.GET_STATUS, 9, 0, b""))
    v.append(
        _vector(
            "prompt",
            H,
            "PROMPT a stretch at 120 deg/s",
            MsgType.PROMPT,
            10,
            0,
            pack_prompt("stretch", {"velocity_deg_s": 120}),
        )
    )
    v.append(_vector("pair", H, "PAIR with the test key", MsgType.PAIR, 11, 0, TEST_KEY))
    channels = (
        ChannelInfo("EMG1", "emg", "uV", 0.025, 0.0, 10.0, 2000.0),
        ChannelInfo("EMG2", "emg", "uV", 0.025, 0.0, 10.0, 2000.0),
        ChannelInfo("GON1", "angle", "deg", 0.01, -1250.0, None, None),
    )
    info = DeviceInfo(
        1,
        0,
        TEST_SERIAL,
        (1, 0),
        (1, 0, 0),
        0,
        Config(2000, 500, 2, 1, 16, 1),
        StimLimits(),
        3,
        6,
        channels,
    )
    v.append(
        _vector(
            "ack_identify",
            D,
            "ACK of IDENTIFY seq 1 with the device info",
            MsgType.ACK,
            0,
            1_000_000,
            Ack(1, MsgType.IDENTIFY, info.pack()).pack(),
        )
    )
    v.append(
        _vector(
            "ack_configure",
            D,
            "ACK of CONFIGURE echoing the configuration",
            MsgType.ACK,
            1,
            1_000_500,
            Ack(2, MsgType.CONFIGURE, cfg.pack()).pack(),
        )
    )
    v.append(
        _vector(
            "ack_ping",
            D,
            "ACK of PING: token, device clock at receipt and reply, uptime at receipt",
            MsgType.ACK,
            2,
            1_001_000,
            Ack(
                5, MsgType.PING, PingReply(0xDEADBEEF, 1_000_990, 1_001_000, 990_000).pack()
            ).pack(),
        )
    )
    v.append(
        _vector(
            "ack_stimulate",
            D,
            "ACK of STIMULATE: counter 7, first pulse at EMG sample 2010",
            MsgType.ACK,
            3,
            1_002_000,
            Ack(8, MsgType.STIMULATE, struct.pack("<II", 7, 2010)).pack(),
        )
    )
    cal = CalibrationReply(0, 1, -1234, True, 0.015625, -2048.5)
    v.append(
        _vector(
            "ack_calibrate",
            D,
            "ACK of CALIBRATE point 1 (seq 7): raw -1234 counts, complete, new scale 0.015625 "
            "deg/count and offset -2048.5 counts",
            MsgType.ACK,
            13,
            1_002_500,
            Ack(7, MsgType.CALIBRATE, cal.pack()).pack(),
        )
    )
    v.append(
        _vector(
            "ack_get_status",
            D,
            "ACK of GET_STATUS (seq 9): streaming, 87 %, 4135 mV, 31.50 C, no loss",
            MsgType.ACK,
            14,
            1_002_700,
            Ack(9, MsgType.GET_STATUS, Status(1, 87, 4135, 3150, 0, 0).pack()).pack(),
        )
    )
    v.append(
        _vector(
            "error_unsupported_version",
            D,
            "ERROR UNSUPPORTED_VERSION, in a 1.0 frame, to the major-2 IDENTIFY of "
            "refuse/identify_major_2 (seq 1)",
            MsgType.ERROR,
            15,
            1_005_000,
            ErrorReply(
                1, MsgType.IDENTIFY, ErrorCode.UNSUPPORTED_VERSION, "device speaks protocol 1.x"
            ).pack(),
        )
    )
    v.append(
        _vector(
            "error_unknown",
            D,
            "ERROR: unknown command 0x3e (seq 12)",
            MsgType.ERROR,
            4,
            1_003_000,
            ErrorReply(12, 0x3E, ErrorCode.UNKNOWN_COMMAND, "unknown command 0x3e").pack(),
        )
    )
    v.append(
        _vector(
            "error_frame",
            D,
            "ERROR: a frame that failed COBS/CRC",
            MsgType.ERROR,
            5,
            1_004_000,
            ErrorReply(0xFFFF, 0xFF, ErrorCode.FRAME_ERROR, "").pack(),
        )
    )
    emg16 = np.array([[0, -1], [256, -32768], [32767, 1], [-256, 0]], dtype=np.int32)
    v.append(
        _vector(
            "samples_emg16",
            D,
            "4 samples x 2 EMG channels, 16 bit, first index 1000",
            MsgType.SAMPLES,
            6,
            0x7FFFFFF0,
            Samples(0, 1000, emg16, 2).pack(),
        )
    )
    emg24 = np.array([[-8388608, 8388607, 0], [-1, 65536, -65536]], dtype=np.int32)
    v.append(
        _vector(
            "samples_emg24",
            D,
            "2 samples x 3 EMG channels, 24 bit extremes",
            MsgType.SAMPLES,
            7,
            0xFFFFFFF0,
            Samples(0, 0xFFFFFFFF, emg24, 3).pack(),
        )
    )
    v.append(
        _vector(
            "samples_angle",
            D,
            "3 goniometer samples, 32 bit, after a time wrap",
            MsgType.SAMPLES,
            8,
            0x00000010,
            Samples(1, 250, np.array([[4500], [-4500], [36000]], np.int32), 4).pack(),
        )
    )
    run = np.full((100, 1), 0x010101, dtype=np.int32)
    v.append(
        _vector(
            "samples_long_run",
            D,
            "100 samples x 1 ch x 24 bit of 0x010101: 300 non-zero bytes, so the COBS "
            "encoding has a 0xFF block",
            MsgType.SAMPLES,
            9,
            5000,
            Samples(0, 0, run, 3).pack(),
        )
    )
    v.append(
        _vector(
            "stim_event",
            D,
            "second pulse (index 1 of 2) at EMG sample 2260",
            MsgType.STIM_EVENT,
            10,
            1_452_000,
            StimEvent(2260, 1_452_000, 12500, 500, 1, 2, 7).pack(),
        )
    )
    v.append(
        _vector(
            "marker",
            D,
            "button marker 1 at EMG sample 3000",
            MsgType.MARKER,
            11,
            1_600_000,
            Marker(3000, 1_600_000, 1, 1).pack(),
        )
    )
    v.append(
        _vector(
            "status",
            D,
            "STATUS: streaming, 42 %, 3910 mV, -5.25 C, 2 overruns, 40 dropped",
            MsgType.STATUS,
            12,
            2_000_000,
            Status(1, 42, 3910, -525, 2, 40).pack(),
        )
    )
    good = bytes.fromhex(v[0]["wire_hex"])
    corrupt = bytearray(good)
    corrupt[1] ^= 0x01  # the version byte (a data byte, not a COBS code)
    # one byte over the limit: a 1015-byte payload makes a 1025-byte frame (COBS itself fine)
    oversized = (
        HEADER.pack(VERSION_BYTE, MsgType.STATUS, 16, 0) + (b"\0" + b"A" * 100) * 10 + b"A" * 5
    )
    oversized += crc16(oversized).to_bytes(2, "little")
    assert len(oversized) == MAX_FRAME + 1
    invalid = [
        {"name": "bad_crc", "description": "IDENTIFY with one flipped bit: CRC fails, drop it",
         "wire_hex": bytes(corrupt).hex(), "expect": "crc_error"},
        {"name": "cobs_overrun", "description": "a COBS code pointing past the delimiter",
         "wire_hex": "0511220000", "expect": "cobs_error"},
        {"name": "too_short", "description": "valid COBS but only 3 bytes: length error",
         "wire_hex": cobs_encode(b"\x10\x01\x00").hex() + "00", "expect": "length_error"},
        {"name": "oversized", "description": "a valid frame (CRC correct) of 1025 bytes, one over "
         "the 1024-byte limit (payload 1015 bytes): length error, drop it",
         "wire_hex": cobs_encode(oversized).hex() + "00", "expect": "length_error"},
        {"name": "no_delimiter", "description": "1031 non-zero bytes, then a delimiter: more than "
         "a maximal encoded frame without 0x00; discard up to the delimiter (bounded memory)",
         "wire_hex": "01" * 1031 + "00", "expect": "oversize"},
    ]  # fmt: skip
    # a frame whose last 254 bytes are non-zero: canonical COBS ends with a 0xFF block and no
    # empty block after it; an encoder that appends the empty block (0x01) is also valid
    counts = np.full((126, 1), 0x0101, dtype=np.int32)  # 252 bytes, then the 2 CRC bytes
    long_payload = Samples(0, 0, counts, 2).pack()
    seq = next(  # one whose CRC bytes are non-zero too
        q
        for q in range(1, 1000)
        if 0 not in frame_bytes(MsgType.SAMPLES, q, 6000, long_payload)[-2:]
    )  # CRC bytes non-zero too
    canonical = encode_frame(MsgType.SAMPLES, seq, 6000, long_payload)
    assert canonical[-256] == 0xFF
    noncanonical = canonical[:-1] + b"\x01\x00"
    accept = [
        {**_vector("samples_254_run_noncanonical", D,
                   "126 samples of 0x0101 (16 bit): the frame ends with 254 non-zero bytes; this "
                   "wire form has the empty block 0x01 after the final 0xFF block, which the "
                   "canonical encoder omits (canonical_wire_hex); decoders accept both",
                   MsgType.SAMPLES, seq, 6000, long_payload),
         "wire_hex": noncanonical.hex(), "canonical_wire_hex": canonical.hex()},
    ]  # fmt: skip
    refuse = [
        {**_vector("identify_major_2", H,
                   "IDENTIFY in a protocol 2.0 header (0x20): valid COBS and CRC, but a 1.0 "
                   "device must answer ERROR UNSUPPORTED_VERSION (vector "
                   "error_unsupported_version) and do nothing else",
                   MsgType.IDENTIFY, 1, 0, b"", version=0x20),
         "expect": "device: ERROR UNSUPPORTED_VERSION"},
        {**_vector("ack_major_2", D,
                   "an ACK in a protocol 2.0 header: a 1.0 host never interprets it and stops, "
                   "telling the user to upgrade (the reference host: VersionMismatch)",
                   MsgType.ACK, 0, 1_000_000, Ack(1, MsgType.IDENTIFY, b"\x02\x00").pack(),
                   version=0x20),
         "expect": "host: stop (another major version)"},
    ]  # fmt: skip
    return {
        "protocol": "tonuslab device protocol 1.0 (firmware_iface/PROTOCOL.md)",
        "generated_by": "python -m firmware_iface.vectors > data/vectors/protocol_v1.json",
        "notes": (
            "wire_hex = COBS(frame_hex) + 00; frame_hex = header(8) + payload + CRC-16/CCITT-FALSE "
            "(little-endian). crc16(b'123456789') = 0x29b1. Floats in payloads are exact."
        ),
        "crc_check": {"input_ascii": "123456789", "crc16": "0x29b1"},
        "vectors": v,
        "accept": accept,
        "refuse": refuse,
        "invalid": invalid,
    }


if __name__ == "__main__":  # pragma: no cover
    json.dump(build_vectors(), sys.stdout, indent=1)
    sys.stdout.write("\n")
