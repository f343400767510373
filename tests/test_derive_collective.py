"""Balescu-Lenard: the collective pass (derive.collective) and the operator it derives.

Literature formulas appear here only as labelled oracles; the library derives its operator
from the BBGKY hierarchy (derive.collective never writes it down).
"""
import functools
import json

import numpy as np
import pytest
import scipy.sparse.linalg
import sympy as sp

import derive
from derive import assumptions as A
from derive.cluster import correlation_equations
from derive.collective import (OMEGA, CollectiveStructureError, Dielectric, FrequencyTerm, ProjectedSolution,
                               frequency_integral, orient, recognise)
from derive.fourier import FourierTerm, components, fourier_system
from derive.operator import Operator
from derive.reduce import canonical_deltas, merge
from derive.serialize import decode, encode
from derive.symbols import PrincipalValue, Resonance, U, mu, split_resonance, velocity
from numerics.cli import main
from numerics.models import FourierPotential, Gaussian
from numerics.models.stability import dielectric as numeric_dielectric
from tests.helpers.regularised import regularise

Ffun = sp.Function("F")


@functools.lru_cache(maxsize=None)
def balescu_lenard(d):
    return derive.collision_operator(1, d, collective=True)


@functools.lru_cache(maxsize=None)
def landau(d):
    return derive.collision_operator(1, d)


def order1_system(d, hot=False):
    system = A.homogeneous(A.truncate(correlation_equations(2, d), 1))
    return A.hot_limit(system) if hot else system


def g_equation(fourier):
    return next(e for s, e in fourier.items() if s.kind == "g")


def grad_dot(k, v):
    """k . grad F(v)"""
    return sp.Add(*[kc * sp.Derivative(Ffun(*v), vc) for kc, vc in zip(k, v)])


# --- the collective terms and their recognition -------------------------------------------
@pytest.mark.parametrize("d", [1, 2])
def test_collective_terms_present_without_the_hot_limit(d):
    g2 = order1_system(d).find("g", 2, 1)
    collective = [t for t in g2.terms if A.is_collective(t)]
    assert len(collective) == 2  # int dGamma3 F13 d/dv1 [F(1) g(2,3)] and the 2 <-> 1 image
    assert not any(A.is_collective(t) for t in order1_system(d, hot=True).find("g", 2, 1).terms)
    # in Fourier space: int dv3 ghat2_1(-k, v2, v3) and int dv3 ghat2_1(k, v1, v3)
    eq = g_equation(fourier_system(order1_system(d)))
    integrated = [t for t in eq.source if t.integrals]
    assert len(integrated) == 2 and all(t.integrals == velocity(3, d) for t in integrated)
    k = components(sp.Symbol("k1", integer=True), d)
    calls = {c for t in integrated for c in t.body.atoms(sp.Function) if c.func.__name__ == "ghat2_1"}
    assert calls == {sp.Function("ghat2_1")(*[-c for c in k], *velocity(2, d), *velocity(3, d)),
                     sp.Function("ghat2_1")(*k, *velocity(1, d), *velocity(3, d))}


@pytest.mark.parametrize("d", [1, 2])
def test_recognised_linearised_vlasov_structure(d):
    """L_a h = i k_a.v_a h + (2pi)^d i U_k k_a.grad F(v_a) int h dv_a (expected form of the linearised
    Vlasov operator with U(theta) = -sum U_k e^{ik theta}), k_1 = k, k_2 = -k; S = the Landau source."""
    eq = recognise(orient(g_equation(fourier_system(order1_system(d)))).equation)
    k = components(sp.Symbol("k1", integer=True), d)
    L1, L2 = eq.operators
    assert L1.wavevector == tuple(k) and L2.wavevector == tuple(-c for c in k)
    for L, v in ((L1, velocity(1, d)), (L2, velocity(2, d))):
        expected = (2 * sp.pi) ** d * sp.I * U(*k) * grad_dot(L.wavevector, v)
        assert sp.expand(L.coupling - expected) == 0
    hot = g_equation(fourier_system(order1_system(d, hot=True)))
    assert sp.expand(eq.source - sp.Add(*[t.body for t in hot.source]).doit()) == 0
    assert eq.n_collective == 2 * d  # one piece per component of k . grad


