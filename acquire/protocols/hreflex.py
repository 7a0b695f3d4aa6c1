"""The ``hreflex`` recording protocol: recruitment ladder, rate blocks, paired pulses.

Three pieces, usable separately:

- :func:`make_plan` turns an :class:`HReflexProtocolConfig` into an :class:`HReflexPlan` (every
  pulse with its time, intensity, width, block and nominal rate) and refuses plans that break the
  host-side :class:`SafetyLimits` with one clear :class:`PlanError`.
- :func:`background_bins_uv` / :class:`BackgroundGate`: mean rectified EMG in 50 ms bins; a pulse
  is delivered only while the background is inside a band (domain notes: background gating).
- :class:`HReflexRunner` drives ``DeviceClient.stimulate`` (authenticated by the client) through
  the plan, waits on the *device's* sample clock, gates each pulse, records what happened and can
  be stopped at once from any thread (:meth:`HReflexRunner.stop`).

Time compression (``time_scale < 1``: intervals shrunk, and the runner never sleeps on the host
clock) exists for the emulated device only, in tests and demos. It is marked in every record and
refused on a real device (:class:`PlanError`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

import numpy as np

from acquire.errors import AcquisitionError

BLOCK_RECRUITMENT = "recruitment"
#: The fine part of a coarse-then-fine recruitment ladder (placed around the coarse H peak).
BLOCK_RECRUITMENT_FINE = "recruitment_fine"


class PlanError(AcquisitionError):
    """A stimulation plan breaks a host-side safety limit or is malformed (nothing was sent)."""


class StimulationStopped(AcquisitionError):
    """The runner was stopped (``stop()``) before the plan finished."""


@dataclass(frozen=True)
class SafetyLimits:
    """Host-side stimulation limits, checked before any pulse is planned or sent.

    The device enforces its own limits as well (``firmware_iface/PROTOCOL.md``); these are the
    host's, usually stricter.

    Attributes
    ----------
    max_intensity_ma : float
        Highest intensity allowed, mA.
    max_width_us, min_width_us : int
        Pulse-width bounds, us.
    min_interval_s : float
        Shortest onset-to-onset interval between any two pulses (within a pair too), s.
    max_pulses : int
        Most pulses in one session.
    max_rate_hz : float
        Highest block rate, Hz.
    """

    max_intensity_ma: float = 40.0
    max_width_us: int = 1000
    min_width_us: int = 50
    min_interval_s: float = 0.45
    max_pulses: int = 600
    max_rate_hz: float = 2.0


@dataclass(frozen=True)
class HReflexProtocolConfig:
    """What the ``hreflex`` protocol should do.

    Attributes
    ----------
    ladder_ma : sequence of float
        Coarse recruitment intensities, mA (each delivered ``ladder_repeats`` times).
    ladder_repeats : int
        Repeats of each ladder intensity.
    fine_ladder_pulses : int
        Pulses added after the coarse ladder around the H peak it showed (coarse-then-fine, as
        labs do: the H peak is narrow, and Hmax is pinned by the pulses near it). Their
        intensities are resolved after the coarse ladder (:func:`choose_fine_center`); 0 turns
        the fine ladder off.
    fine_span : float
        Half-width of the fine ladder as a fraction of the coarse ladder's range (0.15: +/-3.9 mA
        for 4-30 mA), evenly spaced, in random order, clipped to the coarse range.
    order : {"ascending", "random"}
        Order of the recruitment pulses.
    interval_s : float
        Interval between recruitment pulses, s (>= 10 s on a real subject).
    jitter_s : float
        Extra random interval, uniform in [0, jitter_s], added to each recruitment interval.
    width_us : int
        Pulse width, us (1 ms typical).
    rate_blocks_hz : sequence of float
        Frequency blocks (0.1, 0.2, 0.3, 1, 2 Hz); pulses at ``test_intensity_ma``.
    pulses_per_block : int
        Pulses in each rate block.
    block_rest_s : float
        Rest before each rate block and each paired-pulse series, s.
    paired_intervals_s : sequence of float
        Paired-pulse intervals (2.5 and 5 s), at ``test_intensity_ma``.
    pairs_per_interval : int
        Pairs at each interval.
    pair_rest_s : float
        Rest between pairs, s.
    test_intensity_ma : float, optional
        Intensity of the rate blocks and pairs (M at ~10-33% of Mmax on the rising H limb). When
        omitted the runner asks its ``choose_test_intensity`` callback after the recruitment.
    gate_band_uv : (float, float), optional
        Background band (mean rectified EMG, 50 ms bins); None disables gating.
    gate_bins : int
        Consecutive 50 ms bins that must lie inside the band just before a pulse.
    gate_timeout_s : float
        How long to wait for the background to enter the band before skipping the pulse, s.
    emg_channel : int
        EMG channel (column of the recorder's EMG) watched by the gate and measured by the
        runner's quick M/H peak-to-peak: the channel of the stimulated muscle.
    seed : int
        Randomness of order and jitter.
    """

    ladder_ma: Sequence[float] = tuple(np.round(np.arange(4.0, 30.01, 2.0), 3))
    ladder_repeats: int = 1
    fine_ladder_pulses: int = 14
    fine_span: float = 0.15
    order: str = "random"
    interval_s: float = 10.0
    jitter_s: float = 2.0
    width_us: int = 1000
    rate_blocks_hz: Sequence[float] = (0.1, 0.2, 0.3, 1.0, 2.0)
    pulses_per_block: int = 10
    block_rest_s: float = 20.0
    paired_intervals_s: Sequence[float] = (2.5, 5.0)
    pairs_per_interval: int = 5
    pair_rest_s: float = 10.0
    test_intensity_ma: float | None = None
    gate_band_uv: tuple[float, float] | None = (0.0, 20.0)
    gate_bins: int = 2
    gate_timeout_s: float = 10.0
    emg_channel: int = 0
    seed: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, (tuple, list)) else v for k, v in d.items()}


@dataclass(frozen=True)
class PlannedPulse:
    """One planned stimulation command.

    Attributes
    ----------
    number : int
        Position in the plan.
    t_s : float
        Planned onset, s after the start of the plan (before any time compression).
    intensity_ma : float or None
        Intensity, mA (None: the test intensity, resolved after the recruitment).
    width_us : int
        Pulse width, us.
    mode : {"single", "pair"}
        Single pulse or pair.
    pair_interval_s : float
        Onset-to-onset within a pair, s (0 for a single pulse).
    block : str
        ``"recruitment"``, ``"recruitment_fine"``, ``"rate_<f>hz"`` or ``"pair_<dt>s"``.
    rate_hz : float
        Nominal rate of the block (recruitment: ``1 / interval_s``; pairs: NaN).
    fine_offset_ma : float
        Fine-ladder pulses: offset from the coarse H peak, mA (NaN otherwise).
    """

    number: int
    t_s: float
    intensity_ma: float | None
    width_us: int
    mode: str
    pair_interval_s: float
    block: str
    rate_hz: float
    fine_offset_ma: float = float("nan")


#: Shortest recruitment interval that keeps post-activation depression out of the ladder, s
#: (depression of the soleus H-reflex lasts more than 8 s: Crone & Nielsen 1989, Exp Brain Res
#: 78:28); a shorter ladder interval is allowed but warned about.
RECOMMENDED_LADDER_INTERVAL_S = 10.0


@dataclass
class HReflexPlan:
    """A checked plan: the pulses in order, and the config and limits it was built with.

    ``warnings`` lists what is allowed but not recommended (e.g. a ladder interval below
    :data:`RECOMMENDED_LADDER_INTERVAL_S`); the recorder shows them and stores them in the plan.
    """

    pulses: list[PlannedPulse]
    config: HReflexProtocolConfig
    limits: SafetyLimits
    time_scale: float = 1.0
    warnings: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        last = self.pulses[-1]
        return (last.t_s + last.pair_interval_s) * self.time_scale

    @property
    def n_pulses(self) -> int:
        return sum(2 if p.mode == "pair" else 1 for p in self.pulses)

    def with_test_intensity(self, intensity_ma: float) -> HReflexPlan:
        """The plan with every unresolved test intensity (rate blocks, pairs) set, re-checked
        against the limits."""
        _check_intensity(float(intensity_ma), self.limits, "test_intensity_ma")
        pulses = [
            p
            if p.intensity_ma is not None or p.block == BLOCK_RECRUITMENT_FINE
            else replace(p, intensity_ma=float(intensity_ma))
            for p in self.pulses
        ]
        return HReflexPlan(pulses, self.config, self.limits, self.time_scale, list(self.warnings))

    def with_fine_center(self, center_ma: float) -> HReflexPlan:
        """The plan with the fine-ladder intensities set to ``center_ma`` + their offsets,
        clipped to the coarse ladder's range and re-checked against the limits."""
        lo, hi = min(self.config.ladder_ma), max(self.config.ladder_ma)
        pulses = []
        for p in self.pulses:
            if p.block == BLOCK_RECRUITMENT_FINE and p.intensity_ma is None:
                v = round(min(max(float(center_ma) + p.fine_offset_ma, lo), hi), 3)
                _check_intensity(v, self.limits, "fine ladder intensity")
                p = replace(p, intensity_ma=v)
            pulses.append(p)
        return HReflexPlan(pulses, self.config, self.limits, self.time_scale, list(self.warnings))

    def to_dict(self) -> dict:
        return {
            "protocol": "hreflex",
            "config": self.config.to_dict(),
            "limits": asdict(self.limits),
            "time_scale": self.time_scale,
            "time_compressed": self.time_scale != 1.0,
            "warnings": list(self.warnings),
            "pulses": [asdict(p) for p in self.pulses],
        }


def _check_intensity(v: float, limits: SafetyLimits, name: str) -> None:
    if not (math.isfinite(v) and 0.0 < v <= limits.max_intensity_ma):
        raise PlanError(
            f"{name}={v} mA is outside (0, {limits.max_intensity_ma}] mA (host safety limit); "
            "lower it or raise SafetyLimits.max_intensity_ma deliberately"
        )


def make_plan(
    config: HReflexProtocolConfig | None = None,
    limits: SafetyLimits | None = None,
    *,
    time_scale: float = 1.0,
) -> HReflexPlan:
    """Build and check the pulse plan.

    Parameters
    ----------
    config : HReflexProtocolConfig, optional
        What to deliver (defaults: soleus-like ladder 4-30 mA, blocks 0.1-2 Hz, pairs 2.5/5 s).
    limits : SafetyLimits, optional
        Host-side limits (defaults as documented on :class:`SafetyLimits`).
    time_scale : float
        1.0 for a real session. Values below 1 shrink every interval (emulated device only;
        :class:`HReflexRunner` refuses it on a real device). Safety limits on intervals are
        checked on the unscaled plan, so a compressed plan is the same plan, only faster.

    Returns
    -------
    HReflexPlan

    Raises
    ------
    PlanError
        Any limit broken (intensity, width, interval, rate, pulse count) or a malformed config.
    """
    c = config or HReflexProtocolConfig()
    lim = limits or SafetyLimits()
    if not (0.0 < time_scale <= 1.0):
        raise PlanError(f"time_scale={time_scale} must lie in (0, 1]")
    if c.order not in ("ascending", "random"):
        raise PlanError(f"order={c.order!r} must be 'ascending' or 'random'")
    if not lim.min_width_us <= c.width_us <= lim.max_width_us:
        raise PlanError(
            f"width_us={c.width_us} is outside [{lim.min_width_us}, {lim.max_width_us}] us "
            "(host safety limit)"
        )
    ladder = [float(v) for v in c.ladder_ma]
    if not ladder:
        raise PlanError("ladder_ma is empty; give the recruitment intensities in mA")
    for v in ladder:
        _check_intensity(v, lim, "ladder intensity")
    if c.test_intensity_ma is not None:
        _check_intensity(float(c.test_intensity_ma), lim, "test_intensity_ma")
    if c.interval_s < lim.min_interval_s or c.jitter_s < 0:
        raise PlanError(
            f"interval_s={c.interval_s} s is below the minimum interval {lim.min_interval_s} s "
            "(or jitter_s is negative)"
        )
    for f in c.rate_blocks_hz:
        if not (0 < f <= lim.max_rate_hz) or 1.0 / f < lim.min_interval_s:
            raise PlanError(
                f"rate block {f} Hz exceeds the host limit ({lim.max_rate_hz} Hz, "
                f"min interval {lim.min_interval_s} s)"
            )
    for dt in c.paired_intervals_s:
        if dt < lim.min_interval_s:
            raise PlanError(
                f"paired interval {dt} s is below the minimum interval {lim.min_interval_s} s"
            )
    if c.ladder_repeats < 1 or c.pulses_per_block < 0 or c.pairs_per_interval < 0:
        raise PlanError("ladder_repeats must be >= 1; pulses_per_block, pairs_per_interval >= 0")
    if c.fine_ladder_pulses < 0 or not 0.0 < c.fine_span <= 0.5:
        raise PlanError(
            f"fine_ladder_pulses={c.fine_ladder_pulses} must be >= 0 and fine_span={c.fine_span} "
            "in (0, 0.5]"
        )
    if int(c.emg_channel) != c.emg_channel or c.emg_channel < 0:
        raise PlanError(f"emg_channel={c.emg_channel} must be a channel number >= 0")
    if c.gate_band_uv is not None and not (
        len(c.gate_band_uv) == 2 and 0.0 <= c.gate_band_uv[0] < c.gate_band_uv[1]
    ):
        raise PlanError(
            f"gate_band_uv={c.gate_band_uv} must be (low, high) uV with 0 <= low < high"
        )
    if not c.gate_timeout_s >= 0:
        raise PlanError(f"gate_timeout_s={c.gate_timeout_s} must be >= 0 s")
    warnings = []
    if c.interval_s < RECOMMENDED_LADDER_INTERVAL_S:
        warnings.append(
            f"ladder interval {c.interval_s:g} s is below {RECOMMENDED_LADDER_INTERVAL_S:g} s: "
            "post-activation depression (lasting > 8 s) will lower the recruitment H and "
            "Hmax/Mmax"
        )
    rng = np.random.default_rng(c.seed)
    intensities = np.repeat(np.array(ladder), c.ladder_repeats)
    if c.order == "ascending":
        intensities = np.sort(intensities, kind="stable")
    else:
        rng.shuffle(intensities)
    pulses: list[PlannedPulse] = []
    t = 0.0
    for v in intensities:
        pulses.append(
            PlannedPulse(
                len(pulses),
                t,
                float(v),
                c.width_us,
                "single",
                0.0,
                BLOCK_RECRUITMENT,
                1.0 / c.interval_s,
            )
        )
        t += c.interval_s + float(rng.uniform(0.0, c.jitter_s))
    half = c.fine_span * (max(ladder) - min(ladder))
    offsets = np.linspace(-half, half, c.fine_ladder_pulses) if c.fine_ladder_pulses > 1 else [0.0]
    for off in rng.permutation(np.asarray(offsets, float))[: c.fine_ladder_pulses]:
        pulses.append(
            PlannedPulse(
                len(pulses), t, None, c.width_us, "single", 0.0, BLOCK_RECRUITMENT_FINE,
                1.0 / c.interval_s, float(off),
            )
        )  # fmt: skip
        t += c.interval_s + float(rng.uniform(0.0, c.jitter_s))
    test = None if c.test_intensity_ma is None else float(c.test_intensity_ma)
    for f in c.rate_blocks_hz:
        if c.pulses_per_block == 0:
            break
        t += c.block_rest_s
        for _ in range(c.pulses_per_block):
            pulses.append(
                PlannedPulse(len(pulses), t, test, c.width_us, "single", 0.0, f"rate_{f:g}hz", f)
            )
            t += 1.0 / f
        t -= 1.0 / f
    for dt in c.paired_intervals_s:
        if c.pairs_per_interval == 0:
            break
        t += c.block_rest_s
        for _ in range(c.pairs_per_interval):
            pulses.append(
                PlannedPulse(
                    len(pulses),
                    t,
                    test,
                    c.width_us,
                    "pair",
                    float(dt),
                    f"pair_{dt:g}s",
                    float("nan"),
                )
            )
            t += dt + c.pair_rest_s
        t -= c.pair_rest_s
    plan = HReflexPlan(pulses, c, lim, float(time_scale), warnings)
    if plan.n_pulses > lim.max_pulses:
        raise PlanError(
            f"the plan has {plan.n_pulses} pulses, more than the host limit {lim.max_pulses}"
        )
    # every onset-to-onset interval, pairs included, respects the minimum
    onsets = []
    for p in pulses:
        onsets.append(p.t_s)
        if p.mode == "pair":
            onsets.append(p.t_s + p.pair_interval_s)
    gaps = np.diff(np.array(onsets))
    if gaps.size and gaps.min() < lim.min_interval_s - 1e-9:
        raise PlanError(
            f"two pulses are {gaps.min():.3f} s apart, below the minimum {lim.min_interval_s} s"
        )
    return plan


# ----------------------------------------------------------------------------- gating
def background_bins_uv(emg_uv: np.ndarray, emg_rate_hz: float, bin_ms: float = 50.0) -> np.ndarray:
    """Mean rectified EMG in consecutive bins (each bin's mean removed first).

    Parameters
    ----------
    emg_uv : ndarray, shape (n_samples,) or (n_samples, n_channels)
        Recent EMG, uV, oldest first; the bins end at the last sample.
    emg_rate_hz : float
        Sampling rate, Hz.
    bin_ms : float
        Bin length, ms (50 ms per the domain notes).

    Returns
    -------
    ndarray, shape (n_bins,) or (n_bins, n_channels)
        Mean rectified EMG per bin, uV, oldest first (NaN for bins touching a NaN sample).
    """
    x = np.asarray(emg_uv, dtype=np.float64)
    one = x.ndim == 1
    if one:
        x = x[:, None]
    n = max(round(bin_ms * emg_rate_hz / 1000.0), 1)
    k = x.shape[0] // n
    if k == 0:
        out = np.empty((0, x.shape[1]))
        return out[:, 0] if one else out
    b = x[x.shape[0] - k * n :].reshape(k, n, x.shape[1])
    out = np.mean(np.abs(b - b.mean(axis=1, keepdims=True)), axis=1)
    return out[:, 0] if one else out


@dataclass(frozen=True)
class BackgroundGate:
    """Deliver only while the last ``n_bins`` 50 ms bins of background EMG lie inside ``band_uv``.

    Attributes
    ----------
    band_uv : (float, float)
        Accepted mean rectified EMG, uV.
    n_bins : int
        Consecutive bins that must be inside the band.
    bin_ms : float
        Bin length, ms.
    channel : int
        EMG channel gated on.
    """

    band_uv: tuple[float, float]
    n_bins: int = 2
    bin_ms: float = 50.0
    channel: int = 0

    def samples_needed(self, emg_rate_hz: float) -> int:
        return self.n_bins * max(round(self.bin_ms * emg_rate_hz / 1000.0), 1)

    def check(self, recent_emg_uv: np.ndarray, emg_rate_hz: float) -> tuple[bool, list[float]]:
        """(inside, bin values) for the most recent EMG (at least ``samples_needed`` samples)."""
        x = np.asarray(recent_emg_uv, dtype=np.float64)
        if x.ndim == 2:
            x = x[:, self.channel]
        x = x[-self.samples_needed(emg_rate_hz) :]
        bins = background_bins_uv(x, emg_rate_hz, self.bin_ms)
        lo, hi = self.band_uv
        ok = bins.size == self.n_bins and bool(np.all((bins >= lo) & (bins <= hi)))
        return ok, [float(v) for v in bins]


# ----------------------------------------------------------------------------- runner
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


#: Response windows (ms after the pulse) the runner uses for its own quick measures.
RESPONSE_WINDOWS_MS = {
    "soleus": {"m": (4.0, 20.0), "h": (22.0, 50.0)},
    "fcr": {"m": (2.5, 11.0), "h": (12.0, 30.0)},
}


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
        Response windows of the runner's quick M/H measures (:data:`RESPONSE_WINDOWS_MS`), which
        choose the test intensity: the FCR H-wave (~16 ms) lies inside the soleus M window, so
        an FCR session must say ``"fcr"``. The gate and the quick measures use the plan's
        ``config.emg_channel``.
    on_record : callable, optional
        Called with each :class:`PulseRecord` as soon as it is final (the recorder stores it).
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
    ):
        if muscle not in RESPONSE_WINDOWS_MS:
            raise PlanError(f"muscle={muscle!r}; choose one of {sorted(RESPONSE_WINDOWS_MS)}")
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
        self.windows = RESPONSE_WINDOWS_MS[muscle]
        self.channel = int(plan.config.emg_channel)
        self.poll_s = poll_s
        self.records: list[PulseRecord] = []
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
        for k, p in enumerate(pulses):
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
                    continue
            if self._stop.is_set():
                raise StimulationStopped("stimulation stopped by the operator")
            view = self.monitor.latest_emg_index()
            try:
                reply = self._send(p, scale, rate)
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
            if rec.first_emg_index is not None and p.block in (
                BLOCK_RECRUITMENT,
                BLOCK_RECRUITMENT_FINE,
            ):
                self._measure(rec, rate)  # rate blocks and pairs keep their timing
            self._finish(rec)
        return self.records

    def _send(self, p: PlannedPulse, scale: float, rate: float):
        """Stimulate; while the device reports BUSY (a pair still running), wait and resend."""
        from firmware_iface.errors import CommandRejected
        from firmware_iface.messages import ErrorCode

        for _ in range(200):
            try:
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
