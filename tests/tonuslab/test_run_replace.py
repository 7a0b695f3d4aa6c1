"""A second analysis with other parameters needs --run NAME or --replace (issue 17 item 6)."""

from tonuslab.cli import main
from tonuslab.results import read_results


def test_other_parameters_do_not_silently_replace_the_default_run(stretch_copy, capsys):
    assert main(["analyze", str(stretch_copy)]) == 0
    before = read_results(stretch_copy)["default"]
    capsys.readouterr()
    assert main(["analyze", str(stretch_copy), "--detector", "tkeo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--run NAME" in err and "--replace" in err
    assert "detector" in err
    assert read_results(stretch_copy)["default"]["created_utc"] == before["created_utc"]
    # the same parameters again are fine; another run name keeps both; --replace replaces
    assert main(["analyze", str(stretch_copy)]) == 0
    assert main(["analyze", str(stretch_copy), "--detector", "tkeo", "--run", "tkeo"]) == 0
    runs = read_results(stretch_copy)
    assert runs["tkeo"]["parameters"]["detector"] == "tkeo"
    assert runs["default"]["parameters"]["detector"] != "tkeo"
    assert main(["analyze", str(stretch_copy), "--detector", "tkeo", "--replace"]) == 0
    assert read_results(stretch_copy)["default"]["parameters"]["detector"] == "tkeo"
