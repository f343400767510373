#!/usr/bin/env python3
"""The hot limit: N -> oo fluxes measured at several Q, extrapolated to Q -> oo and compared with
the bare 1/N^2 operator.

The operator the engine derives keeps the leading order in 1/Q: the collective terms and the
g2 g2 sources of g3 it drops each carry one more coupling and one more DF, a relative factor of
order Q_c/Q. So at finite Q the N -> oo flux is F_bare (1 + O(Q_c/Q)), and the bare operator is
tested by the Q -> oo limit of the measured N -> oo flux. This script takes the point-by-point
1/N intercepts that ``examples/flux_vs_nbody.py --combine`` stores ("1/N intercept" in its
report), one report per Q (same potential and profile shape), and

* brings each to the units of the hottest Q with the bare prediction's own Q scaling, checked to
  be one number over the profile (:func:`numerics.validate.extrapolate_hot_limit`);
* fits A(w) + B(w) Q_c/Q at every w = u/sigma; A is the Q -> oo limit, B the first correction;
* compares A with the bare prediction (:func:`numerics.validate.compare`: chi^2/dof, amplitude,
  signs, S/N at the predicted peak), and says whether the validation criterion of the issue
  (chi^2/dof <= 2 over >= 10 points, S/N >= 5 at the predicted peak) is met. Neighbouring points
  are strongly correlated, so when every input report stores its covariance across u the chi^2
  is the one with A's propagated covariance (the diagonal one is reported beside it); otherwise
  the diagonal one, which has the right mean but too wide a spread to be read as a chi^2 law;
* fits the amplitude ratios of the intercepts (measured/predicted at each Q) as a + b Q_c/Q too;
* with --static-dressing, sets beside them what static dressing would give: the bare operator
  evaluated with every harmonic divided by its static dielectric function
  (:func:`numerics.statically_dressed`, a heuristic for the size of collective effects, not a
  derived operator), over the bare one at each Q, and its c in 1 + c Q_c/Q.

A report at a single N (no intercept) enters the two joint fits only, which fit N^2 F at every
(Q, N) at once with a 1/N slope shared across Q: a hot Q run at one N still lengthens the Q lever
arm there. The sequential fit needs two or more reports with intercepts.

Writes ``hot_limit.json`` and ``hot_limit.png`` into --out. No simulation is run:

    python examples/hot_limit.py --out examples/results/hot_limit \\
        examples/results/flux_vs_nbody_Q2_inverse_N examples/results/flux_vs_nbody_Q2.5_inverse_N \\
        examples/results/flux_vs_nbody_Q3_inverse_N examples/results/flux_vs_nbody_Q4_inverse_N
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

INTERCEPT = "1/N intercept"
#: the issue's validation criterion
MAX_CHI2_DOF, MIN_POINTS, MIN_SNR = 2.0, 10, 5.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="DIR",
                   help="output directories of examples/flux_vs_nbody.py --combine, one per Q")
    p.add_argument("--out", default="hot-limit", help="output directory")
    p.add_argument("--static-dressing", action="store_true",
                   help="also evaluate the bare operator with statically dressed couplings U_k / eps_k(0) at each "
                        "Q (a heuristic, two predictions per Q) and compare its excess with the measured one")
    return p.parse_args(argv)


def load(directory: str) -> dict:
    """The 1/N intercept, the bare prediction and the set-up of one combined flux_vs_nbody report."""
    path = Path(directory) / "flux_vs_nbody.json"
    if not path.is_file():
        raise SystemExit(f"{directory}: no flux_vs_nbody.json (not an output directory of flux_vs_nbody.py)")
    data = json.loads(path.read_text())
    per_n = {k: v for k, v in data["comparisons"].items() if k.startswith("N=")}
    if INTERCEPT not in data["comparisons"] and len(per_n) != 1:
        raise SystemExit(f"{directory}: the report has no '{INTERCEPT}' (combine runs at two or more N with "
                         "flux_vs_nbody.py --combine first)")
    args = {"potential": "hmf", "n": 4.0, "softening": 0.5, "kmax": 10, **data["args"]}
    # a report at one N has no intercept: it enters the joint fits only
    return {"dir": str(directory), "args": args, "comparison": data["comparisons"].get(INTERCEPT), "per_n": per_n}


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np

    from numerics import HMF, RingModel
    from numerics.models.stability import critical_Q
    from numerics.validate import compare, extrapolate_hot_limit, hot_profile, weighted_line_fit, write_json

    entries = [load(d) for d in args.runs]
    first = entries[0]["args"]
    for e in entries[1:]:
        keys = ("potential", "n") + (("softening", "kmax") if first["potential"] == "ring" else ())
        for key in keys:
            if e["args"][key] != first[key]:
                raise SystemExit(f"{e['dir']} was run with {key} = {e['args'][key]!r}, {entries[0]['dir']} with "
                                 f"{first[key]!r}: one potential and profile shape, several Q")
    if first["potential"] == "hmf":
        potential, kmax, name = HMF(), 1, "HMF"
    else:
        potential, kmax = RingModel(first["softening"]), first["kmax"]
        name = f"ring model (softening {first['softening']:g}, kmax {kmax})"
    if sum(e["comparison"] is not None for e in entries) < 2:
        raise SystemExit(f"the sequential fit needs two or more reports with a '{INTERCEPT}' (runs combined at "
                         "two or more N, flux_vs_nbody.py --combine); reports at one N enter the joint fits only")
    profiles, per_n, inputs, joint_only, qcs = [], [], [], [], []
    for e in entries:
        q, c = float(e["args"]["Q"]), e["comparison"]
        df = hot_profile(potential, q, first["n"], kmax=kmax)
        qcs.append(critical_Q(df))
        Ns = sorted(int(k[2:]) for k in e["per_n"])
        per_n.extend(_profile(e["per_n"][f"N={N}"], q, df.sigma, N) for N in Ns)
        if c is None:
            one = e["per_n"][f"N={Ns[0]}"]
            joint_only.append({"dir": e["dir"], "Q": q, "N": Ns[0], "ratio": one["ratio_measured_over_predicted"],
                               "ratio_err": one["ratio_err"], "chi2_dof": one["chi2_dof"]})
            continue
        profiles.append(_profile(c, q, df.sigma))
        inputs.append({"dir": e["dir"], "Q": q, "Ns": Ns, "ratio": c["ratio_measured_over_predicted"],
                       "ratio_err": c["ratio_err"], "chi2_dof": c["chi2_dof"], "inverse_N_fit": c.get("fit")})
    Q_c = float(np.mean(qcs))
    if np.ptp(qcs) > 1e-9 * Q_c:
        raise SystemExit(f"the profiles have different Q_c ({qcs}): one profile shape, several Q")
    fits = {"sequential": extrapolate_hot_limit(profiles, Q_c)}
    if len({N for p in per_n for N in [p["N"]]}) >= 2:
        for finite_n in ("shared", "linear"):
            try:
                fits[f"joint_{finite_n}"] = extrapolate_hot_limit(per_n, Q_c, finite_n=finite_n)
            except ValueError as err:  # too few (Q, N) to fit the model: say so, keep the others
                print(f"joint fit with a {finite_n} 1/N slope not made: {err}")
    for row in inputs:
        row["Q_over_Qc"] = row["Q"] / Q_c
        row["scale"] = float(fits["sequential"].scales[fits["sequential"].Qs.index(row["Q"])])
    inputs.sort(key=lambda r: -r["Q"])
    x = np.array([Q_c / r["Q"] for r in inputs])
    ratio, ratio_err = np.array([r["ratio"] for r in inputs]), np.array([r["ratio_err"] for r in inputs])
    amplitude = weighted_line_fit(x, ratio, ratio_err)
    models = _amplitude_models(x, ratio, ratio_err)
    for r in inputs:
        print(f"Q = {r['Q']:g} (Q/Q_c = {r['Q_over_Qc']:.2f}), N = {', '.join(map(str, r['Ns']))}: N -> oo intercept "
              f"{r['ratio']:.3f} +- {r['ratio_err']:.3f} x the bare prediction ({r['dir']})")
    for r in joint_only:
        r["Q_over_Qc"] = r["Q"] / Q_c
        print(f"Q = {r['Q']:g} (Q/Q_c = {r['Q_over_Qc']:.2f}), N = {r['N']} only (joint fits only): "
              f"{r['ratio']:.3f} +- {r['ratio_err']:.3f} x the bare prediction ({r['dir']})")
    print(f"amplitude of the intercepts: a + b Q_c/Q with a = {amplitude['a']:.3f} +- {amplitude['a_err']:.3f}, "
          f"b = {amplitude['b']:.2f} +- {amplitude['b_err']:.2f}"
          + ("" if amplitude["chi2_dof"] is None else f" (chi2/dof {amplitude['chi2_dof']:.2f})"))
    for key, m in models.items():
        print(f"amplitude of the intercepts as {key}: {m['parameter']} = {m['value']:.2f} +- {m['err']:.2f}, "
              f"chi2/dof {m['chi2_dof']:.2f} ({m['dof']} dof)")
    dressing = None
    if args.static_dressing:
        dressing = _static_dressing(potential, kmax, first["n"], entries, inputs, Q_c)
        print("static dressing (a heuristic: the bare operator with U_k / eps_k(0)): over the bare flux "
              + ", ".join(f"{r['static_ratio']:.3f} at Q = {r['Q']:g}" for r in dressing["per_Q"])
              + f"; as 1 + c Q_c/Q over these Q (weights of the measurement): c = {dressing['c']:.2f}, at first "
              f"order (Q -> oo) c = {dressing['c_first_order']:.2f}; measured c = "
              f"{models['1 + c Q_c/Q']['value']:.2f} +- {models['1 + c Q_c/Q']['err']:.2f}")
    analyses = {}
    for key, fit in fits.items():
        comparison = compare(fit.predicted, fit)
        snr = comparison.peak_snr["predicted"]
        cov_chi2 = comparison.chi2_cov_dof
        used = comparison.chi2_dof if cov_chi2 is None else cov_chi2
        criterion = {
            "chi2_dof_max": MAX_CHI2_DOF, "points_min": MIN_POINTS, "snr_min": MIN_SNR,
            "chi2_dof": comparison.chi2_dof, "chi2_cov_dof": cov_chi2,
            "statistic": "diagonal (an input lacks its covariance)" if cov_chi2 is None else "covariance",
            "points": comparison.dof, "snr_at_predicted_peak": snr,
            "met": bool(used <= MAX_CHI2_DOF and comparison.dof >= MIN_POINTS and snr >= MIN_SNR),
        }
        analyses[key] = {"description": DESCRIPTIONS[key], "fit": fit.to_dict(), "comparison": comparison.to_dict(),
                         "criterion": criterion}
        quality = (f"the model fits with chi2/dof {fit.global_chi2_dof:.2f} ({fit.dof} dof per point over "
                   f"{fit.summary()['n_points']} points)" if fit.dof > 0 else
                   "the fit is exact (0 dof: nothing tests the model)")
        print(f"{key}: {DESCRIPTIONS[key]}; {quality}")
        print(f"  against the bare operator, in the units of Q = {fit.Q_ref:g}: {comparison}")
        if key == "joint_linear":
            j = int(np.argmax(np.abs(fit.predicted) * (fit.u > 0)))
            d, d_err = fit.coefficients[3, j], fit.coefficients_err[3, j]
            use = fit.independent & (fit.coefficients_err[3] > 0)
            pulls = fit.coefficients[3, use] / fit.coefficients_err[3, use]
            analyses[key]["D_test"] = {"D_at_predicted_peak": float(d), "D_err_at_predicted_peak": float(d_err),
                                       "mean_D_over_err_squared": float(np.mean(pulls**2)), "n_points": int(np.count_nonzero(use))}
            print(f"  D (the Q dependence of the 1/N slope): {d / d_err:+.2f} sigma from zero at the predicted peak, "
                  f"mean (D/error)^2 = {np.mean(pulls**2):.2f} over {int(np.count_nonzero(use))} points")
        print(f"  criterion chi2/dof <= {MAX_CHI2_DOF:g} over >= {MIN_POINTS} points with S/N >= {MIN_SNR:g} at the "
              f"predicted peak: {'met' if criterion['met'] else 'not met'} (chi2/dof {used:.2f}, "
              f"{criterion['statistic']}, over {comparison.dof} points, S/N {snr:.1f})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"potential": first["potential"], "n": first["n"], "Q_c": Q_c, "inputs": inputs,
              "joint_only": joint_only,
              "amplitude_fit": amplitude, "amplitude_models": models, "analyses": analyses,
              "command": "python examples/hot_limit.py --out " + args.out
              + (" --static-dressing " if args.static_dressing else " ") + " ".join(args.runs)}
    if dressing is not None:
        report["static_dressing"] = dressing
    write_json(report, out / "hot_limit.json")
    _plot(fits, profiles, out / "hot_limit.png", name, first["n"])
    print(f"wrote {out / 'hot_limit.json'}, {out / 'hot_limit.png'}")
    return 0


DESCRIPTIONS = {
    "sequential": "each Q's 1/N intercept (its own a + b/N), then A + B Q_c/Q",
    "joint_shared": "N^2 F at every (Q, N) at once: A + B Q_c/Q + C/N, one 1/N slope in units of the bare flux",
    "joint_linear": "N^2 F at every (Q, N) at once: A + B Q_c/Q + (C + D Q_c/Q)/N, the 1/N slope linear in 1/Q",
}


def _amplitude_models(x, ratio, err) -> dict:
    """One-parameter laws for the amplitude of the N -> oo flux over the bare one, r(x), x = Q_c/Q:
    1 + c x (first order in Q_c/Q, the bare operator exact at Q -> oo) and (1 - x)^-p (a resummed
    amplification: |eps(0)|^-4 of the four static bare couplings has p = 4 and first-order term 4x).
    Weighted least squares through the origin in r - 1 against x, and in ln r against -ln(1 - x)."""
    import numpy as np

    def through_origin(X, Y, E):
        w = 1.0 / E**2
        value = float(np.sum(w * X * Y) / np.sum(w * X * X))
        dof = X.size - 1
        chi2 = float(np.sum(w * (Y - value * X) ** 2))
        return value, float(1.0 / np.sqrt(np.sum(w * X * X))), chi2 / dof if dof else float("nan"), dof

    out = {}
    for key, parameter, X, Y, E in (("1 + c Q_c/Q", "c", x, ratio - 1.0, err),
                                    ("(1 - Q_c/Q)^-p", "p", -np.log1p(-x), np.log(ratio), err / ratio)):
        value, value_err, chi2_dof, dof = through_origin(X, Y, E)
        out[key] = {"parameter": parameter, "value": value, "err": value_err, "chi2_dof": chi2_dof, "dof": dof}
    return out


def _static_dressing(potential, kmax: int, n: float, entries: list, inputs: list, Q_c: float) -> dict:
    """At each intercept's Q: the bare operator with statically dressed couplings
    (numerics.statically_dressed) over the bare one, the least-squares scale over the report's u
    grid; then c of 1 + c Q_c/Q through these ratios, weighted like the measured amplitudes."""
    import numpy as np

    from numerics import statically_dressed
    from numerics.validate import hot_profile, predict_n2_flux

    grids = {float(e["args"]["Q"]): np.asarray(e["comparison"]["u"], dtype=float)
             for e in entries if e["comparison"] is not None}

    def ratio(q: float, u_over_sigma=None) -> float:  # on the report's grid at q, or on u_over_sigma * sigma
        df = hot_profile(potential, q, n, kmax=kmax)
        u = grids[q] if u_over_sigma is None else u_over_sigma * df.sigma
        bare = predict_n2_flux(potential, df, u, kmax=kmax).n2_flux
        dressed = predict_n2_flux(statically_dressed(potential, df, kmax=kmax), df, u, kmax=kmax).n2_flux
        return float(np.dot(dressed, bare) / np.dot(bare, bare))

    per_q = [{"Q": r["Q"], "Q_over_Qc": r["Q"] / Q_c, "static_ratio": ratio(r["Q"]),
              "measured_ratio": r["ratio"], "measured_err": r["ratio_err"]} for r in inputs]
    x = np.array([Q_c / r["Q"] for r in per_q])
    y = np.array([r["static_ratio"] - 1.0 for r in per_q])
    w = 1.0 / np.array([r["measured_err"] for r in per_q]) ** 2
    # the first-order coefficient itself: (ratio - 1) / x at x = 0.01 and 0.005, Richardson-extrapolated
    hottest = inputs[0]["Q"]
    hottest_grid = grids[hottest] / hot_profile(potential, hottest, n, kmax=kmax).sigma
    slopes = [(ratio(Q_c / xx, hottest_grid) - 1.0) / xx for xx in (0.01, 0.005)]
    return {"description": "heuristic, not derived: the bare 1/N^2 operator with U_k -> U_k / |eps_k(k vbar)| "
                           "(numerics.statically_dressed) over the bare operator, least squares over the u grid; "
                           "c: 1 + c Q_c/Q through these ratios with the measured amplitudes' weights; c_first_order: "
                           "d ratio / d(Q_c/Q) at Q -> oo (Richardson from Q_c/Q = 0.01, 0.005)",
            "per_Q": per_q, "c": float(np.sum(w * x * y) / np.sum(w * x * x)),
            "c_first_order": float(2.0 * slopes[1] - slopes[0])}


def _profile(c: dict, Q: float, sigma: float, N: int | None = None) -> dict:
    """A stored comparison as a profile for the hot-limit fits; points too few realisations support
    (when the report stored its support) get a NaN error and are left out, as compare leaves them out."""
    import numpy as np

    from numerics.validate import json_floats, supported_mask

    u = json_floats(c["u"])
    err = json_floats(c["measured_err"])
    if c.get("measured_support") is not None:
        err = np.where(supported_mask(c["measured_support"], int(c["n_realisations"]), u.size), err, np.nan)
    out = {"Q": Q, "sigma": sigma, "u": u, "n2_flux": json_floats(c["measured_values"]),
           "n2_err": err, "predicted": json_floats(c["predicted"]),
           "n2_cov": None if c.get("measured_cov") is None else json_floats(c["measured_cov"])}
    if N is not None:
        out["N"] = N
    return out


def _plot(fits, profiles, path, name, n):
    """Left: every Q's N -> oo flux in the units of the hottest Q, the Q -> oo limits and the bare
    prediction, against u/sigma. Right: the values at the predicted peak against Q_c/Q, with the
    sequential fit's line and every analysis's Q -> oo value."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fit = fits["sequential"]
    fig = Figure(figsize=(11.0, 4.6))
    FigureCanvasAgg(fig)
    ax, bx = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    sigma_ref = next(p["sigma"] for p in profiles if p["Q"] == fit.Q_ref)
    w = fit.u / sigma_ref
    pos = w > 0
    j = int(np.argmax(np.abs(fit.predicted) * pos))  # the predicted peak at u > 0
    norm = abs(fit.predicted[j])
    peak = fit.predicted[j]  # signed: the bare value is 1 on the right
    ax.plot(w[w >= 0], fit.predicted[w >= 0] / norm, color="k", lw=1.6, label="bare operator (hot limit)")
    by_q = {p["Q"]: p for p in profiles}
    for i, q in enumerate(fit.Qs):
        p, s = by_q[q], fit.scales[i]
        ax.errorbar(w[pos] + 0.01 * (i - len(fit.Qs) / 2), p["n2_flux"][pos] / s / norm, yerr=p["n2_err"][pos] / abs(s) / norm,
                    fmt="o", ms=2.5, lw=0.6, color=f"C{i}", alpha=0.7, label=f"N -> oo at Q/Q_c = {q / fit.Q_c:.1f}")
    x = np.array([fit.Q_c / q for q in fit.Qs])
    y = np.array([by_q[q]["n2_flux"][j] / fit.scales[i] for i, q in enumerate(fit.Qs)]) / peak
    e = np.array([by_q[q]["n2_err"][j] / abs(fit.scales[i]) for i, q in enumerate(fit.Qs)]) / norm
    bx.errorbar(x, y, yerr=e, fmt="o", color="C0", label=f"N -> oo at u/sigma = {w[j]:.2f}")
    grid = np.linspace(0.0, x.max() * 1.05, 50)
    bx.plot(grid, (fit.a[j] + fit.b[j] * grid) / peak, color="C0", lw=1.0, label="sequential: A + B Q_c/Q")
    shades = {"sequential": "0.35", "joint_shared": "C3", "joint_linear": "C2"}
    for k, (key, f) in enumerate(fits.items()):
        # each fit in its own units (the hottest Q it holds), shown relative to its own bare peak
        keep, f_peak = pos & f.valid, f.predicted[j]
        ax.fill_between(w[keep], (f.a[keep] - f.a_err[keep]) / abs(f_peak), (f.a[keep] + f.a_err[keep]) / abs(f_peak),
                        color=shades[key], alpha=0.3, label=f"Q -> oo, {key} (+- 1 sigma)")
        bx.errorbar([-0.004 * k], [f.a[j] / f_peak], yerr=[f.a_err[j] / abs(f_peak)], fmt="s", color=shades[key],
                    label=f"Q -> oo, {key}")
    bx.plot([0.0], [1.0], "k*", ms=12, label="bare operator")
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xlabel(r"$u / \sigma$")
    ax.set_ylabel(r"$N^2\mathcal{F}$ / |bare peak| (units of the hottest Q)")
    ax.set_title(f"{name}, n = {n:g}: N -> oo, then Q -> oo")
    ax.legend(fontsize=7)
    bx.set_xlabel(r"$Q_c / Q$")
    bx.set_ylabel("flux at the predicted peak / bare peak")
    bx.set_title("the first correction is linear in 1/Q")
    bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
