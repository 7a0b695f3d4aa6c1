"""Issue 18 items 7 and 8: wrong values are refused in one line, never a traceback or a hang."""

import os
import shutil

import h5py
import numpy as np
import pytest

from acquire.errors import NotASessionFileError, SessionFileError
from acquire.session_file import open_session, write_session
from tonuslab.cli import main

CH2 = [{"name": "a", "kind": "emg", "unit": "uV", "scale": 0.1},
       {"name": "b", "kind": "emg", "unit": "uV", "scale": 0.1}]  # fmt: skip


@pytest.fixture
def good(tmp_path):
    return write_session(tmp_path / "ok.h5", emg_counts=np.zeros((200, 2), np.int32),
                         emg_rate_hz=2000.0, channels=CH2)  # fmt: skip


@pytest.mark.parametrize("rate", [float("inf"), 1e308, float("nan"), "fast", -5.0])
def test_impossible_rates_are_refused(tmp_path, rate):
    with pytest.raises(SessionFileError, match="emg_rate_hz"):
        write_session(tmp_path / "r.h5", emg_counts=np.zeros((10, 2), np.int32),
                      emg_rate_hz=rate, channels=CH2)  # fmt: skip


@pytest.mark.parametrize("index", [float("nan"), None, 1.5, float("inf")])
def test_stimulus_events_need_a_sample_index(tmp_path, index):
    ev = [{"kind": "stimulus", "emg_sample_index": index, "intensity_ma": None}]
    with pytest.raises(SessionFileError, match="emg_sample_index"):
        write_session(tmp_path / "s.h5", emg_counts=np.zeros((10, 2), np.int32),
                      emg_rate_hz=2000.0, channels=CH2, events=ev)  # fmt: skip


def _damage(path, tmp_path, fn):
    out = tmp_path / "damaged.h5"
    shutil.copy(path, out)
    with h5py.File(out, "r+") as f:
        fn(f)
    return out


def test_one_scale_for_two_channels_is_not_broadcast(good, tmp_path):
    bad = _damage(good, tmp_path, lambda f: f["streams/emg/counts"].attrs.__setitem__(
        "scale", np.array([0.1])))  # fmt: skip
    with open_session(bad) as s, pytest.raises(NotASessionFileError, match="1 scale value"):
        _ = s.emg_uv


def test_stretch_direction_sign_7_is_refused_on_read(good, tmp_path):
    def sign_7(f):
        f["metadata"].attrs["stretch_direction_sign"] = 7

    bad = _damage(good, tmp_path, sign_7)
    with open_session(bad) as s, pytest.raises(NotASessionFileError, match="not \\+1 or -1"):
        _ = s.metadata


def _replace_gaps(f):
    del f["gaps"]
    f["gaps"] = np.arange(5)


def test_corrupt_gaps_table_is_one_line_in_export(good, tmp_path, capsys):
    pytest.importorskip("pynwb")
    bad = _damage(good, tmp_path, _replace_gaps)
    assert main(["export", str(bad), "--nwb", str(tmp_path / "o.nwb")]) == 2
    err = capsys.readouterr().err.strip()
    assert "gaps table is damaged" in err and err.count("\n") == 0
    assert not (tmp_path / "o.nwb").exists()


def test_broken_summary_json_is_one_line(stretch_copy, tmp_path, capsys):
    from tonuslab.results import read_results

    assert main(["analyze", str(stretch_copy)]) == 0
    capsys.readouterr()
    with h5py.File(stretch_copy, "r+") as f:
        del f["results/default/summary_json"]
        f["results/default/summary_json"] = "{broken"
    with pytest.raises(SessionFileError, match="'default' is damaged"):
        read_results(stretch_copy)
    assert main(["report", str(stretch_copy), "-o", str(tmp_path / "r.html")]) == 2
    assert "damaged" in capsys.readouterr().err


def test_analyze_on_a_fifo_returns_at_once(tmp_path, capsys):
    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    assert main(["analyze", str(fifo)]) == 2  # opening it for reading would block forever
    assert "not a regular file" in capsys.readouterr().err


def test_edf_with_an_absurd_physical_maximum_is_refused_not_all_nan(tmp_path, capsys):
    """An EDF whose header says physical max 9.9e307 (damaged): one line naming the channel,
    not an all-NaN import that analyze then blames on gaps (issue 18 item 7)."""
    pyedflib = pytest.importorskip("pyedflib")
    path = tmp_path / "huge.edf"
    w = pyedflib.EdfWriter(str(path), 1, file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        w.setSignalHeaders([{"label": "EMG", "dimension": "uV", "sample_frequency": 1000,
                             "physical_min": -1000.0, "physical_max": 1000.0,
                             "digital_min": -32768, "digital_max": 32767}])  # fmt: skip
        w.writeSamples([np.sin(np.arange(5000) / 10.0) * 100.0])
    finally:
        w.close()
    data = bytearray(path.read_bytes())
    ns = int(data[252:256].decode())  # signals in the file (EDF+ adds its annotation signal)
    at = 256 + ns * (16 + 80 + 8 + 8)  # the first signal's physical maximum field (8 chars)
    data[at : at + 8] = b"9.9e307 "
    path.write_bytes(bytes(data))
    assert main(["import", str(path), "-o", str(tmp_path / "huge.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "physical range" in err and "EMG" in err
    assert not (tmp_path / "huge.h5").exists()


def test_duplicate_csv_column_names_are_refused(tmp_path, capsys):
    src = tmp_path / "dup.csv"
    src.write_text("time,emg,emg\n" + "\n".join(f"{k / 1000:.3f},1.0,2.0" for k in range(100)))
    assert main(["import", str(src), "-o", str(tmp_path / "dup.h5"), "--emg", "emg"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "appears twice" in err
    assert not (tmp_path / "dup.h5").exists()
