"""Spasticity profile of one muscle: each measured component with its uncertainty, reference
values, sources and, where the literature gives one, the smallest real difference (SRD).

The profile is built from an analysis summary (:func:`tonuslab.analysis.summarize`, the keys of
``tonuslab analyze --json``). It never invents a number: a component whose metric is missing is
listed with ``value=None`` and the reason. No composite index is computed and nothing is mapped to
Ashworth scores (see ``docs/profile.md`` for why).

Reliability arithmetic (domain guide; Weir 2005): ``SEM = SD * sqrt(1 - ICC)`` and
``SRD = 2.77 * SEM`` (= 1.96 * sqrt(2) * SEM, the 95 % limit for the difference of two
measurements).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

#: Multiplier from SEM to the smallest real difference (1.96 * sqrt(2)).
SRD_FACTOR = 2.77

#: Muscles whose stretch is measured at each joint (lower-case names, prefixes accepted).
_JOINT_OF_MUSCLE = {
    "biceps": "elbow",
    "brachioradialis": "elbow",
    "brachialis": "elbow",
    "elbow_flexor": "elbow",
    "triceps": "elbow",
    "soleus": "ankle",
    "gastrocnemius": "ankle",
    "plantarflexor": "ankle",
    "triceps_surae": "ankle",
    "tibialis": "ankle",
    "fcr": "wrist",
    "flexor_carpi": "wrist",
    "wrist_flexor": "wrist",
}

SOURCES = {
    "calota2008": "Calota A, Feldman AG, Levin MF (2008) Clin Neurophysiol 119:2329-2337",
    "levin2024": "Levin MF, Piscitelli D, Khayat J (2024) Clin Neurophysiol 165:138",
    "blanchette2016": "Blanchette AK et al. (2016) Phys Ther 96:687 (inter-evaluator "
    "reliability, 28 people after stroke, ICC(2,1) 0.851)",
    "review2025": "Metric properties of the TSRT as a measure of spasticity: systematic review "
    "with meta-analysis (2025) Arch Physiother, doi:10.33393/aop.2025.3428 (pooled ICC "
    "0.55-0.69)",
    "weir2005": "Weir JP (2005) J Strength Cond Res 19:231 (SEM and minimal difference)",
    "tardieu": "Tardieu scale as summarised by Haugh AB et al. (2006) Disabil Rehabil 28:899",
    "koelman1993": "Koelman JHTM et al. (1993) J Neurol Neurosurg Psychiatry 56:776",
    "barOn2013": "Bar-On L et al. (2013) Gait Posture 38:141 (RMS-EMG change with velocity)",
    "domain_guide": "tonuslab domain guide (summary of published values; see docs/profile.md)",
    "crone1989": "Crone C, Nielsen J (1989) Exp Brain Res 78:28 (post-activation depression of "
    "the soleus H-reflex lasts > 8 s)",
    "shields2011": "Shields RK, Dudley-Javoroski S, Oza PD (2011) Neurosci Lett 499:88 "
    "(H-reflex depression at 0.1-5 Hz after spinal cord injury)",
}


def joint_of_muscle(muscle: str | None) -> str | None:
    """Joint whose movement stretches ``muscle`` ("elbow", "ankle", "wrist"), or None."""
    if not muscle:
        return None
    name = str(muscle).lower().replace(" ", "_").replace("-", "_")
    for prefix, joint in _JOINT_OF_MUSCLE.items():
        if name.startswith(prefix) or prefix in name:
            return joint
    return None


def srd_from_icc(sd: float, icc: float) -> float:
    """Smallest real difference from a between-subject SD and a test-retest ICC.

    ``SEM = sd * sqrt(1 - icc)``; ``SRD = 2.77 * SEM``.

    >>> round(srd_from_icc(13.0, 0.85), 1)
    13.9
    """
    if not 0.0 <= icc <= 1.0:
        raise ValueError(f"icc must be within [0, 1], got {icc}")
    return SRD_FACTOR * sd * math.sqrt(1.0 - icc)


#: Smallest real differences by (component, joint), with how they were obtained.
SRD_TABLE: dict[tuple[str, str], dict] = {
    ("tsrt_deg", "ankle"): {
        "srd": srd_from_icc(13.0, 0.85),
        "how": "ankle plantar-flexor TSRT after stroke, 66 +/- 13 deg with ICC(2,1) 0.85 "
        "(inter-evaluator, same day; Blanchette 2016): SEM = 13*sqrt(0.15) = 5.0 deg, "
        "SRD = 2.77*SEM (Weir 2005)",
        "sources": ["blanchette2016", "weir2005", "domain_guide"],
    },
    ("tsrt_deg", "elbow"): {
        "srd": 32.0,
        "how": "MDC95 of elbow-flexor TSRT after stroke, 32 deg with ICC 0.65, as quoted in the "
        "domain guide and used as is; we have not verified the primary study (Calota 2008 is the "
        "elbow protocol; the 2025 systematic review pools ICC 0.55-0.69 with high measurement "
        "error)",
        "sources": ["domain_guide", "review2025", "calota2008"],
    },
}


@dataclass
class Component:
    """One component of the profile.

    Attributes
    ----------
    key : str
        Summary key the value comes from (e.g. ``"tsrt_deg"``).
    label : str
        Human-readable name.
    value : float | int | bool | dict | None
        The measured value (None when not measured, with ``note`` saying why).
    unit : str
        Unit of ``value`` ("deg", "s", "" for ratios and grades).
    uncertainty : str | None
        The uncertainty as text (e.g. ``"95% CI 40.1 to 52.3 deg"``) or None if none is available.
    ci : list[float] | dict | None
        The 95 % interval when the metric provides one (per rate, ``{rate: [low, high]}``, for
        rate-dependent depression).
    reference : str
        Reference values with their population.
    sources : list[str]
        Citations (full text).
    srd : float | None
        Smallest real difference in ``unit`` where the literature gives one, else None.
    srd_how : str | None
        How the SRD was derived.
    srd_sources : list[str]
        Citations (full text) of the SRD's reliability figures and arithmetic.
    interpretation : str
        What the value says, within what the literature supports.
    validated : bool
        False when no validated reference or cut-off exists for this component.
    note : str
        Why a value is missing, or other caveats.
    """

    key: str
    label: str
    value: object
    unit: str
    uncertainty: str | None
    ci: list | None
    reference: str
    sources: list[str]
    srd: float | None = None
    srd_how: str | None = None
    srd_sources: list[str] = field(default_factory=list)
    interpretation: str = ""
    validated: bool = False
    note: str = ""


@dataclass
class Profile:
    """The spasticity profile of one muscle in one session.

    Attributes
    ----------
    muscle, joint : str | None
        Tested muscle and the joint that stretches it.
    components : list[Component]
        One entry per component, in a fixed order (TSRT, mu, Tardieu grade, R2-R1, EMG gain,
        Hmax/Mmax, rate-dependent depression).
    composite : None
        Always None: no composite index is validated (see ``docs/profile.md``).
    not_validated : list[str]
        Plain statements of what is not validated.
    """

    muscle: str | None
    joint: str | None
    components: list[Component] = field(default_factory=list)
    composite: None = None
    not_validated: list[str] = field(default_factory=list)

    def component(self, key: str) -> Component:
        """The component whose summary key is ``key``."""
        for c in self.components:
            if c.key == key:
                return c
        raise KeyError(key)

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)

    def format_text(self) -> str:
        """The profile as a plain-text table."""
        lines = [f"Spasticity profile: muscle {self.muscle or '?'} (joint {self.joint or '?'})"]
        for c in self.components:
            lines.append(f"  {c.label:<34} {_fmt_value(c.value, c.unit):<22} {c.uncertainty or ''}")
            detail = c.interpretation or c.note
            if detail:
                lines.append(f"      {detail}")
            if c.srd is not None:
                lines.append(f"      smallest real difference {c.srd:.1f} {c.unit}: {c.srd_how}")
        lines.append("  Composite index: none (no validated composite exists).")
        for text in self.not_validated:
            lines.append(f"  Not validated: {text}")
        return "\n".join(lines)


def _fmt_value(value, unit: str) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k} Hz: {_num(v)}" for k, v in value.items()) or "not measured"
    if isinstance(value, float):
        return f"{_num(value)} {unit}".strip()
    return f"{value} {unit}".strip()


def _num(v) -> str:
    if v is None:
        return "-"
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(v):
        return "nan"
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"


def _ci_text(ci, unit: str) -> str | None:
    if ci is None:
        return None
    try:
        lo, hi = float(ci[0]), float(ci[1])
    except (TypeError, ValueError, IndexError):
        return None
    if math.isnan(lo) or math.isnan(hi):
        return None
    return f"95% CI {_num(lo)} to {_num(hi)} {unit}".strip()


def _per_rate_ci_text(values: dict | None, cis: dict | None) -> str | None:
    """``95% CI 1 Hz: 0.62 to 0.81; ...`` for the rates that have an interval."""
    if not values or not cis:
        return None
    parts = []
    for rate in values:
        text = _ci_text(cis.get(rate), "")
        if text:
            parts.append(f"{rate} Hz: {text.removeprefix('95% CI ')}")
    return ("95% CI " + "; ".join(parts)) if parts else None


def build_profile(summary: dict) -> Profile:
    """Build the spasticity profile from an analysis summary.

    Parameters
    ----------
    summary : dict
        Output of :func:`tonuslab.analysis.summarize` (keys documented in ``docs/cli.md``).
        Missing keys are treated as "not measured".

    Returns
    -------
    Profile
    """
    muscle = summary.get("muscle")
    joint = summary.get("joint") or joint_of_muscle(muscle)
    comps = [
        *_tsrt_components(summary, joint),
        *_mu_components(summary, joint),
        *_tardieu_components(summary, joint),
        *_gain_components(summary, joint),
        *_hmax_mmax_components(summary, joint),
        *_depression_components(summary, joint),
    ]

    not_validated = [
        "no composite spasticity index is computed: none is validated",
        "no value is mapped to (Modified) Ashworth scores: the literature supports no mapping",
        "Hmax/Mmax and depression have no validated cut-off for spasticity",
        "SRDs exist only for TSRT (elbow, ankle); other changes cannot be called real yet",
    ]
    return Profile(muscle=muscle, joint=joint, components=comps, not_validated=not_validated)


def _tsrt_components(summary: dict, joint: str | None) -> list[Component]:
    """The profile's component(s): TSRT against the passive range."""
    comps: list[Component] = []
    tsrt = summary.get("tsrt_deg")
    rng = summary.get("passive_range_deg")
    inside = summary.get("tsrt_inside_range")
    srd = SRD_TABLE.get(("tsrt_deg", joint or ""))
    if tsrt is None:
        interp = ""
        note = "no TSRT: " + (summary.get("stretch_reason") or "no stretch reflex analysis")
    else:
        note = ""
        if inside is True:
            interp = (
                "TSRT lies inside the joint's range: the stretch reflex is recruited within the "
                "range of movement, the sign of spasticity in the Montreal approach"
            )
        elif inside is False:
            interp = (
                "TSRT lies outside the joint's range, as in people without spasticity "
                "(reflex not recruited within the range at rest)"
            )
        else:
            interp = "range not known: cannot say whether TSRT lies inside it"
        if rng:
            interp += f" (range {_num(rng[0])} to {_num(rng[1])} deg)"
    stretch = summary.get("stretch_reflex") or {}
    by_detector = stretch.get("detector_tsrt_deg") or {}
    if tsrt is not None and by_detector:
        spread = stretch.get("tsrt_spread_deg")
        interp += (
            f". Detector used: {stretch.get('detector') or summary.get('detector') or '?'}; "
            "TSRT by detector: "
            + ", ".join(f"{k} {_num(v)}" for k, v in by_detector.items())
            + (f" deg (spread {_num(spread)} deg)" if spread is not None else " deg")
        )
    comps.append(
        Component(
            key="tsrt_deg",
            label="TSRT (tonic stretch reflex threshold)",
            value=tsrt,
            unit="deg",
            uncertainty=_ci_text(summary.get("tsrt_ci_deg"), "deg"),
            ci=summary.get("tsrt_ci_deg"),
            reference="elbow flexors after stroke: lambda 33-88 deg; ankle: 66 +/- 13 deg; "
            "healthy: outside the biomechanical range",
            sources=[SOURCES["calota2008"], SOURCES["levin2024"], SOURCES["blanchette2016"]],
            srd=None if srd is None else round(srd["srd"], 2),
            srd_how=None if srd is None else srd["how"],
            srd_sources=[] if srd is None else [SOURCES[k] for k in srd["sources"]],
            interpretation=interp,
            validated=True,
            note=note or ("" if srd else "no published SRD for this joint"),
        )
    )
    return comps


