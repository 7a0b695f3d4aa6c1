"""Soak: record from the emulated device over a real pty at maximum speed with byte corruption.

``python benchmarks/run.py soak [--hours 1.0] [--corruption 1e-4] [--emg-rate 4000]
[--channels 16]``

The device streams through a pseudo-terminal; a :class:`acquire.faults.FaultyLink` drops, flips,
duplicates and inserts bytes at ``--corruption`` per byte (a quarter each) on the way to the real
:class:`acquire.recorder.Recorder`, which writes an HDF5 session. Checks, printed and enforced
(exit code 1 on failure):

- no intact frame lost: frames the host decoded >= frames of the device's stream that no fault
  touched (constant-memory books kept by the fault link);
- every missing sample is accounted for: fill values in the file == samples in its gap records;
- resident memory flat: growth over the second half of the run under 8 MiB (the first half
  holds the warm-up: HDF5 chunk cache, allocator arenas); RSS at each quarter is printed.

Peer yardstick: the same pty stream decoded by a bare ``StreamDecoder`` loop is not a peer in
the sense of the DSP benchmarks; the soak's figure of merit is the device-time / wall-time factor
and the memory slope, recorded in ``docs/reliability.md``.
"""

from __future__ import annotations

import argparse
import contextlib
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
        "emg_rows": emg_rows,
        "emg_fill_rows": fill_rows,
        "emg_gap_rows": gap_rows,
        "rss_mib_at_0_25_50_75_100pct": [round(rss_at(f), 1) for f in (0, 0.25, 0.5, 0.75, 1)],
        "rss_growth_second_half_mib": round(growth_mib, 1),
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
    if result["rss_growth_second_half_mib"] > 8:
        problems.append(
            f"memory grew {result['rss_growth_second_half_mib']} MiB in the second half"
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
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = soak(
            args.hours, args.corruption, args.emg_rate, args.channels, pathlib.Path(tmp),
            separate_process=not args.device_thread,
        )  # fmt: skip
    for key, value in result.items():
        print(f"{key:32s} {value}")
    problems = check(result)
    for problem in problems:
        print(f"FAIL: {problem}")
    print("soak: " + ("FAILED" if problems else "passed"))
    return 1 if problems else 0
