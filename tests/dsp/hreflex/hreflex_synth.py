"""Small synthetic H-reflex sessions with exact truth, made in the tests (no simulator needed)."""

from __future__ import annotations

import numpy as np


def _wave(t_ms, latency_ms, period_ms):
    """One biphasic cycle starting sharply at ``latency_ms``; peak-to-peak 2."""
    u = (t_ms - latency_ms) / period_ms
    return np.where((u >= 0) & (u <= 1), np.sin(2 * np.pi * u), 0.0)


def m_truth(i_ma, mmax=8000.0, i50=15.0, s=1.5):
    return mmax / (1 + np.exp(-(i_ma - i50) / s))


def h_truth(i_ma, hmax=2400.0, peak=11.0, width=3.0):
    return hmax * np.exp(-0.5 * ((i_ma - peak) / width) ** 2)


def make_session(
    seed=0,
    rate_hz=5000.0,
    *,
    saturate_ms=0.0,
    offset_samples=1,
    noise_uv=5.0,
    rdd=None,
    ppd=0.6,
    m_latency_ms=6.0,
    h_latency_ms=30.0,
    hmax=2400.0,
    mmax=8000.0,
    rail_uv=12000.0,
    ladder=None,
    high_background=(),
):
    """A recruitment ladder (10 s apart), rate blocks at one intensity, and paired pulses."""
    rng = np.random.default_rng(seed)
    rdd = {0.1: 1.0, 1.0: 0.7, 2.0: 0.55} if rdd is None else rdd
    if ladder is None:
        ladder = np.repeat(np.arange(4.0, 28.01, 1.0), 2)
        rng.shuffle(ladder)
    times, inten, pidx, hscale = [], [], [], []
    t = 1.0
    for i in ladder:
        times.append(t)
        inten.append(i)
        pidx.append(0)
        hscale.append(1.0)
        t += 10.0 + rng.uniform(-0.5, 0.5)
    test_i = 12.0
    for f, ratio in rdd.items():
        t += 10.0
        for k in range(8):
            times.append(t)
            inten.append(test_i)
            pidx.append(0)
            hscale.append(1.0 if k == 0 else ratio)
            t += 1.0 / f
    for _ in range(6):
        t += 10.0
        times += [t, t + 2.5]
        inten += [test_i, test_i]
        pidx += [0, 1]
        hscale += [1.0, ppd]
        t += 2.5
    t += 1.0
    n = int(t * rate_hz)
    x = rng.normal(0.0, noise_uv, n)
    idx = np.round(np.array(times) * rate_hz).astype(np.int64)
    inten = np.array(inten)
    per_ms = rate_hz / 1000.0
    t_ms = np.arange(round(100 * per_ms)) / per_ms
    m_amp = m_truth(inten, mmax=mmax)
    h_amp = h_truth(inten, hmax=hmax) * np.array(hscale)
    art_len = round(3 * per_ms)
    for k, e in enumerate(idx):
        o = e + offset_samples
        resp = (m_amp[k] / 2) * _wave(t_ms, m_latency_ms, 8.0) + (h_amp[k] / 2) * _wave(
            t_ms, h_latency_ms, 10.0
        )
        x[o : o + t_ms.size] += resp
        art = 3000.0 * (inten[k] / 10) * np.exp(-np.arange(art_len) / (0.3 * per_ms))
        x[o : o + art_len] += art
        if saturate_ms > 0:
            x[o : o + round(saturate_ms * per_ms)] = rail_uv
    for k in high_background:
        e = idx[k]
        x[e - round(60 * per_ms) : e - round(3 * per_ms)] += rng.normal(0, 80.0, round(57 * per_ms))
    x = np.clip(x, -rail_uv, rail_uv)
    return {
        "emg_uv": x,
        "rate_hz": rate_hz,
        "idx": idx,
        "intensity": inten,
        "pulse_index": np.array(pidx),
        "truth": {
            "mmax_uv": mmax,
            "hmax_uv": hmax,
            "hmax_mmax": hmax / mmax,
            "m_latency_ms": m_latency_ms,
            "h_latency_ms": h_latency_ms,
            "rdd": rdd,
            "ppd": ppd,
            "offset_samples": offset_samples,
            "m_amp": m_amp,
            "h_amp": h_amp,
        },
    }
