import pytest

from firmware_iface.conformance import FAIL, PASS, SKIP, run_conformance
from firmware_iface.emulator import Faults, emulator_link, make_device

KEY = bytes(range(1, 33))


def _run(faults=None, key=KEY, **kw):
    link = emulator_link(make_device(stim_key=KEY, faults=faults or Faults()))
    try:
        return run_conformance(link, stim_key=key, timeout_s=0.5, stream_seconds=1.0, **kw)
    finally:
        link.close()


def test_emulator_passes_every_check():
    report = _run()
    statuses = {c.name: c.status for c in report.checks}
    assert statuses.pop("clock vs host") == SKIP  # as fast as possible: no real-time clock
    assert set(statuses.values()) == {PASS} and len(statuses) == 9, report.table()
    assert report.passed


def _run_realtime(drift_ppm):
    link = emulator_link(make_device(stim_key=KEY, drift_ppm=drift_ppm), speed="realtime")
    try:
        return run_conformance(link, stim_key=KEY, stream_seconds=1.0)
    finally:
        link.close()


def test_realtime_emulator_passes_the_clock_check_and_a_drifting_one_fails():
    good = _run_realtime(0.0)
    assert [c.status for c in good.checks] == [PASS] * 10, good.table()
    bad = _run_realtime(600.0)
    assert {c.name for c in bad.checks if c.status == FAIL} == {"clock vs host"}, bad.table()


def test_without_key_pulse_timing_is_skipped_not_failed():
    report = _run(key=None)
    assert report.status("stimulation timing") == SKIP
    assert report.status("stimulation auth") == PASS
    assert report.passed


@pytest.mark.parametrize(
    ("faults", "failing"),
    [
        (Faults(timestamp_error_ppm=500), {"timestamps vs rate"}),
        (Faults(stim_time_error_us=300), {"stimulation timing"}),
        (Faults(silent_on_malformed=True), {"malformed commands"}),
        (Faults(accept_unauthenticated=True), {"stimulation auth"}),
        # a dropped frame may also hold a pulse's sample, which then cannot be timed
        (Faults(greeting=True), {"silent until spoken to"}),
        (Faults(drop_frame_every=5), {"sequence continuity", "stimulation timing?"}),
    ],
)
def test_broken_devices_fail_the_relevant_check(faults, failing):
    report = _run(faults)
    failed = {c.name for c in report.checks if c.status == FAIL}
    required = {f for f in failing if not f.endswith("?")}
    allowed = required | {f.rstrip("?") for f in failing}
    assert required <= failed <= allowed, report.table()
    assert not report.passed
    assert "does NOT conform" in report.table()


def test_device_that_skips_acks_fails_and_battery_still_finishes():
    report = _run(Faults(skip_acks=True))
    assert report.status("identify") == PASS
    assert report.status("configuration round trip") == FAIL
    assert report.status("start/stop") == FAIL
    assert len(report.checks) == 10
