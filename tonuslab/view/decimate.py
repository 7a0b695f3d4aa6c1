"""Min/max decimation: what the view sends instead of samples.

A trace drawn on a screen shows at most one vertical stroke per pixel column, so the server sends,
per column, the smallest and the largest sample it covers (every peak stays visible, nothing is
averaged away) and an envelope value (mean rectified deviation from the column mean, the EMG
level). Gaps (NaN) stay NaN: a column with no sample is NaN, never zero.
"""

from __future__ import annotations

import numpy as np

#: Envelope block length (s): columns shorter than this take the envelope of their 10 ms block.
ENVELOPE_BLOCK_S = 0.01


def column_minmax(x: np.ndarray, samples_per_column: int) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of consecutive columns of ``samples_per_column`` rows.

    Parameters
    ----------
    x : numpy.ndarray, shape (n, n_channels)
        Samples (physical units, NaN in gaps); ``n`` is a multiple of ``samples_per_column``.
    samples_per_column : int

    Returns
    -------
    lo, hi : numpy.ndarray, shape (n // samples_per_column, n_channels)
        NaN where a column holds no finite sample.
    """
    spc = int(samples_per_column)
    if spc < 1:
        raise ValueError(f"samples_per_column must be >= 1, got {spc}")
    x = np.asarray(x, dtype=float)
    n_cols = x.shape[0] // spc
    blocks = x[: n_cols * spc].reshape(n_cols, spc, x.shape[1])
    return np.fmin.reduce(blocks, axis=1), np.fmax.reduce(blocks, axis=1)


def column_envelope(x: np.ndarray, samples_per_column: int) -> np.ndarray:
    """Mean absolute deviation from the column mean, per column (the EMG level, uV).

    Parameters
    ----------
    x : numpy.ndarray, shape (n, n_channels)
        ``n`` a multiple of ``samples_per_column``.
    samples_per_column : int

    Returns
    -------
    numpy.ndarray, shape (n // samples_per_column, n_channels)
    """
    spc = int(samples_per_column)
    x = np.asarray(x, dtype=float)
    n_cols = x.shape[0] // spc
    blocks = x[: n_cols * spc].reshape(n_cols, spc, x.shape[1])
    finite = np.isfinite(blocks)
    n = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(finite, blocks, 0.0).sum(axis=1) / n
        dev = np.where(finite, np.abs(blocks - mean[:, None, :]), 0.0).sum(axis=1) / n
    return np.where(n > 0, dev, np.nan)


def column_mean(x: np.ndarray, samples_per_column: int) -> np.ndarray:
    """Mean of the finite samples of each column (NaN for a column without any).

    Parameters
    ----------
    x : numpy.ndarray, shape (n, n_channels)
    samples_per_column : int

    Returns
    -------
    numpy.ndarray, shape (n // samples_per_column, n_channels)
    """
    spc = int(samples_per_column)
    x = np.asarray(x, dtype=float)
    n_cols = x.shape[0] // spc
    blocks = x[: n_cols * spc].reshape(n_cols, spc, x.shape[1])
    finite = np.isfinite(blocks)
    n = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(finite, blocks, 0.0).sum(axis=1) / n, np.nan)


def smooth_columns(env: np.ndarray, alpha: float, state: np.ndarray) -> np.ndarray:
    """First-order smoothing along columns (``y = y_prev + alpha * (x - y_prev)``), NaN-aware.

    Parameters
    ----------
    env : numpy.ndarray, shape (n_cols, n_channels)
    alpha : float
        0 < alpha <= 1 (1: no smoothing).
    state : numpy.ndarray, shape (n_channels,)
        The last finite output per channel (NaN: none yet), updated in place. A NaN column
        (a gap) stays NaN and leaves the state as it was.

    Returns
    -------
    numpy.ndarray, shape (n_cols, n_channels)
    """
    out = np.empty_like(env, dtype=float)
    for k in range(env.shape[0]):
        row = env[k]
        cur = np.where(np.isfinite(state), state + alpha * (row - state), row)
        out[k] = cur
        state[:] = np.where(np.isfinite(cur), cur, state)
    return out


def to_json_rows(a: np.ndarray, decimals: int = 1) -> list:
    """``(n_cols, n_channels)`` -> channel-major nested lists, rounded, NaN as None (JSON null)."""
    a = np.round(np.asarray(a, dtype=float).T, decimals)
    obj = a.astype(object)
    obj[~np.isfinite(a)] = None
    return obj.tolist()