def test_recognition_fails_clearly_without_the_structure():
    hot = g_equation(fourier_system(order1_system(1, hot=True)))
    with pytest.raises(CollectiveStructureError, match="hot_limit"):
        recognise(orient(hot).equation)
    raw = g_equation(fourier_system(order1_system(1)))  # ghat2_1(-k, v2, v3): exchange symmetry not applied
    with pytest.raises(CollectiveStructureError, match="rank-one"):
        recognise(raw)
    with pytest.raises(CollectiveStructureError, match="order-mu system"):
        from derive.collective import balescu_lenard as pass_
        pass_(derive.Derivation({}), A.homogeneous(A.truncate(correlation_equations(3), 2)), [])


# --- the dielectric function -----------------------------------------------------------------
def test_dielectric_object():
    k, w = sp.Symbol("k", integer=True), sp.Symbol("w", real=True)
    eps = Dielectric(k, w)
    assert sp.conjugate(eps) == Dielectric(-k, -w)
    assert Dielectric(k, k * (w + 1)) == Dielectric(k, k * w + k)  # frequency kept expanded
    # oracle form: eps = 1 - (2pi)^d U_k int dv k.grad F / (omega - k.v + i0), 1/(x + i0) = -Resonance(-x, 1)
    u = sp.Symbol("u", real=True)
    oracle_integrand = -2 * sp.pi * U(k) * k * sp.Derivative(Ffun(u), u) * (-Resonance(k * u - w, 1))
    integral = eps.definition() - 1
    assert integral.limits == ((u, -sp.oo, sp.oo),)
    assert sp.expand(integral.function - oracle_integrand) == 0
    assert decode(encode(1 / (eps * sp.conjugate(eps)))) == 1 / (eps * sp.conjugate(eps))
    assert "varepsilon" in sp.latex(eps)


@pytest.mark.parametrize("k", [1, -1, 2])
def test_dielectric_normalisation_matches_numerics(k):
    """The engine's F is the phase-space DF, F = M phi/(2 pi) (1D, M = 1): its definition,
    evaluated with a regularised resonance, is numerics.models.stability.dielectric (which uses phi)."""
    pot, df = FourierPotential({1: 0.5, 2: 0.3}), Gaussian(1.0)
    u = sp.Symbol("u", real=True)
    eta = 1e-3
    integrand = regularise(Dielectric(k, OMEGA).integrand((u,)), eta)
    dF = sp.Symbol("dF")
    integrand = integrand.xreplace({sp.Derivative(Ffun(u), u): dF}).replace(U, lambda q: pot.coefficients(2)[abs(int(q))])
    fn = sp.lambdify([u, OMEGA, dF], integrand, "numpy")
    grid = np.linspace(-10, 10, 200001)
    for w in (0.0, 0.4, -1.3):
        engine = 1 + np.trapezoid(fn(grid, w, df.dpdf(grid) / (2 * np.pi)), grid)
        assert abs(engine - numeric_dielectric(pot, df, k, w)) < 5e-3
    # conj eps_k(w) = eps_{-k}(-w), the identity the pass uses for q -> -q
    assert abs(np.conj(numeric_dielectric(pot, df, k, 0.7)) - numeric_dielectric(pot, df, -k, -0.7)) < 1e-10


# --- resolvents and the frequency integral ---------------------------------------------------
def test_sherman_morrison_and_dielectric_identity_are_verified():
    d = balescu_lenard(1).derivation
    assert all(x.holds for x in d["dielectric"].output)
    assert [x.dielectric for x in d["dielectric"].output] == [Dielectric(sp.Symbol("k1", integer=True), OMEGA),
                                                              Dielectric(-sp.Symbol("k1", integer=True), -OMEGA)]
    for res in d["sherman_morrison"].output:
        assert res.holds and set(res.verification.values()) == {0}


k1 = sp.Symbol("k1", integer=True)
v1, v2, v3 = (sp.Symbol(f"v{a}", real=True) for a in (1, 2, 3))


