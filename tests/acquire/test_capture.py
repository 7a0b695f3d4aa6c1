"""The wire capture: CRC'd append-only records, tolerant of a torn tail."""

from __future__ import annotations

import pytest

from acquire.capture import (
    EVENT,
    HEAD,
    MAGIC,
    RX,
    TX,
    CaptureWriter,
    capture_header,
    read_capture,
)
from acquire.errors import CaptureError


def test_roundtrip_and_torn_tail(tmp_path):
    path = tmp_path / "a.capture"
    w = CaptureWriter(path)
    w.write_json(HEAD, {"url": "sim://simple"}, 1.0)
    w.write(RX, b"\x01\x02\x00", 1.5)
    w.write(TX, b"\x05\x00", 1.6)
    w.write_json(EVENT, {"kind": "marker"}, 2.0)
    w.close()
    recs = list(read_capture(path))
    assert [r.kind_name for r in recs] == ["header", "rx", "tx", "event"]
    assert recs[1].payload == b"\x01\x02\x00" and recs[1].host_time_s == 1.5
    assert capture_header(path) == {"url": "sim://simple"}
    data = path.read_bytes()
    for cut in range(len(MAGIC), len(data)):
        n = len(list(read_capture_bytes(tmp_path, data[:cut])))
        assert n <= 4
    # a flipped byte in the last record drops exactly that record
    bad = bytearray(data)
    bad[-6] ^= 0xFF
    assert len(list(read_capture_bytes(tmp_path, bytes(bad)))) == 3


def read_capture_bytes(tmp_path, data):
    p = tmp_path / "cut.capture"
    p.write_bytes(data)
    return list(read_capture(p))


def test_refuses_non_capture_and_existing(tmp_path):
    p = tmp_path / "x.capture"
    p.write_bytes(b"hello world")
    with pytest.raises(CaptureError):
        list(read_capture(p))
    with pytest.raises(CaptureError, match="exists"):
        CaptureWriter(p)
