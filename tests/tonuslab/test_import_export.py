"""`tonuslab import` (EDF+ written here with pyedflib, CSV) and `tonuslab export --nwb`."""

import json
import pathlib
import warnings

import numpy as np
import pytest

import tonuslab
from tonuslab.cli import main
from tonuslab.io_import import parse_stim_annotation

pyedflib = pytest.importorskip("pyedflib")


def _signal_header(label, dim, rate, pmin, pmax):
    return {
        "label": label,
        "dimension": dim,
        "sample_frequency": rate,
        "physical_min": pmin,
        "physical_max": pmax,
        "digital_min": -32768,
        "digital_max": 32767,
        "transducer": "",
        "prefilter": "HP:10Hz LP:500Hz",
    }


def _write_edf(path, signals, headers, annotations=(), startdate=None):
    from pyedflib import highlevel

    header = highlevel.make_header(patientname="Jane Doe", startdate=startdate)  # name: never kept
    header["annotations"] = [list(a) for a in annotations]
    assert highlevel.write_edf(str(path), signals, headers, header=header, digital=False)


def _trim(x, rate):
    n = int(len(x) // rate * rate)
    return x[:n]


def test_stim_annotation_parser():
    assert parse_stim_annotation("stim 12.5mA") == {"intensity_ma": 12.5, "width_us": None}
    assert parse_stim_annotation("STIM: 3 mA, 500us") == {"intensity_ma": 3.0, "width_us": 500.0}
    assert parse_stim_annotation("stretch 3") is None


def test_edf_stretch_import_analyses_like_a_recording(tmp_path, synth, capsys):
    d = synth.synthetic_stretch()
    emg_mv = _trim(d["emg_counts"][:, 0] * synth.EMG_SCALE_UV / 1000.0, 2000)  # in mV
    angle = _trim(-d["angle_counts"][:, 0] * synth.ANGLE_SCALE_DEG, 500)  # inverted goniometer
    emg_mv = emg_mv[: len(angle) * 4]
    edf = tmp_path / "stretch.edf"
    _write_edf(
        edf,
        [emg_mv, angle],
        [
            _signal_header("EMG soleus", "mV", 2000, -1.0, 1.0),
            _signal_header("Goniometer", "deg", 500, -120.0, 20.0),
        ],
        annotations=[(1.0, -1, "patient relaxed")],
    )
    out = tmp_path / "imported.h5"
    code = main(
        [
            "import",
            str(edf),
            "-o",
            str(out),
            "--stretch-sign",
            "-1",
            "--muscle",
            "soleus",
            "--subject",
            "S002",
            "--passive-range",
            "0",
            "100",
        ]
    )
    assert code == 0, capsys.readouterr().err
    with tonuslab.open(out) as s:
        assert s.emg_rate_hz == 2000 and s.angle_rate_hz == 500
        assert s.emg_channel_names == ["EMG soleus"]
        assert s.angle_deg.max() == pytest.approx(100.0, abs=0.05)  # sign applied
        raw = s.emg_uv[:1000, 0]
        assert np.allclose(raw, emg_mv[:1000] * 1000.0, atol=0.05)  # mV -> uV, no requantising
        assert "Jane" not in json.dumps(s.metadata) + json.dumps(s.reader.attrs, default=str)
        assert [e["label"] for e in s.events] == ["patient relaxed"]
    capsys.readouterr()
    assert main(["analyze", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["tsrt_deg"] == pytest.approx(synth.TRUE_TSRT_DEG, abs=3.0)
    assert summary["subject"] == "S002"


def test_edf_plus_stim_annotations_become_stimulus_events(tmp_path, synth, capsys):
    d = synth.synthetic_hreflex(n_recruit=8)
    emg = _trim(d["emg_counts"][:, 0] * synth.EMG_SCALE_UV, 5000)
    annotations = [
        (ev["emg_sample_index"] / 5000.0, -1, f"stim {ev['intensity_ma']:.2f}mA")
        for ev in d["events"]
    ]
    edf = tmp_path / "h.edf"
    _write_edf(edf, [emg], [_signal_header("Sol", "uV", 5000, -10000, 10000)], annotations)
    out = tmp_path / "h.h5"
    assert main(["import", str(edf), "-o", str(out), "--muscle", "soleus"]) == 0
    with tonuslab.open(out) as s:
        stims = s.stimuli
        assert len(stims) == 8
        want = [ev["emg_sample_index"] for ev in d["events"]]
        assert [st.emg_sample_index for st in stims] == pytest.approx(want, abs=3)
        assert stims[1].intensity_ma == pytest.approx(d["events"][1]["intensity_ma"], abs=0.01)
        assert s.metadata["protocol"] == "hreflex"
    capsys.readouterr()
    assert main(["analyze", str(out), "--json", "--no-write"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["analyses"] == ["hreflex"] and len(summary["stimuli"]) == 8


def test_csv_import_with_channel_map(tmp_path, synth, capsys):
    d = synth.synthetic_stretch(velocities=(60, 120, 200, 300, 360))
    fs = 500  # decimate EMG to the angle rate only for the CSV's shape; keep 2 kHz rows here
    emg = d["emg_counts"][:, 0] * synth.EMG_SCALE_UV
    angle = np.repeat(d["angle_counts"][:, 0] * synth.ANGLE_SCALE_DEG, 4)[: emg.size]
    csv_path = tmp_path / "rec.csv"
    with csv_path.open("w") as fh:
        fh.write("t,emg_mv,angle\n")
        for i in range(emg.size):
            fh.write(f"{i / 2000:.6f},{emg[i] / 1000:.6f},{angle[i]:.3f}\n")
    out = tmp_path / "csv.h5"
    code = main(
        [
            "import",
            str(csv_path),
            "-o",
            str(out),
            "--emg",
            "emg_mv:mV",
            "--angle",
            "angle",
            "--time",
            "t",
            "--muscle",
            "soleus",
        ]
    )
    assert code == 0, capsys.readouterr().err
    with tonuslab.open(out) as s:
        assert s.emg_rate_hz == pytest.approx(2000.0, rel=1e-6)
        assert np.allclose(s.emg_uv[:500, 0], emg[:500], atol=0.6)
        assert s.angle_deg.max() == pytest.approx(100.0, abs=0.01)
    assert fs == 500


def test_csv_empty_and_nan_cells_become_gaps(tmp_path, capsys):
    rows = ["emg1,emg2,angle"]
    for i in range(100):
        e1 = "" if 10 <= i < 13 else f"{i}.0"  # three empty cells
        e2 = "nan" if i == 50 else f"{-i}.0"  # one NaN cell
        angle = "NaN" if i >= 98 else f"{i / 10:.1f}"
        rows.append(f"{e1},{e2},{angle}")
    (tmp_path / "gappy.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "gappy.h5"
    argv = ["import", str(tmp_path / "gappy.csv"), "-o", str(out), "--rate", "1000",
            "--emg", "emg1", "--emg", "emg2", "--angle", "angle"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    with tonuslab.open(out) as s:
        gaps = [(g["stream"], g["start_index"], g["n_samples"], g["reason"]) for g in s.gaps]
        assert gaps == [
            ("emg", 10, 3, "missing_in_source"),
            ("emg", 50, 1, "missing_in_source"),
            ("angle", 98, 2, "missing_in_source"),
        ]
        emg = s.emg_uv
        missing = np.isnan(emg).any(axis=1)
        assert np.flatnonzero(missing).tolist() == [10, 11, 12, 50]
        assert np.isnan(emg[missing]).all()  # a gap row is missing on every channel
        assert emg[~missing, 0] == pytest.approx(np.arange(100)[~missing], abs=0.01)
        assert np.flatnonzero(np.isnan(s.angle_deg)).tolist() == [98, 99]


def test_csv_infinite_cell_is_refused(tmp_path, capsys):
    (tmp_path / "inf.csv").write_text("emg\n1.0\ninf\n2.0\n")
    code = main(["import", str(tmp_path / "inf.csv"), "-o", str(tmp_path / "x.h5"),
                 "--rate", "1000", "--emg", "emg"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "infinite value at data row 2" in err and "Traceback" not in err
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["import", "missing.edf", "-o", "x.h5"], "no such file"),
        (["import", "bad.edf", "-o", "x.h5"], "edf"),
        (["import", "rec.csv", "-o", "x.h5"], "--emg"),
        (["import", "rec.csv", "-o", "x.h5", "--emg", "nope", "--rate", "100"], "no column"),
        (["import", "rec.xyz", "-o", "x.h5"], "--format"),
        (["export", "missing.h5", "--nwb", "x.nwb"], "no such file"),
        (["export", "rec.csv", "--nwb", "x.txt"], ".nwb"),
    ],
)
def test_user_errors(argv, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.edf").write_text("not an edf")
    (tmp_path / "rec.csv").write_text("a,b\n1,2\n")
    (tmp_path / "rec.xyz").write_text("?")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert needle.lower() in err.lower()


def test_nwb_export_round_trip(stretch_copy, hreflex_file, tmp_path, capsys):
    from pynwb import NWBHDF5IO

    from tonuslab.io_nwb import validate_nwb

    out = tmp_path / "s.nwb"
    assert main(["export", str(stretch_copy), "--nwb", str(out)]) == 0
    assert "validated" in capsys.readouterr().out
    assert validate_nwb(out) == []
    with tonuslab.open(stretch_copy) as s:
        emg_uv, angle = s.emg_uv, s.angle_deg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBHDF5IO(str(out), "r") as io:
            nwb = io.read()
            ts = nwb.acquisition["EMG"]
            assert ts.data.dtype == np.int32  # raw integers + conversion
            volts = ts.data[:2000] * ts.conversion + ts.offset
            assert np.allclose(volts * 1e6, emg_uv[:2000], atol=1e-6)
            ang = nwb.acquisition["joint_angle"]
            assert np.allclose(ang.data[:] * ang.conversion + ang.offset, angle, atol=1e-9)
            stretches = nwb.intervals["stretches"].to_dataframe()
            assert len(stretches) == 10 and stretches["dsrt_deg"].notna().sum() == 10
            assert nwb.subject.subject_id == "S001"
    # the validator is real: a damaged file is reported
    import shutil

    import h5py

    broken = shutil.copy(out, tmp_path / "broken.nwb")
    with h5py.File(broken, "r+") as f:
        del f["acquisition/EMG/data"].attrs["unit"]
    assert any("unit" in p for p in validate_nwb(broken))
    out2 = tmp_path / "h.nwb"
    assert main(["export", str(hreflex_file), "--nwb", str(out2)]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBHDF5IO(str(out2), "r") as io:
            nwb = io.read()
            stims = nwb.get_events_table("stimuli").to_dataframe()
            assert len(stims) == 16
            assert stims["intensity_ma"].iloc[3] == pytest.approx(8.0)


def test_edf_channel_mapping_and_rate_override(tmp_path, capsys):
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 20, 4000), rng.normal(0, 40, 4000)
    edf = tmp_path / "two.edf"
    _write_edf(
        edf,
        [a, b, np.linspace(0, 90, 400)],
        [
            _signal_header("EMG A", "uV", 1000, -500, 500),
            _signal_header("EMG B", "uV", 1000, -500, 500),
            _signal_header("Knee", "degree", 100, -10, 100),
        ],
    )
    out = tmp_path / "b.h5"
    assert main(["import", str(edf), "-o", str(out), "--emg", "EMG B", "--angle", "Knee"]) == 0
    with tonuslab.open(out) as s:
        assert s.emg_channel_names == ["EMG B"]
        assert np.allclose(s.emg_uv[:, 0], b, atol=0.02)
        assert s.angle_rate_hz == 100 and s.angle_deg[-1] == pytest.approx(90, abs=0.01)
    out2 = tmp_path / "r.h5"
    assert main(["import", str(edf), "-o", str(out2), "--rate", "2000"]) == 0
    with tonuslab.open(out2) as s:
        assert s.emg_rate_hz == 2000 and s.emg_channel_names == ["EMG A", "EMG B"]
    assert main(["import", str(edf), "-o", str(tmp_path / "x.h5"), "--emg", "EMG C"]) == 2
    assert "no EMG channel 'EMG C'" in capsys.readouterr().err


def _stretch_edf(path, synth, startdate, seed=0):
    d = synth.synthetic_stretch(seed=seed)
    emg_mv = _trim(d["emg_counts"][:, 0] * synth.EMG_SCALE_UV / 1000.0, 2000)
    angle = _trim(d["angle_counts"][:, 0] * synth.ANGLE_SCALE_DEG, 500)
    _write_edf(
        path,
        [emg_mv[: len(angle) * 4], angle],
        [
            _signal_header("EMG soleus", "mV", 2000, -1.0, 1.0),
            _signal_header("Goniometer", "deg", 500, -20.0, 120.0),
        ],
        startdate=startdate,
    )
    return path


def test_imported_session_starts_when_its_recording_started(tmp_path, synth, capsys):
    import datetime as dt
    import time

    from pynwb import NWBHDF5IO

    late = _stretch_edf(tmp_path / "late.edf", synth, dt.datetime(2020, 1, 2, 12, 30), seed=1)
    early = _stretch_edf(tmp_path / "early.edf", synth, dt.datetime(2020, 1, 2, 10, 0), seed=2)
    # imported in the wrong order, a second apart: import times would order them late, early
    for edf in (late, early):
        assert (
            main(["import", str(edf), "-o", str(edf.with_suffix(".h5")), "--muscle", "soleus"]) == 0
        )
        time.sleep(1.1)
    h5_late, h5_early = late.with_suffix(".h5"), early.with_suffix(".h5")
    with tonuslab.open(h5_early) as s:
        assert s.start_time_utc == "2020-01-02T10:00:00+00:00"
        assert s.reader.attrs["created_utc"] > "2025"  # the import time is kept, but not used
    capsys.readouterr()
    assert main(["compare", str(h5_late), str(h5_early), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [pathlib.Path(x["file"]).name for x in result["sessions"]] == ["early.h5", "late.h5"]
    assert [x["time_h"] for x in result["sessions"]] == [0.0, 2.5]
    # also when the stored run was analysed (and its session_start stored) before
    assert main(["analyze", str(h5_late), "--json"]) == 0
    stored = json.loads(capsys.readouterr().out)
    assert stored["session_start"] == "2020-01-02T12:30:00+00:00"
    out = tmp_path / "early.nwb"
    assert main(["export", str(h5_early), "--nwb", str(out)]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBHDF5IO(str(out), "r") as io:
            start = io.read().session_start_time
    assert start == dt.datetime(2020, 1, 2, 10, 0, tzinfo=dt.UTC)


def _csv(tmp_path, text, name="x.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_value_beyond_an_int32_count_is_refused_with_row_and_column(tmp_path, capsys):
    src = _csv(tmp_path, "emg_v,angle\n0.001,1\n0.002,2\n30,3\n0.001,4\n")  # 30 V
    out = tmp_path / "x.h5"
    code = main(["import", str(src), "-o", str(out), "--rate", "1000", "--emg", "emg_v:V"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "column 'emg_v', data row 3" in err and "3e+07 uV" in err
    assert not out.exists()
    src = _csv(tmp_path, "emg,angle\n1,1\n1,3000000\n", "a.csv")  # 3e6 deg
    code = main(["import", str(src), "-o", str(out), "--rate", "1000", "--emg", "emg",
                 "--angle", "angle"])  # fmt: skip
    assert code == 2 and "column 'angle', data row 2" in capsys.readouterr().err
    # the largest storable value still imports exactly
    src = _csv(tmp_path, "emg\n21474836.47\n-21474836.47\n0\n", "edge.csv")
    assert main(["import", str(src), "-o", str(out), "--rate", "1000", "--emg", "emg"]) == 0
    with tonuslab.open(out) as s:
        assert s.emg_uv[:, 0].tolist() == pytest.approx([21474836.47, -21474836.47, 0.0])
        assert s.gaps == []


def test_csv_stimulus_column_counts_rising_edges(tmp_path, capsys):
    stim = [3, 3, 0, 0, 5, 5, 5, 0, 0, 7, 0, 2.5, 2.5, 0, 0, 0]
    text = "emg,stim\n" + "".join(f"{i}.0,{v}\n" for i, v in enumerate(stim))
    out = tmp_path / "s.h5"
    argv = ["import", str(_csv(tmp_path, text)), "-o", str(out), "--rate", "1000",
            "--emg", "emg", "--stim", "stim"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    with tonuslab.open(out) as s:
        got = [(st.emg_sample_index, st.intensity_ma) for st in s.stimuli]
    assert got == [(0, 3.0), (4, 5.0), (9, 7.0), (11, 2.5)]


def _stim_edf(tmp_path, annotations, seconds=4, name="s.edf"):
    rng = np.random.default_rng(0)
    edf = tmp_path / name
    _write_edf(
        edf,
        [rng.normal(0, 20, 1000 * seconds)],
        [_signal_header("Sol", "uV", 1000, -500, 500)],
        annotations,
    )
    return edf


def test_edf_decimal_comma_and_unreadable_stim_annotations(tmp_path, capsys):
    assert parse_stim_annotation("stim 12,5 mA") == {"intensity_ma": 12.5, "width_us": None}
    assert parse_stim_annotation("STIM: 3,25mA, 500us") == {"intensity_ma": 3.25, "width_us": 500.0}
    edf = _stim_edf(tmp_path, [(0.5, -1, "stim 12,5 mA"), (1.5, -1, "stim 8.0mA"),
                               (2.5, -1, "stim twelve mA")])  # fmt: skip
    out = tmp_path / "s.h5"
    assert main(["import", str(edf), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: annotation 'stim twelve mA' at 2.5 s" in err and "marker" in err
    with tonuslab.open(out) as s:
        assert [(st.emg_sample_index, st.intensity_ma) for st in s.stimuli] == [
            (500, 12.5),
            (1500, 8.0),
        ]
        assert [e["label"] for e in s.events if e["kind"] == "marker"] == ["stim twelve mA"]


def test_edf_stimuli_after_the_data_are_dropped_with_a_warning(tmp_path, capsys):
    annotations = [(1.0, -1, "stim 5mA"), (4.0, -1, "stim 6mA"), (9.0, -1, "stim 7mA")]
    edf = _stim_edf(tmp_path, annotations, seconds=4)  # 4000 rows: 0 to 4 s
    out = tmp_path / "s.h5"
    assert main(["import", str(edf), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: 2 of 3 stimulus annotations lie outside the data (0 to 4 s" in err
    with tonuslab.open(out) as s:
        assert [st.intensity_ma for st in s.stimuli] == [5.0]
    late = _stim_edf(tmp_path, [(5.0, -1, "stim 5mA"), (6, -1, "stim 6mA")], name="late.edf")
    code = main(["import", str(late), "-o", str(tmp_path / "late.h5")])
    err = capsys.readouterr().err
    assert code == 2 and "all 2 stimulus annotations lie outside the data" in err
    assert "Traceback" not in err and not (tmp_path / "late.h5").exists()
