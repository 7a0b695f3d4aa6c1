"""Soak: record from the emulated device over a real pty at maximum speed with byte corruption.

``python benchmarks/run.py soak [--hours 1.0] [--corruption 1e-4] [--emg-rate 4000]
[--channels 16] [--skip-writer]``

The device streams through a pseudo-terminal; a :class:`acquire.faults.FaultyLink` drops, flips,
duplicates and inserts bytes at ``--corruption`` per byte (a quarter each) on the way to the real
:class:`acquire.recorder.Recorder`, which writes an HDF5 session. Checks, printed and enforced
(exit code 1 on failure):

- no intact frame lost: frames the host decoded >= frames of the device's stream that no fault
  touched (constant-memory books kept by the fault link);
- every missing sample is accounted for: fill values in the file == samples in its gap records;
- resident memory flat: growth over the second half of the run under 4 MiB (the first half
  holds the warm-up: HDF5 caches, allocator arenas); RSS at each quarter is printed;
- the session writer's memory flat over a *real-time* hour of flushes (7,200 flushes, with the
  gap records, events and clock rewrites of the run above, in a fresh process): growth over the
  second half under 2 MiB. At maximum speed the run above flushes its file a few hundred times
  an hour, a real recording 7,200 times (the writer flushes on the wall clock), and HDF5's
  per-flush costs only show there. ``--skip-writer`` leaves this part out.

Peer yardstick: the same pty stream decoded by a bare ``StreamDecoder`` loop is not a peer in
the sense of the DSP benchmarks; the soak's figure of merit is the device-time / wall-time factor
and the memory slope, recorded in ``docs/reliability.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import psutil

from acquire.faults import FaultPlan, FaultyLink
from acquire.links import open_link
from acquire.recorder import Recorder
from firmware_iface.emulator import PtyEmulator, make_device

FILL = np.iinfo(np.int32).min
#: Growth allowed over the second half of the pty soak (measured: about 1 MiB).
GROWTH_LIMIT_MIB = 4.0
#: Growth allowed over the second half of the writer's real-time hour of flushes (the heap's
#: own noise is about 1 MiB; HDF5's default caches grew about 6 MiB there).
WRITER_GROWTH_LIMIT_MIB = 2.0


@contextlib.contextmanager
def _device(separate_process: bool):
    """The emulated device on a pty: in its own process (as hardware is), or as a thread."""
    if not separate_process:
        with PtyEmulator(make_device(), speed="fast") as emulator:
            yield emulator.path
        return
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_iface.emulator", "--pty", "--speed", "fast"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(10)


def soak(
    hours: float, corruption: float, emg_rate_hz: int, n_emg: int, workdir: pathlib.Path,
    separate_process: bool = True,
):  # fmt: skip
    """Run the soak; returns a dict of figures (see module docstring).

    With ``separate_process`` (default) the emulated device runs in its own process, as a real
    device is outside the recorder, and the resident memory reported is the recorder's alone.
    """
    process = psutil.Process(os.getpid())
    faulty_holder = {}

    def opener(url):
        link = FaultyLink(open_link(url), FaultPlan(), keep_touched=False, count_frames=True)
        faulty_holder["link"] = link
        return link

    target_s = hours * 3600.0
    rss_samples = []
    with _device(separate_process) as device_path:
        recorder = Recorder(
            device_path, workdir / "soak.h5", capture=False, overwrite=True,
            config={"emg_rate_hz": emg_rate_hz, "n_emg": n_emg, "angle_rate_hz": 500,
                    "n_angle": 1},
            link_opener=opener, ping_interval_s=5.0,
        )  # fmt: skip
        recorder.open()
        faulty = faulty_holder["link"]
        faulty.plan = FaultPlan.byte_errors(corruption, seed=7)
        started = time.monotonic()
        last_sample = 0.0
        while recorder.stats.session_time_s < target_s:
            if not recorder.step(0.05):
                break
            now = time.monotonic()
            if now - last_sample >= 1.0:
                last_sample = now
                rss_samples.append((recorder.stats.session_time_s, process.memory_info().rss))
        wall_s = time.monotonic() - started
        faulty.plan = FaultPlan()  # let STOP and its ACK through
        session_s = recorder.stats.session_time_s
        n_flushes = recorder.writer.n_flushes
        recorder.close()  # stops the device and drains the link: both books are now complete
        decoded_frames = recorder.client.decoder.stats.frames
        decoder_errors = recorder.client.decoder.stats.errors
        pending = sum(len(data) for data, _ in faulty._pending)
    with h5py.File(workdir / "soak.h5", "r") as f:
        counts = f["streams/emg/counts"]
        fill_rows = 0
        for start in range(0, counts.shape[0], 1 << 18):
            block = counts[start : start + (1 << 18), 0]
            fill_rows += int(np.count_nonzero(block == FILL))
        gaps = f["gaps"][()] if "gaps" in f else np.zeros(0)
        gap_rows = int(
            sum(int(g["n_samples"]) for g in gaps if g["stream"] in (b"emg", "emg"))
        ) if len(gaps) else 0  # fmt: skip
        emg_rows = counts.shape[0]
        gap_records = int(sum(1 for g in gaps if g["stream"] in (b"emg", "emg")))
    rss = np.array(rss_samples, float) if rss_samples else np.zeros((0, 2))

    def rss_at(fraction: float) -> float:
        """Resident MiB at a fraction of the session (nearest sample)."""
        if not len(rss):
            return float("nan")
        k = int(np.argmin(np.abs(rss[:, 0] - fraction * session_s)))
        return float(rss[k, 1]) / 2**20

    second_half = rss[rss[:, 0] >= 0.5 * session_s] if len(rss) else rss
    growth_mib = (
        float((second_half[:, 1].max() - second_half[0, 1]) / 2**20)
        if len(second_half) > 1
        else 0.0
    )
    return {
        "hours": hours,
        "corruption_per_byte": corruption,
        "emg": f"{n_emg} ch x {emg_rate_hz} Hz",
        "device": "separate process" if separate_process else "thread in the recorder's process",
        "session_s": round(session_s, 1),
        "wall_s": round(wall_s, 1),
        "speed_factor": round(session_s / wall_s, 1),
        "bytes": faulty.stats.bytes_in,
        "faults_injected": faulty.stats.total,
        "frames_sent": faulty.stats.frames_sent,
        "frames_touched": faulty.stats.frames_touched,
        "frames_intact": faulty.stats.frames_intact,
        "frames_decoded": decoded_frames,
        "bytes_not_yet_read_by_host": pending,
        "decoder_errors": decoder_errors,
        "file_flushes": n_flushes,
        "emg_rows": emg_rows,
        "emg_fill_rows": fill_rows,
        "emg_gap_rows": gap_rows,
        "emg_gap_records": gap_records,
        "rss_mib_at_0_25_50_75_100pct": [round(rss_at(f), 1) for f in (0, 0.25, 0.5, 0.75, 1)],
        "rss_growth_second_half_mib": round(growth_mib, 1),
    }


def writer_soak(
    hours: float, gaps_per_hour: float, emg_rate_hz: int, n_emg: int, workdir: pathlib.Path,
    flush_interval_s: float = 0.5,
) -> dict:  # fmt: skip
    """The session writer's side of an hour at *real* time: one flush per ``flush_interval_s``.

    At maximum speed the pty soak compresses an hour of device time into minutes of wall time,
    so the file is flushed far less often than in a real recording (the writer flushes on the
    wall clock). HDF5's per-flush costs (chunk-index nodes in the metadata cache, the chunk
    cache) would hide there; this loop drives the real :class:`SessionWriter` through the flushes
    of a real-time hour, with gap records, events and clock rewrites at the pty soak's rates.
    """
    from acquire.session_file import ANCHOR_DTYPE, SessionWriter

    process = psutil.Process(os.getpid())
    channels = [
        {"name": f"emg{k}", "kind": "emg", "unit": "uV", "scale": 0.1, "offset": 0.0}
        for k in range(n_emg)
    ] + [{"name": "elbow", "kind": "angle", "unit": "deg", "scale": 0.01, "offset": 0.0}]
    n_flushes = round(hours * 3600.0 / flush_interval_s)
    rng = np.random.default_rng(3)
    emg_rows = int(emg_rate_hz * flush_interval_s)
    emg_block = rng.integers(-3000, 3000, size=(emg_rows, n_emg), dtype=np.int32)
    angle_block = rng.integers(0, 9000, size=(int(500 * flush_interval_s), 1), dtype=np.int32)
    gaps_per_flush = gaps_per_hour * flush_interval_s / 3600.0
    clock_every = max(1, round(10.0 / flush_interval_s))  # the recorder: every 10 s
    rss = []
    gap_debt = 0.0
    writer = SessionWriter(
        workdir / "writer_soak.h5", channels=channels, emg_rate_hz=emg_rate_hz,
        angle_rate_hz=500, overwrite=True, flush_interval_s=1.0,
    )  # fmt: skip
    started = time.monotonic()
    try:
        for k in range(n_flushes):
            gap_debt += gaps_per_flush
            while gap_debt >= 1.0:
                gap_debt -= 1.0
                writer.add_gap("emg", writer.n_samples("emg"), 7, "sequence", float(k))
            writer.append("emg", emg_block)
            writer.append("angle", angle_block)
            if k % 20 == 0:
                writer.add_event("marker", label=f"marker {k}", params={"flush": k})
            if k % clock_every == 0:
                n_anchors = max(1, int(k * flush_interval_s))
                anchors = np.zeros(n_anchors, dtype=ANCHOR_DTYPE)
                anchors["device_time_us"] = np.arange(n_anchors) * 1_000_000
                anchors["host_time_s"] = np.arange(n_anchors, dtype=float)
                writer.set_clock({"offset_s": 0.0, "drift_ppm": 0.0}, anchors=anchors)
            writer.flush()
            if k % max(1, n_flushes // 100) == 0:
                rss.append((k, process.memory_info().rss))
        rss.append((n_flushes, process.memory_info().rss))
    finally:
        writer.close()
    wall_s = time.monotonic() - started
    mib = np.array([r for _, r in rss], float) / 2**20
    half = mib[len(mib) // 2 :]
    return {
        "writer_flushes": n_flushes,
        "writer_wall_s": round(wall_s, 1),
        "writer_gap_records": round(gaps_per_hour * hours),
        "writer_rss_mib_at_0_25_50_75_100pct": [
            round(float(mib[round(f * (len(mib) - 1))]), 1) for f in (0, 0.25, 0.5, 0.75, 1)
        ],
        "writer_rss_growth_second_half_mib": round(float(half.max() - half[0]), 1),
    }


def check(result: dict) -> list[str]:
    """Failed checks, as sentences (empty when the soak passed)."""
    problems = []
    if result["frames_decoded"] < result["frames_intact"]:
        problems.append(
            f"intact frames lost: {result['frames_intact']} intact, "
            f"{result['frames_decoded']} decoded"
        )
    if result["emg_fill_rows"] != result["emg_gap_rows"]:
        problems.append(
            f"{result['emg_fill_rows']} missing EMG rows but gap records for "
            f"{result['emg_gap_rows']}"
        )
    if result["rss_growth_second_half_mib"] > GROWTH_LIMIT_MIB:
        problems.append(
            f"memory grew {result['rss_growth_second_half_mib']} MiB in the second half"
        )
    growth = result.get("writer_rss_growth_second_half_mib", 0.0)
    if growth > WRITER_GROWTH_LIMIT_MIB:
        problems.append(
            f"session writer memory grew {growth} MiB over the second half of a real-time hour "
            f"of flushes (limit {WRITER_GROWTH_LIMIT_MIB} MiB)"
        )
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_soak", description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--corruption", type=float, default=1e-4)
    parser.add_argument("--emg-rate", type=int, default=4000)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument(
        "--device-thread", action="store_true",
        help="run the emulated device as a thread in the recorder's process (RSS then includes it)",
    )  # fmt: skip
    parser.add_argument(
        "--skip-writer", action="store_true",
        help="skip the session writer's real-time hour of flushes (about a minute)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = soak(
            args.hours, args.corruption, args.emg_rate, args.channels, pathlib.Path(tmp),
            separate_process=not args.device_thread,
        )  # fmt: skip
        if not args.skip_writer:
            # The pty soak's gap rate, scaled to an hour, drives the writer's gap records.
            gaps_per_hour = result["emg_gap_records"] / max(args.hours, 1e-9)
            # In a fresh process, so the pty soak's heap neither hides nor adds growth.
            out = subprocess.run(
                [sys.executable, __file__, "--writer-only", str(gaps_per_hour),
                 str(args.emg_rate), str(args.channels), tmp],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            result.update(json.loads(out.strip().splitlines()[-1]))
    for key, value in result.items():
        print(f"{key:32s} {value}")
    problems = check(result)
    for problem in problems:
        print(f"FAIL: {problem}")
    print("soak: " + ("FAILED" if problems else "passed"))
    return 1 if problems else 0


if __name__ == "__main__" and sys.argv[1:2] == ["--writer-only"]:
    # python bench_soak.py --writer-only GAPS_PER_HOUR EMG_RATE CHANNELS WORKDIR (used by main)
    _gaps, _rate, _channels, _dir = sys.argv[2:6]
    print(
        json.dumps(writer_soak(1.0, float(_gaps), int(_rate), int(_channels), pathlib.Path(_dir)))
    )
