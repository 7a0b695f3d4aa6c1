"""The guided ``stretch`` protocol: a velocity ladder with feedback on every stretch.

Slow stretches first (they give the passive range), then stretches at increasing velocities
(the order recommended for manual stretching, Marques 2018). Each step is sent to the device as a
``PROMPT`` (``kind="stretch"``, ``velocity_deg_s``), so a display on the device, or the emulated
device's virtual patient, can act on it, and is stored as a ``prompt`` event. The protocol then
watches the goniometer: it detects the movement, measures the velocity achieved (peak and mean
over the movement), and warns when the stretch was irregular (coefficient of variation of the
velocity over the middle of the movement above a threshold) or when the muscle was already
active before the stretch (EMG RMS in the 300 ms before onset well above the resting level).
Every result is stored as a ``note`` event labelled ``stretch_result``.

All timing is on the device's sample clock (rows of the angle stream), so the protocol behaves
the same on a live device and on the emulated device running faster than real time.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from acquire.errors import AcquisitionError

#: Low-pass corner of the live velocity (Hz): the analysis's ``angle_cutoff_hz`` default.
VELOCITY_CUTOFF_HZ = 20.0


class StretchConfigError(AcquisitionError):
    """A stretch-protocol setting no device performs (velocity, rest, counts; one line)."""


#: Longest rest and onset timeout of the stretch protocol, s.
MAX_REST_S = 600.0
#: Most range stretches, and most repeats per ladder velocity.
MAX_COUNT = 100


def _finite(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    return bool(np.isfinite(value))


@dataclass(frozen=True)
class StretchProtocolConfig:
    """What the ``stretch`` protocol prompts.

    Attributes
    ----------
    range_velocity_deg_s : float
        Velocity of the slow stretches that measure the passive range.
    n_range : int
        How many slow stretches.
    velocities_deg_s : sequence of float
        The ladder, slowest first.
    repeats : int
        Stretches per ladder velocity.
    rest_s : float
        Rest between the end of one stretch and the next prompt (session time).
    onset_timeout_s : float
        Give up on a prompt when no movement starts within this time.
    end_deg : float, optional
        End angle to ask for (e.g. the passive range's maximum).
    irregular_cv : float
        Coefficient of variation of the velocity over the middle 60% of the movement above
        which a stretch is flagged irregular.
    active_rms_uv : float
        Pre-stretch EMG RMS (300 ms before onset) above which the muscle counts as active, if it
        is also ``active_factor`` times the resting level.
    active_factor : float
    min_excursion_deg : float
        A movement smaller than this is not a stretch (noise, a twitch).
    """

    range_velocity_deg_s: float = 15.0
    n_range: int = 2
    velocities_deg_s: Sequence[float] = (30.0, 60.0, 90.0, 120.0, 180.0, 240.0)
    repeats: int = 3
    rest_s: float = 3.0
    onset_timeout_s: float = 10.0
    end_deg: float | None = None
    irregular_cv: float = 0.35
    active_rms_uv: float = 15.0
    active_factor: float = 3.0
    min_excursion_deg: float = 5.0

    def __post_init__(self) -> None:
        """Refuse what no device performs (PROTOCOL.md 4.5a) before anything is prompted.

        Raises
        ------
        StretchConfigError
            A velocity outside ``STRETCH_PROMPT_LIMITS`` (5-1000 deg/s) or not a finite
            number, a negative or non-finite rest or timeout, counts outside their ranges.
        """
        from firmware_iface.messages import STRETCH_PROMPT_LIMITS

        lo, hi = STRETCH_PROMPT_LIMITS["velocity_deg_s"]
        velocities = [("range_velocity_deg_s", self.range_velocity_deg_s)]
        velocities += [("velocities_deg_s", v) for v in self.velocities_deg_s]
        for name, v in velocities:
            if not _finite(v) or not lo <= v <= hi:
                raise StretchConfigError(
                    f"{name}={v!r} deg/s must be a finite number in [{lo:g}, {hi:g}] deg/s"
                )
        if not self.velocities_deg_s and not self.n_range:
            raise StretchConfigError("the stretch protocol needs at least one velocity")
        for name, value in (("rest_s", self.rest_s), ("onset_timeout_s", self.onset_timeout_s)):
            if not _finite(value) or not 0 <= value <= MAX_REST_S:
                raise StretchConfigError(
                    f"{name}={value!r} s must be a finite number in [0, {MAX_REST_S:g}] s"
                )
        for name, value in (("n_range", self.n_range), ("repeats", self.repeats)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
                raise StretchConfigError(
                    f"{name}={value!r} must be a whole number in [0, {MAX_COUNT}]"
                )
        if self.end_deg is not None and (not _finite(self.end_deg) or abs(self.end_deg) > 360):
            raise StretchConfigError(
                f"end_deg={self.end_deg!r} must be a finite angle in [-360, 360] deg"
            )

    def steps(self) -> list[tuple[str, float]]:
        """``(phase, velocity)`` for every prompt, in order."""
        out = [("range", float(self.range_velocity_deg_s))] * int(self.n_range)
        for v in self.velocities_deg_s:
            out += [("ladder", float(v))] * int(self.repeats)
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["velocities_deg_s"] = [float(v) for v in self.velocities_deg_s]
        return d


@dataclass
class StretchResult:
    """Feedback on one prompted stretch."""

    index: int
    phase: str
    target_velocity_deg_s: float
    detected: bool
    peak_velocity_deg_s: float = float("nan")
    mean_velocity_deg_s: float = float("nan")
    velocity_cv: float = float("nan")
    onset_time_s: float = float("nan")
    end_time_s: float = float("nan")
    start_angle_deg: float = float("nan")
    end_angle_deg: float = float("nan")
    pre_stretch_rms_uv: float = float("nan")
    irregular: bool = False
    muscle_active: bool = False

    def message(self, total: int) -> str:
        head = (
            f"stretch {self.index + 1}/{total} ({self.phase}, {self.target_velocity_deg_s:g} deg/s)"
        )
        if not self.detected:
            return f"{head}: no stretch detected - WARNING"
        text = (
            f"{head}: achieved {self.mean_velocity_deg_s:.0f} deg/s "
            f"(peak {self.peak_velocity_deg_s:.0f}), {self.start_angle_deg:.0f} -> "
            f"{self.end_angle_deg:.0f} deg"
        )
        warnings = []
        if self.irregular:
            warnings.append(f"irregular velocity (CV {self.velocity_cv:.2f})")
        if self.muscle_active:
            warnings.append(f"muscle already active ({self.pre_stretch_rms_uv:.0f} uV RMS)")
        return text + ("  WARNING: " + "; ".join(warnings) if warnings else "  ok")

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                for k, v in asdict(self).items()}  # fmt: skip


def assess_stretch(
    velocity_deg_s: np.ndarray,
    pre_stretch_rms_uv: float,
    resting_rms_uv: float,
    config: StretchProtocolConfig,
) -> dict:
    """Velocity achieved and warnings for one stretch.

    Parameters
    ----------
    velocity_deg_s : numpy.ndarray, shape (n,)
        Angular velocity from onset to end of the movement (deg/s, lengthening positive).
    pre_stretch_rms_uv : float
        EMG RMS over the 300 ms before onset (highest channel), uV.
    resting_rms_uv : float
        Resting EMG RMS of this session (20th percentile of 50 ms bins), uV.
    config : StretchProtocolConfig

    Returns
    -------
    dict
        ``peak_velocity_deg_s``, ``mean_velocity_deg_s`` (mean over the middle 60% of the
        movement), ``velocity_cv`` (its coefficient of variation), ``irregular`` (CV above
        ``config.irregular_cv``) and ``muscle_active`` (pre-stretch RMS above
        ``config.active_rms_uv`` and ``config.active_factor`` times the resting level).
    """
    v = np.asarray(velocity_deg_s, dtype=float)
    n = v.size
    mid = v[int(0.2 * n) : max(int(0.2 * n) + 1, int(0.8 * n))]
    mean_v = float(np.mean(mid)) if mid.size else float("nan")
    cv = float(np.std(mid) / mean_v) if mid.size > 2 and mean_v > 0 else float("nan")
    active = bool(
        np.isfinite(pre_stretch_rms_uv)
        and pre_stretch_rms_uv > config.active_rms_uv
        and (
            not np.isfinite(resting_rms_uv)
            or pre_stretch_rms_uv > config.active_factor * resting_rms_uv
        )
    )
    return {
        "peak_velocity_deg_s": float(np.max(v)) if n else float("nan"),
        "mean_velocity_deg_s": mean_v,
        "velocity_cv": cv,
        "irregular": bool(np.isfinite(cv) and cv > config.irregular_cv),
        "muscle_active": active,
    }


class StretchProtocol:
    """Drive a :class:`~acquire.recorder.Recorder` through the velocity ladder.

    Call :meth:`attach` once after ``recorder.open()`` and :meth:`tick` from the recording loop
    (the record command does both). Sample blocks arrive through the recorder's
    ``block_listeners``, in the loop's thread.
    """

    def __init__(
        self,
        recorder,
        config: StretchProtocolConfig | None = None,
        *,
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        self.recorder = recorder
        self.config = config or StretchProtocolConfig()
        self.steps = self.config.steps()
        self.on_message = on_message or (lambda text: None)
        self.results: list[StretchResult] = []
        self.done = False
        self._step = 0
        self._state = "prompt"
        self._angle_rate = 0.0
        self._emg_rate = 0.0
        self._t = 0.0  # session time of the newest angle sample
        self._prompt_t = 0.0
        self._next_prompt_t = 0.0
        self._prev_angle: float | None = None  # previous low-passed angle (deg)
        self._lowpass = None  # causal filter of the angle, made on the first block
        self._angle_origin = 0.0  # angle the filter started from (no start-up transient)
        self._move_v: list[float] = []
        self._move_start = (0.0, 0.0)
        self._quiet = 0
        self._angle_at_onset = float("nan")
        self._last_angle = float("nan")
        self._bins: collections.deque = collections.deque(maxlen=400)  # (t_end, rms)
        self._bin_acc: list[np.ndarray] = []
        self._bin_n = 0

    def attach(self) -> None:
        rec = self.recorder
        self._angle_rate = rec.angle_rate_hz or 0.0
        self._emg_rate = rec.emg_rate_hz
        if not self._angle_rate:
            self.on_message("stretch protocol needs a goniometer channel: running as free")
            self.done = True
            return
        rec.block_listeners.append(self._on_block)
        rec.add_host_event("note", label="protocol", params={"stretch": self.config.to_dict()})

    # -- loop side ---------------------------------------------------------------------
    def tick(self) -> None:
        if self.done:
            return
        if self._state == "prompt" and self._t >= self._next_prompt_t:
            phase, v = self.steps[self._step]
            params = {"velocity_deg_s": v, "index": self._step, "phase": phase}
            if self.config.end_deg is not None:
                params["end_deg"] = float(self.config.end_deg)
            self.recorder.prompt("stretch", **params)
            self.on_message(
                f"prompt {self._step + 1}/{len(self.steps)}: {phase} stretch at {v:g} deg/s"
            )
            self._prompt_t = self._t
            self._state = "wait_onset"
        elif self._state == "wait_onset" and self._t - self._prompt_t > self.config.onset_timeout_s:
            phase, v = self.steps[self._step]
            self._finish(StretchResult(self._step, phase, v, detected=False))

    # -- data side -----------------------------------------------------------------------
    def _on_block(self, stream: str, row: int, phys: np.ndarray, counts=None) -> None:
        if stream == "emg":
            self._on_emg(row, phys)
            return
        if stream != "angle":
            return
        rate = self._angle_rate
        angles = np.asarray(phys[:, 0], dtype=np.float64)
        smooth = self._lowpassed(angles)
        for k, a in enumerate(angles):
            t = (row + k) / rate
            self._t = t
            if not np.isfinite(a):
                self._prev_angle = None
                continue
            s = float(smooth[k])
            if self._prev_angle is None:
                self._prev_angle = s
                continue
            # velocity of the low-passed angle: the analysis's corner (20 Hz), run causally
            vel = (s - self._prev_angle) * rate
            self._prev_angle = s
            self._track(t, float(a), vel)
            self._last_angle = float(a)

    def _lowpassed(self, angles: np.ndarray) -> np.ndarray:
        """The angle through a causal 4th-order Butterworth low-pass at ``VELOCITY_CUTOFF_HZ``.

        The analysis low-passes at the same corner, forwards and backwards (no lag); live, the
        filter can only run forwards, so the velocity lags by about 10 ms and its peak is within
        a few percent of the analysis's (docs/stretch-reflex.md). A gap (NaN) restarts it.
        """
        from dsp.filters import StreamingFilter, design_lowpass

        rate = self._angle_rate
        if self._lowpass is None:
            sos = design_lowpass(min(VELOCITY_CUTOFF_HZ, 0.45 * rate), rate, 4)
            self._lowpass = StreamingFilter(sos, 1)
            self._lowpass_fresh = True
        out = np.full(angles.shape, np.nan)
        finite = np.isfinite(angles)
        k, n = 0, angles.size
        while k < n:
            if not finite[k]:
                self._lowpass.reset()
                self._lowpass_fresh = True
                k += 1
                continue
            j = k
            while j < n and finite[j]:
                j += 1
            if self._lowpass_fresh:  # start from rest at this angle: no step transient
                self._angle_origin = float(angles[k])
                self._lowpass_fresh = False
            run = angles[k:j, None] - self._angle_origin
            out[k:j] = self._lowpass.process(run)[:, 0] + self._angle_origin
            k = j
        return out

    def _track(self, t: float, angle: float, vel: float) -> None:
        if self._state not in ("wait_onset", "moving"):
            return
        _phase, target = self.steps[self._step]
        on = max(5.0, 0.25 * target)
        off = max(3.0, 0.15 * target)
        if self._state == "wait_onset":
            if vel > on:
                self._state = "moving"
                self._move_start = (t, angle)
                self._move_v = [vel]
                self._quiet = 0
            return
        self._move_v.append(vel)
        if vel < off:
            self._quiet += 1
            if self._quiet >= max(1, int(0.05 * self._angle_rate)):
                if angle - self._move_start[1] < self.config.min_excursion_deg:
                    self._state = "wait_onset"  # a twitch or noise, not a stretch
                else:
                    self._evaluate(t, angle)
        else:
            self._quiet = 0

    def _on_emg(self, row: int, phys: np.ndarray) -> None:
        per_bin = max(1, int(0.05 * self._emg_rate))
        self._bin_acc.append(phys)
        self._bin_n += phys.shape[0]
        if self._bin_n < per_bin:
            return
        data = np.concatenate(self._bin_acc)
        self._bin_acc, self._bin_n = [], 0
        end_t = (row + phys.shape[0]) / self._emg_rate
        nb = data.shape[0] // per_bin
        for b in range(nb):
            chunk = data[b * per_bin : (b + 1) * per_bin]
            chunk = chunk - np.nanmean(chunk, axis=0)
            rms = float(np.nanmax(np.sqrt(np.nanmean(chunk**2, axis=0))))
            t_end = end_t - (data.shape[0] - (b + 1) * per_bin) / self._emg_rate
            self._bins.append((t_end, rms))
        rest = data[nb * per_bin :]
        if rest.shape[0]:
            self._bin_acc, self._bin_n = [rest], rest.shape[0]

    def _evaluate(self, t_end: float, angle_end: float) -> None:
        phase, target = self.steps[self._step]
        onset_t, onset_angle = self._move_start
        pre = [rms for (tb, rms) in self._bins if onset_t - 0.3 <= tb <= onset_t]
        pre_rms = float(np.mean(pre)) if pre else float("nan")
        rest_levels = [rms for (_tb, rms) in self._bins]
        baseline = float(np.percentile(rest_levels, 20)) if rest_levels else float("nan")
        a = assess_stretch(np.asarray(self._move_v), pre_rms, baseline, self.config)
        result = StretchResult(
            self._step,
            phase,
            target,
            detected=True,
            onset_time_s=onset_t,
            end_time_s=t_end,
            start_angle_deg=onset_angle,
            end_angle_deg=angle_end,
            pre_stretch_rms_uv=pre_rms,
            **a,
        )
        self._finish(result)

    def _finish(self, result: StretchResult) -> None:
        self.results.append(result)
        text = result.message(len(self.steps))
        self.on_message(text)
        self.recorder.add_host_event("note", label="stretch_result", params=result.to_dict())
        self._step += 1
        self._state = "prompt"
        self._next_prompt_t = self._t + self.config.rest_s
        if self._step >= len(self.steps):
            self.done = True
            self.on_message("stretch protocol complete")
