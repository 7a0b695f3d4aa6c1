"""Stimuli and markers of an ``lsl://`` recording (pure): TTL edges, marker strings, pairing.

Rules (also in :mod:`acquire.sources.lsl_decode`): each rising edge of the TTL channel through
the threshold (previous sample below, this one at or above) is one stimulus at exactly that
sample. A marker whose text is a stimulus label (``stim 12.5mA``, see
:func:`acquire.sources.units.parse_stim_text`) names the TTL edge nearest to it within
:data:`PAIR_WINDOW_S`; without a TTL channel it is itself the stimulus, moved onto the stimulus
artifact's onset (:mod:`acquire.sources.artifact`) unless ``refine=none``. An edge without a
marker is a stimulus of unknown intensity (NaN); a stimulus marker with no edge near it is kept
as a marker (``params["unmatched"] = true``); other texts are ``marker`` events. Items are
released once the EMG has advanced past the window they wait for (or at :meth:`finish`).
"""

from __future__ import annotations

import numpy as np

from acquire.sources.artifact import RecentEmg, artifact_onset
from acquire.sources.base import Event
from acquire.sources.lsl_clock import StreamClock
from acquire.sources.units import parse_stim_text

#: Largest distance between a TTL edge and the stimulus marker that names it, seconds.
PAIR_WINDOW_S = 0.25
#: A marker-timed pulse is searched for in the EMG from this long before its marker, s (markers
#: from another process come milliseconds late) ...
REFINE_BEFORE_S = 0.05
#: ... to this long after it, s (a marker sent just before the trigger).
REFINE_AFTER_S = 0.01
#: EMG before the search window that gives the step noise, s.
REFINE_NOISE_S = 0.1
#: Recent EMG kept for the search, s.
REFINE_KEEP_S = 1.0


class PulseTracker:
    """Turn TTL samples and marker strings into stimulus and marker events.

    Parameters
    ----------
    clock : StreamClock
        The EMG stream's clock (sample numbers of marker times).
    rate_hz : float
        EMG rate.
    ttl_threshold : float or None
        None: no TTL channel.
    refine : bool
        Move marker-timed pulses onto their artifact (needs the EMG through :meth:`emg`).
    n_emg : int
        EMG channels (for the recent-EMG buffer).
    """

    def __init__(
        self,
        clock: StreamClock,
        rate_hz: float,
        ttl_threshold: float | None,
        *,
        refine: bool,
        n_emg: int,
    ) -> None:
        self.clock = clock
        self.rate = float(rate_hz)
        self.ttl_threshold = ttl_threshold
        self._ttl_above: bool | None = None
        self._edges: list[tuple[int, float]] = []  # (emg index, host time)
        self._named: list[dict] = []  # stimulus markers waiting for their TTL edge
        self._timed: list[dict] = []  # stimulus markers waiting for their artifact
        self._early: list[tuple[str, float, float]] = []  # before the first EMG sample
        self._window = round(PAIR_WINDOW_S * self.rate)
        self._recent = RecentEmg(round(REFINE_KEEP_S * self.rate), n_emg) if refine else None
        self._refine_n = (round(REFINE_BEFORE_S * self.rate), round(REFINE_AFTER_S * self.rate),
                          round(REFINE_NOISE_S * self.rate))  # fmt: skip

    # ------------------------------------------------------------------------------ input
    def emg(self, index, ttl, keep, emg_uv, host_s: float) -> list[Event]:
        """New EMG rows: sample numbers, TTL values (or None), rows stored, EMG (microvolts)."""
        if ttl is not None:
            above = ttl >= self.ttl_threshold
            before = np.empty_like(above)
            before[1:] = above[:-1]
            before[0] = above[0] if self._ttl_above is None else self._ttl_above
            self._ttl_above = bool(above[-1])
            for i in np.flatnonzero(above & ~before):
                self._edges.append((int(index[i]), host_s))
        if self._recent is not None:
            self._recent.push(index[keep], emg_uv[keep])
        out: list[Event] = []
        if self._early:
            early, self._early = self._early, []
            for text, t, h in early:
                out += self._marker(text, t, h)
        return out

    def markers(self, texts, stamps: np.ndarray, host_s: float) -> list[Event]:
        """Marker strings with their (corrected) stamps, seconds."""
        out: list[Event] = []
        for text, t in zip(texts, np.asarray(stamps).tolist(), strict=True):
            if self.clock.last_index is None:
                self._early.append((str(text), t, host_s))
            else:
                out += self._marker(str(text), t, host_s)
        return out

    def _marker(self, text: str, t: float, host_s: float) -> list[Event]:
        index = self.clock.index_at(t)
        stim = parse_stim_text(text)
        if stim is None:
            return [Event("marker", index, host_s, label=text, params={"lsl_time_s": t})]
        width = float("nan") if stim["width_us"] is None else stim["width_us"]
        m = {"index": index, "host": host_s, "text": text, "t": t, "ma": stim["intensity_ma"],
             "us": width}  # fmt: skip
        if self.ttl_threshold is not None:
            self._named.append(m)
        elif self._recent is not None:
            self._timed.append(m)  # placed on its artifact once the EMG is here
        else:
            return [_pulse(m, index, {"timing": "marker"})]
        return []

    # ------------------------------------------------------------------------------ output
    def resolve(self, *, final: bool = False) -> list[Event]:
        """Events whose wait is over (all of them if ``final``)."""
        if not (self._edges or self._named or self._timed):
            return []
        horizon = self.clock.last_index
        if horizon is None:
            return []
        out = self._refined(horizon, final) if self._timed else []
        w = self._window
        while self._edges and (final or horizon >= self._edges[0][0] + w):
            index, host_s = self._edges.pop(0)
            near = [m for m in self._named if abs(m["index"] - index) <= w]
            params = {"timing": "ttl"}
            ma, us, label = float("nan"), float("nan"), ""
            if near:
                m = min(near, key=lambda m: abs(m["index"] - index))
                self._named.remove(m)
                ma, us, label = m["ma"], m["us"], m["text"]
                params["marker_offset_ms"] = (m["index"] - index) / self.rate * 1e3
            out.append(Event("stimulus", index, host_s, intensity_ma=ma, width_us=us,
                             pulse_index=0, label=label, params=params))  # fmt: skip
        for m in list(self._named):
            if final or horizon >= m["index"] + 2 * w:
                self._named.remove(m)
                out.append(Event("marker", m["index"], m["host"], label=m["text"],
                                 params={"unmatched": True, "lsl_time_s": m["t"]}))  # fmt: skip
        return out

    def _refined(self, horizon: int, final: bool) -> list[Event]:
        before, after, noise_n = self._refine_n
        out = []
        while self._timed and (final or horizon >= self._timed[0]["index"] + after):
            m = self._timed.pop(0)
            onset = artifact_onset(self._recent, m["index"] - before, m["index"] + after, noise_n)
            if onset is None:
                out.append(_pulse(m, m["index"], {"timing": "marker", "artifact_found": False}))
            else:
                moved_ms = (onset - m["index"]) / self.rate * 1e3
                out.append(_pulse(m, onset, {"timing": "marker+artifact", "moved_ms": moved_ms}))
        return out


def _pulse(m: dict, index: int, params: dict) -> Event:
    return Event(
        "stimulus", index, m["host"], intensity_ma=m["ma"], width_us=m["us"], pulse_index=0,
        label=m["text"], params={**params, "lsl_time_s": m["t"]},
    )  # fmt: skip
