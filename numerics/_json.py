"""JSON encoding of the NumPy values that run files, reports and checkpoints carry."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def json_default(obj):
    """``default=`` hook for :func:`json.dumps`: arrays, NumPy scalars and paths."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
