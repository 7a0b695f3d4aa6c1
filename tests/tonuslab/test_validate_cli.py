"""`tonuslab validate SUITE`: the accuracy suites rerun from the command line."""

import json

from tonuslab.cli import main


def test_validate_segmentation_quick_json(capsys):
    assert main(["validate", "segmentation", "--seeds", "1", "--quick", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["suite"] == "segmentation" and len(result["rows"]) == 6
    for row in result["rows"]:
        assert row["n_stretches"] == 7 and row["missed"] == 0
        # the budgets of docs/validation.md (the slow 10 deg/s stretches set the maxima)
        assert row["start_delay_fraction"][1] <= 0.12 and row["extra"] == 0
        assert row["start_angle_abs_error_deg"][1] <= 2.0


def test_validate_refuses_zero_seeds(capsys):
    assert main(["validate", "segmentation", "--seeds", "0"]) == 2
    assert "--seeds must be at least 1" in capsys.readouterr().err
