"""LSL inlet benchmark: ``lsl://`` recording CPU next to a bare pylsl loop, push-to-file delay.

``python benchmarks/run.py lsl [--seconds 20] [--channels 16] [--rate 4000]``

An outlet process (its own interpreter, so its CPU is not counted) pushes 16 float32 channels
at 4 kHz in real time, 40-sample chunks each stamped per sample, on a loopback-only LSL
configuration. In this process, measured one after the other on the same stream:

1. **tonuslab**: the full recorder (``Recorder("lsl://...")``: pylsl inlet, journal of every
   chunk, decoding and quantisation, HDF5 writing, clock fit) for ``--seconds``; CPU time (user
   + system, every thread, ``psutil``) as a percentage of one core, and the samples lost.
2. **bare pylsl**: ``pull_chunk`` into NumPy and the raw bytes appended to a file (the floor any
   LSL recorder pays), for the same span.
3. **push to flushed file**: at every flush of the session file (at most 0.5 s apart),
   ``local_clock()`` minus the push time of the newest sample flushed (the transport and loop
   latency) and of the oldest one (the longest any sample waits for the disk). The outlet pushes
   each chunk when its last sample is due, so a stamp is a push time; both processes read the
   same steady clock.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUTLET = """
import sys, time
import numpy as np
import pylsl
name, n_ch, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
info = pylsl.StreamInfo(name, "EMG", n_ch, rate, pylsl.cf_float32, name)
chans = info.desc().append_child("channels")
for c in range(n_ch):
    ch = chans.append_child("channel")
    ch.append_child_value("label", f"EMG{c + 1}")
    ch.append_child_value("unit", "microvolts")
    ch.append_child_value("type", "EMG")
outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=60)
print("ready", flush=True)
rng = np.random.default_rng(1)
block = (rng.normal(0, 30, (int(rate), n_ch))).astype(np.float32)
chunk = 40
t0 = pylsl.local_clock() + 0.2
n = 0
while True:
    due = t0 + (n + chunk) / rate
    wait = due - pylsl.local_clock()
    if wait > 0:
        time.sleep(wait)
    idx = n + np.arange(chunk)
    values = block[idx % block.shape[0]]
    values[:, 0] = idx  # the sample number (exact in float32 up to 2**24)
    outlet.push_chunk(values, (t0 + idx / rate).tolist())
    n += chunk
