"""Named patient profiles: every model parameter in one flat, frozen dataclass.

``get_profile(name, **overrides)`` returns a :class:`Profile`; any field can be overridden by
keyword. Parameters, their units and the literature they follow are listed in
``docs/simulator.md``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .errors import ProfileError

__all__ = ["GONIOMETER_ERRORS", "PROFILE_NAMES", "Profile", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """All parameters of one virtual patient (units in the field names; frozen: use
    :func:`get_profile` with overrides, or ``dataclasses.replace``).

    Angles follow the analysed convention: the angle *increases as the tested muscle
    lengthens*; the goniometer reads ``goniometer_sign * (gain * angle + offset)``.
    Every field, its model and its default are described in ``docs/simulator.md``.

    Raises
    ------
    ProfileError
        On construction, for an out-of-range value.
    """

    name: str = "custom"
    kind: str = "stretch"  # "stretch" or "hreflex": what the profile is meant for
    muscle: str = "elbow_flexors"
    description: str = ""
    references: tuple[str, ...] = ()

    # --- joint and passive range (analysed convention) ---
    range_min_deg: float = 0.0
    range_max_deg: float = 145.0
    rest_deg: float | None = None  # None: range_min_deg + 5

    # --- stretch reflex (Feldman: DSRT(w) = lambda - mu * w) ---
    lambda_deg: float = 250.0
    mu_s: float = 0.10
    reflex_delay_s: float = 0.025
    reflex_onset_uv: float = 30.0  # envelope (RMS) step at reflex onset (phasic, adapts)
    reflex_gain_uv_per_deg: float = 1.0  # envelope per degree of (angle + mu*w - lambda)
    reflex_rise_s: float = 0.005
    reflex_adaptation_s: float = 0.3  # decay of the onset step; of the graded part in the hold
    reflex_tonic_fraction: float = 0.1  # level both parts adapt to while past threshold
    reflex_release_s: float = 0.03  # envelope decay once below threshold
    # catch (Tardieu grade 2): the limb decelerates after reflex onset, then releases
    catch_depth: float = 0.0  # fractional velocity drop at the catch (0: no catch)
    catch_delay_s: float = 0.04  # electromechanical delay from EMG onset to resistance
    catch_duration_s: float = 0.15
    catch_min_velocity_deg_s: float = 60.0  # velocity when the resistance starts
    # clonus (Tardieu grades 3, 4)
    clonus_frequency_hz: float = 0.0  # 0: no clonus
    clonus_duration_s: float = 0.0
    clonus_sustained: bool = False
    clonus_min_velocity_deg_s: float = 150.0  # peak velocity of the stretch
    clonus_burst_uv: float = 80.0
    clonus_burst_sd_s: float = 0.012
    clonus_jitter_s: float = 0.004
    clonus_angle_deg: float = 2.0
    tardieu_v3_deg_s: float = 300.0  # the "as fast as possible" velocity used for the grade

    # --- H-reflex (recording channel 0; amplitudes peak-to-peak at unit channel gain) ---
    mmax_uv: float = 0.0  # 0: stimulation produces an artifact only
    m_i50_ma: float = 18.0
    m_slope_ma: float = 2.5
    hmax_mmax: float = 0.3
    h_up_i50_ma: float = 10.0
    h_up_slope_ma: float = 1.5
    h_down_i50_ma: float = 20.0
    h_down_slope_ma: float = 2.5
    m_latency_ms: float = 6.0
    m_duration_ms: float = 9.0
    m_phases: int = 2
    m_polarity: float = 1.0
    h_latency_ms: float = 30.0
    h_duration_ms: float = 12.0
    h_phases: int = 3
    h_polarity: float = -1.0
    m_cv: float = 0.03
    h_cv: float = 0.12
    m_latency_sd_ms: float = 0.1
    h_latency_sd_ms: float = 0.3
    # rate-dependent depression: H factor vs interval since the previous stimulus (log interp)
    depression_interval_s: tuple[float, ...] = (0.05, 0.5, 1.0, 2.0, 3.33, 5.0, 10.0, 20.0)
    depression_ratio: tuple[float, ...] = (0.1, 0.3, 0.45, 0.6, 0.72, 0.8, 0.93, 1.0)
    artifact_uv_per_ma: float = 1500.0
    artifact_tail_fraction: float = 0.4
    artifact_tail_s: float = 0.001
    artifact_slow_fraction: float = 0.002
    artifact_slow_s: float = 0.01
    artifact_channel_decay: float = 0.6
    h_test_m_fraction: float = 0.2  # M at the default test intensity, fraction of Mmax
    stim_range_ma: tuple[float, float] = (4.0, 40.0)

    # --- EMG ---
    tonic_emg_uv: float = 1.0  # background EMG (RMS) of every muscle at rest
    tonic_fluctuation: float = 0.25  # SD of the log of the slowly varying background level
    tonic_fluctuation_s: float = 1.0  # spacing of its random knots (linear in between)
    emg_band_hz: tuple[float, float] = (20.0, 450.0)  # 4th-order Butterworth band-pass
    emg_shape_hz: float = 120.0  # extra 2nd-order low-pass: spectrum median about 80 Hz (0: off)
    baseline_noise_uv: float = 2.0  # amplifier noise RMS (white)
    noise_scale: float = 1.0  # multiplies noise, powerline, motion artifact and pops
    mains_hz: float = 50.0
    powerline_uv: tuple[float, ...] = (6.0, 2.0, 1.0)  # fundamental, 3rd, 5th harmonic
    motion_artifact_uv: float = 40.0  # at 2000 deg/s^2 joint acceleration
    pops_per_min: float = 0.5  # per channel
    pop_uv: tuple[float, float] = (300.0, 1500.0)
    pop_decay_s: tuple[float, float] = (0.05, 0.3)
    crosstalk: float = 0.15  # fraction of each muscle seen by the neighbouring channels
    dc_offset_uv: float = 0.0  # SD of a constant per-channel electrode offset
    baseline_wander_uv: float = 0.0  # SD of a slow per-channel drift (knots every 2 s)
    ecg_uv: float = 0.0  # R-wave amplitude of ECG contamination (0: none)
    heart_rate_bpm: float = 70.0
    channel_gain_sd: float = 0.05
    emg_full_scale_uv: float = 10000.0  # ADC input range +/-; saturates beyond

    # --- goniometer ---
    goniometer_sign: int = 1
    goniometer_gain: float = 1.0
    goniometer_offset_deg: float = 0.0
    goniometer_noise_deg: float = 0.03
    angle_scale_deg: float = 0.02
    angle_offset_counts: int = 2048

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def rest_angle_deg(self) -> float:
        """The joint angle between stretches (deg)."""
        return self.range_min_deg + 5.0 if self.rest_deg is None else float(self.rest_deg)

    def to_dict(self) -> dict:
        """JSON-serialisable parameters."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


