"""derive.canonical: the canonicalisation of the order-2 flux (three-body line, integration by
parts, finite part of the fourth-order principal value, one resonance) and its evidence."""
import math

import numpy as np
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
