"""Muscle presets (search ranges for the M- and H-waves) and published reference values.

Every number here carries its source. The presets bound where the analysis *looks* for each wave;
the windows themselves are then located from the data (see :mod:`dsp.hreflex.waves`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class MusclePreset:
    """Where to look for the M- and H-waves of one muscle, in ms after the stimulus artifact.

    Attributes
    ----------
    name : str
        Preset name (``"soleus"``, ``"fcr"``).
    m_search_ms : tuple of float
        (start, end) of the M-wave search range, ms after the artifact onset.
    h_search_ms : tuple of float
        (start, end) of the H-wave search range, ms after the artifact onset.
    epoch_ms : tuple of float
        (start, end) of the epoch cut around each stimulus, ms (start negative).
    background_ms : tuple of float
        (start, end) of the background-EMG bin before the stimulus, ms (a 50 ms bin by default).
    quick_m_ms, quick_h_ms : tuple of float
        (start, end) of the recorder's quick M and H peak-to-peak windows, ms after the pulse's
        first EMG sample (``acquire.protocols.hreflex``: they choose the test intensity and the
        centre of the fine ladder while recording). They start later than the search ranges
        because the recorder reads the raw EMG, artifact included, and nothing is located from
        the data. Not analysis settings: :meth:`to_dict` leaves them out.
    """

    name: str
    m_search_ms: tuple[float, float]
    h_search_ms: tuple[float, float]
    epoch_ms: tuple[float, float] = (-100.0, 100.0)
    background_ms: tuple[float, float] = (-55.0, -5.0)
    quick_m_ms: tuple[float, float] = (4.0, 20.0)
    quick_h_ms: tuple[float, float] = (22.0, 50.0)

    def to_dict(self) -> dict:
        """The analysis settings (the quick recording windows are not among them), JSON-ready."""
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in asdict(self).items()
            if k not in _RECORDING_FIELDS
        }

    def quick_windows_ms(self) -> dict[str, tuple[float, float]]:
        """The recorder's quick windows, ``{"m": (start, end), "h": (start, end)}``, ms."""
        return {"m": self.quick_m_ms, "h": self.quick_h_ms}


#: Fields of :class:`MusclePreset` that belong to the recording, not to the analysis.
_RECORDING_FIELDS = ("quick_m_ms", "quick_h_ms")


#: Presets by muscle name. Aliases: ``flexor_carpi_radialis`` = ``fcr``.
#: Soleus (tibial nerve in the popliteal fossa): M a few ms to ~15 ms, H about 30 ms
#: (30.8 +/- 2.6 ms at 60-88 years, scales with leg length). FCR (median nerve at the elbow):
#: H about 16 ms. Search ranges are deliberately wide; the windows are located from the data.
#: This is the one table of M/H timing: the analysis reads the search ranges, the recorder's
#: ``hreflex`` runner the quick windows (the FCR H-wave, ~16 ms, lies inside the soleus quick M
#: window, so the recorder must know the muscle).
MUSCLE_PRESETS: dict[str, MusclePreset] = {
    "soleus": MusclePreset(
        "soleus", m_search_ms=(1.5, 20.0), h_search_ms=(20.0, 50.0),
        quick_m_ms=(4.0, 20.0), quick_h_ms=(22.0, 50.0),
    ),
    "fcr": MusclePreset(
        "fcr", m_search_ms=(1.0, 11.0), h_search_ms=(11.0, 30.0), epoch_ms=(-100.0, 60.0),
        quick_m_ms=(2.5, 11.0), quick_h_ms=(12.0, 30.0),
    ),
}  # fmt: skip
MUSCLE_ALIASES = {"flexor_carpi_radialis": "fcr", "sol": "soleus"}

#: Muscles recorded with the preset of another (name fragment -> preset). The gastrocnemii share
#: the tibial-nerve H-reflex of soleus (same nerve, same stimulation site, similar latencies).
_PRESET_OF_MUSCLE = (
    ("flexor_carpi_radialis", "fcr"),
    ("fcr", "fcr"),
    ("soleus", "soleus"),
    ("gastrocnemius", "soleus"),
    ("gastrocnemii", "soleus"),
    ("triceps_surae", "soleus"),
    ("sol", "soleus"),
)


