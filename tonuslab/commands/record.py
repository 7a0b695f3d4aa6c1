"""``tonuslab record URL -o FILE.h5``: record a session, with a live view and guided protocols.

Keys in the live view: ``m`` drops a marker, ``s`` stops stimulation at once, ``q`` (or Ctrl-C)
stops the recording cleanly. Without a terminal the command prints plain log lines. SIGTERM and
Ctrl-C close the session file cleanly (state ``complete``).
"""

from __future__ import annotations

import contextlib
import math
import os
import pathlib
import select
import signal
import sys
import threading
import time
import urllib.parse

from tonuslab.errors import UsageError

NAME = "record"
HELP = "Record a session from a device URL into an HDF5 session file (live view, protocols)."

PROTOCOLS = ("free", "stretch", "hreflex")


#: Recording kept after the last pulse of an H-reflex plan (s): its M and H (under 60 ms) and
#: the epoch the analysis reads after them.
RESPONSE_TAIL_S = 0.3


def add_arguments(parser) -> None:
    parser.add_argument(
        "url",
        help="device: /dev/ttyACM0, serial://PATH, tcp://HOST:PORT, ble://ADDRESS, "
        "sim://PROFILE?seed=N, replay://CAPTURE; or an LSL stream: lsl://NAME?emg=0,1&angle=2 "
        "(docs/cli.md)",
    )
    parser.add_argument("-o", "--output", required=True, type=pathlib.Path, help="FILE.h5")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="free")
    parser.add_argument("--duration", type=float, help="stop after this many seconds of data")
    meta = parser.add_argument_group("session metadata (never a name: a pseudonymous code)")
    meta.add_argument("--subject", dest="subject_id", help="pseudonymous subject id, e.g. S014")
    meta.add_argument("--muscle")
    meta.add_argument("--side", choices=("left", "right", "bilateral"))
    meta.add_argument("--joint")
    meta.add_argument(
        "--direction-sign", dest="stretch_direction_sign", type=int, choices=(1, -1),
        help="+1 if the goniometer angle increases as the muscle lengthens, else -1",
    )  # fmt: skip
    meta.add_argument(
        "--passive-range", dest="passive_range_deg", type=float, nargs=2,
        metavar=("MIN", "MAX"), help="passive range of motion in degrees, if known",
    )  # fmt: skip
    meta.add_argument("--operator", help="operator code or initials")
    meta.add_argument("--notes")
    meta.add_argument("--label", dest="session_label", help="e.g. baseline, post-bolus 4h")
    acq = parser.add_argument_group("acquisition")
    acq.add_argument("--emg-rate", type=int, help="EMG sample rate (Hz)")
    acq.add_argument("--n-emg", type=int, help="EMG channels")
    acq.add_argument("--angle-rate", type=int, help="goniometer sample rate (Hz)")
    acq.add_argument("--n-angle", type=int, help="goniometer channels")
    acq.add_argument("--emg-bits", type=int, choices=(16, 24))
    acq.add_argument("--gain", dest="emg_gain", type=int)
    acq.add_argument(
        "--no-capture",
        action="store_true",
        help="delete the wire capture after a clean stop (it is the crash journal)",
    )
    acq.add_argument(
        "--reconnect",
        action="store_true",
        help="when the link is lost, wait for the device and resume",
    )
    acq.add_argument("--reconnect-timeout", type=float, default=120.0)
    acq.add_argument("--overwrite", action="store_true", help="replace existing files")
    acq.add_argument(
        "--min-free-mb",
        type=float,
        default=8.0,
        help="stop cleanly when free disk space falls below this (default 8)",
    )
    acq.add_argument("--lsl", action="store_true", help="publish EMG and angle on LSL")
    acq.add_argument("--plain", action="store_true", help="log lines instead of the live view")
    web = parser.add_argument_group("browser view")
    web.add_argument(
        "--view", action="store_true",
        help="serve the live view in the browser (127.0.0.1; prints its URL with a token)",
    )  # fmt: skip
    web.add_argument("--open", action="store_true", help="also open the default browser")
    web.add_argument("--view-port", type=int, help="port of the view (default: a free one)")
    web.add_argument(
        "--view-host",
        help="serve the view on this interface instead of loopback (e.g. 0.0.0.0 for a tablet "
        "on the lab network; printed with a warning)",
    )  # fmt: skip
    st = parser.add_argument_group("stretch protocol")
    st.add_argument(
        "--velocities",
        default="30,60,90,120,180,240",
        help="ladder velocities in deg/s, slowest first",
    )
    st.add_argument("--repeats", type=int, default=3, help="stretches per velocity")
    st.add_argument("--range-stretches", type=int, default=2, help="slow stretches for range")
    st.add_argument("--range-velocity", type=float, default=15.0)
    st.add_argument("--rest", type=float, default=3.0, help="rest between stretches (s)")
    hr = parser.add_argument_group("hreflex protocol")
    hr.add_argument("--key-file", help="stimulation key (default $TONUSLAB_STIM_KEY_FILE)")
    hr.add_argument("--time-scale", type=float, default=1.0,
                    help="compress the stimulation plan (emulated device only)")  # fmt: skip
    hr.add_argument("--ladder", help="recruitment intensities in mA, e.g. 4,6,8,...,30")
    hr.add_argument("--ladder-repeats", type=int, help="pulses per ladder intensity")
    hr.add_argument("--order", choices=("ascending", "random"), help="ladder order")
    hr.add_argument(
        "--interval", type=float,
        help="seconds between ladder pulses (default 10; below 10 s a warning is shown and stored)",
    )  # fmt: skip
    hr.add_argument(
        "--jitter", type=float, metavar="S",
        help="random 0..S s added to each ladder interval (default 2; 0 for a fixed interval)",
    )  # fmt: skip
    hr.add_argument(
        "--trigger-after", type=float, metavar="S",
        help="a source with a stimulator trigger output (bitalino:// O1): raise it S seconds "
             "after each prompt (the operator sets the intensity meanwhile; 's' stops)",
    )  # fmt: skip
    hr.add_argument("--rate-blocks", help="frequency blocks in Hz, e.g. 0.1,0.2,0.3,1,2")
    hr.add_argument("--pair-intervals", help="paired-pulse intervals in s, e.g. 2.5,5")
    hr.add_argument("--test-intensity", type=float, help="mA for rate blocks and pairs")
    hr.add_argument(
        "--gate-band", nargs=2, type=float, metavar=("LOW_UV", "HIGH_UV"),
        help="deliver a pulse only while the background EMG (mean rectified, 50 ms bins) lies "
        "in this band (default 0 20 uV); the analysis uses it as its background band",
    )  # fmt: skip
    hr.add_argument("--no-gate", action="store_true", help="deliver without background gating")
    hr.add_argument(
        "--gate-timeout", type=float,
        help="seconds to wait for the background to enter the band before skipping (default 10)",
    )  # fmt: skip
    hr.add_argument(
        "--emg-channel", type=int, default=None,
        help="EMG channel of the stimulated muscle, gated and measured (default 0)",
    )  # fmt: skip


