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
    """

    name: str
    m_search_ms: tuple[float, float]
    h_search_ms: tuple[float, float]
    epoch_ms: tuple[float, float] = (-100.0, 100.0)
    background_ms: tuple[float, float] = (-55.0, -5.0)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


#: Presets by muscle name. Aliases: ``flexor_carpi_radialis`` = ``fcr``.
#: Soleus (tibial nerve in the popliteal fossa): M a few ms to ~15 ms, H about 30 ms
#: (30.8 +/- 2.6 ms at 60-88 years, scales with leg length). FCR (median nerve at the elbow):
#: H about 16 ms. Search ranges are deliberately wide; the windows are located from the data.
MUSCLE_PRESETS: dict[str, MusclePreset] = {
    "soleus": MusclePreset("soleus", m_search_ms=(1.5, 20.0), h_search_ms=(20.0, 50.0)),
    "fcr": MusclePreset(
        "fcr", m_search_ms=(1.0, 11.0), h_search_ms=(11.0, 30.0), epoch_ms=(-100.0, 60.0)
    ),
}
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


#: Published reference values shown beside the numbers. No mapping to clinical scores
#: (Ashworth, Tardieu) is given because none is validated (Koelman 1993; domain notes).
REFERENCES: dict[str, dict] = {
    "hmax_mmax": {
        "typical": "about 0.3 in young healthy adults (soleus), lower with age; higher with reflex "
        "hyperexcitability; no validated spastic cut-off and no validated mapping to Ashworth "
        "scores",
        "source": "Koelman et al. 1993, J Neurol Neurosurg Psychiatry 56:776",
    },
    "h_latency_ms": {
        "soleus": "about 30 ms; 30.8 +/- 2.6 ms at age 60-88; scales with leg length",
        "fcr": "about 16 ms",
        "source": "tonuslab domain notes (shared/guide/domain.md), soleus ageing norms",
    },
    "m_latency_ms": {
        "soleus": "a few ms to about 15 ms depending on the stimulation site",
        "source": "tonuslab domain notes (shared/guide/domain.md)",
    },
    "recruitment_fits": {
        "typical": "M: 4-parameter sigmoid; H: product of two sigmoids or a skewed Gaussian",
        "source": "Brinkworth et al. 2007, J Neurosci Methods 162:1",
    },
    "test_intensity": {
        "typical": "on the rising H limb with M at about 10-33% of Mmax; keep trials whose M stays "
        "within 25 +/- 10% of Mmax",
        "source": "tonuslab domain notes (shared/guide/domain.md)",
    },
    "rate_dependent_depression": {
        "chronic_stroke": {"1.0": 0.74, "0.3": 0.84, "0.2": 0.86, "0.1": 0.93},
        "note": "H at each rate normalised to 0.1 Hz (the baseline rate); depression is reduced "
        "(ratios nearer 1) in spasticity; frequency sweeps 0.1-5 Hz in spinal cord injury",
        "source": "chronic-stroke H2/H1 ratios quoted in the domain notes; Shields et al. 2011 "
        "(spinal cord injury frequency sweeps)",
    },
    "paired_pulse_depression": {
        "typical": "paired pulses at 2.5 and 5 s; second H smaller than the first",
        "source": "tonuslab domain notes (shared/guide/domain.md)",
    },
}