def _mu_components(summary: dict, joint: str | None) -> list[Component]:
    """The profile's component(s): mu."""
    comps: list[Component] = []
    mu = summary.get("mu_s")
    comps.append(
        Component(
            key="mu_s",
            label="mu (velocity sensitivity of DSRT)",
            value=mu,
            unit="s",
            uncertainty=_ci_text(summary.get("mu_ci_s"), "s")
            or (f"fit r2 {_num(summary.get('r2'))}" if summary.get("r2") is not None else None),
            ci=summary.get("mu_ci_s"),
            reference="elbow flexors after stroke: 0.13-0.36 s",
            sources=[SOURCES["calota2008"]],
            interpretation="larger mu = DSRT falls faster with stretch velocity",
            validated=False,
            note="no published SRD or cut-off for mu",
        )
    )
    return comps


def _tardieu_components(summary: dict, joint: str | None) -> list[Component]:
    """The profile's component(s): Tardieu grade and R2 - R1."""
    comps: list[Component] = []
    grade = summary.get("tardieu_grade")
    r1, r2 = summary.get("tardieu_r1_deg"), summary.get("tardieu_r2_deg")
    comps.append(
        Component(
            key="tardieu_grade",
            label="Tardieu quality grade X (0-4)",
            value=grade,
            unit="",
            uncertainty=None,
            ci=None,
            reference="0 no resistance, 1 slight, 2 catch and release, 3 fatigable clonus "
            "(<10 s), 4 unfatigable clonus (>10 s); Tardieu's 5 (joint immovable) cannot come "
            "from a measured stretch and is never given",
            sources=[SOURCES["tardieu"]],
            interpretation="instrumented grade from angle and EMG (catch = maximal deceleration)",
            validated=False,
            note="instrumented grading is not validated against clinical Tardieu grading",
        )
    )
    dyn = summary.get("tardieu_r2_minus_r1_deg")
    if dyn is None and r1 is not None and r2 is not None:
        dyn = float(r2) - float(r1)
    dyn_ci = summary.get("tardieu_r2_minus_r1_ci_deg")
    r1_ci, r2_ci = summary.get("tardieu_r1_ci_deg"), summary.get("tardieu_r2_ci_deg")
    parts = []
    for name, v, ci in (("R1", r1, r1_ci), ("R2", r2, r2_ci)):
        if v is not None:
            ci_text = _ci_text(ci, "deg")
            parts.append(f"{name} {_num(v)} deg" + (f" ({ci_text})" if ci_text else ""))
    ci_how = summary.get("stretch_ci_method")
    comps.append(
        Component(
            key="tardieu_r2_minus_r1_deg",
            label="Tardieu R2 - R1 (dynamic component)",
            value=dyn,
            unit="deg",
            uncertainty=_ci_text(dyn_ci, "deg"),
            ci=dyn_ci,
            reference="R1 = catch angle at fast stretch, R2 = slow passive range; larger "
            "R2 - R1 = larger dynamic (reflex) component",
            sources=[SOURCES["tardieu"]],
            interpretation=", ".join(parts)
            + (f"; intervals: {ci_how}" if ci_how and (dyn_ci or r1_ci or r2_ci) else ""),
            validated=False,
            note="no SRD for instrumented R2 - R1"
            + ("" if dyn is None or dyn_ci else "; no interval (too few slow or fast stretches)"),
        )
    )
    return comps


