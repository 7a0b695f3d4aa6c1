"""The browser view's cost: ``python benchmarks/run.py view [--seconds S] [--skip-open]``.

1. Recorder CPU: the same real-time recording from the emulated device (16 EMG channels at 4 kHz,
   goniometer at 500 Hz) run twice in one go, alone (``--plain``) and with ``--view`` while a
   headless Chromium shows the page; CPU time (user + system) of the recorder process from
   ``os.wait4``. The peer is the recorder alone.
2. Bytes sent to the page per second (the server's own count, printed by ``record --view``).
3. Page frame rate in Chromium during that run: ``requestAnimationFrame`` callbacks counted by the
   page (``window.tonusView.frames``) over the middle of the recording.
4. ``tonuslab view`` on a 1 h, 16-channel, 4 kHz file written with ``SessionWriter`` (cached in
   ``benchmarks/.cache``): from starting the process to the first window drawn in Chromium; then
   the whole-file overview window, timed in the page.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
CACHE = pathlib.Path(__file__).resolve().parent / ".cache"


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1400,1200"):  # fmt: skip
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def _record(seconds: float, view: bool, driver=None) -> dict:
    out = pathlib.Path(tempfile.mkdtemp()) / "bench.h5"
    cmd = [sys.executable, "-m", "tonuslab", "record", "sim://simple?seed=1&speed=realtime",
           "-o", str(out), "--n-emg", "16", "--emg-rate", "4000", "--angle-rate", "500",
           "--duration", str(seconds), "--plain", "--no-capture"]  # fmt: skip
    if view:
        cmd.append("--view")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    result: dict = {}
    lines = []
    if view:
        for line in proc.stdout:
            lines.append(line)
            m = re.search(r"live view: (\S+)", line)
            if m:
                driver.get(m.group(1))
                break
        deadline = time.monotonic() + 30
        while not driver.execute_script("return window.tonusView && window.tonusView.ready"):
            if time.monotonic() > deadline:
                raise RuntimeError("page not ready")
            time.sleep(0.1)
        time.sleep(min(3.0, seconds / 4))
        f0, w0 = driver.execute_script("return window.tonusView.frames"), time.monotonic()
        time.sleep(seconds / 2)
        f1, w1 = driver.execute_script("return window.tonusView.frames"), time.monotonic()
        result["fps"] = (f1 - f0) / (w1 - w0)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    lines += proc.stdout.readlines()
    text = "".join(lines)
    result.update(cpu_s=usage.ru_utime + usage.ru_stime, wall_s=wall, status=status)
    m = re.search(r"live view: (\d+) requests, (\d+) kB sent", text)
    if m:
        result["requests"], result["kb"] = int(m.group(1)), int(m.group(2))
    m = re.search(r"saved .*?: ([\d.]+) s, state (\w+), (\d+) samples missing", text)
    result["session_s"], result["state"], result["missing"] = (
        float(m.group(1)),
        m.group(2),
        int(m.group(3)),
    )
    out.unlink(missing_ok=True)
    return result


def _hour_file() -> pathlib.Path:
    import numpy as np

    from acquire.session_file import SessionWriter

    path = CACHE / "view_1h_16ch_4khz.h5"
    if path.exists():
        return path
    CACHE.mkdir(exist_ok=True)
    rate, n_ch = 4000, 16
    chans = [{"name": f"emg{k}", "kind": "emg", "unit": "uV", "scale": 0.05, "offset": 0.0}
             for k in range(n_ch)]  # fmt: skip
    chans.append({"name": "gonio", "kind": "angle", "unit": "deg", "scale": 0.01, "offset": 0.0})
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 300, (rate * 10, n_ch)).astype(np.int32)  # 10 s of noise, reused
    tmp = path.with_suffix(".tmp.h5")
    with SessionWriter(tmp, channels=chans, emg_rate_hz=rate, angle_rate_hz=500.0,
                       metadata={"subject_id": "BENCH", "protocol": "free"},
                       overwrite=True) as w:  # fmt: skip
        t = np.arange(500) / 500
        for s in range(3600):
            block = np.roll(noise, s * 977, axis=0)[:rate]
            if s % 30 == 0:
                block = block.copy()
                block[: rate // 4] *= 8  # a burst every 30 s
            w.append("emg", block)
            angle = (60 + 40 * np.sin(2 * np.pi * (s + t) / 10)) / 0.01
            w.append("angle", angle.astype(np.int32)[:, None])
            if s % 60 == 0:
                w.add_event("marker", emg_sample_index=s * rate, time_s=float(s), label=f"m{s}")
    tmp.rename(path)
    return path


def _open_time(driver, path: pathlib.Path) -> dict:
    driver.get("about:blank")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tonuslab", "view", str(path), "--seconds", "120"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = re.search(r"review: (\S+)", proc.stdout.readline()).group(1)
        t_url = time.monotonic() - t0
        driver.get(url)
        while not driver.execute_script("return window.tonusView.windows >= 1"):
            time.sleep(0.01)
        t_open = time.monotonic() - t0
        first_ms = driver.execute_script("return window.tonusView.lastWindowMs")
        n = driver.execute_script("return window.tonusView.windows")
        driver.execute_script("document.getElementById('all').click()")
        while driver.execute_script(f"return window.tonusView.windows <= {n}"):
            time.sleep(0.01)
        all_ms = driver.execute_script("return window.tonusView.lastWindowMs")
        rng = driver.execute_script("return document.getElementById('range').textContent")
    finally:
        proc.terminate()
        proc.wait()
    return {"url_s": t_url, "open_s": t_open, "first_window_ms": first_ms,
            "overview_ms": all_ms, "range": rng}  # fmt: skip


def main(argv: list[str]) -> int:
    seconds = 20.0
    if "--seconds" in argv:
        seconds = float(argv[argv.index("--seconds") + 1])
    driver = _browser()
    try:
        alone = _record(seconds, view=False)
        viewed = _record(seconds, view=True, driver=driver)
        print(f"recording: 16 EMG ch at 4 kHz + angle 500 Hz, {seconds:g} s real time (sim://)")
        for name, r in (("recorder alone", alone), ("recorder + view", viewed)):
            print(f"  {name:16s} CPU {r['cpu_s']:6.2f} s = {100 * r['cpu_s'] / r['wall_s']:5.1f}% "
                  f"of one core over {r['wall_s']:.1f} s wall; state {r['state']}, "
                  f"{r['missing']} samples missing")  # fmt: skip
        extra = viewed["cpu_s"] / viewed["wall_s"] - alone["cpu_s"] / alone["wall_s"]
        print(f"  view adds {100 * extra:.1f}% of one core to the recorder process")
        kbit_s = viewed["kb"] * 8 / viewed["session_s"]
        print(
            f"  sent to the page: {viewed['kb']} kB in {viewed['requests']} requests = "
            f"{kbit_s:.0f} kbit/s ({kbit_s / 1000:.2f} Mbit/s)"
        )
        print(f"  page frame rate in headless Chromium: {viewed['fps']:.1f} frames/s")
        if "--skip-open" not in argv:
            t = time.monotonic()
            path = _hour_file()
            made = time.monotonic() - t
            size = path.stat().st_size / 1e6
            o = _open_time(driver, path)
            print(
                f"review: 1 h, 16 ch, 4 kHz file ({size:.0f} MB; written in {made:.0f} s "
                "if not cached)"
            )
            print(
                f"  tonuslab view: URL after {o['url_s']:.2f} s, first window (60 s) drawn "
                f"after {o['open_s']:.2f} s (window request {o['first_window_ms']:.0f} ms)"
            )
            print(f"  whole-file overview window: {o['overview_ms']:.0f} ms ({o['range'][:60]})")
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
