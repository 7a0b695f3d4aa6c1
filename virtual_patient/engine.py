"""The signal engine shared by the batch simulators and :class:`PatientSource`.

Everything is a function of the absolute sample index, so blocks of any size give the same
samples: the stochastic parts come from fixed 16384-sample chunks, each drawn from its own
``numpy.random.default_rng([seed, stream, chunk])`` (the EMG carrier's band-pass filter state is
carried from chunk to chunk), and the deterministic parts (stretches, evoked waves, artifacts,
powerline, pops) are evaluated pointwise.

EMG channel c (uV, before the ADC)::

    emg_c = gain_c * sum_m X[c, m] * (env_m * carrier_m + waves_m)
            + gain_c * artifact_decay**c * stimulus_artifact
            + noise_scale * (motion_c + powerline_c + pops_c + baseline_noise_uv * white_c
                             + dc_c + wander_c + ecg_c)

with m the muscle under electrode m (muscle 0 is the tested muscle: stretch reflex, M and H
waves), X the cross-talk matrix (1 on the diagonal, ``crosstalk ** |c - m|`` elsewhere),
``carrier`` unit-variance band-limited noise (``emg_band_hz``), ``env`` the RMS envelope.
"""

from __future__ import annotations

import bisect
import dataclasses
import math

import numpy as np
from scipy.signal import butter, sosfilt

from .errors import ProfileError, ProgramError, SourceStateError
from .hreflex import (
    _TEMPLATES,
    _h_peak,
    artifact_duration_s,
    depression_factor,
    recruitment,
    render_artifact,
    render_wave,
    test_intensity_ma,
)
from .profiles import Profile
from .stretch import GRID_RATE_HZ, StretchEpisode, StretchSpec, tardieu_summary

_S_CONST, _S_EMG, _S_WARM, _S_ANGLE, _S_STIM, _S_STRETCH, _S_TONIC, _S_WANDER, _S_ECG = range(9)
_WANDER_KNOT_S = 2.0
_EMG_CHUNK = 16384
_ECG_JITTER = 0.03
_INT32_MAX = 2**31 - 1


def _refuse_nan(values: np.ndarray, what: str) -> None:
    """Raise ProfileError if ``values`` hold a NaN (one pass: NaN propagates through min)."""
    if values.size and np.isnan(np.min(values)):
        raise ProfileError(
            f"the {what} signal came out NaN; a profile parameter is out of its valid range"
        )


