"""The order-mu^2 (three-body) derivation, as far as the engine takes it today.

Stages: the common hierarchy passes (BBGKY for f_1..f_3, clusters, truncation at mu^2,
homogeneity, hot limit), then the three named drops of PHYSICS.md section 3, step 7:

* ``drop_landau_source``     -- the order-mu Landau flux in the one-body equation (vanishes
                                identically in 1D: ``Operator.check_vanishes_1d``);
* ``drop_two_body_source``   -- mu F_12 . d g2^(1) in the g2^(2) equation: purely two-body,
                                all its resonances are multiples of v1 - v2;
* ``drop_nonlinear_sources`` -- the g2 g2 sources of g3 (one more U and one more F: a relative
                                factor of order 1/Q);

then Fourier, the sequential long-time solution (g2^(1) -> g3 -> g2^(2)), the flux with every
correlation substituted, its real part (the proof that the imaginary part cancels between
q and -q), the symmetrised real form and its resonance census.

:func:`three_body_operator` (``derive.collision_operator(2)``) returns the flux in resonance
form: J(v1) = sum_{q2, p} int dv2 dv4 body, each body a sum of products of at most three
boundary values 1/(x - i0)^n at linear forms x of velocity differences (48 terms, 176
distribution patterns, general wavenumbers). That form is exact as a sum over q and -q
(real_part proves it real) and it is what the code generator freezes.

What is *not* done: the canonicalisation to the single resonance delta((k1+k2) v1 - k1 v2 -
k2 v3) with the fourth-order principal value made ordinary by weighted averaging. Without it
the long-time limit is defined only where products of boundary values at one argument are
on the same side. :func:`pinch_evidence` decides this for a given finite potential: the
opposite-side ("pinched") products cancel exactly for HMF and for every potential whose
harmonics contain no a + b = c (e.g. only odd harmonics); they do not cancel when they do
(e.g. harmonics 1 and 2), and the engine then refuses to hand the operator to the numerics.
"""
from __future__ import annotations

from derive import assumptions as A
from derive.cluster import correlation_equations
from derive.derivation import Derivation
from derive.fourier import fourier_system
from derive.kinetics import flux_terms, solve
from derive.fourier import FourierTerm
from derive.operator import Evidence, Operator
from derive.reduce import merge, real_part, symmetrise
from derive.symbols import combine_resonances

DROPS = {
    "drop_landau_source": A.drop_landau_source,
    "drop_two_body_source": A.drop_two_body_source,
    "drop_nonlinear_sources": A.drop_nonlinear_sources,
}


def long_time_flux(*, drops=tuple(DROPS), progress=None) -> Derivation:
    """Run the order-2 stages up to the real, symmetrised long-time flux (1D).

    ``drops`` selects the named drops to apply (all three by default); the returned
    Derivation's last stage holds the flux terms.
    """
    unknown = set(drops) - set(DROPS)
    if unknown:
        raise ValueError(f"unknown drops {sorted(unknown)}; valid: {sorted(DROPS)}")
    d = Derivation({"order": 2, "dimension": 1, "collective": False, "drops": list(drops)})
    exact = d.run("correlation_equations", "exact equations of f, g2, g3 from BBGKY + clusters",
                  lambda: correlation_equations(3, 1), lambda x: sum(x.term_counts().values()),
                  lambda x: [e.as_sympy() for e in x], progress)
    system = d.run("truncate", "keep terms up to mu^2; g2 = g2^(1) + g2^(2)", lambda: A.truncate(exact, 2),
                   lambda s: s.n_terms(), lambda s: [e.as_sympy() for e in s], progress)
    system = d.run("homogeneous", "f(theta, v) = F(v)", lambda: A.homogeneous(system), lambda s: s.n_terms(),
                   lambda s: [e.as_sympy() for e in s], progress)
    system = d.run("hot_limit", "drop the linear back-reaction (collective effects)", lambda: A.hot_limit(system),
                   lambda s: s.n_terms(), lambda s: [e.as_sympy() for e in s], progress)
    for name in DROPS:
        if name in drops:
            system = d.run(name, (DROPS[name].__doc__ or "").strip().splitlines()[0],
                           lambda fn=DROPS[name], s=system: fn(s), lambda s: s.n_terms(),
                           lambda s: [e.as_sympy() for e in s], progress)
    fourier = d.run("fourier", "Fourier expansion in the angles", lambda: fourier_system(system),
                    lambda f: sum(e.n_terms() for e in f.values()), lambda f: [e.as_sympy() for e in f.values()],
                    progress)
    solutions = d.run("solve", "sequential long-time solution g2^(1) -> g3 -> g2^(2)", lambda: solve(fourier),
                      lambda s: sum(x.n_terms() for x in s.values()), None, progress)
    flux = d.run("flux", "flux J(v1) with every correlation substituted", lambda: flux_terms(fourier, solutions)[0],
                 lambda J: len(J), None, progress)
    real = d.run("real_part", "Sokhotski-Plemelj split and real part", lambda: real_part(flux, 1),
                 lambda r: len(r.terms), None, progress)
    if not real.imaginary_sums_to_zero:
        raise AssertionError("the imaginary part of the order-2 flux does not cancel between q and -q")
    sym = d.run("symmetrise", "average over flipping all wavevectors; like terms merged",
                lambda: merge(symmetrise(real.terms, 1), 1),
                lambda J: sum(len(t.body.args) if t.body.is_Add else 1 for t in J), None, progress)
    d.run("resonance_census", "monomials classified by their Dirac deltas (two-body / three-body)",
          lambda: resonance_census(sym), lambda c: sum(c.values()), None, progress)
    return d