# time constants and durations that must be > 0 (s or ms)
_POSITIVE = (
    "reflex_rise_s", "reflex_adaptation_s", "reflex_release_s", "catch_duration_s",
    "clonus_burst_sd_s", "m_duration_ms", "h_duration_ms", "m_slope_ma", "h_up_slope_ma",
    "h_down_slope_ma", "artifact_tail_s", "artifact_slow_s", "tonic_fluctuation_s",
    "mains_hz", "tardieu_v3_deg_s", "angle_scale_deg", "emg_full_scale_uv", "goniometer_gain",
)  # fmt: skip
# delays, spreads and amplitudes that must be >= 0
_NON_NEGATIVE = (
    "mu_s", "reflex_delay_s", "reflex_onset_uv", "reflex_gain_uv_per_deg", "catch_delay_s",
    "catch_min_velocity_deg_s", "clonus_duration_s", "clonus_min_velocity_deg_s",
    "clonus_burst_uv", "clonus_jitter_s", "clonus_angle_deg", "mmax_uv", "m_latency_ms",
    "h_latency_ms", "m_cv", "h_cv", "m_latency_sd_ms", "h_latency_sd_ms", "artifact_uv_per_ma",
    "artifact_slow_fraction", "tonic_emg_uv", "tonic_fluctuation", "emg_shape_hz",
    "baseline_noise_uv", "noise_scale", "motion_artifact_uv", "pops_per_min", "dc_offset_uv",
    "baseline_wander_uv", "ecg_uv", "goniometer_noise_deg",
)  # fmt: skip
# fractions: (name, low, high), inclusive unless noted in _validate
_FRACTIONS = (
    ("reflex_tonic_fraction", 0.0, 1.0),
    ("hmax_mmax", 0.0, 1.0),
    ("artifact_tail_fraction", 0.0, 1.0),
    ("artifact_channel_decay", 0.0, 1.0),
    ("crosstalk", 0.0, 0.5),
    ("channel_gain_sd", 0.0, 0.3),
)


