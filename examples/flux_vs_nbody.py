#!/usr/bin/env python3
"""Predicted 1/N^2 flux against N-body measurements: the paper's main figure, in spirit.

The prediction comes from the engine (derive.collision_operator(2) -> generated kernels ->
numerics.kinetic.flux); the measurement from N-body ensembles at one or more N
(numerics.validate.flux_ensemble); compare() gives chi^2/dof, the best-fit amplitude ratio
measured/predicted and the sign agreement, for each N and for the 1/N extrapolation when
several N are run. Writes JSON and PNG into --out.

    python examples/flux_vs_nbody.py                       # N = 64, 128 on 2 CPU cores, ~5 min
    python examples/flux_vs_nbody.py --Ns 128 --R 16000    # one N, tighter error bars
    python examples/flux_vs_nbody.py --Q 2                 # closer to Q_c: collective effects grow
    python examples/flux_vs_nbody.py --potential ring --kmax 10 --Ns 64 --R 4096   # softened ring model,
                                                           # harmonic-sum force truncated at kmax
    python examples/flux_vs_nbody.py --potential ring --kmax 10 --force direct ... # same, direct O(N^2) force
    python examples/flux_vs_nbody.py --potential ring --combine DIR1 DIR2 ...  # no new run: the stored
                                                           # measurements of earlier runs (several seeds
                                                           # at one N are merged), compared and
                                                           # extrapolated in 1/N together
    python examples/flux_vs_nbody.py --Q 2 --matched-windows --combine DIR1:128 DIR2 ...
                                                           # the same across runs whose windows grow
                                                           # with N (one window per N; DIR:N takes only
                                                           # N from DIR)
    python examples/flux_vs_nbody.py --Q 5 --Ns 128 256 --R 8192 2048 --matched-fraction 6e-4
                                                           # each N runs over its own window, in which the
                                                           # predicted flux moves 6e-4 of the particles
                                                           # across its peak (t1 = 6e-4 N^2 / |peak N^2 F|)

For the ring model the prediction is evaluated at --kmax (converged: examples/kmax_convergence.py)
and the N-body force is either the harmonic sum truncated at the same kmax or the direct pair
force of the untruncated potential.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="flux-vs-nbody", help="output directory")
    p.add_argument("--Ns", type=int, nargs="+", default=[64, 128], help="particle numbers")
    p.add_argument("--R", type=int, nargs="+", default=[4096, 8192], help="realisations (one, or one per N)")
    p.add_argument("--Q", type=float, default=4.0, help="sigma^2 / U* (HMF: U* = 1/2)")
    p.add_argument("--potential", choices=("hmf", "ring"), default="hmf")
    p.add_argument("--softening", type=float, default=0.5, help="ring model softening")
    p.add_argument("--kmax", type=int, default=10, help="ring model: truncation of prediction and harmonic force")
    p.add_argument("--force", choices=("harmonic", "direct"), default="harmonic",
                   help="ring model N-body force: harmonic sums to kmax, or the direct pair force")
    p.add_argument("--n", type=float, default=4.0, help="generalised Gaussian index (even integer)")
    p.add_argument("--t-end", type=float, default=None, help="duration of each run (default 1500)")
    p.add_argument("--dt", type=float, default=0.1)
    p.add_argument("--window", type=float, nargs=2, default=None, metavar=("T0", "T1"),
                   help="fit window (default 100 1500)")
    p.add_argument("--matched-fraction", type=float, default=None, metavar="F",
                   help="instead of --t-end and --window: each N runs to t1 = F N^2 / |peak N^2 F| of the "
                        "prediction and is fitted over [min(100, t1/4), t1], so that the predicted flux moves "
                        "the same fraction F of the particles across its peak at every N (numerics.validate."
                        "matched_windows; the stored runs use 6e-4 for the HMF, 8.9e-4 for the ring model)")
    p.add_argument("--u-points", type=int, default=41, help="u grid points on [-3 sigma, 3 sigma]")
    p.add_argument("--backend", default="jax", choices=["numpy", "jax", "cupy"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--save-runs", metavar="DIR", default=None,
                   help="also keep each N-body run as DIR/run_N{N}.npz (cumulative fractions per realisation and "
                        "snapshot), for re-measuring other windows with numerics.nbody.measure_flux")
    p.add_argument("--from-runs", metavar="DIR", default=None,
                   help="instead of simulating, measure the runs an earlier invocation with the same options kept "
                        "with --save-runs DIR (checked against them: potential, force, profile, R, dt, t_end, seed); "
                        "the report is the one that run wrote, plus what later versions record (e.g. the "
                        "covariance across u)")
    p.add_argument("--combine", nargs="+", metavar="DIR[:N]", default=None,
                   help="instead of running N-body, load the measurements stored by earlier runs of this script "
                        "(same potential, Q, n, window and u grid; DIR:N takes only N from DIR): runs at one N with "
                        "different seeds are merged (numerics.validate.merge_runs), several N are compared and "
                        "extrapolated in 1/N together")
    p.add_argument("--matched-windows", action="store_true",
                   help="with --combine: the runs may have different fit windows at different N (e.g. t1 "
                        "proportional to N^2, so that phi moves by the same fraction at every N); the runs merged "
                        "at one N must still share their window. --window is then not checked, and the report "
                        "records each N's window")
    args = p.parse_args(argv)
    if len(args.R) == 1:
        args.R = args.R * len(args.Ns)
    if len(args.R) != len(args.Ns):
        p.error("--R needs one value or one per N")
    if args.from_runs and (args.combine or args.save_runs):
        p.error("--from-runs measures stored runs: it does not combine reports or save runs")
    if args.matched_windows and not args.combine:
        p.error("--matched-windows applies to --combine only (a new run has one --window for all N, or "
                "--matched-fraction)")
    if args.matched_fraction is not None:
        if args.combine:
            p.error("--matched-fraction applies to new runs; with --combine use --matched-windows")
        if args.t_end is not None or args.window is not None:
            p.error("--matched-fraction sets each N's run length and window; drop --t-end and --window")
        if not 0.0 < args.matched_fraction < 1.0:
            p.error(f"--matched-fraction must lie in (0, 1), got {args.matched_fraction:g}")
    else:
        args.t_end = 1500.0 if args.t_end is None else args.t_end
        args.window = [100.0, 1500.0] if args.window is None else args.window
    return args


def load_measurements(args, u):
    """The measurements stored in --combine directories (flux_vs_nbody.json), as one ensemble, and
    the simulation seeds behind each N. The stored N^2 F and its one-sigma error give the 16 %/84 %
    band back (symmetric), the covariance across u when the report stored one ("measured_cov",
    written since the measurements carry it) and the support, the realisations with a non-zero slope
    at each u ("measured_support", likewise); runs at the same N with different seeds are merged by
    numerics.validate.merge_runs (covariance and support survive the merge only if every run has them). A report written by --combine records per N its realisations,
    seeds and window and can be combined again; one written before it did so is refused."""
    import json

    import numpy as np

    from numerics.nbody.measure import FluxMeasurement
    from numerics.validate import FluxEnsemble, json_floats, merge_runs

    same = ("potential", "softening", "kmax", "force", "Q", "n", "window", "u_points")
    if args.matched_windows:
        same = tuple(key for key in same if key != "window")
    found = {}
    for spec in args.combine:
        directory, _, only = spec.rpartition(":")
        if not (directory and only.isdigit()):
            directory, only = spec, None
        data = json.loads((Path(directory) / "flux_vs_nbody.json").read_text())
        labels = [label for label in data["comparisons"] if label.startswith("N=")]
        if only is not None:
            if f"N={only}" not in labels:
                raise SystemExit(f"--combine: {directory} holds no comparison at N = {only} (it has "
                                 f"{', '.join(labels)})")
            labels = [f"N={only}"]
        # reports written before --potential/--force existed are HMF runs with the defaults
        stored = {"potential": "hmf", "softening": 0.5, "kmax": 10, "force": "harmonic", **data["args"]}
        if stored.get("matched_fraction") is not None and not args.matched_windows:
            raise SystemExit(f"--combine: {directory} was run with --matched-fraction (one window per N); "
                             "combine it with --matched-windows")
        for key in same:
            if key in ("softening", "kmax", "force") and args.potential != "ring":
                continue
            if stored.get(key) != getattr(args, key):
                raise SystemExit(f"--combine: {directory} was run with {key} = {stored.get(key)!r}, "
                                 f"not {getattr(args, key)!r}")
        for label in labels:
            c = data["comparisons"][label]
            n = int(label[2:])
            if "n_realisations" in c:  # written by this version: per-N realisations, seeds and window
                R, seeds, window = int(c["n_realisations"]), [int(x) for x in c["seeds"]], tuple(c["window"])
            elif stored.get("combine"):
                raise SystemExit(f"--combine: {directory} is an older combined (or re-compared) report that does not "
                                 f"record the realisations and seeds behind N = {n}; combine the runs it was made "
                                 f"from ({', '.join(stored['combine'])})")
            else:
                R, seeds = int(stored["R"][stored["Ns"].index(n)]), [int(stored["seed"])]
                window = tuple(stored["window"])
            uu = np.asarray(c["u"], dtype=float)
            if uu.shape != u.shape or not np.allclose(uu, u):
                raise SystemExit(f"--combine: {directory} has another u grid")
            m = np.asarray([np.nan if x is None else x for x in c["measured_values"]], dtype=float) / n**2
            e = np.asarray([np.nan if x is None else x for x in c["measured_err"]], dtype=float) / n**2
            cov = None if c.get("measured_cov") is None else json_floats(c["measured_cov"]) / float(n) ** 4
            support = None if c.get("measured_support") is None else np.asarray(c["measured_support"], dtype=int)
            found.setdefault(n, []).append((
                FluxMeasurement(u=u, flux=m, lower=m - e, upper=m + e, window=window,
                                n_realisations=R, N=n, folded=True, fit_points=0, covariance=cov,
                                support=support),
                seeds, directory))
    measurements, seeds_at = [], {}
    for n in sorted(found):
        runs = found[n]
        seeds = [x for r in runs for x in r[1]]
        if len(set(seeds)) != len(seeds):
            raise SystemExit(f"--combine: the runs at N = {n} ({', '.join(r[2] for r in runs)}) share a seed "
                             f"({seeds}): they share realisations and are not independent")
        try:
            # seeds are disjoint across runs (checked above), so each run's first seed stands for it
            measurements.append(merge_runs([r[0] for r in runs], [r[1][0] for r in runs]))
        except ValueError as exc:
            raise SystemExit(f"--combine: cannot merge the runs at N = {n} ({', '.join(r[2] for r in runs)}): {exc}")
        seeds_at[n] = seeds
        if len(runs) > 1:
            print(f"combined: N = {n}, R = {measurements[-1].n_realisations} from "
                  + ", ".join(f"{r[2]} (R = {r[0].n_realisations}, seed {', '.join(map(str, r[1]))})" for r in runs))
    return FluxEnsemble.from_measurements(measurements), seeds_at


def stored_runs(args, potential, df, sim_kmax, Ns, R, t_end) -> list:
    """The runs kept by --save-runs in --from-runs, loaded and checked against this invocation's
    options: a run made with other options would silently measure something else."""
    import math

    from numerics.nbody import load_result
    from numerics.validate import derived_seed

    runs = []
    for n in Ns:
        path = Path(args.from_runs) / f"run_N{n}.npz"
        if not path.is_file():
            raise SystemExit(f"--from-runs: {path} does not exist (runs are kept as DIR/run_N{{N}}.npz by --save-runs)")
        run = load_result(path)
        p = run.params
        want = {"potential": potential.parameters(), "R": R[n], "seed": derived_seed(args.seed, n), "dt": args.dt,
                "t_end": t_end[n] if isinstance(t_end, dict) else t_end}
        if args.potential == "ring":  # the HMF has one harmonic: its force is always the harmonic sum
            want["force"] = "harmonic" if sim_kmax else "direct"
            if sim_kmax:
                want["kmax"] = sim_kmax
        for key, value in want.items():
            same = (math.isclose(float(p[key]), float(value), rel_tol=1e-12) if key in ("dt", "t_end")
                    else p[key] == value)
            if not same:
                raise SystemExit(f"--from-runs: {path} was run with {key} = {p[key]!r}, these options ask for {value!r}")
        if p["df"] != df.parameters():
            raise SystemExit(f"--from-runs: {path} has the profile {p['df']}, these options give {df.parameters()}")
        runs.append(run)
    return runs


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np

    from numerics import HMF, RingModel
    from numerics.validate import (compare, ensemble_from_runs, extrapolate_inverse_N, flux_ensemble, hot_profile,
                                   matched_windows, plot_ensemble, predict_n2_flux, write_json)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.potential == "hmf":
        potential, kmax, sim_kmax, name = HMF(), 1, None, "HMF"
    else:
        potential, kmax = RingModel(args.softening), args.kmax
        sim_kmax = kmax if args.force == "harmonic" else None
        name = f"ring model (softening {args.softening:g}, {args.force} force" + (
            f", kmax {kmax})" if sim_kmax else f"; prediction at kmax {kmax})")
    df = hot_profile(potential, args.Q, args.n, kmax=kmax)
    sigma = df.sigma
    u = np.linspace(-3.0 * sigma, 3.0 * sigma, args.u_points)
    pred = predict_n2_flux(potential, df, u, kmax=kmax, backend="numpy" if args.backend == "numpy" else "jax",
                           allow_unstable=True)
    predicted, t_predict = pred.n2_flux, pred.seconds
    collective = pred.to_dict()["collective_indicator"]
    print(f"prediction (Q = {pred.result.Q:.3g}): {pred.evaluated.size} points in {t_predict:.1f} s; peak N^2 F = "
          f"{pred.peak[1]:.4g}" + (f"; collective indicator |eps_{collective['k']}|^-4 = {collective['indicator']:.3g} "
                                   "(the prediction is the bare one)" if collective else ""), flush=True)

    t0 = time.perf_counter()
    if args.combine:
        ens, seeds_at = load_measurements(args, u)
        Ns = list(ens.Ns)
    else:
        Ns = sorted(args.Ns)
        R = dict(zip(sorted(args.Ns), [r for _, r in sorted(zip(args.Ns, args.R))]))
        if args.matched_fraction is not None:
            window = matched_windows(pred.peak[1], Ns, args.matched_fraction, dt=args.dt)
            t_end = {n: w[1] for n, w in window.items()}
            print("matched windows: " + ", ".join(f"N = {n}: [{w[0]:g}, {w[1]:g}]" for n, w in window.items()),
                  flush=True)
        else:
            window, t_end = tuple(args.window), args.t_end
        if args.from_runs:
            ens = ensemble_from_runs(stored_runs(args, potential, df, sim_kmax, Ns, R, t_end), window)
        else:
            ens = flux_ensemble(potential, df, Ns, R, t_end, args.dt, window, backend=args.backend,
                                seed=args.seed, u_grid=u, progress=not args.no_progress, n_snapshots=51,
                                kmax=sim_kmax, save_dir=args.save_runs)
        seeds_at = {n: [args.seed] for n in Ns}
    t_nbody = time.perf_counter() - t0
    if args.from_runs:  # the simulations' own wall time, not the seconds spent measuring them
        t_nbody = float(sum(ens.wall_times))
    results = {}
    for i, n in enumerate(ens.Ns):
        c = compare(predicted, ens.measurements[i])
        results[f"N={n}"] = {**c.to_dict(), "n_realisations": int(ens.Rs[i]), "seeds": seeds_at[n],
                             "window": list(ens.measurements[i].window)}
        print(f"N = {n:4d}, R = {ens.Rs[i]}: {c}")
    fit = None
    if len(Ns) >= 2:
        fit = extrapolate_inverse_N(ens)
        c = compare(predicted, fit)
        results["1/N intercept"] = {**c.to_dict(), "fit": fit.summary()}
        print(f"1/N intercept: {c}")
    report = {"args": vars(args), "prediction": {"u": u.tolist(), "N2_flux": predicted.tolist(),
                                                 "error_positive_u": pred.n2_error[u > 0].tolist(),
                                                 "collective_indicator": collective},
              "comparisons": results, "timings_s": {"predict": t_predict, "nbody": t_nbody}}
    write_json(report, out / "flux_vs_nbody.json")
    plot_ensemble(ens, out / "flux_vs_nbody.png", fit=fit, predicted=predicted,
                  predicted_label="derived 1/N^2 operator",
                  title=f"{name}, n = {args.n:g}, Q = {args.Q:g}: N-body vs prediction")
    print(f"wrote {out / 'flux_vs_nbody.json'}, {out / 'flux_vs_nbody.png'} (prediction {t_predict:.0f} s, "
          f"N-body {t_nbody:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