def A1(v):  # (i (k v - omega) + 0)^-1
    return -sp.I * Resonance(k1 * v - OMEGA, 1)


def A2(v):  # (i (omega - k v) + 0)^-1
    return -sp.I * Resonance(OMEGA - k1 * v, 1)


def omega_integral(*terms):
    out = frequency_integral(ProjectedSolution(sp.Symbol("h"), list(terms)), 1)
    return sp.expand(sum((t.body for t in out.terms), sp.Integer(0)))


def test_frequency_integral_without_dressing_is_the_landau_resolvent():
    """int domega/2pi A1(v1) A2(v2) = -i Resonance(k (v1 - v2), 1): the bare case of kinetics.solve."""
    s = sp.Function("s")(v1, v2)
    assert omega_integral(FrequencyTerm((A1(v1), A2(v2), s))) == sp.expand(-sp.I * Resonance(k1 * v1 - k1 * v2, 1) * s)
    # analytic in the upper half-plane and decaying: zero
    assert omega_integral(FrequencyTerm((A1(v1), A1(v3), Dielectric(k1, OMEGA) ** -1))) == 0


def test_frequency_integral_pinched_poles_agree_with_the_plemelj_route():
    """Two poles on the side where the contour must close (1/eps2 is analytic only there): the
    residues use principal values. Cross-check against rewriting one free resolvent by Plemelj,
    A1(v2) = -A2(v2) + 2 pi delta(omega - k v2), which needs a single residue and a delta."""
    D2 = Dielectric(-k1, -OMEGA) ** -1
    direct = omega_integral(FrequencyTerm((A1(v1), A1(v2), D2)))
    assert direct.has(PrincipalValue)
    plemelj = omega_integral(FrequencyTerm((-1, A1(v1), A2(v2), D2)),
                             FrequencyTerm((2 * sp.pi, sp.DiracDelta(OMEGA - k1 * v2), A1(v1), D2)))
    diff = canonical_deltas(sp.expand(split_resonance(direct - plemelj)))
    # on delta(k (v1 - v2)) the two dielectrics coincide
    on_resonance = {Dielectric(-k1, -k1 * v2): Dielectric(-k1, -k1 * v1)}
    diff = sp.Add(*[p.xreplace(on_resonance) if p.has(sp.DiracDelta) else p for p in sp.Add.make_args(diff)])
    assert sp.simplify(diff) == 0


def _numeric(expr, arrays, dielectric, eta):
    """Evaluate an engine expression in 1D: Resonance(x) -> 1/(x - i eta), F -> arrays."""
    expr = expr.replace(Resonance, lambda x, n: (x - sp.I * eta) ** (-n))
    rep, names = {}, []
    for v in (v1, v2):
        for n, key in ((1, sp.Derivative(Ffun(v), v)), (0, Ffun(v))):
            sym = sp.Symbol(f"D{n}_{v.name}")
            rep[key] = sym
            names.append(sym)
    expr = expr.xreplace(rep)
    fn = sp.lambdify([v1, v2] + names, expr, modules=[{"Dielectric": dielectric}, "numpy"])
    return fn(*arrays)


def long_time_solution(diagonal, a1, a2, w, S):
    """H with (L1 + L2 + eta) H = S on the grid: L1 H = i k v1 H + a1(v1) sum_m w_m H[m, :], likewise
    L2 on the second index; ``diagonal`` = i k (v1 - v2) + eta. GMRES with the free streaming as
    preconditioner (a dense Sylvester solve is needlessly slow on a loaded 2-core machine)."""
    n = len(w)

    def apply(x):
        H = x.reshape(n, n)
        out = H + (np.outer(a1, w @ H) + np.outer(H @ w, a2)) / diagonal
        return out.ravel()

    op = scipy.sparse.linalg.LinearOperator((n * n, n * n), matvec=apply, dtype=complex)
    x, info = scipy.sparse.linalg.gmres(op, (S / diagonal).ravel(), rtol=1e-11, restart=200, maxiter=50)
    assert info == 0
    return x.reshape(n, n)