def _validate(p: Profile) -> None:
    """Check every field; raise ProfileError with a one-line message on the first bad one."""

    def bad(msg: str) -> None:
        raise ProfileError(f"profile {p.name!r}: {msg}")

    for f in dataclasses.fields(p):
        v = getattr(p, f.name)
        vals = v if isinstance(v, tuple) else (v,)
        for x in vals:
            if isinstance(x, (int, float)) and not isinstance(x, bool) and not math.isfinite(x):
                bad(f"{f.name} must be finite, got {v!r}")
            if f.name != "references" and isinstance(v, tuple) and isinstance(x, str):
                bad(f"{f.name} must hold numbers, got {v!r}")
    if p.kind not in ("stretch", "hreflex"):
        bad(f"kind must be 'stretch' or 'hreflex', got {p.kind!r}")
    if not p.range_max_deg > p.range_min_deg:
        bad("range_max_deg must exceed range_min_deg")
    if not (p.range_min_deg <= p.rest_angle_deg < p.range_max_deg):
        bad("rest_deg must lie inside the passive range")
    for name in _POSITIVE:
        if not getattr(p, name) > 0:
            bad(f"{name} must be > 0, got {getattr(p, name)!r}")
    for name in _NON_NEGATIVE:
        if not getattr(p, name) >= 0:
            bad(f"{name} must be >= 0, got {getattr(p, name)!r}")
    for name, lo, hi in _FRACTIONS:
        if not lo <= getattr(p, name) <= hi:
            bad(f"{name} must lie in [{lo:g}, {hi:g}], got {getattr(p, name)!r}")
    if not 0 <= p.catch_depth < 1:
        bad(f"catch_depth must be in [0, 1), got {p.catch_depth!r}")
    if not 0 < p.h_test_m_fraction < 1:
        bad(f"h_test_m_fraction must lie in (0, 1), got {p.h_test_m_fraction!r}")
    if p.clonus_frequency_hz and not 1.0 <= p.clonus_frequency_hz <= 20.0:
        bad("clonus_frequency_hz must be 0 (none) or within 1-20 Hz")
    if p.clonus_frequency_hz and not p.clonus_duration_s > 0:
        bad("clonus_duration_s must be > 0 when clonus_frequency_hz is set")
    if len(p.depression_interval_s) != len(p.depression_ratio) or len(p.depression_ratio) < 2:
        bad("depression_interval_s and depression_ratio need the same length (>= 2)")
    if p.depression_interval_s[0] <= 0 or any(
        b <= a
        for a, b in zip(p.depression_interval_s[:-1], p.depression_interval_s[1:], strict=True)
    ):
        bad("depression_interval_s must be > 0 and increase")
    if any(not 0 <= r <= 1.5 for r in p.depression_ratio):
        bad("depression_ratio values must lie in [0, 1.5]")
    if p.m_phases not in (2, 3) or p.h_phases not in (2, 3):
        bad("m_phases and h_phases must be 2 or 3")
    if p.m_polarity == 0 or p.h_polarity == 0:
        bad("m_polarity and h_polarity must be non-zero (+1 or -1)")
    if p.m_latency_ms + p.m_duration_ms > p.h_latency_ms + 1e-9 and p.mmax_uv > 0:
        bad("the M-wave must end before the H-wave starts (m_latency_ms + m_duration_ms)")
    if len(p.stim_range_ma) != 2 or not 0 <= p.stim_range_ma[0] < p.stim_range_ma[1]:
        bad("stim_range_ma must be (low, high) with 0 <= low < high")
    if len(p.pop_uv) != 2 or not 0 <= p.pop_uv[0] <= p.pop_uv[1]:
        bad("pop_uv must be (low, high) with 0 <= low <= high")
    if len(p.pop_decay_s) != 2 or not 0 < p.pop_decay_s[0] <= p.pop_decay_s[1]:
        bad("pop_decay_s must be (low, high) with 0 < low <= high")
    if any(a < 0 for a in p.powerline_uv):
        bad("powerline_uv amplitudes must be >= 0")
    if p.goniometer_sign not in (1, -1):
        bad("goniometer_sign must be +1 or -1")
    if not 20.0 <= p.heart_rate_bpm <= 240.0:
        bad("heart_rate_bpm must lie within 20-240")
    if len(p.emg_band_hz) != 2 or not 0 < p.emg_band_hz[0] < p.emg_band_hz[1]:
        bad("emg_band_hz must be (low, high) with 0 < low < high")


