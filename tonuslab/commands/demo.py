"""``tonuslab demo``: the whole product on the emulated device.

By default it runs :func:`tonuslab.pipeline_demo.run_full_demo`: records a stretch session and an
H-reflex session from the emulated device (a virtual patient behind the real wire protocol),
analyses both, writes an HTML report and prints the spasticity profile next to the simulator's
truth. ``--link-only`` runs the link check instead: connect, identify, stream ``--seconds`` of
device time and print what arrived (:func:`run_demo`, which returns the received arrays).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np

from tonuslab.errors import UsageError

NAME = "demo"
HELP = "Run the whole product on the emulated device: record, analyse, report, print the profile."

DEFAULT_URL = "sim://simple?seed=0&speed=fast"


@dataclass
class StreamSummary:
    """What arrived on one stream: counts ``(n, ch)`` int32 indexed by sample number."""

    name: str
    rate_hz: float
    channels: list[str]
    counts: np.ndarray
    index: np.ndarray
    device_time_us: np.ndarray  # of each frame's first sample
    frame_index: np.ndarray
    gaps: list[tuple[int, int]]

    @property
    def n_samples(self) -> int:
        return int(self.counts.shape[0])

    @property
    def achieved_rate_hz(self) -> float:
        """Samples per second of device time, from the frame timestamps."""
        if self.frame_index.size < 2:
            return float("nan")
        span_s = (self.device_time_us[-1] - self.device_time_us[0]) * 1e-6
        return float((self.frame_index[-1] - self.frame_index[0]) / span_s)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "channels": self.channels,
            "configured_rate_hz": self.rate_hz,
            "achieved_rate_hz": self.achieved_rate_hz,
            "samples": self.n_samples,
            "missing_samples": int(sum(n for _, n in self.gaps)),
            "gaps": [list(g) for g in self.gaps],
        }


@dataclass
class DemoResult:
    """Everything the demo received, with the device's identity and link statistics."""

    url: str
    device: dict
    streams: dict[int, StreamSummary]
    events: list = field(default_factory=list)
    device_seconds: float = 0.0
    wall_seconds: float = 0.0
    link: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        kinds: dict[str, int] = {}
        for e in self.events:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
        status = [e.message for e in self.events if e.kind == "status"]
        return {
            "url": self.url,
            "device": self.device,
            "device_seconds": self.device_seconds,
            "wall_seconds": self.wall_seconds,
            "streams": {s.name: s.to_dict() for s in self.streams.values()},
            "events": kinds,
            "last_status": status[-1].__dict__ if status else None,
            "link": self.link,
        }


def run_demo(
    url: str = DEFAULT_URL,
    *,
    device_seconds: float = 10.0,
    marker_at_s: float | None = 5.0,
    wall_limit_s: float | None = None,
) -> DemoResult:
    """Connect, identify, stream ``device_seconds`` of device time, stop, summarise.

    Parameters
    ----------
    url : str
        Device URL (see :func:`acquire.links.open_link`); the default is the emulator, as fast
        as possible.
    device_seconds : float
        Device time to stream.
    marker_at_s : float, optional
        On an emulated device, press its marker button at this device time (None: never).
    wall_limit_s : float, optional
        Give up after this wall-clock time (default ``3 * device_seconds + 10``).
    """
    from acquire.links import open_link
    from firmware_iface.client import DeviceClient, DeviceEvent, SampleBlock

    wall_limit_s = wall_limit_s or 3 * device_seconds + 10
    started = time.monotonic()
    link = open_link(url)
    client = DeviceClient(link)
    try:
        info = client.connect()
        client.start()
        blocks: dict[int, list] = {}
        events: list = []
        first_us = last_us = None
        if marker_at_s is not None and hasattr(link, "runner"):
            with link.runner.lock:  # the emulated device's button, at a device time
                device = link.device
                at = device.run_first_emg_index + round(marker_at_s * info.config.emg_rate_hz)
                device.press_button(at_emg_index=at)
        deadline = started + wall_limit_s
        while time.monotonic() < deadline:
            for item in client.read(0.2):
                if isinstance(item, SampleBlock):
                    blocks.setdefault(item.stream, []).append(item)
                    if item.stream == 0:
                        first_us = item.device_time_us if first_us is None else first_us
                        last_us = item.device_time_us
                elif isinstance(item, DeviceEvent):
                    events.append(item)
            if last_us is not None and last_us - first_us >= device_seconds * 1e6:
                break
        client.stop()
        for item in client.read(0.2):
            if isinstance(item, DeviceEvent):
                events.append(item)
        if first_us is not None:  # keep exactly the requested span of device time
            end_us = first_us + device_seconds * 1e6
            blocks = {k: [b for b in v if b.device_time_us < end_us] for k, v in blocks.items()}
            events = [e for e in events if e.device_time_us < end_us]
            emg = blocks.get(0, [])
            last_us = emg[-1].device_time_us + emg[-1].n_samples * 1e6 / info.config.emg_rate_hz
        streams = {}
        for stream, bs in sorted(blocks.items()):
            is_emg = stream == 0
            chans = info.emg_channels if is_emg else info.angle_channels
            rate = info.config.emg_rate_hz if is_emg else info.config.angle_rate_hz
            streams[stream] = StreamSummary(
                name="emg" if is_emg else "angle",
                rate_hz=float(rate),
                channels=[c.name for c in chans],
                counts=np.concatenate([b.counts for b in bs]),
                index=np.concatenate([b.first_index + np.arange(b.n_samples) for b in bs]),
                device_time_us=np.array([b.device_time_us for b in bs], dtype=np.int64),
                frame_index=np.array([b.first_index for b in bs], dtype=np.int64),
                gaps=list(client.stats.gaps.get(stream, [])),
            )
        device = {
            "serial": info.serial,
            "protocol": f"{info.protocol_major}.{info.protocol_minor}",
            "firmware": ".".join(map(str, info.fw_version)),
            "channels": [c.to_dict() for c in info.channels],
        }
        link_stats = {
            "frames": client.stats.frames,
            "lost_frames": client.stats.lost_frames,
            "corrupt_frames": client.decoder.stats.errors,
        }
        return DemoResult(
            url=url,
            device=device,
            streams=streams,
            events=events,
            device_seconds=((last_us - first_us) * 1e-6) if last_us is not None else 0.0,
            wall_seconds=time.monotonic() - started,
            link=link_stats,
        )
    finally:
        client.close()


