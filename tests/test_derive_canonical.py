"""derive.canonical: the canonicalisation of the order-2 flux (three-body line, integration by
parts, finite part of the fourth-order principal value, one resonance) and its evidence."""
import math

import pytest
import sympy as sp

from derive import canonical as C
from derive.operator import Operator


@pytest.fixture(scope="module")
def resonance():
    from derive import collision_operator

    return collision_operator(2, form="resonance")


@pytest.fixture(scope="module")
def canonical(resonance):
    """The canonical stage applied to the resonance form (what collision_operator(2) does as its
    last stage), with its report."""
    term, report = C.line_form(resonance.flux[0])
    return Operator(2, 1, False, list(resonance.assumptions), [[term]], resonance.derivation), report


def test_canonical_form_has_one_resonance_and_the_three_couplings(canonical):
    op, report = canonical
    ev = C.structure_evidence(op)
    assert ev.holds, ev.statement
    assert op.name == "three_body_1d"
    # the engine meets the fourth-order principal value the published operator is known for,
    # and nothing above it; the DF is differentiated at most four times
    assert set(report["powers_of_y"]) == {-4, -3, -2} and report["max_df_order"] == 4
    assert report["three_body_terms"] == 424  # every resonance-form monomial carries one three-body resonance


def test_finite_part_reduces_to_an_ordinary_principal_value():
    """FP int exp(-y^2) / y^2 dy = -2 sqrt(pi) (Hadamard); P int cos(y) exp(-y^2) / y dy = 0."""
    from scipy.integrate import quad

    y = C.Y
    A, B, powers = C.finite_part(sp.exp(-y**2) * y**-2 + 3 * sp.cos(y) * sp.exp(-y**2) / y + y**2 * sp.exp(-y**2))
    assert powers == {-2: 1, -1: 1, 2: 1}
    a = sp.lambdify(y, A)
    b = sp.lambdify(y, B)
    value = quad(lambda t: a(t) + a(-t) + (b(t) - b(-t)) / t, 1e-12, 12, limit=200)[0]
    assert abs(value - (-2 * math.sqrt(math.pi) + math.sqrt(math.pi) / 2)) < 1e-9


def test_delta_derivative_moves_onto_the_cofactor():
    """int dv4 delta'((k1+k2) v1 - k1 v2 - k2 v4) F(v2) F(v4) = int dv4 delta(...) F(v2) F'(v4) / k2."""
    from derive.fourier import FourierTerm

    F = sp.Function("F")
    x3 = C.resonance()
    term = FourierTerm(sp.DiracDelta(x3, 1) * F(C.V2) * F(C.V4), (C.K1, C.K2), (C.V2, C.V4))
    ((arg, integrand),) = C.integrate_by_parts(term)
    assert arg == sp.expand(x3)
    expected = C.to_df(F(C.V2) * sp.Derivative(F(C.V4), C.V4) / C.K2).subs(
        {C.V4: C.V1 - C.K1 / C.K2 * C.Y}).subs(C.V2, C.V1 + C.Y)
    assert sp.simplify(integrand - expected) == 0


def test_relabelling_must_be_unimodular():
    q, p = sp.symbols("q p", integer=True)
    x3 = -(q + p) * C.V1 + q * C.V2 + p * C.V4
    assert C.relabel_wavenumbers(sp.expand(x3), (q, p)) == {q: -C.K1, p: -C.K2}
    with pytest.raises(ValueError, match="unimodular"):
        C.relabel_wavenumbers(sp.expand(-(2 * q + p) * C.V1 + 2 * q * C.V2 + p * C.V4), (q, p))


def test_two_body_lines_vanish_for_hmf(resonance):
    """The one-delta terms the canonical form drops -- on the lines v1 = v2, v2 = v4, v1 = v4 --
    sum to exactly zero for the HMF (symbolic U_1)."""
    ev = C.two_body_evidence(resonance, {1: sp.Symbol("U1")})
    assert ev.holds, ev.expressions