def preset_for_muscle(muscle: str | None) -> str | None:
    """The preset name for a recorded muscle name, or None when no preset fits.

    Matches name fragments, so ``"Soleus (left)"``, ``"medial gastrocnemius"`` and
    ``"flexor carpi radialis R"`` are recognised: soleus, gastrocnemius and triceps surae get
    ``"soleus"``; flexor carpi radialis (``fcr``) gets ``"fcr"``.

    Parameters
    ----------
    muscle : str or None
        Muscle name as recorded (any case, spaces, hyphens or underscores).

    Returns
    -------
    str or None
        ``"soleus"``, ``"fcr"`` or None (unknown or missing muscle).
    """
    if not muscle:
        return None
    key = "_".join(
        str(muscle).lower().replace("-", " ").replace("_", " ").replace("(", " ").split()
    )
    key = key.replace(")", "")
    tokens = key.split("_")
    for fragment, preset in _PRESET_OF_MUSCLE:
        if fragment == "sol" or fragment == "fcr":
            if fragment in tokens:
                return preset
        elif fragment in key:
            return preset
    return None


def get_preset(muscle: str) -> MusclePreset:
    """Return the preset for ``muscle`` (case-insensitive; aliases and the muscles of
    :func:`preset_for_muscle`, e.g. gastrocnemius -> soleus, accepted).

    Raises
    ------
    dsp.SignalError
        When the muscle has no preset (the message lists the known ones).
    """
    from dsp.errors import SignalError

    key = str(muscle).lower().replace(" ", "_").replace("-", "_")
    key = MUSCLE_ALIASES.get(key, key)
    if key not in MUSCLE_PRESETS:
        key = preset_for_muscle(muscle) or key
    if key not in MUSCLE_PRESETS:
        known = ", ".join(sorted([*MUSCLE_PRESETS, *MUSCLE_ALIASES]))
        raise SignalError(
            f"muscle={muscle!r} has no preset; use one of {known} or pass m_window_ms and "
            "h_window_ms explicitly"
        )
    return MUSCLE_PRESETS[key]


#: Chronic-stroke H2/H1 (H of the conditioned, second pulse / H of the first, at each rate; keys
#: are rates in Hz written as the result's keys) as quoted in the tonuslab domain guide, whose
#: primary source is not identified there. Not normalised to 0.1 Hz: 0.93 at 0.1 Hz means some
#: depression remains at 10 s intervals.
STROKE_H2_H1 = {"0.1": 0.93, "0.2": 0.86, "0.3": 0.84, "1": 0.74}

#: The same figures on the scale of ``rate_dependent_depression`` (H at rate / H at 0.1 Hz):
#: each divided by the 0.1 Hz value (derived here, two decimals).
STROKE_H2_H1_PER_0P1HZ = {k: round(v / STROKE_H2_H1["0.1"], 2) for k, v in STROKE_H2_H1.items()}

_CRONE_1989 = (
    "Crone C, Nielsen J (1989) Methodological implications of the post activation depression of "
    "the soleus H-reflex in man. Exp Brain Res 78:28-32"
)
_SHIELDS_2011 = (
    "Shields RK, Dudley-Javoroski S, Oza PD (2011) Low-frequency H-reflex depression in trained "
    "human soleus after spinal cord injury. Neurosci Lett 499:88-92"
)
_GUIDE = "tonuslab domain guide (shared/guide/domain.md)"

