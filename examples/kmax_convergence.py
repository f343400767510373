#!/usr/bin/env python3
"""Convergence of the 1/N^2 flux as the truncation kmax of a softened potential grows.

The paper shows this for the softened ring model. The engine's flux is not yet defined for
the full ring model: its harmonics contain a + b = c (1 + 1 = 2, ...), whose pinched
resonance products diverge until the canonical form is derived (derive.order2.pinch_evidence;
this script prints the refusal). It runs the same study on the ring model's odd-harmonic
part, U_k of the ring model for odd k and 0 for even k, i.e. the potential
[U(theta) - U(theta + pi)] / 2, which has no a + b = c and whose U_k decay like the ring
model's. For kmax = 1, 3, 5, 7 it prints N^2 F at a few velocities, the change from the
previous kmax, and writes JSON and a PNG into --out.

    python examples/kmax_convergence.py                     # softening 0.5, ~2 minutes on 2 cores
    python examples/kmax_convergence.py --softening 0.3 --kmax 1 3 5 7 9
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
    p.add_argument("--softening", type=float, default=0.5)
    p.add_argument("--kmax", type=int, nargs="+", default=[1, 3, 5, 7])
    p.add_argument("--Q", type=float, default=4.0, help="sigma^2 / U* (U* = U_1)")
    p.add_argument("--n", type=float, default=4.0, help="generalised Gaussian index")
    p.add_argument("--points", type=int, default=8, help="velocities on (0, 3 sigma]")
    p.add_argument("--out", default="kmax-convergence")
    args = p.parse_args(argv)

    import numpy as np

    from numerics import FourierPotential, GeneralizedGaussian, RingModel
    from numerics.kinetic import TheoryNotApplicable, flux

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ring = RingModel(args.softening)
    u = ring.coefficients(max(args.kmax))
    sigma = math.sqrt(args.Q * u[1])
    df = GeneralizedGaussian(args.n, sigma)
    v = sigma * np.linspace(3.0 / args.points, 3.0, args.points)
    try:
        flux(ring, df, v[:1], N=2, kmax=3)
    except TheoryNotApplicable as exc:
        print(f"full ring model: refused -- {str(exc)[:160]}...")
    rows = {}
    previous = None
    print(f"odd-harmonic part of the ring model, softening {args.softening:g}, n = {args.n:g}, sigma = {sigma:.4g}")
    print("kmax  " + " ".join(f"{x:>10.3g}" for x in v) + "   max change   seconds")
    for kmax in sorted(args.kmax):
        harmonics = {k: float(u[k]) for k in range(1, kmax + 1, 2)}
        t0 = time.perf_counter()
        r = flux(FourierPotential(harmonics), df, v, N=2.0, backend="jax")
        n2 = 4.0 * r.flux
        change = float("nan") if previous is None else float(np.max(np.abs(n2 - previous)) / np.max(np.abs(n2)))
        rows[kmax] = {"harmonics": harmonics, "N2_flux": n2.tolist(), "N2_error": (4.0 * r.error).tolist(),
                      "relative_change": change, "seconds": time.perf_counter() - t0}
        print(f"{kmax:4d}  " + " ".join(f"{x:>10.3e}" for x in n2) + f"   {change:10.2e}   {rows[kmax]['seconds']:7.1f}",
              flush=True)
        previous = n2
    (out / "kmax_convergence.json").write_text(json.dumps({"args": vars(args), "v": v.tolist(), "rows": rows},
                                                          indent=1))
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.axhline(0, color="0.6", lw=0.8)
    for kmax, row in rows.items():
        ax.plot(v, row["N2_flux"], marker="o", ms=3, label=f"kmax = {kmax}")
    ax.set_xlabel("velocity v")
    ax.set_ylabel("N^2 x flux")
    ax.set_title(f"odd-harmonic ring potential, softening {args.softening:g}: flux vs kmax", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "kmax_convergence.png", dpi=110)
    print(f"wrote {out / 'kmax_convergence.json'}, {out / 'kmax_convergence.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