def test_dressed_solution_is_the_long_time_limit_of_the_linear_equation():
    """Independent check of Sherman-Morrison + frequency integral: discretise d/dt h + (L1 + L2) h = S
    (the recognised equation) on a velocity grid for HMF, k = 1, a Gaussian at Q = 2 (eps(0) = 1/2),
    and solve lim int_0^oo e^{-(L1 + L2 + eta) s} S ds = (L1 + L2 + eta)^-1 S as a linear system
    (no resolvent formula used); int dv2 h must approach the engine's dressed solution
    as eta -> 0 (linearly), and stay far from the bare (Landau) one."""
    op = balescu_lenard(1)
    eq = op.derivation["collective_structure"].output
    sol = op.derivation["frequency_integral"].output
    kval, Uk = 1, 0.5
    df = Gaussian(1.0)
    v = np.linspace(-6, 6, 300)
    w = np.full(v.size, v[1] - v[0])
    w[0] = w[-1] = w[0] / 2
    F, dF = df.pdf(v) / (2 * np.pi), df.dpdf(v) / (2 * np.pi)
    V1, V2 = np.meshgrid(v, v, indexing="ij")
    F1, dF1, F2, dF2 = (np.meshgrid(a, a, indexing="ij")[i] for a, i in ((F, 0), (dF, 0), (F, 1), (dF, 1)))
    subs = {k1: kval, mu: 1}

    def concrete(expr):
        return expr.subs(subs).replace(U, lambda *a: sp.Float(Uk))

    grid2 = (V1, V2, dF1, F1, dF2, F2)
    a1 = _numeric(concrete(eq.operators[0].coupling), grid2, None, 0) * np.ones_like(V1)
    a2 = _numeric(concrete(eq.operators[1].coupling), grid2, None, 0) * np.ones_like(V1)
    S = _numeric(concrete(eq.source), grid2, None, 0) * np.ones_like(V1)
    errors, bare_errors = [], []
    for eta in (0.1, 0.05):
        direct = long_time_solution(1j * kval * (V1 - V2) + eta, a1[:, 0], a2[0, :], w, S) @ w
        # the engine's dielectric, from its definition on the same grid (eta/2 per particle)
        table = {kk: 1 + 2 * np.pi * Uk * ((kk * dF)[None, :] / (kk * v[None, :] - kk * v[:, None] - 0.5j * eta)) @ w
                 for kk in (1, -1)}

        def eps(kk, om):
            e = table[int(kk)]
            return np.interp(np.asarray(om, float) / kk, v, e.real) + 1j * np.interp(np.asarray(om, float) / kk, v, e.imag)

        engine = np.zeros(v.size, complex)
        for term in sol.terms:
            vals = _numeric(concrete(term.body), grid2, eps, eta) * np.ones_like(V1)
            engine += vals @ w if term.integrals else vals[:, 0]
        bare = ((-1j / (kval * (V1 - V2) - 1j * eta)) * S) @ w
        core = np.abs(v) < 3
        scale = np.max(np.abs(direct[core]))
        errors.append(np.max(np.abs(engine - direct)[core]) / scale)
        bare_errors.append(np.max(np.abs(bare - direct)[core]) / scale)
    assert errors[1] < 0.08 and 1.6 < errors[0] / errors[1] < 2.4, errors  # O(eta) convergence
    assert min(bare_errors) > 0.4, bare_errors  # the dressing is a 40% effect at Q = 2


# --- the operator -------------------------------------------------------------------------------
def oracle_flux(d):
    """Oracle (Balescu-Lenard, labelled; F the phase-space DF, U = -sum U_k e^{ik.theta}):
    J(v1) = (2pi)^d pi mu sum_k int dv2 k (k.(F1 grad2 F2 - F2 grad1 F1)) |U_k/eps_k(k.v1)|^2 delta(k.(v1 - v2)),
    eps_k(w) eps_k(w)* written as Dielectric(k, w) Dielectric(-k, -w)."""
    q = components(sp.Symbol("q1", integer=True), d)
    a, b = velocity(1, d), velocity(2, d)
    kv1 = sum(qc * vc for qc, vc in zip(q, a))
    mod2 = Dielectric(*q, kv1) * Dielectric(*[-c for c in q], -kv1)
    bracket = Ffun(*a) * grad_dot(q, b) - Ffun(*b) * grad_dot(q, a)
    common = (2 * sp.pi) ** d * sp.pi * mu * U(*q) ** 2 * bracket * sp.DiracDelta(kv1 - sum(qc * vc for qc, vc in zip(q, b))) / mod2
    return [canonical_deltas(sp.expand(q[c] * common)) for c in range(d)]


