"""The full demo: emulated device -> recorder -> session files -> analysis -> report."""

import numpy as np

import tonuslab
from tonuslab.pipeline_demo import record_hreflex_session, run_full_demo


def test_hreflex_recording_through_the_device_keeps_intervals(tmp_path):
    path = record_hreflex_session(tmp_path / "h.h5", step_ma=6.0)
    with tonuslab.open(path) as s:
        t = np.array([st.time_s for st in s.stimuli])
        assert s.reader.state == "complete" and s.emg_rate_hz == 5000
    intervals = np.diff(t)
    ladder, block = intervals[intervals > 5], intervals[intervals < 5]
    assert ladder.size >= 5 and np.all(np.abs(ladder - 10.0) < 1.5)  # loaded CI machines
    # 1 Hz block: timed on the device clock from the host, so a loaded machine adds jitter
    assert block.size == 7 and abs(np.median(block) - 1.0) < 0.15 and np.all(block > 0.5)


def test_full_demo(tmp_path):
    lines = []
    result = run_full_demo(tmp_path, print_fn=lines.append)
    text = "\n".join(lines)
    assert "Spasticity profile" in text and "simulator truth" in text
    s, h = result["summaries"]["stretch"], result["summaries"]["hreflex"]
    assert s["tsrt_deg"] is not None and s["tsrt_inside_range"] is True
    assert h["hmax_mmax"] is not None and "1" in h["rate_dependent_depression"]
    html = (tmp_path / "report.html").read_text()
    assert html.count('class="figure"') >= 7


def test_bolus_series_compares_without_times(tmp_path, capsys):
    import json

    from tonuslab.cli import main
    from tonuslab.pipeline_demo import simulate_bolus_series

    files = simulate_bolus_series(tmp_path, shifts_deg={0.0: 0.0, 2.0: 60.0, 6.0: 60.0, 24.0: 0.0})
    assert main(["compare", *map(str, files), "--json"]) == 0  # times from the metadata
    result = json.loads(capsys.readouterr().out)
    assert [s["time_h"] for s in result["sessions"]] == [0, 2, 6, 24]
    tsrt = result["metrics"]["tsrt_deg"]
    assert tsrt["srd"] == 32.0  # elbow flexors
    assert tsrt["beyond_srd"] == [False, True, True, False]
    assert result["responder"]["responder"] is True
    assert result["responder"]["effect_duration_h"] == 4.0
