"""Goniometer kinematics and stretch segmentation used by the stretch-reflex analysis.

They live in :mod:`dsp.kinematics` (one segmenter: the public
:func:`dsp.kinematics.segment_stretches` is this one with the analysis's defaults); the names
are kept here for the analysis's modules.
"""

from dsp.kinematics import Movement, find_stretches, finite_runs, smooth_kinematics

__all__ = ["Movement", "find_stretches", "finite_runs", "smooth_kinematics"]