def test_evidence_functions_check_the_form(resonance, canonical):
    with pytest.raises(ValueError, match="resonance form"):
        C.two_body_evidence(canonical[0], {1: 1})
    with pytest.raises(ValueError, match="canonical"):
        C.structure_evidence(resonance)
    from derive.order2 import pinch_evidence

    with pytest.raises(ValueError, match="resonance form"):
        pinch_evidence(canonical[0], {1: 1})


@pytest.mark.slow
def test_two_body_lines_vanish_for_odd_harmonics(resonance):
    ev = C.two_body_evidence(resonance, {1: sp.Symbol("U1"), 3: sp.Symbol("U3")})
    assert ev.holds


@pytest.mark.slow
def test_canonical_line_matches_the_plane_limit_on_random_sum_free_potentials():
    """Stage cross-check (hypothesis): the canonical operator evaluated on its lines and the
    resonance form's eps -> 0 limit on the plane agree, on random sum-free potentials and
    generalised Gaussians."""
    from hypothesis import given, settings, strategies as st

    from numerics import FourierPotential, GeneralizedGaussian
    from numerics.kinetic import flux

    @settings(max_examples=4, deadline=None)
    @given(ks=st.sampled_from([(1,), (1, 3), (2, 3)]), u=st.floats(-0.6, 0.6), n=st.sampled_from([4, 6]),
           q=st.floats(4.0, 8.0), x=st.floats(0.3, 2.5))
    def check(ks, u, n, q, x):
        harmonics = {ks[0]: 0.5, **({ks[1]: u} if len(ks) > 1 and abs(u) > 0.05 else {})}
        pot = FourierPotential(harmonics)
        sigma = math.sqrt(q * pot.attractive_max())
        df = GeneralizedGaussian(n, sigma)
        line = flux(pot, df, [x * sigma], N=100, backend="numpy")
        plane = flux(pot, df, [x * sigma], N=100, backend="jax", method="plane", levels=4, eps0=0.2)
        assert abs(line.flux[0] - plane.flux[0]) <= 3 * plane.error[0] + 2e-3 * abs(line.flux[0]), (line.flux, plane.flux, plane.error)

    check()


def test_coupling_is_a_quadratic_form_in_the_pair_couplings(canonical):
    """Three-body coupling through two pair interactions: the flux is quartic in U(k1), U(k2),
    U(k1+k2) and every monomial is a product of two of X = U1 U2, Y = U1 U3, Z = U2 U3."""
    op, _ = canonical
    forms, ev = C.coupling_form(op)
    assert ev.holds, ev.statement
    assert set(forms) <= {"XX", "YY", "ZZ", "XY", "XZ", "YZ"}
    # summed back, the form is the operator's body
    pc = C.pair_couplings()
    rebuilt = sum(pc[k[0]] * pc[k[1]] * v for k, v in forms.items())
    (term,) = op.flux[0]
    assert sp.expand(rebuilt - term.body) == 0


def test_coupling_form_rejects_what_is_not_a_pair_product(canonical):
    from derive.symbols import U

    op, _ = canonical
    (term,) = op.flux[0]
    bad = Operator(2, 1, False, list(op.assumptions),
                   [[type(term)(term.body + U(C.K1) ** 4 * sp.DiracDelta(C.resonance()), term.sums, term.integrals,
                                term.nonzero)]], op.derivation)
    _, ev = C.coupling_form(bad)
    assert not ev.holds and "NO" in ev.statement


