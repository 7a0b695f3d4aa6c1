"""``lsl://`` URLs: which stream to resolve and what its channels are (pure, no pylsl).

Forms (``docs/cli.md``)::

    lsl://NAME?emg=0,1&angle=2            a stream by name; channels by index or label
    lsl://?type=EMG&source_id=ABC&hostname=lab-pc
    lsl://Trigno?emg=0,1,2,3&angle=4&ttl=5&ttl_threshold=2.5&markers=Stim
    lsl://EMG?angle_stream=Gonio:1        the angle from channel 1 of a second stream
    lsl://Amp?emg_unit=mV                 streams that describe no unit (or emg_scale=0.1)

Every option is checked here; an unknown one or a bad value is a one-line
:class:`acquire.errors.SourceError`.
"""

from __future__ import annotations

import math
import urllib.parse
from dataclasses import dataclass

from acquire.errors import SourceError

#: Options of an ``lsl://`` URL (besides the stream selectors ``type``, ``source_id``,
#: ``hostname`` and ``name``).
OPTIONS = (
    "emg", "angle", "angle_stream", "ttl", "ttl_threshold", "markers", "emg_unit", "emg_scale",
    "angle_unit", "timeout", "jitter_ms", "refine", "seq", "seq_modulo",
)  # fmt: skip
SELECTORS = ("name", "type", "source_id", "hostname")

#: Default seconds to wait for the stream(s) at open.
DEFAULT_TIMEOUT_S = 10.0
#: Default jitter margin of the timestamps, milliseconds (see :mod:`acquire.sources.lsl_clock`).
DEFAULT_JITTER_MS = 5.0
#: Default TTL threshold, in the channel's own values (a 0/1, 0/3.3 or 0/5 V trigger).
DEFAULT_TTL_THRESHOLD = 0.5


@dataclass(frozen=True)
class StreamQuery:
    """What identifies one LSL stream: any of name, type, source_id, hostname."""

    name: str | None = None
    type: str | None = None
    source_id: str | None = None
    hostname: str | None = None

    def predicate(self, exclude_source_ids=()) -> str:
        """The XPath 1.0 predicate liblsl resolves with (``name='X' and type='EMG'``)."""
        parts = [f"{k}={_xpath_literal(v)}" for k, v in self.to_dict().items() if v is not None]
        parts += [f"source_id!={_xpath_literal(s)}" for s in sorted(exclude_source_ids)]
        return " and ".join(parts)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in SELECTORS}

    def describe(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if v is not None)


@dataclass(frozen=True)
class LslOptions:
    """A parsed ``lsl://`` URL.

    Attributes
    ----------
    stream : StreamQuery
        The main (EMG) stream.
    emg : tuple of str or None
        EMG channels, each an index (``"0"``) or a label; None: the channels whose unit is a
        voltage or whose type is EMG.
    angle : str or None
        Goniometer channel of the main stream.
    angle_stream : StreamQuery or None
        A second stream carrying the angle (``angle_stream=NAME[:CHANNEL]``).
    angle_stream_channel : str
        Channel of ``angle_stream`` (index or label; default ``"0"``).
    ttl : str or None
        Trigger channel of the main stream (each rising edge past ``ttl_threshold`` is a pulse).
    ttl_threshold : float
        In the trigger channel's own values.
    markers : StreamQuery or None
        A marker stream whose strings name pulses (``stim 12.5mA``) or mark moments.
    emg_unit : str or None
        ``uV``, ``mV`` or ``V`` for every EMG channel, overriding the stream's description.
    emg_scale : float or None
        Microvolts per stream unit for every EMG channel (overrides ``emg_unit``).
    angle_unit : str or None
        ``deg`` or ``rad`` for the angle channel.
    timeout_s : float
        Seconds to wait for the streams at open.
    jitter_ms : float
        Timestamp jitter tolerated before a step counts as a gap, milliseconds.
    refine : str
        ``"artifact"``: a stimulus timed by a marker alone is moved to the stimulus artifact's
        onset near it; ``"none"``: it stays at the marker's timestamp.
    seq : str or None
        A sequence-counter channel of the main stream (OpenSignals nSeq, a device counter):
        sample numbers then come from it, not from the timestamps.
    seq_modulo : int or None
        The counter's wrap (16 for a 4-bit nSeq); None: it does not wrap.
    """

    stream: StreamQuery
    emg: tuple[str, ...] | None = None
    angle: str | None = None
    angle_stream: StreamQuery | None = None
    angle_stream_channel: str = "0"
    ttl: str | None = None
    ttl_threshold: float = DEFAULT_TTL_THRESHOLD
    markers: StreamQuery | None = None
    emg_unit: str | None = None
    emg_scale: float | None = None
    angle_unit: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    jitter_ms: float = DEFAULT_JITTER_MS
    refine: str = "artifact"
    seq: str | None = None
    seq_modulo: int | None = None

    def to_dict(self) -> dict:
        """JSON form (journalled with the stream description)."""
        return {
            "stream": self.stream.to_dict(),
            "emg": None if self.emg is None else list(self.emg),
            "angle": self.angle,
            "angle_stream": None if self.angle_stream is None else self.angle_stream.to_dict(),
            "angle_stream_channel": self.angle_stream_channel,
            "ttl": self.ttl,
            "ttl_threshold": self.ttl_threshold,
            "markers": None if self.markers is None else self.markers.to_dict(),
            "emg_unit": self.emg_unit,
            "emg_scale": self.emg_scale,
            "angle_unit": self.angle_unit,
            "timeout_s": self.timeout_s,
            "jitter_ms": self.jitter_ms,
            "refine": self.refine,
            "seq": self.seq,
            "seq_modulo": self.seq_modulo,
        }

    @classmethod
    def from_dict(cls, d: dict) -> LslOptions:
        d = dict(d)
        d["stream"] = StreamQuery(**d["stream"])
        for key in ("angle_stream", "markers"):
            if d.get(key) is not None:
                d[key] = StreamQuery(**d[key])
        if d.get("emg") is not None:
            d["emg"] = tuple(d["emg"])
        return cls(**d)


