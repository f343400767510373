"""Order-mu^2 stages: the three named drops (each with the reason it is legitimate) and the
long-time flux up to its real part."""
import pytest
import sympy as sp
from sympy.core.function import AppliedUndef

from derive import assumptions as A
from derive.cluster import correlation_equations
from derive.fourier import fourier_system
from derive.kinetics import flux_terms, solve
from derive.order2 import long_time_flux
from derive.symbols import Resonance, U

v1, v2 = sp.Symbol("v1", real=True), sp.Symbol("v2", real=True)


@pytest.fixture(scope="module")
def hot():
    return A.hot_limit(A.homogeneous(A.truncate(correlation_equations(3), 2)))


def test_named_drops_remove_exactly_the_expected_terms(hot):
    s1 = A.drop_landau_source(hot)
    assert [d.step for d in s1.dropped].count("drop_landau_source") == 1
    s2 = A.drop_two_body_source(s1)
    assert [d.step for d in s2.dropped].count("drop_two_body_source") == 2
    s3 = A.drop_nonlinear_sources(s2)
    assert [d.step for d in s3.dropped].count("drop_nonlinear_sources") == 6
    assert s3.term_counts() == {"F(1,)": 2, "g2^(1)(1, 2)": 5, "g2^(2)(1, 2)": 5, "g3^(2)(1, 2, 3)": 16}


def test_drops_that_rely_on_1d_refuse_other_dimensions():
    hot2d = A.hot_limit(A.homogeneous(A.truncate(correlation_equations(3, 2), 2)))
    with pytest.raises(ValueError, match="dimension 1"):
        A.drop_landau_source(hot2d)
    with pytest.raises(ValueError, match="dimension 1"):
        A.drop_two_body_source(hot2d)


def test_two_body_source_only_has_two_body_resonances(hot):
    """Why drop_two_body_source is legitimate in 1D: the flux it generates involves only
    resonances at multiples of v1 - v2, i.e. two-body kinematics, which in 1D can only keep or
    exchange the two velocities. (Note: under adiabatic eps-regularisation its products of
    resonances pinch, and the regularised value does not vanish even for a Maxwellian; the
    drop rests on the kinematic argument, not on that evaluation.)"""
    only = A._drop(A.drop_landau_source(hot), "keep_only_two_body",
                   lambda s, t: s.kind == "g" and s.size == 2 and s.part == 2 and any(f.size == 3 for f in t.factors),
                   "isolate the two-body source")
    fs = fourier_system(only)
    J = flux_terms(fs, solve(fs))[0]
    assert J
    for term in J:
        assert term.integrals == (v2,)
        for res in term.body.atoms(Resonance):
            arg = sp.expand(res.args[0])
            assert sp.simplify(arg.subs(v2, v1)) == 0, arg


def _u_degree(expr):
    return max(sum(e for b, e in (f.as_base_exp() for f in sp.Mul.make_args(t)) if isinstance(b, U))
               for t in sp.Add.make_args(sp.expand(expr)))


def _f_count(expr):
    out = []
    for t in sp.Add.make_args(sp.expand(expr)):
        n = 0
        for f in sp.Mul.make_args(t):
            base, e = f.as_base_exp()
            if (isinstance(base, AppliedUndef) and base.func.__name__ == "F") or (
                    isinstance(base, sp.Derivative) and base.expr.func.__name__ == "F"):
                n += int(e)
        out.append(n)
    return max(out)