def _gain_components(summary: dict, joint: str | None) -> list[Component]:
    """The profile's component(s): EMG gain."""
    comps: list[Component] = []
    comps.append(
        Component(
            key="emg_gain",
            label="EMG gain (high vs low velocity)",
            value=summary.get("emg_gain"),
            unit="",
            uncertainty=_ci_text(summary.get("emg_gain_ci"), ""),
            ci=summary.get("emg_gain_ci"),
            reference="Leuven approach: change of RMS-EMG from low- to high-velocity stretch; "
            "no normative values",
            sources=[SOURCES["barOn2013"]],
            interpretation="ratio of mean stretch RMS-EMG, fast / slow stretches"
            + (f"; interval: {summary['stretch_ci_method']}" if summary.get("emg_gain_ci") else ""),
            validated=False,
            note="no reference range or SRD"
            + (
                "; no interval (too few clean slow or fast stretches)"
                if summary.get("emg_gain") is not None and not summary.get("emg_gain_ci")
                else ""
            ),
        )
    )
    return comps


def _hmax_mmax_components(summary: dict, joint: str | None) -> list[Component]:
    """The profile's component(s): Hmax/Mmax."""
    comps: list[Component] = []
    ratio = summary.get("hmax_mmax")
    comps.append(
        Component(
            key="hmax_mmax",
            label="Hmax/Mmax",
            value=ratio,
            unit="",
            uncertainty=_ci_text(summary.get("hmax_mmax_ci"), ""),
            ci=summary.get("hmax_mmax_ci"),
            reference="about 0.3 in young adults (soleus), lower with age; higher with reflex "
            "hyperexcitability; no validated spastic cut-off",
            sources=[SOURCES["koelman1993"]],
            interpretation="" if ratio is None else "report only: no cut-off exists",
            validated=False,
            note="" if ratio is not None else "no H-reflex recruitment analysis",
        )
    )
    return comps