@pytest.mark.parametrize("d", [1, 2])
def test_balescu_lenard_matches_oracle(d):
    op = balescu_lenard(d)
    assert op.name == f"balescu_lenard_{d}d" and op.collective
    for c, expected in enumerate(oracle_flux(d)):
        assert len(op.flux[c]) == 1 and op.flux[c][0].integrals == velocity(2, d)
        assert sp.expand(op.flux[c][0].body - expected) == 0


@pytest.mark.parametrize("d", [1, 2])
def test_eps_to_one_gives_the_landau_operator(d):
    bl, la = balescu_lenard(d), landau(d)
    for c in range(d):
        undressed = [FourierTerm(t.body.replace(Dielectric, lambda *a: 1), t.sums, t.integrals) for t in bl.flux[c]]
        diff = merge(undressed + [FourierTerm(-t.body, t.sums, t.integrals) for t in la.flux[c]], d)
        assert diff == []


@pytest.mark.parametrize("d", [1, 2])
def test_balescu_lenard_conserves_and_has_h_theorem(d):
    op = balescu_lenard(d)
    cons = op.check_conservation()
    for key in ("mass", "momentum", "energy"):
        assert cons[key].holds, str(cons[key])
    h = op.check_h_theorem()
    assert h.holds, str(h)
    text = sp.sstr(h.expressions[0])
    assert "**2" in text and "Dielectric" in text  # the square and the |eps|^2 are in the evidence


def test_h_theorem_check_does_not_accept_an_unpaired_dielectric():
    op = balescu_lenard(2)
    q = components(sp.Symbol("q1", integer=True), 2)
    kv1 = sum(qc * vc for qc, vc in zip(q, velocity(1, 2)))
    half = [[FourierTerm(t.body.subs(Dielectric(*[-c for c in q], -kv1), 1), t.sums, t.integrals) for t in comp]
            for comp in op.flux]
    broken = Operator(1, 2, True, op.assumptions, half, op.derivation)
    assert not broken.check_h_theorem().holds


def test_dressing_does_not_lift_the_1d_blocking():
    ev = balescu_lenard(1).check_vanishes_1d()
    assert ev.holds and ev.expressions[-1] == 0


def test_derivation_record():
    op = balescu_lenard(1)
    names = op.derivation.stage_names()
    assert "hot_limit" not in names
    assert names[names.index("homogeneous"):] == [
        "homogeneous", "fourier", "exchange_symmetry", "collective_structure", "dielectric", "sherman_morrison",
        "bogoliubov", "density_projection", "frequency_integral", "flux", "real_part", "use_resonances"]
    assert all(op.derivation[n].sympy_view for n in names)
    assert "linear_stability" in op.assumptions and "hot_limit" not in op.assumptions
    fi = op.derivation["frequency_integral"].output
    assert {rule for rule, _ in fi.log} == {"residues", "split", "plemelj", "delta"}
    assert op.derivation["real_part"].output[0].holds
    assert "varepsilon" in op.derivation.as_latex()


def test_cli_keep_collective(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BBGKY_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["derive", "--order", "1", "--keep-collective", "--checks"]) == 0
    out = capsys.readouterr().out
    assert "compiled" in out and "balescu_lenard_1d" in out and "frequency_integral" in out
    for name in ("vanishes_1d", "mass", "momentum", "energy", "h_theorem"):
        assert f"[holds] {name}" in out
    assert main(["derive", "--order", "1", "--keep-collective", "--checks"]) == 0
    out = capsys.readouterr().out
    assert "fetched from cache" in out and "[holds] h_theorem" in out
    files = list((tmp_path / "cache").glob("operator-*.json"))
    assert len(files) == 1 and "Dielectric" in json.dumps(json.loads(files[0].read_text()))
