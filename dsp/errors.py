"""Exceptions raised by :mod:`dsp` for invalid input."""


class SignalError(ValueError):
    """An input array or parameter is not acceptable (dtype, shape, NaN, rate vs. cut-off, ...).

    The message names the argument and the problem in one line.
    """
