"""Reflex onset inside one stretch window, with the DSP core's detectors (:mod:`dsp.onsets`).

The test signals are computed once for the whole recording (per run of finite samples), then each
stretch window is handed to a DSP-core detector with filtering switched off, so the per-stretch
cost is the thresholding alone:

``threshold``
    :func:`dsp.onsets.detect_onsets_threshold` on the linear envelope (|20-450 Hz band-pass|,
    low-passed at ``envelope_hz``): baseline mean + ``k_sd`` SD for ``min_duration_s``.
``tkeo``
    The same rule on the TKEO envelope (30-300 Hz band-pass, Teager-Kaiser energy, |.|,
    low-pass), which is exactly what :func:`dsp.onsets.detect_onsets_tkeo` thresholds, with its
    defaults (8 SD, 25 ms).
``changepoint``
    :func:`dsp.onsets.detect_onsets_changepoint` on the band-passed EMG.

The baseline is the window before the stretch; the first burst starting inside the search window
is the reflex onset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from dsp.envelopes import tkeo
from dsp.errors import SignalError
from dsp.filters import apply_zero_phase, design_bandpass, design_lowpass, padlen_for
from dsp.onsets import DETECTORS, detect_onsets_changepoint, detect_onsets_threshold
from dsp.stretch_reflex._emg import lowpass_envelope, per_run

#: Defaults of the TKEO rule (as dsp.onsets.detect_onsets_tkeo).
TKEO_DEFAULTS = {"k_sd": 8.0, "min_duration_s": 0.025, "band_hz": (30.0, 300.0)}


#: Parameters each detector accepts in ``detector_params`` and what they must be. The filters
#: (band-pass, envelope low-pass) and the baseline window are set by the analysis itself.
DETECTOR_PARAMS: dict[str, dict[str, str]] = {
    "threshold": {"k_sd": "positive", "min_duration_s": "positive", "min_off_s": "positive|None"},
    "tkeo": {
        "k_sd": "positive",
        "min_duration_s": "positive",
        "min_off_s": "positive|None",
        "band_hz": "band",
    },
    "changepoint": {
        "ratio": "positive",
        "min_duration_s": "positive",
        "penalty": "positive",
        "max_changes": "integer",
        "decimate": "integer|None",
    },
}

_KIND_TEXT = {
    "positive": "a finite number > 0",
    "positive|None": "a finite number > 0 or None",
    "integer": "an integer >= 1",
    "integer|None": "an integer >= 1 or None",
    "band": "(low_hz, high_hz) with 0 < low < high",
}


def _is_real(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
        x, (bool, np.bool_)
    )


def _value_ok(kind: str, value) -> bool:
    if value is None:
        return kind.endswith("|None")
    kind = kind.removesuffix("|None")
    if kind == "positive":
        return _is_real(value) and math.isfinite(value) and value > 0
    if kind == "integer":
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1
    if kind == "band":
        return (
            isinstance(value, (tuple, list))
            and len(value) == 2
            and all(_is_real(v) and math.isfinite(v) for v in value)
            and 0 < value[0] < value[1]
        )
    return False


def check_detector_params(params) -> dict[str, dict]:
    """Validate ``detector_params`` against each detector's accepted parameters.

    Parameters
    ----------
    params : dict or None
        ``{detector name: {parameter: value}}``; see :data:`DETECTOR_PARAMS`.

    Returns
    -------
    dict
        A copy with tuples for bands (empty when ``params`` is None).

    Raises
    ------
    dsp.SignalError
        One line naming the detector and parameter: unknown detector or parameter, a value of
        the wrong type or out of range.
    """
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise SignalError(
            "detector_params must be a dict {detector: {parameter: value}}, got "
            f"{type(params).__name__}"
        )
    out: dict[str, dict] = {}
    for name, extra in params.items():
        if name not in DETECTOR_PARAMS:
            raise SignalError(
                f"detector_params names unknown detector {name!r}; use one of "
                f"{', '.join(DETECTOR_PARAMS)}"
            )
        allowed = DETECTOR_PARAMS[name]
        if not isinstance(extra, Mapping):
            raise SignalError(
                f"detector_params[{name!r}] must be a dict of parameters ({', '.join(allowed)})"
                f", got {type(extra).__name__}"
            )
        clean = {}
        for key, value in extra.items():
            if key not in allowed:
                raise SignalError(
                    f"detector_params[{name!r}] has unknown parameter {key!r}; {name} accepts "
                    f"{', '.join(allowed)}"
                )
            if not _value_ok(allowed[key], value):
                raise SignalError(
                    f"detector_params[{name!r}][{key!r}] must be {_KIND_TEXT[allowed[key]]}, "
                    f"got {value!r}"
                )
            clean[key] = tuple(float(v) for v in value) if allowed[key] == "band" else value
        out[name] = clean
    return out


def detector_names() -> tuple[str, ...]:
    """Names of the DSP core's onset detectors."""
    return tuple(DETECTORS)


