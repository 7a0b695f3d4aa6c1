"""The review model: windows of a recorded session, read from the file on demand.

Nothing reads the whole file. A window is decimated to min/max columns from HDF5 slices: exactly
(every sample, read in pieces) when it holds at most :data:`EXACT_MAX_VALUES` values, otherwise
from one HDF5 chunk per column (the chunk at the column's start: about one second of data), which
keeps an overview of an hour-long 16-channel file to a few hundred chunk reads. Such a window is
flagged ``sampled`` and the page says so; zooming in gives the exact trace.
"""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np

from tonuslab.view.decimate import column_envelope, column_mean, column_minmax, to_json_rows

#: Windows with at most this many values (rows x channels) are decimated from every sample.
EXACT_MAX_VALUES = 16_000_000
#: Rows read at once in an exact window.
PIECE_ROWS = 262_144
#: Columns a page may ask for.
MAX_COLUMNS = 4000


class ReviewModel:
    """A session file opened for the review page.

    Parameters
    ----------
    path : path-like
        Session file (recorded or imported).
    run : str, optional
        Stored analysis run to overlay (default: ``default``, else the first run).
    """

    mode = "review"

    def __init__(self, path, run: str | None = None) -> None:
        from acquire.session_file import open_session

        self.path = pathlib.Path(path)
        self.session = open_session(self.path)
        s = self.session
        self.emg = s.emg
        self.angle = getattr(s, "angle", None)
        self.sign = int(s.metadata.get("stretch_direction_sign", 1) or 1)
        self.summary = self._summary(run)
        self.actions = None

    def close(self) -> None:
        self.session.close()

    def _summary(self, run: str | None) -> dict | None:
        try:
            results = self.session.results or {}
        except Exception:  # a damaged /results never stops the review of the data
            return None
        runs = [k for k, v in results.items() if isinstance(v, dict) and "summary_json" in v]
        name = run or ("default" if "default" in runs else (runs[0] if runs else None))
        if name is None or name not in runs:
            return None
        text = results[name]["summary_json"]
        summary = json.loads(text) if isinstance(text, str) else dict(text)
        summary["_run"] = name
        return summary

    # ------------------------------------------------------------------ info
    def info(self) -> dict:
        s = self.session
        emg = self.emg
        rate = emg.rate_hz
        n = emg.n_samples
        duration = n / rate
        if self.angle is not None:
            duration = max(duration, self.angle.n_samples / self.angle.rate_hz)
        events = []
        for ev in s.events:
            t = ev.get("time_s")
            if t is None or not math.isfinite(t):
                idx = ev.get("emg_sample_index")
                t = None if idx is None or idx < 0 else idx / rate
            if t is None or ev["kind"] == "status":
                continue
            events.append(
                {
                    "kind": ev["kind"],
                    "label": ev.get("label") or "",
                    "time_s": t,
                    "params": _small(ev.get("params"), ev),
                }
            )
        gaps = []
        for g in s.gaps:
            r = emg.rate_hz if g["stream"] == "emg" else self.angle.rate_hz
            gaps.append(
                {
                    "stream": g["stream"],
                    "time_s": g["start_index"] / r,
                    "duration_s": g["n_samples"] / r,
                    "n_samples": int(g["n_samples"]),
                }
            )
        out = {
            "mode": "review",
            "file": self.path.name,
            "state": s.state,
            "protocol": s.metadata.get("protocol", ""),
            "metadata": {k: v for k, v in s.metadata.items() if isinstance(v, (str, int, float))},
            "emg_names": list(emg.channel_names),
            "emg_rate_hz": rate,
            "angle_rate_hz": None if self.angle is None else self.angle.rate_hz,
            "duration_s": duration,
            "events": events,
            "gaps": gaps,
            "analysis": self._analysis(),
            "n_stimuli": sum(1 for e in events if e["kind"] == "stimulus"),
        }
        return out

    def _analysis(self) -> dict | None:
        sm = self.summary
        if sm is None:
            return None
        keep = (
            "index",
            "start_s",
            "end_s",
            "peak_velocity_deg_s",
            "onset_s",
            "dsrt_deg",
            "onset_velocity_deg_s",
            "reflex",
            "used_in_fit",
            "catch_s",
            "catch_angle_deg",
        )
        stretches = [{k: _num(st.get(k)) for k in keep} for st in sm.get("stretches") or []]
        out = {
            "run": sm["_run"],
            "stretches": stretches,
            "tsrt_deg": _num(sm.get("tsrt_deg")),
            "mu_s": _num(sm.get("mu_s")),
            "hmax_mmax": _num(sm.get("hmax_mmax")),
        }
        h = sm.get("hreflex")
        if isinstance(h, dict):
            off = ((h.get("artifact") or {}).get("session_offset_ms")) or 0.0
            for name in ("m", "h"):
                w = h.get(f"{name}_window") or {}
                if w.get("start_ms") is not None:
                    out[f"{name}_window_ms"] = [w["start_ms"] + off, w["end_ms"] + off]
            out["stimuli"] = [
                {k: _num(st.get(k)) for k in ("intensity_ma", "m_p2p_uv", "h_p2p_uv")}
                | {"included": bool(st.get("included", True))}
                for st in sm.get("stimuli") or []
            ]
            out["channel"] = int(h.get("channel", 0) or 0)
        return out

    # ------------------------------------------------------------------ windows
    def window(self, t0_s: float, t1_s: float, cols: int) -> dict:
        """Min/max/envelope columns of every EMG channel and angle/velocity over [t0, t1)."""
        cols = int(min(max(cols, 1), MAX_COLUMNS))
        if not (math.isfinite(t0_s) and math.isfinite(t1_s)) or t1_s <= t0_s:
            raise ValueError("t1 must be after t0")
        out = {"t0_s": t0_s, "t1_s": t1_s}
        e = _decimate(self.emg, t0_s, t1_s, cols, envelope=True)
        out["emg"] = e
        if self.angle is not None:
            a = _decimate(self.angle, t0_s, t1_s, cols, channels=[0], sign=self.sign, mean=True)
            mean = np.asarray([np.nan if v is None else v for v in a.pop("mean")[0]])
            dt = a["dt_s"]
            vel = np.full_like(mean, np.nan)
            if mean.size > 1 and dt > 0:
                vel[1:] = np.diff(mean) / dt
            a["mean"] = to_json_rows(mean[:, None])[0]
            a["vel"] = to_json_rows(vel[:, None])[0]
            a["min"], a["max"] = a["min"][0], a["max"][0]
            out["angle"] = a
        return out

    def sweeps(self, max_sweeps: int = 1000, pre_ms: float = 10.0, post_ms: float = 70.0) -> dict:
        """The EMG around each stimulus (one small slice each), for the overlaid sweeps."""
        rate = self.emg.rate_hz
        channel = 0
        an = self._analysis()
        if an and "channel" in an:
            channel = an["channel"]
        pre, post = round(pre_ms * rate / 1000), round(post_ms * rate / 1000)
        ds = self.emg.counts
        n = ds.shape[0]
        out = []
        stims = [e for e in self.session.events if e["kind"] == "stimulus"]
        for k, ev in enumerate(stims[:max_sweeps]):
            i = ev.get("emg_sample_index")
            if i is None or i < 0:
                continue
            a, b = i - pre, i + post
            if a < 0 or b > n:
                continue
            y = _physical(ds[a:b, channel : channel + 1], self.emg, [channel])[:, 0]
            step = max(1, y.size // 400)
            y = y[: (y.size // step) * step].reshape(-1, step).mean(axis=1)
            out.append(
                {
                    "id": k,
                    "time_s": i / rate,
                    "intensity_ma": _num(ev.get("intensity_ma")),
                    "t0_ms": -pre_ms,
                    "dt_ms": 1000.0 * step / rate,
                    "y": to_json_rows(y[:, None])[0],
                }
            )
        return {"channel": channel, "sweeps": out}


def _physical(counts: np.ndarray, stream, channels) -> np.ndarray:
    c = np.asarray(counts)
    x = (c - stream.offset[channels]) * stream.scale[channels]
    x[c == stream.fill_value] = np.nan
    return x


def _decimate(stream, t0_s, t1_s, cols, *, channels=None, sign=1, envelope=False, mean=False):
    rate = stream.rate_hz
    n = stream.n_samples
    chans = list(range(stream.n_channels)) if channels is None else list(channels)
    a = max(0, math.floor((t0_s - stream.t0_s) * rate))
    b = min(n, math.ceil((t1_s - stream.t0_s) * rate))
    span = max(0, b - a)
    spc = max(1, math.ceil(span / cols))
    n_cols = math.ceil(span / spc) if span else 0
    ds = stream.counts
    sampled = span * len(chans) > EXACT_MAX_VALUES and spc > 1
    lo = np.full((n_cols, len(chans)), np.nan)
    hi, env, avg = lo.copy(), lo.copy(), lo.copy()
    sel = slice(chans[0], chans[-1] + 1) if chans == list(range(chans[0], chans[-1] + 1)) else chans
    env_spc = max(1, round(rate * 0.01))
    if not sampled:
        per_piece = max(1, PIECE_ROWS // spc)
        for c0 in range(0, n_cols, per_piece):
            c1 = min(n_cols, c0 + per_piece)
            r0, r1 = a + c0 * spc, min(b, a + c1 * spc)
            x = sign * _physical(ds[r0:r1, sel], stream, chans)
            pad = (c1 - c0) * spc - x.shape[0]
            if pad:
                x = np.vstack([x, np.full((pad, x.shape[1]), np.nan)])
            lo[c0:c1], hi[c0:c1] = column_minmax(x, spc)
            if mean:
                avg[c0:c1] = column_mean(x, spc)
            if envelope:
                env[c0:c1] = _envelope(x, spc, env_spc)
    else:
        chunk = (ds.chunks or (spc,))[0]
        for k in range(n_cols):
            c_start = a + k * spc
            r0 = -(-c_start // chunk) * chunk  # the first chunk boundary in the column
            if r0 >= min(b, c_start + spc):
                r0 = c_start
            r1 = min(b, c_start + spc, r0 + chunk)
            x = sign * _physical(ds[r0:r1, sel], stream, chans)
            lo[k], hi[k] = np.fmin.reduce(x, axis=0), np.fmax.reduce(x, axis=0)
            if mean:
                avg[k] = column_mean(x, x.shape[0])[0]
            if envelope:
                m = (x.shape[0] // env_spc) * env_spc
                env[k] = np.nanmean(column_envelope(x[:m], env_spc), axis=0) if m else np.nan
    out = {
        "start_s": stream.t0_s + a / rate,
        "dt_s": spc / rate,
        "n": n_cols,
        "sampled": bool(sampled),
        "min": to_json_rows(lo),
        "max": to_json_rows(hi),
    }
    if envelope:
        out["env"] = to_json_rows(env)
    if mean:
        out["mean"] = to_json_rows(avg)
    return out


def _envelope(x: np.ndarray, spc: int, env_spc: int) -> np.ndarray:
    """Envelope per column: of the column itself, or of its 10 ms block when it is shorter."""
    if spc >= env_spc:
        return column_envelope(x, spc)
    group = max(1, env_spc // spc) * spc
    m = (x.shape[0] // group) * group
    e = np.full((x.shape[0] // spc, x.shape[1]), np.nan)
    if m:
        e_blocks = column_envelope(x[:m], group)
        e[: m // spc] = np.repeat(e_blocks, group // spc, axis=0)
    return e


def _num(v):
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, float)):
        return float(v) if math.isfinite(v) else None
    return None


def _small(params, ev) -> dict:
    out = {}
    for k, v in (params or {}).items():
        if isinstance(v, (str, bool)) or v is None:
            out[k] = v
        elif isinstance(v, (int, float)):
            out[k] = _num(v)
    for k in ("intensity_ma", "pulse_index"):
        if ev.get(k) is not None:
            out[k] = _num(ev[k])
    return out