_ELBOW = dict(muscle="elbow_flexors", range_min_deg=0.0, range_max_deg=145.0)
_FELDMAN = (
    "Calota A, Feldman AG, Levin MF (2008) Clin Neurophysiol 119:2329",
    "Levin MF, Feldman AG (1994) Brain Res 657:23",
)
_HEALTHY_DEPRESSION = dict(
    depression_interval_s=(0.05, 0.5, 1.0, 2.0, 3.33, 5.0, 10.0, 20.0),
    depression_ratio=(0.1, 0.3, 0.45, 0.6, 0.72, 0.8, 0.93, 1.0),
)
# chronic stroke (domain.md): 0.74 at 1 Hz, 0.84 at 0.3 Hz, 0.86 at 0.2 Hz, 0.93 at 0.1 Hz
_SPASTIC_DEPRESSION = dict(
    depression_interval_s=(0.05, 0.5, 1.0, 3.33, 5.0, 10.0, 20.0),
    depression_ratio=(0.3, 0.62, 0.74, 0.84, 0.86, 0.93, 1.0),
)
_SOLEUS = dict(
    kind="hreflex",
    muscle="soleus",
    range_min_deg=50.0,
    range_max_deg=110.0,
    mmax_uv=6000.0,
    m_i50_ma=18.0,
    m_slope_ma=2.5,
    h_up_i50_ma=11.0,
    h_up_slope_ma=1.5,
    h_down_i50_ma=21.0,
    h_down_slope_ma=2.5,
    m_latency_ms=6.0,
    m_duration_ms=9.0,
    h_latency_ms=30.0,
    h_duration_ms=12.0,
    tonic_emg_uv=5.0,
    stim_range_ma=(4.0, 40.0),
)

_PROFILES: dict[str, dict] = {
    "healthy": dict(
        **_ELBOW,
        description="healthy elbow flexors: threshold beyond the range, no stretch reflex",
        lambda_deg=250.0,
        mu_s=0.10,
        references=_FELDMAN,
    ),
    "mild_elbow": dict(
        **_ELBOW,
        description="mild spastic elbow flexors: late reflex, EMG without catch (Tardieu 1)",
        lambda_deg=88.0,
        mu_s=0.13,
        reflex_onset_uv=20.0,
        reflex_gain_uv_per_deg=1.0,
        references=_FELDMAN,
    ),
    "moderate_elbow": dict(
        **{**_ELBOW, "range_max_deg": 140.0},
        description="moderate spastic elbow flexors: catch then release (Tardieu 2)",
        lambda_deg=60.0,
        mu_s=0.25,
        catch_depth=0.6,
        references=_FELDMAN,
    ),
    "severe_elbow": dict(
        **{**_ELBOW, "range_max_deg": 130.0},
        description="severe spastic elbow flexors: early reflex, strong catch (Tardieu 2)",
        lambda_deg=40.0,
        mu_s=0.30,
        reflex_onset_uv=50.0,
        reflex_gain_uv_per_deg=1.8,
        catch_depth=0.8,
        catch_min_velocity_deg_s=30.0,
        tonic_emg_uv=2.0,
        references=_FELDMAN,
    ),
    "plantarflexor_clonus": dict(
        muscle="plantar_flexors",
        range_min_deg=45.0,
        range_max_deg=110.0,
        description="spastic plantar flexors, fatigable clonus after fast stretches (Tardieu 3)",
        lambda_deg=72.0,
        mu_s=0.10,
        reflex_delay_s=0.040,
        catch_depth=0.5,
        clonus_frequency_hz=6.0,
        clonus_duration_s=5.0,
        clonus_min_velocity_deg_s=100.0,
        tardieu_v3_deg_s=200.0,
        references=(
            *_FELDMAN,
            "Germanotta M et al. (2017) pediAnklebot TSRT",
            "Boyd RN, Graham HK (1999) Eur J Neurol 6:s23 (Tardieu scale)",
        ),
    ),
    "plantarflexor_clonus_sustained": dict(
        muscle="plantar_flexors",
        range_min_deg=45.0,
        range_max_deg=110.0,
        description="spastic plantar flexors with sustained clonus (Tardieu 4)",
        lambda_deg=66.0,
        mu_s=0.10,
        reflex_delay_s=0.040,
        catch_depth=0.5,
        clonus_frequency_hz=5.5,
        clonus_duration_s=15.0,
        clonus_sustained=True,
        clonus_min_velocity_deg_s=100.0,
        tardieu_v3_deg_s=200.0,
        references=(*_FELDMAN, "Boyd RN, Graham HK (1999) Eur J Neurol 6:s23 (Tardieu scale)"),
    ),
    "soleus_healthy": dict(
        **_SOLEUS,
        **_HEALTHY_DEPRESSION,
        description="healthy soleus H-reflex (tibial nerve): Hmax/Mmax 0.3, strong depression",
        hmax_mmax=0.3,
        references=(
            "Koelman JH et al. (1993) JNNP 56:776",
            "Brinkworth RS et al. (2007) J Neurosci Methods 162:1",
            "Aymard C et al. (2000) Brain 123:1688",
        ),
    ),
    "soleus_spastic": dict(
        **{**_SOLEUS, "h_down_i50_ma": 24.0},
        **_SPASTIC_DEPRESSION,
        description="spastic soleus H-reflex (chronic stroke): Hmax/Mmax 0.6, weak depression",
        hmax_mmax=0.6,
        references=(
            "Koelman JH et al. (1993) JNNP 56:776",
            "Aymard C et al. (2000) Brain 123:1688",
            "domain.md: chronic stroke H2/H1 0.74/0.84/0.86/0.93 at 1/0.3/0.2/0.1 Hz",
        ),
    ),
    "fcr_healthy": dict(
        **_HEALTHY_DEPRESSION,
        kind="hreflex",
        muscle="flexor_carpi_radialis",
        range_min_deg=0.0,
        range_max_deg=140.0,
        description="healthy flexor carpi radialis H-reflex (median nerve): H latency 16 ms",
        mmax_uv=4000.0,
        hmax_mmax=0.15,
        m_i50_ma=12.0,
        m_slope_ma=1.8,
        h_up_i50_ma=7.5,
        h_up_slope_ma=1.0,
        h_down_i50_ma=14.0,
        h_down_slope_ma=1.8,
        m_latency_ms=3.5,
        m_duration_ms=7.0,
        h_latency_ms=16.0,
        h_duration_ms=9.0,
        tonic_emg_uv=4.0,
        artifact_uv_per_ma=2500.0,
        stim_range_ma=(2.0, 25.0),
        references=("domain.md: FCR H latency about 16 ms", "Koelman JH et al. (1993) JNNP 56:776"),
    ),
}

