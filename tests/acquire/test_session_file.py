"""The session file: schema, writer, one-call writer and lazy reader (real HDF5 files)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acquire.errors import (
    MetadataError,
    NewerSchemaError,
    NotASessionFileError,
    OlderSchemaError,
    PersonalDataError,
    SessionFileError,
    TruncatedSessionError,
)
from acquire.session_file import (
    CHUNK_CACHE_SLOTS,
    FILL_VALUE,
    METADATA_CACHE_MAX_BYTES,
    SessionWriter,
    open_session,
    validate_metadata,
    write_session,
)

EMG_RATE = 2000.0
ANGLE_RATE = 500.0


def channels(n_emg=2):
    chans = [
        dict(name=f"emg{i}", kind="emg", unit="uV", scale=0.05, offset=3, highpass_hz=10.0)
        for i in range(n_emg)
    ]
    chans.append(dict(name="gonio", kind="angle", unit="deg", scale=0.01, offset=1000))
    return chans


def sample_arrays(n=4000, n_emg=2, seed=1):
    rng = np.random.default_rng(seed)
    emg = rng.integers(-30000, 30000, size=(n, n_emg), dtype=np.int32)
    angle = (1000 + 100 * np.sin(np.arange(n // 4) / 50)).astype(np.int32)[:, None]
    return emg, angle


META = dict(
    subject_id="S014",
    muscle="biceps_brachii",
    side="left",
    joint="elbow",
    stretch_direction_sign=-1,
    passive_range_deg=[5, 140],
    protocol="stretch",
    operator="AB",
    notes="test",
)


def make_file(path, **kw):
    emg, angle = sample_arrays()
    args = dict(
        emg_counts=emg,
        emg_rate_hz=EMG_RATE,
        channels=channels(),
        angle_counts=angle,
        angle_rate_hz=ANGLE_RATE,
        metadata=META,
        device=dict(model="tonus-emu", device_id="EMU-1", firmware_version="1.4.2"),
        events=[
            dict(
                kind="stimulus",
                emg_sample_index=100,
                intensity_ma=2.5,
                width_us=1000,
                pulse_index=0,
                device_time_us=50_000,
            ),
            dict(kind="marker", time_s=1.0, label="patient coughed"),
            dict(kind="prompt", time_s=0.5, label="stretch", params={"velocity_deg_s": 60}),
        ],
        gaps=[dict(stream="emg", start_index=1000, n_samples=37, reason="sequence")],
    )
    args.update(kw)
    return write_session(path, **args), emg, angle


def test_writer_bounds_hdf5_caches_for_long_recordings(tmp_path):
    """The caches whose defaults grew a real-time hour by ~28 MiB (benchmarks/bench_soak.py)."""
    writer = SessionWriter(
        tmp_path / "s.h5", channels=channels(), emg_rate_hz=EMG_RATE, angle_rate_hz=ANGLE_RATE
    )
    try:
        emg, angle = sample_arrays()
        for _ in range(20):
            writer.append("emg", emg[:200])
            writer.append("angle", angle[:50])
            writer.flush()
        assert writer.n_flushes >= 20
        max_size, _min_clean, cur_size, _n = writer._f.id.get_mdc_size()
        assert max_size <= METADATA_CACHE_MAX_BYTES and cur_size <= METADATA_CACHE_MAX_BYTES
        for name in ("emg", "angle", "events", "gaps"):
            nslots, _nbytes, w0 = writer._ds[name].id.get_access_plist().get_chunk_cache()
            assert nslots == CHUNK_CACHE_SLOTS and w0 == 1.0, name
    finally:
        writer.close()


def test_roundtrip_physical_units_time_vectors_and_gaps(tmp_path):
    path, emg, angle = make_file(tmp_path / "s.h5")
    with open_session(path) as s:
        assert s.state == "complete" and s.format_version == "1.0"
        expected = (emg.astype(float) - 3) * 0.05
        expected[1000:1037] = np.nan
        np.testing.assert_array_equal(s.emg_uv, expected)
        assert s.emg_uv.shape == (4000, 2)
        np.testing.assert_allclose(s.emg_time_s, np.arange(4000) / EMG_RATE)
        # sign convention: angle_deg = sign * goniometer_deg
        np.testing.assert_allclose(s.angle_deg, -((angle[:, 0] - 1000) * 0.01))
        np.testing.assert_allclose(s.angle_time_s, np.arange(1000) / ANGLE_RATE)
        assert s.gaps == [
            dict(stream="emg", start_index=1000, n_samples=37, reason="sequence", host_time_s=None)
        ]
        assert s.metadata["subject_id"] == "S014"
        assert s.metadata["passive_range_deg"] == [5.0, 140.0]
        assert s.device["firmware_version"] == "1.4.2"
        assert [c["name"] for c in s.channels] == ["emg0", "emg1", "gonio"]
        assert s.channels[0]["highpass_hz"] == 10.0
        stim = s.stimulus_arrays()
        assert stim["stim_sample_index"].tolist() == [100]
        assert stim["stim_intensity_ma"].tolist() == [2.5]
        kinds = [e["kind"] for e in s.events]
        assert kinds == ["stimulus", "marker", "prompt"]
        assert s.events[0]["time_s"] == pytest.approx(100 / EMG_RATE)
        assert s.events[2]["params"] == {"velocity_deg_s": 60}
        part = s.emg.read(990, 1010, channels=[1])
        assert part.shape == (20, 1) and np.isnan(part[10:]).all() and not np.isnan(part[:10]).any()


def test_readable_with_plain_h5py(tmp_path):
    path, emg, _ = make_file(tmp_path / "s.h5")
    with h5py.File(path, "r") as f:
        assert f.attrs["tonuslab_format"] == "tonuslab-session"
        ds = f["streams/emg/counts"]
        assert ds.dtype == np.int32
        assert ds.compression == "gzip" and ds.shuffle and ds.chunks is not None
        assert ds.fillvalue == FILL_VALUE
        assert list(ds.attrs["unit"]) == ["uV", "uV"]
        np.testing.assert_array_equal(ds.attrs["scale"], [0.05, 0.05])
        np.testing.assert_array_equal(ds[:1000], emg[:1000])
        assert (ds[1000:1037] == FILL_VALUE).all()
        assert f["gaps"][0]["n_samples"] == 37
        assert f["events"].shape == (3,)
        assert "results" in f and "clock" in f
        assert f["metadata"].attrs["stretch_direction_sign"] == -1


@pytest.mark.parametrize(
    "bad",
    [
        {"patient_name": "Jane Doe"},
        {"name": "Jane"},
        {"date_of_birth": "1950-01-01"},
        {"subject_id": "Jane Doe"},
        {"extra": {"surname": "Doe"}},
    ],
)
def test_personal_data_is_refused(tmp_path, bad):
    with pytest.raises(PersonalDataError):
        validate_metadata(bad)
    with pytest.raises(PersonalDataError):
        make_file(tmp_path / "s.h5", metadata=bad)
    assert not (tmp_path / "s.h5").exists()


@pytest.mark.parametrize(
    "bad",
    [
        {"colour": "red"},
        {"stretch_direction_sign": 0},
        {"passive_range_deg": [10, 5]},
        {"side": "up"},
    ],
)
def test_invalid_metadata_is_refused(bad):
    with pytest.raises(MetadataError):
        validate_metadata(bad)


def test_not_a_session(tmp_path):
    text = tmp_path / "a.h5"
    text.write_text("hello")
    with pytest.raises(NotASessionFileError):
        open_session(text)
    other = tmp_path / "b.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(NotASessionFileError):
        open_session(other)
    with pytest.raises(FileNotFoundError):
        open_session(tmp_path / "missing.h5")


def test_newer_major_schema_is_refused(tmp_path):
    path, _, _ = make_file(tmp_path / "s.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = "2.0"
    with pytest.raises(NewerSchemaError, match="upgrade"):
        open_session(path)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = "1.7"  # newer minor: still readable
    open_session(path).close()
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = "0.9"
    with pytest.raises(OlderSchemaError, match="older"):
        open_session(path)


def test_truncated_file(tmp_path):
    path, _, _ = make_file(tmp_path / "s.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedSessionError, match="recover"):
        s = open_session(path)
        s.emg_uv  # noqa: B018
    path.write_bytes(b"")
    with pytest.raises(TruncatedSessionError):
        open_session(path)


def test_writer_implied_gaps_and_refuses_going_back(tmp_path):
    path = tmp_path / "w.h5"
    with SessionWriter(
        path,
        channels=channels(),
        emg_rate_hz=EMG_RATE,
        angle_rate_hz=ANGLE_RATE,
        metadata={"subject_id": "S1"},
    ) as w:
        w.append("emg", np.ones((100, 2), np.int32))
        w.append("emg", np.ones((100, 2), np.int32), start_index=150, gap_reason="sequence")
        with pytest.raises(SessionFileError, match="duplicate"):
            w.append("emg", np.ones((10, 2), np.int32), start_index=200)
        with pytest.raises(SessionFileError, match="shape"):
            w.append("emg", np.ones((10, 3), np.int32))
        with pytest.raises(SessionFileError, match="integers"):
            w.append("emg", np.ones((10, 2)))
        w.append("angle", np.zeros((20, 1), np.int16))
        assert w.n_samples("emg") == 250
    with open_session(path) as s:
        assert s.gaps[0]["start_index"] == 100 and s.gaps[0]["n_samples"] == 50
        assert s.gaps[0]["reason"] == "sequence"
        assert np.isnan(s.emg_uv[100:150]).all() and not np.isnan(s.emg_uv[150:]).any()
        assert s.angle_deg.shape == (20,)


def test_writer_refuses_existing_file(tmp_path):
    path, _, _ = make_file(tmp_path / "s.h5")
    with pytest.raises(SessionFileError, match="exists"):
        make_file(path)
    make_file(path, overwrite=True)


READER = """
import json, sys
from acquire.session_file import open_session
with open_session(sys.argv[1]) as s:
    print(json.dumps([s.state, s.emg.n_samples, [e["label"] for e in s.events]]))
