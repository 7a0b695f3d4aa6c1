"""Screenshots of the browser view for the docs: ``python docs/img/make_view_screenshots.py``.

Records a stretch and an H-reflex session from the emulated device with ``--view`` and a review of
the H-reflex file, each captured in headless Chromium (1400 px wide) into ``docs/img/``.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "img"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def browser(height=1300):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", f"--window-size=1400,{height}", "--hide-scrollbars"):  # fmt: skip
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def start(cmd, pattern):
    proc = subprocess.Popen([sys.executable, "-m", "tonuslab", *cmd], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    for line in proc.stdout:
        m = re.search(pattern, line)
        if m:
            return proc, m.group(1)
    raise RuntimeError("no URL")


def main() -> None:
    tmp = pathlib.Path(tempfile.mkdtemp())
    drv = browser()
    try:
        proc, url = start(
            ["record", "sim://moderate_elbow?seed=3&speed=realtime", "-o", str(tmp / "s.h5"),
             "--protocol", "stretch", "--range-stretches", "1", "--range-velocity", "60",
             "--velocities", "120,240", "--repeats", "1", "--rest", "1.5", "--plain", "--view",
             "--n-emg", "4", "--subject", "DEMO1"],
            r"live view: (\S+)",
        )  # fmt: skip
        drv.get(url)
        time.sleep(14)
        drv.save_screenshot(str(OUT / "view_live_stretch.png"))
        proc.terminate()
        proc.wait()
        key = tmp / "stim.key"
        from firmware_iface.auth import new_key, write_key_file

        write_key_file(key, new_key())
        proc, url = start(
            ["record", "sim://soleus_healthy?seed=1&speed=realtime", "-o", str(tmp / "h.h5"),
             "--protocol", "hreflex", "--key-file", str(key), "--time-scale", "0.1",
             "--emg-rate", "5000", "--n-emg", "2", "--duration", "25", "--plain", "--view",
             "--muscle", "soleus"],
            r"live view: (\S+)",
        )  # fmt: skip
        drv.get(url)
        time.sleep(20)
        drv.save_screenshot(str(OUT / "view_live_hreflex.png"))
        proc.wait()
        subprocess.run([sys.executable, "-m", "tonuslab", "analyze", str(tmp / "h.h5")],
                       cwd=ROOT, env=ENV, capture_output=True, check=False)  # fmt: skip
        proc, url = start(["view", str(tmp / "s.h5"), "--seconds", "60"], r"review: (\S+)")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tonuslab",
                "analyze",
                str(tmp / "s.h5"),
                "--passive-range",
                "0",
                "140",
            ],
            cwd=ROOT,
            env=ENV,
            capture_output=True,
        )
        proc.terminate()
        proc.wait()
        proc, url = start(["view", str(tmp / "s.h5"), "--seconds", "60"], r"review: (\S+)")
        drv.get(url)
        time.sleep(3)
        drv.save_screenshot(str(OUT / "view_review.png"))
        proc.terminate()
        proc.wait()
    finally:
        drv.quit()


if __name__ == "__main__":
    main()
