"""Numerical evaluation of engine expressions with regularised distributions (test helper).

Resonance(x, n) -> (x - i eps)^-n, delta^(k)(x) -> k-th derivative of eps/(pi (x^2 + eps^2)),
P(1/x^n) -> Re (x - i eps)^-n. Sums over wavevectors run over 0 < |q| <= kmax (1D), integrals
over velocities by the trapezoidal rule on a grid. F and its derivatives enter as arrays
(placeholders in the lambdified expression), so any stage's output is evaluated the same way.
"""
from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef

from derive.symbols import PrincipalValue, Resonance, U, mu


def regularise(expr, eps):
    x = sp.Dummy("x")
    lorentz = eps / (sp.pi * (x**2 + eps**2))

    def delta(arg, k=0):
        return sp.diff(lorentz, x, int(k)).subs(x, arg)

    expr = expr.replace(sp.DiracDelta, delta)
    expr = expr.replace(Resonance, lambda a, n: (a - sp.I * eps) ** (-n))
    expr = expr.replace(PrincipalValue, lambda a, n: sp.re(sp.expand_complex((a - sp.I * eps) ** (-n))))
    return expr


def _placeholders(body):
    """Replace F(v_a) and its derivatives by symbols; return (expr, {symbol: (label, order)})."""
    Ffun = sp.Function("F")
    mapping, table = {}, {}
    for d in body.atoms(sp.Derivative):
        if isinstance(d.expr, AppliedUndef) and d.expr.func == Ffun:
            var = d.expr.args[0]
            n = sum(c for _, c in d.variable_count)
            s = sp.Symbol(f"D{n}_{var.name}")
            mapping[d] = s
            table[s] = (var, n)
    expr = body.xreplace(mapping)
    for f in expr.atoms(AppliedUndef):
        if f.func == Ffun:
            s = sp.Symbol(f"D0_{f.args[0].name}")
            expr = expr.xreplace({f: s})
            table[s] = (f.args[0], 0)
    return expr, table


def evaluate_flux(terms, dF, couplings: dict, v1_grid, v_grid, eps):
    """J(v1) for 1D FourierTerms. ``dF(n, v)`` returns the n-th derivative of F at v (arrays);
    ``couplings`` maps |q| -> U_q (missing = 0)."""
    kmax = max(couplings)
    total = np.zeros_like(v1_grid, dtype=complex)
    v1 = sp.Symbol("v1", real=True)
    for term in terms:
        expr, table = _placeholders(term.body.subs(mu, 1))  # per unit mu
        expr = regularise(expr, eps)
        qs_syms = list(term.sums)
        expr = expr.replace(U, lambda *a: sp.Function("Uval")(a[0]))
        velocities = [v1] + list(term.integrals)
        grids = np.meshgrid(v1_grid, *([v_grid] * len(term.integrals)), indexing="ij")
        gridmap = {v.name: g for v, g in zip(velocities, grids)}
        args = velocities + qs_syms + sorted(table, key=lambda s: s.name)
        ufun = lambda q: couplings.get(abs(int(round(float(q)))), 0.0)
        fn = sp.lambdify(args, expr, modules=[{"Uval": ufun, "re": np.real}, "numpy"])
        fvals = [dF(table[s][1], gridmap[table[s][0].name]) for s in sorted(table, key=lambda s: s.name)]
        for qs in itertools.product([q for q in range(-kmax, kmax + 1) if q != 0], repeat=len(term.sums)):
            vals = fn(*grids, *[float(q) for q in qs], *fvals) * np.ones_like(grids[0])
            for _ in term.integrals:
                vals = np.trapezoid(vals, v_grid, axis=-1)
            total += vals
    return total


def evaluate_integrand_2d(expr, dF, v1s, eps, *, L=6.0, h=None):
    """J(v1) = int dv2 dv3 expr for a specialised order-2 integrand (Resonance ->
    (y - i eps)^-n, ResonancePlus -> (y + i eps)^-n; F and its derivatives from ``dF``),
    trapezoidal rule on [-L, L]^2 with spacing h (default eps/5)."""
    from derive.symbols import ResonancePlus

    eps_sym = sp.Symbol("eps", positive=True)
    e = expr.subs(mu, 1)
    body, table = _placeholders(e)
    body = body.replace(Resonance, lambda y, n: (y - sp.I * eps_sym) ** (-n))
    body = body.replace(ResonancePlus, lambda y, n: (y + sp.I * eps_sym) ** (-n))
    names = sorted(table, key=lambda s: s.name)
    vs = [sp.Symbol(f"v{n}", real=True) for n in (1, 2, 3)]
    fn = sp.lambdify(vs + [eps_sym] + names, body, "numpy", cse=True)
    h = h or eps / 5
    g = np.arange(-L, L + h / 2, h)
    V2, V3 = np.meshgrid(g, g, indexing="ij")
    out = []
    for x in v1s:
        V1 = np.full_like(V2, x)
        grids = {"v1": V1, "v2": V2, "v3": V3}
        vals = [dF(table[s][1], grids[table[s][0].name]) for s in names]
        w = fn(V1, V2, V3, eps, *vals) * np.ones_like(V2)
        out.append(np.trapezoid(np.trapezoid(w, g, axis=1), g))
    return np.array(out)
