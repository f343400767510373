#!/usr/bin/env python3
"""Relaxation of a velocity PDF to the Maxwellian under the derived 1/N^2 (three-body) operator.

A generalised Gaussian (n = 4) in a hot HMF (Q = 4 by default) evolves under the canonical
operator (numerics.kinetic.three_body_flux_fn, finite volumes, implicit BDF steps,
numerics.evolve_implicit) until tau = t / N^2 = --tau-end. Printed and written into --out:
the distance to the Maxwellian of the same mass, momentum and energy, the entropy, and the
drifts of mass, momentum and energy at each snapshot, for each grid resolution in --cells
(the comparison of resolutions is the convergence check); relaxation.json, relaxation_<cells>.npz,
relaxation.png. Long runs checkpoint (relaxation_<cells>.checkpoint.npz) and continue with
--resume.

    python examples/relaxation.py                              # 32 and 40 cells, tau = 150
    python examples/relaxation.py --potential ring --kmax 6 --cells 32 --tau-end 300
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--potential", choices=("hmf", "ring"), default="hmf")
    p.add_argument("--softening", type=float, default=0.5, help="ring model softening")
    p.add_argument("--kmax", type=int, default=6, help="ring model truncation")
    p.add_argument("--Q", type=float, default=4.0, help="sigma^2 / U*")
    p.add_argument("--n", type=float, default=4.0, help="initial generalised Gaussian index")
    p.add_argument("--tau-end", type=float, default=150.0, help="final t / N^2")
    p.add_argument("--cells", type=int, nargs="+", default=[32, 40])
    p.add_argument("--vmax", type=float, default=4.5, help="grid half-width / sigma")
    p.add_argument("--snapshots", type=int, default=21)
    p.add_argument("--rtol", type=float, default=1e-4)
    p.add_argument("--atol", type=float, default=1e-8)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    p.add_argument("--out", default="relaxation")
    args = p.parse_args(argv)

    import numpy as np

    from numerics import HMF, GeneralizedGaussian, RingModel
    from numerics.evolve import VelocityGrid
    from numerics.evolve_implicit import evolve_implicit, resume
    from numerics.kinetic import check_validity, three_body_flux_fn

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.potential == "hmf":
        potential, kmax = HMF(), 1
    else:
        potential, kmax = RingModel(args.softening), args.kmax
    sigma = math.sqrt(args.Q * potential.attractive_max(kmax))
    df = GeneralizedGaussian(args.n, sigma)
    q = check_validity(potential, df, kmax)
    # N only sets the time unit: the flux is exactly proportional to 1/N^2, so run at N = 1, t = tau
    flux_fn = three_body_flux_fn(potential, N=1.0, kmax=kmax, backend="jax")
    runs = {}
    for cells in args.cells:
        grid = VelocityGrid.uniform(-args.vmax * sigma, args.vmax * sigma, cells)
        ck = out / f"relaxation_{cells}.checkpoint.npz"
        t0 = time.perf_counter()
        if args.resume and ck.exists():
            r = resume(flux_fn, ck)
        else:
            r = evolve_implicit(flux_fn, df, grid, args.tau_end, n_snapshots=args.snapshots, checkpoint=ck,
                                rtol=args.rtol, atol=args.atol)
        wall = time.perf_counter() - t0
        target = r.maxwellian()
        dist = [float(np.max(np.abs(ph - target)) / np.max(target)) for ph in r.phi_out]
        S_snap = [float(np.interp(t, r.t, r.entropy)) for t in r.t_out]
        r.info.update({"potential": potential.parameters(), "initial_df": df.parameters(), "Q": q, "kmax": kmax})
        r.save(out / f"relaxation_{cells}.npz")
        half = next((float(t) for t, d in zip(r.t_out, dist) if d <= 0.5 * dist[0]), None)
        runs[cells] = {"tau": r.t_out.tolist(), "distance_to_maxwellian": dist, "entropy": S_snap,
                       "max_mass_error": float(r.mass_error.max()), "max_momentum_error": float(r.momentum_error.max()),
                       "max_energy_error": float(r.energy_error.max()),
                       "largest_entropy_decrease_between_steps": r.entropy_decrease,
                       "tau_half_distance": half, "steps": r.info["n_accepted"], "rejected": r.info["n_rejected"],
                       "flux_evaluations": r.info["n_flux_evaluations"], "min_phi": r.info["min_phi"],
                       "largest_conservation_correction": r.info.get("conservation_largest_correction"),
                       "wall_seconds": wall}
        print(f"{cells} cells: {r.summary()}")
        print("  tau:      " + " ".join(f"{t:9.3g}" for t in r.t_out[::max(1, len(dist) // 8)]))
        print("  distance: " + " ".join(f"{d:9.3e}" for d in dist[::max(1, len(dist) // 8)]))
        print(f"  distance halved at tau = {half}; min phi {r.info['min_phi']:.2e}; wall {wall:.0f} s", flush=True)
    (out / "relaxation.json").write_text(json.dumps({"args": vars(args), "sigma": sigma, "Q": q, "runs": runs},
                                                    indent=1))
    _plot(out / "relaxation.png", runs, args, q)
    print(f"wrote {out / 'relaxation.json'}, {out / 'relaxation.png'}")
    return 0


def _plot(path, runs, args, q):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    import numpy as np

    from numerics.evolve import load_evolution

    fig = Figure(figsize=(12.0, 4.0))
    FigureCanvasAgg(fig)
    ax_phi, ax_d, ax_s = (fig.add_subplot(1, 3, k) for k in (1, 2, 3))
    finest = max(runs)
    r = load_evolution(Path(path).with_name(f"relaxation_{finest}.npz"))
    sigma = math.sqrt(2.0 * r.energy[0] / r.mass[0])
    for k in np.linspace(0, len(r.t_out) - 1, 5).astype(int):
        ax_phi.plot(r.grid.centres / sigma, r.phi_out[k], lw=1.2, label=f"tau = {r.t_out[k]:.3g}")
    from numerics import Gaussian
    ax_phi.plot(r.grid.centres / sigma, Gaussian(sigma).pdf(r.grid.centres), "k--", lw=0.8, label="Maxwellian")
    ax_phi.set_xlabel("v / sigma")
    ax_phi.set_ylabel("phi(v)")
    ax_phi.legend(fontsize=7)
    for cells, run in sorted(runs.items()):
        ax_d.semilogy(run["tau"], run["distance_to_maxwellian"], marker="o", ms=3, label=f"{cells} cells")
        ax_s.plot(run["tau"], np.array(run["entropy"]) - run["entropy"][0], marker="o", ms=3, label=f"{cells} cells")
    ax_d.set_xlabel("tau = t / N^2")
    ax_d.set_ylabel("max |phi - phi_Maxwell| / max phi_Maxwell")
    ax_d.legend(fontsize=8)
    ax_s.set_xlabel("tau = t / N^2")
    ax_s.set_ylabel("S(tau) - S(0)")
    ax_s.legend(fontsize=8)
    fig.suptitle(f"1/N^2 relaxation, {args.potential}, n = {args.n:g} -> Maxwellian, Q = {q:.3g}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
