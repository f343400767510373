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
    p.add_argument("--panels", type=int, default=4, help="line method: Gauss-Kronrod 7/15 panels per side (even, default 4)")
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
    register_evolve(subparsers)


def register_evolve(subparsers) -> None:
    p = subparsers.add_parser("evolve", help="integrate the 1/N^2 kinetic equation (relaxation of a velocity PDF)",
                              description="Evolve phi(v, t) under the derived three-body flux (canonical operator, "
                              "finite volumes, implicit BDF steps); write NPZ + PNG with phi at the snapshots, "
                              "mass, momentum, energy and entropy per step. Time is reported as t and as "
                              "tau = t / N^2 (the flux scales as 1/N^2).")
    _add_model_arguments(p)
    p.add_argument("--N", type=float, default=1000.0, help="number of particles (>= 2; default 1000)")
    p.add_argument("--tau-end", type=float, default=150.0,
                   help="final time in units of N^2 (t_end = tau_end N^2; default 150: about a minute for the "
                   "HMF on 32 cells)")
    p.add_argument("--cells", type=int, default=32, help="finite-volume cells (default 32)")
    p.add_argument("--vmax", type=float, default=4.5, help="grid half-width in units of sigma (default 4.5)")
    p.add_argument("--snapshots", type=int, default=11, help="snapshots including t = 0 and t_end (default 11)")
    p.add_argument("--rtol", type=float, default=1e-4, help="BDF relative tolerance (default 1e-4)")
    p.add_argument("--atol", type=float, default=1e-8, help="BDF absolute tolerance, units of phi (default 1e-8)")
    p.add_argument("--backend", choices=("numpy", "jax"), default="jax")
    p.add_argument("--allow-unstable", action="store_true", help="run even when Q <= Q_c (warns)")
    p.add_argument("--checkpoint", default=None, help="checkpoint NPZ (default: OUT with .checkpoint.npz)")
    p.add_argument("--checkpoint-every", type=float, default=60.0, help="seconds of wall time (default 60)")
    p.add_argument("--resume", default=None, metavar="CHECKPOINT",
                   help="continue the run saved in CHECKPOINT (model options must match the original run)")
    p.add_argument("--out", default="evolve.npz", help="result NPZ (a PNG is written next to it)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_evolve)


def _cmd_evolve(args) -> int:
    import numpy as np

    from numerics.evolve import VelocityGrid
    from numerics.evolve_implicit import evolve_implicit, resume
    from numerics.kinetic import check_validity, three_body_flux_fn

    potential, df = _models(args)
    kmax = args.kmax if args.kmax is not None else potential.kmax_exact
    if kmax is None:
        raise ValueError(f"--kmax is required for {type(potential).__name__} (an integer >= 1)")
    if not args.N >= 2:
        raise ValueError(f"--N must be >= 2, got {args.N}")
    if not args.tau_end > 0:
        raise ValueError(f"--tau-end must be > 0, got {args.tau_end}")
    if args.cells < 8:
        raise ValueError(f"--cells must be >= 8, got {args.cells}")
    if not args.vmax > 0:
        raise ValueError(f"--vmax must be > 0 (units of sigma), got {args.vmax}")
    check_validity(potential, df, kmax, allow_unstable=args.allow_unstable)
    flux_fn = three_body_flux_fn(potential, N=args.N, kmax=kmax, backend=args.backend)
    out = Path(args.out)
    checkpoint = Path(args.checkpoint) if args.checkpoint else out.with_suffix(".checkpoint.npz")
    progress = not args.no_progress
    if args.resume:
        result = resume(flux_fn, args.resume, progress=progress, checkpoint_every=args.checkpoint_every)
    else:
        sigma = df.sigma
        grid = VelocityGrid.uniform(df.mean - args.vmax * sigma, df.mean + args.vmax * sigma, args.cells)
        result = evolve_implicit(flux_fn, df, grid, args.tau_end * args.N**2, rtol=args.rtol, atol=args.atol,
                                 n_snapshots=args.snapshots, checkpoint=checkpoint,
                                 checkpoint_every=args.checkpoint_every, progress=progress)
    result.info.update({"potential": potential.parameters(), "initial_df": df.parameters(), "N": args.N,
                        "kmax": kmax})
    path = result.save(out)
    png = result.plot(out.with_suffix(".png"), title=f"{potential!r}, {df!r}, N = {args.N:g}")
    target = result.maxwellian()
    print(result.summary())
    print(f"distance to the Maxwellian of the same mass, momentum and energy (max |phi - phi_M| / max phi_M): "
          f"{np.max(np.abs(result.phi_out[0] - target)) / np.max(target):.3e} at t = 0 -> "
          f"{np.max(np.abs(result.phi - target)) / np.max(target):.3e} at tau = {result.t[-1] / args.N**2:g}")
    print(f"wrote {path}, {png}; checkpoint {checkpoint if not args.resume else args.resume}")
    return 0


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
