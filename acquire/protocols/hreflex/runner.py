"""The ``hreflex`` runner: drives the device client through a plan and records each pulse.

:class:`HReflexRunner` drives ``DeviceClient.stimulate`` (authenticated by the client) through
the plan, waits on the *device's* sample clock, gates each pulse (:mod:`.gate`), records what
happened (:class:`PulseRecord`, written to the session as notes by :mod:`.notes`) and can be
stopped at once from any thread (:meth:`HReflexRunner.stop`).

Time compression (``time_scale < 1``: intervals shrunk, and the runner never sleeps on the host
clock) exists for the emulated device only, in tests and demos. It is marked in every record and
refused on a real device (:class:`PlanError`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

import numpy as np

from acquire.errors import AcquisitionError
from acquire.protocols.hreflex.gate import BackgroundGate
from acquire.protocols.hreflex.notes import write_protocol_note, write_pulse_note
from acquire.protocols.hreflex.plan import (
    BLOCK_RECRUITMENT,
    BLOCK_RECRUITMENT_FINE,
    HReflexPlan,
    PlanError,
    PlannedPulse,
    StimulationStopped,
)


class EmgMonitor(Protocol):
    """What the runner needs from the recorder: the device's sample clock and recent EMG."""

    emg_rate_hz: float

    def latest_emg_index(self) -> int:
        """Device sample index of the newest EMG sample received (-1 before the first)."""

    def recent_emg_uv(self, n_samples: int) -> np.ndarray:
        """The newest ``n_samples`` EMG samples, uV, shape (n, n_channels), oldest first."""

    # Optional: ``emg_uv_between(first_index, stop_index) -> ndarray | None``, the EMG of device
    # samples [first_index, stop_index) read atomically (None when not held). The quick M/H
    # measures use it when present; otherwise they retry until two reads of the clock agree.


@dataclass
class PulseRecord:
    """What happened to one planned pulse (the runner's log, stored in the session)."""

    number: int
    block: str
    mode: str
    intensity_ma: float
    width_us: int
    pair_interval_s: float
    rate_hz: float
    planned_emg_index: int
    status: str  # "delivered", "skipped_background", "refused"
    first_emg_index: int | None = None
    background_uv: list[float] = field(default_factory=list)
    gate_wait_s: float = 0.0
    message: str = ""
    time_compressed: bool = False
    m_p2p_uv: float | None = None
    h_p2p_uv: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _stimulate(client, pulse: PlannedPulse, time_scale: float):
    """Send one command through ``firmware_iface.client.DeviceClient.stimulate`` (signed there)."""
    if pulse.mode == "pair":
        return client.stimulate(
            float(pulse.intensity_ma), int(pulse.width_us), mode="pair",
            interval_ms=pulse.pair_interval_s * time_scale * 1000.0,
        )  # fmt: skip
    return client.stimulate(float(pulse.intensity_ma), int(pulse.width_us), mode="single")


#: Rate blocks at or above this rate (Hz, plan time) go out as device-timed trains; slower ones
#: pulse by pulse (a host delay is then far inside the analysis's 10 % rhythm tolerance).
TRAIN_MIN_RATE_HZ = 1.0
#: Longest train (s from its first to its last pulse, plan time): the device cannot recall a
#: train it accepted, so ``stop()`` lets at most this much more stimulation through.
MAX_TRAIN_S = 5.0


def _train_interval_us(train: list[PlannedPulse], time_scale: float) -> int:
    """Onset-to-onset interval of a train, in whole microseconds as the command carries it."""
    return round((train[1].t_s - train[0].t_s) * time_scale * 1e6)


def _max_train_pulses(client) -> int:
    """Pulses one STIMULATE may carry: the smaller of the device's and the host's limits."""
    caps = []
    for limits in (
        getattr(getattr(client, "info", None), "limits", None),
        getattr(client, "host_limits", None),
    ):
        n = getattr(limits, "max_pulses", None)
        if isinstance(n, int) and n > 0:
            caps.append(n)
    return min(caps) if caps else 1


