"""Stage 0 of the stretch-reflex analysis: the validated settings (one frozen record).

:func:`stretch_reflex_settings` checks every option of
:func:`dsp.stretch_reflex.analyze_stretch_reflex` that does not depend on the signals and returns
a :class:`StretchReflexSettings`; :meth:`StretchReflexSettings.to_dict` is what the result's
``settings`` echoes (and what is stored with the results).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dsp.errors import SignalError
from dsp.stretch_reflex._onsets import TKEO_DEFAULTS, check_detector_params, detector_names


def _as_float_array(x, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SignalError(f"{name} must be a numeric array ({exc})") from None
    return arr


@dataclass(frozen=True)
class StretchReflexSettings:
    """Every option of the stretch-reflex analysis, validated (see ``analyze_stretch_reflex``).

    ``filter_band_hz`` (the band-pass actually applied: the upper corner clipped to 0.45 x the
    EMG rate) and ``seed_value`` (the seed or generator itself) are not echoed; ``seed`` is its
    echo (an int, None, or a note that a generator was given). ``detector_params`` holds the
    resolved parameters of every detector.
    """

    detector: str
    reflex_delay_s: float
    band_hz: tuple
    line_hz: float | None
    detector_params: dict
    envelope_hz: float
    angle_cutoff_hz: float
    baseline_s: float
    threshold_sd: float
    min_on_s: float
    on_velocity_deg_s: float
    min_excursion_deg: float
    active_factor: float
    irregular_fraction: float
    rest_velocity_deg_s: float
    catch_drop_fraction: float
    release_fraction: float
    catch_window_s: float
    catch_residual_fraction: float
    clonus_min_beats: int
    gain_tail_s: float
    min_fit_stretches: int
    min_velocity_spread_deg_s: float
    slow_max_velocity_deg_s: float
    max_mu_p_value: float
    min_reflex_consistency: float
    n_bootstrap: int
    seed: int | str | None
    detector_sensitivity: bool
    passive_range_deg: tuple[float, float] | None
    prompt_times_s: tuple[float, ...] | None
    channel: int
    filter_band_hz: tuple[float, float] = field(default=(20.0, 450.0), repr=False)
    seed_value: object = field(default=0, repr=False)

    def to_dict(self) -> dict:
        """The settings echo: JSON-serialisable, the keys of the result's ``settings``."""
        return {
            "detector": self.detector,
            "reflex_delay_s": self.reflex_delay_s,
            "band_hz": list(self.band_hz),
            "line_hz": self.line_hz,
            "detector_params": {
                k: {kk: list(vv) if isinstance(vv, tuple) else vv for kk, vv in v.items()}
                for k, v in self.detector_params.items()
            },
            "envelope_hz": self.envelope_hz,
            "angle_cutoff_hz": self.angle_cutoff_hz,
            "baseline_s": self.baseline_s,
            "threshold_sd": self.threshold_sd,
            "min_on_s": self.min_on_s,
            "on_velocity_deg_s": self.on_velocity_deg_s,
            "min_excursion_deg": self.min_excursion_deg,
            "active_factor": self.active_factor,
            "irregular_fraction": self.irregular_fraction,
            "rest_velocity_deg_s": self.rest_velocity_deg_s,
            "catch_drop_fraction": self.catch_drop_fraction,
            "release_fraction": self.release_fraction,
            "catch_window_s": self.catch_window_s,
            "catch_residual_fraction": self.catch_residual_fraction,
            "clonus_min_beats": self.clonus_min_beats,
            "gain_tail_s": self.gain_tail_s,
            "min_fit_stretches": self.min_fit_stretches,
            "min_velocity_spread_deg_s": self.min_velocity_spread_deg_s,
            "slow_max_velocity_deg_s": self.slow_max_velocity_deg_s,
            "max_mu_p_value": self.max_mu_p_value,
            "min_reflex_consistency": self.min_reflex_consistency,
            "n_bootstrap": self.n_bootstrap,
            "seed": self.seed,
            "detector_sensitivity": self.detector_sensitivity,
            "passive_range_deg": (
                None if self.passive_range_deg is None else list(self.passive_range_deg)
            ),
            "prompt_times_s": None if self.prompt_times_s is None else list(self.prompt_times_s),
            "channel": self.channel,
        }

    def rng(self) -> np.random.Generator:
        """The bootstrap's generator: the caller's, or a new one from the seed."""
        s = self.seed_value
        return s if isinstance(s, np.random.Generator) else np.random.default_rng(s)


