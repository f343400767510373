"""Tests of each derivation stage on its own, and of the orders 0 and 1 end to end."""
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st

import derive
from derive import assumptions as A
from derive.cluster import cluster_expansion, correlation_equations
from derive.fourier import fourier_system
from derive.hierarchy import bbgky_equation, reduced_normalisation
from derive.kinetics import flux_terms, solve
from derive.phase_space import DF, Op, Term, canonical, collect
from derive.reduce import canonical_deltas
from derive.serialize import decode, encode
from derive.symbols import N, PrincipalValue, Resonance, U, mu, split_resonance


# --- stage 1: BBGKY ------------------------------------------------------------------------
@pytest.mark.parametrize("s", [1, 2, 3, 4])
def test_bbgky_coupling_prefactor_is_one(s):
    # (N - s) identical coupling terms times mu, with the normalisations of f_s and f_{s+1}
    eq = bbgky_equation(s)
    assert sp.simplify(eq.coupling_prefactor - 1) == 0
    kinds = sorted(t.op.kind for t in eq.terms)
    assert kinds.count("stream") == s
    assert kinds.count("force") == s * (s - 1) + s  # internal pairs + one coupling per particle


def test_reduced_normalisation_keeps_f_s_order_one():
    # int f_s = mu^s N!/(N-s)! -> 1 as N -> oo with mu = 1/N
    for s in (1, 2, 3):
        assert sp.limit(reduced_normalisation(s).subs(mu, 1 / N), N, sp.oo) == 1


# --- stage 2: cluster expansion -----------------------------------------------------------
@pytest.mark.parametrize("s,count", [(1, 1), (2, 2), (3, 5), (4, 15)])
def test_cluster_expansion_counts_bell_numbers(s, count):
    assert len(cluster_expansion(s).expansion) == count


@pytest.mark.parametrize("s", [2, 3, 4])
def test_cluster_inversion_is_identity(s):
    """Substitute f_B = sum over partitions of prod g into the inverse: get g_s back."""
    ce = cluster_expansion(s)
    gsym = {}

    def g(labels):
        return gsym.setdefault(tuple(labels), sp.Symbol("g_" + "".join(map(str, labels))))

    def f_of(labels):
        from derive.cluster import cluster_products
        return sp.Add(*[sp.Mul(*[g(b.labels) for b in prod]) for prod in cluster_products(labels)])

    total = sp.Add(*[c * sp.Mul(*[f_of(f.labels) for f in prod]) for c, prod in ce.inverse])
    assert sp.expand(total - g(tuple(range(1, s + 1)))) == 0


def test_g2_equation_is_the_textbook_one():
    eq = correlation_equations(2)[2]
    shapes = {(t.op.kind, t.op.i, t.op.j, tuple((f.name(), f.labels) for f in t.factors), t.integrated, t.coeff)
              for t in eq.terms}
    expected = {
        ("dt", 0, 0, (("g2", (1, 2)),), (), 1),
        ("stream", 1, 0, (("g2", (1, 2)),), (), 1),
        ("stream", 2, 0, (("g2", (1, 2)),), (), 1),
        ("force", 1, 2, (("f", (1,)), ("f", (2,))), (), mu),
        ("force", 2, 1, (("f", (1,)), ("f", (2,))), (), mu),
        ("force", 1, 2, (("g2", (1, 2)),), (), mu),
        ("force", 2, 1, (("g2", (1, 2)),), (), mu),
        ("force", 1, 3, (("f", (1,)), ("g2", (2, 3))), (3,), 1),
        ("force", 1, 3, (("g2", (1, 2)), ("f", (3,))), (3,), 1),
        ("force", 1, 3, (("g3", (1, 2, 3)),), (3,), 1),
        ("force", 2, 3, (("g2", (1, 2)), ("f", (3,))), (3,), 1),
        ("force", 2, 3, (("g2", (1, 3)), ("f", (2,))), (3,), 1),
        ("force", 2, 3, (("g3", (1, 2, 3)),), (3,), 1),
    }
    assert shapes == expected


def test_canonical_relabelling_merges_equal_terms():
    a = Term(1, Op("force", 1, 3), (DF("g", (1,)), DF("g", (2, 3))), (3,))
    b = Term(2, Op("force", 1, 7), (DF("g", (1,)), DF("g", (2, 7))), (7,))
    assert canonical(b).factors == a.factors
    merged = collect([a, b])
    assert len(merged) == 1 and merged[0].coeff == 3


