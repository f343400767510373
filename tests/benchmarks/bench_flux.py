"""Speed of the three-body flux (numerics.kinetic.flux), NumPy reference and JAX side by side.

    python tests/benchmarks/bench_flux.py [--points 20] [--harmonics 1:0.5] [--levels 3]

Prints, per backend: the wall time of a first call (JAX: including compilation), of a second
call on the same potential (compiled kernels reused), seconds per velocity point, and the
largest relative difference between the backends. Same settings for both (generalised
Gaussian n = 4 at Q = 4, eps0 = 0.2 sigma, three halvings, spacing eps/4.5). Not a test: it
prints figures.
"""
from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np


def main(argv=None) -> int:
    from numerics import FourierPotential, GeneralizedGaussian
    from numerics.nbody.cli import _harmonics

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--points", type=int, default=20)
    p.add_argument("--harmonics", type=_harmonics, default={1: 0.5})
    p.add_argument("--levels", type=int, default=3)
    args = p.parse_args(argv)

    from numerics.kinetic import flux

    pot = FourierPotential(args.harmonics)
    sigma = math.sqrt(4.0 * pot.attractive_max())
    df = GeneralizedGaussian(4, sigma)
    v = np.linspace(0.05, 3.0, args.points) * sigma
    print(f"potential {args.harmonics}, n = 4, Q = 4, {args.points} points, levels {args.levels}; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    results = {}
    for backend in ("numpy", "jax"):
        t0 = time.perf_counter()
        r1 = flux(pot, df, v, N=100, backend=backend, levels=args.levels)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        r2 = flux(pot, df, v, N=100, backend=backend, levels=args.levels)
        second = time.perf_counter() - t0
        results[backend] = r2
        print(f"{backend:>6}: first call {first:7.2f} s, second {second:7.2f} s "
              f"({second / args.points:.3f} s per point)")
        assert np.array_equal(r1.flux, r2.flux)
    a, b = results["numpy"].by_eps, results["jax"].by_eps
    print(f"max relative difference numpy vs jax: {np.max(np.abs(a - b)) / np.max(np.abs(a)):.1e}; "
          f"speed-up (second calls): {results['numpy'].seconds / results['jax'].seconds:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
