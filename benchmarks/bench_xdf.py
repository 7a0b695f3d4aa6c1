"""XDF import benchmark: ``tonuslab import FILE.xdf`` next to pyxdf on the same file.

``python benchmarks/run.py xdf [--minutes 60] [--channels 16] [--rate 2000]``

The file is written once into ``benchmarks/.cache/`` (XDF 1.0, one float32 EMG stream with a
timestamp on every sample, in chunks of 100 samples, a ClockOffset chunk every 5 s, as
LabRecorder writes them). Each reader runs in its own interpreter so its peak memory (maximum
resident set size, ``resource.getrusage``, minus what the interpreter held once the reader's
modules were loaded) is its own:

1. **tonuslab**: :func:`tonuslab.io_import.import_xdf` to a session file (scan, stamps, gaps,
   quantisation to 1 nV counts, HDF5 gzip-1 + shuffle);
2. **pyxdf**: ``pyxdf.load_xdf(path, dejitter_timestamps=False)`` into NumPy (reading only, no
   file written): the yardstick.

Targets (issue 15): 1 h of 16 channels at 2 kHz in under 10 s, peak memory under 3x the data.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache"


def _chunk(tag: int, content: bytes) -> bytes:
    n = len(content) + 2
    return bytes([8]) + struct.pack("<Q", n) + struct.pack("<H", tag) + content


def write_file(path: pathlib.Path, minutes: float, n_ch: int, rate: float) -> int:
    """Write the benchmark file; returns the number of samples."""
    n = int(minutes * 60 * rate)
    chunk = 100
    rec = np.dtype([("tsb", "u1"), ("ts", "<f8"), ("v", "<f4", (n_ch,))])
    chans = "".join(
        f"<channel><label>emg{k}</label><unit>microvolts</unit><type>EMG</type></channel>"
        for k in range(n_ch)
    )
    head = (
        f'<?xml version="1.0"?><info><name>Bench</name><type>EMG</type><channel_count>{n_ch}'
        f"</channel_count><nominal_srate>{rate}</nominal_srate><channel_format>float32"
        f"</channel_format><desc><channels>{chans}</channels></desc></info>"
    )
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        f.write(b"XDF:")
        f.write(_chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>'))
        f.write(_chunk(2, struct.pack("<I", 1) + head.encode()))
        block = 200_000  # samples generated at a time
        for a in range(0, n, block):
            m = min(block, n - a)
            arr = np.empty(m, rec)
            arr["tsb"] = 8
            arr["ts"] = 100.0 + (a + np.arange(m)) / rate
            arr["v"] = rng.normal(0, 20, (m, n_ch)).astype(np.float32)
            raw = arr.tobytes()
            for c in range(0, m, chunk):
                k = min(chunk, m - c)
                body = struct.pack("<I", 1) + bytes([4]) + struct.pack("<I", k)
                f.write(_chunk(3, body + raw[c * rec.itemsize : (c + k) * rec.itemsize]))
            t = 100.0 + (a + m) / rate
            f.write(_chunk(4, struct.pack("<Idd", 1, t, 0.0)))
    return n


READER = """
import json, resource, sys, time
path, out, which = sys.argv[1], sys.argv[2], sys.argv[3]
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if which == "tonuslab":
    import warnings
    warnings.simplefilter("ignore")
    from tonuslab.io_import import import_xdf
else:
    import pyxdf
base = rss()  # interpreter, NumPy, h5py or pyxdf loaded: not the import's memory
t0 = time.perf_counter()
if which == "tonuslab":
    import_xdf(path, out, overwrite=True)
else:
    streams, _ = pyxdf.load_xdf(path, dejitter_timestamps=False)
    assert streams[0]["time_series"].shape[0] > 0
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "peak_rss_mb": rss() - base}))
"""


def _run(which: str, path: pathlib.Path, out: pathlib.Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", READER, str(path), str(out), which],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench xdf")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--rate", type=float, default=2000.0)
    args = ap.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"bench_{args.minutes:g}min_{args.channels}ch_{args.rate:g}hz.xdf"
    n = int(args.minutes * 60 * args.rate)
    if not path.exists():
        t = time.perf_counter()
        write_file(path, args.minutes, args.channels, args.rate)
        size_mb = path.stat().st_size / 1e6
        print(f"wrote {path.name} ({size_mb:.0f} MB) in {time.perf_counter() - t:.0f} s")
    data_mb = n * args.channels * 4 / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        ours = _run("tonuslab", path, pathlib.Path(tmp) / "s.h5")
        peer = _run("pyxdf", path, pathlib.Path(tmp) / "unused")
    print(f"== xdf import: {args.minutes:g} min x {args.channels} ch x {args.rate:g} Hz float32 "
          f"({data_mb:.0f} MB of samples, file {path.stat().st_size / 1e6:.0f} MB)")  # fmt: skip
    print("| reader | seconds | peak RSS above the loaded interpreter, MB | peak / data |")
    print("|---|---|---|---|")
    for name, r in (("tonuslab import (to HDF5)", ours), ("pyxdf.load_xdf (read only)", peer)):
        if "error" in r:
            print(f"| {name} | failed: {r['error']} | | |")
        else:
            print(f"| {name} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | "
                  f"{r['peak_rss_mb'] / data_mb:.2f}x |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
