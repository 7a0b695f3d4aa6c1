"""The ``hreflex`` plan: what to deliver, checked against host-side safety limits.

:func:`make_plan` turns an :class:`HReflexProtocolConfig` into an :class:`HReflexPlan` (every
pulse with its time, intensity, width, block and nominal rate) and refuses plans that break the
host-side :class:`SafetyLimits` with one clear :class:`PlanError` (nothing is sent).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

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


def _finite_number(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    return math.isfinite(value)


def _check_finite(c: HReflexProtocolConfig, lim: SafetyLimits, time_scale) -> None:
    """Every number of the config, the limits and ``time_scale`` is a finite number (NaN and
    inf compare False with every limit, so they would slip past the range checks)."""
    if not _finite_number(time_scale):
        raise PlanError(f"time_scale={time_scale!r} must be a finite number in (0, 1]")
    for obj, what in ((c, "HReflexProtocolConfig"), (lim, "SafetyLimits")):
        for name, value in asdict(obj).items():
            if name in ("order",) or value is None:
                continue
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                if not _finite_number(v):
                    raise PlanError(
                        f"{name}={v!r} must be a finite number ({what}); NaN and inf are refused"
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
    _check_finite(c, lim, time_scale)
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