def test_order_counting():
    t = Term(mu, Op("force", 1, 2), (DF("g", (1, 2)),))
    assert t.order == 2
    assert Term(1, Op("force", 1, 3), (DF("g", (1, 2, 3)),), (3,)).order == 2


# --- stage 3: truncation and named assumptions --------------------------------------------
@pytest.fixture(scope="module")
def order2_system():
    return A.truncate(correlation_equations(3), 2)


def test_truncation_splits_g2(order2_system):
    names = sorted(s.name() for s in order2_system.subjects())
    assert names == ["f", "g2^(1)", "g2^(2)", "g3^(2)"]
    for subject, eq in order2_system.equations.items():
        if subject.kind == "g" and subject.size >= 2:
            assert all(t.order == subject.part for t in eq.terms)
    assert all(d.term.order > 2 for d in order2_system.dropped)


def test_homogeneity_drops_only_streaming_of_F_and_mean_field(order2_system):
    hom = A.homogeneous(order2_system)
    reasons = {d.reason for d in hom.dropped if d.step == "homogeneous"}
    assert reasons == {"dF/dtheta = 0 for a homogeneous F(v)",
                       "mean field vanishes: int dtheta_j U'(theta_i - theta_j) = 0"}
    for d in hom.dropped:
        if d.step == "homogeneous" and "mean field" in d.reason:
            assert d.term.factor_containing(d.term.op.j).kind == "F"


@given(st.lists(st.floats(-2, 2), min_size=1, max_size=6), st.floats(0, 2 * np.pi))
@settings(max_examples=20)
def test_mean_field_of_homogeneous_state_vanishes(coeffs, theta1):
    """Why the mean-field drop is legitimate: int_0^2pi U'(theta1 - theta) dtheta = 0 for any
    Fourier potential."""
    th = np.linspace(0, 2 * np.pi, 512, endpoint=False)
    dU = sum(2 * (k + 1) * c * np.sin((k + 1) * (theta1 - th)) for k, c in enumerate(coeffs))
    assert abs(dU.mean()) < 1e-12 * (1 + sum(abs(c) for c in coeffs) * len(coeffs))


def test_hot_limit_drops_exactly_the_linear_back_reaction(order2_system):
    hot = A.hot_limit(A.homogeneous(order2_system))
    dropped = [d.term for d in hot.dropped if d.step == "hot_limit"]
    assert dropped, "the order-2 system has collective terms"
    for t in dropped:
        j_holder = t.factor_containing(t.op.j)
        i_holder = t.factor_containing(t.op.i)
        assert j_holder.size >= 2 and t.op.i not in j_holder.labels and i_holder.kind == "F"
    for eq in hot:
        assert not any(A.is_collective(t) for t in eq.terms)
    # the g2 g2 sources survive the hot limit: they are a separate named drop (part 2)
    g3 = hot.find("g", 3, 2)
    assert sum(A.is_nonlinear_source(t) for t in g3.terms) == 6


# --- stage 4: Fourier, solution, long-time limit ------------------------------------------
def test_resonance_derivative_and_plemelj():
    x = sp.Symbol("x", real=True)
    assert sp.diff(Resonance(x, 1), x) == -Resonance(x, 2)
    split = split_resonance(Resonance(x, 2))
    assert split == PrincipalValue(x, 2) - sp.I * sp.pi * sp.DiracDelta(x, 1)
    assert PrincipalValue(-x, 1) == -PrincipalValue(x, 1)
    assert U(-x) == U(x)


def test_long_time_limit_of_time_integral_numerically():
    """lim int_0^T e^{-i w s} ds (with e^{-eps s}) = -i/(w - i eps) = -i Resonance(w, 1)."""
    eps, w = 0.05, 0.7
    s = np.linspace(0, 400, 400001)
    num = np.trapezoid(np.exp(-1j * w * s - eps * s), s)
    assert abs(num - (-1j / (w - 1j * eps))) < 1e-6


def test_fourier_projection_of_g2_equation():
    system = A.hot_limit(A.homogeneous(A.truncate(correlation_equations(2), 1)))
    fs = fourier_system(system)
    g = [e for s, e in fs.items() if s.kind == "g"][0]
    k1, v1, v2 = sp.Symbol("k1", integer=True), sp.Symbol("v1", real=True), sp.Symbol("v2", real=True)
    assert sp.expand(g.omega - k1 * (v1 - v2)) == 0
    F = sp.Function("F")
    src = sp.Add(*[t.body for t in g.source]).doit()
    expected = -sp.I * k1 * mu * U(k1) * (sp.diff(F(v1), v1) * F(v2) - F(v1) * sp.diff(F(v2), v2))
    assert sp.expand(src - expected) == 0


