"""NWB export: subject age and sex, experimenter and institution (issue 18 item 9)."""

import pytest

from tonuslab.cli import main

pytest.importorskip("pynwb")


def test_subject_fields_reach_the_nwb_file(stretch_file, tmp_path, capsys):
    from pynwb import NWBHDF5IO

    out = tmp_path / "s.nwb"
    args = ["export", str(stretch_file), "--nwb", str(out), "--subject-age", "45",
            "--subject-sex", "f", "--experimenter", "A. Tech", "--experimenter", "B. Lab",
            "--institution", "Rehab lab"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    with NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        assert nwb.subject.age == "P45Y" and nwb.subject.sex == "F"
        assert list(nwb.experimenter) == ["A. Tech", "B. Lab"]
        assert nwb.institution == "Rehab lab"


def test_unknown_is_allowed_explicitly_and_nonsense_is_refused(stretch_file, tmp_path, capsys):
    from pynwb import NWBHDF5IO

    out = tmp_path / "u.nwb"
    assert main(["export", str(stretch_file), "--nwb", str(out), "--subject-age", "unknown",
                 "--subject-sex", "unknown"]) == 0  # fmt: skip
    with NWBHDF5IO(str(out), "r") as io:
        subject = io.read().subject
        assert (subject.age, subject.sex) == ("unknown", "U")
    capsys.readouterr()
    for flag, value in (("--subject-age", "forty"), ("--subject-sex", "X")):
        bad = tmp_path / f"bad{flag}.nwb"
        assert main(["export", str(stretch_file), "--nwb", str(bad), flag, value]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and value in err and not bad.exists()
