"""Generated flux-integrand kernels, one module per (operator, backend).

The modules ``<operator>_<backend>.py`` in this package are written by the code generator
(:mod:`derive.codegen`, ``bbgky regenerate``) and never edited by hand; this file is not
generated. Each module holds plain functions of arrays -- one per flux term and pattern of
distribution factors, returning the smooth cofactor -- plus ``METADATA`` describing the terms,
the kernel arguments and the distributions (Dirac deltas, principal values, resonances) that
the numerical code integrates. Nothing here imports SymPy.

    from numerics.generated import load
    landau = load("landau_1d", "numpy")
    term = landau.METADATA["terms"][0]
    cofactor = landau.KERNELS[term["kernels"][0]["function"]]
"""
from __future__ import annotations

import importlib
from pathlib import Path

from numerics.backends import BACKENDS, BackendUnavailableError, cupy_usable, jax_module

__all__ = ["load", "available"]


def available() -> dict[str, list[str]]:
    """Operator name -> backends with a generated module, e.g. {'landau_1d': ['cupy', 'jax', 'numpy']}."""
    out: dict[str, list[str]] = {}
    for path in sorted(Path(__file__).parent.glob("*_*.py")):
        name, _, backend = path.stem.rpartition("_")
        if backend in BACKENDS:
            out.setdefault(name, []).append(backend)
    return out


def load(name: str, backend: str = "numpy"):
    """The generated module of operator ``name`` (e.g. 'landau_1d') for ``backend``.

    JAX is imported (with 64-bit floats) only for backend='jax'; backend='cupy' raises
    :class:`~numerics.backends.BackendUnavailableError` on a machine without a usable GPU.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    have = available()
    if backend not in have.get(name, []):
        raise ValueError(f"no generated {backend} kernels for operator {name!r}; available: "
                         f"{ {k: v for k, v in have.items()} }. Add the operator to "
                         "derive.codegen.SHIPPED_OPERATORS and run `bbgky regenerate`.")
    if backend == "jax":
        jax_module()
    elif backend == "cupy":
        ok, reason = cupy_usable()
        if not ok:
            raise BackendUnavailableError(
                f"generated kernels for {name!r} with backend='cupy' need a usable GPU, but {reason}. "
                "Choose backend='numpy' or 'jax'.")
    return importlib.import_module(f"{__name__}.{name}_{backend}")
