"""Stage 4b: solution of the correlation equations and the long-time limit.

Bogoliubov's ansatz freezes F while correlations evolve; correlations start at zero. Each
Fourier equation d/dt ghat + i Omega ghat = S (S built from F and earlier solutions) then has

    ghat(t) = int_0^t ds exp(-i Omega s) S   ->   -i Resonance(Omega, 1) S   (t -> oo),

with lim int_0^t ds e^{-i w s} = pi delta(w) - i P(1/w) = -i/(w - i0). Equations are solved in
dependency order and earlier solutions substituted into later sources; the velocity
derivatives in those sources are applied afterwards, through the chain rule on Resonance
(derivatives of delta and P), which is the prescription of PHYSICS.md section 3, step 9.

The one-body equation then gives the flux J(v1) with dF/dt = -div J: :func:`flux_terms`.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import sympy as sp
from sympy.core.function import AppliedUndef

from derive.fourier import FourierEquation, FourierTerm, components
from derive.phase_space import DF
from derive.symbols import Resonance, velocity

_GHAT = re.compile(r"^ghat\d+(_\d+)?$")


def ghat_calls(expr: sp.Expr) -> set:
    return {a for a in expr.atoms(AppliedUndef) if _GHAT.match(a.func.__name__)}


@dataclass
class Solution:
    """ghat(params) = sum of ``terms`` in the long-time limit; ``time_integral`` shows the
    finite-time form before the limit was taken."""

    subject: DF
    function: sp.FunctionClass
    params: tuple[sp.Symbol, ...]
    terms: list[FourierTerm]
    time_integral: sp.Expr

    def n_terms(self) -> int:
        return len(self.terms)


class Renamer:
    """Fresh names for the dummies of a substituted solution."""

    def __init__(self):
        self.q = itertools.count(1)
        self.v = itertools.count(1)

    def wavevector(self) -> sp.Symbol:
        return sp.Symbol(f"p{next(self.q)}", integer=True)

    def velocity_label(self, used: set[int]) -> int:
        n = max(used, default=0) + 1
        return n


def _velocity_labels(expr_or_syms) -> set[int]:
    syms = expr_or_syms.free_symbols if isinstance(expr_or_syms, sp.Basic) else set(expr_or_syms)
    out = set()
    for s in syms:
        m = re.match(r"^v(\d+)(_\d+)?$", s.name)
        if m:
            out.add(int(m.group(1)))
    return out


def _rename(term: FourierTerm, dimension: int, renamer: Renamer, avoid_velocities: set[int]) -> FourierTerm:
    """Give the summed wavevectors and integrated velocities of ``term`` fresh names."""
    mapping = {}
    new_sums = []
    for s in term.sums:
        new = renamer.wavevector()
        new_sums.append(new)
        for old_c, new_c in zip(components(s, dimension), components(new, dimension)):
            mapping[old_c] = new_c
    integrated_labels = sorted(_velocity_labels(term.integrals))
    used = set(avoid_velocities) | _velocity_labels(term.body)
    new_integrals = []
    for a in integrated_labels:
        b = max(used | set(avoid_velocities)) + 1
        used.add(b)
        for old_c, new_c in zip(velocity(a, dimension), velocity(b, dimension)):
            mapping[old_c] = new_c
            new_integrals.append(new_c)
    return FourierTerm(term.body.xreplace(mapping), tuple(new_sums), tuple(new_integrals))


def substitute(term: FourierTerm, solutions: dict[str, Solution], dimension: int, renamer: Renamer) -> list[FourierTerm]:
    """Replace every ghat call in ``term`` by its solution, applying derivatives afterwards."""
    calls = sorted(ghat_calls(term.body), key=sp.default_sort_key)
    if not calls:
        return [term]
    call = calls[0]
    sol = solutions[call.func.__name__]
    out = []
    protected = _velocity_labels(term.body) | _velocity_labels(term.integrals)
    for sol_term in sol.terms:
        fresh = _rename(sol_term, dimension, renamer, protected)
        replacement = sp.Lambda(sol.params, fresh.body)(*call.args)
        body = term.body.xreplace({call: replacement}).doit()
        new = FourierTerm(body, term.sums + fresh.sums, term.integrals + fresh.integrals)
        out.extend(substitute(new, solutions, dimension, renamer))
    return out


def _dependency_order(equations: dict[DF, FourierEquation]) -> list[DF]:
    names = {}
    for subject, eq in equations.items():
        if subject.kind != "F":
            names[eq.lhs.func.__name__] = subject
    deps = {}
    for subject, eq in equations.items():
        if subject.kind == "F":
            continue
        needed = set()
        for term in eq.source:
            needed |= {c.func.__name__ for c in ghat_calls(term.body)}
        deps[subject] = {names[n] for n in needed if n in names}
    order: list[DF] = []
    pending = dict(deps)
    while pending:
        ready = [s for s, d in pending.items() if d <= set(order)]
        if not ready:
            raise ValueError(f"the correlation equations are not sequentially solvable: {pending}")
        for s in sorted(ready):
            order.append(s)
            del pending[s]
    return order


def solve(equations: dict[DF, FourierEquation]) -> dict[str, Solution]:
    """Long-time solutions of every correlation equation, in dependency order."""
    dimension = next(iter(equations.values())).dimension
    renamer = Renamer()
    solutions: dict[str, Solution] = {}
    s = sp.Symbol("s", positive=True)
    t = sp.Symbol("t", positive=True)
    for subject in _dependency_order(equations):
        eq = equations[subject]
        params = tuple(eq.lhs.args)
        resolvent = -sp.I * Resonance(eq.omega, 1)
        terms: list[FourierTerm] = []
        for src in eq.source:
            for sub in substitute(src, solutions, dimension, renamer):
                body = sp.expand(resolvent * sub.body)
                if body != 0:
                    terms.append(FourierTerm(body, sub.sums, sub.integrals))
        time_integral = sp.Integral(sp.exp(-sp.I * eq.omega * s), (s, 0, t)) * sp.Add(
            *[term.as_sympy(dimension) for term in eq.source])
        solutions[eq.lhs.func.__name__] = Solution(subject, eq.lhs.func, params, terms, time_integral)
    return solutions


def flux_terms(equations: dict[DF, FourierEquation], solutions: dict[str, Solution]) -> list[list[FourierTerm]]:
    """Components of the flux J(v1) (dF/dt = -div J) with every correlation substituted."""
    one_body = [eq for s, eq in equations.items() if s.kind == "F"]
    if len(one_body) != 1:
        raise ValueError("expected exactly one one-body equation")
    eq = one_body[0]
    renamer = Renamer()
    out = []
    for component in eq.flux:
        terms = []
        for term in component:
            for sub in substitute(term, solutions, eq.dimension, renamer):
                body = sp.expand(sub.body)
                if body != 0:
                    terms.append(FourierTerm(body, sub.sums, sub.integrals))
        out.append(terms)
    return out
