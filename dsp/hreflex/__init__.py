"""H-reflex analysis: stimulus artifact, M- and H-waves, recruitment curves, Hmax/Mmax, depression.

Public entry point: :func:`analyze_hreflex` (see ``docs/hreflex.md`` for the definitions and
reference values). Pure NumPy/SciPy on arrays; no file or device I/O.
"""

from dsp.hreflex.analysis import HReflexInputError, analyze_hreflex
from dsp.hreflex.artifact import (
    ArtifactFinding,
    ArtifactOffset,
    find_artifacts,
    session_artifact_offset,
)
from dsp.hreflex.presets import MUSCLE_PRESETS, REFERENCES, MusclePreset, get_preset
from dsp.hreflex.recruitment import RecruitmentFit, fit_h, fit_m, h_model, m_model
from dsp.hreflex.result import HReflexResult, StimulusMeasure, TestIntensity
from dsp.hreflex.waves import WaveWindow

__all__ = [
    "MUSCLE_PRESETS",
    "REFERENCES",
    "ArtifactFinding",
    "ArtifactOffset",
    "HReflexInputError",
    "HReflexResult",
    "MusclePreset",
    "RecruitmentFit",
    "StimulusMeasure",
    "TestIntensity",
    "WaveWindow",
    "analyze_hreflex",
    "find_artifacts",
    "fit_h",
    "fit_m",
    "get_preset",
    "h_model",
    "m_model",
    "session_artifact_offset",
]
