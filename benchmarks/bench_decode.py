"""Protocol decode throughput: wire bytes to per-stream NumPy arrays.

Input: 10 s of the highest data rate protocol v1 allows (16 EMG channels x 24 bit x 10 kHz plus
4 goniometer channels x 1 kHz), produced by the emulated device. Measured in the same run:

- ``fastdecode``: :func:`firmware_iface.fastdecode.decode_samples` (compiled, whole buffer);
- ``stream``: :class:`~firmware_iface.codec.StreamDecoder` + ``Samples.unpack`` per frame (what
  the live :class:`~firmware_iface.client.DeviceClient` does);
- ``peer``: the ``cobs`` package's C decoder + ``binascii.crc_hqx`` + ``numpy.frombuffer`` per
  frame (skipped when ``cobs`` is not installed).

Figures are medians of ``--repeat`` runs, as samples per second and as a multiple of the
protocol's highest data rate (the requirement is >= 100x).

Usage: ``python benchmarks/run.py decode [--seconds 10] [--repeat 7]``
"""

from __future__ import annotations

import argparse
import binascii
import statistics
import time

import numpy as np

from firmware_iface.codec import StreamDecoder, encode_frame
from firmware_iface.emulator import make_device
from firmware_iface.fastdecode import decode_samples
from firmware_iface.messages import Config, MsgType, Samples

MAX_CONFIG = Config(emg_rate_hz=10000, angle_rate_hz=1000, n_emg=16, n_angle=4, emg_bits=24)
MAX_SAMPLES_PER_S = 16 * 10000 + 4 * 1000  # channel-samples per second


def make_capture(seconds: float) -> bytes:
    """Wire bytes of ``seconds`` of streaming at the maximum configuration."""
    dev = make_device()
    dev.receive(encode_frame(MsgType.CONFIGURE, 1, 0, MAX_CONFIG.pack()))
    dev.receive(encode_frame(MsgType.START, 2, 0))
    dev.take_output()
    dev.advance(dev._run_t0_us + int(seconds * 1e6))
    return dev.take_output()


def decode_stream(buf: bytes) -> int:
    dec = StreamDecoder()
    n = 0
    for frame in dec.feed(buf):
        if frame.msg_type == MsgType.SAMPLES:
            n += Samples.unpack(frame.payload).counts.size
    return n


def decode_peer(buf: bytes) -> int:
    from cobs import cobs

    n = 0
    for chunk in buf.split(b"\x00"):
        if not chunk:
            continue
        try:
            raw = cobs.decode(chunk)
        except cobs.DecodeError:
            continue
        if len(raw) < 10 or binascii.crc_hqx(raw[:-2], 0xFFFF) != int.from_bytes(
            raw[-2:], "little"
        ):
            continue
        if raw[1] != MsgType.SAMPLES:
            continue
        ch, bps, ns = raw[9], raw[10], raw[11]
        data = np.frombuffer(raw, np.uint8, ns * ch * bps, 16)
        if bps == 3:
            b = data.reshape(-1, 3).astype(np.int32)
            v = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8) >> 8
        else:
            v = data.view("<i2" if bps == 2 else "<i4").astype(np.int32)
        n += v.reshape(ns, ch).size
    return n


def _time(func, buf, repeat: int) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = func(buf)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), n


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_decode")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    buf = make_capture(args.seconds)
    decode_samples(buf[:5000])  # compile / load the cached kernels outside the timing

    def fast(b):
        r = decode_samples(b)
        return sum(s.counts.size for s in r.streams.values())

    size_mb = len(buf) / 1e6
    max_k = MAX_SAMPLES_PER_S / 1e3
    print(f"capture: {args.seconds:g} s at 16 ch x 24 bit x 10 kHz + 4 ch x 1 kHz, ", end="")
    print(f"{size_mb:.2f} MB, protocol maximum {max_k:.0f} k samples/s")
    print(f"{'decoder':<12}{'median s':>10}{'M samples/s':>13}{'MB/s':>8}{'x max rate':>12}")
    runs = [("fastdecode", fast), ("stream", decode_stream)]
    try:
        import cobs  # noqa: F401

        runs.append(("peer (cobs)", decode_peer))
    except ImportError:
        print("peer (cobs): skipped, pip install cobs")
    expected = None
    for name, func in runs:
        seconds, n = _time(
            func, buf, args.repeat if name == "fastdecode" else max(3, args.repeat // 2)
        )
        expected = expected or n
        if n != expected:
            print(f"{name}: decoded {n} samples, expected {expected}")
            return 1
        rate = n / seconds
        print(f"{name:<12}{seconds:>10.4f}{rate / 1e6:>13.1f}{len(buf) / seconds / 1e6:>8.0f}"
              f"{rate / MAX_SAMPLES_PER_S:>12.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
