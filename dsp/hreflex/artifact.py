"""Stimulus-artifact detection, blanking and bridging.

The device's event sample index says when a pulse was *commanded*; the artifact in the EMG says
when it *arrived*. Latencies are measured from the detected artifact onset (domain notes: align to
the detected artifact, not the trigger). The artifact (and any ADC saturation that follows it) is
blanked and bridged by a straight line so that it cannot move amplitude or latency estimates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp.errors import SignalError


@dataclass
class ArtifactFinding:
    """The artifact found near one stimulus event.

    Attributes
    ----------
    event_index : int
        Sample index of the event (device timestamp).
    onset_index : int
        Sample index of the detected artifact onset; equals ``event_index`` when not detected.
    detected : bool
        Whether an artifact clearly above the baseline noise was found.
    offset_ms : float
        ``(onset_index - event_index) / rate`` in ms (NaN when not detected).
    saturated_ms : float
        Duration of the run of samples at the ADC rail after the onset, ms (0 when none).
    blank_end_index : int
        First sample after the blanked stretch (exclusive end).
    peak_uv : float
        Largest absolute deviation from the pre-stimulus median inside the search range, uV.
    at_search_edge : bool
        The detected onset sits on the first or last sample of the search range (the artifact
        may start outside it).
    """

    event_index: int
    onset_index: int
    detected: bool
    offset_ms: float
    saturated_ms: float
    blank_end_index: int
    peak_uv: float
    at_search_edge: bool = False


@dataclass
class ArtifactOffset:
    """The session-wide offset from the device events to the stimulus artifacts.

    Attributes
    ----------
    offset_ms : float
        Median event-to-artifact-onset offset over the sweeps used, ms (0 when none was found).
    found : bool
        Whether any artifact was found in the range.
    range_ms : (float, float)
        The range searched around each event, ms.
    n_sweeps : int
        Sweeps searched (the highest intensities).
    n_found : int
        Of those, sweeps with an artifact.
    spread_ms : float
        Median absolute deviation of their offsets from ``offset_ms``, ms (NaN if none).
    at_range_edge : bool
        ``offset_ms`` lies within 0.5 ms of an end of ``range_ms``: the true offset may lie
        outside it.
    """

    offset_ms: float
    found: bool
    range_ms: tuple[float, float]
    n_sweeps: int
    n_found: int
    spread_ms: float
    at_range_edge: bool

    def to_dict(self) -> dict:
        return {
            "offset_ms": float(self.offset_ms),
            "found": bool(self.found),
            "range_ms": [float(v) for v in self.range_ms],
            "n_sweeps": int(self.n_sweeps),
            "n_found": int(self.n_found),
            "spread_ms": float(self.spread_ms),
            "at_range_edge": bool(self.at_range_edge),
        }


def _sharp_onset(x: np.ndarray, a: int, b: int, base_len: int, threshold_sd: float) -> int | None:
    """First sample in ``x[a:b]`` whose step from the previous sample is at least a quarter of
    the largest step there and ``threshold_sd`` robust SDs of the baseline's steps; None if none.

    A stimulus artifact arrives as a step of one or two samples; M- and H-waves rise over a
    millisecond or more, so their sample-to-sample steps are far smaller even when the waves
    are larger than the artifact. A quarter, not a half: a biphasic artifact that saturates
    rail to rail steps by one rail at its onset and by two at its phase reversal, so with half
    the onset qualified or not by the sign of the noise just before it.
    """
    base = x[max(a - base_len, 0) : a]
    base = base[np.isfinite(base)]
    if base.size < 8 or a < 1 or b - a < 2:
        return None
    d_base = np.diff(base)
    sd = 1.4826 * float(np.median(np.abs(d_base - np.median(d_base)))) + 1e-12
    seg = x[a - 1 : b]
    step = np.abs(np.diff(np.where(np.isfinite(seg), seg, np.nan)))
    step = np.nan_to_num(step, nan=0.0)
    peak = float(step.max())
    if peak < threshold_sd * sd:
        return None
    return a + int(np.argmax(step >= max(0.25 * peak, threshold_sd * sd)))


def session_artifact_offset(
    emg_uv: np.ndarray,
    emg_rate_hz: float,
    event_index: np.ndarray,
    intensity_ma: np.ndarray | None = None,
    *,
    range_ms: tuple[float, float] = (-5.0, 10.0),
    top_fraction: float = 1.0 / 3.0,
    min_sweeps: int = 5,
    threshold_sd: float = 12.0,
) -> ArtifactOffset:
    """One event-to-artifact offset for the whole session, searched over a wide range.

    The device's event timestamp and the artifact in the EMG can disagree by a constant
    (trigger latency, a clock offset, a mis-set delay). On the sweeps with the highest
    intensities (the largest artifacts; ``top_fraction`` of them, at least ``min_sweeps``), the
    artifact onset is the first sharp step (see :func:`_sharp_onset`) within ``range_ms`` of the
    event; the session offset is the median over those sweeps. Per-sweep onsets are then searched
    in a narrow range around ``event + offset`` (:func:`find_artifacts`).

    Parameters
    ----------
    emg_uv : ndarray, shape (n_samples,)
        One EMG channel, uV.
    emg_rate_hz : float
        Sampling rate, Hz.
    event_index : ndarray of int, shape (n_stimuli,)
        Device event sample indices.
    intensity_ma : ndarray, shape (n_stimuli,), optional
        Intensities, mA (all sweeps are used when omitted).
    range_ms : (float, float)
        Range searched around each event, ms (start negative).
    top_fraction : float
        Share of sweeps (highest intensities first) used.
    min_sweeps : int
        Fewest sweeps used (all when there are fewer).
    threshold_sd : float
        Minimum step in robust SDs of the baseline's sample-to-sample steps.

    Returns
    -------
    ArtifactOffset

    Raises
    ------
    dsp.SignalError
        ``range_ms`` is not (start, end) with start < end.
    """
    if not (len(range_ms) == 2 and range_ms[0] < range_ms[1]):
        raise SignalError(f"range_ms={range_ms} must be (start, end) with start < end, in ms")
    x = np.asarray(emg_uv, dtype=np.float64)
    ev = np.asarray(event_index, dtype=np.int64)
    per_ms = emg_rate_hz / 1000.0
    if intensity_ma is None or ev.size == 0:
        order = np.arange(ev.size)
    else:
        inten = np.nan_to_num(np.asarray(intensity_ma, dtype=float), nan=-np.inf)
        order = np.argsort(-inten, kind="stable")
    k = min(ev.size, max(min_sweeps, int(np.ceil(top_fraction * ev.size))))
    use = order[:k]
    r0, r1 = round(range_ms[0] * per_ms), round(range_ms[1] * per_ms)
    base_len = max(round(20.0 * per_ms), 8)
    offs = []
    for e in ev[use]:
        a, b = max(int(e) + r0, 1), min(int(e) + r1 + 1, x.shape[0])
        onset = _sharp_onset(x, a, b, base_len, threshold_sd) if a < b else None
        if onset is not None:
            offs.append((onset - int(e)) / per_ms)
    if not offs:
        return ArtifactOffset(0.0, False, tuple(range_ms), int(k), 0, float("nan"), False)
    off = np.asarray(offs)
    med = float(np.median(off))
    edge = med - range_ms[0] < 0.5 or range_ms[1] - med < 0.5
    return ArtifactOffset(
        offset_ms=med,
        found=True,
        range_ms=(float(range_ms[0]), float(range_ms[1])),
        n_sweeps=int(k),
        n_found=int(off.size),
        spread_ms=float(np.median(np.abs(off - med))),
        at_range_edge=bool(edge),
    )


def rail_level_uv(emg_uv: np.ndarray, min_run: int = 3) -> float | None:
    """Estimate the ADC rail (saturation level, uV) from repeated extreme values.

    Returns the absolute value of the most extreme sample when at least ``min_run`` samples share
    it (a clipped signal), else ``None``.

    Parameters
    ----------
    emg_uv : ndarray, shape (n_samples,)
        One EMG channel, uV (NaN allowed).
    min_run : int
        How many samples must sit at the extreme for it to count as a rail.
    """
    x = np.abs(emg_uv[np.isfinite(emg_uv)])
    if x.size == 0:
        return None
    top = float(x.max())
    if top == 0.0:
        return None
    at_top = np.count_nonzero(x >= top * (1.0 - 1e-9))
    return top if at_top >= min_run else None


def find_artifacts(
    emg_uv: np.ndarray,
    emg_rate_hz: float,
    event_index: np.ndarray,
    *,
    search_ms: tuple[float, float] = (-2.0, 2.0),
    offset_ms: float = 0.0,
    min_blank_ms: float = 1.0,
    guard_ms: float = 0.5,
    max_blank_ms: float = 6.0,
    blank_ms: float | None = None,
    rail_uv: float | None = None,
    threshold_sd: float = 12.0,
) -> list[ArtifactFinding]:
    """Detect the stimulus artifact near each event and decide what to blank.

    The onset is the first sample in ``search_ms`` around ``event + offset_ms`` whose deviation
    from the pre-stimulus median exceeds half the largest deviation there (and ``threshold_sd``
    robust SDs of the baseline). ``offset_ms`` is the session's event-to-artifact offset
    (:func:`session_artifact_offset`); a sweep without a detected artifact is placed at
    ``event + offset_ms``. The blanked stretch runs from one sample before the onset to the end
    of the saturated run (samples within 0.5% of the rail, if any) or ``min_blank_ms``,
    whichever is later, plus ``guard_ms``; capped at ``max_blank_ms``. ``blank_ms`` fixes it
    instead.

    Parameters
    ----------
    emg_uv : ndarray, shape (n_samples,)
        One EMG channel, uV.
    emg_rate_hz : float
        Sampling rate, Hz.
    event_index : ndarray of int, shape (n_stimuli,)
        Device event sample indices.
    search_ms : (float, float)
        Where to look for the onset relative to ``event + offset_ms``, ms.
    offset_ms : float
        Session-wide offset from the device event to the artifact, ms (0: none).
    min_blank_ms, guard_ms, max_blank_ms : float
        Blanking limits, ms after the onset (see above).
    blank_ms : float, optional
        Blank exactly this long after the onset (overrides the automatic length).
    rail_uv : float, optional
        ADC rail in uV; estimated from repeated extreme values when omitted.
    threshold_sd : float
        Minimum artifact size in robust SDs of the pre-stimulus baseline.

    Returns
    -------
    list of ArtifactFinding
        One per event, in order.
    """
    x = np.asarray(emg_uv, dtype=np.float64)
    n = x.shape[0]
    per_ms = emg_rate_hz / 1000.0
    shift = round(float(offset_ms) * per_ms) if np.isfinite(offset_ms) else 0
    if rail_uv is None:
        # the rail is reached (if at all) by the artifacts: look only around them
        span = np.arange(-round(1.0 * per_ms), round(max_blank_ms * per_ms) + 1) + shift
        near = np.clip(np.asarray(event_index, dtype=np.int64)[:, None] + span, 0, n - 1)
        rail_uv = rail_level_uv(x[near.ravel()])
    s0 = round(search_ms[0] * per_ms) + shift
    s1 = max(round(search_ms[1] * per_ms), 1) + shift
    base_len = max(round(20.0 * per_ms), 8)
    out = []
    for ev in np.asarray(event_index, dtype=np.int64):
        ev = int(ev)
        a = max(ev + s0, 0)
        b = min(ev + s1 + 1, n)
        base = x[max(a - base_len, 0) : a]
        base = base[np.isfinite(base)]
        if a >= b or base.size < 4:
            at = min(max(ev + shift, 0), n - 1)
            out.append(ArtifactFinding(ev, at, False, float("nan"), 0.0, at, float("nan")))
            continue
        med = float(np.median(base))
        sd = 1.4826 * float(np.median(np.abs(base - med))) + 1e-12
        seg = x[a:b]
        dev = np.abs(np.where(np.isfinite(seg), seg, med) - med)
        peak = float(dev.max())
        if peak < threshold_sd * sd:
            onset, detected = min(max(ev + shift, 0), n - 1), False
        else:
            onset = a + int(np.argmax(dev >= 0.5 * peak))
            # Step back over the artifact's rising edge: samples clearly above the noise *and*
            # a real part of the artifact (5% of its peak), not background EMG that happens to
            # stand above the baseline's median just before the pulse.
            lim = max(onset - 3, a)
            edge = max(4.0 * sd, 0.05 * peak)
            while onset > lim and abs(x[onset - 1] - med) > edge:
                onset -= 1
            detected = True
        sat = 0
        if rail_uv is not None and detected:
            i = onset
            lim = min(onset + round(max_blank_ms * per_ms), n)
            # saturation may start a sample or two after the onset
            while i < lim and abs(x[i]) < rail_uv * 0.995 and i - onset < 3:
                i += 1
            j = i
            while j < lim and np.isfinite(x[j]) and abs(x[j]) >= rail_uv * 0.995:
                j += 1
            if j > i:
                sat = j - onset
        if blank_ms is not None:
            end = onset + max(round(blank_ms * per_ms), 1)
        else:
            core = max(sat, round(min_blank_ms * per_ms)) if detected else 0
            length = core + int(np.ceil(guard_ms * per_ms)) if detected else 0
            end = onset + min(length, round(max_blank_ms * per_ms))
        end = min(end, n)
        out.append(
            ArtifactFinding(
                event_index=ev,
                onset_index=int(onset),
                detected=bool(detected),
                offset_ms=float((onset - ev) / per_ms) if detected else float("nan"),
                saturated_ms=float(sat / per_ms),
                blank_end_index=int(end),
                peak_uv=peak,
                at_search_edge=bool(detected and (onset <= a or onset >= b - 1)),
            )
        )
    return out


def bridge(epoch: np.ndarray, start: int, end: int) -> None:
    """Replace ``epoch[start:end]`` in place by a straight line between its neighbours.

    The line joins the mean of the two samples before ``start`` and the mean of the two samples
    from ``end`` on. ``epoch`` has time on axis 0 and may hold several sweeps along axis 1.
    """
    n = epoch.shape[0]
    start = max(int(start), 0)
    end = min(int(end), n)
    if end <= start:
        return
    if start == 0 and end >= n:
        raise SignalError("the artifact blank covers the whole epoch; shorten blank_ms")
    left = epoch[max(start - 2, 0) : start].mean(axis=0) if start > 0 else None
    right = epoch[end : min(end + 2, n)].mean(axis=0) if end < n else None
    if left is None:
        left = right
    if right is None:
        right = left
    t = (np.arange(start, end) - (start - 1)) / (end - (start - 1))
    if epoch.ndim == 1:
        epoch[start:end] = left + (right - left) * t
    else:
        epoch[start:end] = left[None, :] + (right - left)[None, :] * t[:, None]


@dataclass
class TailModel:
    """Decaying stimulus-artifact tail, per mA of stimulus intensity.

    ``tail_uv(t_ms) = intensity_ma * (c1 * exp(-t_ms / tau1) + c2 * exp(-t_ms / tau2))`` for
    ``t_ms`` after the artifact onset (applied only after each sweep's blank).

    Attributes
    ----------
    c1_uv_per_ma, tau1_ms, c2_uv_per_ma, tau2_ms : float
        Fitted amplitudes (uV per mA) and time constants (ms).
    fit_range_ms : (float, float)
        Where the template was fitted, ms after the onset.
    n_sweeps : int
        Lowest-intensity sweeps averaged into the template.
    rms_residual_uv_per_ma : float
        RMS residual of the fit, uV per mA.
    used : bool
        Whether the tail was large enough to subtract.
    """

    c1_uv_per_ma: float
    tau1_ms: float
    c2_uv_per_ma: float
    tau2_ms: float
    fit_range_ms: tuple[float, float]
    n_sweeps: int
    rms_residual_uv_per_ma: float
    used: bool

    def per_ma(self, t_ms: np.ndarray) -> np.ndarray:
        """The tail per mA at ``t_ms`` (ms after the onset), uV/mA; 0 before the onset."""
        t = np.asarray(t_ms, dtype=float)
        out = self.c1_uv_per_ma * np.exp(-np.maximum(t, 0) / self.tau1_ms)
        out = out + self.c2_uv_per_ma * np.exp(-np.maximum(t, 0) / self.tau2_ms)
        return np.where(t >= 0, out, 0.0)

    def to_dict(self) -> dict:
        return {
            "model": "intensity * (c1 exp(-t/tau1) + c2 exp(-t/tau2))",
            "c1_uv_per_ma": float(self.c1_uv_per_ma),
            "tau1_ms": float(self.tau1_ms),
            "c2_uv_per_ma": float(self.c2_uv_per_ma),
            "tau2_ms": float(self.tau2_ms),
            "fit_range_ms": [float(v) for v in self.fit_range_ms],
            "n_sweeps": int(self.n_sweeps),
            "rms_residual_uv_per_ma": float(self.rms_residual_uv_per_ma),
            "used": bool(self.used),
        }


def fit_tail_template(
    epochs: np.ndarray,
    t_ms: np.ndarray,
    intensity_ma: np.ndarray,
    sweeps: np.ndarray,
    fit_range_ms: tuple[float, float],
    noise_uv: float,
    *,
    exclude_ms=None,
    blank_end_ms: np.ndarray | None = None,
    wave_spans=None,
) -> TailModel | None:
    """Fit the artifact tail (two exponentials, per mA) on the lowest-intensity sweeps.

    The stimulus artifact's tail scales with intensity and keeps its shape; the sweeps at the
    lowest intensities carry it with (almost) no M-wave, so their intensity-normalised mean,
    fitted by two decaying exponentials, is a smooth template that can be scaled and subtracted
    from every sweep. A small M-wave left in those sweeps is biphasic and barely moves the fit.

    Parameters
    ----------
    epochs : ndarray, shape (n_rows, n_sweeps)
        Baseline-removed epochs (not yet bridged), uV.
    t_ms : ndarray, shape (n_rows,)
        Time of each row, ms after the artifact onset.
    intensity_ma : ndarray, shape (n_sweeps,)
        Intensities, mA.
    sweeps : ndarray of int
        Usable sweeps (columns) to choose the template sweeps from.
    fit_range_ms : (float, float)
        Time range of the fit (after the longest blank of the template sweeps).
    noise_uv : float
        Typical baseline noise SD of a sweep, uV.
    exclude_ms : (float, float) or list of them, optional
        Time spans left out of the fit (the M-wave window once located, the H search range).
    blank_end_ms : ndarray, shape (n_sweeps,), optional
        Per-sweep blank ends (ms). When given, every sweep in ``sweeps`` enters the fit from its
        own blank on (intensity-normalised), not only the lowest intensities: used once the wave
        windows are known and excluded, so the fit sees the tail where it matters most.
    wave_spans : list of ((float, float), ndarray of bool), optional
        With ``blank_end_ms``: wave windows (ms) and, per sweep, whether it is free of that wave;
        a window is left out of the fit only for the sweeps that carry the wave.

    Returns
    -------
    TailModel or None
        None when too few sweeps or the fit failed.
    """
    from scipy.optimize import least_squares

    sweeps = np.asarray(sweeps)
    pos = sweeps[intensity_ma[sweeps] > 0]
    if pos.size < 3:
        return None
    order = pos[np.argsort(intensity_ma[pos], kind="stable")]
    i_lo, i_hi = float(intensity_ma[order[0]]), float(intensity_ma[order[-1]])
    low = order[intensity_ma[order] <= i_lo + 0.1 * (i_hi - i_lo)]
    if low.size < 3:
        low = order[:3]
    rows = (t_ms >= fit_range_ms[0]) & (t_ms < fit_range_ms[1])
    if exclude_ms is not None:
        spans = [exclude_ms] if np.isscalar(exclude_ms[0]) else exclude_ms
        for a, b in spans:
            rows &= ~((t_ms >= a) & (t_ms < b))
    if rows.sum() < 8:
        return None
    if blank_end_ms is None:
        t = t_ms[rows]
        tmpl = np.mean(epochs[rows][:, low] / intensity_ma[low][None, :], axis=1)
        n_used = int(low.size)
    else:
        # every sweep from its own blank on, normalised by its intensity: the pooled weighted
        # least-squares problem reduces exactly to a per-row weighted mean (weights I**2, as
        # the noise of y / I scales with 1 / I), fitted with weights sqrt(sum of weights)
        valid = rows[:, None] & (t_ms[:, None] >= blank_end_ms[pos][None, :])
        for (wa, wb), free in wave_spans or ():
            # a wave window is left out only for the sweeps that carry the wave: the others
            # show the artifact's tail there (the low intensities its fast part under the M)
            in_wave = (t_ms >= wa) & (t_ms < wb)
            has_wave = ~np.asarray(free, bool)[pos]
            valid &= ~(in_wave[:, None] & has_wave[None, :])
        w = valid * (intensity_ma[pos] ** 2)[None, :]
        wsum = w.sum(axis=1)
        keep = wsum > 0
        if keep.sum() < 8:
            return None
        y = epochs[:, pos] / intensity_ma[pos][None, :]
        t = t_ms[keep]
        tmpl = (w * y).sum(axis=1)[keep] / wsum[keep]
        weight = np.sqrt(wsum[keep] / wsum[keep].max())
        n_used = int(pos.size)
    t0 = float(t[0])
    a0 = float(np.median(tmpl[t <= t0 + 0.3])) or 1.0

    if blank_end_ms is None:
        weight = np.ones_like(t)

    def resid(p):
        c1, tau1, c2, tau2 = p
        return weight * (c1 * np.exp(-(t - t0) / tau1) + c2 * np.exp(-(t - t0) / tau2) - tmpl)

    best = None
    for tau1, tau2 in ((0.5, 8.0), (2.0, 15.0), (1.0, 30.0)):
        p0 = [0.9 * a0, tau1, 0.1 * a0, tau2]
        r = least_squares(
            resid, p0, bounds=([-np.inf, 0.05, -np.inf, 0.05], [np.inf, 20.0, np.inf, 60.0])
        )
        if best is None or r.cost < best.cost:
            best = r
    c1, tau1, c2, tau2 = best.x
    # express the amplitudes at the onset (t = 0)
    c1 *= np.exp(t0 / tau1)
    c2 *= np.exp(t0 / tau2)
    rms = float(np.sqrt(np.mean(best.fun**2)))
    model = TailModel(
        float(c1),
        float(tau1),
        float(c2),
        float(tau2),
        (float(fit_range_ms[0]), float(fit_range_ms[1])),
        n_used,
        rms,
        False,
    )
    top = float(np.max(intensity_ma[sweeps]))
    start = float(np.abs(model.per_ma(np.array([t0])))[0])
    # subtract only a clear tail: well above the fit residual and the noise of a sweep
    model.used = bool(best.success) and start > 5.0 * rms and start * top > 3.0 * noise_uv
    return model
