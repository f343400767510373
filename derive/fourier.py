"""Stage 4a: Fourier expansion in the angles (homogeneous systems on the d-torus).

Every function of the angles is expanded in Fourier series:

* F(v) carries wavevector 0;
* a correlation g_m(a_1..a_m) = sum_{p_1+..+p_m=0} ghat(p_1..p_{m-1}; v_a1..v_am) e^{i sum p.theta};
* the force F_ij = sum_q (i q U_q) e^{i q.(theta_i - theta_j)}.

A term's component on the external mode exp(i sum_a K_a.theta_a) of the open particles follows
from one mechanism: give every factor fresh wavevectors, impose "sum of the wavevectors on
particle a = K_a" for open particles and "= 0" for integrated ones (int dtheta gives (2 pi)^d),
and solve these linear constraints; unsolved dummies are summed over. Wavevectors are handled
as abstract symbols in the constraints and expanded into d components at the end.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import sympy as sp

from derive.assumptions import System
from derive.phase_space import DF, Term
from derive.symbols import U, velocity


def components(w: sp.Expr, dimension: int) -> tuple[sp.Expr, ...]:
    """Components of an abstract wavevector expression (linear in wavevector symbols)."""
    if dimension == 1:
        return (w,)
    syms = sorted(w.free_symbols, key=lambda s: s.name)
    return tuple(w.subs({s: sp.Symbol(f"{s.name}_{c + 1}", integer=True) for s in syms}, simultaneous=True)
                 for c in range(dimension))


def dot(a, b) -> sp.Expr:
    return sp.Add(*[x * y for x, y in zip(a, b)])


def ghat_function(df: DF) -> sp.FunctionClass:
    """The Fourier coefficient of a correlation, as an undefined SymPy function."""
    name = f"ghat{df.size}" + (f"_{df.part}" if df.part else "")
    return sp.Function(name)


def ghat(df: DF, wavevectors: list[sp.Expr], dimension: int) -> sp.Expr:
    """ghat(p_1..p_{m-1}; velocities of df's particles); p_m = -(p_1+..+p_{m-1}) is implied."""
    args = []
    for w in wavevectors[:-1]:
        args.extend(components(w, dimension))
    for a in df.labels:
        args.extend(velocity(a, dimension))
    return ghat_function(df)(*args)


def F(label: int, dimension: int) -> sp.Expr:
    return sp.Function("F")(*velocity(label, dimension))


@dataclass
class FourierTerm:
    """sum over ``sums`` (abstract wavevectors, each over Z^d) of the integral over ``integrals``
    (velocity symbols, over R) of ``body``. ``nonzero`` lists linear combinations of the summed
    wavevectors that the sum excludes when they vanish (e.g. k1 + k2 for a three-body resonance)."""

    body: sp.Expr
    sums: tuple[sp.Symbol, ...] = ()
    integrals: tuple[sp.Symbol, ...] = ()
    nonzero: tuple[sp.Expr, ...] = ()

    def as_sympy(self, dimension: int = 1) -> sp.Expr:
        expr = self.body
        if self.integrals:
            expr = sp.Integral(expr, *[(v, -sp.oo, sp.oo) for v in self.integrals])
        for s in self.sums:
            for comp in components(s, dimension):
                expr = sp.Sum(expr, (comp, -sp.oo, sp.oo))
        return expr


@dataclass
class FourierEquation:
    """d/dt ghat + i Omega ghat = source  (or d/dt F = source for the one-body DF).

    For the one-body DF, ``flux`` holds the terms of the velocity flux vector J (one list per
    component), with d/dt F(v1) = - div_{v1} J: the interaction term int dGamma_2 F_12 . d/dv1 g
    is the divergence of int dGamma_2 F_12 g because F_12 does not depend on v1.
    """

    subject: DF
    lhs: sp.Expr  # the unknown (ghat(...) or F(v1))
    external: tuple[sp.Symbol, ...]  # abstract external wavevectors K_1..K_{m-1}
    omega: sp.Expr  # Omega = sum_a K_a . v_a (0 for F)
    source: list[FourierTerm]
    dimension: int = 1
    flux: list[list[FourierTerm]] = field(default_factory=list)

    def n_terms(self) -> int:
        return len(self.source) + sum(len(c) for c in self.flux)

    def as_sympy(self) -> sp.Eq:
        t = sp.Symbol("t")
        lhs = sp.Derivative(self.lhs, t) + sp.I * self.omega * self.lhs
        return sp.Eq(lhs, sp.Add(*[term.as_sympy(self.dimension) for term in self.source]))


class _Fresh:
    def __init__(self, prefix: str):
        self.prefix = prefix
        self.count = itertools.count(1)

    def __call__(self):
        return sp.Symbol(f"{self.prefix}{next(self.count)}", integer=True)


def transform_term(term: Term, external: dict[int, sp.Expr], dimension: int, fresh: _Fresh,
                   flux_component: int | None = None) -> list[FourierTerm]:
    """Component of ``term`` on the external mode (dict open label -> wavevector).

    With ``flux_component`` = c the term must be a force term F_1j . d/dv_1 (...) and the
    result is component c of int F_1j (...) (the flux, without the divergence).
    """
    at: dict[int, list[sp.Expr]] = {}
    dummies: list[sp.Symbol] = []
    specs = []  # (factor, its wavevectors) -- expressions are built once the constraints are solved
    for factor in term.factors:
        if factor.kind == "F":
            specs.append((factor, None))
            continue
        if factor.kind != "g":
            raise ValueError(f"cannot Fourier-transform factor {factor}")
        ws = [fresh() for _ in factor.labels[:-1]]
        dummies.extend(ws)
        ws.append(-sp.Add(*ws))  # the wavevectors of a correlation sum to zero
        for a, w in zip(factor.labels, ws):
            at.setdefault(a, []).append(w)
        specs.append((factor, ws))
    prefactor = sp.Integer(1)
    q = None
    if term.op.kind == "force":
        q = fresh()
        dummies.append(q)
        at.setdefault(term.op.i, []).append(q)
        at.setdefault(term.op.j, []).append(-q)
    # constraints
    eqs = []
    for a in term.labels:
        total = sp.Add(*at.get(a, []))
        if a in term.integrated:
            eqs.append(total)
        else:
            eqs.append(total - external.get(a, 0))
    sol = sp.solve(eqs, dummies, dict=True) if eqs else [{}]
    if not sol:
        return []  # the mode is not reachable (e.g. needs a non-zero total wavevector)
    sol = sol[0]
    free = [d for d in dummies if d not in sol]
    product = sp.Mul(*[F(f.labels[0], dimension) if ws is None
                       else ghat(f, [sp.sympify(w).subs(sol, simultaneous=True) for w in ws], dimension)
                       for f, ws in specs])
    if q is not None:
        q = q.subs(sol)
    prefactor *= (2 * sp.pi) ** (dimension * len(term.integrated))
    integrals = tuple(vc for a in term.integrated for vc in velocity(a, dimension))
    if term.op.kind == "stream":
        k = sp.Add(*[w.subs(sol) for w in at.get(term.op.i, [])])
        body = sp.I * dot(components(k, dimension), velocity(term.op.i, dimension)) * product
    elif term.op.kind == "force":
        qc = components(q, dimension)
        coupling = sp.I * U(*qc)
        if flux_component is not None:
            body = coupling * qc[flux_component] * product
        else:
            v = velocity(term.op.i, dimension)
            body = coupling * sp.Add(*[qc[c] * sp.Derivative(product, v[c]) for c in range(dimension)])
    else:
        raise ValueError("time-derivative terms are the left-hand side, not a source")
    body = term.coeff * prefactor * body
    if body == 0:
        return []
    return [FourierTerm(body, tuple(free), integrals)]


def external_wavevectors(subject: DF) -> tuple[dict[int, sp.Expr], tuple[sp.Symbol, ...]]:
    if subject.kind == "F":
        return {subject.labels[0]: sp.Integer(0)}, ()
    ks = [sp.Symbol(f"k{n + 1}", integer=True) for n in range(subject.size - 1)]
    ext = {a: k for a, k in zip(subject.labels, ks)}
    ext[subject.labels[-1]] = -sp.Add(*ks)
    return ext, tuple(ks)


def fourier_system(system: System) -> dict[DF, FourierEquation]:
    """Project every equation of a homogeneous system on its Fourier modes."""
    dimension = system.dimension
    out: dict[DF, FourierEquation] = {}
    for subject, eq in system.equations.items():
        ext, ks = external_wavevectors(subject)
        fresh = _Fresh("q")
        if subject.kind == "F":
            lhs = F(1, dimension)
            omega = sp.Integer(0)
        else:
            lhs = ghat(subject, [ext[a] for a in subject.labels], dimension)
            omega = sp.Add(*[dot(components(ext[a], dimension), velocity(a, dimension)) for a in subject.labels])
        source: list[FourierTerm] = []
        flux: list[list[FourierTerm]] = [[] for _ in range(dimension)] if subject.kind == "F" else []
        for term in eq.terms:
            if term.op.kind == "dt":
                continue
            if term.op.kind == "stream" and term.factors == (subject,):
                continue  # the i Omega ghat term on the left-hand side
            moved = -1  # sources move to the right-hand side
            if subject.kind == "F":
                if term.op.kind != "force" or term.op.i != 1:
                    raise AssertionError(f"unexpected term in the one-body equation: {term}")
                for c in range(dimension):
                    flux[c] += transform_term(term.with_coeff(term.coeff), ext, dimension, fresh, flux_component=c)
            source += transform_term(term.with_coeff(moved * term.coeff), ext, dimension, fresh)
        out[subject] = FourierEquation(subject, lhs, ks, omega, source, dimension, flux)
    return out
