"""The slow NumPy reference of every kernel, in one module (stumpy's ``tests/naive.py`` habit).

Each function here is written for clarity, loop by loop as the algorithm is described, and the
tests compare the Numba kernels (and the public functions over them) against it. Nothing here
is fast, and nothing here is imported by the package. Tests import it as ``naive`` (the tests
folder is on ``sys.path``, see ``tests/conftest.py``).
"""

import numpy as np
import scipy.ndimage
import scipy.signal

from firmware_iface.codec import StreamDecoder
from firmware_iface.messages import MsgType, Samples


# ---- kernels tested in tests/dsp/test_filters.py -------------------------------------------------
def reference_sosfilt(sos, x, zi=None):
    """Slow reference: transposed direct form II, one sample at a time (as scipy documents)."""
    x = np.asarray(x, dtype=float)
    y = x.copy()
    nsec = sos.shape[0]
    z = np.zeros((nsec, 2, *x.shape[1:])) if zi is None else np.array(zi, dtype=float)
    for i in range(x.shape[0]):
        v = y[i].copy()
        for s in range(nsec):
            b0, b1, b2, _, a1, a2 = sos[s]
            out = b0 * v + z[s, 0]
            z[s, 0] = b1 * v - a1 * out + z[s, 1]
            z[s, 1] = b2 * v - a2 * out
            v = out
        y[i] = v
    return y


# ---- kernels tested in tests/dsp/test_envelopes.py -----------------------------------------------
def reference_moving_rms_trailing(x, size):
    """Slow reference: explicit loop over windows."""
    out = np.empty_like(x, dtype=float)
    for i in range(x.shape[0]):
        w = x[max(0, i - size + 1) : i + 1]
        out[i] = np.sqrt(np.mean(w**2, axis=0))
    return out


def reference_tkeo(x):
    out = np.empty_like(x, dtype=float)
    out[1:-1] = x[1:-1] ** 2 - x[:-2] * x[2:]
    out[0], out[-1] = out[1], out[-2]
    return out


# ---- kernels tested in tests/dsp/test_kinematics.py ----------------------------------------------
def reference_convolve(x, h):
    """Slow reference of the interior FIR: explicit sums."""
    half = len(h) // 2
    out = np.full(len(x), np.nan)
    for i in range(half, len(x) - half):
        out[i] = sum(h[k] * x[i + half - k] for k in range(len(h)))
    return out


# ---- kernels tested in tests/dsp/test_quality.py -------------------------------------------------
def reference_gaps(x):
    bad = np.isnan(x).any(axis=1) if x.ndim == 2 else np.isnan(x)
    runs, start = [], None
    for i, b in enumerate(bad):
        if b and start is None:
            start = i
        if not b and start is not None:
            runs.append([start, i])
            start = None
    if start is not None:
        runs.append([start, len(bad)])
    return np.array(runs, dtype=np.int64).reshape(-1, 2)


def reference_rail_samples(x, lo, hi, min_run):
    at = (x <= lo) | (x >= hi)
    total, run = 0, 0
    for a in [*at, False]:
        if a:
            run += 1
        else:
            total += run if run >= min_run else 0
            run = 0
    return total


def reference_window_sd(x, win):
    m = len(x) // win
    return np.array([np.std(x[i * win : (i + 1) * win], ddof=1) for i in range(m)])


def reference_snr(x, rate_hz):
    """Slow reference of the SNR definition in channel_quality (one run of samples, scipy)."""
    sos = scipy.signal.butter(
        4, [20, min(450, 0.45 * rate_hz)], btype="bandpass", fs=rate_hz, output="sos"
    )
    y = scipy.signal.sosfiltfilt(sos, x)
    win = round(max(0.05, 20 / (min(450, 0.45 * rate_hz) - 20)) * rate_hz)
    p = np.array([np.mean(y[i : i + win] ** 2) for i in range(0, len(y) - win + 1, win)])
    quiet = np.sort(p)[: int(np.ceil(0.1 * len(p)))]
    floor = quiet.mean()
    if floor == 0:
        return np.nan, np.nan
    above = p > 4 * floor
    active = np.zeros(len(p), bool)
    for i in range(len(p)):
        run_prev = i > 0 and above[i - 1]
        run_next = i + 1 < len(p) and above[i + 1]
        active[i] = above[i] and (run_prev or run_next)  # runs of >= 2 windows
    if not active.any():
        return np.nan, 0.0
    return 10 * np.log10(p[active].mean() / floor), active.mean()


# ---- kernels tested in tests/dsp/test_chain.py ---------------------------------------------------
def scipy_chain(x, rate_hz=2000.0, line_hz=50.0, size=100):
    bp = scipy.signal.butter(4, [20, 450], btype="bandpass", fs=rate_hz, output="sos")
    y = scipy.signal.sosfiltfilt(bp, x, axis=0)
    if line_hz is not None:
        nt = np.array([np.concatenate(scipy.signal.iirnotch(line_hz, 30, fs=rate_hz))])
        y = scipy.signal.sosfiltfilt(nt, y, axis=0)
    return np.sqrt(scipy.ndimage.uniform_filter1d(np.abs(y) ** 2, size, axis=0))


