"""One JSON ``default`` for everything tonuslab stores as JSON text (attributes, notes, results).

``json.dumps(obj, default=json_default)`` accepts NumPy scalars and arrays, paths, dates and
enums besides the plain JSON types; anything else is a programming error and raises
``TypeError`` naming the type, rather than being stored as an unreadable ``repr``.
"""

from __future__ import annotations

import datetime as _dt
import enum
import pathlib

import numpy as np


def json_default(o):
    """Convert one value ``json`` cannot encode; for ``json.dumps(..., default=json_default)``.

    Parameters
    ----------
    o : object
        NumPy scalar (-> Python scalar), NumPy array (-> nested lists), ``pathlib.Path``
        (-> str), ``datetime.datetime``/``datetime.date`` (-> ISO 8601 text) or an ``Enum``
        (-> its value).

    Raises
    ------
    TypeError
        Any other type.
    """
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, pathlib.PurePath):
        return str(o)
    if isinstance(o, _dt.datetime | _dt.date):
        return o.isoformat()
    if isinstance(o, enum.Enum):
        return o.value
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")
