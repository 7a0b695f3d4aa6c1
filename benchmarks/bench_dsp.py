"""DSP core benchmark: conditioning chain vs scipy, streaming latency, memory, import/compile.

Run: ``python benchmarks/run.py dsp [--hours H] [--repeats R] [--skip-memory] [--skip-compile]``
(``--hours 0.1`` for a quick run; the issue's figure is ``--hours 1``).

Measured in the same run, on the same data (16 channels x 2 kHz, float64, Gaussian noise plus
mains hum):

* the chain: 4th-order 20-450 Hz Butterworth band-pass zero-phase, 50 Hz notch zero-phase,
  rectification, 50 ms centred moving RMS -- ``dsp.chain.condition_emg`` against
  ``scipy.signal.sosfiltfilt`` x2 + ``numpy.abs`` + ``scipy.ndimage.uniform_filter1d``;
* streaming: 20 ms blocks (40 x 16) through ``dsp.chain.StreamingConditioner`` (causal filter,
  rectification, trailing RMS) against the same steps with ``scipy.signal.sosfilt``;
* peak memory of each chain (a child process per chain: peak RSS minus the RSS before the input
  was allocated, divided by the input's size; so 2.0 means input + output);
* import of ``dsp`` plus the first call of the chain with a warm Numba cache (median of 3 child
  processes), and the cold compile time with an empty cache (one child process);
* the largest difference between the two chains' outputs relative to the largest scipy value,
  over the whole recording and separately in its first and last 2 s (edges) and in between.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
RATE_HZ = 2000.0
N_CHANNELS = 16
RMS_SIZE = 100  # 50 ms at 2 kHz


def make_input(hours: float, seed: int = 0) -> np.ndarray:
    """EMG-like test signal, filled in chunks so that no temporary of its size exists."""
    n = round(hours * 3600 * RATE_HZ)
    x = np.empty((n, N_CHANNELS))
    rng = np.random.default_rng(seed)
    step = 1 << 16
    for i in range(0, n, step):
        m = min(step, n - i)
        t = (i + np.arange(m)) / RATE_HZ
        x[i : i + m] = rng.normal(scale=20.0, size=(m, N_CHANNELS))
        x[i : i + m] += 15.0 * np.sin(2 * np.pi * 50.0 * t)[:, None]
    return x


def scipy_chain(x: np.ndarray) -> np.ndarray:
    """The same chain written with scipy (the yardstick)."""
    import scipy.ndimage
    import scipy.signal

    bp = scipy.signal.butter(4, [20, 450], btype="bandpass", fs=RATE_HZ, output="sos")
    b, a = scipy.signal.iirnotch(50.0, 30.0, fs=RATE_HZ)
    y = scipy.signal.sosfiltfilt(bp, x, axis=0)
    y = scipy.signal.sosfiltfilt(np.concatenate([b, a])[None, :], y, axis=0)
    y = np.abs(y)
    return np.sqrt(scipy.ndimage.uniform_filter1d(y * y, RMS_SIZE, axis=0))


def ours_chain(x: np.ndarray) -> np.ndarray:
    from dsp.chain import condition_emg

    return condition_emg(x, RATE_HZ, band_hz=(20.0, 450.0), order=4, line_hz=50.0)


def relative_differences(y: np.ndarray, ref: np.ndarray, edge_s: float = 2.0) -> dict:
    """Largest ``|y - ref|`` over ``max |ref|`` in the first and last ``edge_s`` seconds
    ("edges"), in between ("interior") and over everything ("all"); chunked, so no temporary
    of the signal's size is made."""
    n = y.shape[0]
    e = min(round(edge_s * RATE_HZ), n // 2)
    scale = 0.0
    worst = {"edges": 0.0, "interior": 0.0}
    step = 1 << 16
    for a in range(0, n, step):
        b = min(n, a + step)
        scale = max(scale, float(np.abs(ref[a:b]).max()))
        for lo, hi, part in (
            (a, min(b, e), "edges"),
            (max(a, n - e), b, "edges"),
            (max(a, e), min(b, n - e), "interior"),
        ):
            if hi > lo:
                d = float(np.abs(y[lo:hi] - ref[lo:hi]).max())
                worst[part] = max(worst[part], d)
    out = {k: v / scale for k, v in worst.items()}
    out["all"] = max(out.values())
    return out


def bench_chain(hours: float, repeats: int) -> dict:
    x = make_input(hours)
    ours_chain(x[:10_000])  # load or compile the kernels
    ours_t, scipy_t, ours_cpu, scipy_cpu = [], [], [], []
    y = ref = None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        y = ours_chain(x)
        ours_t.append(time.perf_counter() - t)
        ours_cpu.append(time.process_time() - c)
        del y
        t, c = time.perf_counter(), time.process_time()
        ref = scipy_chain(x)
        scipy_t.append(time.perf_counter() - t)
        scipy_cpu.append(time.process_time() - c)
        if _ < repeats - 1:
            del ref
    y = ours_chain(x)
    diff = relative_differences(y, ref)
    ours, peer = statistics.median(ours_t), statistics.median(scipy_t)
    return {
        "samples": int(x.size),
        "ours_s": ours,
        "scipy_s": peer,
        "ours_msamples_s": x.size / ours / 1e6,
        "scipy_msamples_s": x.size / peer / 1e6,
        "speedup": peer / ours,
        "max_rel_diff_interior": diff["interior"],
        "max_rel_diff_edges": diff["edges"],
        "max_rel_diff_all": diff["all"],
        "ours_cpu_s": statistics.median(ours_cpu),
        "scipy_cpu_s": statistics.median(scipy_cpu),
        "ours_all_s": ours_t,
        "scipy_all_s": scipy_t,
    }


def bench_streaming(n_blocks: int = 20_000, block: int = 40) -> dict:
    import scipy.signal

    from dsp.chain import StreamingConditioner

    rng = np.random.default_rng(1)
    data = rng.normal(scale=20.0, size=(n_blocks * block // 10, N_CHANNELS))
    blocks = [
        np.ascontiguousarray(data[(i * block) % (data.shape[0] - block) :][:block])
        for i in range(200)
    ]
    cond = StreamingConditioner(RATE_HZ, N_CHANNELS)
    out = np.empty((block, N_CHANNELS))

    # scipy yardstick: same steps, state carried by hand
    bp = scipy.signal.butter(4, [20, 450], btype="bandpass", fs=RATE_HZ, output="sos")
    b, a = scipy.signal.iirnotch(50.0, 30.0, fs=RATE_HZ)
    sos = np.vstack([bp, np.concatenate([b, a])[None, :]])
    zi = np.zeros((sos.shape[0], 2, N_CHANNELS))
    tail = np.zeros((RMS_SIZE - 1, N_CHANNELS))

    def scipy_step(blk):
        nonlocal zi, tail
        y, zi = scipy.signal.sosfilt(sos, blk, axis=0, zi=zi)
        sq = np.abs(y) ** 2
        buf = np.concatenate([tail, sq])
        cs = np.cumsum(buf, axis=0)
        cs = np.concatenate([np.zeros((1, N_CHANNELS)), cs])
        rms = np.sqrt((cs[RMS_SIZE:] - cs[:-RMS_SIZE]) / RMS_SIZE)
        tail = buf[-(RMS_SIZE - 1) :]
        return rms

    def timed(step, n):
        times = np.empty(n)
        for i in range(n):
            blk = blocks[i % len(blocks)]
            t = time.perf_counter_ns()
            step(blk)
            times[i] = time.perf_counter_ns() - t
        return times / 1000.0  # us

    for i in range(500):
        cond.process(blocks[i % len(blocks)], out=out)
        scipy_step(blocks[i % len(blocks)])
    gc.collect()
    gc.freeze()
    try:
        ours = timed(lambda blk: cond.process(blk, out=out), n_blocks)
        peer = timed(scipy_step, n_blocks // 4)
    finally:
        gc.unfreeze()

    def stats(t):
        return {
            "median_us": float(np.median(t)),
            "p99_us": float(np.percentile(t, 99)),
            "max_us": float(t.max()),
            "blocks": int(t.size),
        }

    return {"block": [block, N_CHANNELS], "ours": stats(ours), "scipy": stats(peer)}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> None:
    """Reset the kernel's high-water mark (VmHWM) so start-up peaks do not count."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_child(which: str, hours: float) -> dict:
    """Run in a child process: peak RSS of one chain relative to the input size."""
    ours_chain(make_input(0.001))  # kernels loaded before the baseline
    scipy_chain(make_input(0.001))
    gc.collect()
    base = _rss_bytes()
    _reset_peak_rss()
    x = make_input(hours)
    y = ours_chain(x) if which == "ours" else scipy_chain(x)
    peak = _peak_rss_bytes()
    del y
    return {
        "chain": which,
        "input_bytes": int(x.nbytes),
        "peak_over_baseline_bytes": peak - base,
        "ratio_to_input": (peak - base) / x.nbytes,
    }


def bench_memory(hours: float) -> dict:
    res = {}
    for which in ("ours", "scipy"):
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", which, "--hours", str(hours)],
            capture_output=True,
            text=True,
            check=True,
            env=_env(),
            cwd=ROOT,
        )
        res[which] = json.loads(out.stdout.strip().splitlines()[-1])
    return res


def _env(cache_dir: str | None = None) -> dict:
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = cache_dir or env.get("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


_STARTUP = r"""
import time, json
t0 = time.perf_counter()
import numpy as np
t1 = time.perf_counter()
x = np.random.default_rng(0).normal(size=(20000, 16))
t2, c2 = time.perf_counter(), time.process_time()
import dsp
from dsp.chain import condition_emg
t3 = time.perf_counter()
condition_emg(x, 2000.0)
t4, c4 = time.perf_counter(), time.process_time()
print(json.dumps({"numpy_import_s": t1 - t0, "dsp_import_s": t3 - t2,
                  "first_call_s": t4 - t3, "dsp_import_plus_first_call_s": t4 - t2,
                  "dsp_import_plus_first_call_cpu_s": c4 - c2}))
"""


def bench_startup(skip_compile: bool) -> dict:
    def child(cache_dir=None):
        out = subprocess.run(
            [sys.executable, "-c", _STARTUP],
            capture_output=True,
            text=True,
            check=True,
            env=_env(cache_dir),
            cwd=ROOT,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    child()  # make sure the cache is warm
    warm = sorted((child() for _ in range(3)), key=lambda d: d["dsp_import_plus_first_call_s"])
    res = {
        "warm": warm[len(warm) // 2],  # the median run of 3, like every other figure
        "warm_all_s": [d["dsp_import_plus_first_call_s"] for d in warm],
    }
    if not skip_compile:
        with tempfile.TemporaryDirectory() as tmp:
            res["cold"] = child(tmp)
    return res


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/run.py dsp", description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=1.0, help="recording length (default 1.0)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each chain (median)")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-compile", action="store_true", help="no cold-cache compile run")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--memory-child", choices=["ours", "scipy"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.hours)))
        return 0

    import numba

    res = {
        "hours": args.hours,
        "threads": numba.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(),
    }
    res["startup"] = bench_startup(args.skip_compile)
    res["chain"] = bench_chain(args.hours, args.repeats)
    res["streaming"] = bench_streaming()
    if not args.skip_memory:
        res["memory"] = bench_memory(args.hours)
    res["load_avg_at_end"] = os.getloadavg()
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(format_report(res))
    return 0


def format_report(r: dict) -> str:
    c, s, st = r["chain"], r["streaming"], r["startup"]
    lines = [
        f"DSP core, {N_CHANNELS} ch x {RATE_HZ:g} Hz x {r['hours']:g} h float64 "
        f"({c['samples'] / 1e6:.1f} Msamples), {r['threads']} Numba threads, "
        f"load avg {r['load_avg_at_start'][0]:.1f} -> {r['load_avg_at_end'][0]:.1f}",
        "",
        "| measure | tonuslab | scipy | ratio |",
        "|---|---|---|---|",
        f"| chain time (median of {len(c['ours_all_s'])}) | {c['ours_s']:.2f} s | "
        f"{c['scipy_s']:.2f} s | {c['speedup']:.1f}x faster |",
        f"| chain CPU time (all threads) | {c['ours_cpu_s']:.2f} s | {c['scipy_cpu_s']:.2f} s | "
        f"{c['scipy_cpu_s'] / c['ours_cpu_s']:.1f}x less |",
        f"| chain throughput | {c['ours_msamples_s']:.0f} Msamples/s | "
        f"{c['scipy_msamples_s']:.0f} Msamples/s | |",
        f"| streaming 40x16 block, median | {s['ours']['median_us']:.1f} us | "
        f"{s['scipy']['median_us']:.1f} us | "
        f"{s['scipy']['median_us'] / s['ours']['median_us']:.1f}x |",
        f"| streaming 40x16 block, p99 | {s['ours']['p99_us']:.1f} us | "
        f"{s['scipy']['p99_us']:.1f} us | {s['scipy']['p99_us'] / s['ours']['p99_us']:.1f}x |",
        f"| streaming max ({s['ours']['blocks']} blocks) | {s['ours']['max_us']:.0f} us | "
        f"{s['scipy']['max_us']:.0f} us | |",
    ]
    if "memory" in r:
        m = r["memory"]
        lines.append(
            f"| peak memory / input size | {m['ours']['ratio_to_input']:.2f}x | "
            f"{m['scipy']['ratio_to_input']:.2f}x | |"
        )
    lines += [
        f"| import dsp + first chain call, warm cache (median of {len(st['warm_all_s'])}) | "
        f"{st['warm']['dsp_import_plus_first_call_s']:.2f} s "
        f"({st['warm']['dsp_import_plus_first_call_cpu_s']:.2f} s CPU) | | |",
    ]
    if "cold" in st:
        lines.append(
            "| same, cold cache (compile) | "
            f"{st['cold']['dsp_import_plus_first_call_s']:.1f} s | | |"
        )
    lines.append("")
    lines.append(
        f"max relative difference to scipy: {c['max_rel_diff_all']:.1e} overall; "
        f"{c['max_rel_diff_edges']:.1e} in the first and last 2 s, "
        f"{c['max_rel_diff_interior']:.1e} in between (relative to max |scipy|)"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
