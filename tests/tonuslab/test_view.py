"""The browser view: ``record --view`` (live) and ``tonuslab view`` (review).

Real parts only: the recorder runs as a subprocess on the emulated device, the page runs in
headless Chromium through selenium, other clients are raw sockets on 127.0.0.1. Without selenium
or Chromium the browser tests skip, except under CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import http.client
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from acquire.session_file import open_session, write_session
from tonuslab.view.decimate import column_envelope, column_minmax, to_json_rows
from tonuslab.view.live import LiveModel
from tonuslab.view.review import ReviewModel
from tonuslab.view.server import ViewServer

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


# ----------------------------------------------------------------------------- helpers
def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _no_browser(reason: str):
    if _in_ci():
        pytest.fail(f"{reason}: the browser check must run in CI (.ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _no_browser("selenium is not installed")
    if not (pathlib.Path(CHROMIUM).exists() and pathlib.Path(CHROMEDRIVER).exists()):
        _no_browser(f"headless chromium not installed ({CHROMIUM}, {CHROMEDRIVER})")
    profile = tempfile.mkdtemp(prefix="tl-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,1000",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _start_record(tmp_path, *args, name="live.h5"):
    out = tmp_path / name
    proc = subprocess.Popen(
        [sys.executable, "-m", "tonuslab", "record", *map(str, args), "-o", str(out), "--plain",
         "--view"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"live view: (http://127\.0\.0\.1:\d+/\?token=[\w-]+)", line)
        if m:
            return proc, out, m.group(1)
    proc.kill()
    raise AssertionError("no live view URL printed: " + "".join(lines) + proc.stderr.read())


def _wait(driver, script, timeout=30.0, poll=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for: {script}")


def _split(url):
    m = re.match(r"http://([\d.]+):(\d+)/\?token=(.+)", url)
    return m.group(1), int(m.group(2)), m.group(3)


def _get(host, port, path, method="GET", headers=None):
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request(method, path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body


def _review_file(tmp_path, seconds=40.0, n_emg=3, rate=2000.0):
    rng = np.random.default_rng(4)
    n = int(seconds * rate)
    emg = rng.normal(0, 400, (n, n_emg)).astype(np.int32)  # 0.05 uV/count -> ~20 uV
    emg[int(10 * rate) : int(10.2 * rate), 0] += 20000  # a 1 mV burst at 10 s
    t = np.arange(int(seconds * 500)) / 500
    angle = (np.round((60 + 40 * np.sin(2 * np.pi * t / 8)) / 0.01)).astype(np.int32)[:, None]
    chans = [{"name": f"m{k}", "kind": "emg", "unit": "uV", "scale": 0.05, "offset": 0.0}
             for k in range(n_emg)]  # fmt: skip
    chans.append({"name": "gonio", "kind": "angle", "unit": "deg", "scale": 0.01, "offset": 0.0})
    stim_rows = [int(s * rate) for s in (5, 15, 25)]
    events = [{"kind": "stimulus", "emg_sample_index": i, "time_s": i / rate, "intensity_ma": 10.0,
               "width_us": 1000.0, "pulse_index": 0} for i in stim_rows]  # fmt: skip
    events.append({"kind": "marker", "time_s": 12.0, "emg_sample_index": int(12 * rate),
                   "label": "spasm"})  # fmt: skip
    gaps = []
    if seconds > 31:
        gaps = [{"stream": "emg", "start_index": int(30 * rate), "n_samples": int(0.5 * rate)}]
        emg[int(30 * rate) : int(30.5 * rate)] = np.iinfo(np.int32).min
    path = tmp_path / "review.h5"
    write_session(path, emg_counts=emg, emg_rate_hz=rate, channels=chans, angle_counts=angle,
                  angle_rate_hz=500.0, metadata={"subject_id": "R1", "protocol": "free"},
                  events=events, gaps=gaps)  # fmt: skip
    return path


# ----------------------------------------------------------------------------- decimation
def test_min_max_columns_keep_every_peak_and_leave_gaps_empty():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3))
    x[1234, 1] = 50.0  # one spike: it must survive decimation
    x[2000:2100, 2] = np.nan  # a gap
    lo, hi = column_minmax(x, 40)
    ref = x.reshape(100, 40, 3)
    finite = ~np.isnan(ref).all(axis=1)
    np.testing.assert_array_equal(hi[finite], np.where(np.isnan(ref), -np.inf, ref).max(1)[finite])
    np.testing.assert_array_equal(lo[finite], np.where(np.isnan(ref), np.inf, ref).min(1)[finite])
    assert hi[1234 // 40, 1] == 50.0
    assert np.isnan(hi[50:52, 2]).all() and np.isfinite(hi[52, 2])  # 2080-2099 half a column
    env = column_envelope(x, 40)
    col = x[:40, 0]
    assert env[0, 0] == pytest.approx(np.mean(np.abs(col - col.mean())))
    assert to_json_rows(np.array([[1.25, np.nan]]))[1] == [None]


def test_live_model_queues_without_blocking_and_drops_view_frames_not_samples():
    model = LiveModel(max_queue=10)  # never attached: no worker reads the queue
    t = time.perf_counter()
    for k in range(1000):
        model.on_block("emg", k * 40, np.zeros((40, 16)))
    per_call_us = (time.perf_counter() - t) / 1000 * 1e6
    assert model.dropped_blocks == 990 and len(model._queue) == 10
    assert per_call_us < 200  # the recorder's cost per block: an append


# ----------------------------------------------------------------------------- security
def test_token_on_every_request_and_nothing_but_the_page_and_the_session(tmp_path):
    model = ReviewModel(_review_file(tmp_path, seconds=5))
    server = ViewServer(model).start()
    try:
        host, port, token = _split(server.url)
        assert host == "127.0.0.1"
        assert len(token) >= 24 and token != ViewServer(model).token  # random per session
        q = f"token={token}"
        for path in ("/", "/static/view.js", "/api/info", "/api/window?t0=0&t1=1"):
            assert _get(host, port, path)[0] == 403, path  # no token
            assert _get(host, port, path + ("&" if "?" in path else "?") + "token=wrong")[0] == 403
        status, page = _get(host, port, f"/?{q}")
        assert status == 200 and b"<canvas" in page and token.encode() in page
        assert _get(host, port, "/static/view.js", headers={"X-Tonuslab-Token": token})[0] == 200
        secret = tmp_path / "secret.txt"
        secret.write_text("do not serve")
        for path in ("/../pyproject.toml", "/static/../server.py", "/static/%2e%2e/server.py",
                     "/static/..%2fserver.py", "/static/index.html", "/static//etc/passwd",
                     "/static/view.js/../../server.py", f"/{secret}", "/review.h5",
                     f"/static/{secret.name}", "/assets/view.js", "/etc/passwd"):  # fmt: skip
            status, body = _get(host, port, f"{path}?{q}")
            assert status == 404, (path, status)
            assert b"do not serve" not in body and b"import" not in body
        # actions are POSTs with the token; review has none
        assert _get(host, port, "/api/stop", method="POST")[0] == 403
        assert _get(host, port, f"/api/stop?{q}")[0] == 404
        assert _get(host, port, f"/api/window?t0=5&t1=1&{q}")[0] == 400
    finally:
        server.stop()
        model.close()


def test_view_host_warns_and_options_need_view(tmp_path):
    from tonuslab.view import lan_warning

    assert lan_warning("127.0.0.1") is None
    assert "network" in lan_warning("0.0.0.0")
    proc = subprocess.run(
        [sys.executable, "-m", "tonuslab", "record", "sim://simple", "-o", str(tmp_path / "x.h5"),
         "--view-host", "0.0.0.0"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "need --view" in proc.stderr
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- review windows
def test_review_windows_are_read_from_slices_and_wide_ones_sampled(tmp_path, monkeypatch):
    import tonuslab.view.review as review

    model = ReviewModel(_review_file(tmp_path))
    try:
        info = model.info()
        assert info["duration_s"] == pytest.approx(40.0)
        assert [e["kind"] for e in info["events"]].count("stimulus") == 3
        assert info["gaps"][0]["time_s"] == pytest.approx(30.0)
        w = model.window(9.0, 11.0, 200)
        assert not w["emg"]["sampled"] and w["emg"]["n"] == 200
        hi = np.array([np.nan if v is None else v for v in w["emg"]["max"][0]])
        burst = hi[100:120]  # 10.0-10.2 s: the 1 mV burst
        assert np.nanmin(burst) > 900 and np.nanmax(hi[:90]) < 150
        w = model.window(29.0, 31.0, 100)
        gap = w["emg"]["max"][1][50:75]
        assert all(v is None for v in gap) and w["emg"]["max"][1][40] is not None
        monkeypatch.setattr(review, "EXACT_MAX_VALUES", 1000)  # force the overview path
        reads = []
        real = model.emg.counts.__class__.__getitem__

        class Spy:
            def __init__(self, ds):
                self.ds, self.chunks, self.shape = ds, ds.chunks, ds.shape

            def __getitem__(self, key):
                rows = key[0] if isinstance(key, tuple) else key
                reads.append(rows.stop - rows.start)
                return real(self.ds, key)

        model.emg.counts = Spy(model.emg.counts)
        w = model.window(0.0, 40.0, 50)
        assert w["emg"]["sampled"] and w["emg"]["n"] == 50
        assert max(reads) <= model.emg.counts.chunks[0] and sum(reads) < 40 * 2000
        angle = [v for v in w["angle"]["mean"] if v is not None]
        assert 15 < min(angle) < 25 and 95 < max(angle) < 105  # 60 +- 40 deg
    finally:
        model.close()


# ----------------------------------------------------------------------------- live, browser
def test_live_stretch_view_prompts_traces_marker_and_stop(tmp_path, browser):
    proc, out, url = _start_record(
        tmp_path, "sim://mild_elbow?seed=3&speed=realtime", "--protocol", "stretch",
        "--range-stretches", "1", "--range-velocity", "90", "--velocities", "180",
        "--repeats", "1", "--rest", "30", "--subject", "V1", "--n-emg", "4",
    )  # fmt: skip
    try:
        browser.get(url)
        _wait(browser, "return window.tonusView && window.tonusView.ready")
        step = _wait(browser, "const t = document.getElementById('step').textContent;"
                              "return t.startsWith('stretch') ? t : null")  # fmt: skip
        assert re.match(r"stretch 1/2 at 90(\.0)? deg/s", step), step
        assert browser.find_element("id", "next").text == "next: ladder stretch at 180 deg/s"
        # traces move: the canvas changes while data arrives, frames keep coming
        shot = browser.execute_script("return document.getElementById('traces').toDataURL()")
        f0 = browser.execute_script("return window.tonusView.frames")
        time.sleep(1.0)
        shot2 = browser.execute_script("return document.getElementById('traces').toDataURL()")
        f1, polls = browser.execute_script(
            "return [window.tonusView.frames, window.tonusView.polls]"
        )
        assert shot2 != shot and f1 - f0 >= 20 and polls >= 5
        # the stretch result (velocity vs target) shows in the table
        _wait(browser, "return document.querySelectorAll('#stretches tbody tr').length >= 1", 40)
        row = browser.execute_script(
            "return Array.from(document.querySelectorAll('#stretches tbody tr')[0].cells)"
            ".map(c => c.textContent)"
        )
        assert row[2] == "90" and abs(float(row[3]) - 90) < 30, row
        _wait(
            browser,
            "return document.getElementById('step').textContent"
            ".includes('next: stretch 2/2 at 180')",
        )  # resting before prompt 2
        browser.find_element("id", "marker").click()
        _wait(browser, "return document.getElementById('log').textContent.includes('marker')")
        stop = browser.find_element("id", "stop")
        stop.click()
        assert "again" in stop.text
        stop.click()
        proc.wait(timeout=30)
        assert proc.returncode == 0, proc.stderr.read()
        _wait(browser, "return !document.getElementById('banner').hidden")
        assert "ended" in browser.find_element("id", "banner").text
        assert _console_errors(browser) == []
    finally:
        if proc.poll() is None:
            proc.kill()
    with open_session(out) as s:
        assert s.state == "complete"
        assert s.emg.n_samples > 0 and not s.gaps
        assert any(e["kind"] == "marker" for e in s.events)
        assert next(e["params"]["velocity_deg_s"] for e in s.events if e["kind"] == "prompt") == 90


def test_live_hreflex_view_shows_one_sweep_per_pulse(tmp_path, browser):
    from firmware_iface.auth import new_key, write_key_file

    key = write_key_file(tmp_path / "stim.key", new_key())
    proc, out, url = _start_record(
        tmp_path, "sim://soleus_healthy?seed=1&speed=realtime", "--protocol", "hreflex",
        "--key-file", key, "--time-scale", "0.05", "--duration", "6", "--emg-rate", "5000",
        "--n-emg", "1", name="h.h5",
    )  # fmt: skip
    try:
        browser.get(url)
        _wait(browser, "return window.tonusView && window.tonusView.ready")
        _wait(browser, "return document.getElementById('nsweeps').dataset.count > 0", 20)
        gate = browser.find_element("id", "gate").text
        assert "gate:" in gate and "next:" in gate and "pulse" in gate
        proc.wait(timeout=40)
        assert proc.returncode == 0, proc.stderr.read()
        _wait(browser, "return document.getElementById('banner').textContent.includes('ended')")
        n_page = int(browser.find_element("id", "nsweeps").get_attribute("data-count"))
        n_points = browser.execute_script("return window.tonusView.sweeps")
        assert _console_errors(browser) == []
    finally:
        if proc.poll() is None:
            proc.kill()
    with open_session(out) as s:
        n_stim = len(s.stimulus_arrays()["stim_sample_index"])
        assert s.state == "complete"
    assert n_stim >= 3 and n_page == n_stim == n_points


def test_stalled_clients_do_not_stall_the_recorder(tmp_path):
    proc, out, url = _start_record(
        tmp_path, "sim://simple?seed=1&speed=realtime", "--n-emg", "16", "--emg-rate", "4000",
        "--duration", "6", name="stall.h5",
    )  # fmt: skip
    host, port, token = _split(url)
    socks = []
    try:
        # a client that asks for everything, over and over, and never reads a byte
        s = socket.create_connection((host, port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        req = f"GET /api/live?emg=0&token={token} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        s.setblocking(False)
        t_end = time.monotonic() + 3
        while time.monotonic() < t_end:
            try:
                s.send(req)
            except BlockingIOError:
                time.sleep(0.05)
        socks.append(s)
        # and one that connects and sends nothing (a frozen tab)
        socks.append(socket.create_connection((host, port)))
        t0 = time.monotonic()
        proc.wait(timeout=30)
        waited = time.monotonic() - t0
        stdout = proc.stdout.read()
    finally:
        for s in socks:
            s.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read()
    assert waited < 12, waited  # 6 s of data in real time: nothing waited for the clients
    assert "0 samples missing" in stdout
    with open_session(out) as s:
        assert s.state == "complete" and s.emg.n_samples == 6 * 4000 and not s.gaps


# ----------------------------------------------------------------------------- review, browser
def test_review_page_scrolls_zooms_and_marks_events(tmp_path, browser):
    path = _review_file(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tonuslab", "view", str(path), "--seconds", "60"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        url = re.search(r"review: (\S+)", line).group(1)
        browser.get(url)
        _wait(browser, "return window.tonusView.ready && window.tonusView.windows >= 1")
        assert browser.execute_script("return window.tonusView.mode") == "review"
        n = browser.execute_script("return window.tonusView.windows")
        shot = browser.execute_script("return document.getElementById('traces').toDataURL()")
        browser.find_element("id", "zoomin").click()
        _wait(browser, f"return window.tonusView.windows > {n}")
        time.sleep(0.2)
        shot2 = browser.execute_script("return document.getElementById('traces').toDataURL()")
        assert shot2 != shot
        assert "00:00:10" in browser.find_element("id", "range").text  # 0-40 s -> 10-30 s
        _wait(browser, "return document.getElementById('nsweeps').dataset.count == 3")
        log = browser.find_element("id", "log").text
        assert "marker spasm" in log and "gap" in log
        assert _console_errors(browser) == []
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
