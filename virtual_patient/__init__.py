"""Virtual patient: a deterministic physiological simulator with exact ground truth.

Pure NumPy/SciPy; imports no device I/O and nothing else of tonuslab. See docs/simulator.md.
"""

from .errors import ProfileError, ProgramError, SourceStateError, VirtualPatientError
from .hreflex import (
    StimulusSpec,
    depression_factor,
    frequency_blocks,
    paired_pulses,
    recruitment,
    recruitment_ladder,
    test_intensity_ma,
)
from .profiles import GONIOMETER_ERRORS, PROFILE_NAMES, Profile, get_profile
from .recording import Recording
from .session import simulate_hreflex_session, simulate_stretch_session
from .source import PatientSource
from .stretch import (
    StretchSpec,
    planned_duration_s,
    tardieu_grade,
    tardieu_summary,
    tsrt_protocol,
)

__all__ = [
    "GONIOMETER_ERRORS",
    "PROFILE_NAMES",
    "PatientSource",
    "Profile",
    "ProfileError",
    "ProgramError",
    "Recording",
    "SourceStateError",
    "StimulusSpec",
    "StretchSpec",
    "VirtualPatientError",
    "depression_factor",
    "frequency_blocks",
    "get_profile",
    "paired_pulses",
    "planned_duration_s",
    "recruitment",
    "recruitment_ladder",
    "simulate_hreflex_session",
    "simulate_stretch_session",
    "tardieu_grade",
    "tardieu_summary",
    "test_intensity_ma",
    "tsrt_protocol",
]


def __getattr__(name: str):
    if name == "Stimulus":  # the old name of StimulusSpec; removed in the next release
        from . import hreflex

        return hreflex.__getattr__(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
