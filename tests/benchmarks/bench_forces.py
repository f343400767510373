"""Force throughput of the N-body backends, side by side.

    python tests/benchmarks/bench_forces.py [--quick]

prints, for every backend usable here (numpy and jax always; cupy with a usable GPU):

* direct force of the softened ring model: pair interactions per second (R N^2 per evaluation,
  whatever a backend evaluates: JAX evaluates each unordered pair once and uses it twice, action
  and reaction, so it computes about half as many pair terms as NumPy for N > 32);
* harmonic sums: particle-harmonics per second (R N K per evaluation);
* the same inside the integrator (Yoshida-4, 3 force evaluations per step, several steps per
  call), which includes drifts, kicks and, for JAX, no Python overhead between steps.

Timings are the best of several repeats (other processes on a shared machine only slow a run
down; the load average is printed before and after). NumPy runs on one core; XLA spreads the
JAX loops over all free cores, so on a loaded machine the JAX figures drop the most. Also usable with pytest-benchmark: ``python -m pytest tests/benchmarks/bench_forces.py
--benchmark-enable -p no:cacheprovider`` (file name bench_*.py: not collected by the default run).

glibc malloc: the NumPy direct sums allocate temporaries of about 2 MiB per block. glibc serves
blocks above its mmap threshold (128 KiB at start) by mmap, paying page faults on every use,
until a larger block has been freed, which raises the threshold for the rest of the process.
So NumPy's speed at N >= 256 depended on what ran before it in the same process (measured:
1.1e8 pairs/s in a fresh process, 2.0e8 after the former JAX backend had freed its 8 MiB pair
buffers, 1.1e8 after the current one). :func:`pin_malloc` fixes the thresholds at start, so
NumPy is always measured at its faster, steady speed (the conservative choice for the ratio).
"""
from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from numerics.backends import cupy_usable  # noqa: E402
from numerics.models import HMF, Gaussian, RingModel  # noqa: E402
from numerics.nbody import build_system, initial_conditions  # noqa: E402

DIRECT_SIZES = [(1024, 16), (64, 128), (16, 256), (4, 1024)]  # (R, N)
HARMONIC_SIZES = [(2000, 64, 1), (256, 128, 16), (64, 1024, 32), (16, 256, 100)]  # (R, N, K)


def pin_malloc() -> bool:
    """Fix glibc's mmap (64 MiB) and trim (128 MiB) thresholds (module docstring); False if not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, 1 << 26)) and bool(libc.mallopt(m_trim_threshold, 1 << 27))
    except (OSError, AttributeError):
        return False


def backends() -> list[str]:
    out = ["numpy", "jax"]
    if cupy_usable()[0]:
        out.append("cupy")
    return out


def _sync(x):
    if hasattr(x, "block_until_ready"):
        x.block_until_ready()
    elif type(x).__module__.startswith("cupy"):
        import cupy

        cupy.cuda.get_current_stream().synchronize()
    return x


def best_time(fn, repeats=5, min_time=0.2) -> float:
    """Best wall time of one call of ``fn`` (after a warm-up call that also compiles)."""
    _sync(fn())
    best = float("inf")
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            out = fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time / repeats:
                break
        _sync(out)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def system_and_state(potential, R, N, backend, kmax=None, dt=0.01):
    system = build_system(potential, N, dt=dt, kmax=kmax, backend=backend)
    theta, v = initial_conditions(Gaussian(1.0), N, R, seed=0)
    return system, system.to_device(theta), system.to_device(v)


def measure(kind, R, N, K, backend, steps):
    if kind == "direct":
        system, theta, v = system_and_state(RingModel(0.1), R, N, backend)
        work = R * N * N
    else:
        potential = HMF() if K == 1 else RingModel(0.5)
        system, theta, v = system_and_state(potential, R, N, backend, kmax=None if K == 1 else K)
        work = R * N * K
    t_force = best_time(lambda: system.accel(theta))
    t_steps = best_time(lambda: system.advance(theta, v, steps)[0], repeats=3)
    per_force_in_loop = t_steps / (3 * steps)
    return work / t_force, work / per_force_in_loop, R * N * steps / t_steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes")
    args = parser.parse_args(argv)
    pinned = pin_malloc()
    import jax

    print(f"# {os.cpu_count()} CPU cores; numpy {np.__version__}; jax {jax.__version__} "
          f"({jax.default_backend()}); cupy: {cupy_usable()[1]}")
    print(f"# glibc malloc thresholds pinned (see docstring): {'yes' if pinned else 'no'}")
    print(f"# load average before: {os.getloadavg()[0]:.2f}")
    names = backends()
    for kind, sizes, unit in (("direct", DIRECT_SIZES, "pair interactions/s (ring model, R N^2)"),
                              ("harmonic", HARMONIC_SIZES, "particle-harmonics/s (R N K)")):
        sizes = sizes[1:3] if args.quick else sizes
        print(f"\n## {kind} force: {unit}; 'loop' = inside Yoshida-4 steps; float64")
        header = f"{'R':>6} {'N':>6} {'K':>4} " + " ".join(f"{b + ' force':>14} {b + ' loop':>14}" for b in names)
        print(header + "   jax/numpy (force, loop)")
        for size in sizes:
            R, N, K = (size + (None,))[:3] if kind == "direct" else size
            rates = {}
            for b in names:
                steps = 2 if b == "numpy" else 10
                rates[b] = measure(kind, R, N, K, b, steps)
            cells = " ".join(f"{rates[b][0]:14.3e} {rates[b][1]:14.3e}" for b in names)
            ratio = f"{rates['jax'][0] / rates['numpy'][0]:6.1f}x {rates['jax'][1] / rates['numpy'][1]:6.1f}x"
            print(f"{R:>6} {N:>6} {K if K else '-':>4} {cells}   {ratio}", flush=True)
    print(f"\n# load average after: {os.getloadavg()[0]:.2f}")
    return 0


# ----------------------------------------------------------------------- pytest-benchmark entry points
try:
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

if pytest is not None:

    @pytest.mark.parametrize("backend", backends())
    def test_bench_ring_direct_force(benchmark, backend):
        pin_malloc()
        system, theta, _ = system_and_state(RingModel(0.1), 16, 256, backend)
        benchmark(lambda: _sync(system.accel(theta)))

    @pytest.mark.parametrize("backend", backends())
    def test_bench_harmonic_force(benchmark, backend):
        pin_malloc()
        system, theta, _ = system_and_state(RingModel(0.5), 64, 1024, backend, kmax=32)
        benchmark(lambda: _sync(system.accel(theta)))


if __name__ == "__main__":
    sys.exit(main())