def test_nonlinear_sources_carry_one_more_coupling_and_one_more_DF(hot):
    """Why drop_nonlinear_sources is legitimate in the hot limit: in g3, the g2 g2 sources carry
    one more coupling U and one more DF than the F g2 sources. With v = sigma u, F ~ 1/sigma and
    each velocity integral ~ sigma, that is a relative factor U*/sigma^2 = 1/Q."""
    base = A.drop_two_body_source(A.drop_landau_source(hot))
    fs_all = fourier_system(base)
    fs_lin = fourier_system(A.drop_nonlinear_sources(base))
    g3_all = solve(fs_all)["ghat3_2"].terms
    g3_lin = solve(fs_lin)["ghat3_2"].terms
    lin_bodies = {sp.srepr(t.body) for t in g3_lin}
    nonlinear = [t for t in g3_all if sp.srepr(t.body) not in lin_bodies]
    assert nonlinear
    assert _u_degree(sp.Add(*[t.body for t in g3_lin])) == 2
    assert _f_count(sp.Add(*[t.body for t in g3_lin])) == 3
    for t in nonlinear:
        assert _u_degree(t.body) == 3 and _f_count(t.body) == 4
        assert len(t.integrals) == 1  # the extra integrated particle


def _degrees(expr):
    """{(U degree, number of DFs)} over the monomials of expr."""
    return {(_u_degree(t), _f_count(t)) for t in sp.Add.make_args(sp.expand(expr))}


@pytest.mark.slow
def test_keeping_the_nonlinear_sources_the_flux_stays_real_and_gains_one_U_and_one_F(order2):
    """The first step towards the O(1/Q) correction: with drop_nonlinear_sources switched off,
    every stage still goes through (real_part raises if the imaginary part does not cancel).
    The flux is the bare one (U^4 F^3, 48 terms) plus terms that all carry U^5 F^4: one more
    coupling and one more DF, the relative 1/Q the drop neglects, now at the level of the flux."""
    full = long_time_flux(drops=("drop_landau_source", "drop_two_body_source"))
    assert "drop_nonlinear_sources" not in full.stage_names()
    bare = [_degrees(t.body) for t in order2["flux"].output]
    assert set().union(*bare) == {(4, 3)}
    degrees = [_degrees(t.body) for t in full["flux"].output]
    assert all(len(d) == 1 for d in degrees)  # each term is homogeneous
    assert sum(d == {(4, 3)} for d in degrees) == 48
    extra = [d for d in degrees if d != {(4, 3)}]
    assert extra and set().union(*extra) == {(5, 4)}
    census = full["resonance_census"].output
    assert sum(census.values()) == sum(len(sp.Add.make_args(t.body)) for t in full["symmetrise"].output)
    assert sum(census.values()) > sum(order2["resonance_census"].output.values())


@pytest.fixture(scope="module")
def order2():
    return long_time_flux()


def test_order2_long_time_flux_is_real(order2):
    # real_part raises if the imaginary part does not cancel; the stage record shows its size
    names = order2.stage_names()
    assert names[-4:] == ["flux", "real_part", "symmetrise", "resonance_census"]
    assert order2["flux"].n_terms == 48
    final = order2["symmetrise"].output
    assert sum(len(sp.Add.make_args(t.body)) for t in final) > 500  # "hundreds of terms"
    for t in final:
        assert not t.body.has(sp.I)
        assert not t.body.has(Resonance)
        assert len(t.sums) == 2 and len(t.integrals) == 2  # two wavevectors, particles 2 and 3


def test_order2_couplings_are_three_U(order2):
    """Every term couples U_k1 U_k2 U_(k1+k2)-type triples squared into four U's."""
    for t in order2["symmetrise"].output:
        assert _u_degree(t.body) == 4


def test_unknown_drop_is_rejected():
    with pytest.raises(ValueError, match="unknown drops"):
        long_time_flux(drops=("drop_everything",))


def test_resonance_census_accounts_for_every_monomial(order2):
    census = order2["resonance_census"].output
    final = order2["symmetrise"].output
    assert sum(census.values()) == sum(len(sp.Add.make_args(t.body)) for t in final)
    assert census[(("three-body", 0),)] > 0  # the resonance the canonical form keeps
    assert any(all(kind.startswith("two-body") for kind, _ in key) for key in census)


@pytest.fixture(scope="module")
def hmf_pinch_free(order2):
    from derive.derivation import Derivation
    from derive.order2 import pinch_free_flux

    d = Derivation(dict(order2.options), list(order2.stages))  # do not extend the shared record
    return pinch_free_flux({1: sp.Rational(1, 2)}, d)


