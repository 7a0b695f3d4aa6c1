"""Imports of messy real-world files (issue 17, item 5): BOM, European CSV, missing cells,
headerless files, time columns and EDF unit overrides. Every fixture is written here."""

from __future__ import annotations

import numpy as np
import pytest

import tonuslab
from tonuslab.cli import main
from tonuslab.io_import import ImportFormatError, import_csv
from tonuslab.io_import.csv_file import TIME_NAMES


def _import(tmp_path, name, *args):
    return main(["import", str(tmp_path / name), "-o", str(tmp_path / "out.h5"), *args])


def _one_line_refusal(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_bom_before_the_header_is_skipped(tmp_path, capsys):
    body = "Time,EMG\n" + "".join(f"{i / 1000:.4f},{i % 7}.5\n" for i in range(50))
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + body.encode())
    assert _import(tmp_path, "bom.csv", "--emg", "EMG", "--time", "Time") == 0, (
        capsys.readouterr().err
    )
    with tonuslab.open(tmp_path / "out.h5") as s:
        assert s.emg_uv[:3, 0] == pytest.approx([0.5, 1.5, 2.5])


def test_semicolons_and_decimal_commas(tmp_path, capsys):
    rows = ["zeit;emg_mv;winkel"]
    rows += [f"{i / 500:.3f}".replace(".", ",") + f";0,{i:03d};{i / 10:.1f}".replace(".", ",")
             for i in range(40)]  # fmt: skip
    (tmp_path / "eu.csv").write_text("\n".join(rows) + "\n")
    code = _import(tmp_path, "eu.csv", "--emg", "emg_mv:mV", "--angle", "winkel", "--time", "zeit")
    assert code == 0, capsys.readouterr().err
    with tonuslab.open(tmp_path / "out.h5") as s:
        assert s.emg_rate_hz == 500.0
        assert s.emg_uv[:3, 0] == pytest.approx([0.0, 1.0, 2.0], abs=0.01)  # 0,001 mV = 1 uV
        assert s.angle_deg[39] == pytest.approx(3.9, abs=1e-3)


def test_null_cells_become_gaps_and_a_word_names_row_column_value(tmp_path, capsys):
    rows = ["Time,EMG_zyg,EMG_cor"]
    for i in range(60):
        cell = "NULL" if 20 <= i < 25 else f"{i}.0"
        rows.append(f"{i / 2000:.4f},{cell},{cell}")
    (tmp_path / "null.csv").write_text("\n".join(rows) + "\n")
    assert _import(tmp_path, "null.csv", "--emg", "EMG_zyg", "--emg", "EMG_cor") == 0
    with tonuslab.open(tmp_path / "out.h5") as s:
        assert [(g["stream"], g["start_index"], g["n_samples"]) for g in s.gaps] == [("emg", 20, 5)]
        assert np.flatnonzero(np.isnan(s.emg_uv[:, 1])).tolist() == [20, 21, 22, 23, 24]

    rows[31] = "0.0150,12.0,broken"  # file line 32: data row 31
    (tmp_path / "word.csv").write_text("\n".join(rows) + "\n")
    assert _import(tmp_path, "word.csv", "--emg", "EMG_cor", "--rate", "2000") == 2
    line = _one_line_refusal(capsys)
    assert "line 32 (data row 31)" in line and "'EMG_cor'" in line and "'broken'" in line


def test_headerless_file_is_refused_without_no_header(tmp_path, capsys):
    rows = [",".join(str((i * 7 + j) % 13 - 6) for j in range(8)) for i in range(500)]
    (tmp_path / "myo.csv").write_text("\n".join(rows) + "\n")
    assert _import(tmp_path, "myo.csv", "--emg", "3", "--rate", "200") == 2
    line = _one_line_refusal(capsys)
    assert "line 1" in line and "--no-header" in line
    assert not (tmp_path / "out.h5").exists()