#: Published reference values shown beside the numbers, keyed like the result's fields (rate and
#: interval keys written as the result writes them: "0.1", "1", "2.5"). No mapping to clinical
#: scores (Ashworth, Tardieu) is given because none is validated (Koelman 1993; domain notes).
REFERENCES: dict[str, dict] = {
    "hmax_mmax": {
        "typical": "about 0.3 in young healthy adults (soleus), lower with age; higher with reflex "
        "hyperexcitability; no validated spastic cut-off and no validated mapping to Ashworth "
        "scores",
        "source": "Koelman JHTM et al. (1993) J Neurol Neurosurg Psychiatry 56:776",
    },
    "mmax_uv": {
        "typical": "no reference range is shown: Mmax depends on electrode size and placement, "
        "skin and subject; it is the denominator of Hmax/Mmax and the scale of the test "
        "intensity (M as a fraction of Mmax). Record supramaximal stimuli so that it is reached",
        "source": _GUIDE,
    },
    "h_latency_ms": {
        "soleus": "30.8 +/- 2.6 ms (right leg; 103 healthy adults aged 60-88), correlated with "
        "leg length, not with age",
        "fcr": "about 16 ms (primary source not identified in our guide)",
        "source": "Falco FJE et al. (1994) H reflex latency in the healthy elderly. Muscle Nerve "
        "17:161-167 (soleus); " + _GUIDE + " (FCR)",
    },
    "m_latency_ms": {
        "soleus": "a few ms to about 15 ms depending on the stimulation site (primary source not "
        "identified in our guide)",
        "source": _GUIDE,
    },
    "recruitment_fits": {
        "typical": "M: 4-parameter sigmoid; H: product of two sigmoids or a skewed Gaussian",
        "source": "Brinkworth RSA et al. (2007) J Neurosci Methods 162:1",
    },
    "test_intensity": {
        "typical": "on the rising H limb with M at about 10-33% of Mmax; quality control: keep "
        "trials whose M stays within 25 +/- 10% of Mmax (the criterion used e.g. by Kao et al. "
        "2010, M at 25% of Mmax)",
        "source": _GUIDE + "; Kao PC, Lewis CL, Ferris DP (2010) J NeuroEng Rehabil 7:33",
    },
    "rate_dependent_depression": {
        "measure": "this analysis: mean H at rate f / mean H at 0.1 Hz, same intensity",
        "chronic_stroke_h2_h1": dict(STROKE_H2_H1),
        "chronic_stroke_h2_h1_measure": "H2/H1: H of the second pulse / H of the first at each "
        "rate, not normalised to 0.1 Hz (hence 0.93, not 1, at 0.1 Hz)",
        "chronic_stroke_per_0p1hz": dict(STROKE_H2_H1_PER_0P1HZ),
        "chronic_stroke_per_0p1hz_measure": "the H2/H1 figures divided by their 0.1 Hz value "
        "(derived here): comparable with this analysis's ratios",
        "note": "depression is reduced (ratios nearer 1) in spasticity; post-activation "
        "depression of the soleus H-reflex lasts more than 8 s, so 0.1 Hz is the baseline rate; "
        "frequency sweeps 0.1-5 Hz after spinal cord injury: H at 1, 2 and 5 Hz lower than at 0.1 "
        "or 0.2 Hz; no healthy normative curve and no validated cut-off",
        "source": "chronic-stroke H2/H1: "
        + _GUIDE
        + " (primary source not identified); "
        + _CRONE_1989
        + "; "
        + _SHIELDS_2011,
    },
    "paired_pulse_depression": {
        "measure": "this analysis: mean H2 / mean H1 of pairs at each interval (s)",
        "chronic_stroke_h2_h1_at_interval_s": {"10": 0.93, "5": 0.86, "3.3": 0.84, "1": 0.74},
        "chronic_stroke_h2_h1_at_interval_s_measure": "the chronic-stroke H2/H1 rates read as "
        "intervals (1/f: 0.1 Hz = 10 s, 0.2 Hz = 5 s, 0.3 Hz = 3.3 s, 1 Hz = 1 s); comparable "
        "with a pair only if the source's H2 is the second pulse of its train",
        "typical": "pairs at 2.5 and 5 s; the second H is smaller than the first while "
        "post-activation depression lasts (> 8 s)",
        "source": _GUIDE + "; " + _CRONE_1989,
    },
}
