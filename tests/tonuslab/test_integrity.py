"""Provenance and integrity of session files: the input hash, lazy reading, concurrent writers."""

import shutil

import h5py
import numpy as np
import pytest

import tonuslab
from tonuslab.analysis import analyze_file, summarize
from tonuslab.results import input_sha256, read_results, write_results
from tonuslab.session import Session


def _set_attr(path, obj, key, value):
    with h5py.File(path, "r+") as f:
        f[obj].attrs[key] = value


@pytest.mark.parametrize(
    ("obj", "key", "value"),
    [
        ("streams/emg", "rate_hz", 1000.0),  # sampling rate
        ("streams/angle", "rate_hz", 250.0),
        ("streams/emg/counts", "scale", np.array([0.1])),  # calibration scale
        ("streams/angle/counts", "offset", np.array([100.0])),  # calibration offset
        ("metadata", "stretch_direction_sign", -1),
        ("metadata", "passive_range_deg", np.array([10.0, 90.0])),
        ("metadata", "muscle", "gastrocnemius"),
    ],
)
def test_changing_an_analysis_input_attribute_changes_the_hash(stretch_copy, obj, key, value):
    before = input_sha256(stretch_copy)
    assert input_sha256(stretch_copy) == before  # deterministic
    _set_attr(stretch_copy, obj, key, value)
    assert input_sha256(stretch_copy) != before


def test_a_new_metadata_field_changes_the_hash_and_attribute_order_does_not(stretch_copy, tmp_path):
    before = input_sha256(stretch_copy)
    _set_attr(stretch_copy, "metadata", "session_label", "post 4h")
    labelled = input_sha256(stretch_copy)
    assert labelled != before
    # same attributes written in another order: same hash
    other = tmp_path / "other.h5"
    shutil.copy(stretch_copy, other)
    with h5py.File(other, "r+") as f:
        attrs = {k: f["metadata"].attrs[k] for k in f["metadata"].attrs}
        for k in list(attrs):
            del f["metadata"].attrs[k]
        for k in sorted(attrs, reverse=True):
            f["metadata"].attrs[k] = attrs[k]
    assert input_sha256(other) == labelled


def test_writing_results_and_lifecycle_attributes_leave_the_hash_unchanged(stretch_copy):
    before = input_sha256(stretch_copy)
    summary = analyze_file(stretch_copy)  # writes /results/default
    assert summary["input_sha256"] == before == input_sha256(stretch_copy)
    write_results(stretch_copy, summarize(None, None), run="second")
    with h5py.File(stretch_copy, "r+") as f:
        f["results"].attrs["note"] = "anything under /results"
        f.attrs["state"] = "recovered"  # the file's life, not its data
        f.attrs["closed_utc"] = "2030-01-01T00:00:00+00:00"
    assert input_sha256(stretch_copy) == before
    assert read_results(stretch_copy)["default"]["input_sha256"] == before


def test_runs_on_different_inputs_store_different_hashes(stretch_copy):
    first = analyze_file(stretch_copy)
    _set_attr(stretch_copy, "metadata", "passive_range_deg", np.array([0.0, 60.0]))
    second = analyze_file(stretch_copy, run="narrow")
    assert first["tsrt_inside_range"] is True and second["tsrt_inside_range"] is False
    runs = read_results(stretch_copy)
    assert runs["default"]["input_sha256"] == first["input_sha256"]
    assert runs["narrow"]["input_sha256"] == second["input_sha256"] != first["input_sha256"]


def test_time_vectors_do_not_load_the_signals(stretch_copy, synth):
    with tonuslab.open(stretch_copy) as s:
        t = s.emg_time_s
        ta = s.angle_time_s
        # nothing was read: neither our cache nor the reader's holds a signal array
        assert "emg_uv" not in s._cache and "angle_deg" not in s._cache
        assert not {"emg_uv", "angle_deg", "goniometer_deg"} & set(s.reader._cache)
        n, m = s.reader.emg.n_samples, s.reader.angle.n_samples
        assert t.shape == (n,) and ta.shape == (m,)
        assert t[1] - t[0] == pytest.approx(1 / s.emg_rate_hz)
        # the same vectors as from the loaded arrays
        np.testing.assert_array_equal(t, s.t0_s + np.arange(s.emg_uv.shape[0]) / s.emg_rate_hz)
        np.testing.assert_array_equal(ta, s.t0_s + np.arange(s.angle_deg.size) / s.angle_rate_hz)


def test_time_vectors_of_in_memory_and_angle_less_sessions(hreflex_file):
    mem = Session.from_arrays(emg_uv=np.zeros((10, 2)), emg_rate_hz=100.0, t0_s=1.0)
    np.testing.assert_allclose(mem.emg_time_s, 1.0 + np.arange(10) / 100.0)
    assert mem.angle_time_s is None
    with tonuslab.open(hreflex_file) as s:
        assert s.angle_time_s is None and s.emg_time_s.size == s.reader.emg.n_samples


_WRITER_LOOP = """
import sys
from tonuslab.analysis import summarize
from tonuslab.results import read_results, write_results
path, run, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()  # start together
lost = 0
for i in range(n):
    s = summarize(None, None)
    s["parameters"] = {"i": i, "run": run}
    write_results(path, s, run=run, input_hash="h")
    if read_results(path).get(run, {}).get("parameters", {}).get("i") != i:
        lost += 1  # another writer's rename replaced ours
print(run, n, lost, flush=True)
"""


def test_concurrent_analyses_of_one_file_both_survive(tmp_path, stretch_copy):
    import subprocess
    import sys

    script = tmp_path / "writer.py"
    script.write_text(_WRITER_LOOP)
    n = 25
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(stretch_copy), run, str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for run in ("runA", "runB")
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for run, p in zip(("runA", "runB"), procs, strict=True):
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert out.split() == [run, str(n), "0"]  # no run ever lost
    runs = read_results(stretch_copy)
    assert {"runA", "runB"} <= set(runs)
    assert runs["runA"]["parameters"] == {"i": n - 1, "run": "runA"}
    assert runs["runB"]["parameters"] == {"i": n - 1, "run": "runB"}
    assert not list(tmp_path.glob(".stretch.h5.analysis-*.tmp"))
    assert not list(tmp_path.glob(".stretch.h5.analysis.lock"))  # the last writer removed it


def test_a_held_lock_makes_the_writer_wait_and_stale_copies_go(stretch_copy):
    import fcntl
    import os

    from tonuslab.errors import SessionFileError

    stale = stretch_copy.with_name(f".{stretch_copy.name}.analysis-dead0000.tmp")
    stale.write_bytes(b"left by a killed analysis")
    lock = stretch_copy.with_name(f".{stretch_copy.name}.analysis.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(SessionFileError, match="another analysis"):
            write_results(stretch_copy, summarize(None, None), run="x", lock_timeout_s=0.2)
        assert stale.exists()  # never removed while another writer holds the lock
    finally:
        os.close(fd)
    write_results(stretch_copy, summarize(None, None), run="x")
    assert not stale.exists() and "x" in read_results(stretch_copy)
    assert not lock.exists()  # removed by the writer that held it last
