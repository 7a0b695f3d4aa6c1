"""The public analysis: per-stretch measurements, DSRT-velocity fit, Tardieu and gain."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from dsp.errors import SignalError
from dsp.quality import _stuck_fractions
from dsp.stretch_reflex._emg import (
    burst_offset,
    clonus_episodes,
    condition,
    lowpass_envelope,
)
from dsp.stretch_reflex._fit import fit_dsrt_line, ols, robust_inliers
from dsp.stretch_reflex._kinematics import find_stretches, smooth_kinematics
from dsp.stretch_reflex._onsets import (
    TKEO_DEFAULTS,
    OnsetSignals,
    check_detector_params,
    detector_names,
)
from dsp.stretch_reflex._result import StretchRecord, StretchReflexResult

#: Reasons recorded in ``StretchRecord.exclusion_reasons``.
REASON_GAP = "touches a gap (NaN samples)"
REASON_ACTIVE = "muscle active before stretch"
REASON_IRREGULAR = "irregular velocity profile"
REASON_NO_REFLEX = "no reflex"
REASON_OUTLIER = "DSRT far from the session's DSRT-velocity line (outlier)"


def available_detectors() -> tuple[str, ...]:
    """Names accepted by ``analyze_stretch_reflex(detector=...)``."""
    return detector_names()


def _as_float_array(x, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SignalError(f"{name} must be a numeric array ({exc})") from None
    return arr


def _check_rate(rate, name: str) -> float:
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise SignalError(f"{name} must be a number in Hz, got {rate!r}") from None
    if not math.isfinite(rate) or rate <= 0:
        raise SignalError(f"{name} must be a positive number of hertz, got {rate}")
    return rate


def _rms(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.sqrt(np.mean(x * x))) if len(x) else math.nan


def _rest_level(x: np.ndarray, rate_hz: float) -> float:
    """10th percentile of the RMS of 100 ms windows: the quiet-muscle EMG level of the record."""
    w = max(1, int(0.1 * rate_hz))
    n = len(x) // w
    if n == 0:
        return _rms(x)
    blocks = x[: n * w].reshape(n, w)
    ok = np.all(np.isfinite(blocks), axis=1)
    if not np.any(ok):
        return math.nan
    return float(np.percentile(np.sqrt(np.mean(blocks[ok] ** 2, axis=1)), 10))


def _dip_depth(v: np.ndarray, limit: int | None = None) -> tuple[float, int]:
    """Largest dip of ``v`` between two higher values (min of both running maxima minus v).

    Only dips whose lowest point lies before index ``limit`` count. Returns (depth, index).
    """
    if len(v) < 3:
        return 0.0, -1
    left = np.maximum.accumulate(v)
    right = np.maximum.accumulate(v[::-1])[::-1]
    depth = (np.minimum(left, right) - v)[:limit]
    k = int(np.argmax(depth))
    return float(depth[k]), k


def _widen(ci: tuple[float, float], centre: float, sd: float) -> tuple[float, float]:
    """Add ``1.96 * sd`` in quadrature to each half of an interval around ``centre``."""
    if not (math.isfinite(sd) and math.isfinite(ci[0]) and math.isfinite(ci[1])):
        return ci
    z = 1.959963984540054 * sd
    return (
        float(centre - math.hypot(centre - ci[0], z)),
        float(centre + math.hypot(ci[1] - centre, z)),
    )


def _catch(
    v: np.ndarray,
    limit: int,
    min_drop: float,
    min_rise: float,
    min_residual: float,
    window: int,
    ease: float = 0.25,
) -> tuple[bool, bool, int]:
    """Catch and release in the velocity after the reflex onset.

    The catch is a deceleration that interrupts the movement: within ``limit`` samples the
    velocity falls at least ``min_drop`` below its running maximum. It is told apart from the
    ordinary end of the stretch by what follows the fall:

    * **release**: within ``limit`` samples of reaching ``min_drop`` the velocity rises again by
      ``min_rise`` from its lowest point after the fall (Tardieu's "catch then release"); or
    * **catch without release**: the fall was abrupt (``min_drop`` lost within ``window``
      samples) and levels off before ``limit`` (the velocity lost over the next ``window``
      samples is at most ``ease`` x the steepest such loss since the fall began), while the limb
      keeps moving at ``min_residual`` or more for ``2 * window`` samples.

    At the end of a stretch the velocity keeps falling until the limb is nearly at rest, and a
    gentle slowing by the examiner is not abrupt: neither is a catch.

    Parameters
    ----------
    v : ndarray, shape (n,)
        Velocity in deg/s from the reflex onset to the stretch end.
    limit : int
        Catch window in samples: the fall must reach ``min_drop`` (and a catch without release
        must level off) before this index.
    min_drop, min_rise, min_residual : float
        In deg/s.
    window : int
        Samples over which a fall is judged abrupt or levelled (about 50 ms).
    ease : float
        Fraction of the steepest fall below which the fall has levelled off.

    Returns
    -------
    catch, release : bool
    k_end : int
        Index where the catch's fall ends (the velocity minimum of a released catch, the start
        of the slower movement otherwise); -1 without a catch. The catch time (maximal
        deceleration) lies before it.
    """
    n = len(v)
    if n < 3:
        return False, False, -1
    v = np.where(np.isfinite(v), v, -np.inf)
    runmax = np.maximum.accumulate(v)
    hit = np.flatnonzero((runmax - v)[:limit] >= min_drop)
    if not len(hit):
        return False, False, -1
    k1 = int(hit[0])
    after = v[k1 : k1 + limit]
    rise = after - np.minimum.accumulate(after)
    if np.max(rise) >= min_rise:  # released: the catch ends at the lowest velocity before
        kr = int(np.argmax(rise >= min_rise))
        return True, True, k1 + int(np.argmin(after[: kr + 1]))
    w = max(1, window)
    hold = 2 * w
    k0 = int(np.flatnonzero(v[: k1 + 1] >= runmax[k1])[-1])  # where the fall began
    if k0 >= n - hold:
        return False, False, -1
    fall = v[k0 : n - w] - v[k0 + w :]  # velocity lost over the next ``w`` samples
    steepest = np.maximum.accumulate(fall)[: n - hold - k0]
    k = np.arange(k0, n - hold)
    slowest = np.lib.stride_tricks.sliding_window_view(v, hold + 1).min(axis=1)[k0:]
    level = (
        (k >= k1)
        & (k < limit)
        & (fall[: len(k)] <= ease * steepest)
        & (steepest >= min_drop)
        & (slowest >= min_residual)
    )
    if not np.any(level):
        return False, False, -1
    return True, False, int(k[np.argmax(level)])


def _usable_channel(x: np.ndarray, rate_hz: float, channel: int) -> str | None:
    """Refuse a channel that cannot show a reflex; return a warning for a partly damaged one.

    A saturated amplifier or an open electrode gives a flat (stuck) trace, and a flat trace
    has no reflex to detect: reporting "no reflex" there would pass a broken recording off as
    a healthy muscle. The tests are those of ``dsp.quality.channel_quality``.

    Raises
    ------
    dsp.SignalError
        When more than half of the channel is flat or stuck at a rail.
    """
    if not np.isfinite(x).any():
        raise SignalError(f"EMG channel {channel} holds no samples (all gaps)")
    # dsp.quality's definitions, without its powerline and SNR estimates (a quarter of the time)
    saturation, flat = _stuck_fractions(x, rate_hz)
    stuck = max(flat if np.isfinite(flat) else 0.0, saturation)
    if stuck > 0.5:
        raise SignalError(
            f"EMG channel {channel} is flat or stuck at one value in {stuck:.0%} of the recording "
            "(amplifier saturated or electrode off): no reflex can be judged; check the "
            "electrode and the gain, or analyse another channel"
        )
    if saturation > 0.001:
        return (
            f"EMG channel {channel} is saturated in {saturation:.1%} of samples: "
            "burst amplitudes of the affected stretches are underestimated"
        )
    return None


def analyze_stretch_reflex(
    emg_uv,
    emg_rate_hz: float,
    angle_deg,
    angle_rate_hz: float,
    *,
    channel: int = 0,
    passive_range_deg: Sequence[float] | None = None,
    detector: str = "threshold",
    prompt_times_s: Sequence[float] | None = None,
    reflex_delay_s: float = 0.0,
    band_hz: tuple[float, float] = (20.0, 450.0),
    line_hz: float | None = None,
    detector_params: dict | None = None,
    envelope_hz: float = 50.0,
    angle_cutoff_hz: float = 20.0,
    baseline_s: float = 0.2,
    threshold_sd: float = 3.0,
    min_on_s: float = 0.03,
    on_velocity_deg_s: float = 5.0,
    rest_velocity_deg_s: float = 1.0,
    min_excursion_deg: float = 15.0,
    active_factor: float = 3.0,
    irregular_fraction: float = 0.25,
    catch_drop_fraction: float = 0.2,
    release_fraction: float = 0.05,
    catch_window_s: float = 0.4,
    catch_residual_fraction: float = 0.2,
    clonus_min_beats: int = 4,
    gain_tail_s: float = 0.1,
    min_fit_stretches: int = 4,
    min_velocity_spread_deg_s: float = 50.0,
    slow_max_velocity_deg_s: float = 30.0,
    max_mu_p_value: float = 0.05,
    min_reflex_consistency: float = 0.5,
    n_bootstrap: int = 2000,
    seed: int | np.random.Generator | None = 0,
    detector_sensitivity: bool = True,
) -> StretchReflexResult:
    """Velocity-dependent stretch reflex of one muscle from EMG and goniometer recordings.

    Finds every passive lengthening of the muscle in the angle signal (or follows the given
    prompts), measures the EMG reflex and the kinematics of each stretch, fits the dynamic
    stretch-reflex threshold against velocity, DSRT = lambda - mu * velocity (Levin & Feldman
    1994; Calota et al. 2008), and derives Tardieu angles and grade, clonus and the
    velocity-dependent EMG gain. Definitions and sources: docs/stretch-reflex.md.

    Parameters
    ----------
    emg_uv : array_like, shape (n_emg,) or (n_emg, n_channels)
        EMG in microvolts, NaN in gaps. Both signals start at the same instant (t = 0).
    emg_rate_hz : float
        EMG sampling rate.
    angle_deg : array_like, shape (n_angle,) or (n_angle, 1)
        Joint angle in degrees, increasing as the tested muscle lengthens
        (``sign * goniometer_deg``), NaN in gaps.
    angle_rate_hz : float
        Angle sampling rate.
    channel : int
        EMG column to analyse.
    passive_range_deg : (float, float), optional
        The joint's passive range in the analysed convention. When omitted it is estimated from
        the slow stretches (smallest start angle to R2).
    detector : str
        Onset detector for the reported DSRTs: ``"threshold"`` (envelope > baseline mean +
        ``threshold_sd`` SD for ``min_on_s``), ``"tkeo"`` (the same on the Teager-Kaiser energy)
        or ``"changepoint"`` (variance changepoint refined around the threshold onset).
    prompt_times_s : sequence of float, optional
        Times of stretch prompts (events), in s from the start. Each prompt takes the first
        stretch starting after it (up to 0.25 s early) and before the next prompt; stretches
        without a prompt are ignored.
    reflex_delay_s : float
        Conduction and electromechanical delay subtracted from the EMG onset before reading the
        angle. The literature convention (and the default) is 0: DSRT = angle at EMG onset.
    band_hz, envelope_hz, angle_cutoff_hz : float
        EMG band-pass (zero-phase 4th-order Butterworth), envelope low-pass and angle low-pass
        corners in Hz.
    line_hz : float or None
        Mains frequency notched out (with its harmonics up to the 5th) before everything else.
        Default None: a zero-phase notch (Q = 30) rings for about 0.2 s on both sides of a
        burst and moves onsets earlier by tens of ms on large reflexes; the envelope low-pass
        already rejects most of the mains ripple.
    detector_params : dict, optional
        Extra parameters per detector name (e.g. ``{"tkeo": {"k_sd": 10}}``): ``threshold``
        accepts ``k_sd``, ``min_duration_s``, ``min_off_s``; ``tkeo`` the same and ``band_hz``;
        ``changepoint`` ``ratio``, ``min_duration_s``, ``penalty``, ``max_changes``,
        ``decimate`` (see :mod:`dsp.onsets`). Filters and baseline are set by the analysis.
    baseline_s : float
        Length of the pre-stretch window (baseline for the onset detectors and the pre-stretch
        EMG level).
    threshold_sd, min_on_s : float
        Onset rule: standard deviations above the baseline mean, and minimum time above.
    on_velocity_deg_s, rest_velocity_deg_s, min_excursion_deg : float
        Stretch segmentation: velocity that marks a movement, velocity regarded as rest, and the
        least lengthening that counts as a stretch.
    active_factor : float
        A stretch is "muscle active" when its pre-stretch EMG RMS exceeds this multiple of the
        record's rest level (10th percentile of 100 ms RMS windows).
    irregular_fraction : float
        A stretch is irregular when, before the reflex onset, the velocity dips and recovers by
        more than this fraction of its peak (or it stopped and restarted).
    catch_drop_fraction, release_fraction, catch_window_s, catch_residual_fraction : float
        Catch: within ``catch_window_s`` after the onset the velocity falls from its running
        maximum by at least ``catch_drop_fraction`` of the onset velocity (and 5 deg/s). It is
        a catch when the movement then either resumes, the velocity rising again within
        ``catch_window_s`` by ``release_fraction`` of the onset velocity (and 5 deg/s, and 6 x
        the goniometer's velocity noise at rest): the **release**; or goes on slower without a
        release: the fall was abrupt (``catch_drop_fraction`` of the onset velocity lost within
        50 ms), levels off within the window (less than a quarter of the steepest 50 ms loss)
        and the velocity stays >= ``catch_residual_fraction`` of the onset velocity (and
        ``on_velocity_deg_s``) for 100 ms. The ordinary end of a stretch is neither.
    clonus_min_beats : int
        Fewest regular beats (4-12 Hz) that make a clonus episode (beats: peaks of the 20 Hz
        envelope standing out from both the resting noise and the tonic reflex activity).
    gain_tail_s : float
        The stretch window for the RMS-EMG gain extends this far past the stretch end.
    min_fit_stretches : int
        Fewest DSRTs for a regression (fewer: TSRT is NaN, reported as outside the range).
    min_velocity_spread_deg_s : float
        Narrower onset-velocity ranges raise a "poorly determined" warning.
    slow_max_velocity_deg_s : float
        The slowest stretches (which give R2 and the estimated range) should stay below this
        median peak velocity (Tardieu V1); faster ones raise a warning.
    max_mu_p_value, min_reflex_consistency : float
        A fitted line is a velocity-dependent reflex (and its TSRT can be inside the range) when
        mu > 0 with a one-sided OLS p-value below ``max_mu_p_value``, and at least
        ``min_reflex_consistency`` of the stretches that went 5 deg past the line's DSRT at
        their peak velocity show a reflex.
    n_bootstrap : int
        Bootstrap resamples for the 95% intervals (0 disables them).
    seed : int or numpy.random.Generator, optional
        Seed or generator for the bootstrap.
    detector_sensitivity : bool
        Also refit lambda and mu with every detector, report the spread and widen the 95%
        intervals by it. Off, the intervals are sampling-only and under-cover (a warning says
        so).

    Returns
    -------
    StretchReflexResult
        Session metrics, the per-stretch table, warnings and the settings used.

    Raises
    ------
    dsp.SignalError
        Bad shapes, rates, channel, detector, ``detector_params`` (unknown detector or
        parameter, wrong type or range), prompts or range; EMG and angle covering different
        durations at the given rates (a wrong rate); Inf samples (NaN marks gaps); an analysed
        EMG channel that is flat or stuck at one value in more than half of the recording
        (saturated amplifier, electrode off), where "no reflex" would be a false finding.
    """
    emg = _as_float_array(emg_uv, "emg_uv")
    angle = _as_float_array(angle_deg, "angle_deg")
    emg_rate = _check_rate(emg_rate_hz, "emg_rate_hz")
    ang_rate = _check_rate(angle_rate_hz, "angle_rate_hz")
    if emg.ndim == 1:
        emg = emg[:, None]
    if emg.ndim != 2:
        raise SignalError(
            f"emg_uv must be (n_samples,) or (n_samples, n_channels), got {emg.shape}"
        )
    if angle.ndim == 2 and angle.shape[1] == 1:
        angle = angle[:, 0]
    if angle.ndim != 1:
        raise SignalError(f"angle_deg must be (n_samples,) or (n_samples, 1), got {angle.shape}")
    if not isinstance(channel, (int, np.integer)) or not 0 <= channel < emg.shape[1]:
        raise SignalError(
            f"channel {channel!r} is not one of the {emg.shape[1]} EMG channels; pick 0.."
            f"{emg.shape[1] - 1}"
        )
    detectors = detector_names()
    if detector not in detectors:
        raise SignalError(f"unknown detector {detector!r}; use one of {', '.join(detectors)}")
    lo_hz, hi_hz = (float(v) for v in band_hz)
    hi_hz = min(hi_hz, 0.45 * emg_rate)
    if not 0 < lo_hz < hi_hz:
        raise SignalError(
            f"band_hz {band_hz} does not fit below 0.45 x emg_rate_hz ({0.45 * emg_rate:g} Hz)"
        )
    if line_hz is not None and not 0 < line_hz < 0.45 * emg_rate:
        raise SignalError(f"line_hz must be None or a mains frequency below Nyquist, got {line_hz}")
    det_params = {
        "threshold": {"k_sd": threshold_sd, "min_duration_s": min_on_s},
        "tkeo": {**TKEO_DEFAULTS, "band_hz": (30.0, min(300.0, hi_hz))},
        "changepoint": {},
    }
    for name, extra in check_detector_params(detector_params).items():
        det_params[name].update(extra)
    if passive_range_deg is not None:
        pr = tuple(float(v) for v in passive_range_deg)
        if len(pr) != 2 or not (math.isfinite(pr[0]) and math.isfinite(pr[1])) or pr[0] >= pr[1]:
            raise SignalError(
                f"passive_range_deg must be (low, high) with low < high, got {passive_range_deg}"
            )
    prompt_arr = None
    if prompt_times_s is not None:
        prompt_arr = _as_float_array(prompt_times_s, "prompt_times_s").ravel()
        if not np.all(np.isfinite(prompt_arr)):
            raise SignalError("prompt_times_s must hold finite times in seconds")
    if emg.shape[0] < emg_rate * 0.5 or angle.shape[0] < ang_rate * 0.5:
        raise SignalError("recording shorter than 0.5 s; record at least one full stretch")
    emg_duration_s, angle_duration_s = emg.shape[0] / emg_rate, angle.shape[0] / ang_rate
    if abs(emg_duration_s - angle_duration_s) > max(1.0, 0.005 * angle_duration_s):
        raise SignalError(
            f"the EMG covers {emg_duration_s:.2f} s at {emg_rate:g} Hz but the angle "
            f"{angle_duration_s:.2f} s at {ang_rate:g} Hz; both streams start together and must "
            "cover the same time: check the two sampling rates"
        )
    if not 0 <= reflex_delay_s < 0.5:
        raise SignalError(f"reflex_delay_s must be in [0, 0.5) s, got {reflex_delay_s}")
    for name, values in (("emg_uv", emg[:, channel]), ("angle_deg", angle)):
        infinite = np.flatnonzero(np.isinf(values))
        if infinite.size:
            raise SignalError(
                f"{name} holds Inf at sample {int(infinite[0])} ({infinite.size} in all); "
                "mark samples never received with NaN"
            )
    quality_warning = _usable_channel(emg[:, channel], emg_rate, channel)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    settings = {
        "detector": detector,
        "reflex_delay_s": reflex_delay_s,
        "band_hz": list(band_hz),
        "line_hz": line_hz,
        "detector_params": {
            k: {kk: list(vv) if isinstance(vv, tuple) else vv for kk, vv in v.items()}
            for k, v in det_params.items()
        },
        "envelope_hz": envelope_hz,
        "angle_cutoff_hz": angle_cutoff_hz,
        "baseline_s": baseline_s,
        "threshold_sd": threshold_sd,
        "min_on_s": min_on_s,
        "on_velocity_deg_s": on_velocity_deg_s,
        "min_excursion_deg": min_excursion_deg,
        "active_factor": active_factor,
        "irregular_fraction": irregular_fraction,
        "rest_velocity_deg_s": rest_velocity_deg_s,
        "catch_drop_fraction": catch_drop_fraction,
        "release_fraction": release_fraction,
        "catch_window_s": catch_window_s,
        "catch_residual_fraction": catch_residual_fraction,
        "clonus_min_beats": clonus_min_beats,
        "gain_tail_s": gain_tail_s,
        "min_fit_stretches": min_fit_stretches,
        "min_velocity_spread_deg_s": min_velocity_spread_deg_s,
        "slow_max_velocity_deg_s": slow_max_velocity_deg_s,
        "max_mu_p_value": max_mu_p_value,
        "min_reflex_consistency": min_reflex_consistency,
        "n_bootstrap": n_bootstrap,
        "seed": (
            "numpy.random.Generator given by the caller"
            if isinstance(seed, np.random.Generator)
            else (None if seed is None else int(seed))
        ),
        "detector_sensitivity": bool(detector_sensitivity),
        "passive_range_deg": None if passive_range_deg is None else list(pr),
        "prompt_times_s": None if prompt_arr is None else prompt_arr.tolist(),
        "channel": int(channel),
    }
    warnings: list[str] = [quality_warning] if quality_warning else []

    # ---- signals -------------------------------------------------------------------------
    raw, x = condition(np.ascontiguousarray(emg[:, channel]), emg_rate, (lo_hz, hi_hz), line_hz)
    ang, vel, acc = smooth_kinematics(angle, ang_rate, angle_cutoff_hz)
    # hesitations last 0.1-0.5 s: judge the velocity profile on a 5 Hz low-pass of it
    vel_slow = smooth_kinematics(angle, ang_rate, 5.0)[1]
    gaps_present = bool(np.any(~np.isfinite(angle)) or np.any(~np.isfinite(emg[:, channel])))
    if gaps_present:
        warnings.append("recording has gaps (NaN samples); stretches touching them are excluded")
    vel10 = smooth_kinematics(angle, ang_rate, 10.0)[1]
    moves = find_stretches(
        ang,
        vel,
        ang_rate,
        on_velocity_deg_s=on_velocity_deg_s,
        rest_velocity_deg_s=rest_velocity_deg_s,
        min_excursion_deg=min_excursion_deg,
        merge_gap_s=0.25,
        max_backtrack_s=30.0,
        smooth_velocity=vel10,
    )
    # goniometer noise on the velocity (robust SD at rest): a release must stand out of it
    at_rest = np.abs(vel10) <= rest_velocity_deg_s
    vel_noise = (
        1.4826 * float(np.median(np.abs(vel[at_rest] - np.median(vel[at_rest]))))
        if np.count_nonzero(at_rest) > 10
        else 0.0
    )
    prompts = None
    if prompt_arr is not None:
        prompts = np.sort(prompt_arr)
        chosen, matched = [], []
        for k, p in enumerate(prompts):
            nxt = prompts[k + 1] if k + 1 < len(prompts) else math.inf
            cand = [m for m in moves if p - 0.25 <= m.start / ang_rate < nxt]
            if cand:
                chosen.append(cand[0])
                matched.append(p)
            else:
                warnings.append(f"no stretch found after the prompt at {p:.2f} s")
        moves, prompts = chosen, matched
    if not moves:
        warnings.append("no stretch found in the angle signal")

    rest = _rest_level(x, emg_rate)
    signals = OnsetSignals(raw, x, emg_rate, envelope_hz, det_params)
    env = signals.envelope
    env20 = lowpass_envelope(x, emg_rate, 20.0)  # clonus beats: one peak per beat
    nb = round(baseline_s * emg_rate)
    t_ang = np.arange(len(ang)) / ang_rate
    n_emg = len(x)

    def at(series: np.ndarray, t: float) -> float:
        return float(np.interp(t, t_ang, series))

    # ---- per stretch ---------------------------------------------------------------------
    records: list[StretchRecord] = []
    onsets: dict[str, list[int]] = {d: [] for d in detectors}
    for k, m in enumerate(moves):
        t0, t1 = m.start / ang_rate, m.end / ang_rate
        seg_v = vel[m.start : m.end + 1]
        rec = StretchRecord(
            index=k,
            start_s=t0,
            end_s=t1,
            start_angle_deg=float(ang[m.start]),
            end_angle_deg=float(ang[m.end]),
            peak_velocity_deg_s=float(np.nanmax(seg_v)),
        )
        if prompts is not None:
            rec.prompt_s = float(prompts[k])
        e0 = round(t0 * emg_rate)
        e1 = min(n_emg, round(t1 * emg_rate))
        next_start = (
            round(moves[k + 1].start / ang_rate * emg_rate) if k + 1 < len(moves) else n_emg
        )
        base = (max(0, e0 - nb), e0)
        search_stop = min(next_start, e1 + round(0.05 * emg_rate))
        search = (e0, max(e0 + 1, search_stop))
        a0 = max(0, m.start - round(baseline_s * ang_rate))
        touches_gap = (
            not np.all(np.isfinite(angle[a0 : m.end + 1]))
            or not np.all(np.isfinite(x[base[0] : search[1]]))
            or base[1] - base[0] < nb // 2
        )
        rec.pre_emg_rms_uv = _rms(x[base[0] : base[1]])
        if touches_gap:
            rec.exclusion_reasons.append(REASON_GAP)
        if math.isfinite(rest) and rec.pre_emg_rms_uv > active_factor * rest:
            rec.exclusion_reasons.append(REASON_ACTIVE)
        tail = min(next_start, e1 + round(gain_tail_s * emg_rate))
        rec.stretch_rms_uv = _rms(x[e0:tail])
        for name in detectors if detector_sensitivity else (detector,):
            onsets[name].append(-1 if touches_gap else signals.onset(name, base, search))
        on = onsets[detector][-1]
        rec.detector = detector
        if on < 0:
            rec.reflex_absent_up_to_deg = rec.end_angle_deg
            rec.exclusion_reasons.append(REASON_NO_REFLEX)
            ref_idx = m.end
        else:
            rec.reflex = True
            rec.onset_s = on / emg_rate
            rec.latency_s = rec.onset_s - t0
            t_dsrt = rec.onset_s - reflex_delay_s
            rec.dsrt_deg = at(ang, t_dsrt)
            rec.onset_velocity_deg_s = at(vel, t_dsrt)
            # reflex burst
            benv = env[base[0] : base[1]]
            level = float(np.mean(benv) + threshold_sd * np.std(benv))
            off = burst_offset(env, on, next_start, level, round(0.05 * emg_rate))
            rec.burst_duration_s = (off - on) / emg_rate
            burst = x[on:off]
            rec.burst_rms_uv = _rms(burst)
            rec.burst_iemg_uv_s = float(np.nansum(np.abs(burst)) / emg_rate)
            # catch: a deceleration interrupting the movement (released or not); catch time =
            # the largest deceleration after onset (up to the end of the catch when there is one)
            ia = int(min(m.end, max(m.start, math.ceil(rec.onset_s * ang_rate))))
            ref_idx = max(m.start, int(t_dsrt * ang_rate))
            if m.end - ia >= 2:
                v_after = vel[ia : m.end + 1]
                v_on = max(rec.onset_velocity_deg_s, 1e-9)
                caught, released, kd = _catch(
                    v_after,
                    max(1, round(catch_window_s * ang_rate)),
                    max(catch_drop_fraction * v_on, 5.0),
                    max(release_fraction * v_on, 5.0, 6.0 * vel_noise),
                    max(catch_residual_fraction * v_on, on_velocity_deg_s),
                    max(1, round(0.05 * ang_rate)),
                )
                rec.catch_detected, rec.release = caught, released
                stop = ia + kd if caught else m.end
                kc = ia + int(np.nanargmin(acc[ia : stop + 1]))
                rec.catch_s = kc / ang_rate
                rec.catch_angle_deg = float(ang[kc])
                rec.catch_deceleration_deg_s2 = float(-acc[kc])
                rec.onset_to_catch_s = rec.catch_s - rec.onset_s
            # clonus: rhythmic bursts from the onset until the next stretch or a gap
            stop = next_start
            nan_after = np.flatnonzero(~np.isfinite(x[on:next_start]))
            if len(nan_after):
                stop = on + int(nan_after[0])
            benv20 = env20[base[0] : base[1]]
            rec.clonus = clonus_episodes(
                env20,
                emg_rate,
                on,
                stop,
                float(np.std(benv20)),
                min_beats=clonus_min_beats,
            )
        # irregular velocity: a dip and recovery before the reflex (or in the whole stretch)
        v_pre = vel_slow[m.start : max(m.start + 1, min(ref_idx, m.end) + 1)]
        depth, _ = _dip_depth(v_pre[np.isfinite(v_pre)])
        if depth > max(irregular_fraction * rec.peak_velocity_deg_s, 5.0):
            rec.exclusion_reasons.append(REASON_IRREGULAR)
        records.append(rec)

    # ---- fit -----------------------------------------------------------------------------
    def usable(rec: StretchRecord) -> bool:
        return not any(r != REASON_NO_REFLEX for r in rec.exclusion_reasons)

    fit_idx = [r.index for r in records if r.reflex and usable(r)]
    v_fit = np.array([records[i].onset_velocity_deg_s for i in fit_idx])
    d_fit = np.array([records[i].dsrt_deg for i in fit_idx])
    inl = robust_inliers(v_fit, d_fit)
    for i in np.asarray(fit_idx, dtype=int)[~inl]:
        records[i].exclusion_reasons.append(REASON_OUTLIER)
    fit_idx = [i for i, keep in zip(fit_idx, inl, strict=True) if keep]
    v_fit, d_fit = v_fit[inl], d_fit[inl]
    for r in records:
        r.used_in_fit = r.index in fit_idx
    spread = float(np.ptp(v_fit)) if len(v_fit) else math.nan
    if len(fit_idx) >= min_fit_stretches:
        fit = fit_dsrt_line(v_fit, d_fit, n_boot=n_bootstrap, rng=rng)
    else:
        fit = None
    tsrt = fit.tsrt_deg if fit else math.nan
    mu = fit.mu_s if fit else math.nan
    mu_p = fit.mu_p_value if fit else math.nan
    # a velocity-dependent reflex: the DSRT falls with velocity, and significantly so (a few
    # false onsets on a healthy muscle give a line too, with a random lambda)
    velocity_dependent = bool(fit is not None and mu > 0 and mu_p < max_mu_p_value)
    # the line must also explain which stretches show a reflex: every stretch that went 5 deg
    # past the line's DSRT at its peak velocity should have one (false onsets on a healthy
    # muscle give a line through a few stretches while most stretches past it stay silent)
    consistency = math.nan
    if fit is not None and mu > 0:
        clean_recs = [
            r for r in records if not ({REASON_GAP, REASON_ACTIVE} & set(r.exclusion_reasons))
        ]
        expected = [
            r for r in clean_recs if r.end_angle_deg >= tsrt - mu * r.peak_velocity_deg_s + 5.0
        ]
        if expected:
            consistency = sum(r.reflex for r in expected) / len(expected)
    consistent = bool(consistency >= min_reflex_consistency)
    velocity_dependent = velocity_dependent and consistent
    quality = {
        "gaps_present": gaps_present,
        "few_stretches": len(fit_idx) < max(min_fit_stretches, 8),
        "narrow_velocity_spread": bool(not (spread >= min_velocity_spread_deg_s)),
        "mu_negative": bool(fit is not None and mu < 0),
        "not_velocity_dependent": bool(fit is not None and not velocity_dependent),
        "interval_sampling_only": not detector_sensitivity,
    }
    quality["fit_poorly_determined"] = bool(
        fit is None or quality["few_stretches"] or quality["narrow_velocity_spread"]
    )
    n_reflex = sum(r.reflex for r in records)
    if fit is None:
        warnings.append(
            f"only {len(fit_idx)} stretches with a usable reflex onset (need "
            f"{min_fit_stretches}): no velocity-dependent reflex fitted; TSRT reported outside"
            " the range"
        )
    else:
        if quality["few_stretches"]:
            warnings.append(f"fit rests on only {len(fit_idx)} stretches; record about 20")
        if quality["narrow_velocity_spread"]:
            warnings.append(
                f"onset velocities span only {spread:.0f} deg/s; stretch over a wider range of "
                "velocities"
            )
        if quality["mu_negative"]:
            warnings.append(
                "mu < 0: DSRT rises with velocity, not the expected velocity dependence"
            )
        if quality["not_velocity_dependent"]:
            if not (mu > 0 and mu_p < max_mu_p_value):
                why = (
                    f"DSRT does not fall significantly with velocity (mu = {mu:.3f} s, "
                    f"one-sided p = {mu_p:.2g}, need mu > 0 and p < {max_mu_p_value:g})"
                )
            else:
                why = (
                    f"the DSRT line does not explain which stretches show a reflex (only "
                    f"{consistency:.0%} of the stretches that passed it had one, need "
                    f"{min_reflex_consistency:.0%}): its DSRTs look like false onsets"
                )
            warnings.append(f"{why}; no velocity-dependent reflex, TSRT reported outside the range")
        if not detector_sensitivity and n_bootstrap > 0:
            warnings.append(
                "detector_sensitivity=False: the 95% intervals hold the bootstrap (sampling) "
                "uncertainty only, not the onset-detector uncertainty, and under-cover the "
                "truth (docs/validation.md#stretch-reflex)"
            )
    n_excl = {}
    for r in records:
        for reason in r.exclusion_reasons:
            if reason != REASON_NO_REFLEX:
                n_excl[reason] = n_excl.get(reason, 0) + 1
    for reason, count in n_excl.items():
        warnings.append(f"{count} stretch(es) excluded from the fit: {reason}")

    # ---- detector sensitivity ------------------------------------------------------------
    detector_tsrt: dict[str, float] = {}
    detector_mu: dict[str, float] = {}
    if detector_sensitivity:
        for name in detectors:
            vv, dd = [], []
            for r, on in zip(records, onsets[name], strict=True):
                if on < 0 or not usable(r):
                    continue
                t = on / emg_rate - reflex_delay_s
                vv.append(at(vel, t))
                dd.append(at(ang, t))
            vv, dd = np.array(vv), np.array(dd)
            keep = robust_inliers(vv, dd)
            vv, dd = vv[keep], dd[keep]
            if len(vv) >= min_fit_stretches:
                a, b, _ = ols(vv, dd)
                detector_tsrt[name], detector_mu[name] = a, -b
            else:
                detector_tsrt[name] = detector_mu[name] = math.nan
    finite = [v for v in detector_tsrt.values() if math.isfinite(v)]
    tsrt_spread = float(max(finite) - min(finite)) if len(finite) >= 2 else math.nan
    tsrt_ci = fit.tsrt_ci_deg if fit else (math.nan, math.nan)
    mu_ci = fit.mu_ci_s if fit else (math.nan, math.nan)
    if fit is not None and len(finite) >= 2:
        # onset-definition uncertainty (Silva 2017): widen by the between-detector SD
        sd_l = float(np.std(finite, ddof=1))
        sd_m = float(np.std([v for v in detector_mu.values() if math.isfinite(v)], ddof=1))
        tsrt_ci = _widen(tsrt_ci, tsrt, sd_l)
        mu_ci = _widen(mu_ci, mu, sd_m)

    # ---- Tardieu, range, grade -----------------------------------------------------------
    ok = [r for r in records if REASON_GAP not in r.exclusion_reasons]
    if ok:
        peaks = np.array([r.peak_velocity_deg_s for r in ok])
        slow = [r for r in ok if r.peak_velocity_deg_s <= np.percentile(peaks, 20)]
        fast = [r for r in ok if r.peak_velocity_deg_s >= np.percentile(peaks, 80)]
    else:
        slow, fast = [], []
    r2_angle = float(np.median([r.end_angle_deg for r in slow])) if slow else math.nan
    catches = [r.catch_angle_deg for r in fast if r.catch_detected]
    r1_angle = float(np.median(catches)) if len(catches) * 2 >= max(len(fast), 1) else math.nan
    if passive_range_deg is not None:
        range_deg, range_source = (pr[0], pr[1]), "given"
    elif ok:
        range_deg = (float(min(r.start_angle_deg for r in ok)), r2_angle)
        range_source = "slow stretches"
    else:
        range_deg, range_source = (math.nan, math.nan), "slow stretches"
    inside = bool(velocity_dependent and range_deg[0] <= tsrt <= range_deg[1])
    # R2 and the estimated range come from the slowest stretches: they must be slow (Tardieu
    # V1) and not cut short by the reflex
    quality["slow_stretches_not_slow"] = False
    quality["slow_stretches_reflexive"] = False
    if slow:
        slow_v = float(np.median([r.peak_velocity_deg_s for r in slow]))
        if slow_v > slow_max_velocity_deg_s:
            quality["slow_stretches_not_slow"] = True
            warnings.append(
                f"the slowest stretches reached {slow_v:.0f} deg/s (median peak, > "
                f"{slow_max_velocity_deg_s:g} deg/s): R2 (passive range) may be cut short by "
                "the stretch reflex; add slow stretches (Tardieu V1)"
            )
        resisted = [r for r in slow if r.catch_detected or r.clonus]
        if resisted:
            quality["slow_stretches_reflexive"] = True
            warnings.append(
                f"{len(resisted)} of the {len(slow)} slowest stretches show a catch or clonus: "
                "R2 (passive range) may be limited by the reflex; stretch more slowly"
            )
    grades = sorted(_stretch_grade(r) for r in fast)
    grade = int(grades[(len(grades) - 1) // 2]) if grades else 0

    # ---- velocity-dependent gain ---------------------------------------------------------
    def clean(rec: StretchRecord) -> bool:  # the gain needs no onset: outliers stay in
        return not ({REASON_GAP, REASON_ACTIVE, REASON_IRREGULAR} & set(rec.exclusion_reasons))

    lo_rms = [r.stretch_rms_uv for r in slow if clean(r)]
    hi_rms = [r.stretch_rms_uv for r in fast if clean(r)]
    lo_v = float(np.mean(lo_rms)) if lo_rms else math.nan
    hi_v = float(np.mean(hi_rms)) if hi_rms else math.nan
    amp = [(r.onset_velocity_deg_s, r.burst_rms_uv) for r in records if r.used_in_fit]
    slope = ols(*map(np.array, zip(*amp, strict=True)))[1] if len(amp) >= 3 else math.nan
    gain = {
        "low_velocity_rms_uv": lo_v,
        "high_velocity_rms_uv": hi_v,
        "difference_uv": hi_v - lo_v,
        "ratio": hi_v / lo_v if lo_v > 0 else math.nan,
        "amplitude_slope_uv_per_deg_s": slope,
        "n_low": len(lo_rms),
        "n_high": len(hi_rms),
    }

    return StretchReflexResult(
        tsrt_deg=tsrt,
        tsrt_ci_deg=tsrt_ci,
        tsrt_ci_sampling_deg=fit.tsrt_ci_deg if fit else (math.nan, math.nan),
        mu_s=mu,
        mu_ci_s=mu_ci,
        mu_ci_sampling_s=fit.mu_ci_s if fit else (math.nan, math.nan),
        mu_p_value=mu_p,
        reflex_consistency=consistency,
        r2=fit.r2 if fit else math.nan,
        n_stretches=len(records),
        n_valid=len(fit_idx),
        n_reflex=n_reflex,
        velocity_spread_deg_s=spread,
        range_deg=range_deg,
        range_source=range_source,
        tsrt_inside_range=inside,
        detector=detector,
        detector_tsrt_deg=detector_tsrt,
        detector_mu_s=detector_mu,
        tsrt_spread_deg=tsrt_spread,
        tardieu_r1_deg=r1_angle,
        tardieu_r2_deg=r2_angle,
        tardieu_r2_minus_r1_deg=r2_angle - r1_angle,
        tardieu_grade=grade,
        emg_gain=gain,
        stretches=records,
        warnings=warnings,
        quality=quality,
        settings=settings,
    )


def _stretch_grade(r: StretchRecord) -> int:
    """Instrumented Tardieu quality grade of one stretch (0-4)."""
    if not r.reflex:
        return 0
    if r.clonus:
        return 4 if r.clonus_duration_s >= 10.0 else 3
    if r.catch_detected and r.release:
        return 2
    return 1  # EMG response without a catch, or a catch that is not released
