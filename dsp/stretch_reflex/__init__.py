"""Velocity-dependent stretch reflex: DSRT per stretch, TSRT and mu, Tardieu angles and grade.

Public API
----------
analyze_stretch_reflex(emg_uv, emg_rate_hz, angle_deg, angle_rate_hz, *, channel=0,
                       passive_range_deg=None, detector="threshold", ...) -> StretchReflexResult
available_detectors() -> tuple of detector names

Definitions, conventions and sources: docs/stretch-reflex.md.
"""

from dsp.stretch_reflex._analyze import (
    REASON_ACTIVE,
    REASON_GAP,
    REASON_IRREGULAR,
    REASON_NO_REFLEX,
    REASON_OUTLIER,
    analyze_stretch_reflex,
    available_detectors,
)
from dsp.stretch_reflex._result import ClonusEpisode, StretchRecord, StretchReflexResult

__all__ = [
    "REASON_ACTIVE",
    "REASON_GAP",
    "REASON_IRREGULAR",
    "REASON_NO_REFLEX",
    "REASON_OUTLIER",
    "ClonusEpisode",
    "StretchRecord",
    "StretchReflexResult",
    "analyze_stretch_reflex",
    "available_detectors",
]