class Engine:
    """Sample generator for one patient at fixed rates (see module docstring)."""

    def __init__(
        self,
        profile: Profile,
        seed: int,
        *,
        emg_rate_hz: float,
        n_emg: int,
        angle_rate_hz: float,
        n_angle: int = 1,
        emg_bits: int = 16,
    ) -> None:
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ProgramError("seed must be a non-negative integer")
        if emg_rate_hz <= 0 or angle_rate_hz <= 0:
            raise ProgramError("sampling rates must be > 0 Hz")
        if not 1 <= n_emg <= 64 or not 1 <= n_angle <= 8:
            raise ProgramError("n_emg must be 1-64 and n_angle 1-8")
        if not 8 <= emg_bits <= 24:
            raise ProgramError("emg_bits must be 8-24")
        p = self.profile = profile
        self.seed = int(seed)
        self.fe = float(emg_rate_hz)
        self.fa = float(angle_rate_hz)
        self.n_emg = int(n_emg)
        self.n_angle = int(n_angle)
        self.emg_bits = int(emg_bits)
        self.emg_scale_uv = p.emg_full_scale_uv / 2 ** (emg_bits - 1)
        self.emg_lo = -(2 ** (emg_bits - 1))
        self.emg_hi = 2 ** (emg_bits - 1) - 1

        const = np.random.default_rng([self.seed, _S_CONST])
        ch = self.n_emg
        self.gain = 1.0 + p.channel_gain_sd * const.standard_normal(ch)
        dist = np.abs(np.arange(ch)[:, None] - np.arange(ch)[None, :])
        self.crosstalk = np.where(dist == 0, 1.0, p.crosstalk**dist)
        self.crosstalk[dist > 2] = 0.0
        # powerline: per channel amplitude factor and phase per harmonic
        n_h = len(p.powerline_uv)
        amp = np.asarray(p.powerline_uv)[:, None] * const.uniform(0.6, 1.4, (n_h, ch))
        ph = const.uniform(0, 2 * np.pi, (n_h, ch))
        # a*sin(x + ph) = a*cos(ph) sin x + a*sin(ph) cos x
        self._pl_coef = np.concatenate([amp * np.cos(ph), amp * np.sin(ph)], axis=0)
        self.motion_coef = const.uniform(0.5, 1.5, ch) * const.choice([-1.0, 1.0], ch)
        # drawn last so that adding them left every earlier per-channel constant unchanged
        self.dc_offset = p.dc_offset_uv * const.standard_normal(ch)
        self.ecg_coef = const.uniform(0.3, 1.0, ch) * const.choice([-1.0, 1.0], ch)
        self._pl_table: np.ndarray | bool | None = None
        self._tonic_knots: dict[int, np.ndarray] = {}
        self._tardieu: dict | None = None

        lo, hi = p.emg_band_hz
        hi = min(hi, 0.45 * self.fe)
        if hi <= 1.5 * lo:
            raise ProgramError(
                f"emg_rate_hz {self.fe:g} is too low for the EMG band from {lo:g} Hz; use at "
                f"least {3.4 * lo:g} Hz"
            )
        self.band_hz = (lo, hi)
        sos = butter(2, [lo, hi], "bandpass", fs=self.fe, output="sos")
        if p.emg_shape_hz and p.emg_shape_hz < 0.45 * self.fe:
            sos = np.vstack([sos, butter(2, p.emg_shape_hz, fs=self.fe, output="sos")])
        self.sos = sos

        imp = np.zeros(int(4 * self.fe))
        imp[0] = 1.0
        self.carrier_norm = 1.0 / math.sqrt(float(np.sum(sosfilt(self.sos, imp) ** 2)))
        self.sos = self.sos.copy()
        self.sos[0, :3] *= self.carrier_norm  # the filter itself gives unit variance
        warm = np.random.default_rng([self.seed, _S_WARM]).standard_normal((ch, int(self.fe)))
        zi = np.zeros((self.sos.shape[0], ch, 2))
        _, self._zi = sosfilt(self.sos, warm, axis=-1, zi=zi)

        self.chunk = _EMG_CHUNK  # fixed in samples: the random streams never depend on blocks
        self.achunk = max(round(self.fa), 16)
        self._chunks: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._next_chunk = 0
        self._achunks: dict[int, np.ndarray] = {}
        self.pops: list[tuple[int, int, float, float]] = []  # (sample, channel, uv, decay samples)
        self._pop_starts: list[int] = []

        self.episodes: list[StretchEpisode] = []
        self._next_key = 0  # random stream of the next stretch added (its addition order)
        self._ep_starts: list[float] = []
        self.stimuli: list[dict] = []
        self._stim_idx: list[int] = []
        self._stim_window = 0
        self.prompts: list[dict] = []

    # ------------------------------------------------------------------ programs
    def add_stretch(self, spec: StretchSpec) -> dict:
        """Schedule a stretch (must start after the previous one ended); returns its truth."""
        if self.episodes and spec.start_s < self.episodes[-1].end_s:
            raise ProgramError(
                f"stretch at {spec.start_s:.3f} s starts before the previous one ends "
                f"({self.episodes[-1].end_s:.3f} s); space the stretches further apart"
            )
        if spec.start_s < 0:
            raise ProgramError("stretch start_s must be >= 0")
        ep = self._episode(spec, self._next_key, len(self.episodes))
        self._next_key += 1
        self.episodes.append(ep)
        self._ep_starts.append(ep.t0_s)
        return ep.truth

    def insert_stretch(
        self, spec: StretchSpec, *, gap_s: float, prompted: bool = True
    ) -> tuple[dict, float]:
        """Insert a stretch among the scheduled ones; the stretches starting after it are
        delayed, all by the same amount, just enough that the next one starts ``gap_s`` after
        the inserted one ends (rest pad included).

        Parameters
        ----------
        spec : StretchSpec
            The stretch; it must start after the end of every stretch before it.
        gap_s : float
            Rest (s) kept between the inserted stretch and the next scheduled one.
        prompted : bool
            Marks the stretch as asked for by a host prompt (``Engine.episodes[k].prompted``).

        Returns
        -------
        truth : dict
            The inserted stretch's truth.
        delay_s : float
            How much the later stretches were delayed (s, 0 if they did not need to move).

        Notes
        -----
        Each stretch keeps the random stream it was drawn with (keyed by the order stretches
        were added, not by their position), so a delayed stretch is the same movement, later.
        Callers must only insert before stretches whose samples were not generated yet.
        """
        if spec.start_s < 0:
            raise ProgramError("stretch start_s must be >= 0")
        j = bisect.bisect_right(self._ep_starts, spec.start_s)
        if j > 0 and spec.start_s < self.episodes[j - 1].end_s:
            raise ProgramError(
                f"stretch at {spec.start_s:.3f} s starts before the previous one ends "
                f"({self.episodes[j - 1].end_s:.3f} s)"
            )
        ep = self._episode(spec, self._next_key, j, prompted)
        later = self.episodes[j:]
        delay = max(0.0, ep.end_s + gap_s - later[0].t0_s) if later else 0.0
        moved = [
            self._episode(
                dataclasses.replace(e.spec, start_s=e.t0_s + delay), e.key, j + 1 + i, e.prompted
            )
            if delay > 0
            else e
            for i, e in enumerate(later)
        ]
        for i, e in enumerate(moved):
            e.truth["index"] = j + 1 + i
        self._next_key += 1
        self.episodes[j:] = [ep, *moved]
        self._ep_starts[j:] = [e.t0_s for e in self.episodes[j:]]
        for prompt in self.prompts:
            if prompt.get("stretch_index") is not None and prompt["stretch_index"] >= j:
                prompt["stretch_index"] += 1
        return ep.truth, delay

    def _episode(
        self, spec: StretchSpec, key: int, index: int, prompted: bool = False
    ) -> StretchEpisode:
        """One stretch drawn from random stream ``key`` (its addition order), with the reflex
        burst size in the recorded channel 0 (RMS envelope, channel gain included)."""
        rng = np.random.default_rng([self.seed, _S_STRETCH, key])
        ep = StretchEpisode(spec, spec.start_s, self.profile, rng, index)
        ep.spec = spec
        ep.key = key
        ep.prompted = prompted
        ep.angle_rel = ep.angle_deg - self.profile.rest_angle_deg
        g0 = float(self.gain[0])
        burst = None
        if ep.truth["emg_onset_s"] is not None:
            t_on = ep.truth["emg_onset_s"] - ep.t0_s
            i0 = int(np.ceil(t_on * GRID_RATE_HZ))
            win = ep.envelope_uv[i0 : i0 + int(0.1 * GRID_RATE_HZ)]
            burst = {
                "peak_envelope_uv": g0 * float(ep.envelope_uv.max()),
                "mean_envelope_100ms_uv": g0 * float(win.mean()) if win.size else 0.0,
            }
        ep.truth["burst"] = burst
        return ep

    @property
    def stretches_end_s(self) -> float:
        return self.episodes[-1].end_s if self.episodes else 0.0

    def add_stimulus(
        self, emg_sample_index: int, intensity_ma: float, width_us: float, pulse_index: int = 0
    ) -> dict:
        """Register a stimulus pulse at an EMG sample; returns its truth record."""
        p = self.profile
        idx = int(emg_sample_index)
        if idx < 0:
            raise ProgramError("stimulus sample index must be >= 0")
        if self._stim_idx and idx <= self._stim_idx[-1]:
            raise ProgramError("stimuli must be given in increasing sample order")
        if intensity_ma < 0 or width_us <= 0:
            raise ProgramError("stimulus intensity must be >= 0 mA and width > 0 us")
        k = len(self.stimuli)
        rng = np.random.default_rng([self.seed, _S_STIM, k])
        z = rng.standard_normal(4)
        interval = (idx - self._stim_idx[-1]) / self.fe if self._stim_idx else None
        m_exp, h_fresh = (float(v) for v in recruitment(p, intensity_ma))
        dep = depression_factor(p, interval)
        h_exp = h_fresh * dep
        m_amp = m_exp * math.exp(p.m_cv * z[0] - 0.5 * p.m_cv**2)
        h_amp = h_exp * math.exp(p.h_cv * z[1] - 0.5 * p.h_cv**2)
        m_lat = (p.m_latency_ms + p.m_latency_sd_ms * z[2]) / 1000.0
        h_lat = (p.h_latency_ms + p.h_latency_sd_ms * z[3]) / 1000.0
        m_dur = p.m_duration_ms / 1000.0
        h_dur = p.h_duration_ms / 1000.0
        g0 = float(self.gain[0])
        # sampled noiseless waves as they appear in channel 0
        j = np.arange(math.ceil((h_lat + h_dur) * self.fe) + 2)
        tr = j / self.fe
        m_w = g0 * p.m_polarity * render_wave(tr, m_lat, m_dur, p.m_phases, m_amp)
        h_w = g0 * p.h_polarity * render_wave(tr, h_lat, h_dur, p.h_phases, h_amp)
        _, m_peak_u = _TEMPLATES[p.m_phases]
        _, h_peak_u = _TEMPLATES[p.h_phases]
        rec = {
            "index": k,
            "emg_sample_index": idx,
            "time_s": idx / self.fe,
            "intensity_ma": float(intensity_ma),
            "width_us": float(width_us),
            "pulse_index": int(pulse_index),
            "interval_s": interval,
            "depression_factor": dep,
            "m_expected_p2p_uv": g0 * m_exp,
            "h_fresh_p2p_uv": g0 * h_fresh,
            "h_expected_p2p_uv": g0 * h_exp,
            "m_model_p2p_uv": g0 * m_amp,
            "h_model_p2p_uv": g0 * h_amp,
            "m_p2p_uv": float(np.ptp(m_w)),
            "h_p2p_uv": float(np.ptp(h_w)),
            "m_latency_ms": m_lat * 1000.0,
            "h_latency_ms": h_lat * 1000.0,
            "m_peak_latency_ms": (m_lat + m_peak_u * m_dur) * 1000.0,
            "h_peak_latency_ms": (h_lat + h_peak_u * h_dur) * 1000.0,
            "artifact_peak_uv": g0 * p.artifact_uv_per_ma * float(intensity_ma),
            "background_emg_uv": g0 * float(self.tonic_level(np.array([idx / self.fe]))[0, 0]),
        }
        self.stimuli.append(
            dict(
                rec,
                _m=(m_lat, m_dur, m_amp),
                _h=(h_lat, h_dur, h_amp),
            )
        )
        self._stim_idx.append(idx)
        win = max(h_lat + h_dur, artifact_duration_s(p, width_us)) + 0.01
        self._stim_window = max(self._stim_window, math.ceil(win * self.fe))
        return rec

    def cancel_stimuli(self, from_index: int) -> int:
        """Drop the stimuli at EMG sample ``from_index`` or later (never delivered); returns
        how many. Call only for samples not generated yet."""
        k = bisect.bisect_left(self._stim_idx, int(from_index))
        dropped = len(self._stim_idx) - k
        del self._stim_idx[k:]
        del self.stimuli[k:]
        return dropped

    # ------------------------------------------------------------------ chunks
    def _gen_chunk(self, k: int) -> None:
        p = self.profile
        ch = self.n_emg
        L = self.chunk
        rng = np.random.default_rng([self.seed, _S_EMG, k])
        white = rng.standard_normal((ch, L))
        carrier, self._zi = sosfilt(self.sos, white, axis=-1, zi=self._zi)
        # amplifier noise, drawn already scaled (the same realisation at every noise level)
        noise = rng.standard_normal((ch, L))
        noise *= p.noise_scale * p.baseline_noise_uv
        lam = p.pops_per_min * L / self.fe / 60.0
        counts = rng.poisson(lam, ch) if lam > 0 else np.zeros(ch, int)
        new = []
        for c in range(ch):
            for _ in range(int(counts[c])):
                pos = k * L + int(rng.integers(0, L))
                uv = float(rng.uniform(*p.pop_uv)) * float(rng.choice([-1.0, 1.0]))
                decay = float(rng.uniform(*p.pop_decay_s)) * self.fe
                new.append((pos, c, uv, decay))
        new.sort()
        for pop in new:
            self.pops.append(pop)
            self._pop_starts.append(pop[0])
        self._chunks[k] = (carrier, noise)

    def _fetch(self, i0: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        k0 = i0 // self.chunk
        k1 = (i0 + n - 1) // self.chunk
        if k0 not in self._chunks and k0 < self._next_chunk:
            raise SourceStateError("EMG samples are generated in order; this range was released")
        while self._next_chunk <= k1:
            self._gen_chunk(self._next_chunk)
            self._next_chunk += 1
        for old in [k for k in self._chunks if k < k0]:
            del self._chunks[old]
        a = i0 - k0 * self.chunk
        if k0 == k1:
            c, w = self._chunks[k0]
            return c[:, a : a + n], w[:, a : a + n]
        cs = np.concatenate([self._chunks[k][0] for k in range(k0, k1 + 1)], axis=1)
        ws = np.concatenate([self._chunks[k][1] for k in range(k0, k1 + 1)], axis=1)
        return cs[:, a : a + n], ws[:, a : a + n]

    # ------------------------------------------------------------------ rendering
    def _episodes_in(self, ta: float, tb: float) -> list[StretchEpisode]:
        """Stretches overlapping [ta, tb] (they are sorted and never overlap each other)."""
        j = bisect.bisect_right(self._ep_starts, tb)
        i = j
        while i > 0 and self.episodes[i - 1].end_s >= ta:
            i -= 1
        return self.episodes[i:j]

    def emg_uv(self, i0: int, n: int) -> np.ndarray:
        """Physical EMG (uV, before the ADC) of samples ``i0 .. i0+n-1``, shape (n, n_emg).

        Computed channel-major; the result is a transposed (Fortran-ordered) view.
        """
        p = self.profile
        ns = p.noise_scale
        ch = self.n_emg
        if n <= 0:
            return np.zeros((0, ch))
        # internal layout: (channel, sample)
        carrier, white = self._fetch(i0, n)
        idx = i0 + np.arange(n)
        t = idx / self.fe
        ta, tb = t[0], t[-1]
        src = carrier * self.tonic_level(t)
        eps = self._episodes_in(ta, tb)
        acc = None
        for ep in eps:
            env = ep.sample(ep.envelope_uv, t)
            if ep.truth["emg_onset_s"] is not None:
                env[t < ep.truth["emg_onset_s"]] = 0.0  # exactly silent before the onset
            src[0] += env * carrier[0]
            a = ep.sample(ep.accel_deg_s2, t)
            acc = a if acc is None else acc + a
        # evoked waves and stimulus artifacts
        art = None
        lo = bisect.bisect_left(self._stim_idx, i0 - self._stim_window)
        hi = bisect.bisect_right(self._stim_idx, i0 + n - 1)
        for s in self.stimuli[lo:hi]:
            tr = (idx - s["emg_sample_index"]) / self.fe
            if s["_m"][2] > 0 or s["_h"][2] > 0:
                m_lat, m_dur, m_amp = s["_m"]
                h_lat, h_dur, h_amp = s["_h"]
                src[0] += p.m_polarity * render_wave(tr, m_lat, m_dur, p.m_phases, m_amp)
                src[0] += p.h_polarity * render_wave(tr, h_lat, h_dur, p.h_phases, h_amp)
            a = render_artifact(tr, p, s["intensity_ma"], s["width_us"])
            art = a if art is None else art + a
        out = self._mix(src)
        if art is not None:
            out += (self.gain * p.artifact_channel_decay ** np.arange(ch))[:, None] * art
        if ns > 0:
            if acc is not None and p.motion_artifact_uv:
                out += ((ns * p.motion_artifact_uv / 2000.0) * self.motion_coef)[:, None] * acc
            if any(p.powerline_uv):
                out += self._powerline(i0, n, idx, ns)
            self._add_pops(out, i0, n, ns)
            if p.dc_offset_uv:
                out += (ns * self.dc_offset)[:, None]
            if p.baseline_wander_uv:
                out += ns * self._wander(t)
            if p.ecg_uv:
                out += (ns * p.ecg_uv * self.ecg_coef)[:, None] * self.ecg_wave(t)
            if p.baseline_noise_uv:
                out += white  # already N(0, noise_scale * baseline_noise_uv)
        return out.T

    def tonic_level(self, t_s: np.ndarray) -> np.ndarray:
        """Background EMG RMS (uV, unit gain) of every muscle at times t_s: shape (n_emg, n).

        Linear between knots every ``tonic_fluctuation_s`` whose levels are
        ``tonic_emg_uv * exp(sigma * z_k - sigma**2 / 2)``, z_k independent standard normals
        (each knot from its own generator, so any block gives the same values).
        """
        p = self.profile
        sig = p.tonic_fluctuation
        if sig == 0 or p.tonic_emg_uv == 0 or len(t_s) == 0:
            return np.full((self.n_emg, 1), p.tonic_emg_uv)
        u = t_s / p.tonic_fluctuation_s
        k0 = int(np.floor(u[0]))
        k1 = int(np.floor(u[-1])) + 1
        z = np.stack([self._tonic_knot(k) for k in range(k0, k1 + 1)], axis=1)
        levels = p.tonic_emg_uv * np.exp(sig * z - 0.5 * sig**2)
        pos = u - k0
        out = np.empty((self.n_emg, len(t_s)))
        grid = np.arange(levels.shape[1])
        for c in range(self.n_emg):
            out[c] = np.interp(pos, grid, levels[c])
        return out

    def _wander(self, t_s: np.ndarray) -> np.ndarray:
        """Slow baseline drift (uV), (n_emg, n): linear between N(0, wander) knots every 2 s."""
        u = t_s / _WANDER_KNOT_S
        k0, k1 = int(np.floor(u[0])), int(np.floor(u[-1])) + 1
        knots = np.stack(
            [np.random.default_rng([self.seed, _S_WANDER, k]).standard_normal(self.n_emg)
             for k in range(k0, k1 + 1)], axis=1,
        ) * self.profile.baseline_wander_uv  # fmt: skip
        grid = np.arange(knots.shape[1])
        return np.stack([np.interp(u - k0, grid, knots[c]) for c in range(self.n_emg)])

    def beat_times_s(self, ta: float, tb: float) -> np.ndarray:
        """R-wave times (s) of the ECG contamination within [ta, tb]: beat k at
        ``(k + 0.5 + 0.03 z_k) * RR``, z_k from its own generator."""
        rr = 60.0 / self.profile.heart_rate_bpm
        k0 = max(int(np.floor(ta / rr)) - 1, 0)
        k1 = int(np.ceil(tb / rr)) + 1
        ks = np.arange(k0, k1 + 1)
        z = np.array(
            [np.random.default_rng([self.seed, _S_ECG, int(k)]).standard_normal() for k in ks]
        )
        t = (ks + 0.5 + _ECG_JITTER * z) * rr
        return t[(t >= ta) & (t <= tb)]

    def ecg_wave(self, t_s: np.ndarray) -> np.ndarray:
        """Unit-amplitude ECG contamination at times t_s: QRS (80 ms, triphasic) and T wave."""
        out = np.zeros(len(t_s))
        if len(t_s) == 0:
            return out
        for tr in self.beat_times_s(t_s[0] - 0.5, t_s[-1] + 0.1):
            a = np.searchsorted(t_s, tr - 0.05)
            b = np.searchsorted(t_s, tr + 0.45)
            if b <= a:
                continue
            x = t_s[a:b] - tr
            out[a:b] -= render_wave(x, -0.04, 0.08, 3, 1.0) / 0.7341  # R peak 1 at x = 0
            out[a:b] += 0.25 * np.exp(-0.5 * ((x - 0.25) / 0.05) ** 2)
        return out

    def _tonic_knot(self, k: int) -> np.ndarray:
        cache = self._tonic_knots
        if k not in cache:
            if len(cache) > 256:
                cache.clear()
            cache[k] = np.random.default_rng([self.seed, _S_TONIC, k]).standard_normal(self.n_emg)
        return cache[k]

    def _mix(self, src: np.ndarray) -> np.ndarray:
        """Cross-talk (banded: neighbours and next neighbours) then channel gain."""
        ch = src.shape[0]
        g = self.gain[:, None]
        out = src * g
        for d in (1, 2):
            if ch > d and self.crosstalk[0, d] != 0:
                c = self.crosstalk[0, d]
                out[d:] += (c * g[d:]) * src[:-d]
                out[:-d] += (c * g[:-d]) * src[d:]
        return out

    def _powerline(self, i0: int, n: int, idx: np.ndarray, ns: float) -> np.ndarray:
        """Powerline (uV) for samples idx; a one-period table when the period is whole."""
        f0, fe = self.profile.mains_hz, self.fe
        if self._pl_table is None:
            period = None
            if float(f0).is_integer() and float(fe).is_integer() and f0 > 0:
                period = int(fe) // math.gcd(int(fe), int(f0))
            if period is not None and period <= 100000:
                table_idx = np.arange(period)
                self._pl_table = np.ascontiguousarray(
                    (self._powerline_basis(table_idx) @ self._pl_coef).T
                )
            else:
                self._pl_table = False
        if self._pl_table is False:
            return ns * (self._powerline_basis(idx) @ self._pl_coef).T
        period = self._pl_table.shape[1]
        rows = np.take(self._pl_table, (idx % period), axis=1)
        if ns != 1.0:
            rows *= ns
        return rows

    def _powerline_basis(self, idx: np.ndarray) -> np.ndarray:
        f0 = self.profile.mains_hz
        n_h = len(self.profile.powerline_uv)
        harm = 2 * np.arange(n_h) + 1  # 1st, 3rd, 5th, ...
        basis = np.empty((len(idx), 2 * n_h))
        idx_f = idx.astype(np.float64)
        for j, h in enumerate(harm):
            # phase from integer-exact arithmetic where possible, so it never drifts
            cyc = np.mod(idx_f * (h * f0), self.fe) / self.fe
            x = 2 * np.pi * cyc
            basis[:, j] = np.sin(x)
            basis[:, n_h + j] = np.cos(x)
        return basis

    def _add_pops(self, out: np.ndarray, i0: int, n: int, ns: float) -> None:
        if not self.pops:
            return
        span = int(8 * self.profile.pop_decay_s[1] * self.fe) + 1
        lo = bisect.bisect_left(self._pop_starts, i0 - span)
        hi = bisect.bisect_right(self._pop_starts, i0 + n - 1)
        for pos, c, uv, decay in self.pops[lo:hi]:
            a = max(pos - i0, 0)
            b = min(n, pos - i0 + int(8 * decay) + 1)
            if b <= a:
                continue
            k = np.arange(i0 + a, i0 + b) - pos
            out[c, a:b] += ns * uv * np.exp(-k / decay)

    def emg_counts(self, i0: int, n: int) -> np.ndarray:
        """ADC counts (int32, saturated at the ADC range) of ``n`` samples from ``i0``."""
        uv = self.emg_uv(i0, n)
        return self.quantise_emg(uv)

    def quantise_emg(self, uv: np.ndarray) -> np.ndarray:
        """Round to ADC counts and saturate; int32, C-ordered (n, n_emg).

        Raises
        ------
        ProfileError
            If any value is NaN (never quantised into a bogus count).
        """
        c = np.rint(uv * (1.0 / self.emg_scale_uv))
        _refuse_nan(c, "EMG")
        np.clip(c, self.emg_lo, self.emg_hi, out=c)
        return c.astype(np.int32, order="C")

    def render_into(self, i0: int, counts_out: np.ndarray, uv_out: np.ndarray) -> None:
        """Write counts (int32) and ``counts * emg_scale_uv`` (float64) of samples
        ``i0 .. i0 + len(counts_out) - 1`` into the given (n, n_emg) arrays."""
        c = np.rint(self.emg_uv(i0, len(counts_out)) * (1.0 / self.emg_scale_uv))
        _refuse_nan(c, "EMG")
        np.clip(c, self.emg_lo, self.emg_hi, out=c)
        np.copyto(counts_out, c, casting="unsafe")
        np.multiply(c, self.emg_scale_uv, out=uv_out)

    def joint_angle_deg(self, j0: int, m: int) -> np.ndarray:
        """True joint angle (deg, analysed convention) of angle samples ``j0 .. j0+m-1``."""
        t = (j0 + np.arange(m)) / self.fa
        theta = np.full(m, self.profile.rest_angle_deg)
        if m:
            for ep in self._episodes_in(t[0], t[-1]):
                theta += ep.sample(ep.angle_rel, t)
        return theta

    def goniometer_deg(self, j0: int, m: int) -> np.ndarray:
        """Goniometer reading (deg, before quantisation), shape (m, n_angle)."""
        p = self.profile
        theta = self.joint_angle_deg(j0, m)
        read = p.goniometer_sign * (p.goniometer_gain * theta + p.goniometer_offset_deg)
        out = np.repeat(read[:, None], self.n_angle, axis=1)
        if p.goniometer_noise_deg > 0 and p.noise_scale > 0 and m:
            k0 = j0 // self.achunk
            k1 = (j0 + m - 1) // self.achunk
            noise = np.concatenate([self._angle_noise(k) for k in range(k0, k1 + 1)])
            a = j0 - k0 * self.achunk
            out += (p.noise_scale * p.goniometer_noise_deg) * noise[a : a + m]
        return out

    def _angle_noise(self, k: int) -> np.ndarray:
        if k not in self._achunks:
            rng = np.random.default_rng([self.seed, _S_ANGLE, k])
            if len(self._achunks) > 4:
                self._achunks.clear()
            self._achunks[k] = rng.standard_normal((self.achunk, self.n_angle))
        return self._achunks[k]

    def angle_counts(self, j0: int, m: int) -> np.ndarray:
        """Goniometer ADC counts (int32) of angle samples ``j0 .. j0+m-1``, shape (m, n_angle):
        ``round(reading_deg / angle_scale_deg) + angle_offset_counts``."""
        p = self.profile
        c = np.rint(self.goniometer_deg(j0, m) / p.angle_scale_deg) + p.angle_offset_counts
        _refuse_nan(c, "goniometer")
        np.clip(c, -_INT32_MAX, _INT32_MAX, out=c)
        return c.astype(np.int32)

    # ------------------------------------------------------------------ truth
    def channel_table(self) -> list[dict]:
        p = self.profile
        out = []
        for c in range(self.n_emg):
            out.append(
                {
                    "name": f"emg{c}",
                    "kind": "emg",
                    "unit": "uV",
                    "scale": self.emg_scale_uv,
                    "offset": 0,
                    "highpass_hz": None,
                    "lowpass_hz": None,
                }
            )
        for a in range(self.n_angle):
            out.append(
                {
                    "name": f"angle{a}",
                    "kind": "angle",
                    "unit": "deg",
                    "scale": p.angle_scale_deg,
                    "offset": p.angle_offset_counts,
                    "highpass_hz": None,
                    "lowpass_hz": None,
                }
            )
        return out

    def truth(self) -> dict:
        """JSON-serialisable ground truth of everything scheduled so far."""
        p = self.profile
        stimuli = [{k: v for k, v in s.items() if not k.startswith("_")} for s in self.stimuli]
        if self._tardieu is None:
            self._tardieu = tardieu_summary(p)
        tardieu = self._tardieu
        out = {
            "schema": "virtual_patient.truth/1",
            "profile": p.to_dict(),
            "seed": self.seed,
            "emg_rate_hz": self.fe,
            "angle_rate_hz": self.fa,
            "emg_bits": self.emg_bits,
            "emg_scale_uv": self.emg_scale_uv,
            "emg_band_hz": list(self.band_hz),
            "channels": [
                {
                    "index": c,
                    "muscle": p.muscle if c == 0 else f"neighbour{c}",
                    "gain": float(self.gain[c]),
                    "crosstalk_row": [float(v) for v in self.crosstalk[c]],
                }
                for c in range(self.n_emg)
            ],
            "goniometer": {
                "sign": p.goniometer_sign,
                "gain": p.goniometer_gain,
                "offset_deg": p.goniometer_offset_deg,
                "noise_deg": p.goniometer_noise_deg * p.noise_scale,
                "scale_deg": p.angle_scale_deg,
                "offset_counts": p.angle_offset_counts,
            },
            "stretch_reflex": {
                "lambda_deg": p.lambda_deg,
                "mu_s": p.mu_s,
                "reflex_delay_s": p.reflex_delay_s,
                "passive_range_deg": [p.range_min_deg, p.range_max_deg],
                "rest_deg": p.rest_angle_deg,
                "tsrt_in_range": p.range_min_deg <= p.lambda_deg <= p.range_max_deg,
                "tardieu_grade": tardieu["grade"],
                "tardieu_r1_deg": tardieu["r1_deg"],
                "tardieu_r2_deg": tardieu["r2_deg"],
                "tardieu_v3_deg_s": p.tardieu_v3_deg_s,
            },
            "stretches": [ep.truth for ep in self.episodes],
            "stimuli": stimuli,
            "hreflex": self.hreflex_truth(),
            "noise": {
                "noise_scale": p.noise_scale,
                "baseline_noise_uv": p.noise_scale * p.baseline_noise_uv,
                "tonic_emg_uv": p.tonic_emg_uv,
                "powerline_rms_uv": [
                    p.noise_scale * float(np.sqrt(0.5 * np.sum(self._pl_coef[:, c] ** 2)))
                    for c in range(self.n_emg)
                ],
                "mains_hz": p.mains_hz,
            },
            "pops": [
                {"emg_sample_index": pos, "channel": c, "amplitude_uv": uv * p.noise_scale}
                for pos, c, uv, _ in self.pops
            ],
            "prompts": list(self.prompts),
        }
        return out

    def hreflex_truth(self) -> dict:
        p = self.profile
        g0 = float(self.gain[0])
        i_hmax, _ = _h_peak(p)
        freqs = [0.1, 0.2, 0.3, 1.0, 2.0]
        return {
            "muscle": p.muscle,
            "channel": 0,
            "channel_gain": g0,
            "mmax_p2p_uv": g0 * p.mmax_uv,
            "hmax_p2p_uv": g0 * p.mmax_uv * p.hmax_mmax,
            "hmax_mmax": p.hmax_mmax if p.mmax_uv > 0 else None,
            "i_hmax_ma": i_hmax,
            "test_intensity_ma": test_intensity_ma(p) if p.mmax_uv > 0 else None,
            "recruitment": {
                "m": {"model": "sigmoid", "i50_ma": p.m_i50_ma, "slope_ma": p.m_slope_ma},
                "h": {
                    "model": "rising sigmoid x falling sigmoid, scaled to Hmax",
                    "up_i50_ma": p.h_up_i50_ma,
                    "up_slope_ma": p.h_up_slope_ma,
                    "down_i50_ma": p.h_down_i50_ma,
                    "down_slope_ma": p.h_down_slope_ma,
                },
            },
            "latency_ms": {"m": p.m_latency_ms, "h": p.h_latency_ms},
            "depression_curve": {
                "interval_s": list(p.depression_interval_s),
                "ratio": list(p.depression_ratio),
                "frequency_hz": freqs,
                "h2_h1": [depression_factor(p, 1.0 / f) for f in freqs],
            },
        }
