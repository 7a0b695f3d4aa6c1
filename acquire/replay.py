"""``replay://CAPTURE``: a recorded wire capture played back as a byte link.

The replay link behaves like the device that was recorded: it stays silent until the host
speaks, answers the host's lifecycle commands (IDENTIFY, CONFIGURE, SET_TIME, START, STOP) with
the replies recorded for them (the acknowledged sequence number rewritten to the host's), and
streams every recorded device frame, in order, with its recorded arrival time in
:attr:`ReplayLink.last_arrival_s`, either at the recorded pace or as fast as the host reads.
Frames are re-encoded from the decoded stream, so the host decodes exactly the frames the live
recorder decoded: sample arrays rebuilt from a capture are bit-identical.

The host must not send other commands (pings, prompts, stimulation) to a replay: it answers them
with nothing (the recorder does not send them in replay mode). Host events recorded in the
capture (markers, prompts, link events) are handed out by :meth:`ReplayLink.take_host_events`,
and the recorded round-trip pings by :meth:`ReplayLink.recorded_pings`.

URL forms: ``replay:///abs/path.capture``, ``replay://relative.capture``, with an optional
query ``?speed=fast`` (default), ``?speed=realtime`` or ``?speed=2.5`` (times real time).
"""

from __future__ import annotations

import collections
import pathlib
import struct
import threading
import time
import urllib.parse

from acquire.capture import EVENT, HEAD, LINK, RX, TX, read_capture
from acquire.errors import CaptureError, SourceError
from firmware_iface.codec import StreamDecoder, encode_frame
from firmware_iface.errors import LinkClosed
from firmware_iface.messages import Ack, MsgType

#: Where ``device_tx_us`` sits in a PING reply body (after ``token u32, device_rx_us u64``).
_PING_TX_OFFSET = 12

#: Host commands the replay answers from the recording, in order.
GATING = frozenset({MsgType.IDENTIFY, MsgType.CONFIGURE, MsgType.SET_TIME, MsgType.START})


def parse_replay_url(url: str) -> tuple[pathlib.Path, float | None]:
    """``replay://PATH?speed=...`` -> (path, speed factor or None for as fast as possible)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "replay":
        raise SourceError(f"not a replay URL: {url!r} (expected replay://CAPTURE)")
    raw = (parsed.netloc + parsed.path) if parsed.netloc else parsed.path
    path = pathlib.Path(urllib.parse.unquote(raw))
    query = urllib.parse.parse_qs(parsed.query)
    speed_text = query.get("speed", ["fast"])[0]
    if speed_text == "fast":
        speed = None
    elif speed_text == "realtime":
        speed = 1.0
    else:
        try:
            speed = float(speed_text)
        except ValueError:
            raise SourceError(f"replay speed must be fast, realtime or a number: {url}") from None
        if speed <= 0:
            raise SourceError("replay speed must be positive")
    return path, speed


def open_replay_link(url: str) -> ReplayLink:
    """Open ``replay://CAPTURE[?speed=fast|realtime|FACTOR]`` as a byte link."""
    path, speed = parse_replay_url(url)
    if not path.exists():
        raise SourceError(f"capture {path} not found")
    return ReplayLink(path, speed=speed)