def device_is_emulated(client) -> bool:
    """True only for the emulated device.

    Either the client's link carries the in-process ``firmware_iface.emulator.EmulatedDevice``
    (``sim://``), or the device identifies itself with the emulator's serial prefix ``EMU-``
    (the emulator's pty/TCP servers). A real device has neither.
    """
    link = getattr(client, "link", None)
    device = getattr(link, "device", None)
    if device is not None:
        from firmware_iface.emulator.device import EmulatedDevice

        if isinstance(device, EmulatedDevice):
            return True
    info = getattr(client, "info", None)
    if info is None and hasattr(client, "identify"):
        info = client.identify()
    serial = str(getattr(info, "serial", "") or "")
    return serial.startswith("EMU-")


def response_windows_ms(muscle: str) -> dict[str, tuple[float, float]]:
    """The runner's quick M/H windows for a preset, ``{"m": (start, end), "h": (start, end)}``, ms
    after the pulse's first EMG sample.

    They come from the one table of M/H timing, ``dsp.hreflex.presets.MUSCLE_PRESETS``
    (``quick_m_ms``, ``quick_h_ms``), imported here lazily: the one import of ``dsp`` by
    ``acquire`` (a data-only module of the bottom layer; ``docs/architecture.md``).

    Raises
    ------
    PlanError
        When ``muscle`` is not a preset name (``"soleus"``, ``"fcr"``).
    """
    from dsp.hreflex.presets import MUSCLE_PRESETS

    if muscle not in MUSCLE_PRESETS:
        raise PlanError(f"muscle={muscle!r}; choose one of {sorted(MUSCLE_PRESETS)}")
    return MUSCLE_PRESETS[muscle].quick_windows_ms()


def __getattr__(name: str):
    if name == "RESPONSE_WINDOWS_MS":  # {preset: quick windows}, read from the preset table
        from dsp.hreflex.presets import MUSCLE_PRESETS

        return {m: response_windows_ms(m) for m in MUSCLE_PRESETS}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def choose_test_intensity(records: list[PulseRecord], m_fraction: float = 0.2) -> float | None:
    """A test intensity from the recruitment records: M at ``m_fraction`` of the largest M seen.

    Linear interpolation of the runner's quick M peak-to-peak against intensity (median per
    intensity), capped at the intensity of the largest H so that it stays on the rising H limb.
    A starting point for the rate blocks and pairs; ``dsp.hreflex`` gives the fitted value
    afterwards. Returns None when the recruitment gave no usable M.
    """
    rows = [
        (r.intensity_ma, r.m_p2p_uv, r.h_p2p_uv)
        for r in records
        if r.block in (BLOCK_RECRUITMENT, BLOCK_RECRUITMENT_FINE)
        and r.status == "delivered"
        and r.m_p2p_uv is not None
    ]
    if len(rows) < 3:
        return None
    levels = sorted({round(i, 6) for i, _, _ in rows})
    m = np.array([np.median([v for i, v, _ in rows if round(i, 6) == lv]) for lv in levels])
    h = np.array([np.median([v for i, _, v in rows if round(i, 6) == lv]) for lv in levels])
    x = np.array(levels)
    target = m_fraction * float(m.max())
    above = np.nonzero(m >= target)[0]
    if above.size == 0 or m.max() <= 0:
        return None
    k = int(above[0])
    if k == 0:
        value = float(x[0])
    else:
        value = float(np.interp(target, [m[k - 1], m[k]], [x[k - 1], x[k]]))
    i_hmax = float(x[int(np.argmax(h))])
    return round(min(value, i_hmax), 2)


def choose_fine_center(records: list[PulseRecord]) -> float | None:
    """The H peak of the coarse ladder (mA), where the fine ladder is centred.

    Median quick H peak-to-peak per coarse intensity, smoothed over neighbouring intensities (a
    3-point running mean: one large H from trial-to-trial variability should not move the fine
    ladder), and the intensity of its maximum. None when fewer than 3 intensities have a
    measured H.
    """
    rows = [
        (round(r.intensity_ma, 6), r.h_p2p_uv)
        for r in records
        if r.block == BLOCK_RECRUITMENT and r.status == "delivered" and r.h_p2p_uv is not None
    ]
    levels = sorted({i for i, _ in rows})
    if len(levels) < 3:
        return None
    h = np.array([np.median([v for i, v in rows if i == lv]) for lv in levels])
    smooth = np.convolve(np.pad(h, 1, mode="edge"), np.ones(3) / 3.0, mode="valid")
    return float(levels[int(np.argmax(smooth))])


