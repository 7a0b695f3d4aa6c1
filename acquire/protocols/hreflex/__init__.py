"""The ``hreflex`` recording protocol: recruitment ladder, rate blocks, paired pulses.

Four modules, usable separately (every name is importable from ``acquire.protocols.hreflex``):

- :mod:`.plan`: :func:`make_plan` turns an :class:`HReflexProtocolConfig` into an
  :class:`HReflexPlan` and refuses plans that break the host-side :class:`SafetyLimits` with one
  clear :class:`PlanError`.
- :mod:`.gate`: :func:`background_bins_uv` / :class:`BackgroundGate`, mean rectified EMG in 50 ms
  bins; a pulse is delivered only while the background is inside a band.
- :mod:`.runner`: :class:`HReflexRunner` drives ``DeviceClient.stimulate`` through the plan on
  the device's sample clock, gates each pulse, records what happened (:class:`PulseRecord`) and
  can be stopped at once from any thread.
- :mod:`.notes`: the protocol's record in the session, one writer (used by the runner) and one
  parser (:func:`read_notes`, used by the analysis).

The runner's quick M/H windows come from ``dsp.hreflex.presets.MUSCLE_PRESETS`` (the one table of
M/H timing; :func:`response_windows_ms`).
"""

from __future__ import annotations

from acquire.protocols.hreflex.gate import BackgroundGate, background_bins_uv
from acquire.protocols.hreflex.notes import (
    PROTOCOL_LABEL,
    PULSE_LABEL,
    protocol_params,
    read_notes,
    write_protocol_note,
    write_pulse_note,
)
from acquire.protocols.hreflex.plan import (
    BLOCK_RECRUITMENT,
    BLOCK_RECRUITMENT_FINE,
    RECOMMENDED_LADDER_INTERVAL_S,
    HReflexPlan,
    HReflexProtocolConfig,
    PlanError,
    PlannedPulse,
    SafetyLimits,
    StimulationStopped,
    make_plan,
)
from acquire.protocols.hreflex.runner import (
    EmgMonitor,
    HReflexRunner,
    PulseRecord,
    choose_fine_center,
    choose_fine_center_default,
    choose_test_intensity,
    choose_test_intensity_default,
    device_is_emulated,
    response_windows_ms,
)

__all__ = [
    "BLOCK_RECRUITMENT",
    "BLOCK_RECRUITMENT_FINE",
    "PROTOCOL_LABEL",
    "PULSE_LABEL",
    "RECOMMENDED_LADDER_INTERVAL_S",
    "RESPONSE_WINDOWS_MS",
    "BackgroundGate",
    "EmgMonitor",
    "HReflexPlan",
    "HReflexProtocolConfig",
    "HReflexRunner",
    "PlanError",
    "PlannedPulse",
    "PulseRecord",
    "SafetyLimits",
    "StimulationStopped",
    "background_bins_uv",
    "choose_fine_center",
    "choose_fine_center_default",
    "choose_test_intensity",
    "choose_test_intensity_default",
    "device_is_emulated",
    "make_plan",
    "protocol_params",
    "read_notes",
    "response_windows_ms",
    "write_protocol_note",
    "write_pulse_note",
]


def __getattr__(name: str):
    if name == "RESPONSE_WINDOWS_MS":  # read from the preset table on use (dsp loads lazily)
        from acquire.protocols.hreflex import runner

        return runner.RESPONSE_WINDOWS_MS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
