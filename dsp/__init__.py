"""tonuslab's signal-processing core: pure functions on arrays, no file or device I/O.

Array convention: time runs along axis 0. A multichannel signal is ``(n_samples, n_channels)``;
a single channel may be passed as ``(n_samples,)`` and comes back with the same shape.
Units: EMG in microvolts, angles in degrees, times in seconds, rates in hertz.
"""

from dsp.errors import SignalError

__all__ = ["SignalError"]