#: the assumptions the order-2 operator rests on (named and switchable stages)
ASSUMPTIONS = ["truncate", "homogeneous", "hot_limit", *DROPS, "bogoliubov"]


def three_body_operator(*, progress=None) -> Operator:
    """The order-mu^2 collision operator of a 1D homogeneous system (hot limit), in resonance
    form: every stage of :func:`long_time_flux`, then same-side resonances at one argument
    merged, (x - i0)^-a (x - i0)^-b = (x - i0)^-(a+b)."""
    d = long_time_flux(progress=progress)
    terms = d.run("combine_resonances", "same-side resonances at one argument merged (x-i0)^-a (x-i0)^-b "
                  "= (x-i0)^-(a+b)", lambda: [FourierTerm(combine_resonances(t.body), t.sums, t.integrals)
                                              for t in d["flux"].output],
                  lambda J: sum(len(t.body.args) if t.body.is_Add else 1 for t in J), None, progress)
    return Operator(2, 1, False, list(ASSUMPTIONS), [terms], d, form="resonance")


def canonical_operator(*, progress=None) -> Operator:
    """The order-mu^2 collision operator in canonical, well-posed form (``derive.collision_operator(2)``):
    every stage of :func:`three_body_operator`, then :func:`derive.canonical.line_form`,

        J(v1) = sum_{k1, k2, k1+k2 != 0} int dv2 dv4 delta((k1+k2) v1 - k1 v2 - k2 v4) [A + B P(1/(v2 - v1))],

    a single three-body resonance, couplings U(k1), U(k2), U(k1+k2) only, and an ordinary
    principal value (the fourth-order one reduced by its finite part). The stage's report
    (terms kept, powers of 1/(v2 - v1) met, highest DF derivative) is ``d["canonical"].output[1]``."""
    from derive.canonical import line_form

    resonance = three_body_operator(progress=progress)
    d = resonance.derivation
    term, _ = d.run("canonical", "three-body line: delta derivatives integrated by parts, finite part of the "
                    "fourth-order principal value, wavenumbers relabelled to one resonance",
                    lambda: line_form(resonance.flux[0]), lambda r: len(sp_add_args(r[0].body)), None, progress)
    from derive.symmetric import symmetric_form

    sym = d.run("symmetric", "symmetric form C (k1+k2) |Lambda|^2 (k.d/dv) F1F2F3: relabelling average, "
                "normal form by integration by parts along the line, ratio to the target shape, rank-one factoring",
                lambda: symmetric_form(term), lambda s: sum(s.report["class_monomials"].values()),
                lambda s: [s.constant, s.coupling], progress)
    return Operator(2, 1, False, list(ASSUMPTIONS), [[term]], d, symmetric=sym)


