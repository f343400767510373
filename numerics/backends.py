"""Backend selection: NumPy reference, JAX (x64 enabled here), CuPy (GPU only).

One function, :func:`require_backend`, validates a backend name and returns the array module.
Asking for a GPU backend on a machine without a usable GPU is an error that says so; there is
no silent fallback to the CPU.
"""
from __future__ import annotations

import os

BACKENDS = ("numpy", "jax", "cupy")

# Must be set before JAX is first imported anywhere; harmless if JAX is never used.
os.environ.setdefault("JAX_ENABLE_X64", "1")


class BackendUnavailableError(RuntimeError):
    """The requested backend exists but cannot run on this machine (e.g. no usable GPU)."""


def jax_module():
    """Import JAX with 64-bit floats enabled (the library's default, not the user's job)."""
    import jax

    if not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)
    return jax


def cupy_usable() -> tuple[bool, str]:
    """(usable, reason). Importing cupy succeeds without a GPU, so ask cupy.is_available()."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        return False, f"cupy is not installed or failed to import ({exc.__class__.__name__}: {exc})"
    try:
        ok = bool(cupy.is_available())
    except Exception as exc:
        return False, f"cupy.is_available() raised {exc.__class__.__name__}: {exc}"
    if not ok:
        return False, "no usable GPU: cupy.is_available() is False"
    return True, "cupy with a usable GPU"


def jax_gpu_usable() -> tuple[bool, str]:
    try:
        jax = jax_module()
        backend = jax.default_backend()
    except Exception as exc:
        return False, f"jax failed to initialise ({exc.__class__.__name__}: {exc})"
    if backend != "gpu":
        return False, f"no usable GPU for JAX: jax.default_backend() is {backend!r}"
    return True, "jax on gpu"


def require_backend(name: str):
    """Validate ``name`` and return the array module (numpy, jax.numpy or cupy)."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "numpy":
        import numpy

        return numpy
    if name == "jax":
        return jax_module().numpy
    ok, reason = cupy_usable()
    if not ok:
        raise BackendUnavailableError(
            f"backend='cupy' was requested but {reason}. Install the 'cuda12' or 'cuda13' extra "
            "on a machine with an NVIDIA GPU, or choose backend='numpy' or 'jax'."
        )
    import cupy

    return cupy
