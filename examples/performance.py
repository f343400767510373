#!/usr/bin/env python3
"""Performance report: what each choice of the N-body measurement buys, measured side by side.

Four choices decide how long the prediction-versus-N-body comparison takes at a given precision:

1. force: harmonic sums truncated at kmax, O(N kmax) per particle, against the direct pair force,
   O(N^2) (softened ring model, same N and R, same integrator);
2. batching: R realisations advanced together in one compiled loop, against one at a time
   (particle-steps per second at several R);
3. differencing within realisations: the flux as a difference (or slope) per realisation, against
   the difference of two independent ensembles' means (numerics.nbody.measure.flux_error_budget,
   on one run, so at equal cost);
4. time window: the error of the flux at the predicted peak for several window lengths, from
   the same run (the cost of a run grows like its length).

From these it prints and writes (``performance.json`` in --out) the wall time this machine needs
for signal-to-noise --target at the predicted flux peak at N = --N, with every choice on and
with each one switched off in turn. All figures come from runs made by this script in one
process; nothing is copied from elsewhere.

    python examples/performance.py --out examples/results/performance    # ~4 minutes on 2 cores
    python examples/performance.py --quick                                # smoke run, ~15 s
"""
from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="performance", help="output directory")
    p.add_argument("--N", type=int, default=256, help="particles per realisation of the statistics run (and of the force timings)")
    p.add_argument("--R", type=int, default=1024, help="realisations of the statistics run")
    p.add_argument("--t-end", type=float, default=6000.0, help="length of the statistics run")
    p.add_argument("--windows", type=float, nargs="+", default=[1500.0, 3000.0, 6000.0],
                   help="window ends t1 compared (each window starts at --t0)")
    p.add_argument("--t0", type=float, default=100.0, help="start of every window")
    p.add_argument("--target", type=float, default=5.0, help="signal-to-noise wanted at the predicted peak")
    p.add_argument("--kmax", type=int, default=10, help="ring model truncation for the force timings")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64, 512], help="R values of the batching timings")
    p.add_argument("--backend", default="jax", choices=["numpy", "jax", "cupy"])
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script runs, figures meaningless")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    if args.quick:
        args.N, args.R, args.t_end, args.windows, args.t0, args.batches = 16, 64, 60.0, [30.0, 60.0], 5.0, [1, 8]
    if args.N < 2 or args.R < 2:
        p.error(f"--N and --R must be >= 2, got N = {args.N}, R = {args.R}")
    if args.kmax < 1:
        p.error(f"--kmax must be >= 1, got {args.kmax}")
    if args.target <= 0:
        p.error(f"--target must be > 0, got {args.target}")
    if not all(args.t0 < w <= args.t_end for w in args.windows):
        p.error(f"every --windows end must lie in (t0, t_end] = ({args.t0:g}, {args.t_end:g}], got {args.windows}")
    return args


