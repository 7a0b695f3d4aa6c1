"""When did a stream without timestamps start, judged from when its samples arrived (pure).

A device that sends samples at a known rate but no time (a BITalino frame, a Trigno float
frame) cannot have sent sample ``N`` before ``start + N / rate``, so every arrival at host time
``h`` with ``N`` samples so far bounds the start: ``start <= h - N / rate``. The smallest bound
of the last ``window_s`` seconds is the best estimate (the arrivals with the least delay); a
window keeps a clock drift of the device against the host from accumulating. Deterministic: it
uses only the journalled arrival times.
"""

from __future__ import annotations

import collections


class ArrivalStart:
    """Sliding minimum of ``arrival - samples / rate`` over ``window_s`` seconds of arrivals.

    Parameters
    ----------
    window_s : float
        Seconds of arrivals that date the start, s.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = float(window_s)
        self._q: collections.deque = collections.deque()  # (host_s, bound_s), bounds increasing

    def push(self, host_s: float, bound_s: float) -> None:
        """One arrival: at ``host_s`` the stream cannot have started after ``bound_s`` (s)."""
        q = self._q
        while q and q[-1][1] >= bound_s:
            q.pop()
        q.append((float(host_s), float(bound_s)))

    def start(self, host_s: float) -> float | None:
        """The best start estimate at ``host_s`` (s; None before any arrival). The last bound
        older than the window is kept until a newer one replaces it (a long silence)."""
        q = self._q
        while len(q) > 1 and q[0][0] < host_s - self.window_s:
            q.popleft()
        return q[0][1] if q else None

    def reset(self, host_s: float, bound_s: float) -> None:
        """Forget every arrival; start again from one bound (after a reconnection)."""
        self._q.clear()
        self._q.append((float(host_s), float(bound_s)))

    def __bool__(self) -> bool:
        return bool(self._q)
