"""H-reflex analysis speed: a full recruitment + depression session (``python benchmarks/run.py
hreflex [--repeats N] [--quick]``).

Session: ``soleus_healthy`` from the virtual patient with the validation program (61-step
ladder 10 s apart, rate blocks 0.1-2 Hz, 10 pairs at 2.5 and 5 s: 151 pulses, 23 min of EMG),
at 5 and 10 kHz. Measured: ``dsp.hreflex.analyze_hreflex`` without and with the bootstrap
intervals (200 resamples). Yardstick in the same run: a plain SciPy pipeline over the same
sweeps (zero-phase 10-1000 Hz band-pass of the whole record with ``sosfiltfilt``, fixed M/H
windows, peak-to-peak, ``curve_fit`` of a sigmoid), which has no artifact handling and no
intervals: the floor of what any analysis of this session costs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _scipy_yardstick(emg, rate, idx, inten):
    from scipy.optimize import curve_fit
    from scipy.signal import butter, sosfiltfilt

    sos = butter(2, [10.0, 1000.0], btype="bandpass", fs=rate, output="sos")
    y = sosfiltfilt(sos, emg)
    per_ms = rate / 1000.0
    m = np.array([np.ptp(y[i + round(4 * per_ms) : i + round(20 * per_ms)]) for i in idx])
    h = np.array([np.ptp(y[i + round(22 * per_ms) : i + round(50 * per_ms)]) for i in idx])

    def sig(x, a, b, c):
        return a / (1 + np.exp(-(x - b) / c))

    curve_fit(sig, inten, m, p0=[m.max(), np.median(inten), 2.0], maxfev=5000)
    return float(h.max() / m.max())


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_hreflex")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one rate, 3 repeats")
    args = parser.parse_args(argv)
    from dsp.hreflex import analyze_hreflex
    from tonuslab.validation import hreflex as V

    rates = (5000.0,) if args.quick else (5000.0, 10000.0)
    repeats = 3 if args.quick else args.repeats
    print("H-reflex analysis of one recruitment + depression session (soleus_healthy)")
    print("| EMG rate | pulses | samples | analyze_hreflex, no intervals | with 200-resample "
          "bootstrap | SciPy yardstick |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for rate in rates:
        rec = V.simulate("soleus_healthy", 0, rate)
        ev = rec.events
        emg = rec.emg_uv[:, 0]
        idx = np.array([e["emg_sample_index"] for e in ev])
        inten = np.array([e["intensity_ma"] for e in ev])
        pidx = np.array([e["pulse_index"] for e in ev])

        def ours(n_boot, emg=emg, rate=rate, idx=idx, inten=inten, pidx=pidx):
            return analyze_hreflex(emg, rate, idx, inten, pulse_index=pidx, n_boot=n_boot)

        ours(0)  # warm-up (imports, caches)
        t0, _ = _median_time(lambda: ours(0), repeats)
        t200, _ = _median_time(lambda: ours(200), max(1, repeats // 2))
        ty, _ = _median_time(lambda e=emg, r=rate, i=idx, n=inten: _scipy_yardstick(e, r, i, n),
                             repeats)  # fmt: skip
        print(f"| {rate / 1000:g} kHz | {len(ev)} | {emg.size / 1e6:.1f} M | {t0 * 1000:.0f} ms | "
              f"{t200 * 1000:.0f} ms | {ty * 1000:.0f} ms |")  # fmt: skip
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
