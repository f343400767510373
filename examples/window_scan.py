#!/usr/bin/env python3
"""Is the measured flux stationary over the fit window? The flux of a stored run in sub-windows.

The comparison of examples/flux_vs_nbody.py assumes that the flux is constant over its window:
after the initial transients, before phi has relaxed. This script takes a run kept with
``flux_vs_nbody.py --save-runs DIR`` (``DIR/run_N{N}.npz``), splits [--t0, end of run] into --split
consecutive sub-windows, measures the flux in each (numerics.nbody.measure_flux), compares it
with the prediction of the derived operator (numerics.validate.compare) and fits the best-fit
ratio measured/predicted linearly in the window's mid time: a slope many sigma from zero means
the window is not stationary and the single-window comparison mixes times.

Prints a table and writes ``window_scan.json`` and ``window_scan.png`` into --out.

    python examples/window_scan.py RUN.npz --split 6 --out window-scan
"""
from __future__ import annotations

import argparse
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", help="a run stored by flux_vs_nbody.py --save-runs (run_N{N}.npz)")
    p.add_argument("--t0", type=float, default=100.0, help="start of the first sub-window")
    p.add_argument("--split", type=int, default=6, help="number of consecutive sub-windows")
    p.add_argument("--n-boot", type=int, default=400, help="bootstrap resamples per sub-window")
    p.add_argument("--out", default="window-scan", help="output directory")
    args = p.parse_args(argv)
    if args.split < 2:
        p.error(f"--split must be >= 2 (a trend needs two sub-windows), got {args.split}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np

    from numerics import HMF, RingModel
    from numerics.models.distributions import distribution_from_dict
    from numerics.nbody import measure_flux
    from numerics.nbody.engine import load_result
    from numerics.validate import compare, predict_n2_flux, weighted_line_fit, write_json

    run = load_result(args.run)
    params = run.params
    N = int(params["N"])
    t_end = float(run.times[-1])
    if not 0 <= args.t0 < t_end:
        raise SystemExit(f"--t0 must lie in [0, {t_end:g}) (the run ends at t = {t_end:g}), got {args.t0:g}")
    pot = params["potential"]
    if pot["name"] == "hmf":
        potential, kmax = HMF(), 1
    elif pot["name"] == "ring":
        potential, kmax = RingModel(pot["softening"]), params.get("kmax") or 10
    else:
        raise SystemExit(f"{args.run}: potential {pot['name']!r} is not one flux_vs_nbody.py runs (hmf, ring)")
    df = distribution_from_dict(params["df"])
    u = np.asarray(run.u_grid, dtype=float)
    pred = predict_n2_flux(potential, df, u, kmax=kmax, allow_unstable=True)
    jp = int(np.argmax(np.abs(pred.n2_flux) * (u > 0)))
    edges = np.linspace(args.t0, t_end, args.split + 1)
    rows = []
    for a, b in zip(edges[:-1], edges[1:]):
        m = measure_flux(run, (float(a), float(b)), n_boot=args.n_boot)
        c = compare(pred.n2_flux, m, N=N)
        n2 = N**2
        inner = (u > 0) & (u < u[jp] * 1.5)
        jm = int(np.argmax(np.where(inner, np.abs(m.flux), -np.inf)))
        rows.append({"window": [float(a), float(b)], "t_mid": float(0.5 * (a + b)), "ratio": c.ratio,
                     "ratio_err": c.ratio_err, "chi2_dof": c.chi2_dof, "chi2_dof_after_ratio": c.chi2_scaled_dof,
                     "at_predicted_peak": float(n2 * m.flux[jp] / pred.n2_flux[jp]),
                     "at_predicted_peak_err": float(n2 * m.stderr[jp] / abs(pred.n2_flux[jp])),
                     "inner_peak": float(abs(n2 * m.flux[jm] / pred.n2_flux[jp])),
                     "inner_peak_err": float(n2 * m.stderr[jm] / abs(pred.n2_flux[jp])),
                     "inner_peak_u_over_sigma": float(u[jm] / df.sigma)})
        r = rows[-1]
        print(f"t = {a:7.0f}-{b:7.0f}: measured/predicted {r['ratio']:.3f} +- {r['ratio_err']:.3f} "
              f"(chi2/dof {r['chi2_dof']:.2f}); at the predicted peak {r['at_predicted_peak']:.2f} +- "
              f"{r['at_predicted_peak_err']:.2f}; inner |N^2 F| max {r['inner_peak']:.2f} +- {r['inner_peak_err']:.2f} "
              f"at u/sigma = {r['inner_peak_u_over_sigma']:.2f}", flush=True)
    t = np.array([r["t_mid"] for r in rows])
    fit = weighted_line_fit(t - t.mean(), [r["ratio"] for r in rows], [r["ratio_err"] for r in rows])
    trend = {"mean_ratio": fit["a"], "mean_ratio_err": fit["a_err"],
             "slope_per_1000": 1000 * fit["b"], "slope_err_per_1000": 1000 * fit["b_err"],
             "slope_sigmas": fit["b"] / fit["b_err"], "chi2_dof": fit["chi2_dof"],
             "tau_end": t_end / N**2, "fraction_moved_end": t_end * abs(pred.n2_flux[jp]) / N**2}
    print(f"linear trend of measured/predicted: {trend['slope_per_1000']:+.3f} +- {trend['slope_err_per_1000']:.3f} "
          f"per 1000 time units ({trend['slope_sigmas']:+.1f} sigma); mean {trend['mean_ratio']:.3f} +- "
          f"{trend['mean_ratio_err']:.3f}; the run ends at tau = t/N^2 = {trend['tau_end']:.3g}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"run": str(args.run), "N": N, "R": int(run.cumulative.shape[0]), "params": params, "rows": rows,
              "trend": trend, "prediction": pred.to_dict()}
    write_json(report, out / "window_scan.json")
    _plot(rows, trend, out / "window_scan.png", f"{pot['name']}, N = {N}, R = {report['R']}")
    print(f"wrote {out / 'window_scan.json'}, {out / 'window_scan.png'}")
    return 0


def _plot(rows, trend, path, title):
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    t = np.array([r["t_mid"] for r in rows])
    half = np.array([0.5 * (r["window"][1] - r["window"][0]) for r in rows])
    ax.errorbar(t, [r["ratio"] for r in rows], xerr=half, yerr=[r["ratio_err"] for r in rows], fmt="o",
                label="best-fit measured / predicted")
    ax.errorbar(t, [r["inner_peak"] for r in rows], yerr=[r["inner_peak_err"] for r in rows], fmt="s", mfc="none",
                label="largest inner |N^2 F| / predicted peak")
    tt = np.linspace(t.min(), t.max(), 2)
    ax.plot(tt, trend["mean_ratio"] + trend["slope_per_1000"] / 1000 * (tt - t.mean()), "C0--", lw=1,
            label=f"trend {trend['slope_per_1000']:+.2f} +- {trend['slope_err_per_1000']:.2f} per 1000")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xlabel("time t (sub-window)")
    ax.set_ylabel("relative to the prediction")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
