"""`tonuslab report`: one self-contained HTML file, rendered in a real headless Chromium.

Without selenium or Chromium the browser tests skip, except under CI (environment variable ``CI``
set and not ``0``/``false``, as ``.ci/run`` exports it), where a missing browser is a failure.
"""

import base64
import io
import os
import pathlib
import re
import shutil
import tempfile

import numpy as np
import pytest

from tonuslab.cli import main

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


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
        "--window-size=1200,900",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _figures_in_browser(driver, path):
    driver.get(path.resolve().as_uri())
    return driver.execute_script(
        "return {imgs: Array.from(document.images).map(i => ({name: i.dataset.figure,"
        " complete: i.complete, w: i.naturalWidth, h: i.naturalHeight})),"
        " text: document.body.innerText.length,"
        " height: document.body.scrollHeight};"
    )


def _ink(png: bytes) -> tuple[float, float]:
    """(pixel SD, fraction of pixels unlike the most common colour) of a PNG image."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int32)
    flat = rgb.reshape(-1, 3)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    background = colours[np.argmax(counts)]
    differs = np.abs(flat - background).sum(axis=1) > 30
    return float(rgb.std()), float(differs.mean())


def _assert_figures_not_blank(driver, html_path):
    """Every embedded PNG decodes to a drawing, and every rendered figure shows one."""
    from selenium.webdriver.common.by import By

    html = html_path.read_text()
    embedded = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert embedded
    for data in embedded:
        sd, ink = _ink(base64.b64decode(data))
        assert sd > 5.0 and ink > 0.01, (html_path.name, sd, ink)
    for element in driver.find_elements(By.TAG_NAME, "img"):
        driver.execute_script("arguments[0].scrollIntoView(true);", element)
        sd, ink = _ink(element.screenshot_as_png)  # what the browser painted
        assert sd > 5.0 and ink > 0.01, (element.get_attribute("data-figure"), sd, ink)
    sd, _ = _ink(driver.get_screenshot_as_png())
    assert sd > 5.0  # the page itself is not blank


def test_single_session_reports_render(browser, stretch_file, hreflex_file, tmp_path, capsys):
    out1, out2 = tmp_path / "stretch.html", tmp_path / "hreflex.html"
    assert main(["report", str(stretch_file), "-o", str(out1)]) == 0
    assert main(["report", str(hreflex_file), "-o", str(out2)]) == 0
    for out, expected in (
        (out1, {"profile", "angle_velocity", "stretch_emg", "dsrt"}),
        (out2, {"sweeps", "recruitment", "depression"}),
    ):
        text = out.read_text()
        # self-contained: no external resources
        assert not re.search(r'(src|href)="(?!data:)', text)
        page = _figures_in_browser(browser, out)
        names = {i["name"] for i in page["imgs"]}
        assert names == expected
        assert all(i["complete"] and i["w"] > 100 and i["h"] > 50 for i in page["imgs"])
        assert page["text"] > 500 and page["height"] > 800  # not blank
        _assert_figures_not_blank(browser, out)
    text = out1.read_text()
    assert "Spasticity profile" in text and "Tardieu summary" in text and "Quality flags" in text
    assert (
        "Per-stretch table (10 rows)" in text and "Per-stimulus table (16 rows)" in out2.read_text()
    )
    assert "smallest real difference" in text and "Ashworth" in text


def test_comparison_report_renders(browser, stretch_file, tmp_path, synth, capsys):
    files = []
    for i, shift in enumerate((0, 20, 20, 0)):
        data = synth.synthetic_stretch(seed=i)
        path = tmp_path / f"t{i}.h5"
        if shift:  # a later session with a raised threshold (simulated drug effect)
            old = synth.TRUE_TSRT_DEG
            synth.TRUE_TSRT_DEG = old + shift
            try:
                data = synth.synthetic_stretch(seed=i)
            finally:
                synth.TRUE_TSRT_DEG = old
        synth.write_test_session(path, data, metadata={"passive_range_deg": [0.0, 100.0]})
        files.append(str(path))
    out = tmp_path / "cmp.html"
    assert main(["report", *files, "-o", str(out), "--times", "0,1,4,24"]) == 0
    page = _figures_in_browser(browser, out)
    names = [i["name"] for i in page["imgs"]]
    assert names.count("comparison") == 1 and names.count("dsrt") == 4
    assert all(i["w"] > 0 for i in page["imgs"])
    _assert_figures_not_blank(browser, out)
    html = out.read_text()
    assert "Comparison over time" in html and "class='beyond'" in html
    assert "responder" in html


def test_report_user_errors(stretch_file, tmp_path, capsys):
    assert main(["report", str(stretch_file), "-o", str(tmp_path / "x.pdf")]) == 2
    assert main(["report", str(tmp_path / "nope.h5"), "-o", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no such file" in err


def test_unrelated_sessions_are_reported_side_by_side(stretch_file, tmp_path, synth, capsys):
    other = synth.write_test_session(
        tmp_path / "biceps.h5", synth.synthetic_stretch(seed=3), muscle="biceps_brachii"
    )
    out = tmp_path / "both.html"
    assert main(["report", str(stretch_file), str(other), "-o", str(out)]) == 0
    assert "side by side" in capsys.readouterr().err
    html = out.read_text()
    assert html.count('data-figure="dsrt"') == 2 and "Comparison over time" not in html
    # asking for a comparison explicitly keeps the error
    assert main(["report", str(stretch_file), str(other), "-o", str(out), "--times", "0,1"]) == 2


def test_report_of_a_named_run_shows_its_muscle_and_channel(tmp_path, synth, capsys):
    data = synth.synthetic_stretch()
    data["emg_counts"] = np.repeat(data["emg_counts"], 2, axis=1)
    path = synth.write_test_session(
        tmp_path / "two.h5", data, metadata={"passive_range_deg": [0, 100]}
    )
    assert (
        main(
            ["analyze", str(path), "--channel", "1", "--muscle", "gastrocnemius", "--run", "gastro"]
        )
        == 0
    )
    out = tmp_path / "g.html"
    assert main(["report", str(path), "--run", "gastro", "-o", str(out)]) == 0
    html = out.read_text()
    assert "muscle: gastrocnemius" in html and "results run: gastro" in html