def test_single_harmonic_reduction(canonical):
    """HMF: only the pairs with |k1| = |k2| = 1 (coupling X = U1^2) or |k2| = |k1 + k2| = 1
    (Z = U1^2) survive: (1, 1), (-1, -1), (2, -1), (-2, 1); quartic in U1."""
    op, _ = canonical
    expr, pairs = C.single_harmonic(op)
    assert sorted(pairs) == [(-2, 1), (-1, -1), (1, 1), (2, -1)]
    U1 = sp.Symbol("U1", positive=True)
    assert all(sp.Poly(m.as_independent(U1)[1], U1).degree() == 4 for m in sp.Add.make_args(expr))
    deltas = {sp.expand(d.args[0]) for d in expr.atoms(sp.DiracDelta)}
    v1, v2, v4 = C.V1, C.V2, C.V4
    assert {sp.expand(d**2) for d in deltas} == {sp.expand((2 * v1 - v2 - v4) ** 2), sp.expand((v1 - 2 * v2 + v4) ** 2)}


# -- the symmetric form C (k1+k2) |Lambda|^2 (k.d/dv) F1 F2 F3 (derive.symmetric) -------------------

@pytest.fixture(scope="module")
def symmetric(canonical):
    from derive.symmetric import symmetric_form

    op, _ = canonical
    return symmetric_form(op.flux[0][0])


def test_symmetric_form_is_derived_from_the_canonical_one(symmetric):
    """Every coupling class of the relabelling-averaged canonical flux has, after integration by
    parts along the line, the normal form of (k1+k2) y^-4 (k.d/dv) F1F2F4 times one y-independent
    factor; the 3x3 quadratic form of those factors has rank one."""
    from derive.symbols import U, mu
    from derive.symmetric import CLASSES, on_resonance

    S = symmetric
    assert set(S.report["ratios"]) == set(CLASSES)
    assert all(why.startswith("one ratio") for why in S.report["ratios"].values())
    assert S.constant == -2 * sp.pi**3 * mu**2
    # the quadratic form is C Lambda^2 y^4 on the line
    pc = C.pair_couplings()
    form = sum(pc[k[0]] * pc[k[1]] * v for k, v in S.quadratic_form.items())
    assert sp.cancel(form - S.constant * on_resonance(S.coupling) ** 2 * C.Y**4) == 0
    # Lambda: linear in the pair couplings, through velocity differences only
    u1, u2, u3 = U(C.K1), U(C.K2), U(C.K1 + C.K2)
    num, den = sp.fraction(sp.factor(S.coupling))
    assert sp.expand(num - (C.K2 * u1 * (u3 - u2) + C.K1 * u2 * (u3 - u1))) == 0 or \
        sp.expand(num + (C.K2 * u1 * (u3 - u2) + C.K1 * u2 * (u3 - u1))) == 0
    assert sp.expand(den ** 2 - ((C.K1 + C.K2) * (C.V1 - C.V2) * (C.V1 - C.V4)) ** 2) == 0


def test_normal_form_kills_total_derivatives_and_only_them():
    """Integration by parts along the line: d/dy of anything (with poles) has normal form 0;
    a non-derivative does not."""
    from derive.symmetric import C_LINE, normal_form, on_line

    F = sp.Function("F")
    G = F(C.V1) * sp.Derivative(F(C.V2), C.V2) * sp.Derivative(F(C.V4), (C.V4, 2)) / (C.V1 - C.V2) ** 3 * C.K1
    along = sp.diff(G, C.V2) + C_LINE * sp.diff(G, C.V4)  # d/dy at fixed v1 on v2 = v1 + y, v4 = v1 + c y
    assert normal_form(on_line(along)) == {}
    assert normal_form(on_line(G)) != {}


def test_symmetric_form_rejects_a_flux_of_another_shape(canonical):
    """A term that is not of the (k.d/dv) F1F2F4 shape makes its class fail, with the reason."""
    from derive.symbols import U
    from derive.symmetric import symmetric_form

    op, _ = canonical
    (term,) = op.flux[0]
    F = sp.Function("F")
    delta = next(iter(term.body.atoms(sp.DiracDelta)))
    extra = delta * U(C.K1) ** 2 * U(C.K2) ** 2 * F(C.V1) * F(C.V2) * \
        sp.Derivative(F(C.V4), C.V4) / (C.V1 - C.V2) ** 3
    bad = type(term)(term.body + extra, term.sums, term.integrals, term.nonzero)
    with pytest.raises(ValueError, match="class XX"):
        symmetric_form(bad)


