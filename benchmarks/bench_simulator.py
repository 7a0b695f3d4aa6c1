"""Simulator speed: 10 minutes of 8 EMG channels at 4 kHz plus goniometer (target < 2 s).

Measured in the same run:

- ``batch``: ``simulate_stretch_session`` (moderate_elbow, TSRT program filling 10 min);
- ``stream``: ``PatientSource`` in 20 ms blocks (what the emulated device does), as a
  real-time factor;
- ``yardstick``: the bare minimum any such simulator pays with NumPy/SciPy: two Gaussian
  draws per sample (EMG carrier and amplifier noise) and a 3-section ``scipy.signal.sosfilt``
  band-pass of the carrier, for the same number of samples.

The target (issue 3: under 2 s) is judged on the batch's median **CPU time** of this process by
default (``--criterion cpu``): on the shared 2-core machine the wall time mostly measures the
other jobs (the yardstick slows down by the same factor). ``--criterion wall`` judges the wall
time instead. Both are printed, with the load average. Returns 1 if the target is missed.

Usage: ``python benchmarks/run.py simulator [--minutes M] [--repeats R] [--criterion cpu|wall]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from scipy.signal import butter, sosfilt

EMG_RATE_HZ = 4000.0
ANGLE_RATE_HZ = 500.0
N_EMG = 8


def _timed(fn, repeats: int) -> tuple[float, float]:
    """(median wall s, median CPU s) over repeats."""
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def main(argv: list[str]) -> int:
    import virtual_patient as vp

    ap = argparse.ArgumentParser(prog="bench_simulator")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--stream-seconds", type=float, default=60.0)
    ap.add_argument(
        "--criterion",
        choices=("cpu", "wall"),
        default="cpu",
        help="judge the < 2 s target on the process CPU time (default) or the wall time",
    )
    ap.add_argument("--target-s", type=float, default=2.0, help="target for 10 minutes (s)")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()[0]
    duration = 60.0 * args.minutes
    profile = vp.get_profile("moderate_elbow")
    n_levels = max(1, int(np.ceil(args.minutes * 60 / 330 * 4)))
    program = [
        s for s in vp.tsrt_protocol(profile, n_per_level=n_levels) if s.start_s < duration - 20
    ]
    n = int(duration * EMG_RATE_HZ)

    def batch():
        rec = vp.simulate_stretch_session(
            profile,
            seed=1,
            emg_rate_hz=EMG_RATE_HZ,
            angle_rate_hz=ANGLE_RATE_HZ,
            n_emg=N_EMG,
            stretches=program,
            duration_s=duration,
        )
        assert rec.emg_counts.shape == (n, N_EMG)

    sos = np.vstack(
        [
            butter(2, [20, 450], "bandpass", fs=EMG_RATE_HZ, output="sos"),
            butter(2, 120, fs=EMG_RATE_HZ, output="sos"),
        ]
    )

    def yardstick():
        rng = np.random.default_rng(1)
        block = int(EMG_RATE_HZ)
        zi = np.zeros((sos.shape[0], N_EMG, 2))
        for _ in range(0, n, block):
            white = rng.standard_normal((2 * N_EMG, block))
            _, zi = sosfilt(sos, white[:N_EMG], axis=-1, zi=zi)

    stream_s = args.stream_seconds

    def stream():
        src = vp.PatientSource(profile, seed=1, program=program)
        src.configure(EMG_RATE_HZ, N_EMG, ANGLE_RATE_HZ, 1, 16)
        n_blocks = int(stream_s / 0.02)
        e, a = int(0.02 * EMG_RATE_HZ), int(0.02 * ANGLE_RATE_HZ)
        for _ in range(n_blocks):
            src.emg_block(e)
            src.angle_block(a)

    batch()  # warm-up (imports, page cache)
    wall_b, cpu_b = _timed(batch, args.repeats)
    wall_y, cpu_y = _timed(yardstick, args.repeats)
    wall_s, cpu_s = _timed(stream, max(1, args.repeats // 2))
    msamp = n * N_EMG / 1e6
    # the target is for 10 minutes; scale it for other lengths
    target = args.target_s * args.minutes / 10.0
    judged = cpu_b if args.criterion == "cpu" else wall_b
    other_name, other = ("wall", wall_b) if args.criterion == "cpu" else ("CPU", cpu_b)
    ok = judged < target
    verdict = "PASS" if ok else "FAIL"
    load_after = os.getloadavg()[0]
    lines = [
        f"{args.minutes:g} min, {N_EMG} EMG ch at {EMG_RATE_HZ:g} Hz + goniometer at "
        f"{ANGLE_RATE_HZ:g} Hz ({msamp:.1f} M EMG samples), median of {args.repeats}; "
        f"load average {load_before:.1f} before, {load_after:.1f} after",
        f"  virtual_patient batch      wall {wall_b:6.2f} s  cpu {cpu_b:6.2f} s  "
        f"{msamp / cpu_b:6.1f} Msamples/s of CPU",
        f"  yardstick numpy+sosfilt    wall {wall_y:6.2f} s  cpu {cpu_y:6.2f} s  "
        f"{msamp / cpu_y:6.1f} Msamples/s of CPU",
        f"  PatientSource 20 ms blocks {stream_s:g} s of signal in wall {wall_s:.2f} s "
        f"(cpu {cpu_s:.2f} s): real-time factor {stream_s / wall_s:.0f}x "
        f"(CPU: {stream_s / cpu_s:.0f}x)",
        f"  criterion: the batch's {args.criterion} time {judged:.2f} s < {target:g} s "
        f"({other_name} time {other:.2f} s for information): {verdict}",
    ]
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
