"""Stage 1: the Liouville equation and the BBGKY hierarchy.

Liouville equation for the N-body PDF P_N of identical particles of mass mu:

    dP/dt + sum_i v_i . dP/dtheta_i + mu sum_{i != j} F_ij . dP/dv_i = 0.

Reduced DFs f_s = mu^s N!/(N-s)! int P_N dGamma_{s+1..N} stay O(1) when N -> oo at fixed
mu N = M = 1. :func:`bbgky` integrates each class of Liouville term over particles s+1..N:

* streaming of an integrated particle is a total angle derivative of a periodic function -> 0;
* a force on an integrated particle is a total velocity derivative -> 0;
* a force between two retained particles stays, with its factor mu;
* a force on retained particle i from integrated particle j: (N - s) identical terms after
  relabelling, which become int dGamma_{s+1} F_{i,s+1} . d f_{s+1}/dv_i once the
  normalisations of f_s and f_{s+1} are inserted. The N-dependent prefactor is computed,
  not assumed (see :attr:`BBGKYEquation.coupling_prefactor`).
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.phase_space import DF, Equation, Op, Term
from derive.symbols import N, mu

#: the three classes of Liouville terms for a generic pair (i, j)
LIOUVILLE_TERMS = ("dt", "stream", "force")


@dataclass
class LiouvilleEquation:
    """The Liouville equation, as a SymPy equation with symbolic sums over particles."""

    equation: sp.Eq
    dimension: int = 1

    def __str__(self) -> str:
        return str(self.equation)


def liouville(dimension: int = 1) -> LiouvilleEquation:
    i, j = sp.symbols("i j", integer=True, positive=True)
    P = sp.Function("P_N")
    th = sp.IndexedBase("theta")
    v = sp.IndexedBase("v")
    F = sp.Function("F")
    t = sp.Symbol("t")
    args = (t,)
    eq = sp.Eq(
        sp.Derivative(P(*args), t)
        + sp.Sum(v[i] * sp.Derivative(P(*args), th[i]), (i, 1, N))
        + mu * sp.Sum(sp.Sum(F(th[i], th[j]) * sp.Derivative(P(*args), v[i]), (j, 1, N)), (i, 1, N)),
        0,
    )
    return LiouvilleEquation(eq, dimension)


def reduced_normalisation(s) -> sp.Expr:
    """A_s in f_s = A_s int P_N dGamma_{s+1..N}: mu^s N!/(N-s)!."""
    return mu**s * sp.ff(N, s)


@dataclass
class BBGKYEquation(Equation):
    """One equation of the hierarchy, with the classification that produced it."""

    coupling_prefactor: sp.Expr = sp.Integer(1)
    dropped: tuple[str, ...] = ()


def bbgky_equation(s: int, dimension: int = 1) -> BBGKYEquation:
    """The evolution equation of f_s obtained by integrating Liouville over s+1..N."""
    if s < 1:
        raise ValueError(f"s must be >= 1, got {s}")
    retained = range(1, s + 1)
    terms: list[Term] = [Term(1, Op("dt"), (DF("f", tuple(retained)),))]
    dropped = []
    # streaming: retained particles keep their term, integrated ones give boundary terms = 0
    for i in retained:
        terms.append(Term(1, Op("stream", i), (DF("f", tuple(retained)),)))
    dropped.append("streaming of particles s+1..N: integral of a periodic total angle derivative")
    # forces between retained particles
    for i in retained:
        for j in retained:
            if i != j:
                terms.append(Term(mu, Op("force", i, j), (DF("f", tuple(retained)),)))
    dropped.append("forces on particles s+1..N: integral of a total velocity derivative")
    # forces on retained particles from the N - s integrated ones: all equal by symmetry of P_N
    multiplicity = N - s
    k = s + 1
    prefactor = sp.simplify(sp.combsimp(mu * multiplicity * reduced_normalisation(s) / reduced_normalisation(s + 1)))
    for i in retained:
        terms.append(Term(prefactor, Op("force", i, k), (DF("f", tuple(range(1, s + 2))),), (k,)))
    eq = BBGKYEquation(DF("f", tuple(retained)), terms, note=f"BBGKY equation for f_{s}", dimension=dimension)
    eq.coupling_prefactor = prefactor
    eq.dropped = tuple(dropped)
    return eq


def bbgky(s_max: int, dimension: int = 1) -> list[BBGKYEquation]:
    """The first ``s_max`` equations of the hierarchy."""
    return [bbgky_equation(s, dimension) for s in range(1, s_max + 1)]
