"""A small XDF 1.0 writer for the tests, written from the specification
(https://github.com/sccn/xdf/wiki/Specifications): magic ``XDF:``, then chunks of
``[NumLengthBytes][Length][Tag u16][content]``; tags 1 FileHeader, 2 StreamHeader, 3 Samples,
4 ClockOffset, 6 StreamFooter. Test fixtures are made by the tests; no file is committed."""

from __future__ import annotations

import struct

import numpy as np


def _varlen(n: int) -> bytes:
    if n < 256:
        return bytes([1]) + struct.pack("<B", n)
    if n < 2**32:
        return bytes([4]) + struct.pack("<I", n)
    return bytes([8]) + struct.pack("<Q", n)


def _chunk(tag: int, content: bytes) -> bytes:
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


def stream_header(name, stype, channels, rate_hz, fmt="float32", source_id="") -> str:
    """StreamHeader XML. ``channels``: list of (label, unit, type)."""
    chans = "".join(
        f"<channel><label>{lab}</label><unit>{unit}</unit><type>{t}</type></channel>"
        for lab, unit, t in channels
    )
    return (
        f'<?xml version="1.0"?><info><name>{name}</name><type>{stype}</type>'
        f"<channel_count>{len(channels)}</channel_count><nominal_srate>{rate_hz}</nominal_srate>"
        f"<channel_format>{fmt}</channel_format><source_id>{source_id}</source_id>"
        f"<desc><channels>{chans}</channels></desc></info>"
    )


class XdfWriter:
    """Build an XDF file in memory: add streams, sample chunks, clock offsets; ``bytes()``."""

    def __init__(self) -> None:
        self.parts = [
            b"XDF:",
            _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>'),
        ]

    def header(self, stream_id: int, xml: str) -> None:
        self.parts.append(_chunk(2, struct.pack("<I", stream_id) + xml.encode()))

    def samples(self, stream_id: int, stamps, values, fmt: str = "float32") -> None:
        """One Samples chunk; ``values`` (n, ch) numbers, or a list of strings for markers."""
        body = [struct.pack("<I", stream_id), _varlen(len(stamps))]
        for k, ts in enumerate(stamps):
            body.append(b"\x08" + struct.pack("<d", float(ts)))
            if fmt == "string":
                text = str(values[k]).encode()
                body.append(_varlen(len(text)) + text)
            else:
                code = {"float32": "<f", "double64": "<d", "int32": "<i", "int16": "<h"}[fmt]
                body.append(b"".join(struct.pack(code, v) for v in np.asarray(values[k]).ravel()))
        self.parts.append(_chunk(3, b"".join(body)))

    def clock_offset(self, stream_id: int, collection_time: float, offset_s: float) -> None:
        self.parts.append(_chunk(4, struct.pack("<Idd", stream_id, collection_time, offset_s)))

    def footer(self, stream_id: int, first: float, last: float, count: int) -> None:
        xml = (f'<?xml version="1.0"?><info><first_timestamp>{first}</first_timestamp>'
               f"<last_timestamp>{last}</last_timestamp><sample_count>{count}</sample_count>"
               "</info>")  # fmt: skip
        self.parts.append(_chunk(6, struct.pack("<I", stream_id) + xml.encode()))

    def bytes(self) -> bytes:
        return b"".join(self.parts)
