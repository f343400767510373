"""The chain of passes from the Liouville equation to a collision operator.

    liouville -> bbgky -> cluster_expansion -> truncate -> homogeneous -> hot_limit
      -> fourier -> solve (Bogoliubov, long-time limit) -> flux -> real_part -> symmetrise
      -> use_resonances

Every pass is a function of its own module with its own tests; :func:`collision_operator`
runs them, records each in a :class:`~derive.derivation.Derivation`, and returns an
:class:`~derive.operator.Operator`. Assumptions are named and switchable.
"""
from __future__ import annotations

from derive import assumptions as A
from derive.cluster import cluster_expansion, correlation_equations
from derive.collective import balescu_lenard
from derive.derivation import Derivation
from derive.fourier import fourier_system
from derive.hierarchy import bbgky, liouville
from derive.kinetics import flux_terms, solve
from derive.operator import Operator
from derive.reduce import merge, real_part, symmetrise, use_resonances

#: named assumptions, in the order they are applied, with what they mean
ASSUMPTIONS = {
    "truncate": "keep terms up to the requested order in mu = 1/N",
    "homogeneous": "f(theta, v) = F(v): no angle gradients, no mean field",
    "hot_limit": "neglect collective effects (a correlation acting back on its own potential)",
    "bogoliubov": "F frozen while correlations relax; correlations start at zero",
}


def _check_options(order: int, dimension: int) -> None:
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise ValueError(f"order must be an integer >= 0, got {order!r}")
    if order > 2:
        raise ValueError(f"order must be 0, 1 or 2 (the engine truncates the hierarchy at mu^2), got {order}")
    if isinstance(dimension, bool) or not isinstance(dimension, int) or not 1 <= dimension <= 3:
        raise ValueError(f"dimension must be 1, 2 or 3, got {dimension!r}")


def collision_operator(order: int, dimension: int = 1, collective: bool = False, *, form: str = "canonical",
                       progress=None) -> Operator:
    """Derive the kinetic equation at ``order`` in mu = 1/N (0: Vlasov, 1: Landau, 2: the
    three-body operator of 1D homogeneous systems, :func:`derive.order2.three_body_operator`).

    ``collective=True`` (order 1) skips the hot limit and solves the collective terms in
    :func:`derive.collective.balescu_lenard`: the Balescu-Lenard operator.

    ``form`` (order 2 only): "canonical" (default; :func:`derive.order2.canonical_operator`, the
    single-resonance, well-posed form) or "resonance" (the exact long-time flux as products of
    boundary values, :func:`derive.order2.three_body_operator`).
    """
    _check_options(order, dimension)
    if form not in ("canonical", "resonance"):
        raise ValueError(f"form must be 'canonical' or 'resonance', got {form!r}")
    if form != "canonical" and order != 2:
        raise ValueError(f"form={form!r} exists for order 2 only (got order={order})")
    if order == 2:
        if dimension != 1 or collective:
            raise NotImplementedError("the order-2 (three-body) operator is derived for dimension=1 in the "
                                      f"hot limit (collective=False); got dimension={dimension}, "
                                      f"collective={collective}")
        from derive.order2 import canonical_operator, three_body_operator

        return canonical_operator(progress=progress) if form == "canonical" else three_body_operator(progress=progress)
    options = {"order": order, "dimension": dimension, "collective": collective}
    d = Derivation(options)
    d.run("liouville", "Liouville equation of the N-body PDF", lambda: liouville(dimension), lambda x: 3,
          lambda x: [x.equation], progress)
    hierarchy = d.run("bbgky", "first BBGKY equations (normalised reduced DFs)",
                      lambda: bbgky(order + 1, dimension), lambda eqs: sum(len(e) for e in eqs),
                      lambda eqs: [e.as_sympy() for e in eqs], progress)
    d.run("cluster_expansion", "f_s as sums of products of correlations",
          lambda: [cluster_expansion(s) for s in range(1, order + 3)], lambda xs: sum(len(x.expansion) for x in xs),
          lambda xs: [x.as_sympy(dimension) for x in xs], progress)
    exact = d.run("correlation_equations", "exact equations of f, g2, ...",
                  lambda: correlation_equations(order + 1, dimension), lambda x: sum(x.term_counts().values()),
                  lambda x: [e.as_sympy() for e in x], progress)
    system = d.run("truncate", ASSUMPTIONS["truncate"], lambda: A.truncate(exact, order), lambda s: s.n_terms(),
                   lambda s: [e.as_sympy() for e in s], progress)
    assumptions = ["truncate"]
    if order == 0:
        eq = system.find("g", 1)
        op = Operator(0, dimension, False, assumptions, [], d, equation=eq.as_sympy())
        return op
    system = d.run("homogeneous", ASSUMPTIONS["homogeneous"], lambda: A.homogeneous(system), lambda s: s.n_terms(),
                   lambda s: [e.as_sympy() for e in s], progress)
    if collective:  # Balescu-Lenard: no hot limit; the collective terms are solved in derive.collective
        return balescu_lenard(d, system, assumptions + ["homogeneous"], progress)
    system = d.run("hot_limit", ASSUMPTIONS["hot_limit"], lambda: A.hot_limit(system), lambda s: s.n_terms(),
                   lambda s: [e.as_sympy() for e in s], progress)
    assumptions += ["homogeneous", "hot_limit", "bogoliubov"]
    fourier = d.run("fourier", "Fourier expansion in the angles", lambda: fourier_system(system),
                    lambda f: sum(e.n_terms() for e in f.values()), lambda f: [e.as_sympy() for e in f.values()], progress)
    solutions = d.run("solve", "sequential solution, long-time limit (Resonance = 1/(x - i0))",
                      lambda: solve(fourier), lambda s: sum(x.n_terms() for x in s.values()),
                      lambda s: [x.time_integral for x in s.values()], progress)
    flux = d.run("flux", "flux J(v1), dF/dt = -div J, correlations substituted",
                 lambda: flux_terms(fourier, solutions), lambda J: sum(len(c) for c in J),
                 lambda J: [t.as_sympy(dimension) for c in J for t in c], progress)
    real = d.run("real_part", "Sokhotski-Plemelj split and real part",
                 lambda: [real_part(c, dimension) for c in flux], lambda rs: sum(len(r.terms) for r in rs),
                 lambda rs: [t.as_sympy(dimension) for r in rs for t in r.terms], progress)
    if not all(r.imaginary_sums_to_zero for r in real):
        raise AssertionError("the imaginary part of the flux does not cancel between q and -q")
    sym = d.run("symmetrise", "average over q -> -q (drops the parts odd in q)",
                lambda: [symmetrise(r.terms, dimension) for r in real], lambda J: sum(len(c) for c in J),
                lambda J: [t.as_sympy(dimension) for c in J for t in c], progress)
    final = d.run("use_resonances", "resonance condition substituted into explicit cofactors; like terms merged",
                  lambda: [merge(use_resonances(c), dimension) for c in sym], lambda J: sum(len(c) for c in J),
                  lambda J: [t.as_sympy(dimension) for c in J for t in c], progress)
    del hierarchy
    return Operator(order, dimension, False, assumptions, final, d)
