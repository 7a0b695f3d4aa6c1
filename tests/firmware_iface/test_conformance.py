import re

import pytest

from firmware_iface.conformance import CHECKS, FAIL, PASS, SKIP, run_conformance
from firmware_iface.emulator import Faults, emulator_link, make_device

KEY = bytes(range(1, 33))


def _run(faults=None, key=KEY, pairing=True, **kw):
    device = make_device(stim_key=KEY, faults=faults or Faults())
    if pairing:  # the operator holds the pairing button: the re-pairing check runs
        device.open_pairing_window(3600)
    link = emulator_link(device)
    try:
        return run_conformance(link, stim_key=key, timeout_s=0.5, stream_seconds=1.0, **kw)
    finally:
        link.close()


def test_emulator_passes_every_check():
    report = _run()
    assert tuple(c.name for c in report.checks) == CHECKS
    statuses = {c.name: c.status for c in report.checks}
    # as fast as possible: no real-time clock to compare the device clock and the samples with
    assert statuses.pop("clock vs host") == SKIP
    assert statuses.pop("sampling rate vs clock") == SKIP
    assert set(statuses.values()) == {PASS} and len(statuses) == len(CHECKS) - 2, report.table()
    assert report.passed


def _run_realtime(drift_ppm=0.0, faults=None):
    device = make_device(stim_key=KEY, drift_ppm=drift_ppm, faults=faults)
    device.open_pairing_window(3600)
    link = emulator_link(device, speed="realtime")
    try:
        return run_conformance(link, stim_key=KEY, stream_seconds=1.0)
    finally:
        link.close()


def test_realtime_emulator_passes_the_clock_check_and_a_drifting_one_fails():
    good = _run_realtime(0.0)
    assert [c.status for c in good.checks] == [PASS] * len(CHECKS), good.table()
    assert "2 ms after the command" in next(
        c.detail for c in good.checks if c.name == "stimulation timing"
    )
    # a drifting crystal: the device clock is off, its samples still follow it
    bad = _run_realtime(600.0)
    assert {c.name for c in bad.checks if c.status == FAIL} == {"clock vs host"}, bad.table()


@pytest.mark.parametrize("ppm", [2000, -2000])
def test_device_sampling_off_its_own_clock_fails_the_sampling_rate_check(ppm):
    """Nominal time stamps on samples taken 2000 ppm too fast (or slow): the time stamps agree
    with the configured rate, the device clock with the host, only the samples are off."""
    report = _run_realtime(faults=Faults(rate_error_ppm=ppm))
    failed = {c.name for c in report.checks if c.status == FAIL}
    # the pulse, placed on the true sample clock, is then also off against the command
    assert "sampling rate vs clock" in failed, report.table()
    assert failed <= {"sampling rate vs clock", "stimulation timing"}, report.table()
    assert report.status("timestamps vs rate") == PASS and report.status("clock vs host") == PASS
    detail = next(c.detail for c in report.checks if c.name == "sampling rate vs clock")
    measured = float(re.search(r"sampling rate ([+-]\d+) \+/- \d+ ppm", detail).group(1))
    assert abs(measured - ppm) < 500, detail


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
        (Faults(accept_unauthenticated=True), {"stimulation auth", "re-pairing replay?"}),
        (Faults(ignore_expiry=True), {"stimulation auth"}),
        (Faults(ignore_limits=True), {"stimulation limits"}),
        (Faults(reset_counter_on_pair=True), {"re-pairing replay"}),
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
    assert len(report.checks) == len(CHECKS)


def test_re_pairing_replay_is_skipped_without_the_pairing_window():
    """A real device needs its button held for PAIR; without it the check says so."""
    report = _run(pairing=False)
    assert report.status("re-pairing replay") == SKIP and report.passed
    detail = next(c.detail for c in report.checks if c.name == "re-pairing replay")
    assert "pairing button" in detail


def test_counter_reset_at_pair_fails_and_the_replayed_command_is_named():
    report = _run(Faults(reset_counter_on_pair=True))
    detail = next(c.detail for c in report.checks if c.name == "re-pairing replay")
    assert "moved the counter back" in detail and "accepted instead of refused" in detail


def test_a_device_without_the_stimulation_watchdog_fails_in_real_time():
    report = _run_realtime(faults=Faults(ignore_heartbeat=True))
    failed = {c.name for c in report.checks if c.status == FAIL}
    assert failed == {"stimulation watchdog"}, report.table()
    detail = next(c.detail for c in report.checks if c.name == "stimulation watchdog")
    assert "all 50 pulses delivered" in detail and "no HEARTBEAT_LOST" in detail


def test_fast_device_over_a_bounded_link_is_still_checked():
    """In-process and fast: the link's 64 KiB stop the device while the host is silent, its
    uptime runs on, and the watchdog fires; a broken fast device runs the whole train ahead,
    which says nothing in fast mode (SKIP; it fails in real time, above)."""
    report = _run(Faults(ignore_heartbeat=True))
    assert report.status("stimulation watchdog") in (FAIL, SKIP)
    assert _run().status("stimulation watchdog") == PASS
