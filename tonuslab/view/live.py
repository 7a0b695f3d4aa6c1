"""The live model: what the browser sees of a running recording.

The recorder calls :meth:`LiveModel.on_block` and :meth:`LiveModel.on_event` from its loop (its
``block_listeners`` and ``listeners``). Both only append to a bounded queue: the recorder never
waits for the view, and a view that falls behind loses view frames, never samples (the file is
written before the listeners run). A worker thread turns the queued blocks into min/max columns
(10 ms each by default), envelopes, angle and velocity columns, H-reflex sweeps around each
stimulus, and keeps the newest minute of them in rings that the HTTP handlers read.
"""

from __future__ import annotations

import collections
import math
import shutil
import threading
import time

import numpy as np

from tonuslab.view.decimate import (
    column_envelope,
    column_mean,
    column_minmax,
    smooth_columns,
    to_json_rows,
)


def default_windows_ms() -> dict[str, tuple[float, float]]:
    """M/H windows (ms after the pulse) when the recording has no H-reflex runner note: the
    soleus preset of the one timing table (``dsp.hreflex.presets``), as the runner uses."""
    from acquire.protocols.hreflex.runner import response_windows_ms

    return response_windows_ms("soleus")


class _ColumnRing:
    """The newest ``capacity`` columns of ``n_arrays`` arrays of shape (n_channels,)."""

    def __init__(self, capacity: int, n_ch: int, n_arrays: int) -> None:
        self.buf = np.full((n_arrays, capacity, n_ch), np.nan)
        self.total = 0  # columns ever written; column c lives at c % capacity

    def write(self, first_col: int, arrays: list[np.ndarray]) -> None:
        cap = self.buf.shape[1]
        n = arrays[0].shape[0]
        if n == 0:
            return
        if first_col > self.total:  # columns skipped (a gap): NaN
            skip = min(first_col - self.total, cap)
            idx = np.arange(first_col - skip, first_col) % cap
            self.buf[:, idx] = np.nan
        idx = np.arange(first_col, first_col + n) % cap
        for k, a in enumerate(arrays):
            self.buf[k, idx] = a
        self.total = max(self.total, first_col + n)

    def since(self, col: int, max_cols: int) -> tuple[int, np.ndarray]:
        """(first column, arrays (n_arrays, n, n_ch)) from ``col`` (clipped) to the newest."""
        cap = self.buf.shape[1]
        lo = max(int(col), self.total - min(cap, max_cols), 0)
        idx = np.arange(lo, self.total) % cap
        return lo, self.buf[:, idx]