def _metadata(args) -> dict:
    keys = ("subject_id", "muscle", "side", "joint", "stretch_direction_sign",
            "passive_range_deg", "operator", "notes", "session_label")  # fmt: skip
    meta = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    meta["protocol"] = args.protocol
    return meta


def _config(args) -> dict:
    pairs = {
        "emg_rate_hz": args.emg_rate,
        "n_emg": args.n_emg,
        "angle_rate_hz": args.angle_rate,
        "n_angle": args.n_angle,
        "emg_bits": args.emg_bits,
        "emg_gain": args.emg_gain,
    }
    return {k: v for k, v in pairs.items() if v is not None}


def _with_sim_key(url: str, key_file: str | None) -> str:
    """Pair the emulated device with the key file when recording H-reflex from sim://."""
    if not key_file or not url.startswith("sim://") or "key_file=" in url:
        return url
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}key_file={urllib.parse.quote(key_file)}"


def run(args) -> int:
    from acquire.recorder import Recorder

    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be positive")
    if args.output.suffix not in (".h5", ".hdf5"):
        raise UsageError(f"the session file should end in .h5, got {args.output.name}")
    _check_view_args(args)
    stim_key = None
    key_file = args.key_file or os.environ.get("TONUSLAB_STIM_KEY_FILE")
    url = args.url
    operator_cfg = None
    if args.protocol == "hreflex" and _is_foreign(url):
        operator_cfg = _operator_hreflex_config(args)  # the lab's stimulator, operator-guided
    elif args.protocol == "hreflex":
        if not key_file:
            raise UsageError("--protocol hreflex needs a stimulation key: --key-file FILE")
        from firmware_iface.auth import load_key_file

        stim_key = load_key_file(key_file)
        url = _with_sim_key(url, key_file)
        hreflex_plan = _hreflex_plan(args)
    stretch_config = _stretch_config(args) if args.protocol == "stretch" else None
    if args.protocol == "stretch" and url.startswith("sim://") and "speed=" not in url:
        # prompts must reach the virtual patient while it is being recorded, not after the
        # emulator has run minutes ahead: guided protocols pace the emulator in real time
        url += ("&" if "?" in url else "?") + "speed=realtime"
    view = LiveView(args) if (sys.stdout.isatty() and not args.plain) else PlainLog(args)
    rec = Recorder(
        url,
        args.output,
        metadata=_metadata(args),
        config=_config(args),
        capture=True,
        keep_capture=not args.no_capture,
        reconnect=args.reconnect,
        reconnect_timeout_s=args.reconnect_timeout,
        duration_s=args.duration,
        stim_key=stim_key,
        overwrite=args.overwrite,
        min_free_bytes=int(args.min_free_mb * (1 << 20)),
    )
    stop_stim = threading.Event()
    runner = None
    web = None

    def on_signal(signum, frame):
        stop_stim.set()
        if runner is not None:
            runner.stop()
        rec.request_stop()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        rec.open()
        if getattr(args, "view", False):
            web = _start_web_view(args, rec)
            view = WebTee(view, web)
        view.start(rec)
        rec.listeners.append(view.on_event)
        protocol = None
        if args.protocol == "stretch":
            protocol = _stretch_protocol(args, rec, view, stretch_config)
            if web is not None:
                web.model.attach_protocol(protocol)
        elif operator_cfg is not None:
            from acquire.protocols.operator_hreflex import OperatorHReflex

            protocol = OperatorHReflex(rec, operator_cfg, on_message=view.message)
            protocol.attach()
        elif args.protocol == "hreflex":
            runner = _start_hreflex(args, rec, view, *hreflex_plan)
            if web is not None:
                web.model.attach_runner(runner)
        publisher = _start_lsl(rec, view) if args.lsl else None
        state = _loop(rec, view, protocol, runner, args)
        if publisher is not None:
            publisher.close()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if runner is not None:
            runner.stop()
        if rec.writer is not None:
            rec.close()
        view.stop()
        if web is not None:
            web.model.close()
            _linger(web)
            web.stop()
    view.summary(rec, state)
    if web is not None:
        print(f"live view: {web.requests} requests, {web.bytes_sent / 1e3:.0f} kB sent", flush=True)
    failure = getattr(runner, "failure", None)
    if failure is not None:
        # the recording is saved, but the protocol did not run to its end: not a success
        from acquire.errors import ProtocolAborted

        raise ProtocolAborted(
            f"the hreflex protocol was aborted ({type(failure).__name__}: {failure}); "
            f"the recording up to then is saved in {rec.path}"
        )
    return 0


