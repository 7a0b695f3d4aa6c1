"""Sample numbers from LSL timestamps (pure): the index is the sample count, holes are exact.

An LSL stream has no sample counter, only a timestamp per sample. :class:`StreamClock` numbers
the samples it is given: each one is the previous number plus one, unless the timestamp step
from the previous sample is larger than ``1.5`` sample periods plus a jitter margin; then it is
a hole of exactly ``round(step * rate) - 1`` missing samples. So

- a stream stamped per sample by its device (or by tonuslab's own ``--lsl``) gets every hole of
  two samples or more (with ``jitter_ms=0``) or of ``jitter_ms`` and more (the default 5 ms);
- chunks stamped by the host on arrival (liblsl back-fills the samples of a chunk at the
  nominal rate from one stamp) carry milliseconds of jitter at chunk boundaries; steps within
  the margin are taken as contiguous, so they make no false gaps. The price: a real hole shorter
  than the margin is not seen, and its samples close up (the stream's later samples are then
  early by at most the margin);
- a step backwards (a stamp earlier than the previous one) is taken as contiguous.

Every ``check_s`` seconds of stamps the sample count is compared with the time span: a stream
whose real rate is more than ``rate_tolerance`` away from its nominal rate (a device that was
reconfigured without telling, a wrong nominal rate) raises
:class:`acquire.errors.SourceRateChangedError`.
"""

from __future__ import annotations

import numpy as np

from acquire.errors import SourceRateChangedError


class StreamClock:
    """Number the samples of one stream from their timestamps.

    Parameters
    ----------
    rate_hz : float
        Nominal sampling rate (stored as given, e.g. 2148.1481 Hz).
    jitter_ms : float
        Jitter margin, milliseconds (see the module docstring).
    name : str
        Stream name (for messages).
    check_s : float
        Span of timestamps over which the real rate is checked, seconds.
    rate_tolerance : float
        Largest relative difference between the real and the nominal rate.
    """

    def __init__(
        self,
        rate_hz: float,
        jitter_ms: float,
        name: str = "",
        *,
        check_s: float = 5.0,
        rate_tolerance: float = 0.05,
    ) -> None:
        self.rate_hz = float(rate_hz)
        self.period_s = 1.0 / self.rate_hz
        self.threshold_s = 1.5 * self.period_s + float(jitter_ms) * 1e-3
        self.name = name
        self.check_s = float(check_s)
        self.rate_tolerance = float(rate_tolerance)
        self.last_index: int | None = None
        self.last_stamp_s = float("nan")
        self._check_start: tuple[int, float] | None = None

    def number(self, stamps_s: np.ndarray) -> np.ndarray:
        """Sample numbers (int64) of the samples stamped ``stamps_s`` (seconds, in order)."""
        stamps = np.asarray(stamps_s, dtype=np.float64)
        n = stamps.shape[0]
        if n == 0:
            return np.empty(0, dtype=np.int64)
        if self.last_index is None:
            prev_index, prev_stamp = -1, stamps[0] - self.period_s
        else:
            prev_index, prev_stamp = self.last_index, self.last_stamp_s
        steps = np.diff(stamps, prepend=prev_stamp)
        advance = np.ones(n, dtype=np.int64)
        hole = steps > self.threshold_s
        if hole.any():
            advance[hole] = np.rint(steps[hole] * self.rate_hz).astype(np.int64)
        index = prev_index + np.cumsum(advance)
        self.last_index = int(index[-1])
        self.last_stamp_s = float(stamps[-1])
        self._check_rate(int(index[0]), float(stamps[0]))
        return index

    def index_at(self, t_s: float) -> int | None:
        """The sample number nearest to time ``t_s`` (by the newest sample), None before any."""
        if self.last_index is None:
            return None
        return self.last_index + round((t_s - self.last_stamp_s) * self.rate_hz)

    def restart_check(self) -> None:
        """Forget the rate check's start (after a reconnection: the hole is not a rate)."""
        self._check_start = None

    def _check_rate(self, first_index: int, first_stamp: float) -> None:
        if self._check_start is None:
            self._check_start = (first_index, first_stamp)
            return
        i0, t0 = self._check_start
        span = self.last_stamp_s - t0
        if span < self.check_s:
            return
        real = (self.last_index - i0) / span
        if abs(real / self.rate_hz - 1.0) > self.rate_tolerance:
            raise SourceRateChangedError(
                f"LSL stream {self.name!r} declares {self.rate_hz:g} Hz but its samples come "
                f"at {real:.6g} Hz: the rate changed while recording; the data so far is saved"
            )
        self._check_start = (self.last_index, self.last_stamp_s)


class CounterClock(StreamClock):
    """Number samples from a sequence counter of the stream (OpenSignals nSeq, a device counter).

    The counter takes precedence over the timestamps: consecutive samples are ``(c - c_prev) mod
    modulo`` apart, exactly. A counter that wraps (``modulo``) cannot tell a hole of ``k``
    samples from one of ``k + modulo``; the timestamp step picks the number of whole wraps
    (``round((step x rate - k) / modulo)``), which is exact while the stamps' error stays below
    half a wrap (``modulo / 2`` samples). A counter that goes back without ``modulo`` (a device
    restart) is taken as contiguous.

    Parameters
    ----------
    rate_hz, jitter_ms, name
        As :class:`StreamClock` (the rate check uses the stamps).
    modulo : int or None
        The counter's wrap (16 for a 4-bit nSeq); None: it never wraps.
    """

    def __init__(self, rate_hz: float, jitter_ms: float, name: str = "", *,
                 modulo: int | None = None, **kwargs) -> None:  # fmt: skip
        super().__init__(rate_hz, jitter_ms, name, **kwargs)
        self.modulo = None if modulo is None else int(modulo)
        self.last_counter: int | None = None

    def number(self, stamps_s: np.ndarray, counters=None) -> np.ndarray:
        if counters is None:
            return super().number(stamps_s)
        stamps = np.asarray(stamps_s, dtype=np.float64)
        c = np.rint(np.asarray(counters, dtype=np.float64)).astype(np.int64)
        n = stamps.shape[0]
        if n == 0:
            return np.empty(0, dtype=np.int64)
        if self.last_index is None:
            prev_i, prev_c, prev_t = -1, int(c[0]) - 1, stamps[0] - self.period_s
        else:
            prev_i, prev_c, prev_t = self.last_index, self.last_counter, self.last_stamp_s
        step = np.diff(c, prepend=prev_c)
        if self.modulo is not None:
            m = self.modulo
            step %= m
            step[step == 0] = m  # the same value again: one whole wrap
            dt = np.diff(stamps, prepend=prev_t)
            wraps = np.rint((dt * self.rate_hz - step) / m)
            step += np.maximum(wraps, 0).astype(np.int64) * m
        else:
            step[step < 1] = 1
        index = prev_i + np.cumsum(step)
        self.last_index = int(index[-1])
        self.last_counter = int(c[-1])
        self.last_stamp_s = float(stamps[-1])
        self._check_rate(int(index[0]), float(stamps[0]))
        return index