class _StreamColumns:
    """Turns blocks of one stream into whole columns (partial columns wait for the next block)."""

    def __init__(self, rate_hz: float, n_ch: int, column_s: float) -> None:
        self.rate_hz = float(rate_hz)
        self.spc = max(1, round(rate_hz * column_s))
        self.dt_s = self.spc / self.rate_hz
        self.n_ch = n_ch
        self.pending = np.empty((0, n_ch))
        self.pending_row = 0  # row of pending[0]

    def feed(self, row: int, x: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Pieces ``(first column, samples (k * spc, n_ch))`` of whole columns now complete.

        A block that does not follow the previous one (a gap) closes the partial column with NaN
        and starts a new one at its own row; the columns in between are left to the ring (NaN).
        """
        pieces = []
        end = self.pending_row + self.pending.shape[0]
        if row != end or not self.pending.shape[0]:
            if self.pending.shape[0]:
                pad = (-self.pending.shape[0]) % self.spc
                pieces.append(
                    (self.pending_row // self.spc,
                     np.vstack([self.pending, np.full((pad, self.n_ch), np.nan)]))
                )  # fmt: skip
            head = row % self.spc
            self.pending = np.vstack([np.full((head, self.n_ch), np.nan), x]) if head else x
            self.pending_row = row - head
        else:
            self.pending = np.vstack([self.pending, x])
        n = (self.pending.shape[0] // self.spc) * self.spc
        if n:
            pieces.append((self.pending_row // self.spc, self.pending[:n]))
            self.pending = self.pending[n:]
            self.pending_row += n
        return pieces


class LiveModel:
    """Columns, sweeps, events and status of a running recording, for the live page.

    Parameters
    ----------
    column_s : float
        Duration of one min/max column (s); 10 ms gives 100 columns/s, one per pixel of a 10 s
        trace 1000 pixels wide.
    history_s : float
        How much of the past the rings keep (a page that reconnects gets at most this).
    sweep_ms : (float, float)
        H-reflex sweep window around each pulse (ms before, ms after).
    max_queue : int
        Blocks the recorder may queue before the view drops the oldest (view frames, never
        samples: the file is already written).
    """

    def __init__(
        self,
        *,
        column_s: float = 0.01,
        history_s: float = 60.0,
        sweep_ms: tuple[float, float] = (10.0, 70.0),
        max_queue: int = 4000,
        max_sweeps: int = 2000,
    ) -> None:
        self.column_s = float(column_s)
        self.history_s = float(history_s)
        self.sweep_ms = sweep_ms
        self.mode = "live"
        self._queue: collections.deque = collections.deque(maxlen=max_queue)
        self.dropped_blocks = 0
        self._lock = threading.Lock()
        self._events: list[dict] = []
        self._sweeps: list[dict] = []
        self._max_sweeps = max_sweeps
        self._pending_stims: list[dict] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rec = None
        self.protocol = None
        self.runner = None
        self.actions: collections.deque = collections.deque()
        self.ended = False
        self._disk = (0.0, None)

    # ------------------------------------------------------------------ wiring
    def attach(self, rec, *, protocol_name: str = "free") -> None:
        """Read the recorder's channels and rates, hook its listeners, start the worker."""
        self.rec = rec
        self.protocol_name = protocol_name
        chans = [c.to_dict() for c in rec.info.channels]
        self.channels = chans
        self.emg_names = [c["name"] for c in chans if c["kind"] == "emg"]
        rates = {"emg": rec.emg_rate_hz}
        if rec.angle_rate_hz is not None:
            rates["angle"] = rec.angle_rate_hz
        self.rates = rates
        cap = round(self.history_s / self.column_s)
        n_emg = len(self.emg_names)
        self._emg = _StreamColumns(rates["emg"], n_emg, self.column_s)
        self._emg_ring = _ColumnRing(cap, n_emg, 3)  # min, max, envelope
        self._env_state = np.full(n_emg, np.nan)
        # envelope: ~50 ms time constant at the column rate
        self._env_alpha = min(1.0, self._emg.dt_s / 0.05)
        self._angle = None
        if "angle" in rates:
            self._angle = _StreamColumns(rates["angle"], 1, self.column_s)
            self._angle_ring = _ColumnRing(cap, 1, 4)  # min, max, mean angle; velocity
            self._last_angle = math.nan
            self._last_angle_col = -10
            self._vel_state = np.full(1, np.nan)
        # raw ring of EMG for the sweeps (all channels, 4 s)
        self._raw = np.full((int(rates["emg"] * 4), n_emg), np.nan)
        self._raw_total = 0
        self.windows_ms = default_windows_ms()
        self.sweep_channel = 0
        self.gate_band_uv = None
        rec.block_listeners.append(self.on_block)
        rec.listeners.append(self.on_event)
        self._thread = threading.Thread(target=self._work, name="tonuslab-view", daemon=True)
        self._thread.start()

    def attach_protocol(self, protocol) -> None:
        """The stretch protocol (its steps give "stretch 7/20" and the next prompt)."""
        self.protocol = protocol

    def attach_runner(self, runner) -> None:
        """The H-reflex runner (its plan gives the gate band, the windows, the next pulse)."""
        self.runner = runner
        self.windows_ms = {k: tuple(v) for k, v in runner.windows.items()}
        self.sweep_channel = int(runner.channel)
        band = runner.plan.config.gate_band_uv
        self.gate_band_uv = None if band is None else [float(band[0]), float(band[1])]

    def close(self) -> None:
        """Process what is queued, cut the last sweeps (NaN past the end), mark the view ended."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._cut_sweeps(final=True)
        self.ended = True

    # ------------------------------------------------------------------ recorder side
    def on_block(self, stream: str, row: int, phys: np.ndarray, counts=None) -> None:
        """Recorder thread: queue the block (never blocks, never raises)."""
        if len(self._queue) == self._queue.maxlen:
            self.dropped_blocks += 1
        self._queue.append((stream, int(row), phys))

    def on_event(self, kind: str, data: dict) -> None:
        """Recorder thread: queue the event."""
        self._queue.append(("event", kind, dict(data)))

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while not self._stop.is_set():
            self._drain()
            self._stop.wait(0.04)
        self._drain()

    def _drain(self) -> None:
        while self._queue:
            try:
                item = self._queue.popleft()
            except IndexError:
                return
            try:
                if item[0] == "event":
                    self._event(item[1], item[2])
                elif item[0] == "emg":
                    self._emg_block(item[1], item[2])
                elif item[0] == "angle":
                    self._angle_block(item[1], item[2])
            except Exception:  # the view must never take the recording down
                import logging

                logging.getLogger(__name__).exception("live view worker")
        self._cut_sweeps()

    def _emg_block(self, row: int, x: np.ndarray) -> None:
        # raw ring for sweeps, aligned with rows (NaN across gaps)
        cap = self._raw.shape[0]
        if row > self._raw_total:
            n_fill = min(row - self._raw_total, cap)
            idx = np.arange(row - n_fill, row) % cap
            self._raw[idx] = np.nan
        idx = np.arange(row, row + x.shape[0]) % cap
        self._raw[idx] = x
        self._raw_total = max(self._raw_total, row + x.shape[0])
        for col, whole in self._emg.feed(row, x):
            self._emg_columns(col, whole)

    def _emg_columns(self, col: int, whole: np.ndarray) -> None:
        lo, hi = column_minmax(whole, self._emg.spc)
        env = smooth_columns(column_envelope(whole, self._emg.spc), self._env_alpha,
                             self._env_state)  # fmt: skip
        with self._lock:
            self._emg_ring.write(col, [lo, hi, env])

    def _angle_block(self, row: int, x: np.ndarray) -> None:
        for col, whole in self._angle.feed(row, x):
            self._angle_columns(col, whole)

    def _angle_columns(self, col: int, whole: np.ndarray) -> None:
        spc = self._angle.spc
        lo, hi = column_minmax(whole, spc)
        mean = column_mean(whole, spc)
        if col != self._last_angle_col + 1:
            self._last_angle = math.nan  # after a gap the velocity starts again
        prev = np.concatenate([[self._last_angle], mean[:, 0]])
        vel = (np.diff(prev) / self._angle.dt_s)[:, None]
        self._last_angle = float(mean[-1, 0])
        self._last_angle_col = col + mean.shape[0] - 1
        vel = smooth_columns(vel, min(1.0, self._angle.dt_s / 0.03), self._vel_state)
        with self._lock:
            self._angle_ring.write(col, [lo, hi, mean, vel])

    def _event(self, kind: str, data: dict) -> None:
        ev = {"kind": kind, "label": data.get("label", ""), "params": _jsonable(data.get("params"))}
        row = data.get("emg_sample_index", data.get("start_index"))
        rate = self.rates["emg"]
        if kind == "gap":
            r = self.rates.get(data.get("stream"), rate)
            ev["time_s"] = data["start_index"] / r
            ev["duration_s"] = data["n_samples"] / r
            ev["params"] = {"stream": data.get("stream"), "n_samples": int(data["n_samples"])}
        elif row is not None and row >= 0:
            ev["time_s"] = row / rate
        else:
            ev["time_s"] = self._raw_total / rate
        if kind == "stimulus":
            ev["params"] = {"intensity_ma": data.get("intensity_ma")}
            self._pending_stims.append({"row": int(row), "intensity_ma": data.get("intensity_ma")})
        if kind == "note" and ev["label"] == "protocol" and ev["params"]:
            runner = (ev["params"] or {}).get("runner")
            if runner and self.runner is None:
                self.windows_ms = {k: tuple(v) for k, v in runner["windows_ms"].items()}
                self.sweep_channel = int(runner.get("emg_channel", 0))
            ev["params"] = {}  # the whole plan is in the file; the page needs none of it
        with self._lock:
            ev["id"] = len(self._events)
            self._events.append(ev)

    def _cut_sweeps(self, final: bool = False) -> None:
        rate = self.rates["emg"]
        pre = round(self.sweep_ms[0] * rate / 1000.0)
        post = round(self.sweep_ms[1] * rate / 1000.0)
        cap = self._raw.shape[0]
        keep = []
        for st in self._pending_stims:
            a, b = st["row"] - pre, st["row"] + post
            if b > self._raw_total and not final:
                keep.append(st)
                continue
            if a < self._raw_total - cap or a < 0:
                continue  # too old (the view fell far behind): no sweep
            y = self._raw[np.arange(a, b) % cap, self.sweep_channel].copy()
            y[max(0, self._raw_total - a) :] = np.nan  # the recording ended inside the sweep
            self._add_sweep(y, st["intensity_ma"], st["row"] / rate, rate, pre)
        self._pending_stims = keep

    def _add_sweep(self, y, intensity_ma, time_s, rate, pre) -> None:
        p2p = {}
        for name, (a_ms, b_ms) in self.windows_ms.items():
            seg = y[pre + round(a_ms * rate / 1000) : pre + round(b_ms * rate / 1000)]
            ok = seg.size and np.all(np.isfinite(seg))
            p2p[name] = float(seg.max() - seg.min()) if ok else None
        step = max(1, y.size // 400)  # at most ~400 points per sweep to the page
        y = y[: (y.size // step) * step].reshape(-1, step).mean(axis=1)
        with self._lock:
            sweep = {
                "id": len(self._sweeps),
                "time_s": time_s,
                "intensity_ma": None if intensity_ma is None else float(intensity_ma),
                "t0_ms": -self.sweep_ms[0],
                "dt_ms": 1000.0 * step / rate,
                "y": to_json_rows(y[:, None])[0],
                "m_p2p_uv": p2p.get("m"),
                "h_p2p_uv": p2p.get("h"),
            }
            self._sweeps.append(sweep)
            if len(self._sweeps) > self._max_sweeps:
                self._sweeps[0]["y"] = []  # keep the count and the curve, drop old traces

    # ------------------------------------------------------------------ page side
    def info(self) -> dict:
        return {
            "mode": "live",
            "file": str(getattr(self.rec, "path", "")),
            "protocol": self.protocol_name,
            "emg_names": self.emg_names,
            "emg_rate_hz": self.rates["emg"],
            "angle_rate_hz": self.rates.get("angle"),
            "column_s": self.column_s,
            "emg_dt_s": self._emg.dt_s,
            "angle_dt_s": None if self._angle is None else self._angle.dt_s,
            "windows_ms": {k: list(v) for k, v in self.windows_ms.items()},
            "sweep_channel": self.sweep_channel,
            "gate_band_uv": self.gate_band_uv,
        }

    def live(self, emg_col: int, angle_col: int, event_id: int, sweep_id: int,
             max_cols: int = 1500) -> dict:  # fmt: skip
        """Everything new since the page's last poll (columns, events, sweeps) and the status."""
        out = {"status": self.status(), "protocol": self.protocol_state()}
        with self._lock:
            c0, arr = self._emg_ring.since(emg_col, max_cols)
            out["emg"] = {"col": c0, "n": arr.shape[1], "min": to_json_rows(arr[0]),
                          "max": to_json_rows(arr[1]), "env": to_json_rows(arr[2])}  # fmt: skip
            if self._angle is not None:
                c0, arr = self._angle_ring.since(angle_col, max_cols)
                out["angle"] = {"col": c0, "n": arr.shape[1], "min": to_json_rows(arr[0])[0],
                                "max": to_json_rows(arr[1])[0], "mean": to_json_rows(arr[2])[0],
                                "vel": to_json_rows(arr[3])[0]}  # fmt: skip
            out["events"] = self._events[max(0, event_id) :]
            out["sweeps"] = self._sweeps[max(0, sweep_id) :][:200]
            out["n_sweeps"] = len(self._sweeps)
        return out

    def status(self) -> dict:
        rec = self.rec
        s = rec.stats
        now = time.monotonic()
        if now - self._disk[0] > 2.0:
            try:
                free = shutil.disk_usage(rec.path.parent).free
            except OSError:
                free = None
            self._disk = (now, free)
        return {
            "state": "ended" if self.ended else ("stopping" if rec.stopping else "recording"),
            "link_up": bool(s.link_up),
            "emg_rate_hz": float(s.rate_hz.get("emg", 0.0)),
            "angle_rate_hz": float(s.rate_hz.get("angle", 0.0)),
            "lost_packets": int(s.lost_packets),
            "gap_samples": int(sum(s.gap_samples.values())),
            "battery_pct": s.battery_pct,
            "free_disk_mb": None if self._disk[1] is None else self._disk[1] / (1 << 20),
            "elapsed_s": float(s.elapsed_s),
            "session_time_s": float(s.session_time_s),
            "markers": int(s.markers),
            "stimuli": int(s.stimuli),
            "view_dropped_blocks": int(self.dropped_blocks),
        }

    def protocol_state(self) -> dict:
        """The current step and next prompt (stretch), the gate and next pulse (H-reflex)."""
        out: dict = {"name": self.protocol_name}
        p = self.protocol
        if p is not None:
            total = len(p.steps)
            step = min(p._step, total - 1)
            phase, v = p.steps[step]
            out.update(total=total, step=step + 1, phase=phase, velocity_deg_s=v,
                       state="done" if p.done else p._state)  # fmt: skip
            if p._state == "prompt" and not p.done:
                out["rest_s"] = max(0.0, float(p._next_prompt_t - p._t))
            if step + 1 < total and not p.done:
                out["next"] = {
                    "phase": p.steps[step + 1][0],
                    "velocity_deg_s": p.steps[step + 1][1],
                }
        r = self.runner
        if r is not None:
            pulses = r.plan.pulses
            n_done = len(r.records)
            out.update(n_pulses=len(pulses), n_done=n_done, stopped=r.stopped,
                       gate_band_uv=self.gate_band_uv)  # fmt: skip
            if n_done < len(pulses) and not r.stopped:
                nxt = pulses[n_done]
                out["next_intensity_ma"] = nxt.intensity_ma  # None: chosen after the ladder
                out["next_block"] = nxt.block
            if r.records:
                last = r.records[-1]
                out["last"] = {"status": last.status, "intensity_ma": last.intensity_ma,
                               "message": last.message,
                               "background_uv": [float(b) for b in last.background_uv]}  # fmt: skip
            out["background_uv"] = self._background_uv()
            band = self.gate_band_uv
            bg = out["background_uv"]
            if band is None:
                out["gate"] = "off"
            elif bg is None:
                out["gate"] = "-"
            else:
                out["gate"] = "in band" if band[0] <= bg <= band[1] else "out of band"
        return out

    def _background_uv(self) -> float | None:
        """Mean rectified EMG of the gated channel over the newest 50 ms (uV)."""
        rate = self.rates["emg"]
        n = max(1, round(0.05 * rate))
        total = self._raw_total
        if total < n:
            return None
        idx = np.arange(total - n, total) % self._raw.shape[0]
        seg = self._raw[idx, self.sweep_channel]
        if not np.all(np.isfinite(seg)):
            return None
        return float(np.mean(np.abs(seg - seg.mean())))


def _jsonable(params):
    """Event params for the page: numbers, strings, and small lists only."""
    if not isinstance(params, dict):
        return {}
    out = {}
    for k, v in params.items():
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = None
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
        elif isinstance(v, (list, tuple)) and len(v) <= 16:
            out[k] = [x if isinstance(x, (int, float, str)) else None for x in v]
    return out
