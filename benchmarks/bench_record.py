"""Recording benchmarks: recorder CPU over a pty, and a long recording at maximum speed.

``python benchmarks/run.py record [--seconds 20] [--minutes 5 | --hour] [--skip-cpu]
[--skip-long]``

1. **CPU over a pty.** The emulated device (16 EMG channels at 4 kHz, 24 bit, plus a goniometer
   at 500 Hz) runs in a separate process behind a real pseudo-terminal at real-time pace; this
   process records it with the full recorder (``acquire.recorder.Recorder``: decode, device-clock
   mapping, HDF5 writing, wire capture, pings). We report the recorder's CPU time (user + system,
   all its threads, ``psutil``) as a percentage of one core. Yardstick, measured in the same run
   on the same stream: a bare loop that only reads the port with pyserial and appends the bytes
   to a file (the floor any recorder pays).
2. **Long recording at maximum speed.** The in-process emulator with ``speed=fast`` (it produces
   data as fast as the recorder takes it) for ``--minutes`` of session time (default 5; ``--hour``
   for the full hour): lost samples (gap rows), throughput, and resident memory sampled along the
   way (flat means no growth between the first and the second half).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIG = {"emg_rate_hz": 4000, "n_emg": 16, "angle_rate_hz": 500, "n_angle": 1, "emg_bits": 24}

EMULATOR = """
import sys, time
sys.path.insert(0, sys.argv[1])
from firmware_iface.emulator import PtyEmulator, make_device
from firmware_iface.emulator.source import SimpleSource
emu = PtyEmulator(make_device(SimpleSource(seed=1)), speed="realtime")
print(emu.path, flush=True)
sys.stdin.readline()
if emu.runner.error is not None:
    print("emulator error:", repr(emu.runner.error), file=sys.stderr)
