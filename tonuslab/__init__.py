"""tonuslab: instrumented measurement of spasticity.

The front door: the ``tonuslab`` CLI, the researcher's Python API, the analysis pipeline and
reports. The work is done by :mod:`firmware_iface` (device protocol), :mod:`acquire` (recording),
:mod:`dsp` (signal processing and metrics) and :mod:`virtual_patient` (simulator).

Researcher's entry point: :func:`open` (see ``docs/api.md``).
"""

from tonuslab._version import __version__


def open(path):
    """Open a session file lazily and return a :class:`tonuslab.session.Session`.

    Signals come in physical units (EMG in microvolts, angle in degrees) with time vectors;
    events, gaps, metadata and stored analysis results are attributes. See ``docs/api.md``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    tonuslab.errors.SessionFileError
        ``path`` is not a tonuslab session file.
    """
    from tonuslab.session import open_session

    return open_session(path)


def analyze(session, **parameters) -> dict:
    """Analyse a :class:`~tonuslab.session.Session` and return the summary (nothing is written).

    Keyword arguments override :data:`tonuslab.analysis.DEFAULT_PARAMETERS`.
    """
    from tonuslab.analysis import analyze_session

    return analyze_session(session, parameters)


def build_profile(summary: dict):
    """The spasticity profile (:class:`tonuslab.profile.Profile`) of an analysis summary."""
    from tonuslab.profile import build_profile as _build

    return _build(summary)


def __getattr__(name: str):
    # tonuslab.Session / tonuslab.Stimulus, imported on first use (keeps `import tonuslab` light)
    if name in ("Session", "Stimulus"):
        from tonuslab import session

        return getattr(session, name)
    raise AttributeError(f"module 'tonuslab' has no attribute {name!r}")


__all__ = ["Session", "Stimulus", "__version__", "analyze", "build_profile", "open"]
