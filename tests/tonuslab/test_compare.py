"""Comparison over time: changes against the SRD, effect duration, responder criterion."""

import pytest

from tonuslab.compare import ResponderCriterion, compare, format_comparison
from tonuslab.errors import UsageError
from tonuslab.profile import srd_from_icc

TIMES = [0, 0.5, 1, 2, 4, 8, 24]
ANKLE_SRD = srd_from_icc(13.0, 0.85)  # 13.9 deg


def _series(tsrts, muscle="soleus"):
    return [
        {"file": f"s{i}.h5", "muscle": muscle, "subject": "P1", "tsrt_deg": t, "hmax_mmax": 0.5}
        for i, t in enumerate(tsrts)
    ]


def test_responder_when_effect_lasts_four_hours():
    # beyond SRD (13.9) at 1, 2, 4, 8 h -> 7 h of effect
    result = compare(_series([40, 45, 60, 70, 65, 56, 42]), times_h=TIMES)
    m = result["metrics"]["tsrt_deg"]
    assert m["srd"] == pytest.approx(ANKLE_SRD, abs=1e-3)
    assert m["changes"][2] == 20 and m["beyond_srd"] == [
        False,
        False,
        True,
        True,
        True,
        True,
        False,
    ]
    r = result["responder"]
    assert (r["effect_start_h"], r["effect_end_h"], r["effect_duration_h"]) == (1, 8, 7)
    assert r["responder"] is True
    # hmax_mmax has no SRD: shown, never flagged
    assert result["metrics"]["hmax_mmax"]["beyond_srd"] == [None] * 7


def test_short_effect_is_not_a_responder_and_criterion_is_configurable():
    series = _series([40, 60, 60, 45, 41, 40, 40])  # effect 0.5 -> 1 h
    r = compare(series, times_h=TIMES)["responder"]
    assert r["responder"] is False and r["effect_duration_h"] == 0.5
    r = compare(series, times_h=TIMES, criterion=ResponderCriterion(min_duration_h=0.5))
    assert r["responder"]["responder"] is True
    # a decrease is not an improvement unless asked for
    down = _series([60, 40, 40, 40, 40, 60, 60])
    assert compare(down, times_h=TIMES)["responder"]["responder"] is False
    crit = ResponderCriterion(direction="decrease")
    assert compare(down, times_h=TIMES, criterion=crit)["responder"]["effect_duration_h"] == 3.5


def test_no_srd_means_no_decision_unless_given():
    series = _series([40, 60, 60, 60, 60, 60, 60], muscle="fcr")
    r = compare(series, times_h=TIMES)["responder"]
    assert r["responder"] is None and "smallest real difference" in r["reason"]
    r = compare(series, times_h=TIMES, criterion=ResponderCriterion(srd=5.0))["responder"]
    assert r["responder"] is True


def test_times_from_start_times_and_order():
    s = _series([60, 40])
    s[0]["session_start"] = "2026-01-01T12:00:00+00:00"
    s[1]["session_start"] = "2026-01-01T10:00:00+00:00"
    result = compare(s)
    assert [x["time_h"] for x in result["sessions"]] == [0, 2]
    assert result["sessions"][0]["file"] == "s1.h5"
    assert "TSRT" in format_comparison(result)


def test_user_errors():
    with pytest.raises(UsageError):
        compare(_series([1]), times_h=[0])
    with pytest.raises(UsageError):
        compare(_series([1, 2]))  # no times
    mixed = _series([1, 2])
    mixed[1]["muscle"] = "biceps"
    with pytest.raises(UsageError):
        compare(mixed, times_h=[0, 1])
    with pytest.raises(UsageError):
        ResponderCriterion(metric="nope")