def test_hmf_pinched_products_cancel_exactly(hmf_pinch_free):
    """For the HMF, once the sums are specialised and every resonance sits on a definite side,
    the products of opposite-side resonances at one argument (not distributions) sum to 0."""
    clean, evidence = hmf_pinch_free
    assert evidence.holds and evidence.expressions == [0]
    assert len(clean.args) == 208
    from derive.symbols import ResonancePlus

    assert clean.has(Resonance) and clean.has(ResonancePlus)
    mu_ = sp.Symbol("mu", positive=True)
    assert sp.expand(clean / mu_**2).has(mu_) is False  # order mu^2 throughout


@pytest.mark.slow
def test_hmf_regularised_flux_vanishes_for_maxwellian_and_converges_for_n4(hmf_pinch_free):
    """Regularised evaluation of the pinch-free HMF flux (F = phi/(2 pi), unit variance, mu = 1):
    the Maxwellian's flux decreases towards 0 as eps -> 0 and stays < 5% of the n = 4 flux,
    whose values converge (successive differences shrink)."""
    import numpy as np

    from tests.helpers.regularised import evaluate_integrand_2d

    clean, _ = hmf_pinch_free
    v = sp.Symbol("v")
    s4 = sp.sqrt(sp.gamma(sp.Rational(1, 4)) / sp.gamma(sp.Rational(3, 4)))
    profiles = {
        "maxwell": sp.exp(-v**2 / 2) / sp.sqrt(2 * sp.pi) / (2 * sp.pi),
        "n4": sp.exp(-(v / s4) ** 4) / (2 * s4 * sp.gamma(sp.Rational(5, 4))) / (2 * sp.pi),
    }
    v1s = np.array([0.3, 0.8, 2.0])
    results = {}
    for name, expr in profiles.items():
        derivs = [sp.lambdify(v, sp.diff(expr, v, n), "numpy") for n in range(5)]
        dF = lambda n, x, d=derivs: d[n](x)
        results[name] = [evaluate_integrand_2d(clean, dF, v1s, eps, L=5.5).real for eps in (0.1, 0.05, 0.025)]
    m, g = results["maxwell"], results["n4"]
    assert np.all(np.abs(m[2]) < np.abs(m[0]))
    assert np.max(np.abs(m[2])) < 0.05 * np.max(np.abs(g[2]))
    assert np.max(np.abs(g[2] - g[1])) < np.max(np.abs(g[1] - g[0]))
    assert g[2][1] < 0 < g[2][2]  # the flat-topped profile feeds its core and its tails


@pytest.fixture(scope="module")
def three_body():
    from derive import collision_operator

    return collision_operator(2, form="resonance")


def test_collision_operator_order2_is_the_resonance_form(three_body):
    """derive.collision_operator(2, form="resonance") runs every order-2 stage and returns the
    flux in resonance form: 48 terms, two summed wavevectors, particles 2 and 4 integrated,
    products of at most three same-side resonances, order mu^2, four couplings U per monomial."""
    op = three_body
    assert op.name == "three_body_resonance_1d" and op.order == 2 and op.dimension == 1
    assert op.derivation.stage_names()[-1] == "combine_resonances"
    assert {"hot_limit", "drop_landau_source", "drop_two_body_source", "drop_nonlinear_sources"} <= set(op.assumptions)
    terms = op.flux[0]
    assert len(terms) == 48
    for t in terms:
        assert len(t.sums) == 2 and len(t.integrals) == 2
        for mono in sp.Add.make_args(t.body):
            res = [f for f in sp.Mul.make_args(mono) if isinstance(f.as_base_exp()[0], Resonance)]
            assert 1 <= len(res) <= 3 and all(f.is_Function for f in res)  # merged: no powers left
            assert len({r.args[0] for r in res}) == len(res)
    assert _u_degree(sp.Add(*[t.body for t in terms])) == 4