def _depression_components(summary: dict, joint: str | None) -> list[Component]:
    """The profile's component(s): rate-dependent depression."""
    comps: list[Component] = []
    dep = summary.get("rate_dependent_depression") or None
    dep_ci = summary.get("rate_dependent_depression_ci") or None
    # the chronic-stroke H2/H1 figures: one definition, in dsp.hreflex.presets (imported here,
    # not at module level, to keep `import tonuslab` light)
    from dsp.hreflex.presets import STROKE_H2_H1, STROKE_H2_H1_PER_0P1HZ

    withheld = summary.get("depression_not_interpretable")
    raw = ", ".join(f"{v:g} at {k} Hz" for k, v in STROKE_H2_H1.items())
    scaled = ", ".join(f"{v:g} at {k} Hz" for k, v in STROKE_H2_H1_PER_0P1HZ.items())
    comps.append(
        Component(
            key="rate_dependent_depression",
            label="Rate-dependent depression (H at rate / H at 0.1 Hz)",
            value=None if withheld else dep,
            unit="",
            uncertainty=None if withheld else _per_rate_ci_text(dep, dep_ci),
            ci=None if withheld else dep_ci,
            reference=f"chronic stroke H2/H1 (second H / first H at each rate, not normalised): "
            f"{raw}; on this scale (divided by the 0.1 Hz value): {scaled}; less depression "
            "= higher ratio; 0.1 Hz is the baseline rate (depression lasts > 8 s)",
            sources=[SOURCES["domain_guide"], SOURCES["crone1989"], SOURCES["shields2011"]],
            validated=False,
            note=f"not interpretable: {withheld}"
            if withheld
            else "no healthy normative curve or SRD in our sources; the stroke figures' primary "
            "source is not identified in our guide",
        )
    )
    return comps
