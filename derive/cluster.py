"""Stage 2: the cluster expansion and the evolution equations of the correlations.

f_s(1..s) = sum over set partitions pi of {1..s} of prod_{B in pi} g_{|B|}(B), with g_1 = f;
for example f_2 = f f + g_2 and f_3 = f f f + (f g_2, three placements) + g_3.
Its inverse (Moebius inversion on the partition lattice) is
g_s = sum_pi (-1)^(|pi|-1) (|pi|-1)! prod_{B in pi} f_{|B|}(B).
With the normalisation of :mod:`derive.hierarchy`, g_s = O(mu^(s-1)).

:func:`correlation_equations` injects the expansion into the BBGKY equations and subtracts
the time derivatives of the disconnected parts, using the equations already obtained for the
smaller clusters, so that the equation of g_n is exact (nothing truncated yet).
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy.utilities.iterables import multiset_partitions

from derive.hierarchy import bbgky_equation
from derive.phase_space import DF, Equation, Op, Term, collect, times


def set_partitions(labels) -> list[list[tuple[int, ...]]]:
    labels = list(labels)
    return [[tuple(b) for b in p] for p in multiset_partitions(labels)]


@dataclass
class ClusterExpansion:
    """f_s as a sum of products of connected correlations, and the inverse relation."""

    s: int
    expansion: list[tuple[DF, ...]]  # products of g's whose sum is f_s
    inverse: list[tuple[sp.Expr, tuple[DF, ...]]]  # (coefficient, product of f's) summing to g_s

    def as_sympy(self, dimension: int = 1) -> sp.Eq:
        lhs = DF("f", tuple(range(1, self.s + 1))).as_sympy(dimension)
        rhs = sp.Add(*[sp.Mul(*[g.as_sympy(dimension) for g in prod]) for prod in self.expansion])
        return sp.Eq(lhs, rhs)

    def inverse_as_sympy(self, dimension: int = 1) -> sp.Eq:
        lhs = DF("g", tuple(range(1, self.s + 1))).as_sympy(dimension)
        rhs = sp.Add(*[c * sp.Mul(*[f.as_sympy(dimension) for f in prod]) for c, prod in self.inverse])
        return sp.Eq(lhs, rhs)


def cluster_products(labels) -> list[tuple[DF, ...]]:
    """The products of connected correlations whose sum is f(labels)."""
    return [tuple(DF("g", block) for block in part) for part in set_partitions(labels)]


def cluster_expansion(s: int) -> ClusterExpansion:
    labels = tuple(range(1, s + 1))
    inverse = []
    for part in set_partitions(labels):
        m = len(part)
        inverse.append((sp.Integer((-1) ** (m - 1)) * sp.factorial(m - 1), tuple(DF("f", b) for b in part)))
    return ClusterExpansion(s, cluster_products(labels), inverse)


def expand_term(term: Term) -> list[Term]:
    """Replace every reduced DF factor f(B) of a term by its cluster expansion."""
    choices = []
    for factor in term.factors:
        if factor.kind == "f":
            choices.append(cluster_products(factor.labels))
        else:
            choices.append([(factor,)])
    out = []

    def rec(idx, acc):
        if idx == len(choices):
            out.append(Term(term.coeff, term.op, tuple(acc), term.integrated))
            return
        for option in choices[idx]:
            rec(idx + 1, acc + list(option))

    rec(0, [])
    return out


@dataclass
class CorrelationEquations:
    """Exact evolution equations of f = g_1, g_2, ..., g_n (dt g_n + ... = 0)."""

    equations: dict[int, Equation]

    def __getitem__(self, n: int) -> Equation:
        return self.equations[n]

    def __iter__(self):
        return iter(self.equations.values())

    def term_counts(self) -> dict[int, int]:
        return {n: len(eq) for n, eq in self.equations.items()}


def _relabelled_rhs(eq: Equation, block: tuple[int, ...], used: set[int]) -> list[Term]:
    """-(non-dt terms) of the equation of g_|block|, relabelled onto ``block`` (the value of
    dt g(block)), with its integrated particles moved to labels not in ``used``."""
    m = len(block)
    mapping = {n + 1: b for n, b in enumerate(block)}
    nxt = max(used) + 1
    out = []
    for term in eq.terms:
        if term.op.kind == "dt":
            if term.coeff != 1 or term.factors != (DF("g", tuple(range(1, m + 1))),):
                raise AssertionError(f"unexpected time-derivative term {term} in the equation of g_{m}")
            continue
        local = dict(mapping)
        for a in term.integrated:
            local[a] = nxt
            nxt += 1
        out.append(term.relabel(local).with_coeff(-term.coeff))
    return out


def correlation_equations(n_max: int, dimension: int = 1) -> CorrelationEquations:
    """Equations of g_1 = f, ..., g_{n_max}, from the first n_max BBGKY equations."""
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1, got {n_max}")
    found: dict[int, Equation] = {}
    for n in range(1, n_max + 1):
        labels = tuple(range(1, n + 1))
        source = bbgky_equation(n, dimension)
        terms: list[Term] = []
        for term in source.terms:
            if term.op.kind != "dt":
                terms.extend(expand_term(term))
                continue
            # dt f_n = dt g_n + sum over disconnected products of (dt g(B)) * spectators
            for product in cluster_products(labels):
                if len(product) == 1:
                    terms.append(Term(term.coeff, Op("dt"), product))
                    continue
                for idx, block in enumerate(product):
                    spectators = product[:idx] + product[idx + 1 :]
                    used = set(range(1, n + 2))
                    for rhs_term in _relabelled_rhs(found[block.size], block.labels, used):
                        terms.append(times(rhs_term, spectators, term.coeff))
        found[n] = Equation(DF("g", labels), collect(terms), note=f"exact equation for g_{n}", dimension=dimension)
    return CorrelationEquations(found)
