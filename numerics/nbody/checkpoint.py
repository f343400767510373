"""NPZ files of the N-body engine: run results and checkpoints (no pickle anywhere).

Both are ``numpy.savez`` archives that load with ``numpy.load(path, allow_pickle=False)``.
Parameters travel as one JSON string (key ``params_json``); ``format`` names the layout.

Run result (``format = "bbgky-nbody-result-1"``), R realisations, T snapshots, U grid values:
    times (T,), energy (R, T), momentum (R, T), cumulative (R, T, U), u_grid (U,),
    moment_v2 (R, T), moment_v4 (R, T), wall_time (), params_json ().

Checkpoint (``format = "bbgky-nbody-checkpoint-1"``): the same snapshot arrays (filled up to
``n_done`` snapshots, NaN after), plus the full phase-space state ``theta``, ``v`` (R, N) in the run's
dtype, the step counter ``step``, ``n_done`` and ``complete``.

Files are written atomically: to a temporary file in the same folder, flushed and fsynced,
then moved over the target with ``os.replace``; an interrupted write never leaves a torn file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from numerics._json import json_default

RESULT_FORMAT = "bbgky-nbody-result-1"
CHECKPOINT_FORMAT = "bbgky-nbody-checkpoint-1"




def params_to_json(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=json_default)


def write_npz_atomic(path, arrays: dict) -> Path:
    """Write ``arrays`` (name -> array or scalar) as an NPZ file at ``path``, atomically."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"  # same folder: os.replace stays atomic
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def read_npz(path, expected_format: str | None = None) -> dict:
    """Load an NPZ written by this module into a dict of arrays (params decoded to ``params``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such N-body file: {path}")
    with np.load(path, allow_pickle=False) as data:
        out = {key: data[key] for key in data.files}
    fmt = str(out.get("format", ""))
    if expected_format is not None and fmt != expected_format:
        kinds = {RESULT_FORMAT: "a run result", CHECKPOINT_FORMAT: "a checkpoint"}
        found = kinds.get(fmt, f"not an N-body engine file (format {fmt!r})")
        raise ValueError(f"{path} is {found}; expected {kinds.get(expected_format, expected_format)}"
                         + (" (continue it with numerics.nbody.resume / `bbgky resume`)" if fmt == CHECKPOINT_FORMAT else ""))
    out["params"] = json.loads(str(out.pop("params_json")))
    return out


def save_checkpoint(path, *, params: dict, u_grid, theta, v, step: int, n_done: int, snapshots: dict,
                    wall_time: float, complete: bool) -> Path:
    """Write a checkpoint (see the module docstring). ``snapshots`` holds the (R, T[, U]) arrays."""
    arrays = {
        "format": np.array(CHECKPOINT_FORMAT),
        "params_json": np.array(params_to_json(params)),
        "u_grid": np.asarray(u_grid, dtype=np.float64),
        "theta": np.asarray(theta),
        "v": np.asarray(v),
        "step": np.array(int(step), dtype=np.int64),
        "n_done": np.array(int(n_done), dtype=np.int64),
        "wall_time": np.array(float(wall_time)),
        "complete": np.array(bool(complete)),
    }
    for key, value in snapshots.items():
        arrays[key] = np.asarray(value)
    return write_npz_atomic(path, arrays)


def load_checkpoint(path) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`."""
    return read_npz(path, CHECKPOINT_FORMAT)