def test_headerless_file_whose_first_row_has_a_null_cell_is_refused(tmp_path, capsys):
    rows = ["1.5,NULL,3"] + [f"{i},{i + 1},{i + 2}" for i in range(20)]
    (tmp_path / "nh.csv").write_text("\n".join(rows) + "\n")
    assert _import(tmp_path, "nh.csv", "--emg", "1", "--rate", "100") == 2
    assert "--no-header" in _one_line_refusal(capsys)


def test_no_header_reads_every_row_by_column_index(tmp_path, capsys):
    data = np.array([[(i * 7 + j) % 13 - 6 for j in range(8)] for i in range(500)], float)
    (tmp_path / "myo.csv").write_text("\n".join(",".join(f"{v:g}" for v in r) for r in data) + "\n")
    code = _import(tmp_path, "myo.csv", "--no-header", "--emg", "3", "--emg", "5", "--rate", "200")
    assert code == 0, capsys.readouterr().err
    with tonuslab.open(tmp_path / "out.h5") as s:
        assert s.emg_uv.shape == (500, 2)  # all 500 rows: the first one is data
        assert s.emg_uv[:, 0] == pytest.approx(data[:, 3])
        assert s.emg_uv[:, 1] == pytest.approx(data[:, 5])
        assert [c["name"] for c in s.channels] == ["column 3", "column 5"]

    assert _import(tmp_path, "myo.csv", "--no-header", "--emg", "EMG", "--rate", "200") == 2
    assert "0-based index" in _one_line_refusal(capsys)
    assert _import(tmp_path, "myo.csv", "--no-header", "--emg", "8", "--rate", "200") == 2
    assert "no column 8" in _one_line_refusal(capsys)


@pytest.mark.parametrize("name", ["time", "Time", "TIME", "time_s"])
def test_time_column_is_found_by_itself(tmp_path, capsys, name):
    assert name.lower() in TIME_NAMES
    body = f"{name},emg\n" + "".join(f"{i / 1000:.4f},{i}\n" for i in range(100))
    (tmp_path / "t.csv").write_text(body)
    assert _import(tmp_path, "t.csv", "--emg", "emg") == 0, capsys.readouterr().err
    with tonuslab.open(tmp_path / "out.h5") as s:
        assert s.emg_rate_hz == 1000.0


@pytest.mark.parametrize("t0", [0.0, 12.3456])
def test_rate_from_a_4_decimal_time_column_is_exact(tmp_path, t0):
    t = np.array([float(f"{t0 + i / 1000:.4f}") for i in range(2000)])
    assert 1.0 / np.median(np.diff(t)) != 1000.0  # the naive estimate is off: the test can fail
    body = "time,emg\n" + "".join(f"{v:.4f},1.0\n" for v in t)
    (tmp_path / "t.csv").write_text(body)
    out = import_csv(tmp_path / "t.csv", tmp_path / "o.h5", channel_map={"emg": {"emg": "uV"}})
    with tonuslab.open(out) as s:
        assert s.emg_rate_hz == 1000.0


def test_rounded_time_column_gives_the_mean_rate(tmp_path):
    t = np.round(np.arange(900) / 300.0, 3)  # steps of 3 and 4 ms
    (tmp_path / "t.csv").write_text("t,emg\n" + "".join(f"{v:.3f},0\n" for v in t))
    out = import_csv(tmp_path / "t.csv", tmp_path / "o.h5", channel_map={"emg": {"emg": "uV"}})
    with tonuslab.open(out) as s:
        assert s.emg_rate_hz == pytest.approx(300.0, rel=2e-3)


