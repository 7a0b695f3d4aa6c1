"""The recorder for foreign sources (``lsl://`` ...): same file, journal and guarantees.

:class:`SourceRecorder` is the :class:`~acquire.recorder.Recorder` of a source that does not
speak wire v1 (the contract is :mod:`acquire.sources.base`). ``Recorder(url, ...)`` returns one
when ``url`` is a registered source scheme, or a ``replay://`` of such a recording's capture, so
the CLI, the protocols (stretch prompts, block listeners, host events), the live view and
``--lsl`` republishing use it unchanged. What differs from a device:

- the journal (``FILE.capture``) holds the source's description (record ``S``, tag ``open``)
  and every chunk exactly as received (values and timestamps, record ``S``), written *before*
  the chunk is decoded, next to the host events (``E``) and link events (``L``) in order;
  ``tonuslab replay``/``recover`` feed them to a fresh decoder and rebuild the file bit for bit;
- sample numbers come from the decoder (for LSL: from the timestamps), and a jump is a gap of
  the exact number of missing samples, as for a device's sequence numbers;
- a vanished source (:class:`~acquire.sources.base.SourceLost`) is a ``link`` event; with
  ``reconnect`` the source is reopened with backoff and the samples missed meanwhile are a
  ``link_lost`` gap;
- a fatal inconsistency of the source (a rate that changes) closes the file with everything so
  far (state :data:`SOURCE_ERROR_STATE`) and is raised again (CLI exit 2);
- prompts are shown to the operator (the protocol's messages) and stored; a source with the
  ``"prompt"`` capability also gets them. After a ``stimulus`` prompt (the operator-guided
  H-reflex, :mod:`acquire.protocols.operator_hreflex`), the next pulse whose source gives no
  intensity (a bare TTL edge) takes the prompted intensity (``params["intensity_from"] =
  "prompt"``); the prompt is journalled before the pulse's chunk, so a replay does the same.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time

from acquire import session_file
from acquire.capture import EVENT, HEAD, LINK, SOURCE, CaptureWriter, capture_path_for, read_capture
from acquire.errors import (
    AcquisitionError,
    CaptureError,
    LinkLostError,
    SourceError,
)
from acquire.recorder import Recorder
from acquire.sources import decoder_for, get_spec, open_source, scheme_of
from acquire.sources.base import (
    OPEN_TAG,
    REOPEN_TAG,
    Block,
    Chunk,
    Event,
    SourceLost,
    decode_chunk,
    encode_chunk,
)

log = logging.getLogger("acquire.source_recorder")

#: ``state`` of a session stopped by a source error (a rate change): "stopped_source_error" once
#: the session format lists it, "stopped_link_lost" until then (the source became unusable).
SOURCE_ERROR_STATE = (
    "stopped_source_error" if "stopped_source_error" in session_file.STATES else "stopped_link_lost"
)
#: Journal records handled per :meth:`SourceRecorder.step` in a replay.
REPLAY_BATCH = 64


class SourceRecorder(Recorder):
    """Record a foreign source (see the module docstring); same parameters as ``Recorder``.

    ``config`` must be empty: a foreign source is recorded as it streams (its rates and
    channels are its own).
    """

    def __init__(self, url: str, path, **kwargs) -> None:
        kwargs.pop("link_opener", None)
        super().__init__(url, path, **kwargs)
        self.source = None
        self.decoder = None
        self.source_url = url
        self._records = None
        self._replay_speed: float | None = None
        self._replay_t0: tuple[float, float] | None = None
        self._replay_done = False
        self._replay_error = False
        self._prompted_stimulus: dict | None = None
        self._exclude: set[str] = set()
        if url.startswith("replay://"):
            from acquire.replay import parse_replay_url

            self._replay_path, self._replay_speed = parse_replay_url(url)
            self.replay = True
            self.capture_enabled = False
        elif self.config:
            keys = ", ".join(sorted(self.config))
            raise SourceError(
                f"{scheme_of(url)}:// sources stream at their own rates and channels; "
                f"they cannot be configured ({keys})"
            )

    # ------------------------------------------------------------------ lifecycle
    def exclude_source_ids(self, source_ids) -> None:
        """Never (re)connect to these source ids (the recorder's own ``--lsl`` outlets)."""
        self._exclude |= set(source_ids)
        if self.source is not None:
            self.source.exclude_source_ids(set(source_ids))

    def open(self) -> SourceRecorder:
        """Open the source (or the journal to replay), create the files, start recording."""
        self._check_paths()
        if self.replay:
            description = self._open_replay()
        else:
            get_spec(scheme_of(self.url))  # an unknown or unavailable scheme: one line
            self.source = open_source(self.url)
            self.source.exclude_source_ids(set(self._exclude))
            description = self.source.open()
        try:
            self.decoder = decoder_for(self.source_url, description)
            self.info = self.decoder.info
            if self.capture_enabled:
                self.capture = CaptureWriter(capture_path_for(self.path), overwrite=self.overwrite)
                self.capture.write_json(HEAD, self._header())
                self._journal(Chunk(OPEN_TAG, description, {}, time.monotonic()))
            self._create_writer()
            self.writer.set_attrs(
                source_url=self.source_url,
                index_origin=self.info.index_origin,
                source_details=json.dumps(self.info.details, sort_keys=True, default=str),
            )
        except BaseException:
            self._abort_open(None)
            raise
        self.stats.started_host_s = time.monotonic()
        self._emit("started", {"device": self.writer_device()})
        return self

    def _abort_open(self, link) -> None:
        if self.source is not None:
            with contextlib.suppress(Exception):
                self.source.close()
        super()._abort_open(_NoLink())

    def _open_replay(self) -> dict:
        records = read_capture(self._replay_path)
        header = None
        for rec in records:
            if rec.kind == HEAD and header is None:
                header = rec.json()
                continue
            if rec.kind == SOURCE:
                chunk = decode_chunk(rec.payload, rec.host_time_s)
                if chunk.tag == OPEN_TAG:
                    header = header or {}
                    self._records = records
                    self.source_url = str(header.get("url", "")) or str(chunk.meta.get("url", ""))
                    self._host_unix_minus_host_s = header.get(
                        "host_unix_minus_host_s", self._host_unix_minus_host_s
                    )
                    self._replay_t0 = (rec.host_time_s, time.monotonic())
                    return chunk.meta
            break
        raise CaptureError(f"{self._replay_path} holds no source description at its start")

    def _header(self) -> dict:
        return {**super()._header(), "source_scheme": scheme_of(self.url)}

    def _stream_rates(self) -> dict[str, float]:
        rates = {"emg": float(self.info.emg_rate_hz)}
        if self.info.angle_rate_hz is not None:
            rates["angle"] = float(self.info.angle_rate_hz)
        return rates

    def writer_device(self) -> dict:
        dev = {k: v for k, v in dict(self.info.device).items() if v is not None}
        dev.setdefault("firmware_version", "")
        dev.setdefault("device_id", "")
        return dev

    # ------------------------------------------------------------------ loop
    def step(self, timeout_s: float = 0.05) -> bool:
        """One loop iteration; returns False when the recording is over."""
        if self.replay:
            if not self._replay_step():
                return False
        else:
            try:
                chunks = self.source.read(timeout_s)
            except SourceLost as exc:
                return self._link_lost(str(exc))
            for chunk in chunks:
                self._journal(chunk)
                self._feed(chunk)
        now = time.monotonic()
        if now - self._last_clock >= 1.0:
            self._last_clock = now
            self._update_clock()
        self.writer.maybe_flush()
        if self.capture is not None:
            self.capture.maybe_flush()
        self._update_stats(now)
        if self.duration_s is not None and self.stats.session_time_s >= self.duration_s:
            return False
        return True

    def _journal(self, chunk: Chunk) -> None:
        if self.capture is not None:
            self.capture.write(SOURCE, encode_chunk(chunk), chunk.host_time_s)

    def _feed(self, chunk: Chunk) -> None:
        for item in self.decoder.feed(chunk):
            self._handle_item(item, chunk.host_time_s)

    def _handle_item(self, item, arrival: float) -> None:
        if isinstance(item, Block):
            self._on_block(item, arrival)
        elif isinstance(item, Event):
            self._on_source_event(item)

    def _write_host_event(self, ev: dict) -> None:
        super()._write_host_event(ev)
        if ev.get("kind") == "prompt" and ev.get("label") == "stimulus":
            # the operator was asked for this pulse: a pulse of unknown intensity is this one
            self._prompted_stimulus = dict(ev.get("params") or {})

    def _on_source_event(self, ev: Event) -> None:
        if ev.kind == "stimulus" and not math.isfinite(ev.intensity_ma):
            prompted, self._prompted_stimulus = self._prompted_stimulus, None
            if prompted and prompted.get("intensity_ma") is not None:
                ev.intensity_ma = float(prompted["intensity_ma"])
                if not math.isfinite(ev.width_us) and prompted.get("width_us") is not None:
                    ev.width_us = float(prompted["width_us"])
                ev.params = {**ev.params, "intensity_from": "prompt"}
        elif ev.kind == "stimulus":
            self._prompted_stimulus = None
        rate = self._rates["emg"]
        row, time_s = -1, float("nan")
        if ev.emg_sample_index is not None and "emg" in self._origin:
            rel = int(ev.emg_sample_index) - self._origin["emg"]
            time_s = rel / rate
            row = rel if rel >= 0 else -1
        with self._lock:
            self.writer.add_event(
                ev.kind if ev.kind in session_file.EVENT_KINDS else "note",
                emg_sample_index=row,
                time_s=time_s,
                host_time_s=ev.host_time_s,
                intensity_ma=ev.intensity_ma,
                width_us=ev.width_us,
                pulse_index=ev.pulse_index,
                label=ev.label,
                params=ev.params,
            )
        if ev.kind == "stimulus":
            self.stats.stimuli += 1
            self._emit("stimulus", {"emg_sample_index": row, "intensity_ma": ev.intensity_ma})
        elif ev.kind == "marker":
            self.stats.markers += 1
            self._emit("marker", {"label": ev.label, "emg_sample_index": row})

    def _replay_step(self) -> bool:
        if self._replay_done:
            return False
        for _ in range(REPLAY_BATCH):
            rec = next(self._records, None)
            if rec is None:
                self._replay_done = True
                return False
            if self._replay_speed is not None:
                due = self._replay_t0[1] + (rec.host_time_s - self._replay_t0[0]) / (
                    self._replay_speed
                )
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(min(delay, 0.25))
            if rec.kind == SOURCE:
                try:
                    self._feed(decode_chunk(rec.payload, rec.host_time_s))
                except SourceError as exc:  # the live recording stopped here, for this reason
                    log.warning("replay ends where the recording stopped: %s", exc)
                    self._replay_done = True
                    self._replay_error = True
                    return False
            elif rec.kind == EVENT:
                ev = rec.json()
                self._write_host_event(ev)
                if ev.get("kind") == "marker":
                    self.stats.markers += 1
            elif rec.kind == LINK:
                self._apply_link_event(rec.json())
            if self._replay_speed is not None:
                break
        return True

    def close(self, state: str | None = None) -> None:
        """Release the source, write what the decoder held back, close the file and journal."""
        if self._closed:
            return
        self._closed = True
        state = state or self.final_state
        if self._replay_error and state == "complete":
            state = SOURCE_ERROR_STATE  # the replay stopped where the recording stopped
        if self.source is not None:
            with contextlib.suppress(Exception):
                self.source.close()
        writer_ok = self.writer is not None and not self.writer._closed
        disk_full = state == "stopped_disk_full"
        if disk_full and writer_ok:
            self.writer.make_room_for_closing()
        try:
            if writer_ok:
                if not disk_full and self.decoder is not None:
                    with contextlib.suppress(AcquisitionError):
                        for item in self.decoder.finish():
                            self._handle_item(item, time.monotonic())
                self._update_clock(final=True)
                self.writer.close(state)
        finally:
            self._close_capture(state)
        self._emit("closed", {"state": state})

    def state_for_error(self, exc: BaseException) -> str:
        if isinstance(exc, SourceError) and not isinstance(exc, LinkLostError):
            return SOURCE_ERROR_STATE
        return super().state_for_error(exc)

    # ------------------------------------------------------------------ link loss
    def _link_lost(self, reason: str) -> bool:
        self.stats.link_up = False
        self.stats.link_losses += 1
        lost_at = time.monotonic()
        self._log_link({"event": "lost", "reason": reason}, lost_at)
        self.writer.flush()
        if self.capture is not None:
            self.capture.flush()
        log.warning("source lost: %s", reason)
        if not self.reconnect:
            raise LinkLostError(
                f"{self.url}: {reason}; data up to now is saved "
                "(use --reconnect to wait for the stream to come back)"
            )
        delay = 0.1
        while not self._stop.is_set():
            if time.monotonic() - lost_at > self.reconnect_timeout_s:
                raise LinkLostError(
                    f"{self.url}: {reason} and not back within {self.reconnect_timeout_s:g} s; "
                    "data up to the loss is saved"
                )
            try:
                description = self.source.reopen()
            except SourceError as exc:
                log.info("not back yet: %s", exc)
                time.sleep(delay)
                delay = min(delay * 1.5, 1.0)
                continue
            chunk = Chunk(REOPEN_TAG, description, {}, time.monotonic())
            self._journal(chunk)
            self._feed(chunk)  # a stream back at another rate is refused here
            self.stats.link_up = True
            self._log_link({"event": "restored", "down_s": time.monotonic() - lost_at}, None)
            log.warning("source restored after %.1f s", time.monotonic() - lost_at)
            return True
        return False

    # ------------------------------------------------------------------ clock and prompts
    def _update_clock(self, *, final: bool = False) -> None:
        if self.writer is None or "emg" not in self._origin_time:
            return
        fit = self._fitter.fit(self._origin_time["emg"])
        fit["host_unix_minus_host_s"] = self._host_unix_minus_host_s
        fit["device_clock"] = "source timestamps"
        self.stats.clock = fit
        now = time.monotonic()
        if final or now - self._last_clock_write >= self.CLOCK_WRITE_INTERVAL_S:
            self._last_clock_write = now
            self.writer.set_clock(fit, anchors=self._fitter.anchors(), pings=self._fitter.pings())

    def prompt(self, kind: str, **params) -> None:
        """Show a protocol prompt (the operator sees the protocol's message) and store it;
        a source with the ``"prompt"`` capability also receives it."""
        if not self.replay and self.source is not None and "prompt" in self.source.capabilities:
            try:
                self.source.prompt(kind, params)
            except AcquisitionError as exc:
                log.warning("prompt not delivered: %s", exc)
                params = {**params, "delivered": False}
        self.add_host_event("prompt", label=kind, params=params)


class _NoLink:
    def close(self) -> None:
        pass