class ReplayLink:
    """A :class:`~firmware_iface.link.ByteLink` that plays back a wire capture.

    Parameters
    ----------
    path : path-like
        The ``.capture`` file.
    speed : float or None
        None: as fast as the host reads; 1.0: the recorded pace; other: that factor.

    Attributes
    ----------
    header : dict
        The capture's header record (source URL, metadata, options of the live recording).
    last_arrival_s : float
        Recorded arrival time of the bytes returned by the last ``read``.
    exhausted : bool
        True once the whole capture was delivered (``read`` then raises ``LinkClosed``).
    replay : bool
        Always True (lets the recorder know it is replaying).
    """

    replay = True

    def __init__(self, path, *, speed: float | None = None) -> None:
        self.path = pathlib.Path(path)
        self.speed = speed
        self._records = read_capture(self.path)
        self.header: dict = {}
        self.last_arrival_s = 0.0
        self.exhausted = False
        self._closed = False
        self._lock = threading.Lock()
        self._rx_decoder = StreamDecoder()
        self._tx_decoder = StreamDecoder()
        self._host_decoder = StreamDecoder()
        self._out: collections.deque = collections.deque()  # (bytes, arrival)
        self._pending: list = []  # a record read ahead
        self._pending_tx = None  # decoded host frames waiting for the replaying host
        self._host_events: list = []
        self._pings: list = []
        self._ping_sent: dict[int, float] = {}
        self._rec_gating_seq: dict[int, int] = {}  # recorded seq -> gating index
        self._n_rec_gating = 0
        self._host_gating_seqs: list[int] = []
        self._host_spoke = False
        self._host_stopped = False
        self._host_started = False
        self._t_first: float | None = None
        self._t_start = time.monotonic()
        self._eof = False
        try:
            first = next(self._records)
        except StopIteration:
            raise CaptureError(f"{self.path} holds no records") from None
        if first.kind == HEAD:
            self.header = first.json()
        else:
            self._pending.append(first)

    # -- ByteLink ------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._closed:
            raise LinkClosed("replay closed")
        with self._lock:
            self._host_spoke = True
            for frame in self._host_decoder.feed(data):
                if frame.msg_type in GATING:
                    self._host_gating_seqs.append(frame.seq)
                    if frame.msg_type == MsgType.START:
                        self._host_started = True
                elif frame.msg_type == MsgType.STOP:
                    self._host_stopped = True
                    ack = Ack(frame.seq, frame.msg_type).pack()
                    self._out.append((encode_frame(MsgType.ACK, 0, 0, ack), self.last_arrival_s))

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        if self._closed:
            raise LinkClosed("replay closed")
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            with self._lock:
                if not self._out and not self._host_stopped:
                    self._advance()
                if self._out:
                    data, arrival = self._out[0]
                    if self.speed is not None and self._t_first is not None:
                        due = self._t_start + (arrival - self._t_first) / self.speed
                        wait = due - time.monotonic()
                    else:
                        wait = 0.0
                    if wait <= 0:
                        if len(data) > max_bytes:
                            self._out[0] = (data[max_bytes:], arrival)
                            data = data[:max_bytes]
                        else:
                            self._out.popleft()
                        self.last_arrival_s = arrival
                        return data
                elif self._eof or self._host_stopped:
                    self.exhausted = True
                    raise LinkClosed("end of the capture")
                else:
                    wait = 0.005
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b""
            time.sleep(min(wait, remaining, 0.05))

    def close(self) -> None:
        self._closed = True

    # -- extras for the recorder -----------------------------------------------------------
    def take_host_events(self) -> list[tuple[int, float, dict]]:
        """Host records (kind ``b"E"[0]`` or ``b"L"[0]``, time, JSON) replayed so far."""
        with self._lock:
            out, self._host_events = self._host_events, []
        return out

    def drain_host_events(self) -> list[tuple[int, float, dict]]:
        """At the end of a replay: every host record not handed out yet, to the end of the capture.

        The capture holds exactly what the live session saw, and the live session stored every
        host event (marker, prompt, link) it captured. A replay that reaches its end (duration,
        last sample) before reading the records that follow its last data chunk must still
        store them; under load a fast device's first reply can hold the whole recording.
        """
        with self._lock:
            out, self._host_events = self._host_events, []
            rest = list(self._pending)
            self._pending = []
            for rec in [*rest, *self._records]:
                if rec.kind in (EVENT, LINK):
                    out.append((rec.kind, rec.host_time_s, rec.json()))
            self._eof = True
        return out

    def recorded_pings(self) -> list[tuple[int, float, float]]:
        """Recorded round trips: (device time at reply in us, host send, host receive)."""
        with self._lock:
            return list(self._pings)

    # -- internals ---------------------------------------------------------------------------
    def _advance(self) -> None:
        """Move records into the output until one must wait for the host (or the end)."""
        if not self._host_spoke:
            return
        while not self._out:
            if self._pending_tx is not None:
                frames, t = self._pending_tx
                gating = sum(1 for f in frames if f.msg_type in GATING)
                needed = self._n_rec_gating + gating
                if not self._host_started and needed > len(self._host_gating_seqs):
                    return  # the recorded host sent a command the replaying host has not yet
                self._pending_tx = None
                for frame in frames:
                    if frame.msg_type == MsgType.PING:
                        self._ping_sent[frame.seq] = t
                    elif frame.msg_type in GATING:
                        self._rec_gating_seq[frame.seq] = self._n_rec_gating
                        self._n_rec_gating += 1
                continue
            if self._pending:
                rec = self._pending.pop()
            else:
                try:
                    rec = next(self._records)
                except StopIteration:
                    self._eof = True
                    return
            if rec.kind == TX:
                self._pending_tx = (self._tx_decoder.feed(rec.payload), rec.host_time_s)
            elif rec.kind == RX:
                self._emit_rx(rec)
            elif rec.kind in (EVENT, LINK):
                self._host_events.append((rec.kind, rec.host_time_s, rec.json()))
            elif rec.kind == HEAD and not self.header:
                self.header = rec.json()

    def _emit_rx(self, rec) -> None:
        if self._t_first is None:
            self._t_first = rec.host_time_s
        out = bytearray()
        for frame in self._rx_decoder.feed(rec.payload):
            payload = frame.payload
            if frame.msg_type == MsgType.ACK and len(payload) >= 3:
                ack = Ack.unpack(payload)
                if ack.acked_type == MsgType.PING and ack.acked_seq in self._ping_sent:
                    sent = self._ping_sent.pop(ack.acked_seq)
                    if len(ack.body) >= _PING_TX_OFFSET + 8:
                        # device_tx_us only: captures made before the reply had its uptime
                        # field (20 bytes instead of PingReply's 28) replay the same way
                        (device_tx_us,) = struct.unpack_from("<Q", ack.body, _PING_TX_OFFSET)
                        self._pings.append((device_tx_us, sent, rec.host_time_s))
                index = self._rec_gating_seq.pop(ack.acked_seq, None)
                if index is not None and index < len(self._host_gating_seqs):
                    payload = (
                        struct.pack("<HB", self._host_gating_seqs[index], ack.acked_type) + ack.body
                    )
            out += encode_frame(frame.msg_type, frame.seq, frame.time_us, payload, frame.version)
        if out:
            self._out.append((bytes(out), rec.host_time_s))