def stretch_reflex_settings(
    emg_rate_hz: float,
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
) -> StretchReflexSettings:
    """Validate the options of ``analyze_stretch_reflex`` (same names, same defaults).

    Parameters
    ----------
    emg_rate_hz : float
        EMG sampling rate (already checked positive); bounds the band-pass and the notch.
    **options
        As in :func:`dsp.stretch_reflex.analyze_stretch_reflex`. ``channel`` is echoed here and
        checked against the EMG by the input stage.

    Returns
    -------
    StretchReflexSettings

    Raises
    ------
    dsp.SignalError
        Unknown detector, band or notch above Nyquist, bad ``detector_params``, passive range,
        prompts or reflex delay.
    """
    emg_rate = emg_rate_hz
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
    pr = None
    if passive_range_deg is not None:
        pr = tuple(float(v) for v in passive_range_deg)
        if len(pr) != 2 or not (math.isfinite(pr[0]) and math.isfinite(pr[1])) or pr[0] >= pr[1]:
            raise SignalError(
                f"passive_range_deg must be (low, high) with low < high, got {passive_range_deg}"
            )
    prompts = None
    if prompt_times_s is not None:
        prompt_arr = _as_float_array(prompt_times_s, "prompt_times_s").ravel()
        if not np.all(np.isfinite(prompt_arr)):
            raise SignalError("prompt_times_s must hold finite times in seconds")
        prompts = tuple(prompt_arr.tolist())
    if not 0 <= reflex_delay_s < 0.5:
        raise SignalError(f"reflex_delay_s must be in [0, 0.5) s, got {reflex_delay_s}")
    return StretchReflexSettings(
        detector=detector,
        reflex_delay_s=reflex_delay_s,
        band_hz=tuple(band_hz),
        line_hz=line_hz,
        detector_params=det_params,
        envelope_hz=envelope_hz,
        angle_cutoff_hz=angle_cutoff_hz,
        baseline_s=baseline_s,
        threshold_sd=threshold_sd,
        min_on_s=min_on_s,
        on_velocity_deg_s=on_velocity_deg_s,
        min_excursion_deg=min_excursion_deg,
        active_factor=active_factor,
        irregular_fraction=irregular_fraction,
        rest_velocity_deg_s=rest_velocity_deg_s,
        catch_drop_fraction=catch_drop_fraction,
        release_fraction=release_fraction,
        catch_window_s=catch_window_s,
        catch_residual_fraction=catch_residual_fraction,
        clonus_min_beats=clonus_min_beats,
        gain_tail_s=gain_tail_s,
        min_fit_stretches=min_fit_stretches,
        min_velocity_spread_deg_s=min_velocity_spread_deg_s,
        slow_max_velocity_deg_s=slow_max_velocity_deg_s,
        max_mu_p_value=max_mu_p_value,
        min_reflex_consistency=min_reflex_consistency,
        n_bootstrap=n_bootstrap,
        seed=(
            "numpy.random.Generator given by the caller"
            if isinstance(seed, np.random.Generator)
            else (None if seed is None else int(seed))
        ),
        detector_sensitivity=bool(detector_sensitivity),
        passive_range_deg=pr,
        prompt_times_s=prompts,
        channel=int(channel),
        filter_band_hz=(lo_hz, hi_hz),
        seed_value=seed,
    )
