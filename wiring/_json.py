"""The one JSON normaliser of the wiring layer: numpy scalars and arrays to JSON-native values."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

__all__ = ["json_native"]


def json_native(value: Any, *, what: str = "value") -> Any:
    """A JSON-native copy of ``value``: numpy scalars become Python numbers, arrays and tuples lists.

    The copy is what ``json.loads(json.dumps(value))`` gives, so it is exactly what a JSON file
    written from ``value`` reads back (dict keys become strings; ``inf`` and ``nan`` stay floats).

    Raises
    ------
    TypeError
        Something in ``value`` has no JSON form; the message names it as ``what``.

    Examples
    --------
    >>> json_native({"a": np.int64(2), "b": (np.float32(0.5), 1)})
    {'a': 2, 'b': [0.5, 1]}
    """

    def default(obj: Any) -> Any:
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.floating):
            return float(obj)
        if isinstance(obj, np.bool_):
            return bool(obj)
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        raise TypeError(f"{what} {obj!r} is not JSON-serializable")

    return json.loads(json.dumps(value, default=default))
