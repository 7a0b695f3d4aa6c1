"""Counts to physical units, written once: ``physical = (counts - offset) * scale``.

Every channel of a tonuslab device (and of a session file, and of a republished LSL stream)
carries a ``scale`` and an ``offset`` in its channel table; raw counts stay integers on the wire
and on disk. :class:`ChannelScaling` is that table's arithmetic, used by the device client, the
recorder's live buffers, the session-file reader and the LSL publisher alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ChannelScaling:
    """Scale and offset of each channel of one stream.

    Attributes
    ----------
    scale : numpy.ndarray, shape (n_channels,), float64
        Physical units per count (microvolts per count for EMG, degrees per count for angle).
    offset : numpy.ndarray, shape (n_channels,), float64
        Count that reads as physical zero.
    """

    scale: np.ndarray
    offset: np.ndarray

    @classmethod
    def from_channels(cls, channels: Sequence) -> ChannelScaling:
        """From a channel table: mappings with ``scale``/``offset`` keys (default 1 and 0) or
        objects with ``scale``/``offset`` attributes (:class:`firmware_iface.messages.ChannelInfo`).
        """

        def get(c, key, default):
            if isinstance(c, Mapping):
                return float(c.get(key, default))
            return float(getattr(c, key, default))

        return cls(
            np.array([get(c, "scale", 1.0) for c in channels], dtype=np.float64),
            np.array([get(c, "offset", 0.0) for c in channels], dtype=np.float64),
        )

    @property
    def n_channels(self) -> int:
        return int(self.scale.shape[0])

    def select(self, columns) -> ChannelScaling:
        """The scaling of some channels only (an index, a slice or a list of columns)."""
        return ChannelScaling(self.scale[columns], self.offset[columns])

    def to_physical(self, counts: np.ndarray) -> np.ndarray:
        """``(counts - offset) * scale`` in float64.

        Parameters
        ----------
        counts : numpy.ndarray, shape (n_samples, n_channels)
            Raw counts (any integer or float dtype).

        Returns
        -------
        numpy.ndarray, shape (n_samples, n_channels), float64
        """
        return (np.asarray(counts).astype(np.float64) - self.offset) * self.scale


__all__ = ["ChannelScaling"]
