"""tonuslab's signal-processing core: pure functions on arrays, no file or device I/O.

Array convention: time runs along axis 0. A multichannel signal is ``(n_samples, n_channels)``;
a single channel may be passed as ``(n_samples,)`` and comes back with the same shape.
Units: EMG in microvolts, angles in degrees, times in seconds, rates in hertz.

Submodules (imported on first use, so ``import dsp`` stays cheap): :mod:`dsp.filters`,
:mod:`dsp.envelopes`, :mod:`dsp.onsets`, :mod:`dsp.kinematics`, :mod:`dsp.quality`,
:mod:`dsp.chain`. The public API is listed in ``docs/architecture.md`` ("Contract: DSP API").
"""

import importlib

from dsp.errors import SignalError

__all__ = ["SignalError", "chain", "envelopes", "filters", "kinematics", "onsets", "quality"]

_SUBMODULES = {"chain", "envelopes", "filters", "kinematics", "onsets", "quality"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"dsp.{name}")
    raise AttributeError(f"module 'dsp' has no attribute {name!r}")