"""


def read_in_other_process(path):
    out = subprocess.run(
        [sys.executable, "-c", READER, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=pathlib.Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_writer_flushes_within_a_second_and_other_process_reads(tmp_path):
    """Data appended is visible to a reader in another process within the flush interval."""
    path = tmp_path / "live.h5"
    w = SessionWriter(
        path,
        channels=channels(),
        emg_rate_hz=EMG_RATE,
        angle_rate_hz=ANGLE_RATE,
        flush_interval_s=0.2,
    )
    try:
        w.append("emg", np.ones((500, 2), np.int32))
        time.sleep(0.25)
        w.append("emg", np.ones((500, 2), np.int32))  # triggers the periodic flush
        w.add_event("marker", time_s=0.1, label="m")
        time.sleep(0.25)
        assert w.maybe_flush()
        assert read_in_other_process(path) == ["recording", 1000, ["m"]]
        w.append("emg", np.ones((24, 2), np.int32))
    finally:
        w.close()
    assert read_in_other_process(path) == ["complete", 1024, ["m"]]


@settings(max_examples=25, deadline=None)
@given(blocks=st.lists(st.tuples(st.integers(0, 40), st.integers(1, 300)), min_size=1, max_size=12))
def test_blocks_with_random_gaps_roundtrip(tmp_path_factory, blocks):
    """Any sequence of (skip, length) blocks: samples land at their rows, gaps are exact."""
    path = tmp_path_factory.mktemp("h") / "p.h5"
    rng = np.random.default_rng(0)
    expected = []
    row = 0
    with SessionWriter(
        path, channels=channels(1), emg_rate_hz=EMG_RATE, angle_rate_hz=ANGLE_RATE
    ) as w:
        for skip, n in blocks:
            block = rng.integers(-1000, 1000, size=(n, 1), dtype=np.int32)
            w.append("emg", block, start_index=row + skip)
            expected.append(np.full((skip, 1), np.nan))
            expected.append((block - 3) * 0.05)
            row += skip + n
    with open_session(path) as s:
        np.testing.assert_array_equal(s.emg_uv, np.concatenate(expected))
        assert sum(g["n_samples"] for g in s.gaps) == sum(skip for skip, _ in blocks)
        assert all(g["n_samples"] > 0 for g in s.gaps)