def sp_add_args(expr):
    import sympy as sp

    return sp.Add.make_args(sp.expand(expr))


def pinch_evidence(op: Operator, harmonics: dict) -> Evidence:
    """Whether the order-2 operator is a well-defined distribution for the finite potential
    ``harmonics`` ({k: U_k}, numbers or symbols): its resonance-form flux summed over the
    allowed wavevectors, every resonance put on a definite side of a primitive argument, and
    the products of opposite-side resonances at one argument summed (exactly 0 when they cancel)."""
    if op.order != 2 or op.dimension != 1 or op.form != "resonance":
        raise ValueError("pinch_evidence applies to the order-2, 1D operator in resonance form "
                         "(derive.collision_operator(2, form='resonance'))")
    if not harmonics or any((not isinstance(k, int)) or k < 1 for k in harmonics):
        raise ValueError(f"harmonics must map integers k >= 1 to U_k, got {harmonics!r}")
    table = {k: u for k, u in harmonics.items() if u != 0}
    if not table:
        raise ValueError("harmonics has no non-zero U_k")
    special = specialise(op.flux[0], table)
    pinched, clean = pinch_split(sign_normalise(special))
    return Evidence("pinch_cancellation", pinched == 0,
                    f"for U = {table}: the products of opposite-side resonances at one argument sum to "
                    + ("exactly 0: the long-time flux is a well-defined distribution" if pinched == 0 else
                       "a non-zero remainder: the long-time limit is not defined term by term (needs the "
                       "canonicalisation the engine does not do yet)"), [pinched])


def sum_free(harmonics) -> bool:
    """True when no two harmonics (equal or not) add up to a third: the condition under which
    no two-body resonance of the order-2 flux meets its opposite-side partner."""
    ks = {int(k) for k, u in dict(harmonics).items() if u != 0}
    return not any(a + b in ks for a in ks for b in ks)


def delta_kind(arg, velocities) -> str:
    """'three-body' when the argument involves three velocities, else 'two-body(a,b)'."""
    import sympy as sp

    involved = [v.name for v in velocities if sp.diff(arg, v) != 0]
    return "three-body" if len(involved) == 3 else "two-body(" + ",".join(involved) + ")"


def resonance_census(terms) -> dict[tuple, int]:
    """How many monomials carry which deltas (kind, derivative order): the map of what the
    canonicalisation must reduce to the single three-body resonance."""
    import collections

    import sympy as sp

    counts: collections.Counter = collections.Counter()
    for term in terms:
        velocities = [sp.Symbol("v1", real=True), *term.integrals]
        for mono in sp.Add.make_args(term.body):
            deltas = [f.as_base_exp()[0] for f in sp.Mul.make_args(mono) if isinstance(f.as_base_exp()[0], sp.DiracDelta)]
            key = tuple(sorted((delta_kind(x.args[0], velocities), int(x.args[1]) if len(x.args) > 1 else 0)
                               for x in deltas))
            counts[key] += 1
    return dict(counts)


# ---------------------------------------------------------------------------------------
# finite potentials: specialised sums, definite-side resonances, and the pinch cancellation

def specialise(terms, harmonics: dict) -> "sp.Expr":
    """Sum the flux terms over the finitely many wavevectors a finite potential allows.

    ``harmonics`` maps k >= 1 to U_k (numbers or symbols); U_{-k} = U_k, other U vanish. The
    integrated velocities are renamed v2, v3. Returns one expression: the integrand of
    J(v1) = int dv2 dv3 (...).
    """
    import itertools

    import sympy as sp

    from derive.symbols import U

    kmax = max(harmonics)
    values = [q for q in range(-2 * kmax, 2 * kmax + 1) if q != 0]
    table = {int(k): sp.sympify(u) for k, u in harmonics.items()}
    total = sp.Integer(0)
    for term in terms:
        rename = {}
        for n, vel in enumerate(term.integrals):
            rename[vel] = sp.Symbol(f"v{n + 2}", real=True)
        body = term.body.xreplace(rename)
        for vals in itertools.product(values, repeat=len(term.sums)):
            b = body.subs(dict(zip(term.sums, vals)))
            b = b.replace(U, lambda *a: table.get(abs(int(a[0])), sp.Integer(0)))
            if b != 0:
                total += b
    return sp.expand(total)


