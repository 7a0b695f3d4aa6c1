"""Unit spellings and stimulus labels shared by the foreign sources (pure).

A channel description names its unit in many spellings (``microvolts``, ``uV``, ``µV``, ``mV``,
``V``; ``degrees``, ``deg``, ``°``); :func:`emg_factor_uv` and :func:`angle_factor_deg` give the
factor to tonuslab's units or None. :func:`parse_stim_text` reads a stimulus label with the rule
of EDF+ annotations (the same rule ``tonuslab import`` applies to EDF, XDF and C3D files):
``stim 12.5mA``, ``stim 12.5 mA 1000us``, ``stimulus: 8,5 mA`` (a decimal comma is a point).
"""

from __future__ import annotations

import math
import re

#: EMG unit spellings (lower case, no spaces) -> factor to microvolts.
EMG_UNITS_UV = {
    "uv": 1.0, "µv": 1.0, "μv": 1.0, "microvolt": 1.0, "microvolts": 1.0,
    "mv": 1e3, "millivolt": 1e3, "millivolts": 1e3,
    "v": 1e6, "volt": 1e6, "volts": 1e6,
}  # fmt: skip
#: Angle unit spellings -> factor to degrees.
ANGLE_UNITS_DEG = {
    "deg": 1.0, "degree": 1.0, "degrees": 1.0, "°": 1.0,
    "rad": 180.0 / math.pi, "radian": 180.0 / math.pi, "radians": 180.0 / math.pi,
}  # fmt: skip

_STIM = re.compile(
    r"^\s*stim\w*\s*[:=]?\s*(?P<ma>[-+]?\d+(?:[.,]\d+)?)\s*ma"
    r"(?:\s*[,;]?\s*(?P<us>\d+(?:[.,]\d+)?)\s*us)?\b",
    re.IGNORECASE,
)


def unit_key(unit: str | None) -> str:
    """Lower case without spaces: ``" µV "`` -> ``"µv"``."""
    return (unit or "").strip().lower().replace(" ", "")


def emg_factor_uv(unit: str | None) -> float | None:
    """Microvolts per unit of ``unit``, or None if it is not a voltage."""
    return EMG_UNITS_UV.get(unit_key(unit))


def angle_factor_deg(unit: str | None) -> float | None:
    """Degrees per unit of ``unit``, or None if it is not an angle."""
    return ANGLE_UNITS_DEG.get(unit_key(unit))


def parse_stim_text(text: str | None) -> dict | None:
    """``"stim 12.5mA 1000us"`` -> ``{"intensity_ma": 12.5, "width_us": 1000.0}``.

    Returns None when the text is not a stimulus label (``width_us`` is None when not given).
    """
    m = _STIM.match(text or "")
    if not m:
        return None
    width = m.group("us")
    return {
        "intensity_ma": float(m.group("ma").replace(",", ".")),
        "width_us": None if width is None else float(width.replace(",", ".")),
    }
