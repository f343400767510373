"""``bbgky flux`` (predict the 1/N^2 flux) and ``bbgky verify`` (property checks of the generated
three-body operator), on top of :mod:`numerics.kinetic`."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path


def _add_model_arguments(p) -> None:
    from numerics.nbody.cli import _harmonics

    p.add_argument("--potential", choices=("hmf", "fourier", "ring"), default="hmf")
    p.add_argument("--harmonics", type=_harmonics, default=None, help="fourier potential: 'k:U_k,...'")
    p.add_argument("--softening", type=float, default=None, help="ring model softening (> 0)")
    p.add_argument("--kmax", type=int, default=None, help="truncation of the potential (>= 1)")
    p.add_argument("--df", choices=("gaussian", "gg"), default="gg", help="Maxwellian or generalised Gaussian")
    p.add_argument("--n", dest="gg_n", type=float, default=4.0, help="generalised Gaussian index (even integer)")
    p.add_argument("--sigma", type=float, default=None,
                   help="velocity dispersion (default: from --Q)")
    p.add_argument("--Q", type=float, default=4.0, help="sigma^2/(M U*) when --sigma is not given (default 4)")


def _models(args):
    from numerics.nbody.cli import build_df, build_potential

    potential = build_potential(args)
    sigma = args.sigma
    if sigma is None:
        if not args.Q > 0:
            raise ValueError(f"--Q must be > 0, got {args.Q}")
        sigma = math.sqrt(args.Q * potential.attractive_max(args.kmax))
    return potential, build_df(args, sigma)


def register(subparsers) -> None:
    p = subparsers.add_parser("flux", help="predict the 1/N^2 (three-body) flux of a 1D homogeneous state",
                              description="Evaluate the derived three-body flux (continuity convention, M = 1, "
                              "mu = 1/N) on a velocity grid and write JSON and PNG.")
    _add_model_arguments(p)
    p.add_argument("--N", type=float, required=True, help="number of particles (>= 2)")
    p.add_argument("--v", type=float, nargs=3, default=None, metavar=("VMIN", "VMAX", "POINTS"),
                   help="velocity grid (default 0 .. 3 sigma, 16 points)")
    p.add_argument("--backend", choices=("numpy", "jax"), default="jax")
    p.add_argument("--method", choices=("line", "plane"), default="line",
                   help="line: canonical operator (default); plane: resonance form, eps -> 0 (cross-check)")
    p.add_argument("--panels", type=int, default=8, help="line method: Gauss-Legendre panels (even, default 8)")
    p.add_argument("--levels", type=int, default=3, help="plane method: eps halvings for Richardson (2-5)")
    p.add_argument("--eps0", type=float, default=0.2, help="plane method: largest regularisation width (sigma)")
    p.add_argument("--allow-unstable", action="store_true", help="evaluate even when Q <= Q_c (warns)")
    p.add_argument("--out", default="flux.json", help="JSON output (a PNG is written next to it)")
    p.set_defaults(func=_cmd_flux)

    p = subparsers.add_parser("verify", help="property-based checks of the generated three-body operator",
                              description="Run the physics checks (Maxwellian and shifted Maxwellian steady, "
                              "odd flux for even DFs, energy and momentum conservation, 1/N^2 scaling, "
                              "NumPy/JAX agreement) on random sum-free potentials and smooth DFs; print a report.")
    p.add_argument("operator", nargs="?", default="three_body_1d",
                   help="generated operator (default three_body_1d; regenerate with `bbgky regenerate`)")
    p.add_argument("--examples", type=int, default=3, help="random potentials/DFs to try (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the report as JSON")
    p.set_defaults(func=_cmd_verify)


def _cmd_flux(args) -> int:
    import numpy as np

    from numerics.kinetic import flux

    potential, df = _models(args)
    if args.v is None:
        v = np.linspace(0.0, 3.0 * df.sigma, 16)
    else:
        if not float(args.v[2]).is_integer() or args.v[2] < 1:
            raise ValueError(f"--v POINTS must be an integer >= 1, got {args.v[2]}")
        v = np.linspace(args.v[0], args.v[1], int(args.v[2]))
    r = flux(potential, df, v, N=args.N, kmax=args.kmax, backend=args.backend, method=args.method,
             panels=args.panels, levels=args.levels, eps0=args.eps0, allow_unstable=args.allow_unstable)
    path = r.save(args.out)
    png = _plot(r, Path(path).with_suffix(".png"))
    print(f"{potential!r}, {df!r}, N = {args.N:g}, Q = {r.Q:.4g}: {r.seconds:.1f} s ({args.backend})")
    print(f"{'v':>9s} {'flux':>13s} {'error':>10s} {'N^2 flux':>12s}")
    for x, f, e in zip(r.v, r.flux, r.error):
        print(f"{x:9.4f} {f:13.5e} {e:10.2e} {f * args.N**2:12.5e}")
    print(f"wrote {path}, {png}")
    return 0


def _plot(r, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.axhline(0, color="0.6", lw=0.8)
    n2 = r.N**2
    ax.errorbar(r.v, n2 * r.flux, yerr=n2 * r.error, color="C3", lw=1.5, capsize=2)
    ax.set_xlabel("velocity v")
    ax.set_ylabel("N^2 x flux (continuity convention)")
    ax.set_title(f"three-body flux, Q = {r.Q:.3g}, kmax = {r.kmax}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _cmd_verify(args) -> int:
    from numerics.kinetic import verify

    start = time.perf_counter()
    report = verify(args.operator, examples=args.examples, seed=args.seed, log=print)
    ok = all(c["passed"] for c in report["checks"])
    print(f"{sum(c['passed'] for c in report['checks'])}/{len(report['checks'])} checks passed "
          f"in {time.perf_counter() - start:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
        print(f"wrote {args.out}")
    return 0 if ok else 1
