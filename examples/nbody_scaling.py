#!/usr/bin/env python3
"""N^2 F at several N and its 1/N extrapolation: the N-body side of the 1/N^2 check (PHYSICS.md, section 4).

Runs :func:`numerics.validate.flux_ensemble` (HMF, generalised Gaussian profile, one ensemble
per N), fits N^2 F(u; N) = a(u) + b(u)/N at each u (:func:`numerics.validate.extrapolate_inverse_N`),
writes JSON and a PNG into ``--out`` and prints the fit and the timings. With ``--predicted
FILE`` (a JSON list or .npy array of the predicted N^2 F on the printed u grid, continuity
convention, M = 1, time in the potential's units) it also prints :func:`numerics.validate.compare`
against the intercept and against each N.

Defaults are sized for 2 CPU cores and the JAX backend (100-190 s measured, depending on load); ``--quick`` is a
smoke run of well under a minute whose numbers are noise-dominated.

    python examples/nbody_scaling.py --quick
    python examples/nbody_scaling.py --out nbody-scaling
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_ENABLE_X64", "1")

QUICK = {"Ns": [16, 32, 64], "R": [400, 400, 400], "t_end": 600.0, "window": [60.0, 600.0]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="nbody-scaling", help="output directory")
    p.add_argument("--Ns", type=int, nargs="+", default=[16, 32, 64], help="particle numbers")
    p.add_argument("--R", type=int, nargs="+", default=[3000, 4000, 8000],
                   help="realisations: one value for every N, or one per N (sorted N)")
    p.add_argument("--Q", type=float, default=4.0, help="sigma^2 / U* (HMF: U* = 1/2)")
    p.add_argument("--n", type=float, default=4.0, help="generalised Gaussian index")
    p.add_argument("--t-end", type=float, default=1500.0, help="duration of each run")
    p.add_argument("--dt", type=float, default=0.1, help="time step (Yoshida-4)")
    p.add_argument("--window", type=float, nargs=2, default=[100.0, 1500.0], metavar=("T0", "T1"),
                   help="flux fit window")
    p.add_argument("--n-snapshots", type=int, default=51, help="snapshots from 0 to t_end")
    p.add_argument("--u-points", type=int, default=41, help="points of the u grid on [-3 sigma, 3 sigma]")
    p.add_argument("--backend", default="jax", choices=["numpy", "jax", "cupy"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--predicted", default=None, help="predicted N^2 F on the u grid (JSON list or .npy)")
    p.add_argument("--save-runs", action="store_true", help="also keep the run files (NPZ) in --out")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run (< 1 minute): Ns {QUICK['Ns']}, R {QUICK['R']}, t_end {QUICK['t_end']:g}, "
                        f"window {QUICK['window']}")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.Ns, args.R, args.t_end, args.window = QUICK["Ns"], QUICK["R"], QUICK["t_end"], QUICK["window"]
    if len(args.R) == 1:
        args.R = args.R * len(args.Ns)
    if len(args.R) != len(args.Ns):
        p.error(f"--R needs one value or one per N ({len(args.Ns)}), got {len(args.R)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np

    from numerics import HMF, GeneralizedGaussian
    from numerics.models.stability import Q as stability_Q, critical_Q
    from numerics.validate import (amplitude_ratio, compare, extrapolate_inverse_N, flux_ensemble, plot_ensemble,
                                   write_json)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    potential = HMF()
    sigma = math.sqrt(args.Q * potential.attractive_max())
    df = GeneralizedGaussian(args.n, sigma)
    u_grid = np.linspace(-3.0 * sigma, 3.0 * sigma, args.u_points)
    Ns = sorted(args.Ns)
    R = dict(zip(sorted(args.Ns), [r for _, r in sorted(zip(args.Ns, args.R))]))
    print(f"HMF, generalised Gaussian n = {args.n:g}, sigma = {sigma:.4g}: Q = {stability_Q(potential, df):.4g} "
          f"(Q_c = {critical_Q(df):.4g}); Ns = {Ns}, R = {[R[n] for n in Ns]}, t_end = {args.t_end:g}, "
          f"dt = {args.dt:g}, window = {args.window}, backend = {args.backend}, load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)

    start = time.perf_counter()
    ens = flux_ensemble(potential, df, Ns, R, args.t_end, args.dt, tuple(args.window), backend=args.backend,
                        seed=args.seed, u_grid=u_grid, progress=not args.no_progress, n_snapshots=args.n_snapshots,
                        save_dir=out if args.save_runs else None)
    total = time.perf_counter() - start
    fit = extrapolate_inverse_N(ens)
    summary = fit.summary()

    print("\nper N (N^2 F in fraction / time unit; errors: half width of the 16%-84% bootstrap band)")
    print(f"{'N':>5} {'R':>6} {'wall s':>7} {'p-steps/s':>10} {'max dE':>8} {'even chi2':>9}   "
          f"{'own peak: u':>11} {'N^2 F':>10} {'+-':>9} {'S/N':>5}   N^2 F at u = {summary['u_peak']:.3g}")
    j = int(np.argmin(np.abs(ens.u - summary["u_peak"]))) if summary["u_peak"] is not None else None
    for i, (n, pk) in enumerate(zip(ens.Ns, ens.peaks())):
        at = "" if j is None else f"{ens.n2_flux[i, j]:.4g} +- {ens.n2_err[i, j]:.2g}"
        print(f"{n:>5} {ens.Rs[i]:>6} {ens.wall_times[i]:>7.1f} {ens.particle_steps_per_s[i]:>10.3g} "
              f"{ens.energy_errors[i]:>8.1e} {ens.even_chi2_dof[i]:>9.2f}   {pk['u']:>11.3g} {pk['n2_flux']:>10.4g} "
              f"{pk['n2_err']:>9.2g} {pk['snr']:>5.1f}   {at}")
    print(f"\n1/N extrapolation ({fit.model})")
    if summary["u_peak"] is not None:
        print(f"  intercept peak: a({summary['u_peak']:.3g}) = {summary['a_peak']:.4g} +- {summary['a_err_peak']:.2g} "
              f"(S/N {summary['snr_peak']:.1f}); slope b = {summary['b_peak']:.4g} +- {summary['b_err_peak']:.2g}")
        print(f"  best S/N {summary['max_snr']:.1f} at u = {summary['u_max_snr']:.3g}; "
              f"quadrature S/N over u > 0: {summary['total_snr']:.1f}")
    print(f"  chi2/dof of the a + b/N model: {summary['global_chi2_dof']:.3g} (dof {fit.dof} per point, "
          f"{summary['n_points']} points; at the peak {summary.get('chi2_dof_peak', float('nan')):.3g})")
    independent = fit.independent
    shape = {}
    for i, n in enumerate(Ns):  # amplitude of each N^2 F profile relative to the largest N (errors on both)
        shape[n] = amplitude_ratio(ens.n2_flux[i], ens.n2_err[i], ens.n2_flux[-1], ens.n2_err[-1], points=independent)
    shape["intercept"] = amplitude_ratio(fit.a, fit.a_err, ens.n2_flux[-1], ens.n2_err[-1], points=independent)
    alternatives = {}
    if len(Ns) >= 4:
        alternatives[f"a + b/N without N = {Ns[0]}"] = extrapolate_inverse_N(ens, Ns=Ns[1:])
        alternatives["a + b/N + c/N^2"] = extrapolate_inverse_N(ens, degree=2)
    if len(Ns) >= 3:
        alternatives["a + b/N over the two largest N"] = extrapolate_inverse_N(ens, Ns=Ns[-2:])
    for name, alt in alternatives.items():
        d = alt.summary()
        shape[name] = amplitude_ratio(alt.a, alt.a_err, ens.n2_flux[-1], ens.n2_err[-1], points=independent)
        print(f"  {name}: a({d['u_peak']:.3g}) = {d['a_peak']:.4g} +- {d['a_err_peak']:.2g}, chi2/dof "
              f"{d['global_chi2_dof']:.3g} (dof {alt.dof} per point)")
    print(f"  amplitude relative to N = {Ns[-1]} (weighted fit of one profile to the other, u > 0, errors treated as independent): " +
          ", ".join(f"{k}: {r:.3f} +- {e:.3f}" for k, (r, e) in shape.items()))
    steps = sum(n * R[n] for n in Ns) * round(args.t_end / args.dt)
    print(f"\ntotal wall {total:.1f} s for {steps:.3g} particle-steps ({steps / total:.3g} particle-steps/s overall)")

    report = {"args": {k: v for k, v in vars(args).items()}, "total_wall_s": total, "particle_steps": steps,
              "peaks": ens.peaks(), "fit_summary": summary,
              "amplitude_relative_to_largest_N": {str(k): {"ratio": r, "err": e} for k, (r, e) in shape.items()},
              "alternative_fits": {k: alt.summary() for k, alt in alternatives.items()}}
    if args.predicted:
        path = Path(args.predicted)
        predicted = np.load(path) if path.suffix == ".npy" else np.asarray(json.loads(path.read_text()), float)
        comparisons = {"intercept": compare(predicted, fit)}
        comparisons.update({f"N={n}": compare(predicted, ens.measurement(n)) for n in Ns})
        print("\ncomparison with the prediction in", path)
        for c in comparisons.values():
            print(" ", c)
        report["comparisons"] = {k: c.summary() for k, c in comparisons.items()}
    write_json(ens.to_dict(include_covariances=True), out / "ensemble.json")
    write_json(fit, out / "fit.json")
    write_json(report, out / "summary.json")
    plot_ensemble(ens, out / "scaling.png", fit=fit,
                  title=f"HMF, n = {args.n:g}, Q = {args.Q:g}: N$^2\\mathcal{{F}}$, window t = {args.window}")
    print(f"wrote {out / 'ensemble.json'}, {out / 'fit.json'}, {out / 'summary.json'}, {out / 'scaling.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