@pytest.mark.parametrize("harmonics, holds", [
    ({1: sp.Symbol("U1")}, True),
    ({1: sp.Symbol("U1"), 3: sp.Symbol("U3")}, True),
    ({1: sp.Symbol("U1"), 2: sp.Symbol("U2")}, False),
])
def test_pinch_evidence_matches_the_sum_free_condition(three_body, harmonics, holds):
    """The opposite-side products cancel exactly iff no two harmonics add up to a third; the
    numerics (numerics.kinetic.sum_free) rely on this equivalence."""
    from derive.order2 import pinch_evidence, sum_free
    from numerics.kinetic import sum_free as numeric_sum_free

    ev = pinch_evidence(three_body, harmonics)
    assert ev.holds is holds
    assert sum_free(harmonics) is holds and numeric_sum_free({k: 1.0 for k in harmonics}) is holds
    if not holds:
        pinched = ev.expressions[0]
        assert pinched != 0 and pinched.has(sp.Symbol("U2"))


def test_pinch_evidence_rejects_bad_harmonics(three_body):
    from derive.order2 import pinch_evidence

    with pytest.raises(ValueError, match="harmonics must map integers k >= 1"):
        pinch_evidence(three_body, {0: 1})


def _numpy_module(op, name):
    import types

    from derive.codegen import freeze, render

    module = types.ModuleType(name)
    exec(compile(render(freeze(op), "numpy", "test"), name, "exec"), module.__dict__)
    return module


@pytest.fixture(scope="module")
def stage_modules(order2, three_body):
    """Generated NumPy kernels of two stages of the same derivation: the resonance form
    (flux + combine_resonances) and the real, symmetrised P/delta form (1560 monomials)."""
    from derive.operator import Operator

    real_form = Operator(2, 1, False, [], [order2["symmetrise"].output], order2)
    return _numpy_module(three_body, "resonance_form"), _numpy_module(real_form, "real_form")


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=6, deadline=None)
@given(ks=st.lists(st.integers(1, 2), min_size=1, max_size=2, unique=True),
       signs=st.lists(st.sampled_from([-1.0, 1.0]), min_size=2, max_size=2),
       mags=st.lists(st.floats(0.1, 1.0), min_size=2, max_size=2),
       n=st.sampled_from([4, 6]), sigma=st.floats(0.7, 1.3), v1=st.floats(0.3, 2.0),
       side=st.sampled_from([-1.0, 1.0]), eps=st.sampled_from([0.15, 0.3]))
def test_real_part_and_symmetrise_stages_agree_with_the_flux_stage(stage_modules, ks, signs, mags, n, sigma, v1,
                                                                   side, eps):
    """Numerical cross-check between stages (hypothesis: random potentials, pinched or not,
    random smooth DFs, harmonics 1 and 2 included). With every boundary value at width eps, (x - i eps)^-n = Re + i Im and
    Im is pi (-1)^(n-1)/(n-1)! delta_eps^(n-1)(x) exactly, so the real P/delta form after
    real_part + symmetrise must equal the resonance form at any finite eps, not only in the
    limit: an error in the Sokhotski-Plemelj split, the real part or the symmetrisation shows."""
    import numpy as np

    from numerics import GeneralizedGaussian
    from numerics.kinetic import _plane_integral, prepare

    resonance_form, real_form = stage_modules
    harmonics = {k: s * m for k, s, m in zip(ks, signs, mags)}
    df = GeneralizedGaussian(n, sigma)
    v1 = side * v1 * sigma  # away from v1 = 0, where the flux of an even DF vanishes
    grid = np.linspace(-3.5 * sigma, 3.5 * sigma, 101)
    dg = [df.derivative(grid, k) for k in range(4)]
    dv = [float(df.derivative(v1, k)) for k in range(4)]
    a = _plane_integral(prepare(resonance_form, harmonics), v1, eps, grid, dg, dv, 1.0)
    b = _plane_integral(prepare(real_form, harmonics), v1, eps, grid, dg, dv, 1.0)
    scale = max(abs(a), 1e-300)
    assert abs(a.imag) < 1e-10 * scale and abs(b.imag) < 1e-10 * scale
    assert abs(a.real - b.real) < 1e-9 * scale, (a, b)
