"""OpenSignals text import (issue 15 part 2): a file written by the test in the format PLUX
documents; EMG and goniometer through the published transfer functions (computed here from the
datasheet formulas, not from our module), nSeq gaps, I1 rising edges as stimuli."""

import json

import numpy as np

from acquire.session_file import open_session
from tonuslab.cli import main

RATE = 1000


def _file(path, *, lost=(3000, 5)):
    n = 6000
    rng = np.random.default_rng(1)
    emg_adc = (32768 + rng.integers(-800, 800, n)).astype(np.int64)
    goni_adc = np.linspace(20000, 45000, n).astype(np.int64)
    i1 = np.zeros(n, np.int64)
    i1[2000:2010] = 1  # one TTL pulse from the stimulator
    seq = np.arange(n) % 16
    keep = np.ones(n, bool)
    keep[lost[0] : lost[0] + lost[1]] = False  # five samples lost on the link
    header = {"00:07:80:0F:30:B0": {
        "sampling rate": RATE, "resolution": [4, 1, 1, 1, 1, 16, 16],
        "column": ["nSeq", "I1", "I2", "O1", "O2", "A1", "A2"],
        "sensor": ["EMG", "GONI"], "label": ["A1", "A2"], "device": "biosignalsplux",
    }}  # fmt: skip
    rows = [
        f"{seq[k]}\t{i1[k]}\t0\t0\t0\t{emg_adc[k]}\t{goni_adc[k]}" for k in np.flatnonzero(keep)
    ]
    path.write_text("# OpenSignals Text File Format\n# " + json.dumps(header)
                    + "\n# EndOfHeader\n" + "\n".join(rows) + "\n")  # fmt: skip
    return path, emg_adc, goni_adc, keep


def test_transfer_functions_gaps_and_ttl(tmp_path):
    src, emg_adc, goni_adc, keep = _file(tmp_path / "plux.txt")
    assert main(["import", str(src), "-o", str(tmp_path / "plux.h5")]) == 0
    # PLUX datasheets: EMG(V) = (ADC/2^n - 1/2) * VCC / G, VCC 3 V, G 1000;
    # ANG(deg) = (VCC/(2^n - 1) * ADC - VCC/2) / (VCC/2 * 606e-5)
    emg_uv = (emg_adc / 2**16 - 0.5) * 3.0 / 1000.0 * 1e6
    ang_deg = (3.0 / (2**16 - 1) * goni_adc - 1.5) / (1.5 * 606e-5)
    with open_session(tmp_path / "plux.h5") as s:
        assert s.emg.n_samples == keep.size
        assert [(g["start_index"], g["n_samples"]) for g in s.gaps if g["stream"] == "emg"] == [
            (3000, 5)
        ]
        x = s.emg_uv[:, 0]
        np.testing.assert_allclose(x[keep], emg_uv[keep], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(s.goniometer_deg[keep, 0], ang_deg[keep], atol=1e-6)
        assert [st.emg_sample_index for st in s.stimuli] == [2000]
    assert main(["analyze", str(tmp_path / "plux.h5"), "--no-write"]) == 0  # analysed as recorded


def test_a_row_that_is_not_numbers_is_one_line(tmp_path, capsys):
    src, *_ = _file(tmp_path / "bad.txt")
    lines = src.read_text().splitlines()
    lines[10] = lines[10].replace("\t0\t0\t0\t", "\tx\t0\t0\t", 1)
    src.write_text("\n".join(lines) + "\n")
    assert main(["import", str(src), "-o", str(tmp_path / "bad.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "line 11" in err and "'x'" in err


def test_hdf5_file_gives_the_same_session_as_the_text_file(tmp_path):
    """OpenSignals' HDF5 layout (a group per device, raw/nSeq, raw/channel_<k>,
    digital/digital_<k>, header fields as attributes) imports like its text twin."""
    import h5py

    src, *_ = _file(tmp_path / "twin.txt")
    assert main(["import", str(src), "-o", str(tmp_path / "twin_txt.h5")]) == 0
    rows = np.loadtxt(src, comments="#", dtype=np.int64)
    h5 = tmp_path / "twin_os.h5"
    with h5py.File(h5, "w") as f:
        g = f.create_group("00:07:80:0F:30:B0")
        g.attrs["sampling rate"] = RATE
        g.attrs["resolution"] = json.dumps([4, 1, 1, 1, 1, 16, 16])
        g.attrs["sensor"] = json.dumps(["EMG", "GONI"])
        g.attrs["label"] = json.dumps(["A1", "A2"])
        g.attrs["column"] = json.dumps(["nSeq", "I1", "I2", "O1", "O2", "A1", "A2"])
        g.create_dataset("raw/nSeq", data=rows[:, 0:1])
        g.create_dataset("raw/channel_1", data=rows[:, 5:6])
        g.create_dataset("raw/channel_2", data=rows[:, 6:7])
        g.create_dataset("digital/digital_1", data=rows[:, 1:2])
    assert main(["import", str(h5), "-o", str(tmp_path / "twin_h5.h5"), "--format",
                 "opensignals"]) == 0  # fmt: skip
    with open_session(tmp_path / "twin_txt.h5") as a, open_session(tmp_path / "twin_h5.h5") as b:
        np.testing.assert_array_equal(a.emg_counts, b.emg_counts)
        np.testing.assert_array_equal(a.goniometer_deg, b.goniometer_deg)
        assert a.gaps == b.gaps
        assert [s.emg_sample_index for s in a.stimuli] == [s.emg_sample_index for s in b.stimuli]