def test_compare_cli_json_and_table(tmp_path, synth, capsys):
    import json

    from tonuslab.cli import main

    files = []
    for i, shift in enumerate((0.0, 25.0, 25.0)):
        old = synth.TRUE_TSRT_DEG
        synth.TRUE_TSRT_DEG = old + shift
        try:
            data = synth.synthetic_stretch(seed=i, velocities=(40, 90, 140, 200, 260, 330))
        finally:
            synth.TRUE_TSRT_DEG = old
        path = tmp_path / f"s{i}.h5"
        synth.write_test_session(path, data, metadata={"passive_range_deg": [0.0, 100.0]})
        files.append(str(path))
    assert main(["compare", *files, "--times", "0,2,6", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    tsrt = result["metrics"]["tsrt_deg"]
    assert tsrt["beyond_srd"] == [False, True, True]  # +25 deg > ankle SRD 13.9 deg
    assert result["responder"]["responder"] is True
    assert result["responder"]["effect_duration_h"] == 4.0
    assert main(["compare", *files, "--times", "0,2,6", "--min-duration", "5"]) == 0
    out = capsys.readouterr().out
    assert "not a responder" in out and "TSRT" in out
    # user errors: wrong number of times, a single file
    assert main(["compare", *files, "--times", "0,2"]) == 2
    assert main(["compare", files[0]]) == 2
    assert main(["compare", *files, "--times", "0,x,2"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 3


def test_different_analysis_parameters_are_warned_about():
    s = _series([40, 60])
    s[0]["parameters"] = {"detector": "threshold"}
    s[1]["parameters"] = {"detector": "tkeo"}
    result = compare(s, times_h=[0, 1])
    assert any("different analysis parameters" in w for w in result["warnings"])
    assert "Warning:" in format_comparison(result)
    s[1]["parameters"] = {"detector": "threshold", "passive_range_deg": [0, 120]}
    assert compare(s, times_h=[0, 1])["warnings"] == []  # the range is not the method


def test_hreflex_options_count_as_the_method():
    s = _series([40, 60])
    s[0]["parameters"] = {"detector": "threshold", "m_window_ms": None}
    s[1]["parameters"] = {"detector": "threshold", "m_window_ms": [2.0, 12.0]}
    (warning,) = compare(s, times_h=[0, 1])["warnings"]
    assert "different analysis parameters (m_window_ms)" in warning
    for key, value in (
        ("background_band_uv", [0.0, 20.0]),
        ("h_window_ms", [25.0, 45.0]),
        ("test_m_fraction", 0.3),
    ):
        s[1]["parameters"] = {"detector": "threshold", key: value}
        assert key in compare(s, times_h=[0, 1])["warnings"][0]
    s[1]["parameters"] = {"detector": "threshold"}  # absent = the default
    assert compare(s, times_h=[0, 1])["warnings"] == []


@pytest.mark.parametrize("srd", [0.0, -2.0, float("nan"), float("inf")])
def test_srd_must_be_positive_and_finite(srd):
    with pytest.raises(UsageError, match="--srd must be a positive number"):
        ResponderCriterion(srd=srd)


@pytest.mark.parametrize("times", [[0, -1, 2], [0, float("nan"), 2], [0, 1, float("inf")]])
def test_times_must_be_finite_and_not_negative(times):
    with pytest.raises(UsageError, match="--times value"):
        compare(_series([40, 50, 60]), times_h=times)


@pytest.fixture(scope="module")
def three_sessions(tmp_path_factory, synth):
    d = tmp_path_factory.mktemp("compare_cli")
    files = []
    for i, shift in enumerate((0.0, 25.0, 25.0)):
        old = synth.TRUE_TSRT_DEG
        synth.TRUE_TSRT_DEG = old + shift
        try:
            data = synth.synthetic_stretch(seed=i, velocities=(40, 90, 140, 200, 260, 330))
        finally:
            synth.TRUE_TSRT_DEG = old
        path = d / f"s{i}.h5"
        synth.write_test_session(path, data, metadata={"passive_range_deg": [0.0, 100.0]})
        files.append(str(path))
    return files


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--srd", "0"], "--srd must be a positive number"),
        (["--srd", "-3"], "--srd must be a positive number"),
        (["--srd", "nan"], "--srd must be a positive number"),
        (["--times", "0,-2,6"], "--times value 2 is -2"),
        (["--times", "0,nan,6"], "--times value 2 is nan"),
        (["--times", "0,2,inf"], "--times value 3 is inf"),
    ],
)
def test_compare_cli_refuses_bad_srd_and_times(three_sessions, extra, needle, capsys):
    from tonuslab.cli import main

    argv = ["compare", *three_sessions, *extra]
    if "--times" not in extra:
        argv += ["--times", "0,2,6"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_compare_cli_run_name(three_sessions, capsys):
    import json

    from tonuslab.cli import main

    for f in three_sessions[:2]:
        assert main(["analyze", f, "--run", "tkeo", "--detector", "tkeo"]) == 0
    capsys.readouterr()
    # a file without the run is refused, naming the runs it has
    assert main(["compare", *three_sessions, "--times", "0,2,6", "--run", "tkeo"]) == 2
    err = capsys.readouterr().err
    assert "has no results run 'tkeo'" in err and "(it has: none)" in err
    assert main(["analyze", three_sessions[2], "--run", "tkeo", "--detector", "tkeo"]) == 0
    capsys.readouterr()
    assert main(["compare", *three_sessions, "--times", "0,2,6", "--run", "tkeo", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["warnings"] == [] and result["metrics"]["tsrt_deg"]["beyond_srd"][1] is True
    # the summaries really come from the run
    from tonuslab.commands.compare import load_summaries

    assert {s["parameters"]["detector"] for s in load_summaries(three_sessions, "tkeo")} == {"tkeo"}
    assert {s["parameters"]["detector"] for s in load_summaries(three_sessions)} == {"threshold"}