@pytest.mark.parametrize(
    "cells, needles",
    [
        ({5: "NULL"}, ["line 7", "'time'", "missing time value", "'NULL'"]),
        ({5: "0.0030"}, ["line 7", "'time'", "0.003", "uniform"]),
        ({5: "0.0100"}, ["line 7", "'time'", "0.01", "uniform"]),
    ],
)
def test_bad_time_column_names_line_column_value(tmp_path, capsys, cells, needles):
    rows = ["time,emg"] + [f"{cells.get(i, f'{i / 1000:.4f}')},1" for i in range(20)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    assert _import(tmp_path, "t.csv", "--emg", "emg") == 2
    line = _one_line_refusal(capsys)
    for n in needles:
        assert n in line, line


def test_refusals_are_import_format_errors(tmp_path):
    (tmp_path / "a.csv").write_text("emg\n1\nx\n")
    msg = r"line 3 \(data row 2\), column 'emg': 'x' is not a number"
    with pytest.raises(ImportFormatError, match=msg):
        import_csv(tmp_path / "a.csv", tmp_path / "o.h5", channel_map={"emg": {"emg": "uV"}},
                   rate_hz=100.0)  # fmt: skip
    with pytest.raises(ImportFormatError, match="--rate"):
        import_csv(tmp_path / "a.csv", tmp_path / "o.h5", channel_map={"emg": {"emg": "uV"}})


def test_angle_only_csv_is_refused_in_one_line_until_the_session_format_allows_it(tmp_path, capsys):
    (tmp_path / "gonio.csv").write_text("time,knee\n" + "".join(
        f"{i / 100:.2f},{i / 3:.3f}\n" for i in range(50)))  # fmt: skip
    assert _import(tmp_path, "gonio.csv", "--angle", "knee") == 2
    assert "at least one EMG channel" in _one_line_refusal(capsys)
    assert not (tmp_path / "out.h5").exists()


# ------------------------------------------------------------------------------------------ EDF


def _edf(path, label, dimension, values, rate=1000, phys=1000.0):
    import pyedflib

    w = pyedflib.EdfWriter(str(path), 1, file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        w.setSignalHeaders(
            [
                {
                    "label": label,
                    "dimension": dimension,
                    "sample_frequency": rate,
                    "physical_min": -phys,
                    "physical_max": phys,
                    "digital_min": -32768,
                    "digital_max": 32767,
                }
            ]
        )
        w.writeSamples([values])
    finally:
        w.close()


def test_edf_unit_override_wins_over_the_header(tmp_path, capsys):
    x = 500.0 * np.sin(np.arange(2000) / 20.0)  # numbers that are really uV
    _edf(tmp_path / "mv.edf", "EMG", "mV", x)  # header says mV (1000x too big)
    assert _import(tmp_path, "mv.edf") == 0, capsys.readouterr().err
    with tonuslab.open(tmp_path / "out.h5") as s:
        as_header = s.emg_uv[:, 0]
    assert np.max(np.abs(as_header)) == pytest.approx(500_000.0, rel=1e-3)
    assert _import(tmp_path, "mv.edf", "--emg", "EMG:uV", "--overwrite") == 0
    with tonuslab.open(tmp_path / "out.h5") as s:
        assert s.emg_uv[:, 0] == pytest.approx(x, abs=0.05)


def test_edf_dimensionless_channel_needs_and_takes_a_unit(tmp_path, capsys):
    x = 0.4 * np.cos(np.arange(1000) / 10.0)  # mV
    _edf(tmp_path / "nodim.edf", "EMG", "", x, phys=1.0)
    assert _import(tmp_path, "nodim.edf", "--emg", "EMG") == 2
    assert "--emg NAME:uV" in _one_line_refusal(capsys)
    assert _import(tmp_path, "nodim.edf", "--emg", "EMG:mV") == 0, capsys.readouterr().err
    with tonuslab.open(tmp_path / "out.h5") as s:
        assert s.emg_uv[:, 0] == pytest.approx(1000.0 * x, abs=0.05)  # 1 mV / 32767 counts
    assert _import(tmp_path, "nodim.edf", "--emg", "EMG:furlong", "--overwrite") == 2
    line = _one_line_refusal(capsys)
    assert "unknown unit 'furlong'" in line and "'EMG'" in line
