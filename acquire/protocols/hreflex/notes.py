"""The ``hreflex`` protocol's record in the session: one writer, one parser.

The runner (:class:`~acquire.protocols.hreflex.runner.HReflexRunner`) writes, through any sink
with ``add_host_event(kind, *, label, params)`` (the :class:`acquire.recorder.Recorder`):

- one ``note`` event labelled :data:`PROTOCOL_LABEL` (``"protocol"``) with params
  ``{"hreflex": plan.to_dict(), "runner": {"muscle", "windows_ms", "emg_channel"}}``, before the
  first pulse;
- one ``note`` event labelled :data:`PULSE_LABEL` (``"hreflex_pulse"``) per planned pulse, with
  params ``PulseRecord.to_dict()`` (block, nominal rate in device time, status, the gate's
  background bins, ``first_emg_index`` = the stimulus event's EMG sample, quick M/H).

:func:`read_notes` is the parser the analysis (``tonuslab.analysis``) uses. Both the CLI
(``tonuslab record --protocol hreflex``) and a Python script running the runner on a recorder
write the same notes, because only the runner writes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: Label of the plan note.
PROTOCOL_LABEL = "protocol"
#: Label of each pulse note.
PULSE_LABEL = "hreflex_pulse"


def protocol_params(plan, *, muscle: str, windows_ms: Mapping, emg_channel: int) -> dict:
    """Params of the plan note.

    Parameters
    ----------
    plan : HReflexPlan
        The plan as checked before the first pulse (test intensity possibly unresolved).
    muscle : str
        The runner's preset name (``"soleus"``, ``"fcr"``).
    windows_ms : mapping
        The runner's quick windows, ``{"m": (start, end), "h": (start, end)}``, ms.
    emg_channel : int
        EMG channel gated on and measured.

    Returns
    -------
    dict
        JSON-ready ``{"hreflex": ..., "runner": ...}``.
    """
    return {
        "hreflex": plan.to_dict(),
        "runner": {
            "muscle": muscle,
            "windows_ms": {k: list(v) for k, v in windows_ms.items()},
            "emg_channel": int(emg_channel),
        },
    }


def write_protocol_note(sink, plan, *, muscle: str, windows_ms: Mapping, emg_channel: int):
    """Store the plan note through ``sink.add_host_event`` (see :func:`protocol_params`)."""
    params = protocol_params(plan, muscle=muscle, windows_ms=windows_ms, emg_channel=emg_channel)
    sink.add_host_event("note", label=PROTOCOL_LABEL, params=params)


def write_pulse_note(sink, record) -> None:
    """Store one pulse note (``record.to_dict()``, a :class:`PulseRecord`) through ``sink``."""
    sink.add_host_event("note", label=PULSE_LABEL, params=record.to_dict())


def read_notes(events: Iterable[Mapping], metadata: Mapping | None = None) -> dict:
    """What the ``hreflex`` protocol saved in a session's notes.

    Parameters
    ----------
    events : iterable of mapping
        The session's events (``kind``, ``label``, ``params``).
    metadata : mapping, optional
        The session's metadata (its ``time_compressed`` flag counts too).

    Returns
    -------
    dict
        ``{}`` for a session without the protocol's notes (imported, simulated). Otherwise
        ``gate_band_uv`` (list or None), ``gate_channel`` (int), ``time_scale`` (float or None),
        ``time_compressed`` (bool), ``pulses`` (dict: stimulus EMG sample index -> pulse note
        params, delivered pulses only), ``n_skipped_background`` (int), ``n_pulse_notes`` (int).
    """
    plan, pulses, skipped, n_notes, compressed = None, {}, 0, 0, False
    for e in events:
        if e.get("kind") != "note":
            continue
        params = e.get("params") or {}
        if e.get("label") == PROTOCOL_LABEL and isinstance(params.get("hreflex"), dict):
            plan = params["hreflex"]
        elif e.get("label") == PULSE_LABEL:
            n_notes += 1
            compressed |= bool(params.get("time_compressed"))
            if params.get("status") == "skipped_background":
                skipped += 1
            elif params.get("status") == "delivered" and params.get("first_emg_index") is not None:
                pulses[int(params["first_emg_index"])] = params
    meta = metadata or {}
    if plan is None and not pulses and not meta.get("time_compressed"):
        return {}
    config = (plan or {}).get("config") or {}
    scale = (plan or {}).get("time_scale")
    compressed = (
        compressed
        or bool(meta.get("time_compressed"))
        or bool((plan or {}).get("time_compressed"))
        or (scale is not None and float(scale) != 1.0)
    )
    return {
        "gate_band_uv": config.get("gate_band_uv"),
        "gate_channel": int(config.get("emg_channel", 0) or 0),
        "time_scale": None if scale is None else float(scale),
        "time_compressed": bool(compressed),
        "pulses": pulses,
        "n_skipped_background": skipped,
        "n_pulse_notes": n_notes,
    }
