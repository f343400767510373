"""Speed of the three-body flux (numerics.kinetic.flux), NumPy reference and JAX side by side.

    python tests/benchmarks/bench_flux.py                       # ring model, kmax = 10, 200 points
    python tests/benchmarks/bench_flux.py --harmonics 1:0.5 --points 20 --method plane

Prints, per backend: the wall time of a first call (JAX: including compilation), of a second
call on the same potential (compiled kernels reused), seconds per velocity point, and the
largest difference between the backends relative to the flux scale. Same settings for both
(generalised Gaussian n = 4 at Q = 4; line method: default Gauss-Kronrod panels and tolerance,
error estimate included,
kmax check off; plane method: eps0 = 0.2 sigma, three halvings, spacing eps/4.5). Not a test:
it prints figures.
"""
from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np


def main(argv=None) -> int:
    from numerics import FourierPotential, GeneralizedGaussian, RingModel
    from numerics.nbody.cli import _harmonics

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--points", type=int, default=200)
    p.add_argument("--harmonics", type=_harmonics, default=None, help="a finite potential 'k:U_k,...' "
                   "(default: the ring model)")
    p.add_argument("--softening", type=float, default=0.5, help="ring model softening (default 0.5)")
    p.add_argument("--kmax", type=int, default=10)
    p.add_argument("--method", choices=("line", "plane"), default="line")
    p.add_argument("--levels", type=int, default=3)
    args = p.parse_args(argv)

    from numerics.kinetic import flux

    if args.harmonics:
        pot, kmax = FourierPotential(args.harmonics), max(args.harmonics)
    else:
        pot, kmax = RingModel(args.softening), args.kmax
    umax = float(np.max(pot.coefficients(kmax)[1:]))
    sigma = math.sqrt(4.0 * umax)
    df = GeneralizedGaussian(4, sigma)
    v = np.linspace(-3.0, 3.0, args.points) * sigma
    print(f"{pot!r} kmax {kmax}, n = 4, Q = 4, {args.points} points, method {args.method}; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    kw = dict(N=100, kmax=kmax, method=args.method, levels=args.levels, check_kmax=False)
    results = {}
    for backend in ("numpy", "jax"):
        t0 = time.perf_counter()
        r1 = flux(pot, df, v, backend=backend, **kw)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        r2 = flux(pot, df, v, backend=backend, **kw)
        second = time.perf_counter() - t0
        results[backend] = r2
        print(f"{backend:>6}: first call {first:7.2f} s, second {second:7.2f} s "
              f"({second / args.points * 1e3:.2f} ms per point); error estimate / max|flux| "
              f"{np.max(r2.error) / np.max(np.abs(r2.flux)):.1e}")
        assert np.array_equal(r1.flux, r2.flux)
    a, b = results["numpy"].flux, results["jax"].flux
    print(f"max |numpy - jax| / max |flux|: {np.max(np.abs(a - b)) / np.max(np.abs(a)):.1e}; "
          f"speed-up (second calls): {results['numpy'].seconds / results['jax'].seconds:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