def sign_normalise(expr):
    """Resonance(c y, n) -> |c|^-n Resonance(y, n) for c > 0 and |c|^-n (-1)^n ResonancePlus(y, n)
    for c < 0, with y the primitive integer combination of velocities with positive leading
    coefficient: every resonance then sits on a definite side of a canonical argument."""
    import sympy as sp

    from derive.symbols import Resonance, ResonancePlus

    def rep(arg, n):
        arg = sp.expand(arg)
        syms = sorted(arg.free_symbols, key=lambda s: s.name)
        coeffs = [arg.coeff(s) for s in syms if arg.coeff(s) != 0]
        if not all(c.is_Integer for c in coeffs):
            raise ValueError(f"sign_normalise needs integer coefficients (specialise first): {arg}")
        g = sp.gcd_list([abs(c) for c in coeffs])
        y = sp.expand(arg / g)
        lead = y.coeff(syms[0]) if y.coeff(syms[0]) != 0 else next(y.coeff(s) for s in syms if y.coeff(s) != 0)
        if lead > 0:
            return g ** (-n) * Resonance(y, n)
        return g ** (-n) * (-1) ** n * ResonancePlus(-y, n)

    return sp.expand(expr.replace(Resonance, rep))


def pinch_split(expr):
    """(pinched, clean): monomials holding Resonance(y, .) and ResonancePlus(y, .) at the same y
    (products that are not distributions), and the rest; same-side powers are merged."""
    import collections

    import sympy as sp

    from derive.symbols import Resonance, ResonancePlus

    pinched, clean = [], []
    for mono in sp.Add.make_args(sp.expand(expr)):
        orders = collections.defaultdict(int)
        rest = []
        for f in sp.Mul.make_args(mono):
            base, e = f.as_base_exp()
            if isinstance(base, (Resonance, ResonancePlus)) and e.is_Integer and e > 0:
                orders[(type(base), base.args[0])] += int(base.args[1]) * int(e)
            else:
                rest.append(f)
        merged = sp.Mul(*rest, *[cls(y, n) for (cls, y), n in orders.items()])
        minus = {y for cls, y in orders if cls is Resonance}
        plus = {y for cls, y in orders if cls is ResonancePlus}
        (pinched if minus & plus else clean).append(merged)
    return sp.expand(sp.Add(*pinched)), sp.expand(sp.Add(*clean))


def pinch_free_flux(harmonics: dict, derivation=None, progress=None):
    """For a finite potential: the long-time flux summed over its wavevectors, with every
    resonance on a definite side, and the evidence that the pinched products cancel exactly.

    Returns (clean_integrand, evidence) where J(v1) = int dv2 dv3 clean_integrand is a
    well-defined distribution (products of boundary values at independent or same-side
    arguments) and evidence is the summed pinched part (0 when the cancellation holds).
    """
    from derive.operator import Evidence

    d = derivation if derivation is not None else long_time_flux(progress=progress)
    flux = d["flux"].output
    special = d.run("specialise", f"wavevector sums specialised to U = {harmonics}",
                    lambda: specialise(flux, harmonics), lambda e: len(e.args) if e.is_Add else 1, None, progress)
    normal = d.run("sign_normalise", "every resonance on a definite side of a primitive argument",
                   lambda: sign_normalise(special), lambda e: len(e.args) if e.is_Add else 1, None, progress)
    pinched, clean = d.run("pinch_split", "pinched products separated from well-defined ones",
                           lambda: pinch_split(normal), lambda pc: len(pc[1].args) if pc[1].is_Add else 1,
                           None, progress)
    evidence = Evidence("pinch_cancellation", pinched == 0,
                        "the products of opposite-side resonances at one argument sum to "
                        + ("exactly 0" if pinched == 0 else "a non-zero remainder"), [pinched])
    return clean, evidence