class HReflexRunner:
    """Drive a device client through an :class:`HReflexPlan`.

    Parameters
    ----------
    client : DeviceClient
        The authenticated host client (``firmware_iface``); its ``stimulate`` signs each command.
    monitor : EmgMonitor
        The recorder's view of the incoming EMG (sample clock and recent samples).
    plan : HReflexPlan
        A checked plan (:func:`make_plan`).
    choose_test_intensity : callable, optional
        ``f(records) -> float`` called after the recruitment when the plan has no test intensity;
        its answer is checked against the limits. Default :func:`choose_test_intensity` (M at
        20% of the largest M seen, on the rising H limb).
    choose_fine_center : callable, optional
        ``f(records) -> float or None`` called after the coarse ladder when the plan has a fine
        ladder: its centre, mA. Default :func:`choose_fine_center` (the coarse H peak); None
        (no H seen) centres it on the middle of the coarse range, with a message in the first
        fine pulse's record.
    muscle : {"soleus", "fcr"}
        Response windows of the runner's quick M/H measures (:func:`response_windows_ms`), which
        choose the test intensity: the FCR H-wave (~16 ms) lies inside the soleus M window, so
        an FCR session must say ``"fcr"``. The gate and the quick measures use the plan's
        ``config.emg_channel``.
    on_record : callable, optional
        Called with each :class:`PulseRecord` as soon as it is final (after its note is stored).
    notes : object with ``add_host_event``, optional
        Where the runner writes its record (:mod:`acquire.protocols.hreflex.notes`: the plan
        note when :meth:`run` starts, one pulse note per record). Default: the ``monitor`` when
        it has ``add_host_event`` (the :class:`acquire.recorder.Recorder` does), else nowhere.
        Pass ``False`` to write no notes.
    poll_s : float
        Host sleep between polls of the monitor, s.
    """

    def __init__(
        self,
        client,
        monitor: EmgMonitor,
        plan: HReflexPlan,
        *,
        choose_test_intensity: Callable[[list[PulseRecord]], float] | None = None,
        choose_fine_center: Callable[[list[PulseRecord]], float | None] | None = None,
        on_record: Callable[[PulseRecord], None] | None = None,
        poll_s: float = 0.002,
        muscle: str = "soleus",
        notes=None,
    ):
        windows = response_windows_ms(muscle)
        if plan.time_scale != 1.0 and not device_is_emulated(client):
            raise PlanError(
                "time-compressed plans (time_scale < 1) run only on the emulated device; "
                "build the plan with time_scale=1.0 for a real device"
            )
        # the device's own minimum interval holds in device time whatever the compression
        limits = getattr(getattr(client, "info", None), "limits", None)
        self.device_min_interval_s = float(getattr(limits, "min_interval_us", 0) or 0) / 1e6
        scaled = plan.limits.min_interval_s * plan.time_scale
        if scaled < self.device_min_interval_s:
            raise PlanError(
                f"time_scale={plan.time_scale:g} brings pulses {scaled * 1000:.1f} ms apart, below "
                f"the device's minimum interval {self.device_min_interval_s * 1000:g} ms; use a "
                "larger time_scale"
            )
        self.client = client
        self.monitor = monitor
        self.plan = plan
        self.choose_test_intensity = choose_test_intensity or choose_test_intensity_default
        self.choose_fine_center = choose_fine_center or choose_fine_center_default
        self.fine_center_ma: float | None = None
        self.on_record = on_record
        self.muscle = muscle
        self.windows = windows
        if notes is None:
            notes = monitor if callable(getattr(monitor, "add_host_event", None)) else False
        self.notes = notes or None
        self.channel = int(plan.config.emg_channel)
        self.poll_s = poll_s
        self.records: list[PulseRecord] = []
        #: EMG sample of the last pulse the device was told to place (the second of a pair,
        #: the last of a train), or None: the recording must run past it (``run`` returns as
        #: soon as the last command is accepted, before a device-timed pulse has happened).
        self.last_pulse_emg_index: int | None = None
        self._stop = threading.Event()

    def stop(self) -> None:
        """Stop at once: no further command is sent (safe from any thread or a signal handler).

        A pulse already accepted by the device is not recalled; the device's own stop command
        (if the client has ``stop_stimulation``) is sent as well.
        """
        self._stop.set()
        halt = getattr(self.client, "stop_stimulation", None)
        if callable(halt):
            try:
                halt()
            except Exception:  # stopping must never raise
                pass

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _wait_for_index(self, index: int) -> None:
        while self.monitor.latest_emg_index() < index:
            if self._stop.is_set():
                raise StimulationStopped("stimulation stopped by the operator")
            time.sleep(self.poll_s)

    def run(self) -> list[PulseRecord]:
        """Deliver the plan; returns the records (also on ``self.records``).

        Raises
        ------
        StimulationStopped
            When :meth:`stop` was called (records so far are kept).
        PlanError
            When the test intensity is needed and cannot be resolved within the limits.
        """
        plan = self.plan
        if self.notes is not None:
            write_protocol_note(
                self.notes, plan, muscle=self.muscle, windows_ms=self.windows,
                emg_channel=self.channel,
            )  # fmt: skip
        rate = float(self.monitor.emg_rate_hz)
        scale = plan.time_scale
        gate_cfg = plan.config.gate_band_uv
        gate = (
            None
            if gate_cfg is None
            else BackgroundGate(tuple(gate_cfg), plan.config.gate_bins, channel=self.channel)
        )
        self._wait_for_index(0)
        first = np.asarray(self.monitor.recent_emg_uv(1))
        n_channels = first.shape[1] if first.ndim == 2 else 1
        if self.channel >= n_channels:
            raise PlanError(
                f"emg_channel={self.channel} but the recording has {n_channels} EMG channel(s)"
            )
        # leave room for the gate's bins and the epoch before the first pulse
        start = self.monitor.latest_emg_index() + round(max(0.2, 0.1 * scale) * rate)
        if gate is not None:
            start += gate.samples_needed(rate)
        pulses = list(plan.pulses)
        shift = 0  # samples added by gating waits, to keep every later interval intact
        anchor = (start, 0.0)  # (device index, plan time) of the last pulse placed
        earliest = start
        min_gap = round(plan.limits.min_interval_s * scale * rate)
        lead = 0  # how far ahead of the host's view the device places a pulse (samples)
        k = 0
        while k < len(pulses):
            p = pulses[k]
            fine_note = ""
            if p.intensity_ma is None and p.block == BLOCK_RECRUITMENT_FINE:
                center = self.choose_fine_center(list(self.records))
                if center is None:
                    lo, hi = min(plan.config.ladder_ma), max(plan.config.ladder_ma)
                    center = 0.5 * (lo + hi)
                    fine_note = (
                        f"no H in the coarse ladder: fine ladder centred on {center:g} mA, the "
                        "middle of the coarse range"
                    )
                self.fine_center_ma = float(center)
                plan = plan.with_fine_center(center)
                self.plan = plan
                pulses[k:] = plan.pulses[k:]
                p = pulses[k]
            if p.intensity_ma is None:
                v = (
                    None
                    if self.choose_test_intensity is None
                    else self.choose_test_intensity(list(self.records))
                )
                if v is None:
                    raise PlanError(
                        "the plan has no test intensity: set test_intensity_ma or pass "
                        "choose_test_intensity"
                    )
                plan = plan.with_test_intensity(float(v))
                self.plan = plan
                pulses[k:] = plan.pulses[k:]
                p = pulses[k]
            # Device time of this pulse: planned offset from the last pulse the device actually
            # placed (re-anchoring keeps intervals exact even when the host's view of the device
            # clock lags), sent ``lead`` samples early because the device places a pulse at its
            # own clock, ahead of the host's view by the link's backlog.
            anchor_index, anchor_t = anchor
            target = anchor_index + shift + round((p.t_s - anchor_t) * scale * rate)
            # safety: the device places a pulse at or after the host's view of its clock, so
            # never sending before ``earliest`` keeps every interval >= the minimum
            self._wait_for_index(max(target - lead, earliest))
            rec = PulseRecord(
                number=p.number,
                block=p.block,
                mode=p.mode,
                intensity_ma=float(p.intensity_ma),
                width_us=p.width_us,
                pair_interval_s=p.pair_interval_s * scale,
                rate_hz=p.rate_hz / scale if np.isfinite(p.rate_hz) else p.rate_hz,
                planned_emg_index=int(target),
                status="",
                time_compressed=scale != 1.0,
                message=fine_note,
            )
            if gate is not None:
                waited = 0
                timeout = round(plan.config.gate_timeout_s * scale * rate)
                step = max(round(gate.bin_ms * rate / 1000.0), 1)
                while True:
                    ok, bins = gate.check(
                        self.monitor.recent_emg_uv(gate.samples_needed(rate)), rate
                    )
                    rec.background_uv = bins
                    if ok or waited >= timeout:
                        break
                    waited += step
                    self._wait_for_index(target + waited)
                rec.gate_wait_s = waited / rate
                # only the recruitment keeps its cadence; rate blocks need exact intervals, so
                # a wait shifts everything after it
                shift += waited
                if not ok:
                    rec.status = "skipped_background"
                    rec.message = (
                        f"background {max(bins, default=float('nan')):.1f} uV outside "
                        f"{list(gate.band_uv)} uV for {plan.config.gate_timeout_s * scale:g} s"
                    )
                    self._finish(rec)
                    k += 1
                    continue
            if self._stop.is_set():
                raise StimulationStopped("stimulation stopped by the operator")
            # a rate block goes out as one device-timed train: the device spaces its pulses
            # on its own sample clock, so a busy host cannot stretch the block's intervals
            train = self._train_members(pulses, k)
            view = self.monitor.latest_emg_index()
            try:
                reply = self._send(p, scale, rate, train=train)
            except AcquisitionError:
                raise
            except Exception as exc:  # the device refused (limit, auth): record and stop
                rec.status = "refused"
                rec.message = f"{type(exc).__name__}: {exc}"
                self._finish(rec)
                raise
            rec.status = "delivered"
            rec.first_emg_index = _first_index(reply)
            if rec.first_emg_index is not None:
                lead = max(rec.first_emg_index - view, 0)
                anchor = (rec.first_emg_index, p.t_s)
                shift = 0
                last = rec.first_emg_index + round(rec.pair_interval_s * rate)
                earliest = last + min_gap
                self.last_pulse_emg_index = last
            if rec.first_emg_index is not None and p.block in (
                BLOCK_RECRUITMENT,
                BLOCK_RECRUITMENT_FINE,
            ):
                self._measure(rec, rate)  # rate blocks and pairs keep their timing
            self._finish(rec)
            for j, q in enumerate(train[1:], start=1):
                follower = replace(
                    rec,
                    number=q.number,
                    planned_emg_index=int(target + round((q.t_s - p.t_s) * scale * rate)),
                    background_uv=[],  # gated once, before the train
                    gate_wait_s=0.0,
                    message="",
                )
                if rec.first_emg_index is not None:
                    follower.first_emg_index = rec.first_emg_index + round(
                        j * _train_interval_us(train, scale) * rate / 1e6
                    )
                self._finish(follower)
            if len(train) > 1 and rec.first_emg_index is not None:
                last = rec.first_emg_index + round(
                    (len(train) - 1) * _train_interval_us(train, scale) * rate / 1e6
                )
                anchor = (last, train[-1].t_s)
                earliest = last + min_gap
                self.last_pulse_emg_index = last
            k += max(len(train), 1)
        return self.records

    def _train_members(self, pulses: list[PlannedPulse], k: int) -> list[PlannedPulse]:
        """The pulses from ``k`` that go out as one train: a rate block's evenly spaced singles
        at one intensity, at most the device's and the host's pulses per command."""
        p = pulses[k]
        if p.mode != "single" or not str(p.block).startswith("rate_"):
            return [p]
        if not p.rate_hz >= TRAIN_MIN_RATE_HZ:
            return [p]  # slow blocks: host timing is far inside the 10 % rhythm tolerance
        cap = _max_train_pulses(self.client)
        members = [p]
        period = None
        for q in pulses[k + 1 :]:
            if len(members) >= cap or q.block != p.block or q.mode != "single":
                break
            if q.intensity_ma is None or float(q.intensity_ma) != float(p.intensity_ma):
                break
            step = q.t_s - members[-1].t_s
            if period is None:
                period = step
            elif abs(step - period) > 1e-9:
                break
            if q.t_s - p.t_s > MAX_TRAIN_S + 1e-9:
                break  # bound what an accepted train still delivers after a stop
            members.append(q)
        return members

    def _send(self, p: PlannedPulse, scale: float, rate: float, train=None):
        """Stimulate; while the device reports BUSY (a pair still running), wait and resend."""
        from firmware_iface.errors import CommandRejected
        from firmware_iface.messages import ErrorCode

        for _ in range(200):
            try:
                if train is not None and len(train) > 1:
                    return self.client.stimulate(
                        float(p.intensity_ma), int(p.width_us), mode="train",
                        pulses=len(train), interval_ms=_train_interval_us(train, scale) / 1000.0,
                    )  # fmt: skip
                return _stimulate(self.client, p, scale)
            except CommandRejected as exc:
                if exc.code != ErrorCode.BUSY:
                    raise
            self._wait_for_index(self.monitor.latest_emg_index() + max(round(0.01 * rate), 1))
        raise StimulationStopped("the device stayed busy; stimulation stopped")

    def _measure(self, rec: PulseRecord, rate: float) -> None:
        """Quick M and H peak-to-peak of the first pulse (uV), from the recorder's recent EMG."""
        end_ms = self.windows["h"][1] + 2.0
        last = rec.first_emg_index + round(end_ms * rate / 1000.0)
        self._wait_for_index(last)
        between = getattr(self.monitor, "emg_uv_between", None)
        if between is not None:  # one atomic read (the Recorder has it)
            x = between(rec.first_emg_index, last + 1)
            if x is None:
                return  # the recorder's buffer no longer holds the pulse
            x = np.asarray(x, dtype=float)
        else:
            for _ in range(200):  # the recorder appends from another thread: read a stable view
                latest = self.monitor.latest_emg_index()
                n = latest - rec.first_emg_index + 1
                x = np.asarray(self.monitor.recent_emg_uv(n), dtype=float)
                if self.monitor.latest_emg_index() == latest:
                    break
                time.sleep(0.001)
            else:
                return
            if x.shape[0] < n:
                return  # the recorder's buffer no longer holds the pulse
        if x.ndim == 2:
            x = x[:, self.channel]
        for name in ("m", "h"):
            a, b = (round(v * rate / 1000.0) for v in self.windows[name])
            seg = x[a:b]
            if seg.size and np.all(np.isfinite(seg)):
                setattr(rec, f"{name}_p2p_uv", float(seg.max() - seg.min()))

    def _finish(self, rec: PulseRecord) -> None:
        self.records.append(rec)
        if self.notes is not None:
            write_pulse_note(self.notes, rec)
        if self.on_record is not None:
            self.on_record(rec)


choose_test_intensity_default = choose_test_intensity
choose_fine_center_default = choose_fine_center


def _first_index(reply) -> int | None:
    for attr in ("first_emg_index", "emg_sample_index", "first_index"):
        v = getattr(reply, attr, None)
        if v is not None:
            return int(v)
    if isinstance(reply, dict):
        for key in ("first_emg_index", "emg_sample_index"):
            if key in reply:
                return int(reply[key])
    if isinstance(reply, tuple) and len(reply) == 2:
        return int(reply[1])
    return None
