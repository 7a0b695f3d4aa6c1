"""Native-driver decoding benchmark: ``trigno://`` and ``bitalino://`` decoders vs real time.

``python benchmarks/run.py drivers [--seconds 60] [--official-seconds 10]``

Each device at its highest data rate, bytes made by its emulator (virtual patient), decoded in
this process from memory, so only decoding is timed (no socket, no HDF5):

1. **BITalino, 1000 Hz, all six analog channels** (8-byte frames), in reads of 100 frames:
   our wire decoder (:class:`firmware_iface.foreign.bitalino.FrameDecoder`: frames, CRC-4,
   sequence), the whole ``bitalino://`` decoder (chunks to stored blocks and TTL events), and
   the official ``bitalino`` package's ``BITalino.read`` (GPLv3; a peer only, installed with
   ``pip install --no-deps bitalino``) reading the same bytes from memory.
2. **Trigno, 2148.1 Hz EMG (16 float32 sensors) + 148.1 Hz auxiliary (16 x 9 float32)**, one
   TCU frame (13.5 ms) per read: the whole ``trigno://`` decoder (float frames, host-clock
   accounting, EMG to uV and goniometer to degrees, quantisation).

The figure is the speed-up over real time (seconds of recording decoded per second of CPU);
the issue asks for at least 100x.
"""

from __future__ import annotations

import argparse
import io
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _bitalino_bytes(seconds: float) -> tuple[bytes, int]:
    from firmware_iface.emulator.bitalino import BitalinoDevice
    from firmware_iface.foreign import bitalino as bp

    dev = BitalinoDevice(profile="moderate_elbow", emg_channels=(0, 2, 3, 4, 5),
                         gonio_channel=1, external_stim_every_s=1.0)  # fmt: skip
    dev.receive(bytes([bp.cmd_sampling_rate(1000), bp.cmd_start(range(6))]))
    n = int(seconds * 1000)
    for _ in range(n // 1000):
        dev.produce(1000)
    return dev.take_output(), n


def bench_bitalino(seconds: float, official_seconds: float) -> list[str]:
    from acquire.sources.base import OPEN_TAG, Chunk
    from acquire.sources.bitalino import BitalinoDecoder, parse_bitalino_url
    from firmware_iface.foreign import bitalino as bp

    raw, n = _bitalino_bytes(seconds)
    w = bp.frame_size(6)
    step = 100 * w
    lines = []
    t = time.process_time()
    dec = bp.FrameDecoder(6)
    got = 0
    for i in range(0, len(raw), step):
        got += dec.feed(raw[i : i + step]).n
    dt = time.process_time() - t
    assert got == n, (got, n)
    lines.append(f"bitalino wire decoder (ours)      {n / dt:12,.0f} frames/s  "
                 f"{seconds / dt:8,.0f}x real time (1000 Hz, 6 ch)")  # fmt: skip
    url = "bitalino:///dev/null?emg=A1,A3,A4,A5,A6&gonio=A2&gonio_cal=100:0,850:150"
    desc = {"url": url, "options": parse_bitalino_url(url).to_dict(), "version": "BITalino_v5.1",
            "state": None, "started_host_s": 0.0}  # fmt: skip
    t = time.process_time()
    sdec = BitalinoDecoder(desc)
    sdec.feed(Chunk(OPEN_TAG, desc, {}, 0.0))
    samples = 0
    for k, i in enumerate(range(0, len(raw), step)):
        arr = np.frombuffer(raw[i : i + step], np.uint8)
        for item in sdec.feed(Chunk("data", {}, {"bytes": arr}, 0.1 * (k + 1))):
            if getattr(item, "stream", None) == 0:
                samples += item.n_samples
    dt = time.process_time() - t
    assert samples == n, (samples, n)
    lines.append(f"bitalino:// decoder (ours, full)  {n / dt:12,.0f} frames/s  "
                 f"{seconds / dt:8,.0f}x real time")  # fmt: skip
    try:
        import bitalino as official
    except ImportError:
        lines.append("official bitalino package: not installed (pip install --no-deps bitalino)")
        return lines
    m = int(official_seconds * 1000)
    board = object.__new__(official.BITalino)  # its decoder, reading our bytes from memory
    board.socket = io.BytesIO(raw[: m * w])
    board.serial, board.blocking, board.isPython2, board.started = True, True, False, True
    board.analogChannels = list(range(6))
    t = time.process_time()
    theirs = np.vstack([board.read(100) for _ in range(m // 100)])
    dt = time.process_time() - t
    ours = bp.FrameDecoder(6).feed(raw[: m * w])
    assert np.array_equal(theirs[:, 5:], ours.analog), "the decoders disagree"
    lines.append(f"official bitalino BITalino.read   {m / dt:12,.0f} frames/s  "
                 f"{official_seconds / dt:8,.0f}x real time (same bytes, agrees sample for "
                 "sample)")  # fmt: skip
    return lines


def bench_trigno(seconds: float) -> list[str]:
    from acquire.sources.base import OPEN_TAG, Chunk
    from acquire.sources.trigno import TrignoDecoder, parse_trigno_url
    from firmware_iface.emulator.trigno import FRAME_INTERVAL_S, TrignoDevice

    dev = TrignoDevice(profile="moderate_elbow")
    dev._start()
    n_frames = int(seconds / FRAME_INTERVAL_S)
    frames = [dev.frame() for _ in range(n_frames)]
    url = "trigno://127.0.0.1?emg=1,2&gonio=3&gonio_cal=0.5:0,1.5:100"
    sensors = {str(s): {"type": "D", "mode": "40", "serial": ""} for s in (1, 2)}
    sensors["3"] = {"type": "G", "mode": "40", "serial": ""}
    desc = {"url": url, "options": parse_trigno_url(url).to_dict(), "version": "3.6.0",
            "greeting": "", "sensors": sensors, "emg_rate_hz": 2148.1481,
            "frame_interval_s": FRAME_INTERVAL_S, "emg_per_frame": 29, "aux_per_frame": 2,
            "big_endian": False, "backwards_compatibility": False,
            "started_host_s": 0.0}  # fmt: skip
    t = time.process_time()
    dec = TrignoDecoder(desc)
    dec.feed(Chunk(OPEN_TAG, desc, {}, 0.0))
    samples = 0
    for k, (emg_b, aux_b) in enumerate(frames):
        host = (k + 1) * FRAME_INTERVAL_S
        for role, b in (("emg", emg_b), ("aux", aux_b)):
            arr = np.frombuffer(b, np.uint8)
            for item in dec.feed(Chunk("data", {"port": role}, {"bytes": arr}, host)):
                if item.stream == 0:
                    samples += item.n_samples
    dt = time.process_time() - t
    assert samples == n_frames * 29, samples
    mb = sum(len(a) + len(b) for a, b in frames) / 1e6
    return [f"trigno:// decoder (ours, full)    {samples / dt:12,.0f} EMG samples/s "
            f"{seconds / dt:8,.0f}x real time (2148.1 Hz x 16 + aux 148.1 Hz x 144 float32, "
            f"{mb / seconds:.2f} MB/s)"]  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py drivers")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--official-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    for line in bench_bitalino(args.seconds, args.official_seconds) + bench_trigno(args.seconds):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