def format_demo(result: DemoResult) -> str:
    """The human-readable summary printed by ``tonuslab demo``."""
    d = result.device
    lines = [
        f"device {d['serial']} (protocol {d['protocol']}, firmware {d['firmware']}) at "
        f"{result.url}",
        "channels:",
    ]
    for c in d["channels"]:
        hp = "DC" if c["highpass_hz"] is None else f"{c['highpass_hz']:g}"
        lp = "-" if c["lowpass_hz"] is None else f"{c['lowpass_hz']:g}"
        band = "none" if c["highpass_hz"] is None and c["lowpass_hz"] is None else f"{hp}-{lp} Hz"
        lines.append(f"  {c['name']:<6} {c['kind']:<5} {c['unit']:<3} scale {c['scale']:.4g} "
                     f"offset {c['offset']:g}  filters {band}")  # fmt: skip
    lines.append(f"streamed {result.device_seconds:.2f} s of device time in "
                 f"{result.wall_seconds:.2f} s:")  # fmt: skip
    for s in result.streams.values():
        sd = s.to_dict()
        lines.append(
            f"  {s.name:<5} {len(s.channels)} ch  {sd['samples']} samples  "
            f"{sd['achieved_rate_hz']:.2f} Hz achieved ({s.rate_hz:g} configured)  "
            f"{sd['missing_samples']} missing in {len(s.gaps)} gaps"
        )
    counts = result.to_dict()["events"]
    lines.append("events: " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"))
    status = result.to_dict()["last_status"]
    if status:
        lines.append(
            f"last status: battery {status['battery_pct']}%, "
            f"{status['temperature_cdeg'] / 100:.1f} C, device overruns {status['overruns']}, "
            f"dropped samples {status['dropped_samples']}"
        )
    ln = result.link
    lines.append(f"link: {ln['frames']} frames, {ln['lost_frames']} lost, "
                 f"{ln['corrupt_frames']} corrupt")  # fmt: skip
    return "\n".join(lines)


def add_arguments(parser) -> None:
    from tonuslab import pipeline_demo

    pipeline_demo.add_arguments(parser)
    link = parser.add_argument_group("link check (--link-only)")
    link.add_argument(
        "--link-only", action="store_true",
        help="only connect, identify, stream and print what arrived (no analysis)",
    )  # fmt: skip
    link.add_argument("--url", help=f"device URL (default {DEFAULT_URL}); implies --link-only")
    link.add_argument(
        "--seconds", type=float, help="device seconds to stream (default 10); implies --link-only"
    )
    link.add_argument(
        "--json", action="store_true", help="print the summary as JSON; implies --link-only"
    )


def run(args) -> int:
    if not (args.link_only or args.url or args.seconds is not None or args.json):
        from tonuslab import pipeline_demo

        return pipeline_demo.run(args)
    args.url = args.url or DEFAULT_URL
    args.seconds = 10.0 if args.seconds is None else args.seconds
    if not args.seconds > 0:
        raise UsageError(f"--seconds must be positive, got {args.seconds}")
    result = run_demo(args.url, device_seconds=args.seconds)
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_demo(result))
    return 0