def test_order2_pipeline_reaches_the_flux_stage():
    system = A.hot_limit(A.homogeneous(A.truncate(correlation_equations(3), 2)))
    fs = fourier_system(system)
    sols = solve(fs)
    assert set(sols) == {"ghat2_1", "ghat3_2", "ghat2_2"}
    J = flux_terms(fs, sols)
    assert len(J) == 1 and len(J[0]) > 50


# --- orders 0 and 1 end to end --------------------------------------------------------------
def test_order0_is_the_vlasov_equation():
    op = derive.collision_operator(0)
    expr = op.canonical_expression()
    text = sp.sstr(expr)
    assert "Derivative(f(theta1, v1), t)" in text and "Derivative(f(theta1, v1), theta1)" in text
    assert "Integral" in text and "F12" in text
    assert op.name == "vlasov_1d"


@pytest.fixture(scope="module", params=[1, 2])
def landau(request):
    return derive.collision_operator(1, request.param)


def test_landau_checks(landau):
    cons = landau.check_conservation()
    for key in ("mass", "momentum", "energy"):
        assert cons[key].holds, str(cons[key])
    h = landau.check_h_theorem()
    assert h.holds, str(h)
    assert "**2" in sp.sstr(h.expressions[0])  # the square is visible in the evidence


def test_landau_vanishes_in_1d():
    op = derive.collision_operator(1, 1)
    ev = op.check_vanishes_1d()
    assert ev.holds and ev.expressions[-1] == 0
    two_d = derive.collision_operator(1, 2)
    with pytest.raises(ValueError, match="dimension 1"):
        two_d.check_vanishes_1d()
    assert any(t.body != 0 for c in two_d.flux for t in c)


def test_landau_1d_matches_oracle():
    """Oracle (textbook Landau flux for U = -sum U_k e^{ikx}, labelled, not used by the library):
    J(v1) = 2 pi^2 mu sum_k k^2 U_k^2 int dv2 delta(k (v1 - v2)) [F1 F2' - F1' F2]."""
    op = derive.collision_operator(1, 1)
    q, v1, v2 = sp.Symbol("q1", integer=True), sp.Symbol("v1", real=True), sp.Symbol("v2", real=True)
    F = sp.Function("F")
    oracle = 2 * sp.pi**2 * mu * q**2 * U(q) ** 2 * sp.DiracDelta(q * v1 - q * v2) * (
        F(v1) * sp.diff(F(v2), v2) - sp.diff(F(v1), v1) * F(v2))
    assert len(op.flux[0]) == 1
    assert sp.expand(op.flux[0][0].body - oracle) == 0


def test_bad_options():
    with pytest.raises(ValueError, match="order"):
        derive.collision_operator(-1)
    with pytest.raises(ValueError, match="dimension"):
        derive.collision_operator(1, 0)
    with pytest.raises(ValueError, match="order must be 0, 1 or 2"):
        derive.collision_operator(3)


def test_derivation_record_prints_and_saves(tmp_path):
    op = derive.collision_operator(1, 1)
    d = op.derivation
    assert d.stage_names()[:5] == ["liouville", "bbgky", "cluster_expansion", "correlation_equations", "truncate"]
    assert "hot_limit" in d.summary() and "terms" in d.summary()
    assert "\\delta" in d.as_latex() or "DiracDelta" in d.as_text()
    path = tmp_path / "d.json"
    d.save_json(path)
    import json
    data = json.loads(path.read_text())
    assert data["stages"][0]["name"] == "liouville"


def test_serialisation_round_trip():
    op = derive.collision_operator(1, 2)
    for comp in op.flux:
        for t in comp:
            assert decode(encode(t.body)) == t.body
    with pytest.raises(ValueError, match="refusing"):
        decode(["Exec", []])


def test_canonical_delta_sign():
    x, y = sp.symbols("x y", real=True)
    assert canonical_deltas(sp.DiracDelta(-x + y)) == canonical_deltas(sp.DiracDelta(x - y))


def test_combine_resonances_merges_equal_arguments_only():
    from derive.symbols import combine_resonances

    x, y = sp.symbols("x y", real=True)
    assert combine_resonances(Resonance(x, 1) ** 2 * Resonance(x, 2)) == Resonance(x, 4)
    assert combine_resonances(Resonance(x, 1) * Resonance(-x, 1)) == Resonance(x, 1) * Resonance(-x, 1)
    assert combine_resonances(Resonance(x, 1) * Resonance(y, 1)) == Resonance(x, 1) * Resonance(y, 1)