#: Goniometer errors (gain, offset_deg) of the ``<name>_uncalibrated`` variants: an
#: electrogoniometer read with its nominal scale, before the two-point calibration (gain within
#: 3 %, offset of a few degrees from the mounting). The named profiles themselves read the true
#: angle (gain 1, offset 0): neither tonuslab's validation harness nor the demo calibrates the
#: goniometer, so an error there would bias every validated angle (docs/simulator.md).
GONIOMETER_ERRORS: dict[str, tuple[float, float]] = {
    "healthy": (1.025, 2.0),
    "mild_elbow": (0.975, -2.5),
    "moderate_elbow": (0.97, -3.0),
    "severe_elbow": (1.03, 3.5),
    "plantarflexor_clonus": (0.98, 4.0),
    "plantarflexor_clonus_sustained": (1.02, -3.5),
}
for _name, (_gain, _offset) in GONIOMETER_ERRORS.items():
    _PROFILES[f"{_name}_uncalibrated"] = dict(
        _PROFILES[_name],
        description=(
            f"{_PROFILES[_name]['description']}; goniometer not calibrated "
            f"(gain {_gain:g}, offset {_offset:+g} deg)"
        ),
        goniometer_gain=_gain,
        goniometer_offset_deg=_offset,
    )

PROFILE_NAMES: tuple[str, ...] = tuple(_PROFILES)
_FIELDS = {f.name for f in dataclasses.fields(Profile)}


def get_profile(name: str | Profile, **overrides) -> Profile:
    """Return a named profile, with any field overridden by keyword.

    Parameters
    ----------
    name : str or Profile
        One of :data:`PROFILE_NAMES`, or a :class:`Profile` to copy.
    **overrides
        Field values to replace (see :class:`Profile`), e.g. ``lambda_deg=70.0``.

    Raises
    ------
    ProfileError
        Unknown name, unknown field or out-of-range value.
    """
    if isinstance(name, Profile):
        base = name
    else:
        if name not in _PROFILES:
            raise ProfileError(
                f"unknown profile {name!r}; choose one of: {', '.join(PROFILE_NAMES)}"
            )
        base = Profile(name=name, **_PROFILES[name])
    unknown = sorted(set(overrides) - _FIELDS)
    if unknown:
        raise ProfileError(
            f"unknown profile parameter {unknown[0]!r}; see virtual_patient.Profile for the fields"
        )
    for key, value in list(overrides.items()):
        if isinstance(value, list):
            overrides[key] = tuple(value)
    return dataclasses.replace(base, **overrides) if overrides else base