"""


def _cpu_s() -> float:
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system


def _start_outlet(name: str, n_ch: int, rate: float, env: dict):
    proc = subprocess.Popen(
        [sys.executable, "-c", OUTLET, name, str(n_ch), str(rate)],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "ready"
    return proc


def bench_recorder(name: str, seconds: float, tmp: pathlib.Path) -> dict:
    import pylsl

    from acquire.recorder import Recorder
    from acquire.session_file import open_session

    path = tmp / "lsl.h5"
    rec = Recorder(f"lsl://{name}", path, duration_s=seconds + 2.0)
    rec.open()
    rate = rec.emg_rate_hz
    deadline = time.monotonic() + 2.0  # settle, then measure
    while time.monotonic() < deadline and rec.step(0.05):
        pass
    cpu0, wall0 = _cpu_s(), time.monotonic()
    delays, waits = [], []
    flushes = rec.writer.n_flushes
    before = rec.writer._written["emg"]
    while rec.step(0.05):
        if rec.writer.n_flushes != flushes:
            flushes = rec.writer.n_flushes
            now = pylsl.local_clock()
            written = rec.writer._written["emg"]  # rows on disk after this flush
            t_row0 = rec._origin_time["emg"] / 1e6
            delays.append(now - (t_row0 + (written - 1) / rate))  # the newest sample
            waits.append(now - (t_row0 + before / rate))  # the oldest sample of this flush
            before = written
    cpu1, wall1 = _cpu_s(), time.monotonic()
    rec.close()
    with open_session(path) as s:
        n = s.emg.n_samples
        gaps = sum(g["n_samples"] for g in s.gaps if g["stream"] == "emg")
        first = s.emg_uv[0, 0]
        exact = bool(np.array_equal(s.emg_uv[:, 0], first + np.arange(n)))
    capture = path.with_suffix(".capture")
    d = np.array(delays)
    return {
        "cpu_pct": 100.0 * (cpu1 - cpu0) / (wall1 - wall0),
        "seconds": wall1 - wall0,
        "samples": n,
        "gap_samples": gaps,
        "numbers_exact": exact,
        "delay_median_s": float(np.median(d)) if d.size else float("nan"),
        "delay_p95_s": float(np.percentile(d, 95)) if d.size else float("nan"),
        "delay_max_s": float(d.max()) if d.size else float("nan"),
        "oldest_median_s": float(np.median(waits)) if waits else float("nan"),
        "oldest_max_s": float(np.max(waits)) if waits else float("nan"),
        "file_mb_per_h": path.stat().st_size / (n / rate) * 3600 / 1e6,
        "journal_mb_per_h": capture.stat().st_size / (n / rate) * 3600 / 1e6,
    }


def bench_bare(name: str, seconds: float, tmp: pathlib.Path) -> dict:
    import pylsl

    (info,) = pylsl.resolve_bypred(f"name='{name}'", 1, 10.0)
    inlet = pylsl.StreamInlet(info, max_buflen=30, recover=False, processing_flags=0)
    inlet.open_stream(timeout=10.0)
    n = 0
    with open(tmp / "raw.bin", "wb") as raw:
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            inlet.pull_chunk(timeout=0.05, max_samples=8192, as_numpy=True)
        cpu0, wall0 = _cpu_s(), time.monotonic()
        while time.monotonic() - wall0 < seconds:
            values, stamps = inlet.pull_chunk(timeout=0.05, max_samples=8192, as_numpy=True)
            if len(stamps):
                raw.write(values.tobytes())
                raw.write(np.asarray(stamps).tobytes())
                n += len(stamps)
        cpu1, wall1 = _cpu_s(), time.monotonic()
    inlet.close_stream()
    return {"cpu_pct": 100.0 * (cpu1 - cpu0) / (wall1 - wall0), "samples": n}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_lsl")
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement span")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--rate", type=float, default=4000.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        if "LSLAPICFG" not in os.environ:  # before the first LSL call of this process
            from acquire.lsl import write_loopback_config

            os.environ["LSLAPICFG"] = str(write_loopback_config(tmp / "lsl.cfg", "bench-lsl"))
        name = f"bench-{os.getpid()}"
        outlet = _start_outlet(name, args.channels, args.rate, dict(os.environ))
        try:
            r = bench_recorder(name, args.seconds, tmp)
            b = bench_bare(name, args.seconds, tmp)
        finally:
            outlet.kill()
            outlet.wait(10)
    print(
        f"LSL inlet, {args.channels} x {args.rate:g} Hz float32, {r['seconds']:.0f} s: "
        f"tonuslab recorder {r['cpu_pct']:.1f}% of one core (bare pylsl pull_chunk to file "
        f"{b['cpu_pct']:.1f}%); {r['gap_samples']} samples lost, sample numbers "
        f"{'exact' if r['numbers_exact'] else 'WRONG'}; push to flushed file "
        f"{r['delay_median_s'] * 1e3:.0f} ms median, {r['delay_p95_s'] * 1e3:.0f} ms p95, "
        f"{r['delay_max_s'] * 1e3:.0f} ms max for the newest sample of a flush, "
        f"{r['oldest_median_s'] * 1e3:.0f} ms median / {r['oldest_max_s'] * 1e3:.0f} ms max for "
        f"its oldest; session file {r['file_mb_per_h']:.0f} MB/h, "
        f"journal {r['journal_mb_per_h']:.0f} MB/h"
    )
    if r["cpu_pct"] >= 20.0 or r["gap_samples"] or not r["numbers_exact"]:
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