emu.close()
"""


def _start_emulator():
    proc = subprocess.Popen(
        [sys.executable, "-c", EMULATOR, str(ROOT)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    path = proc.stdout.readline().strip()
    return proc, path


def _stop_emulator(proc) -> None:
    try:
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(10)
    except Exception:
        proc.kill()


def _cpu_s() -> float:
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system


def bench_recorder_cpu(seconds: float, tmp: pathlib.Path) -> dict:
    from acquire.recorder import Recorder
    from acquire.session_file import open_session

    proc, path = _start_emulator()
    try:
        rec = Recorder(path, tmp / "cpu.h5", config=CONFIG, duration_s=seconds + 1.0)
        rec.open()
        deadline = time.monotonic() + 1.0  # settle, then measure
        while time.monotonic() < deadline and rec.step(0.05):
            pass
        cpu0, wall0 = _cpu_s(), time.monotonic()
        while rec.step(0.05):
            pass
        cpu1, wall1 = _cpu_s(), time.monotonic()
        rec.close()
        with open_session(tmp / "cpu.h5") as s:
            n = s.emg.n_samples
            gaps = sum(g["n_samples"] for g in s.gaps)
            size = (tmp / "cpu.h5").stat().st_size
    finally:
        _stop_emulator(proc)
    # yardstick: read the same stream with pyserial and append the bytes to a file
    proc, path = _start_emulator()
    try:
        import serial

        from firmware_iface.client import DeviceClient
        from firmware_iface.link import FdLink

        port = serial.Serial(path, timeout=0)
        client = DeviceClient(FdLink(port.fileno(), close_fd=False))
        client.configure(**CONFIG)
        client.start()
        raw = open(tmp / "raw.bin", "wb")
        cpu2, wall2 = _cpu_s(), time.monotonic()
        import select

        while time.monotonic() - wall2 < seconds:
            r, _, _ = select.select([port.fileno()], [], [], 0.05)
            if r:
                raw.write(port.read(65536))
        cpu3, wall3 = _cpu_s(), time.monotonic()
        raw.close()
        port.close()
    finally:
        _stop_emulator(proc)
    return {
        "recorder_cpu_pct": 100.0 * (cpu1 - cpu0) / (wall1 - wall0),
        "bare_read_cpu_pct": 100.0 * (cpu3 - cpu2) / (wall3 - wall2),
        "seconds": wall1 - wall0,
        "emg_samples": n,
        "gap_samples": gaps,
        "mb_per_hour": size / (n / 4000.0) * 3600 / 1e6,
    }


def bench_long(minutes: float, tmp: pathlib.Path) -> dict:
    import psutil

    from acquire.recorder import Recorder
    from acquire.session_file import open_session

    session_s = minutes * 60.0
    rec = Recorder("sim://simple?seed=2&speed=fast", tmp / "long.h5", config=CONFIG,
                   duration_s=session_s, ping_interval_s=5.0)  # fmt: skip
    proc = psutil.Process()
    rec.open()
    samples = []  # (session_s, rss_mb)
    next_mark = 0.0
    t0 = time.monotonic()
    cpu0 = _cpu_s()
    while rec.step(0.05):
        if rec.stats.session_time_s >= next_mark:
            samples.append((rec.stats.session_time_s, proc.memory_info().rss / 2**20))
            next_mark += session_s / 20
    wall = time.monotonic() - t0
    cpu = _cpu_s() - cpu0
    rec.close()
    with open_session(tmp / "long.h5") as s:
        n = s.emg.n_samples
        gaps = sum(g["n_samples"] for g in s.gaps)
        lost = rec.stats.lost_packets
    half = len(samples) // 2
    first = max(r for _, r in samples[1 : max(2, half)])
    second = max(r for _, r in samples[half:])
    return {
        "session_s": n / 4000.0,
        "wall_s": wall,
        "speed_x_realtime": (n / 4000.0) / wall,
        "cpu_s": cpu,
        "emg_samples": n,
        "gap_samples": gaps,
        "lost_packets": lost,
        "rss_first_half_mb": first,
        "rss_second_half_mb": second,
        "rss_trace": [(round(t), round(r, 1)) for t, r in samples],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_record")
    parser.add_argument("--seconds", type=float, default=20.0, help="CPU measurement span")
    parser.add_argument("--minutes", type=float, default=5.0, help="long-run session minutes")
    parser.add_argument("--hour", action="store_true", help="the full hour")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--skip-long", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        if not args.skip_cpu:
            r = bench_recorder_cpu(args.seconds, tmp)
            print(
                f"pty, 16 EMG x 4 kHz (24 bit) + goniometer 500 Hz, {r['seconds']:.0f} s: "
                f"recorder {r['recorder_cpu_pct']:.1f}% of one core "
                f"(bare pyserial read-to-file {r['bare_read_cpu_pct']:.1f}%); "
                f"{r['gap_samples']} samples lost; session file {r['mb_per_hour']:.0f} MB/h"
            )
            if r["recorder_cpu_pct"] >= 20.0 or r["gap_samples"]:
                status = 1
        if not args.skip_long:
            minutes = 60.0 if args.hour else args.minutes
            r = bench_long(minutes, tmp)
            print(
                f"max speed, {r['session_s'] / 60:.1f} min of 16 x 4 kHz: {r['wall_s']:.0f} s "
                f"wall ({r['speed_x_realtime']:.1f}x real time, {r['cpu_s']:.0f} s CPU), "
                f"{r['gap_samples']} samples lost, {r['lost_packets']} packets lost, "
                f"RSS {r['rss_first_half_mb']:.0f} MB (first half) -> "
                f"{r['rss_second_half_mb']:.0f} MB (second half)"
            )
            print("rss trace (session s, MB):", r["rss_trace"])
            if r["gap_samples"] or r["lost_packets"]:
                status = 1
            if r["rss_second_half_mb"] > 1.1 * r["rss_first_half_mb"] + 5:
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