def test_symmetric_form_checks(symmetric):
    """Conservation (relabelling symmetry), H-theorem (sum of squares), steady states, blocking."""
    S = symmetric
    assert S.check_invariance().holds
    cons = S.check_conservation()
    assert all(ev.holds for ev in cons.values()) and set(cons) == {"mass", "momentum", "energy"}
    h = S.check_h_theorem()
    assert h.holds, h.statement
    steady = S.check_maxwellian()
    assert steady.holds, steady.statement
    block = S.check_blocking()
    assert block.holds, block.statement
    assert "12 block, all Dirac combs: yes" in block.statement


def test_symmetric_checks_fail_on_a_wrong_coupling(symmetric):
    """The checks are not vacuous: a coupling that breaks the relabelling symmetry fails the
    invariance, conservation and blocking checks; a positive constant fails the H-theorem."""
    from derive.symbols import U
    from derive.symmetric import SymmetricForm

    S = symmetric
    wrong = S.coupling.xreplace({U(C.K1 + C.K2): 2 * U(C.K1 + C.K2)})
    W = SymmetricForm(S.constant, wrong, S.quadratic_form)
    assert not W.check_invariance().holds
    assert not W.check_conservation()["momentum"].holds
    assert not W.check_blocking().holds
    assert not SymmetricForm(-S.constant, S.coupling, S.quadratic_form).check_h_theorem().holds


def test_averaging_weights_make_the_principal_value_ordinary(symmetric):
    """Per fundamental resonance (couples {(p,q),(q,p)}, {(-p-q,q),(q,-p-q)}, {(p,-p-q),(-p-q,p)}):
    no t^-4, t^-3 terms; the t^-2 term does not cancel in the plain sum but does with weights
    summing to one on a single couple -- found by the engine and verified by the series."""
    weights, ev = symmetric.averaging_weights()
    assert ev.holds, ev.statement
    p, q = sp.symbols("p q", positive=True)
    w = weights[((-p - q, q), (q, -p - q))]
    assert sp.simplify(w[0] - (p + 2 * q) / (2 * p)) == 0 and sp.simplify(w[0] + w[1] - 1) == 0
    # HMF (p = q = 1): the (1, 1) couple cannot carry the average (its two writings coincide),
    # the (-2, 1)/(1, -2) couple can, with weights (3/2, -1/2)
    assert sp.Rational(3, 2) == w[0].subs({p: 1, q: 1})
    # the verification is a series: the averaged family integrand vanishes like t^-1
    lau = symmetric.pair_laurent(-2, 1)
    assert set(lau) <= {-4, -3, -2, -1, 0} and lau.get(-4, 0) == 0 and lau.get(-3, 0) == 0


def test_symmetric_single_harmonic(symmetric):
    """HMF: six pairs; Lambda = -U1^2 / ((v1 - v2)(v1 - v4)) on (1, 1), (-1, -1) and
    2 U1^2 / (...) on (2, -1), (-2, 1), (1, -2), (-1, 2)."""
    expr, pairs = symmetric.single_harmonic()
    U1 = sp.Symbol("U1", positive=True)
    d = (C.V1 - C.V2) * (C.V1 - C.V4)
    lam = dict(pairs)
    assert set(lam) == {(1, 1), (-1, -1), (2, -1), (-2, 1), (1, -2), (-1, 2)}
    assert sp.simplify(lam[(1, 1)] + U1**2 / d) == 0 and sp.simplify(lam[(2, -1)] - 2 * U1**2 / d) == 0
    assert len(expr.atoms(sp.DiracDelta)) == 6