def scipy_causal_chain(x, rate_hz=2000.0, size=100):
    """Slow reference of the streaming chain: sosfilt, |.|, trailing mean of squares."""
    bp = scipy.signal.butter(4, [20, 450], btype="bandpass", fs=rate_hz, output="sos")
    nt = np.array([np.concatenate(scipy.signal.iirnotch(50.0, 30, fs=rate_hz))])
    y = np.abs(scipy.signal.sosfilt(np.vstack([bp, nt]), x, axis=0))
    cs = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), y**2]), axis=0)
    n = np.arange(1, x.shape[0] + 1)
    lo = np.maximum(n - size, 0)
    return np.sqrt((cs[n] - cs[lo]) / (n - lo)[:, None])


# ---- kernels tested in tests/firmware_iface/test_fastdecode.py -----------------------------------
def reference_decode(buf: bytes) -> dict:
    """The slow path: StreamDecoder + Samples.unpack, concatenated per stream."""
    per = {}
    for frame in StreamDecoder().feed(buf):
        if frame.msg_type == MsgType.SAMPLES:
            s = Samples.unpack(frame.payload)
            per.setdefault(s.stream, []).append(s)
    return {
        k: (
            np.concatenate([s.counts for s in v]),
            np.concatenate([s.first_index + np.arange(len(s.counts)) for s in v]),
        )
        for k, v in per.items()
    }


# ---- kernels tested in tests/dsp/test_onsets.py --------------------------------------------------
def reference_bursts(g, thr, min_on, min_off, start):
    """Slow reference of the burst state machine."""
    above = g > thr
    onsets, offsets = [], []
    i, n = start, len(g)
    while i < n:
        if above[i]:
            j = i
            while j < n and above[j]:
                j += 1
            if j - i >= min_on:
                k, end = j, n
                while k < n:
                    if not above[k]:
                        m = k
                        while m < n and not above[m]:
                            m += 1
                        if m - k >= min_off or m == n:
                            end = k
                            break
                        k = m
                    else:
                        k += 1
                onsets.append(i)
                offsets.append(end)
                i = end
                continue
            i = j
        else:
            i += 1
    return onsets, offsets


def reference_best_split(x, lo, hi, min_seg):
    best, arg = 0.0, -1
    seg = x[lo:hi]
    full = len(seg) * np.log(seg.sum() / len(seg))
    for t in range(min_seg, len(seg) - min_seg + 1):
        a, b = seg[:t], seg[t:]
        gain = full - len(a) * np.log(a.mean()) - len(b) * np.log(b.mean())
        if gain > best:
            best, arg = gain, lo + t
    return best, arg


def reference_test_signal(x, rate_hz, method):
    """The signal each detector thresholds, rebuilt with scipy from its documented recipe."""
    if method == "threshold":
        bp = scipy.signal.butter(4, [20, 450], btype="bandpass", fs=rate_hz, output="sos")
        lp = scipy.signal.butter(2, 50, fs=rate_hz, output="sos")
        return scipy.signal.sosfiltfilt(lp, np.abs(scipy.signal.sosfiltfilt(bp, x)))
    if method == "tkeo":
        bp = scipy.signal.butter(4, [30, 300], btype="bandpass", fs=rate_hz, output="sos")
        lp = scipy.signal.butter(2, 50, fs=rate_hz, output="sos")
        y = scipy.signal.sosfiltfilt(bp, x)
        psi = y[1:-1] ** 2 - y[:-2] * y[2:]
        psi = np.concatenate([psi[:1], psi, psi[-1:]])
        return scipy.signal.sosfiltfilt(lp, np.abs(psi))
    bp = scipy.signal.butter(4, [20, 450], btype="bandpass", fs=rate_hz, output="sos")
    sq = scipy.signal.sosfiltfilt(bp, x) ** 2
    q = round(rate_hz / 1000)
    return sq[: sq.size // q * q].reshape(-1, q).mean(axis=1)  # 1 ms bins


def reference_binary_segmentation(x, min_seg, penalty, max_changes):
    """Slow reference: greedy binary segmentation with brute-force splits."""
    segments = [(0, len(x))]
    cps = []
    while len(cps) < max_changes:
        best = (penalty, None, None)
        for lo, hi in segments:
            if hi - lo < 2 * min_seg:
                continue
            g, t = reference_best_split(x, lo, hi, min_seg)
            if t >= 0 and g > best[0]:
                best = (g, t, (lo, hi))
        if best[1] is None:
            break
        _, t, (lo, hi) = best
        cps.append(t)
        segments.remove((lo, hi))
        segments += [(lo, t), (t, hi)]
    return sorted(cps)


# ---- kernels tested in tests/dsp/test_onsets_real_rules.py ---------------------------------------
def reference_quietest(g, width):
    """Slow reference: try every start on the documented grid, keep the lowest mean."""
    step = max(1, width // 10)
    starts = list(range(0, len(g) - width + 1, step))
    if starts[-1] != len(g) - width:
        starts.append(len(g) - width)
    best = min(starts, key=lambda s: (sum(g[s : s + width]) / width, s))
    return best, best + width


def reference_joined_runs(above, min_on, min_off):
    """Slow reference: list the runs of True one sample at a time, drop short ones, join."""
    runs, i = [], 0
    while i < len(above):
        if above[i]:
            j = i
            while j < len(above) and above[j]:
                j += 1
            if j - i >= min_on:
                runs.append([i, j])
            i = j
        else:
            i += 1
    joined = []
    for a, b in runs:
        if joined and a - joined[-1][1] < min_off:
            joined[-1][1] = b
        else:
            joined.append([a, b])
    return [a for a, _ in joined], [b for _, b in joined]
