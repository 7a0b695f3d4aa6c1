"""``lsl://``: record a Lab Streaming Layer stream (Delsys, PLUX, Shimmer, OpenBCI bridges...).

The live half (:class:`LslSource`) resolves the stream(s) of the URL (:mod:`.lsl_url`), opens
pylsl inlets without any of liblsl's post-processing (raw stamps: no dejitter, no clock sync,
so holes stay visible and nothing is smoothed twice) and hands out the chunks exactly as pulled,
with each stream's ``time_correction()`` journalled as a ``clock`` chunk. The pure half
(:class:`~acquire.sources.lsl_decode.LslDecoder`) turns them into samples, gaps and pulses.

LSL's default discovery reaches the whole local network; set ``LSLAPICFG`` to a file from
:func:`acquire.lsl.write_loopback_config` to keep it on one machine.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from acquire.errors import SourceError, SourceNotFoundError
from acquire.sources.base import OPEN_TAG, Chunk, Source, SourceLost, SourceSpec
from acquire.sources.lsl_decode import LslDecoder
from acquire.sources.lsl_url import LslOptions, StreamQuery, parse_lsl_url

#: Seconds between two reads of each stream's ``time_correction`` (liblsl refreshes it every 5 s).
CLOCK_INTERVAL_S = 5.0
#: Seconds of data liblsl buffers for an inlet (a stalled recorder loses nothing shorter).
INLET_BUFFER_S = 30
#: Seconds between two non-blocking pulls while :meth:`LslSource.read` waits for data.
POLL_INTERVAL_S = 0.005
#: Seconds a :meth:`LslSource.reopen` attempt waits for the stream (the first; later attempts
#: wait up to :data:`REOPEN_WAIT_MAX_S`).
REOPEN_WAIT_S = 0.5
REOPEN_WAIT_MAX_S = 2.0
#: A regular stream that delivers no sample for this long (and at least 20 sample periods) once
#: it has streamed is lost, even if liblsl has not said so (seen on a loaded machine: an inlet
#: whose outlet had vanished neither raised nor received).
STALL_S = 2.0


def _pylsl():
    try:
        import pylsl
    except ImportError:  # pragma: no cover - pylsl is a dependency of the plain install
        raise SourceError("lsl:// needs pylsl, which is not installed: pip install pylsl") from None
    return pylsl


def stream_info_dict(info) -> dict:
    """A pylsl ``StreamInfo`` (with its description) as the JSON the decoder is built from."""
    fmt_names = {1: "float32", 2: "double64", 3: "string", 4: "int32", 5: "int16", 6: "int8",
                 7: "int64"}  # fmt: skip
    desc = info.desc()
    channels = []
    node = desc.child("channels").child("channel")
    while not node.empty():
        channels.append(
            {
                "label": node.child_value("label"),
                "unit": node.child_value("unit"),
                "type": node.child_value("type"),
            }
        )
        node = node.next_sibling("channel")
    acquisition = desc.child("acquisition")
    return {
        "name": info.name(),
        "type": info.type(),
        "source_id": info.source_id(),
        "hostname": info.hostname(),
        "uid": info.uid(),
        "session_id": info.session_id(),
        "rate_hz": float(info.nominal_srate()),
        "channel_count": int(info.channel_count()),
        "channel_format": fmt_names.get(int(info.channel_format()), "undefined"),
        "channels": channels,
        "manufacturer": acquisition.child_value("manufacturer") if not acquisition.empty() else "",
        "created_at": float(info.created_at()),
    }


def list_lsl_streams(wait_s: float = 1.0) -> list[dict]:
    """The LSL streams visible now: name, type, channels, rate_hz, format, source_id, host."""
    pylsl = _pylsl()
    out = []
    for info in pylsl.resolve_streams(wait_s):
        out.append(
            {
                "kind": "lsl",
                "name": info.name(),
                "type": info.type(),
                "channels": int(info.channel_count()),
                "rate_hz": float(info.nominal_srate()),
                "channel_format": stream_info_dict(info)["channel_format"],
                "source_id": info.source_id(),
                "hostname": info.hostname(),
                "url": f"lsl://{info.name()}"
                + (f"?source_id={info.source_id()}" if info.source_id() else ""),
            }
        )
    return sorted(out, key=lambda s: (s["name"], s["source_id"]))


def format_lsl_stream(s: Mapping) -> str:
    rate = "irregular" if s["rate_hz"] == 0 else f"{s['rate_hz']:g} Hz"
    return (
        f"{s['url']}  type {s['type'] or '-'}, {s['channels']} ch {s['channel_format']} at "
        f"{rate}, source_id {s['source_id'] or '-'}, host {s['hostname'] or '-'}"
    )


class LslSource(Source):
    """Live pylsl inlets for one ``lsl://`` URL (main stream, optional angle and marker streams).

    Parameters
    ----------
    url : str
        ``lsl://...`` (:mod:`acquire.sources.lsl_url`).
    """

    scheme = "lsl"
    capabilities = frozenset()

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.options: LslOptions = parse_lsl_url(url)
        self._exclude: set[str] = set()
        self._inlets: dict = {}
        self._last_offset: dict[str, float] = {}
        self._last_clock_read = 0.0
        self._pending: list[Chunk] = []
        self._lost = False
        self._reopen_attempts = 0
        self._last_data: float | None = None  # None: the watchdog waits for the first sample
        self._stall_s = STALL_S
        self._described_source_ids: dict[str, str] = {}

    # ------------------------------------------------------------------------------ lifecycle
    def exclude_source_ids(self, source_ids: set[str]) -> None:
        self._exclude |= set(source_ids)

    def open(self) -> dict:
        description = self._connect(self.options.timeout_s)
        try:
            LslDecoder(description)  # refuse a bad channel or unit before recording starts
        except BaseException:
            self.close()
            raise
        return description

    def reopen(self) -> dict:
        self.close()
        wait = min(REOPEN_WAIT_MAX_S, REOPEN_WAIT_S * 1.5**self._reopen_attempts)
        self._reopen_attempts += 1
        try:
            description = self._connect(wait, reopening=True)
        except SourceNotFoundError as exc:
            raise SourceError(str(exc)) from None
        self._reopen_attempts = 0
        return description

    def close(self) -> None:
        for inlet in self._inlets.values():
            try:
                inlet.close_stream()
            except Exception:
                pass
        self._inlets = {}
        self._lost = False

    def _connect(self, timeout_s: float, *, reopening: bool = False) -> dict:
        opts = self.options
        queries = {"emg": opts.stream, "angle": opts.angle_stream, "markers": opts.markers}
        infos = {}
        deadline = time.monotonic() + timeout_s
        for role, query in queries.items():
            if query is None:
                continue
            if reopening and role in self._described_source_ids and not query.source_id:
                # come back to the same equipment, not to any stream with the same name
                sid = self._described_source_ids[role]
                if sid:
                    query = StreamQuery(**{**query.to_dict(), "source_id": sid})
            infos[role] = self._resolve(role, query, max(0.2, deadline - time.monotonic()))
        pylsl = _pylsl()
        description = {"url": self.url, "options": opts.to_dict(), "streams": {}}
        inlets = {}
        try:
            for role, info in infos.items():
                inlet = pylsl.StreamInlet(
                    info, max_buflen=INLET_BUFFER_S, recover=False, processing_flags=0
                )
                inlet.open_stream(timeout=max(1.0, timeout_s))
                full = inlet.info(timeout=max(1.0, timeout_s))
                inlets[role] = inlet
                description["streams"][role] = stream_info_dict(full)
        except Exception as exc:
            for inlet in inlets.values():
                inlet.close_stream()
            if isinstance(exc, SourceError):
                raise
            raise SourceError(f"{self.url}: the LSL stream could not be opened ({exc})") from None
        for role in ("emg", "angle", "markers"):
            description["streams"].setdefault(role, None)
        self._inlets = inlets
        self._described_source_ids = {
            role: s["source_id"] for role, s in description["streams"].items() if s is not None
        }
        self._last_offset = {}
        self._last_clock_read = 0.0
        self._pending = self._read_clocks(time.monotonic(), wait_s=2.0)
        self._stall_s = max(STALL_S, 20.0 / description["streams"]["emg"]["rate_hz"])
        # a stream that was streaming must stream again at once; at the start, wait for it
        self._last_data = time.monotonic() if reopening else None
        return description

    def _resolve(self, role: str, query: StreamQuery, timeout_s: float):
        pylsl = _pylsl()
        predicate = query.predicate(self._exclude)
        found = pylsl.resolve_bypred(predicate, 1, timeout_s)
        if found:  # more may answer a moment later: a short second look finds duplicates
            more = pylsl.resolve_bypred(predicate, 2, 0.3)
            uids = {i.uid(): i for i in [*found, *more]}
            found = list(uids.values())
        what = {"emg": "", "angle": " (angle_stream)", "markers": " (markers)"}[role]
        if not found:
            raise SourceNotFoundError(
                f"no LSL stream with {query.describe()}{what} found within {timeout_s:.3g} s; "
                "check that the equipment streams (tonuslab devices lists the streams seen)"
            )
        if len(found) > 1:
            ids = ", ".join(sorted(f"{i.name()} source_id={i.source_id() or '-'}" for i in found))
            raise SourceError(
                f"{len(found)} LSL streams match {query.describe()}{what}: {ids}; "
                "add ?source_id=... (or &hostname=...) to the URL"
            )
        return found[0]

    # ------------------------------------------------------------------------------ reading
    def read(self, timeout_s: float) -> list[Chunk]:
        """Chunks pulled within ``timeout_s``; :class:`SourceLost` when the stream vanished.

        Inlets are polled without blocking (``pull_chunk(timeout=0)``) every
        :data:`POLL_INTERVAL_S` until data comes or the timeout passes: a blocking pull on an
        inlet whose outlet had just vanished was seen to hang inside liblsl (as bundled with
        pylsl 1.18, on a loaded machine).
        """
        pylsl = _pylsl()
        lost_error = pylsl.util.LostError
        if self._lost:
            self._lost = False
            raise SourceLost(f"the LSL stream {self.options.stream.describe()} vanished")
        out, self._pending = self._pending, []
        now = time.monotonic()
        if now - self._last_clock_read >= CLOCK_INTERVAL_S:
            out += self._read_clocks(now, wait_s=0.0)
        deadline = now + timeout_s
        try:
            while True:
                for role, inlet in list(self._inlets.items()):
                    if role == "markers":
                        out += self._pull_markers(inlet, lost_error)
                        continue
                    values, stamps = inlet.pull_chunk(timeout=0.0, max_samples=8192,
                                                      as_numpy=True)  # fmt: skip
                    if len(stamps):
                        host = time.monotonic()
                        arrays = {"values": values, "stamps": np.asarray(stamps, np.float64)}
                        out.append(Chunk("data", {"stream": role}, arrays, host))
                        if role == "emg":
                            self._last_data = host
                now = time.monotonic()
                stalled = self._last_data is not None and now - self._last_data > self._stall_s
                if stalled and "emg" in self._inlets:
                    self._lost = bool(out)
                    if not out:
                        raise SourceLost(
                            f"the LSL stream {self.options.stream.describe()} sent nothing "
                            f"for {now - self._last_data:.1f} s"
                        )
                remaining = deadline - now
                if out or remaining <= 0:
                    return out
                time.sleep(min(POLL_INTERVAL_S, remaining))
        except lost_error:
            if not out:
                raise SourceLost(
                    f"the LSL stream {self.options.stream.describe()} vanished"
                ) from None
            self._lost = True  # deliver what was pulled before the loss, report it next time
        return out

    def _pull_markers(self, inlet, lost_error) -> list[Chunk]:
        """The marker stream's new strings; a vanished marker stream is dropped, not fatal."""
        try:
            texts, stamps = inlet.pull_chunk(timeout=0.0, max_samples=1024)
        except lost_error:
            # the samples are still recorded; pulses from TTL edges too. Journalled, so a
            # replay notes it at the same place.
            self._inlets.pop("markers", None)
            meta = {"stream": "markers"}
            return [Chunk("stream_lost", meta, {}, time.monotonic())]
        if not stamps:
            return []
        meta = {"stream": "markers", "texts": [str(t[0]) for t in texts]}
        arrays = {"stamps": np.asarray(stamps, dtype=np.float64)}
        return [Chunk("data", meta, arrays, time.monotonic())]

    def _read_clocks(self, now: float, *, wait_s: float) -> list[Chunk]:
        pylsl = _pylsl()
        self._last_clock_read = now
        out = []
        for role, inlet in self._inlets.items():
            try:
                offset = float(inlet.time_correction(timeout=wait_s))
            except pylsl.util.TimeoutError:
                continue
            except pylsl.util.LostError:
                continue  # the next pull reports it
            if self._last_offset.get(role) != offset:
                self._last_offset[role] = offset
                meta = {"stream": role, "offset_s": offset}
                out.append(Chunk("clock", meta, {}, time.monotonic()))
        return out


SPEC = SourceSpec(
    scheme="lsl",
    open=LslSource,
    decoder=LslDecoder,
    describe="a Lab Streaming Layer stream: lsl://NAME?emg=0,1&angle=2 (docs/cli.md)",
)

__all__ = ["OPEN_TAG", "SPEC", "LslSource", "list_lsl_streams", "stream_info_dict"]
