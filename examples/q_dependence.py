#!/usr/bin/env python3
"""How the agreement with N-body changes with Q: stored comparisons at several Q (and N).

Reads the reports written by ``examples/flux_vs_nbody.py`` (``flux_vs_nbody.json`` in each
directory given), takes from each the comparisons at the particle numbers ``--N`` it has, and
tabulates them against Q/Q_c:

* measured/predicted (the best-fit amplitude ratio of :func:`numerics.validate.compare`), its
  chi^2/dof before and after that scale, and the S/N at the predicted peak;
* the largest measured |N^2 F| (u > 0) over the predicted one, and where each lies in u / sigma;
* how far phi may have moved by the end of the fit window: t1 x max|F| = t1 x max|N^2 F| / N^2,
  the fraction of all particles the predicted flux carries across its peak velocity (the flux
  grows like sigma / Q^4, so runs at different Q should have windows that make this the same);
* the measured Q exponent at each N: a weighted fit of ln(ratio) against ln Q gives the slope s, and the
  measured amplitude then scales as Q^(-4 + s) in the units u / sigma, tau = sigma t;
* at each Q run at three or more N, the fits of the ratio as a + b/N, a + b ln N and c N^p
  (the 1/N intercept a is what the 1/N^2 operator predicts if the finite-N correction is 1/N);
* two indicators of collective amplification, which the hot-limit operator neglects, from the
  bare dielectric function of the k = 1 harmonic (numerics.models.stability.dielectric):
  |eps_1(0)|^-4 = (1 - Q_c/Q)^-4 for an even single-humped profile, and |eps_1(u_peak)|^-4 at the
  predicted peak velocity. They are indicators (the size and sign of dressing each coupling of
  the three-body operator), not a prediction of the dressed flux, which the engine does not derive.

Writes ``q_dependence.json`` and ``q_dependence.png`` into --out.

    python examples/q_dependence.py --N 128 256 --out examples/results/q_dependence \\
        examples/results/flux_vs_nbody_Q2_N128 examples/results/flux_vs_nbody_Q2.5_N128 \\
        examples/results/flux_vs_nbody_Q3_N128 examples/results/flux_vs_nbody:128 \\
        examples/results/flux_vs_nbody_Q2_N256 examples/results/flux_vs_nbody_Q2.5_N256 \\
        examples/results/flux_vs_nbody_Q3_N256 examples/results/flux_vs_nbody_T6000_combined:256
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="DIR[:N]",
                   help="output directories of examples/flux_vs_nbody.py; DIR:N takes only N from DIR")
    p.add_argument("--N", type=int, nargs="+", required=True,
                   help="particle numbers whose comparisons are taken from the runs (each run: those it has)")
    p.add_argument("--out", default="q-dependence", help="output directory")
    args = p.parse_args(argv)
    if min(args.N) < 2:
        p.error(f"--N must be >= 2, got {args.N}")
    return args


def load(spec: str, Ns) -> list[dict]:
    """The comparisons at the requested N of one flux_vs_nbody report, with the set-up it was run with.
    ``spec`` is a directory, or DIR:N to take only N from it."""
    directory, _, only = spec.rpartition(":")
    if only.isdigit() and directory:
        if int(only) not in Ns:
            raise SystemExit(f"{spec}: N = {only} is not among --N {' '.join(map(str, Ns))}")
        Ns = [int(only)]
    else:
        directory = spec
    path = Path(directory) / "flux_vs_nbody.json"
    if not path.is_file():
        raise SystemExit(f"{directory}: no flux_vs_nbody.json (not an output directory of flux_vs_nbody.py)")
    data = json.loads(path.read_text())
    found = [N for N in Ns if f"N={N}" in data["comparisons"]]
    if not found:
        have = sorted(k for k in data["comparisons"] if k.startswith("N="))
        raise SystemExit(f"{directory}: no comparison at N = {', '.join(map(str, Ns))} (it has {', '.join(have) or 'none'})")
    stored = {"potential": "hmf", "n": 4.0, "softening": 0.5, "kmax": 10, **data["args"]}  # early reports: HMF, n = 4
    return [{"dir": str(directory), "N": N, "args": stored, "comparison": data["comparisons"][f"N={N}"],
             "prediction": data["prediction"]} for N in found]


def _stored_R(args: dict, N: int):
    """The realisations a report without per-N records ran at N (None if its arguments do not say)."""
    Ns, Rs = args.get("Ns") or [], args.get("R") or []
    return int(Rs[Ns.index(N)]) if N in Ns and len(Rs) == len(Ns) else None


def _snr_at(comparison: dict, u_peak: float) -> float:
    """|measured| / error of a stored comparison at the grid point u_peak."""
    import numpy as np

    u = np.asarray(comparison["u"], dtype=float)
    i = int(np.argmin(np.abs(u - u_peak)))
    value, err = comparison["measured_values"][i], comparison["measured_err"][i]
    return abs(value) / err if value is not None and err else float("nan")


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np

    from numerics import HMF, RingModel
    from numerics.models.stability import critical_Q, dielectric
    from numerics.validate import hot_profile, weighted_line_fit, write_json

    entries = [e for d in args.runs for e in load(d, args.N)]
    first = entries[0]["args"]
    for e in entries[1:]:
        for key in ("potential", "n", "softening", "kmax"):
            if key in ("softening", "kmax") and first["potential"] != "ring":
                continue
            if e["args"][key] != first[key]:
                raise SystemExit(f"{e['dir']} was run with {key} = {e['args'][key]!r}, "
                                 f"{entries[0]['dir']} with {first[key]!r}: one set-up, several Q")
    keys = [(e["N"], float(e["args"]["Q"])) for e in entries]
    if len(set(keys)) != len(keys):
        raise SystemExit(f"two runs share a value of Q at one N ({keys}); merge them first (flux_vs_nbody.py --combine)")
    if first["potential"] == "hmf":
        potential, kmax = HMF(), 1
    else:
        potential, kmax = RingModel(first["softening"]), first["kmax"]

    rows = []
    for e in sorted(entries, key=lambda e: (e["N"], e["args"]["Q"])):
        q, c, N = float(e["args"]["Q"]), e["comparison"], e["N"]
        df = hot_profile(potential, q, first["n"], kmax=kmax)
        qc = critical_Q(df)
        predicted = np.asarray(e["prediction"]["N2_flux"], dtype=float)
        u = np.asarray(e["prediction"]["u"], dtype=float)
        j = int(np.argmax(np.abs(predicted) * (u > 0)))
        eps0 = complex(dielectric(potential, df, 1, 0.0, kmax=kmax))
        eps_peak = complex(dielectric(potential, df, 1, float(u[j]), kmax=kmax))
        measured = np.asarray([np.nan if v is None else v for v in c["measured_values"]], dtype=float)
        merr = np.asarray([np.nan if v is None else v for v in c["measured_err"]], dtype=float)
        um = np.asarray(c["u"], dtype=float)
        jm = int(np.nanargmax(np.where(um > 0, np.abs(measured), np.nan)))
        t0, t1 = c.get("window", e["args"]["window"])  # per-N window of combined reports, else the run's
        rows.append({
            "dir": e["dir"], "N": N, "Q": q, "Q_c": qc, "Q_over_Qc": q / qc, "sigma": df.sigma,
            "seeds": c.get("seeds", [e["args"]["seed"]]), "n_realisations": c.get("n_realisations", _stored_R(e["args"], N)),
            "window": [t0, t1], "fraction_moved": t1 * float(np.max(np.abs(predicted))) / N**2,
            "ratio": c["ratio_measured_over_predicted"], "ratio_err": c["ratio_err"], "chi2_dof": c["chi2_dof"],
            "chi2_dof_after_ratio": c["chi2_dof_after_ratio"], "n_points": c["n_points"],
            "snr_predicted_peak": _snr_at(c, float(u[j])), "sign_agreement": c["sign_agreement"],
            "predicted_peak": {"u": float(u[j]), "u_over_sigma": float(u[j]) / df.sigma, "N2_flux": float(predicted[j])},
            "measured_peak": {"u": float(um[jm]), "u_over_sigma": float(um[jm]) / df.sigma,
                              "N2_flux": float(measured[jm]), "err": float(merr[jm])},
            "peak_ratio": abs(float(measured[jm]) / float(predicted[j])), "peak_ratio_err": float(merr[jm] / abs(predicted[j])),
            "eps1_static_inv4": abs(eps0) ** -4, "eps1_at_peak_inv4": abs(eps_peak) ** -4,
        })
    for r in rows:
        print(f"N = {r['N']}, Q = {r['Q']:g} (Q/Q_c = {r['Q_over_Qc']:.2f}), window t = {r['window'][0]:g}-{r['window'][1]:g} "
              f"(predicted fraction moved {r['fraction_moved']:.2g}): measured/predicted = "
              f"{r['ratio']:.3f} +- {r['ratio_err']:.3f}, chi2/dof {r['chi2_dof']:.2f} ({r['chi2_dof_after_ratio']:.2f} "
              f"after the scale), S/N {r['snr_predicted_peak']:.1f} at the predicted peak; largest |N^2 F| measured "
              f"{r['peak_ratio']:.2f} +- {r['peak_ratio_err']:.2f} x the predicted one, at u/sigma = "
              f"{r['measured_peak']['u_over_sigma']:.2f} (predicted {r['predicted_peak']['u_over_sigma']:.2f}); |eps_1(0)|^-4 = "
              f"{r['eps1_static_inv4']:.2f}, |eps_1(u_peak)|^-4 = {r['eps1_at_peak_inv4']:.2f}")

    report = {"Ns": sorted({r["N"] for r in rows}), "potential": first["potential"], "n": first["n"], "rows": rows,
              "q_exponent": {}}
    for N in report["Ns"]:
        at_n = [r for r in rows if r["N"] == N]
        if len(at_n) < 2:
            continue
        fit = weighted_line_fit(np.log([r["Q"] for r in at_n]), np.log([r["ratio"] for r in at_n]),
                                [r["ratio_err"] / r["ratio"] for r in at_n])
        qe = report["q_exponent"][str(N)] = {
            "Qs": [r["Q"] for r in at_n], "slope_of_ln_ratio": fit["b"], "slope_err": fit["b_err"],
            "measured_exponent": -4.0 + fit["b"], "predicted_exponent": -4.0, "chi2_dof": fit["chi2_dof"],
            "units": "N^2 F per unit tau = sigma t at w = u / sigma; exponent of Q at fixed profile",
        }
        print(f"N = {N}: Q exponent of the measured amplitude over Q = {min(qe['Qs']):g}-{max(qe['Qs']):g}: "
              f"{qe['measured_exponent']:.2f} +- {qe['slope_err']:.2f} (predicted -4; ln(ratio) against ln Q has "
              f"slope {qe['slope_of_ln_ratio']:.2f})")
    report["n_fits"] = {}
    for q in sorted({r["Q"] for r in rows}):
        at_q = [r for r in rows if r["Q"] == q]
        if len(at_q) < 3:  # two points fit any line: nothing is tested
            continue
        N_ = np.array([r["N"] for r in at_q], dtype=float)
        ratio, err = np.array([r["ratio"] for r in at_q]), np.array([r["ratio_err"] for r in at_q])
        fits = {"a + b/N": weighted_line_fit(1.0 / N_, ratio, err),
                "a + b ln N": weighted_line_fit(np.log(N_), ratio, err),
                "power c N^p (fit of ln ratio)": weighted_line_fit(np.log(N_), np.log(ratio), err / ratio)}
        report["n_fits"][f"{q:g}"] = {"Ns": N_.astype(int).tolist(), **fits}
        inv, log_, power = fits.values()
        print(f"Q = {q:g}, N = {', '.join(str(int(n)) for n in N_)}: a + b/N gives {inv['a']:.2f} +- {inv['a_err']:.2f} "
              f"at N -> oo (chi2/dof {inv['chi2_dof']:.2f}); a + b ln N: chi2/dof {log_['chi2_dof']:.2f}; "
              f"N^p with p = {power['b']:.2f} +- {power['b_err']:.2f}: chi2/dof {power['chi2_dof']:.2f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(report, out / "q_dependence.json")
    profiles = []
    for r in rows:
        e = next(e for e in entries if e["dir"] == r["dir"] and e["N"] == r["N"])
        c = e["comparison"]
        profiles.append((np.asarray(c["u"], dtype=float), np.asarray(c["predicted"], dtype=float),
                         np.asarray([np.nan if v is None else v for v in c["measured_values"]], dtype=float),
                         np.asarray([np.nan if v is None else v for v in c["measured_err"]], dtype=float)))
    label = "HMF" if first["potential"] == "hmf" else f"ring model (softening {first['softening']:g}, kmax {kmax})"
    _plot(rows, profiles, out / "q_dependence.png", label, potential, first["n"], kmax, report["n_fits"])
    print(f"wrote {out / 'q_dependence.json'}, {out / 'q_dependence.png'}")
    return 0


def _plot(rows, profiles, path, name, potential, n, kmax, n_fits):
    """Left: measured/predicted against Q/Q_c per N, the a + b/N intercepts at the Q run at three or
    more N, and the two indicators. Right: the measured
    profiles at the N with the most values of Q and the predicted one in units of the predicted peak, against
    u / sigma (the bare operator's shape does not depend on Q in these units)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from numerics.models.stability import dielectric
    from numerics.validate import hot_profile

    fig = Figure(figsize=(11.0, 4.6))
    FigureCanvasAgg(fig)
    ax, bx = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    Ns = sorted({r["N"] for r in rows})
    for i, N in enumerate(Ns):
        at_n = [r for r in rows if r["N"] == N]
        x = np.array([r["Q_over_Qc"] for r in at_n]) * (1.0 + 0.01 * (i - (len(Ns) - 1) / 2))
        ax.errorbar(x, [r["ratio"] for r in at_n], yerr=[r["ratio_err"] for r in at_n], fmt="o", color=f"C{i}",
                    label=f"N = {N}: best-fit measured / predicted")
        ax.errorbar(x, [r["peak_ratio"] for r in at_n], yerr=[r["peak_ratio_err"] for r in at_n], fmt="s",
                    color=f"C{i}", mfc="none", label=f"N = {N}: largest |N^2 F|, measured / predicted")
    qc = rows[0]["Q_c"]
    if n_fits:
        qs = sorted(n_fits, key=float)
        ax.errorbar([float(q) / qc for q in qs], [n_fits[q]["a + b/N"]["a"] for q in qs],
                    yerr=[n_fits[q]["a + b/N"]["a_err"] for q in qs], fmt="*", ms=11, color="k",
                    label="N -> oo: intercept of a + b/N")
    xs = [r["Q_over_Qc"] for r in rows]
    grid = np.linspace(min(xs) * 0.9, max(xs) * 1.15, 60)
    at_peak = []
    for g in grid:
        df = hot_profile(potential, g * qc, n, kmax=kmax)
        u_peak = rows[0]["predicted_peak"]["u_over_sigma"] * df.sigma
        at_peak.append(abs(complex(dielectric(potential, df, 1, u_peak, kmax=kmax))) ** -4)
    ax.plot(grid, (1.0 - 1.0 / grid) ** -4, color="0.25", lw=1.2, label=r"indicator $|\varepsilon_1(0)|^{-4}$")
    ax.plot(grid, at_peak, color="0.45", lw=1.2, ls="--", label=r"indicator $|\varepsilon_1(k u_{peak})|^{-4}$")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xlabel(r"$Q / Q_c$")
    ax.set_ylabel("amplitude relative to the hot-limit prediction")
    ax.set_title(f"{name}, n = {n:g}: agreement against Q/Q_c")
    ax.legend(fontsize=7)
    shown = max(Ns, key=lambda N: (sum(r["N"] == N for r in rows), N))  # the N with the most Q values
    largest = [(r, prof) for r, prof in zip(rows, profiles) if r["N"] == shown]
    for i, (r, (u, pred, meas, err)) in enumerate(largest):
        scale = abs(r["predicted_peak"]["N2_flux"])
        w = u / r["sigma"]
        keep = (w > 0) & np.isfinite(meas) & np.isfinite(err)
        if i == 0:
            bx.plot(w[w >= 0], pred[w >= 0] / scale, color="k", lw=1.5, label="predicted (any Q)")
        bx.errorbar(w[keep] + 0.012 * (i - len(largest) / 2), meas[keep] / scale, yerr=err[keep] / scale, fmt="o",
                    ms=3, lw=0.8, color=f"C{i}", label=f"Q = {r['Q']:g} (Q/Q_c = {r['Q_over_Qc']:.1f})")
    bx.axhline(0.0, color="k", lw=0.5)
    bx.set_xlabel(r"$u / \sigma$")
    bx.set_ylabel(r"$N^2\mathcal{F}$ / |predicted peak|")
    bx.set_title(f"measured profiles at N = {shown} in units of the prediction")
    bx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
