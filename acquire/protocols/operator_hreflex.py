"""Operator-guided H-reflex recruitment, for sources without a tonuslab stimulator (``lsl://``).

A lab's own stimulator (a Digitimer DS7A or DS8R, intensity set on its front panel) is triggered
by the operator. The protocol prompts each intensity of the ladder in turn ("set 12 mA, deliver
one pulse"), stores the prompt (``prompt`` event, label ``stimulus``, ``intensity_ma``,
``width_us``), and waits for the pulse to appear in the recording: a stimulus event from the
source (a TTL edge of ``ttl=K``, exact to the sample, or a ``stim 12mA`` marker). A pulse whose
source does not say its intensity (a bare TTL edge) takes the prompted one
(:class:`acquire.source_recorder.SourceRecorder` does this, also in replay, with
``params["intensity_from"] = "prompt"``). After each pulse the protocol waits ``interval_s`` of
session time before the next prompt; a prompt not answered within ``wait_s`` is noted as missed
and the next intensity is prompted.

Notes (``note`` events): one ``protocol`` note with ``{"operator_hreflex": config}``, one
``operator_pulse`` note per prompt (``status`` ``delivered`` or ``missed``, the pulse's EMG sample
index, prompted and recorded intensity). ``tonuslab analyze`` then analyses the session as any
H-reflex session with stimulus events (the recruitment interval rule applies: keep
``interval_s`` >= 10 s on a subject).

Timing is on the recording's sample clock, so the protocol behaves the same at any pace.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from acquire.errors import AcquisitionError

#: Label of the per-prompt note.
PULSE_LABEL = "operator_pulse"


@dataclass(frozen=True)
class OperatorHReflexConfig:
    """What the operator is asked to deliver.

    Attributes
    ----------
    ladder_ma : sequence of float
        Intensities, mA, in the order prompted.
    repeats : int
        Pulses per intensity.
    interval_s : float
        Session time from a pulse to the next prompt, s (>= 10 s on a subject).
    wait_s : float
        Longest wait for a pulse after a prompt, s.
    width_us : float
        Pulse width set on the stimulator, us (stored with pulses whose source gives none).
    trigger_after_s : float or None
        With a source that can trigger the stimulator (capability ``"trigger_output"``, e.g.
        ``bitalino://`` O1): seconds of session time from the prompt (the operator sets the
        intensity meanwhile) to tonuslab raising the trigger, within the source's host limits
        (maximum rate, pulse count). None (default): the operator delivers every pulse.
    """

    ladder_ma: Sequence[float] = tuple(np.round(np.arange(4.0, 30.01, 2.0), 3))
    repeats: int = 1
    interval_s: float = 10.0
    wait_s: float = 30.0
    width_us: float = 1000.0
    trigger_after_s: float | None = None

    def __post_init__(self) -> None:
        if self.trigger_after_s is not None and not (
            math.isfinite(self.trigger_after_s) and self.trigger_after_s > 0
        ):
            raise AcquisitionError("trigger_after_s must be a positive number of seconds")
        if not self.ladder_ma or any(not (0 < float(v) <= 100) for v in self.ladder_ma):
            raise AcquisitionError("the ladder needs intensities in (0, 100] mA")
        if int(self.repeats) < 1 or not self.interval_s >= 0 or not self.wait_s > 0:
            raise AcquisitionError("repeats must be >= 1, interval >= 0 s and wait > 0 s")

    def steps(self) -> list[float]:
        """The prompted intensities, in order."""
        return [float(v) for v in self.ladder_ma for _ in range(int(self.repeats))]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ladder_ma"] = [float(v) for v in self.ladder_ma]
        return d


class OperatorHReflex:
    """Prompt the ladder and pair each prompt with the pulse the source records.

    Parameters
    ----------
    recorder : acquire.recorder.Recorder
        Opened; a :class:`~acquire.source_recorder.SourceRecorder` for the intensity fill-in.
    config : OperatorHReflexConfig
    on_message : callable, optional
        ``f(text)``: what the operator reads (the live view's messages).

    Call :meth:`attach` once after ``recorder.open()``, then :meth:`tick` from the recording loop.
    """

    def __init__(
        self,
        recorder,
        config: OperatorHReflexConfig | None = None,
        *,
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        self.recorder = recorder
        self.config = config or OperatorHReflexConfig()
        self.steps = self.config.steps()
        self.on_message = on_message or (lambda text: None)
        self.done = False
        self.results: list[dict] = []
        self._k = 0
        self._state = "prompt"
        self._next_t = 0.0
        self._prompt_t = 0.0
        self._pulses: collections.deque = collections.deque()
        self._fired = False
        self._source = None
        if self.config.trigger_after_s is not None:
            source = getattr(recorder, "source", None)
            if source is None or "trigger_output" not in source.capabilities:
                raise AcquisitionError(
                    f"{getattr(recorder, 'url', 'the source')} has no stimulator trigger output: "
                    "the operator delivers the pulses (leave out the trigger delay)"
                )
            self._source = source

    def stop(self) -> None:
        """Immediate stop: no further trigger is sent (the source refuses any), no prompt."""
        if self._source is not None:
            self._source.stop_triggers()
        if not self.done:
            self.done = True
            self.recorder.add_host_event("note", label="protocol", params={"stopped": True})
            self.on_message("operator-guided H-reflex stopped: no further pulse")

    def attach(self) -> None:
        rec = self.recorder
        rec.listeners.append(self._on_event)
        rec.add_host_event("note", label="protocol", params={"operator_hreflex":
                                                              self.config.to_dict()})  # fmt: skip
        self.on_message(
            f"operator-guided H-reflex: {len(self.steps)} pulses; set each intensity on the "
            "stimulator when prompted and deliver one pulse"
        )

    def _on_event(self, kind: str, data: dict) -> None:
        if kind == "stimulus":
            self._pulses.append(dict(data))

    def _now(self) -> float:
        index = self.recorder.latest_emg_index()
        return float("nan") if index < 0 else index / self.recorder.emg_rate_hz

    def tick(self) -> None:
        """Advance: prompt, or take the pulse that answered, or give up on a prompt."""
        if self.done:
            return
        t = self._now()
        if not math.isfinite(t):
            return
        if self._state == "prompt":
            if t < self._next_t:
                return
            ma = self.steps[self._k]
            self._pulses.clear()
            self.recorder.prompt("stimulus", intensity_ma=ma, width_us=self.config.width_us,
                                 index=self._k)  # fmt: skip
            if self._source is None:
                how = "deliver one pulse"
            else:
                how = f"wait: tonuslab triggers the stimulator in {self.config.trigger_after_s:g} s"
            self.on_message(f"pulse {self._k + 1}/{len(self.steps)}: set {ma:g} mA and {how}")
            self._prompt_t = t
            self._fired = False
            self._state = "wait"
        elif (
            self._source is not None
            and not self._fired
            and t - self._prompt_t >= self.config.trigger_after_s
        ):
            self._fired = True
            try:
                self._source.trigger()
            except AcquisitionError as exc:  # a host limit, or triggers stopped
                self.on_message(f"trigger refused: {exc}")
                self._finish("missed", None, t)
        elif self._pulses:
            pulse = self._pulses.popleft()
            self._finish("delivered", pulse, t)
        elif t - self._prompt_t > self.config.wait_s:
            self.on_message(f"no pulse within {self.config.wait_s:g} s: prompt skipped")
            self._finish("missed", None, t)

    def _finish(self, status: str, pulse: dict | None, t: float) -> None:
        ma = self.steps[self._k]
        result = {
            "index": self._k,
            "status": status,
            "prompted_ma": ma,
            "emg_sample_index": None if pulse is None else pulse.get("emg_sample_index"),
            "recorded_ma": None if pulse is None else _num(pulse.get("intensity_ma")),
        }
        self.results.append(result)
        self.recorder.add_host_event("note", label=PULSE_LABEL, params=result)
        self._k += 1
        self._next_t = t + self.config.interval_s
        self._state = "prompt"
        if self._k >= len(self.steps):
            self.done = True
            delivered = sum(r["status"] == "delivered" for r in self.results)
            self.on_message(f"operator-guided H-reflex complete: {delivered} pulses recorded")


def _num(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None
