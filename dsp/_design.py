"""Filter design in plain NumPy: Butterworth SOS, iirnotch, steady-state initial conditions.

Why not ``scipy.signal``: importing it costs about 0.65 s of CPU, more than everything else on
the path "import dsp, condition a recording" together (the warm-start target is 1 s). These
follow scipy's algorithms (``buttap`` -> pre-warped ``lp2*_zpk`` -> ``bilinear_zpk`` -> sections
pairing each conjugate pole pair with its nearest zeros; ``iirnotch``; ``sosfilt_zi``) and the
tests check them against scipy to rounding (frequency responses and coefficients).
"""

from __future__ import annotations

import numpy as np


def _butter_analog(order: int) -> np.ndarray:
    """Poles of the analog Butterworth prototype (cut-off 1 rad/s), as ``scipy.signal.buttap``."""
    m = np.arange(-order + 1, order, 2)
    return -np.exp(1j * np.pi * m / (2 * order))


def _bilinear(z, p, k, fs=2.0):
    fs2 = 2.0 * fs
    zd = (fs2 + z) / (fs2 - z)
    pd = (fs2 + p) / (fs2 - p)
    zd = np.append(zd, -np.ones(len(pd) - len(zd)))
    kd = k * np.real(np.prod(fs2 - z) / np.prod(fs2 - p))
    return zd, pd, kd


def butter_zpk(order: int, wn, btype: str, rate_hz: float):
    """Digital Butterworth zeros, poles, gain (``scipy.signal.butter(..., output='zpk')``)."""
    wn = 2.0 * np.atleast_1d(np.asarray(wn, dtype=float)) / rate_hz
    warped = 4.0 * np.tan(np.pi * wn / 2.0)  # pre-warp with the internal fs = 2
    p = _butter_analog(order)
    z = np.array([], dtype=complex)
    k = 1.0
    if btype == "lowpass":
        wo = warped[0]
        z, p, k = z * wo, p * wo, k * wo ** (len(p) - len(z))
    elif btype == "highpass":
        wo = warped[0]
        k = k * np.real(np.prod(-z) / np.prod(-p))
        z, p = wo / z if len(z) else z, wo / p
        z = np.append(z, np.zeros(len(p) - len(z)))
    elif btype == "bandpass":
        bw = warped[1] - warped[0]
        wo = np.sqrt(warped[0] * warped[1])
        degree = len(p) - len(z)
        z_lp, p_lp = z * bw / 2, p * bw / 2
        z_bp = np.concatenate([z_lp + np.sqrt(z_lp**2 - wo**2), z_lp - np.sqrt(z_lp**2 - wo**2)])
        p_bp = np.concatenate([p_lp + np.sqrt(p_lp**2 - wo**2), p_lp - np.sqrt(p_lp**2 - wo**2)])
        z = np.append(z_bp, np.zeros(degree))
        p = p_bp
        k = k * bw**degree
    else:  # pragma: no cover - callers pass one of the three
        raise ValueError(btype)
    return _bilinear(z, p, k)


def zpk_to_sos(z, p, k) -> np.ndarray:
    """Second-order sections of a real filter, one per conjugate pole pair (or real pole pair).

    Poles closest to the unit circle pick their nearest zeros first; sections are then ordered
    from the pole farthest from the unit circle to the closest (as scipy); the gain goes in the
    first section.
    """
    p = np.asarray(p, dtype=complex)
    z = list(np.asarray(z, dtype=complex))
    # one representative per conjugate pair (imag > 0), real poles kept apart
    cplx = [q for q in p if q.imag > 1e-12]
    real = sorted((q.real for q in p if abs(q.imag) <= 1e-12), key=abs)
    groups = [("c", q) for q in cplx]
    while len(real) >= 2:
        groups.append(("r2", (real.pop(0), real.pop(0))))
    if real:
        groups.append(("r1", real.pop()))
    # Closest to the unit circle first: those poles choose their zeros first (scipy 'nearest').
    groups.sort(key=lambda g: 1 - (abs(g[1]) if g[0] != "r2" else max(map(abs, g[1]))))
    sections = []
    for kind, q in groups:
        ref = q if kind != "r2" else q[0]
        nz = 1 if kind == "r1" else 2
        chosen = []
        for _ in range(min(nz, len(z))):
            j = int(np.argmin([abs(zz - ref) for zz in z]))
            chosen.append(z.pop(j))
        b = np.real(np.poly(chosen)) if chosen else np.array([1.0])
        if kind == "c":
            a = np.array([1.0, -2.0 * q.real, abs(q) ** 2])
        elif kind == "r2":
            a = np.real(np.poly(q))
        else:
            a = np.array([1.0, -q, 0.0])
        if kind == "r1":  # (1 - z1/z) / (1 - p1/z): b = [1, -z1, 0]
            b = np.append(b, np.zeros(3 - len(b)))
        else:  # fewer zeros than poles: leading zeros in powers of 1/z
            b = np.concatenate([np.zeros(3 - len(b)), b])
        sections.append(np.concatenate([b, a]))
    sos = np.array(sections[::-1], dtype=float)  # farthest from the unit circle first
    sos[0, :3] *= k
    return sos


def butter_sos(order: int, wn, btype: str, rate_hz: float) -> np.ndarray:
    """Butterworth second-order sections, as ``scipy.signal.butter(..., output='sos')``."""
    return zpk_to_sos(*butter_zpk(order, wn, btype, rate_hz))


def iirnotch(f0_hz: float, quality: float, rate_hz: float) -> np.ndarray:
    """Second-order notch as one section ``[b0, b1, b2, 1, a1, a2]`` (``scipy.signal.iirnotch``)."""
    w0 = 2.0 * f0_hz / rate_hz
    bw = w0 / quality * np.pi
    w0 = w0 * np.pi
    beta = np.tan(bw / 2.0)  # gb = 1/sqrt(2): sqrt(1 - gb^2) / gb = 1
    gain = 1.0 / (1.0 + beta)
    b = gain * np.array([1.0, -2.0 * np.cos(w0), 1.0])
    a = np.array([1.0, -2.0 * gain * np.cos(w0), 2.0 * gain - 1.0])
    return np.concatenate([b, a])


def sosfilt_zi(sos: np.ndarray) -> np.ndarray:
    """Steady-state state of each section for a unit step (``scipy.signal.sosfilt_zi``).

    For a section in transposed direct form II at rest on a constant input x with DC gain
    ``H = sum(b) / sum(a)``: ``z0 = (H - b0) x`` and ``z1 = (b2 - a2 H) x``; each section's
    input is the previous sections' DC gain.
    """
    zi = np.empty((sos.shape[0], 2))
    scale = 1.0
    for s, (b0, b1, b2, _a0, a1, a2) in enumerate(sos):
        h = (b0 + b1 + b2) / (1.0 + a1 + a2)
        zi[s] = scale * np.array([h - b0, b2 - a2 * h])
        scale *= h
    return zi