def parse_lsl_url(url: str) -> LslOptions:
    """Parse ``lsl://NAME?option=value&...`` (see the module docstring).

    Raises
    ------
    acquire.errors.SourceError
        Not an ``lsl://`` URL, no stream selector, an unknown option or a bad value.
    """
    parts = urllib.parse.urlsplit(str(url))
    if parts.scheme.lower() != "lsl":
        raise SourceError(f"not an LSL URL: {url!r} (expected lsl://NAME or lsl://?type=EMG)")
    name = urllib.parse.unquote(parts.netloc + parts.path).strip("/") or None
    query: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key in query:
            raise SourceError(f"{url}: option {key!r} is given twice")
        query[key] = value
    unknown = sorted(set(query) - set(OPTIONS) - set(SELECTORS))
    if unknown:
        raise SourceError(
            f"{url}: unknown option {unknown[0]!r}; known: {', '.join(SELECTORS + OPTIONS)}"
        )
    if "name" in query:
        if name is not None and query["name"] != name:
            raise SourceError(f"{url}: two stream names ({name!r} and {query['name']!r})")
        name = query["name"] or None
    stream = StreamQuery(
        name=name,
        type=query.get("type") or None,
        source_id=query.get("source_id") or None,
        hostname=query.get("hostname") or None,
    )
    if stream == StreamQuery():
        raise SourceError(
            f"{url}: say which stream: lsl://NAME, lsl://?type=EMG or lsl://?source_id=ID"
        )
    emg = None
    if "emg" in query:
        emg = tuple(c.strip() for c in query["emg"].split(",") if c.strip())
        if not emg:
            raise SourceError(f"{url}: emg= needs channel indices or labels, e.g. emg=0,1")
    angle_stream, angle_channel = None, "0"
    if query.get("angle_stream"):
        head, sep, tail = query["angle_stream"].rpartition(":")
        stream_name, angle_channel = (head, tail) if sep and tail else (query["angle_stream"], "0")
        angle_stream = StreamQuery(name=stream_name)
        if "angle" in query:
            raise SourceError(
                f"{url}: give the angle either as angle=K (same stream) or angle_stream=NAME[:K]"
            )
    emg_unit = query.get("emg_unit") or None
    if emg_unit is not None and emg_unit not in ("uV", "µV", "mV", "V"):
        raise SourceError(f"{url}: emg_unit must be uV, mV or V, got {emg_unit!r}")
    refine = query.get("refine") or "artifact"
    if refine not in ("artifact", "none"):
        raise SourceError(f"{url}: refine must be artifact or none, got {refine!r}")
    angle_unit = query.get("angle_unit") or None
    if angle_unit is not None and angle_unit not in ("deg", "rad"):
        raise SourceError(f"{url}: angle_unit must be deg or rad, got {angle_unit!r}")
    return LslOptions(
        stream=stream,
        emg=emg,
        angle=query.get("angle") or None,
        angle_stream=angle_stream,
        angle_stream_channel=angle_channel,
        ttl=query.get("ttl") or None,
        ttl_threshold=_number(url, query, "ttl_threshold", DEFAULT_TTL_THRESHOLD),
        markers=StreamQuery(name=query["markers"]) if query.get("markers") else None,
        emg_unit=emg_unit,
        emg_scale=_number(url, query, "emg_scale", None, positive=True),
        angle_unit=angle_unit,
        timeout_s=_number(url, query, "timeout", DEFAULT_TIMEOUT_S, positive=True),
        jitter_ms=_number(url, query, "jitter_ms", DEFAULT_JITTER_MS, nonnegative=True),
        refine=refine,
        seq=query.get("seq") or None,
        seq_modulo=_modulo(url, query),
    )


def _modulo(url, query) -> int | None:
    if not query.get("seq_modulo"):
        return None
    if "seq" not in query:
        raise SourceError(f"{url}: seq_modulo= needs seq=K (the counter channel)")
    text = query["seq_modulo"]
    if not text.isdigit() or int(text) < 2:
        raise SourceError(f"{url}: seq_modulo must be an integer >= 2, got {text!r}")
    return int(text)


def _number(url, query, key, default, *, positive=False, nonnegative=False):
    if key not in query:
        return default
    try:
        value = float(query[key])
    except ValueError:
        raise SourceError(f"{url}: {key} must be a number, got {query[key]!r}") from None
    if not math.isfinite(value) or (positive and value <= 0) or (nonnegative and value < 0):
        what = "positive" if positive else "zero or more" if nonnegative else "finite"
        raise SourceError(f"{url}: {key} must be {what}, got {query[key]!r}")
    return value


def _xpath_literal(value: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    pieces = value.split("'")
    return "concat(" + ', "\'", '.join(f"'{p}'" for p in pieces) + ")"
