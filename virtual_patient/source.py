"""Streaming form of the virtual patient for the emulated device (SignalSource protocol)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .engine import Engine
from .errors import ProgramError, SourceStateError
from .profiles import Profile, get_profile
from .stretch import StretchSpec, tsrt_protocol

__all__ = ["MAX_WAITING_PROMPTS", "PROMPT_GAP_S", "PatientSource"]

#: Rest (s) between a prompted stretch and the stretch before it, and before the programmed
#: stretch that waits for it.
PROMPT_GAP_S = 0.05
#: Prompted stretches that may wait for their turn at once; more are refused (each holds its
#: grid arrays, up to ``virtual_patient.stretch.MAX_STRETCH_S`` long: the queue's memory is
#: bounded).
MAX_WAITING_PROMPTS = 4

_STRETCH_KEYS = {
    "velocity_deg_s": "peak_velocity_deg_s",
    "peak_velocity_deg_s": "peak_velocity_deg_s",
    "end_deg": "end_deg",
    "hold_s": "hold_s",
    "return_velocity_deg_s": "return_velocity_deg_s",
    "shape": "shape",
    "overshoot_deg": "overshoot_deg",
}


class PatientSource:
    """A virtual patient streamed sample by sample (the emulator's ``SignalSource``).

    Parameters
    ----------
    profile : str or Profile
        Profile name or Profile.
    seed : int
        Seed of every random draw.
    program : "tsrt", sequence of StretchSpec, or None
        Stretches scheduled from the start of the stream (times in s after sample 0);
        None: the joint rests until a ``prompt("stretch", ...)`` arrives.

    Notes
    -----
    Samples depend only on the sample index, the seed and what was scheduled before they were
    generated: any split of the stream into blocks gives the same samples.
    ``stimulate`` for a sample already generated is still recorded in the truth with
    ``"late": True`` (its response appears only in samples not yet generated).
    """

    def __init__(
        self,
        profile: str | Profile,
        *,
        seed: int,
        program: str | Sequence[StretchSpec] | None = None,
    ) -> None:
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.seed = int(seed)
        if isinstance(program, str):
            if program != "tsrt":
                raise ProgramError(f"unknown program {program!r}; use 'tsrt' or a list")
            program = tsrt_protocol(self.profile)
        self.program = list(program or [])
        self._engine: Engine | None = None
        self._emg_pos = 0
        self._angle_pos = 0
        self._last_stim_pos = -1

    # -- SignalSource protocol -------------------------------------------------
    def configure(
        self, emg_rate_hz: float, n_emg: int, angle_rate_hz: float, n_angle: int, emg_bits: int
    ) -> list[dict]:
        """Set rates and channel counts, restart the stream at sample 0; channel table."""
        eng = Engine(
            self.profile,
            self.seed,
            emg_rate_hz=emg_rate_hz,
            n_emg=n_emg,
            angle_rate_hz=angle_rate_hz,
            n_angle=n_angle,
            emg_bits=emg_bits,
        )
        for spec in self.program:
            eng.add_stretch(spec)
        self._engine = eng
        self._emg_pos = 0
        self._angle_pos = 0
        self._last_stim_pos = -1
        return eng.channel_table()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise SourceStateError("call configure(...) before asking for samples")
        return self._engine

    def emg_block(self, n: int) -> np.ndarray:
        """The next ``n`` EMG samples as int32 counts, shape (n, n_emg)."""
        out = self.engine.emg_counts(self._emg_pos, int(n))
        self._emg_pos += int(n)
        return out

    def angle_block(self, n: int) -> np.ndarray:
        """The next ``n`` goniometer samples as int32 counts, shape (n, n_angle)."""
        out = self.engine.angle_counts(self._angle_pos, int(n))
        self._angle_pos += int(n)
        return out

    def skip_emg(self, n: int) -> None:
        """Move past ``n`` EMG samples without making them (the device was idle): samples
        depend only on their index, so the ones after are the same as if they had been made,
        and a START after hours idle costs no time."""
        self._emg_pos += int(n)

    def skip_angle(self, n: int) -> None:
        """Move past ``n`` goniometer samples without making them (see :meth:`skip_emg`)."""
        self._angle_pos += int(n)

    def stimulate(self, emg_sample_index: int, intensity_ma: float, width_us: int) -> None:
        """Schedule a stimulus pulse at an EMG sample index (artifact, M and H follow).

        Pulses given one after another with no block generated in between (the pulses of one
        pair or train command) get increasing ``pulse_index``; otherwise it is 0.
        """
        eng = self.engine
        idx = int(emg_sample_index)
        stim = eng.stimuli
        # pulses of one pair/train command arrive together, before any further block
        pulse_index = 0
        if stim and self._last_stim_pos == self._emg_pos:
            pulse_index = stim[-1]["pulse_index"] + 1
        rec = eng.add_stimulus(idx, intensity_ma, width_us, pulse_index)
        self._last_stim_pos = self._emg_pos
        late = idx < self._emg_pos
        eng.stimuli[-1]["late"] = late
        rec["late"] = late

    def cancel_stimuli(self, from_index: int) -> None:
        """Forget the pulses scheduled at EMG sample ``from_index`` or later: the device
        cancelled them (STOP, a lost host, the stimulation watchdog) before delivering them.
        Samples already generated never change."""
        self.engine.cancel_stimuli(max(int(from_index), self._emg_pos))

    def prompt(self, kind: str, params: dict) -> None:
        """A host prompt: ``"stretch"`` schedules a stretch, other kinds are recorded in the
        truth and otherwise ignored.

        Parameters
        ----------
        kind : str
            ``"stretch"`` or anything else (recorded, ignored).
        params : dict
            For a stretch: ``velocity_deg_s`` (deg/s) and optionally ``end_deg`` (deg),
            ``hold_s`` (s), ``return_velocity_deg_s`` (deg/s), ``shape``, ``overshoot_deg``.

        Raises
        ------
        ProgramError
            A stretch prompt without a velocity, with a non-numeric value or outside the range.

        Notes
        -----
        The stretch starts :data:`PROMPT_GAP_S` (50 ms) after the later of the current stream
        position (the later of the EMG and angle positions) and the end (rest pad included) of
        the stretch running then, or of the last prompted stretch still waiting: prompts queue
        in order. Programmed stretches that have not started yet wait behind it: they are all
        delayed by the same amount (``prompts[k]["program_delay_s"]`` in the truth), just
        enough that the next one starts 50 ms after the prompted one ends, and keep their
        shape. Samples already generated never change.
        """
        eng = self.engine
        params = dict(params or {})
        now = max(self._emg_pos / eng.fe, self._angle_pos / eng.fa)
        entry = {"kind": str(kind), "params": _jsonable(params), "time_s": now}
        if kind == "stretch":
            # null means "the default" for the optional fields, never for the velocity
            kw = {
                _STRETCH_KEYS[k]: v
                for k, v in params.items()
                if k in _STRETCH_KEYS
                and (v is not None or _STRETCH_KEYS[k] == "peak_velocity_deg_s")
            }
            if kw.get("peak_velocity_deg_s") is None:
                raise ProgramError("a stretch prompt needs a number 'velocity_deg_s'")
            for key in ("peak_velocity_deg_s", "end_deg", "hold_s", "return_velocity_deg_s",
                        "overshoot_deg"):  # fmt: skip
                if kw.get(key) is not None:
                    if isinstance(kw[key], bool):
                        raise ProgramError(f"stretch prompt: {key} must be a number")
                    try:
                        kw[key] = float(kw[key])
                    except (TypeError, ValueError, OverflowError):
                        raise ProgramError(f"stretch prompt: {key} must be a number") from None
            if "shape" in kw and not isinstance(kw["shape"], str):
                raise ProgramError("stretch prompt: shape must be 'bell' or 'manual'")
            waiting = sum(1 for ep in eng.episodes if ep.prompted and ep.t0_s > now)
            if waiting >= MAX_WAITING_PROMPTS:
                raise ProgramError(
                    f"{waiting} prompted stretches are still waiting; prompt again after one"
                )
            # queue position: after every stretch already started and every earlier prompt;
            # programmed stretches not started yet wait behind it
            j = 0
            for k, ep in enumerate(eng.episodes):
                if ep.t0_s <= now or ep.prompted:
                    j = k + 1
                else:
                    break
            start = max(now, eng.episodes[j - 1].end_s if j else 0.0) + PROMPT_GAP_S
            spec = StretchSpec(start_s=start, **kw)
            truth, delay = eng.insert_stretch(spec, gap_s=PROMPT_GAP_S)
            entry["stretch_index"] = truth["index"]
            entry["start_s"] = start
            entry["program_delay_s"] = delay
        else:
            entry["ignored"] = True
        eng.prompts.append(entry)

    def ground_truth(self) -> dict:
        """JSON-serialisable truth of everything scheduled so far (see docs/simulator.md)."""
        truth = self.engine.truth()
        truth["emg_samples_generated"] = self._emg_pos
        truth["angle_samples_generated"] = self._angle_pos
        return truth


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