class OnsetSignals:
    """Whole-recording test signals of the detectors, computed on first use.

    Parameters
    ----------
    raw : ndarray, (n,)
        EMG in uV (NaN in gaps), before band-pass (notch already applied if any).
    x : ndarray, (n,)
        The same, band-passed (``band_hz``).
    rate_hz : float
    envelope_hz : float
        Low-pass corner of the envelopes.
    params : dict
        Per-detector parameters (``k_sd``, ``min_duration_s``, ``band_hz`` for tkeo, the
        keyword arguments of :func:`dsp.onsets.detect_onsets_changepoint`).
    """

    def __init__(self, raw, x, rate_hz: float, envelope_hz: float, params: dict):
        self.raw = raw
        self.x = x
        self.rate = rate_hz
        self.envelope_hz = envelope_hz
        self.params = params
        self._env: np.ndarray | None = None
        self._tkeo: np.ndarray | None = None

    @property
    def envelope(self) -> np.ndarray:
        if self._env is None:
            self._env = lowpass_envelope(self.x, self.rate, self.envelope_hz)
        return self._env

    @property
    def tkeo_envelope(self) -> np.ndarray:
        if self._tkeo is None:
            lo, hi = self.params["tkeo"]["band_hz"]
            bp = design_bandpass(lo, min(hi, 0.45 * self.rate), self.rate, 4)
            lp = design_lowpass(self.envelope_hz, self.rate, 2)
            need = max(padlen_for(bp), padlen_for(lp)) + 1

            def chain(s):
                return apply_zero_phase(np.abs(tkeo(apply_zero_phase(s, bp))), lp)

            self._tkeo = per_run(self.raw, chain, need)
        return self._tkeo

    def onset(self, method: str, baseline: tuple[int, int], search: tuple[int, int]) -> int:
        """First onset (sample index) inside ``search`` found by ``method``, or -1.

        The signals must be finite over ``baseline[0]:search[1]``.
        """
        lo, hi = baseline[0], search[1]
        base_s = (0.0, (baseline[1] - lo) / self.rate)
        p = dict(self.params.get(method, {}))
        # The reflex rule as validated on the simulator: a burst ends after min_duration_s
        # below threshold, and the change-point search keeps its historical cap of 50 (a cap
        # that is reached now warns, see dsp.onsets.OnsetCapWarning).
        p.setdefault("min_off_s", None)
        if method == "changepoint":
            p.setdefault("max_changes", 50)
        if method == "threshold":
            res = detect_onsets_threshold(
                self.envelope[lo:hi],
                self.rate,
                baseline_s=base_s,
                lowpass_hz=None,
                bandpass_hz=None,
                **p,
            )
        elif method == "tkeo":
            p.pop("band_hz", None)
            res = detect_onsets_threshold(
                self.tkeo_envelope[lo:hi],
                self.rate,
                baseline_s=base_s,
                lowpass_hz=None,
                bandpass_hz=None,
                **p,
            )
        else:
            res = detect_onsets_changepoint(
                self.x[lo:hi], self.rate, baseline_s=base_s, bandpass_hz=None, **p
            )
        on = res.onsets + lo
        inside = on[(on >= search[0]) & (on < search[1])]
        return int(inside[0]) if len(inside) else -1
