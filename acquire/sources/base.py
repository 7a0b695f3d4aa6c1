"""The contract between the recorder and a *foreign* source (one that does not speak wire v1).

A tonuslab device is recorded through :class:`firmware_iface.client.DeviceClient` over a byte
link, and its wire bytes are the journal. Every other source (an LSL stream, a Delsys Trigno over
TCP, a BITalino over serial) implements the two classes of this module instead, and the same
:class:`acquire.recorder.Recorder` records it with the same guarantees: crash-safe file, journal
for ``kill -9`` recovery and bit-identical replay, ``--reconnect`` with the gap recorded, the
free-disk stop, the live view, the protocols' prompts and ``--lsl`` republishing.

A source is split in two so that replay and recovery run the very code that ran live:

``Source`` (live I/O, never replayed)
    Opens the equipment and hands out **raw chunks** (:class:`Chunk`) exactly as received
    (values, the equipment's own timestamps or counters, the host arrival time). The recorder
    journals every chunk verbatim in the capture (record kind ``S``) *before* decoding it.

``Decoder`` (pure, deterministic)
    Built from the JSON description the source returned from :meth:`Source.open` (also
    journalled), it turns chunks into :class:`Block` and :class:`Event` items. Given the same
    description and the same chunks it produces the same items, bit for bit; it reads no clock,
    no file and no network. ``tonuslab replay``/``recover`` rebuild the session by feeding the
    journalled chunks to a fresh decoder (:mod:`acquire.sources.journal`).

(a) Channel table: :attr:`Decoder.info` (:class:`SourceInfo`)
    ``channels`` lists the stored channels, EMG first then angle, each a :class:`Channel`:
    ``name``, ``kind`` (``"emg"`` or ``"angle"``), ``unit`` (``"uV"`` or ``"deg"``), ``scale``
    and ``offset`` with ``physical = (counts - offset) * scale``. Counts on disk are int32:

    - a source of native ADC counts stores them as they are, with the manufacturer's transfer
      function as ``scale``/``offset`` (e.g. BITalino EMG: ``scale = VCC / 2**n / G * 1e6`` uV,
      ``offset = 2**(n-1)``);
    - a source of floats (LSL float32 volts, Trigno float volts) quantises them with
      :func:`quantise` to a documented resolution (``Channel.scale``): the default
      :data:`EMG_RESOLUTION_UV` (1 nV per count: +/-2.1 V of range, far below any amplifier's
      noise) and :data:`ANGLE_RESOLUTION_DEG` (0.001 deg). Values beyond int32 saturate and
      NaN becomes the gap fill value (the sample is then listed as a gap by the decoder).

    Channels of kind ``"trigger"`` (a TTL input, a sequence counter) are consumed by the decoder
    (stimulus events, sample indices) and are not stored; they may be listed in
    ``SourceInfo.details`` for the record. Rates are floats and are stored as given
    (2148.1481 Hz stays 2148.1481 Hz); ``angle_rate_hz`` is None when there is no angle.
    ``device`` is the session's ``/device`` group (``model``, ``device_id``,
    ``firmware_version``, ``source_kind``, ...); ``index_origin`` says where sample indices come
    from: ``"counter"`` (the equipment numbers its samples) or ``"clock"`` (derived from
    timestamps, see (b)).

(b) Samples: :class:`Block`
    ``stream`` is 0 (EMG) or 1 (angle), as in :class:`firmware_iface.client.SampleBlock` (the
    recorder's block path is shared). ``first_index`` is the **exact source sample number** of
    ``counts[0]``; consecutive blocks continue it, and a jump is a gap of exactly the missing
    samples (the recorder writes the gap row; nothing is interpolated). A source without a
    counter derives the index from its clock (LSL: a timestamp step beyond 1.5 periods plus a
    jitter margin is ``round(dt * rate) - 1`` missing samples) and says so with
    ``index_origin="clock"``. ``device_time_us`` is the source-clock time of ``counts[0]`` in
    integer microseconds, on the session clock (a second stream's clock is mapped onto the
    first's before it gets here): the recorder places each stream's row 0 with it. Indices of
    the angle stream count at the angle rate.

(c) Events: :class:`Event`
    ``kind`` is one of ``"stimulus"`` (a pulse: ``emg_sample_index`` exact, ``intensity_ma``,
    ``width_us``, ``pulse_index``; NaN/-1 when unknown), ``"marker"`` (``label`` is the marker
    text; ``params`` what was parsed from it), ``"status"`` (battery, overruns...) or ``"note"``.
    ``emg_sample_index`` is in the EMG stream's source index space (the recorder subtracts the
    origin). Link loss is not an event: :meth:`Source.read` raises :class:`SourceLost`, and the
    recorder logs it, flushes, and (with ``--reconnect``) calls :meth:`Source.reopen` with
    backoff; the samples missed meanwhile become a ``link_lost`` gap by the index jump.
    A fatal inconsistency (a stream whose rate changes mid-recording) is raised by the decoder
    as a :class:`acquire.errors.SourceError` subclass with one line: the recorder closes the
    file with everything received so far (state ``stopped_source_error``) and the CLI exits 2.

(d) Journal: :class:`Chunk`
    ``tag`` names the chunk kind for the decoder (``"data"``, ``"markers"``...), ``meta`` is
    JSON-serialisable, ``arrays`` holds NumPy arrays (any dtype, C order, stored bit-exact by
    :func:`encode_chunk`), ``host_time_s`` is ``time.monotonic()`` at arrival. The description
    from :meth:`Source.open` and from each :meth:`Source.reopen` is journalled as a chunk
    tagged :data:`OPEN_TAG` / :data:`REOPEN_TAG` and handed to :meth:`Decoder.reopened`.

(e) Capabilities: :attr:`Source.capabilities`
    A set of strings. ``"prompt"``: :meth:`Source.prompt` delivers a protocol prompt to the
    equipment (a display); without it the recorder shows prompts to the operator only (and
    stores them, with ``delivered: false`` absent). ``"trigger_output"``: :meth:`Source.trigger`
    fires the equipment's digital output (a stimulator trigger) and returns the EMG sample
    index it was set at (or None). A source without a stimulator output is recorded with the
    operator-guided H-reflex protocol (:mod:`acquire.protocols.operator_hreflex`): pulses come
    from TTL edges or markers.

Registry: :mod:`acquire.sources` maps URL schemes (``lsl://``, ``trigno://``, ``bitalino://``)
to a :class:`SourceSpec` (``open(url) -> Source`` and ``decoder(description) -> Decoder``).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np

from acquire.errors import SourceError
from acquire.errors import SourceRateChangedError as SourceRateChangedError  # re-exported
from acquire.jsonable import json_default

#: Default resolution of EMG quantised from floats: 0.001 uV (1 nV) per count.
EMG_RESOLUTION_UV = 0.001
#: Default resolution of angles quantised from floats: 0.001 deg per count.
ANGLE_RESOLUTION_DEG = 0.001
#: The gap fill value of the session file (int32 minimum).
FILL_COUNT = np.iinfo(np.int32).min

#: Tag of the journalled description returned by :meth:`Source.open`.
OPEN_TAG = "open"
#: Tag of the journalled description returned by :meth:`Source.reopen`.
REOPEN_TAG = "reopen"

EMG, ANGLE = 0, 1


class SourceLost(Exception):
    """Raised by :meth:`Source.read` when the equipment vanished (not a user error by itself)."""


@dataclass(frozen=True)
class Channel:
    """One stored channel: physical = (counts - offset) * scale, in ``unit``."""

    name: str
    kind: str  # "emg" | "angle"
    unit: str  # "uV" | "deg"
    scale: float
    offset: float = 0.0
    highpass_hz: float | None = None
    lowpass_hz: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SourceInfo:
    """What the recorder needs to create the session file (see the module docstring, (a))."""

    channels: tuple[Channel, ...]
    emg_rate_hz: float
    angle_rate_hz: float | None
    device: dict
    index_origin: str = "counter"  # "counter" | "clock"
    details: dict = field(default_factory=dict)

    def n(self, kind: str) -> int:
        return sum(1 for c in self.channels if c.kind == kind)


@dataclass
class Block:
    """Consecutive samples of one stream, shaped like :class:`firmware_iface.client.SampleBlock`."""

    stream: int
    first_index: int
    counts: np.ndarray  # int32 (n, n_channels)
    device_time_us: int
    host_time_s: float

    @property
    def n_samples(self) -> int:
        return int(self.counts.shape[0])


@dataclass
class Event:
    """A stimulus, marker, status or note from the source (see (c))."""

    kind: str
    emg_sample_index: int
    host_time_s: float
    intensity_ma: float = float("nan")
    width_us: float = float("nan")
    pulse_index: int = -1
    label: str = ""
    params: dict = field(default_factory=dict)


@dataclass
class Chunk:
    """One raw journal record (see (d))."""

    tag: str
    meta: dict
    arrays: dict[str, np.ndarray]
    host_time_s: float


class Source:
    """Live I/O of a foreign source (subclass it; see the module docstring)."""

    #: URL scheme (``"lsl"``).
    scheme: ClassVar[str] = ""
    #: Optional capabilities: ``"prompt"``, ``"trigger_output"``.
    capabilities: frozenset = frozenset()

    def __init__(self, url: str) -> None:
        self.url = url

    def open(self) -> dict:
        """Connect; return the JSON description a :class:`Decoder` is built from.

        Raises :class:`acquire.errors.SourceError` (one line) when the equipment is not found
        within the source's timeout or its description is unusable (unknown unit, channel out
        of range).
        """
        raise NotImplementedError

    def read(self, timeout_s: float) -> list[Chunk]:
        """Chunks received within ``timeout_s`` (possibly none); :class:`SourceLost` if gone."""
        raise NotImplementedError

    def reopen(self) -> dict:
        """After :class:`SourceLost`: try once to reconnect; return the new description.

        Raise :class:`acquire.errors.SourceError` when it is not back yet (the recorder retries
        with backoff until ``--reconnect-timeout``).
        """
        raise SourceError(f"{self.url} cannot be reopened")

    def close(self) -> None:
        """Release the equipment (idempotent)."""

    def prompt(self, kind: str, params: Mapping) -> bool:
        """Deliver a prompt to the equipment; True if delivered (capability ``"prompt"``)."""
        return False

    def trigger(self, **params) -> int | None:
        """Fire the stimulator trigger output (capability ``"trigger_output"``)."""
        raise SourceError(f"{self.url} has no stimulator trigger output")

    def exclude_source_ids(self, source_ids: set[str]) -> None:
        """Never connect to these (the recorder's own ``--lsl`` outlets); optional."""


class ConnectingSource(Source):
    """A :class:`Source` whose ``_connect()`` opens the equipment and returns its description.

    ``open`` builds the source's decoder (:meth:`make_decoder`) once, so a bad channel or
    unit is refused (and the equipment released) before anything is recorded; ``reopen``
    closes and connects again, a device not back yet being a :class:`SourceError` for the
    recorder's retry loop. The native drivers (``bitalino://``, ``trigno://``) share this.
    """

    def _connect(self) -> dict:
        """Open the equipment; return its JSON description (``SourceNotFoundError`` if absent)."""
        raise NotImplementedError

    def make_decoder(self, description: Mapping) -> Decoder:
        """The decoder of this source for ``description``."""
        raise NotImplementedError

    def open(self) -> dict:
        description = self._connect()
        try:
            self.make_decoder(description)
        except BaseException:
            self.close()
            raise
        return description

    def reopen(self) -> dict:
        from acquire.errors import SourceNotFoundError

        self.close()
        try:
            return self._connect()
        except SourceNotFoundError as exc:
            raise SourceError(str(exc)) from None


class Decoder:
    """Pure chunk -> items decoding (subclass it; see the module docstring)."""

    info: SourceInfo

    def __init__(self, description: Mapping) -> None:
        self.description = dict(description)

    def feed(self, chunk: Chunk) -> list[Block | Event]:
        raise NotImplementedError

    def reopened(self, description: Mapping) -> list[Block | Event]:
        """The source came back (:meth:`Source.reopen`); refuse it if incompatible."""
        return []

    def finish(self) -> list[Block | Event]:
        """The recording ends: items still held back (e.g. a pulse waiting for its marker)."""
        return []


@dataclass(frozen=True)
class SourceSpec:
    """A registered URL scheme: how to open it live and how to rebuild its decoder."""

    scheme: str
    open: object  # Callable[[str], Source]
    decoder: object  # Callable[[Mapping], Decoder]
    describe: str = ""


# ----------------------------------------------------------------------------- helpers
def quantise(values: np.ndarray, resolution: float) -> np.ndarray:
    """Float physical values -> int32 counts at ``resolution`` units per count.

    Rounds half to even, saturates at the int32 range (keeping the fill value free) and maps
    NaN to :data:`FILL_COUNT`. ``(counts * resolution)`` gives the value back within half a
    count.
    """
    x = np.asarray(values, dtype=np.float64) / float(resolution)
    nan = np.isnan(x)
    np.clip(x, FILL_COUNT + 1, np.iinfo(np.int32).max, out=x)
    x[nan] = 0.0
    out = np.rint(x).astype(np.int32)
    if nan.any():
        out[nan] = FILL_COUNT
    return out


_LEN = struct.Struct("<I")


def encode_chunk(chunk: Chunk) -> bytes:
    """A chunk as bytes (for the capture): u32 JSON length, JSON, then the raw arrays."""
    arrays = {k: np.ascontiguousarray(v) for k, v in chunk.arrays.items()}
    head = {
        "tag": chunk.tag,
        "meta": chunk.meta,
        "arrays": [[k, a.dtype.str, list(a.shape)] for k, a in arrays.items()],
    }
    text = json.dumps(head, sort_keys=True, default=json_default).encode()
    return b"".join([_LEN.pack(len(text)), text, *(a.tobytes() for a in arrays.values())])


def decode_chunk(payload: bytes, host_time_s: float) -> Chunk:
    """Inverse of :func:`encode_chunk` (arrays bit-identical)."""
    (n,) = _LEN.unpack_from(payload, 0)
    head = json.loads(payload[4 : 4 + n].decode())
    pos = 4 + n
    arrays = {}
    for name, dtype, shape in head["arrays"]:
        dt = np.dtype(dtype)
        count = int(np.prod(shape)) if shape else 1
        a = np.frombuffer(payload, dtype=dt, count=count, offset=pos).reshape(shape)
        arrays[name] = a.copy()
        pos += count * dt.itemsize
    return Chunk(head["tag"], head["meta"], arrays, host_time_s)