def _linger(server, seconds: float = 1.0) -> None:
    """Keep serving briefly after the end so an open page fetches the final state."""
    if server.requests:
        deadline = time.monotonic() + seconds
        seen = server.requests
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if server.requests > seen + 1:  # the page has polled the ended state
                break


def _is_foreign(url: str) -> bool:
    from acquire.sources import is_source_url

    return is_source_url(url)


def _check_view_args(args) -> None:
    if not getattr(args, "view", False):
        given = [
            o
            for o, v in (
                ("--open", getattr(args, "open", False)),
                ("--view-port", getattr(args, "view_port", None)),
                ("--view-host", getattr(args, "view_host", None)),
            )
            if v
        ]
        if given:
            raise UsageError(f"{', '.join(given)} need --view")
        return
    if args.view_port is not None and not 0 <= args.view_port <= 65535:
        raise UsageError(f"--view-port must be 0..65535, got {args.view_port}")


def _start_web_view(args, rec):
    """Serve the live view of ``rec``; prints its URL (and a warning off loopback)."""
    from tonuslab.view import ViewServer, lan_warning
    from tonuslab.view.live import LiveModel

    model = LiveModel()
    model.attach(rec, protocol_name=args.protocol)
    host = args.view_host or "127.0.0.1"
    try:
        server = ViewServer(model, host=host, port=args.view_port or 0).start()
    except Exception:
        model.close()
        raise
    warning = lan_warning(host)
    if warning:
        print(warning, flush=True)
    print(f"live view: {server.url}", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(server.url)
    return server


def _loop(rec, view, protocol, runner, args) -> str:
    state = "complete"
    done_at = None
    try:
        while not rec.stopping:
            if not rec.step(0.05):
                break
            if protocol is not None:
                protocol.tick()
                if protocol.done and args.duration is None:
                    done_at = done_at or time.monotonic()
                    if time.monotonic() - done_at > 1.0:
                        break
            if runner is not None and args.duration is None and not runner.thread.is_alive():
                # wait out the device-timed pulses still to come (a pair's second pulse, a
                # train's last) and their responses before stopping
                last = runner.last_pulse_emg_index
                if (
                    last is None
                    or runner.stopped
                    or rec.latest_emg_index() >= last + round(RESPONSE_TAIL_S * rec.emg_rate_hz)
                ):
                    break
            for key in view.keys():
                if key in ("q", "Q"):
                    rec.request_stop()
                elif key in ("m", "M"):
                    rec.add_marker("key")
                    view.message("marker dropped")
                elif key in ("s", "S") and runner is not None:
                    runner.stop()
                    view.message("stimulation stopped")
                elif key in ("s", "S") and hasattr(protocol, "stop"):
                    protocol.stop()  # operator-guided: no further trigger
            view.tick(rec)
    except Exception as exc:
        name = type(exc).__name__
        state = {"DiskFullError": "stopped_disk_full", "LinkLostError": "stopped_link_lost"}.get(
            name
        )
        if state is None:  # a foreign source closes its file cleanly on a source error
            state = rec.state_for_error(exc) if hasattr(rec, "source") else "recording"
        rec.close(state)
        raise
    return state


def _stretch_config(args):
    """The stretch protocol's settings, checked before anything is opened (one-line errors)."""
    from acquire.protocols.stretch import StretchConfigError, StretchProtocolConfig

    try:
        velocities = tuple(float(v) for v in args.velocities.split(",") if v.strip())
    except ValueError:
        raise UsageError(
            f"--velocities must be numbers separated by commas: {args.velocities}"
        ) from None
    end = args.passive_range_deg[1] if args.passive_range_deg else None
    options = {"range_velocity_deg_s": "--range-velocity", "velocities_deg_s": "--velocities",
               "rest_s": "--rest", "n_range": "--range-stretches", "repeats": "--repeats",
               "end_deg": "--passive-range"}  # fmt: skip
    try:
        return StretchProtocolConfig(
            range_velocity_deg_s=args.range_velocity,
            n_range=args.range_stretches,
            velocities_deg_s=velocities,
            repeats=args.repeats,
            rest_s=args.rest,
            end_deg=end,
        )
    except StretchConfigError as exc:
        text = str(exc)
        name = text.split("=", 1)[0]
        raise UsageError(f"{options.get(name, name)}: {text}") from None


def _stretch_protocol(args, rec, view, cfg=None):
    from acquire.protocols.stretch import StretchProtocol

    cfg = cfg or _stretch_config(args)
    protocol = StretchProtocol(rec, cfg, on_message=view.message)
    protocol.attach()
    return protocol


def _hreflex_plan(args):
    """Build and check the stimulation plan before anything is opened (safety first)."""
    try:
        from acquire.protocols import hreflex
    except ImportError as exc:
        raise UsageError(f"the hreflex protocol is not available in this build ({exc})") from exc
    needed = ("make_plan", "HReflexProtocolConfig", "HReflexRunner")
    if not all(hasattr(hreflex, n) for n in needed):
        raise UsageError("the hreflex protocol is not available in this build yet")
    fields = {}
    try:
        for opt, name in (("ladder", "ladder_ma"), ("rate_blocks", "rate_blocks_hz"),
                          ("pair_intervals", "paired_intervals_s")):  # fmt: skip
            text = getattr(args, opt)
            if text is not None:
                fields[name] = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError("--ladder, --rate-blocks and --pair-intervals take numbers") from None
    scalars = {
        "ladder_repeats": "ladder_repeats",
        "order": "order",
        "interval": "interval_s",
        "jitter": "jitter_s",
        "test_intensity": "test_intensity_ma",
        "gate_timeout": "gate_timeout_s",
        "emg_channel": "emg_channel",
    }
    for opt, name in scalars.items():
        if getattr(args, opt, None) is not None:
            fields[name] = getattr(args, opt)
    if getattr(args, "no_gate", False) and getattr(args, "gate_band", None) is not None:
        raise UsageError("--no-gate and --gate-band exclude each other")
    if getattr(args, "no_gate", False):
        fields["gate_band_uv"] = None
    elif getattr(args, "gate_band", None) is not None:
        fields["gate_band_uv"] = (float(args.gate_band[0]), float(args.gate_band[1]))
    plan = hreflex.make_plan(hreflex.HReflexProtocolConfig(**fields), time_scale=args.time_scale)

    return hreflex, plan


def _operator_hreflex_config(args):
    """The operator-guided ladder for a stimulator tonuslab does not drive (``lsl://``)."""
    from acquire.errors import AcquisitionError
    from acquire.protocols.operator_hreflex import OperatorHReflexConfig

    given = [
        opt
        for opt, dest in (("--rate-blocks", "rate_blocks"), ("--pair-intervals", "pair_intervals"),
                          ("--test-intensity", "test_intensity"), ("--gate-band", "gate_band"),
                          ("--key-file", "key_file"), ("--order", "order"))
        if getattr(args, dest, None) is not None
    ]  # fmt: skip
    if given:
        raise UsageError(
            f"{', '.join(given)}: not available in the operator-guided H-reflex of an LSL "
            "source (a recruitment ladder prompted to the operator; see docs/equipment.md)"
        )
    fields = {}
    if args.ladder is not None:
        try:
            fields["ladder_ma"] = tuple(float(v) for v in args.ladder.split(",") if v.strip())
        except ValueError:
            raise UsageError("--ladder takes numbers separated by commas") from None
    if args.ladder_repeats is not None:
        fields["repeats"] = args.ladder_repeats
    if args.interval is not None:
        fields["interval_s"] = args.interval
    if getattr(args, "trigger_after", None) is not None:
        from acquire.sources import get_spec, scheme_of

        source = get_spec(scheme_of(args.url)).open(args.url)  # not opened: its capabilities
        if "trigger_output" not in source.capabilities:
            raise UsageError(
                f"{args.url} has no stimulator trigger output: the operator delivers the pulses "
                "(leave out --trigger-after)"
            )
        fields["trigger_after_s"] = args.trigger_after
    try:
        return OperatorHReflexConfig(**fields)
    except AcquisitionError as exc:
        raise UsageError(str(exc)) from None


def _runner_muscle(muscle: str | None) -> tuple[str, str | None]:
    """(runner preset, message) for the ``--muscle`` of an H-reflex recording.

    The runner's quick M/H windows choose the test intensity, so the muscle matters: soleus and
    gastrocnemius use the soleus windows, flexor carpi radialis the FCR ones. Any other (or no)
    muscle uses the soleus windows, with a message saying so.
    """
    from dsp.hreflex.presets import preset_for_muscle

    preset = preset_for_muscle(muscle)
    if preset is not None:
        return preset, None
    what = f"--muscle {muscle!r} has no H-reflex preset" if muscle else "no --muscle given"
    return "soleus", f"{what}: the runner's quick M/H windows are the soleus ones"


def _start_hreflex(args, rec, view, hreflex, plan):
    def on_record(r):  # the runner has stored the pulse's note (acquire.protocols.hreflex.notes)
        view.message(
            f"pulse {r.number} {r.block} {r.intensity_ma:g} mA: {r.status}"
            + (f" ({r.message})" if r.message else "")
        )

    muscle, note = _runner_muscle(getattr(args, "muscle", None))
    for text in [*plan.warnings, *([note] if note else [])]:
        view.message(f"warning: {text}")
    # the runner writes the protocol note and one note per pulse into the recorder
    runner = hreflex.HReflexRunner(rec.client, rec, plan, on_record=on_record, muscle=muscle)

    runner.failure = None

    def target():
        try:
            runner.run()
            view.message("hreflex protocol complete")
        except Exception as exc:  # reported, never kills the recording
            view.message(f"stimulation stopped: {exc}")
            if not runner.stopped:  # not the operator's 's', Ctrl-C or SIGTERM: an abort
                runner.failure = exc

    runner.thread = threading.Thread(target=target, name="tonuslab-hreflex", daemon=True)
    runner.thread.start()
    view.message(f"hreflex plan: {plan.n_pulses} pulses, {plan.duration_s:.0f} s; 's' stops")
    return runner


def _start_lsl(rec, view):
    try:
        from acquire.lsl import LslPublisher
    except ImportError as exc:
        view.message(f"--lsl: LSL publisher not available ({exc})")
        return None
    channels = [c.to_dict() for c in rec.info.channels]
    name = f"tonuslab-{rec.writer_device().get('device_id') or 'source'}"
    if hasattr(rec, "exclude_source_ids"):  # never record our own outlets after a reconnect
        rec.exclude_source_ids({f"tonuslab:{name}:emg", f"tonuslab:{name}:angle"})
    fit_holder = {}

    def device_to_host(t: float) -> float:
        fit = rec.stats.clock
        if fit.get("method") != "lower-envelope":
            return fit_holder.setdefault("anchor", time.monotonic() - t) + t
        return fit["offset_s"] + (1 + fit["drift_ppm"] * 1e-6) * t

    pub = LslPublisher(
        channels,
        rec.emg_rate_hz,
        rec.angle_rate_hz or 1.0,
        name=name,
        device_to_host=device_to_host,
    )

    def push(stream, row, phys, counts):
        t = row / rates[stream]  # session time = device time since EMG row 0
        if stream == "emg":
            pub.push_emg(counts, t)
        else:
            pub.push_angle(counts, t)  # as measured (no sign correction), like the file

    rates = {"emg": rec.emg_rate_hz, "angle": rec.angle_rate_hz}
    rec.block_listeners.append(push)
    view.message(f"LSL outlets {pub.name}-EMG and {pub.name}-Angle are live")
    return pub


# ----------------------------------------------------------------------------- views
class PlainLog:
    """Log lines for scripts and files (no terminal)."""

    def __init__(self, args, interval_s: float = 5.0) -> None:
        self.args = args
        self.interval_s = interval_s
        self._last = 0.0

    def start(self, rec) -> None:
        d = rec.writer_device()
        print(f"recording {rec.url} -> {rec.path} (device {d['device_id']}, "
              f"firmware {d['firmware_version']})", flush=True)  # fmt: skip

    def on_event(self, kind: str, data: dict) -> None:
        if kind == "gap":
            self.message(f"gap: {data['n_samples']} {data['stream']} samples missing")
        elif kind == "link":
            self.message(f"link {data.get('event')}")
        elif kind == "watchdog":
            self.message(f"the device stopped stimulation (no host heartbeat): {data['text']}")
        elif kind == "quarantine":
            self.message(f"implausible {data['stream']} frame set aside ({data['reason']}): "
                         f"{data['detail']}")  # fmt: skip

    def message(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def keys(self) -> list[str]:
        return []

    def tick(self, rec) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            print(_status_line(rec.stats), flush=True)

    def stop(self) -> None:
        pass

    def summary(self, rec, state: str) -> None:
        s = rec.stats
        gaps = sum(s.gap_samples.values())
        print(
            f"saved {rec.path}: {s.session_time_s:.1f} s, state {state}, "
            f"{gaps} samples missing, {s.lost_packets} packets lost"
            + (f", {_quarantine_text(s.quarantined)}" if s.quarantined_frames else "")
            + (f", capture {rec.capture.path}" if rec.capture and rec.keep_capture else ""),
            flush=True,
        )


def _quarantine_text(counts: dict) -> str:
    """``3 implausible frames set aside (index 2, shape 1)``."""
    parts = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
    total = sum(counts.values())
    return f"{total} implausible frame{'s' if total != 1 else ''} set aside ({parts})"


def _status_line(s) -> str:
    battery = "-" if s.battery_pct is None else f"{s.battery_pct}%"
    return (
        f"t={s.session_time_s:7.1f}s emg {s.rate_hz.get('emg', 0):,.0f} Hz "
        f"angle {s.rate_hz.get('angle', 0):,.0f} Hz lost {s.lost_packets} "
        f"gaps {sum(s.gap_samples.values())} battery {battery} "
        f"angle {_num(s.angle_deg)} deg vel {_num(s.velocity_deg_s)} deg/s"
    )


def _num(v: float) -> str:
    return "-" if not math.isfinite(v) else f"{v:.1f}"


class LiveView(PlainLog):
    """A terminal view redrawn a few times a second; single keys without Enter."""

    def __init__(self, args) -> None:
        super().__init__(args)
        self._messages: list[str] = []
        self._term = None
        self._lines = 0

    def start(self, rec) -> None:
        with contextlib.suppress(Exception):
            import termios
            import tty

            fd = sys.stdin.fileno()
            self._term = (fd, termios.tcgetattr(fd))
            tty.setcbreak(fd)
        self._rec = rec

    def stop(self) -> None:
        if self._term is not None:
            import termios

            termios.tcsetattr(self._term[0], termios.TCSADRAIN, self._term[1])
            self._term = None

    def message(self, text: str) -> None:
        self._messages = ([f"{time.strftime('%H:%M:%S')} {text}", *self._messages])[:5]

    def keys(self) -> list[str]:
        if self._term is None:
            return []
        out = []
        while select.select([sys.stdin], [], [], 0)[0]:
            ch = os.read(sys.stdin.fileno(), 1).decode(errors="ignore")
            if not ch:
                break
            out.append(ch)
        return out

    def tick(self, rec) -> None:
        now = time.monotonic()
        if now - self._last < 0.25:
            return
        self._last = now
        s = rec.stats
        width = 24
        lines = [
            f"tonuslab record  {rec.url} -> {rec.path}   [m marker  s stop stim  q stop]",
            f"elapsed {_hms(s.elapsed_s)}  session {s.session_time_s:8.1f} s  "
            f"link {'up' if s.link_up else 'DOWN'}  battery "
            f"{'-' if s.battery_pct is None else f'{s.battery_pct}%'}",
            f"rates EMG {s.rate_hz.get('emg', 0):,.0f} Hz  angle {s.rate_hz.get('angle', 0):,.0f}"
            f" Hz  packets lost {s.lost_packets}  missing samples {sum(s.gap_samples.values())}",
        ]
        for k, level in enumerate(s.emg_level_uv):
            frac = 0.0 if not level > 0 else min(1.0, max(0.0, math.log10(level) / 3.0))
            bar = "#" * round(frac * width)
            lines.append(f"EMG{k + 1:<3d} {bar:<{width}} {level:8.1f} uV")
        lines.append(
            f"angle {_num(s.angle_deg):>7} deg   velocity {_num(s.velocity_deg_s):>7} deg/s"
        )
        lines += self._messages
        out = ""
        if self._lines:
            out += f"\x1b[{self._lines}F"
        out += "".join(f"\x1b[2K{line}\n" for line in lines)
        sys.stdout.write(out)
        sys.stdout.flush()
        self._lines = len(lines)


class WebTee:
    """The terminal (or plain) view plus the browser view: messages go to both, and the page's
    buttons come back as the terminal's keys (``m`` marker, ``s`` stop stimulation, ``q`` stop),
    handled by the recording loop itself."""

    def __init__(self, inner, server) -> None:
        self.inner = inner
        self.server = server
        self.model = server.model

    def start(self, rec) -> None:
        self.inner.start(rec)

    def on_event(self, kind: str, data: dict) -> None:
        self.inner.on_event(kind, data)

    def message(self, text: str) -> None:
        self.inner.message(text)
        self.model.on_event("message", {"label": text})

    def keys(self) -> list[str]:
        out = list(self.inner.keys())
        while self.model.actions:
            out.append(self.model.actions.popleft())
        return out

    def tick(self, rec) -> None:
        self.inner.tick(rec)

    def stop(self) -> None:
        self.inner.stop()

    def summary(self, rec, state: str) -> None:
        self.inner.summary(rec, state)


def _hms(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