def throughput(potential, df, N: int, R: int, *, force: str, kmax, backend: str, budget: float,
               dt: float = 0.1, repeats: int = 2) -> dict:
    """Particle-steps per second of simulate() (Yoshida-4) at (N, R): the best of ``repeats`` runs of
    about ``budget`` particle-steps each, after one short run that compiles."""
    from numerics.nbody import simulate

    steps = int(min(20000, max(50, round(budget / (N * R)))))
    kw = dict(kmax=kmax, force=force, backend=backend, n_snapshots=2, progress=False, max_energy_error=None)
    simulate(potential, df, N, R, 2 * dt, dt, seed=0, **kw)  # compile
    best = math.inf
    for i in range(repeats):
        run = simulate(potential, df, N, R, steps * dt, dt, seed=i + 1, **kw)
        best = min(best, run.wall_time)
    return {"N": N, "R": R, "force": force, "kmax": kmax, "steps": steps, "wall_s": best,
            "particle_steps_per_s": N * R * steps / best}


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np

    from numerics import HMF, RingModel
    from numerics.nbody import simulate
    from numerics.nbody.measure import flux_error_budget, flux_slopes, fold_odd
    from numerics.validate import hot_profile, predict_n2_flux, write_json

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    budget = 2e6 if args.quick else 4e7

    # 1. force: harmonic sums against the direct pair force (ring model)
    ring = RingModel(0.5)
    ring_df = hot_profile(ring, 4.0, kmax=args.kmax)
    forces = [throughput(ring, ring_df, args.N, 64, force=f, kmax=args.kmax if f == "harmonic" else None,
                         backend=args.backend, budget=budget / (1 if f == "harmonic" else 8))
              for f in ("harmonic", "direct")]
    force_gain = forces[0]["particle_steps_per_s"] / forces[1]["particle_steps_per_s"]
    print(f"force (ring model, N = {args.N}, R = 64): harmonic sums to kmax = {args.kmax} "
          f"{forces[0]['particle_steps_per_s']:.3g} particle-steps/s, direct pair force "
          f"{forces[1]['particle_steps_per_s']:.3g}: x{force_gain:.1f}", flush=True)

    # 2. batching: particle-steps/s against R (ring model, harmonic sums)
    batches = [throughput(ring, ring_df, args.N, R, force="harmonic", kmax=args.kmax, backend=args.backend,
                          budget=budget if R > 1 else budget / 20) for R in args.batches]
    batch_gain = batches[-1]["particle_steps_per_s"] / batches[0]["particle_steps_per_s"]
    print("batching (ring model, harmonic): " + ", ".join(
        f"R = {b['R']}: {b['particle_steps_per_s']:.3g}" for b in batches)
          + f" particle-steps/s; R = {batches[-1]['R']} against R = {batches[0]['R']}: x{batch_gain:.1f}", flush=True)

    # 3 + 4. statistics run (HMF, the cheap model): the three estimators' errors, and window length
    hmf = HMF()
    df = hot_profile(hmf, 4.0)
    sigma = df.sigma
    u = np.linspace(-3.0 * sigma, 3.0 * sigma, 41)
    prediction = predict_n2_flux(hmf, df, u, kmax=1, backend="numpy" if args.backend == "numpy" else "jax")
    u_peak, f_peak = prediction.peak
    idx = int(np.flatnonzero(u == u_peak)[0])
    run = simulate(hmf, df, args.N, args.R, args.t_end, 0.1, backend=args.backend, seed=args.seed,
                   n_snapshots=int(round(args.t_end / 50.0)) + 1 if not args.quick else 31, u_grid=u,
                   progress=False)
    cost_per_time = run.wall_time / args.t_end  # seconds of wall per unit of simulated time, for this N and R
    windows = []
    n2 = args.N ** 2
    for t1 in args.windows:
        w = (args.t0, t1)
        budget_w = {k: float(n2 * v[idx]) for k, v in flux_error_budget(run.times, run.cumulative, w, fold=True).items()}
        slopes, _ = flux_slopes(run.times, run.cumulative, w)  # flux per realisation and u
        measured = float(fold_odd(slopes.mean(axis=0))[idx])
        # realisations needed for S/N = target at the predicted peak, per estimator, and their wall time
        need = {k: args.R * (args.target * e / abs(f_peak)) ** 2 for k, e in budget_w.items()}
        windows.append({"window": list(w), "tau_end": t1 / n2, "N2_flux_measured": n2 * measured,
                        "errors": budget_w, "R_needed": need,
                        "wall_needed_s": {k: v / args.R * cost_per_time * t1 for k, v in need.items()},
                        "pairing_gain_in_R": (budget_w["two_point_unpaired"] / budget_w["two_point"]) ** 2,
                        "snapshots_gain_in_R": (budget_w["two_point"] / budget_w["least_squares"]) ** 2})
        print(f"window {w} (tau = t/N^2 up to {t1 / n2:.3g}): N^2 F at u = {u_peak:.3g}: {n2 * measured:.4g} "
              f"(predicted {f_peak:.4g}); errors: least squares per realisation {budget_w['least_squares']:.2g}, "
              f"two-point per realisation {budget_w['two_point']:.2g}, two-point between independent ensembles "
              f"{budget_w['two_point_unpaired']:.2g}: pairing is worth x{windows[-1]['pairing_gain_in_R']:.0f} in R, "
              f"the snapshots x{windows[-1]['snapshots_gain_in_R']:.1f}; S/N {args.target:g} needs "
              f"R = {need['least_squares']:.0f}", flush=True)
    shortest, longest = windows[0], windows[-1]
    window_gain = shortest["wall_needed_s"]["least_squares"] / longest["wall_needed_s"]["least_squares"]
    slope = math.log(longest["errors"]["least_squares"] / shortest["errors"]["least_squares"]) / math.log(
        (longest["window"][1] - args.t0) / (shortest["window"][1] - args.t0))
    print(f"window: error ~ T^{slope:.2f}; window {longest['window']} needs x{window_gain:.1f} less wall time "
          f"than {shortest['window']} for the same S/N, as long as phi has not changed (tau << 1)", flush=True)

    # time to the comparison, all choices on, and each one off (the ring model's force and batching
    # ratios apply to the cost per particle-step; pairing and window to the realisations needed)
    base = longest["wall_needed_s"]["least_squares"]
    unpaired = longest["wall_needed_s"]["two_point_unpaired"]
    scenarios = {
        "all choices on (HMF, measured)": base,
        "independent ensembles at the two window ends": unpaired,
        f"short window t1 = {shortest['window'][1]:g}": shortest["wall_needed_s"]["least_squares"],
        "one realisation at a time (factor from the ring model)": base * batch_gain,
        f"direct force instead of harmonic sums (ring model, kmax = {args.kmax})": base * force_gain,
        "all off": shortest["wall_needed_s"]["two_point_unpaired"] * batch_gain * force_gain,
    }
    for name, wall in scenarios.items():
        print(f"  S/N {args.target:g} at N = {args.N}: {wall / 60:12.1f} min  {name}")
    report = {
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": load, "backend": args.backend},
        "args": vars(args),
        "force": {"runs": forces, "harmonic_over_direct": force_gain},
        "batching": {"runs": batches, "largest_over_smallest": batch_gain},
        "statistics_run": {"potential": "HMF", "N": args.N, "R": args.R, "t_end": args.t_end,
                           "wall_s": run.wall_time, "predicted_peak": {"u": u_peak, "N2_flux": f_peak},
                           "windows": windows, "error_exponent_in_T": slope, "window_gain": window_gain},
        "time_to_target_s": scenarios,
    }
    write_json(report, out / "performance.json")
    print(f"wrote {out / 'performance.json'} ({time.process_time():.0f} s of CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