def _line_value(cofactor, k1, k2, v1, dfs, L=14.0):
    """int dv2 dv4 delta((k1+k2) v1 - k1 v2 - k2 v4) cofactor, numerically: the finite part in
    y = v2 - v1 (derive.canonical.finite_part) and an ordinary principal value by quad."""
    from scipy.integrate import quad

    from derive.symbols import PrincipalValue

    c = sp.Rational(-k1, k2)
    body = cofactor.xreplace({C.K1: k1, C.K2: k2}).replace(PrincipalValue, lambda x, n: x ** (-n))
    body = C.to_df(body).subs({C.V2: C.V1 + C.Y, C.V4: C.V1 + c * C.Y}, simultaneous=True)
    A, B, _ = C.finite_part(C._pull_y(sp.expand(body)))
    mods = [{f"Fd{n}": fn for n, fn in enumerate(dfs)}, "math"]
    a = sp.lambdify((C.Y, C.V1), A, mods)
    b = sp.lambdify((C.Y, C.V1), B, mods)
    val = quad(lambda y: a(y, v1) + a(-y, v1) + (b(y, v1) - b(-y, v1)) / y, 0, L, limit=400, epsabs=1e-13)[0]
    return val / abs(k2)


def test_symmetric_and_canonical_fluxes_agree_numerically(canonical, symmetric):
    """Stage cross-check: the flux of the canonical form and of the derived symmetric form,
    evaluated by quadrature on a two-Gaussian DF and a three-harmonic potential (pairs closed
    under k1 <-> k2 and k -> -k), agree -- the symbolic normal-form argument, checked numerically."""
    from derive.symbols import U, mu

    v = sp.Symbol("v", real=True)
    F = 0.6 * sp.exp(-(v + 0.4) ** 2 / 1.28) / sp.sqrt(1.28 * sp.pi) + 0.4 * sp.exp(-(v - 0.9) ** 2 / 0.72) / sp.sqrt(0.72 * sp.pi)
    dfs = [sp.lambdify(v, sp.diff(F, v, n), "math") for n in range(7)]
    harm = {1: 0.7, 2: -0.4, 3: 0.25}
    Uval = lambda k: harm.get(abs(k), 0.0)  # noqa: E731
    op, _ = canonical
    (term,) = op.flux[0]
    canon = sp.expand(term.body / next(iter(term.body.atoms(sp.DiracDelta)))).subs(mu, 1)
    sym = symmetric.cofactor().subs(mu, 1)
    pairs = [(a, b) for a in range(-3, 4) for b in range(-3, 4) if a and b and a + b and abs(a + b) <= 3]
    for v1 in (-0.7, 0.35):
        tot = {"canonical": 0.0, "symmetric": 0.0}
        for k1, k2 in pairs:
            rep = {U(C.K1): Uval(k1), U(C.K2): Uval(k2), U(C.K1 + C.K2): Uval(k1 + k2)}
            if 0.0 in rep.values():
                continue
            tot["canonical"] += _line_value(canon.xreplace(rep), k1, k2, v1, dfs)
            tot["symmetric"] += _line_value(sym.xreplace(rep), k1, k2, v1, dfs)
        assert abs(tot["canonical"]) > 1e-4
        assert abs(tot["canonical"] - tot["symmetric"]) < 1e-8 * abs(tot["canonical"]), (v1, tot)


def test_operator_checks_for_order_two(canonical, symmetric):
    """Operator.check_* for the three-body operator go through its symmetric form; without it
    they say what is missing."""
    op, _ = canonical
    with pytest.raises(ValueError, match="symmetric form"):
        op.check_h_theorem()
    op2 = Operator(2, 1, False, list(op.assumptions), op.flux, op.derivation, symmetric=symmetric)
    assert all(ev.holds for ev in op2.check_conservation().values())
    assert op2.check_h_theorem().holds and op2.check_steady_states().holds and op2.check_blocking().holds
    assert op2.check_averaging_weights().holds
