"""numerics.kinetic: the three-body flux from the generated kernels -- the canonical operator
on its resonance lines (default) and the resonance form on the (v2, v4) plane (eps-regularised,
Richardson eps -> 0; the cross-check) -- its validity guards and its physics."""
import math

import numpy as np
import pytest

from numerics import HMF, FourierPotential, Gaussian, GeneralizedGaussian, RingModel, Shifted
from numerics.generated import load
from numerics.kinetic import (
    TheoryNotApplicable,
    _plane_integral,
    flux,
    prepare,
    richardson,
    sum_free,
)

SIGMA = math.sqrt(2.0)  # HMF at Q = 4 with U_1 = 1/2
FAST = dict(levels=3, eps0=0.3, points_per_eps=4.0)


def test_richardson_is_exact_for_a_quadratic_in_eps():
    eps = 0.3 / 2.0 ** np.arange(3)
    values = [1.5 - 2.0 * e + 7.0 * e**2 for e in eps]
    best, err = richardson(values)
    assert abs(best - 1.5) < 1e-13
    assert err > 0  # the linear extrapolant differs


def test_richardson_error_covers_a_series_that_is_not_yet_asymptotic():
    """J = J0 + exp(-c/eps) has no power series at eps -> 0: the extrapolation is off by 0.22 and
    the textbook estimate (the last two extrapolants of the last row, 0.09) misses it; the estimate
    returned also compares with the best extrapolant of the levels before, and covers it."""
    eps = 0.3 / 2.0 ** np.arange(3)
    best, err = richardson([1.0 + np.exp(-0.05 / e) for e in eps])
    assert abs(best - 1.0) > 0.2
    assert err >= abs(best - 1.0)


def test_sum_free_condition():
    assert sum_free({1: 1.0}) and sum_free({1: 1.0, 3: 0.2, 5: -0.1}) and sum_free({2: 1.0, 3: 1.0})
    assert not sum_free({1: 1.0, 2: 0.1}) and not sum_free({1: 1.0, 3: 0.1, 4: 0.1})


def test_conjugate_half_sum_equals_the_full_sum():
    """J = 2 Re (sum over q2 > 0): (q, p) and (-q, -p) are complex conjugates, and the full
    sum is real (the engine's real_part stage, checked here on the regularised kernels)."""
    module = load("three_body_resonance_1d", "numpy")
    df = GeneralizedGaussian(4, 1.0)
    grid = np.linspace(-3.0, 3.0, 181)
    dg = [df.derivative(grid, k) for k in range(4)]
    dv = [float(df.derivative(0.7, k)) for k in range(4)]
    harmonics = {1: 1.0, 3: -0.4}
    full = _plane_integral(prepare(module, harmonics), 0.7, 0.25, grid, dg, dv, 1.0)
    half = _plane_integral(prepare(module, harmonics, half=True), 0.7, 0.25, grid, dg, dv, 1.0)
    assert abs(full.imag) < 1e-12 * abs(full.real)
    assert abs(full.real - 2 * half.real) < 1e-12 * abs(full.real)


@pytest.mark.parametrize("harmonics", [{1: 0.5}, {1: 0.5, 2: 0.3, 3: -0.2}])
def test_half_of_the_pairs_gives_half_the_flux(harmonics):
    """The line evaluator sums the pairs with k1 > 0 and doubles: (k1, k2) and (-k1, -k2) give the
    same line integral."""
    from numerics.kinetic import line_instances, line_integral

    module = load("three_body_1d", "numpy")
    df = GeneralizedGaussian(4, 1.7)
    v = np.array([0.3, 1.1, 2.4])
    full = line_integral(line_instances(prepare(module, harmonics)), v, df, sigma=1.7, mu=1.0, panels=8)
    half = line_integral(line_instances(prepare(module, harmonics, half=True)), v, df, sigma=1.7, mu=1.0, panels=8)
    np.testing.assert_allclose(2 * half, full, rtol=1e-12, atol=0)


def test_numpy_and_jax_agree_on_the_plane():
    df = GeneralizedGaussian(4, SIGMA)
    kw = dict(N=64, levels=2, eps0=0.4, points_per_eps=2.0, method="plane")
    a = flux(HMF(), df, [0.5, 1.7], backend="numpy", **kw)
    b = flux(HMF(), df, [0.5, 1.7], backend="jax", **kw)
    np.testing.assert_allclose(b.by_eps, a.by_eps, rtol=1e-12, atol=0)


@pytest.mark.parametrize("harmonics", [{1: 0.5}, {1: 0.4, 2: -0.2, 3: 0.1}])
def test_numpy_and_jax_agree_on_the_lines(harmonics):
    """The JAX line evaluator interpolates the DF (cubic Hermite on a table); NumPy uses the
    exact derivatives: they agree to 1e-8 of the flux scale."""
    df = GeneralizedGaussian(4, 2.0)
    v = [-1.1, 0.5, 1.7, 3.9]
    a = flux(FourierPotential(harmonics), df, v, N=64, backend="numpy")
    b = flux(FourierPotential(harmonics), df, v, N=64, backend="jax")
    np.testing.assert_allclose(b.by_eps, a.by_eps, rtol=0, atol=1e-8 * np.max(np.abs(a.flux)))


def test_line_method_matches_the_plane_limit_for_hmf():
    """The canonical operator (one line per pair, finite part) against the eps -> 0 limit of the
    resonance form it was derived from: the canonicalisation's numerical cross-check (the two
    evaluations share nothing but the engine's flux stage)."""
    df = GeneralizedGaussian(4, SIGMA)
    v = [0.75, 2.5]
    line = flux(HMF(), df, v, N=2, backend="numpy")
    plane = flux(HMF(), df, v, N=2, backend="jax", method="plane", levels=4, eps0=0.2)
    # the estimate bounds the embedded 7-point Gauss rule: conservative for the 15-point value
    assert np.all(line.error < 1e-3 * np.max(np.abs(line.flux)))
    np.testing.assert_allclose(line.flux, plane.flux, rtol=0, atol=3 * np.max(plane.error) + 1e-4 * np.max(np.abs(line.flux)))
    np.testing.assert_allclose(line.flux * 4, [-0.00475503, 0.00377109], rtol=1e-5)  # N^2 flux, stored figures


@pytest.fixture(scope="module")
def hmf_n4():
    return flux(HMF(), GeneralizedGaussian(4, SIGMA), np.linspace(0.0, 5.0, 21), N=1000, backend="jax", **FAST)


def test_hmf_n4_flux_shape_and_scale(hmf_n4):
    """The flat-topped profile feeds its core from the shoulders and its tails: J < 0 at
    intermediate |v|, > 0 at large |v|, one zero crossing; J = 0 at v = 0 (odd for an even DF)."""
    v, J = hmf_n4.v, hmf_n4.flux
    assert abs(J[0]) < 1e-3 * np.max(np.abs(J))
    inner = (v > 0.3) & (v < 1.6)
    outer = (v > 2.2) & (v < 3.2)
    assert np.all(J[inner] < 0) and np.all(J[outer] > 0)
    crossing = v[np.nonzero(np.diff(np.sign(J[1:])))[0] + 1]
    assert crossing.size == 1 and 1.6 < crossing[0] < 2.2
    assert np.all(hmf_n4.error < 0.05 * np.max(np.abs(J)))


def test_energy_and_momentum_conservation(hmf_n4):
    """dE/dt = int v F dv = 0 (F odd here, so v F is even: a real test); the integral of |v F|
    sets the scale. Quadrature on 21 points of [0, 5] (the flux vanishes beyond)."""
    v, J = hmf_n4.v, hmf_n4.flux
    energy = 2 * np.trapezoid(v * J, v)
    scale = 2 * np.trapezoid(np.abs(v * J), v)
    assert abs(energy) < 0.03 * scale, (energy, scale)


def test_n_scaling_is_exactly_inverse_square():
    df = GeneralizedGaussian(4, SIGMA)
    a = flux(HMF(), df, [1.0], N=100, backend="jax", **FAST)
    b = flux(HMF(), df, [1.0], N=200, backend="jax", **FAST)
    assert abs(a.flux[0] / b.flux[0] - 4.0) < 1e-12


def test_odd_for_an_even_df():
    df = GeneralizedGaussian(4, SIGMA)
    r = flux(HMF(), df, [-1.2, 1.2, -2.6, 2.6], N=100, backend="jax", **FAST)
    np.testing.assert_allclose(r.by_eps[:, 0], -r.by_eps[:, 1], rtol=1e-10)
    np.testing.assert_allclose(r.by_eps[:, 2], -r.by_eps[:, 3], rtol=1e-10)


@pytest.mark.parametrize("harmonics", [{1: 0.5}, {1: 0.3, 3: -0.2}, {1: 0.5, 2: 0.2}, {1: 0.3, 2: -0.2, 3: 0.1, 5: 0.05}])
def test_shifted_maxwellian_is_steady(harmonics):
    """Maxwellians (shifted or not) give zero flux -- to round-off with the canonical operator,
    also for potentials with a + b = c (where the resonance form has pinches)."""
    pot = FourierPotential(harmonics)
    v = [-0.6, 0.9, 2.3]
    ref = flux(pot, GeneralizedGaussian(4, SIGMA), [1.2], N=100, backend="jax")
    for df in (Gaussian(SIGMA), Shifted(Gaussian(SIGMA), 0.4)):
        r = flux(pot, df, v, N=100, backend="jax")
        assert np.max(np.abs(r.flux)) < 1e-8 * abs(ref.flux[0]), (df, r.flux, ref.flux)


def test_plane_maxwellian_steady_within_its_accuracy():
    ref = flux(HMF(), GeneralizedGaussian(4, SIGMA), [1.2], N=100, backend="jax", method="plane", **FAST)
    r = flux(HMF(), Shifted(Gaussian(SIGMA), 0.4), [-0.6, 0.9, 2.3], N=100, backend="jax", method="plane", **FAST)
    assert np.max(np.abs(r.flux)) < 0.03 * abs(ref.flux[0])


def test_pinched_potential_is_refused_by_the_plane_method_only():
    with pytest.raises(TheoryNotApplicable, match=r"harmonics \[1, 2\].*1 \+ 1 = 2.*method='line'"):
        flux(FourierPotential({1: 0.5, 2: 0.2}), Gaussian(2.0), [1.0], N=100, method="plane")
    with pytest.raises(TheoryNotApplicable, match="a \\+ b = c"):
        flux(RingModel(0.1), Gaussian(3.0), [1.0], N=100, kmax=4, method="plane")
    r = flux(FourierPotential({1: 0.5, 2: 0.2}), GeneralizedGaussian(4, 2.0), [1.0], N=100)
    assert r.flux[0] < 0 and not r.meta["sum_free"]


def test_ring_model_kmax_convergence_is_checked():
    """A truncated potential is re-evaluated at kmax - 1: the hard ring (softening 0.1) is far
    from converged at kmax = 3 and warns; the soft one (0.5) at kmax = 12 is converged."""
    u = RingModel(0.1).coefficients(3)
    with pytest.warns(RuntimeWarning, match="not converged in kmax"):
        r = flux(RingModel(0.1), GeneralizedGaussian(4, math.sqrt(4 * u[1])), [1.0], N=100, kmax=3, backend="numpy")
    assert r.meta["kmax_change"] > 0.01
    u = RingModel(0.5).coefficients(12)
    r = flux(RingModel(0.5), GeneralizedGaussian(4, math.sqrt(4 * max(u[1:]))), [0.5, 2.0], N=100, kmax=12,
             backend="jax")
    assert r.meta["kmax_change"] < 0.01


def test_dirac_comb_families_vanish():
    """Fundamental resonances {|k1|, |k2|, |k1 + k2|} whose three couplings are equal (a Dirac
    comb's) give zero flux for a non-Maxwellian DF; unequal couplings do not."""
    from numerics.kinetic import resonance_families

    df = GeneralizedGaussian(4, 3.0)
    v = [0.5, 1.5, 3.0]
    comb = resonance_families(FourierPotential({1: 0.5, 2: 0.5, 3: 0.5, 4: 0.5}), df, v, N=100)
    assert (1, 1, 2) in comb and (1, 3, 4) in comb
    scale = np.max(np.abs(flux(HMF(), df, v, N=100).flux))
    for fam, values in comb.items():
        if max(fam) <= 4:
            assert np.max(np.abs(values)) < 1e-9 * scale, (fam, values)
    uneven = resonance_families(FourierPotential({1: 0.5, 2: 0.3}), df, v, N=100)
    assert np.max(np.abs(uneven[(1, 1, 2)])) > 1e-3 * scale


def test_unstable_state_is_refused_unless_overridden():
    cold = GeneralizedGaussian(4, 0.3)  # Q = 0.09/0.5 < Q_c = 0.457
    with pytest.raises(TheoryNotApplicable, match="Q = 0.18 <= Q_c = 0.4569.*allow_unstable"):
        flux(HMF(), cold, [0.1], N=100)
    with pytest.warns(RuntimeWarning, match="allow_unstable=True"):
        flux(HMF(), cold, [0.1], N=100, allow_unstable=True, levels=2, eps0=0.5, points_per_eps=1.5)
    with pytest.warns(RuntimeWarning, match="collective effects"):
        flux(HMF(), GeneralizedGaussian(4, 0.6), [0.1], N=100, levels=2, eps0=0.5, points_per_eps=1.5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(N=1), "N must be a finite number >= 2"),
    (dict(N=100, kmax=0), "kmax must be an integer >= 1"),
    (dict(N=100, levels=1), "levels must be an integer in \\[2, 5\\]"),
    (dict(N=100, eps0=0.0), "eps0"),
    (dict(N=100, points_per_eps=0.5), "points_per_eps must be a number >= 1"),
    (dict(N=100, backend="torch"), "backend must be 'numpy' or 'jax'"),
    (dict(N=100, method="grid"), "method must be 'line'"),
    (dict(N=100, panels=3), "panels must be an even integer"),
    (dict(N=100, tol=0.0), "tol must be a number in \\(0, 1\\)"),
])
def test_bad_arguments_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        flux(HMF(), Gaussian(2.0), [1.0], **kwargs)


def test_non_smooth_df_is_refused():
    with pytest.raises(ValueError, match="derivative of order 2 needs a smooth profile"):
        flux(HMF(), GeneralizedGaussian(3, 2.0), [1.0], N=100)


def test_result_serialises(tmp_path, hmf_n4):
    import json

    path = hmf_n4.save(tmp_path / "flux.json")
    data = json.loads(path.read_text())
    assert data["N"] == 1000 and len(data["flux"]) == 21 and data["meta"]["operator"] == "three_body_1d"
    u, scaled = hmf_n4.dimensionless()
    assert np.allclose(scaled, hmf_n4.flux * 1000**2 * hmf_n4.Q**4 / SIGMA)


def test_flux_command_writes_json_and_png(tmp_path, capsys):
    from numerics.cli import main

    out = tmp_path / "hmf.json"
    rc = main(["flux", "--N", "64", "--v", "0.5", "2.5", "3", "--levels", "2", "--eps0", "0.4",
               "--out", str(out)])
    assert rc == 0
    import json

    data = json.loads(out.read_text())
    assert len(data["flux"]) == 3 and data["N"] == 64 and abs(data["Q"] - 4.0) < 1e-12
    assert out.with_suffix(".png").stat().st_size > 1000
    assert "N^2 flux" in capsys.readouterr().out


def test_flux_command_plane_method_refuses_pinched_potentials(capsys):
    from numerics.cli import main

    rc = main(["flux", "--potential", "fourier", "--harmonics", "1:0.5,2:0.1", "--N", "64", "--method", "plane"])
    assert rc == 1
    assert "1 + 1 = 2" in capsys.readouterr().err


def test_verify_reports_every_check(tmp_path):
    from numerics.cli import main

    out = tmp_path / "verify.json"
    assert main(["verify", "--examples", "1", "--out", str(out)]) == 0
    import json

    checks = json.loads(out.read_text())["checks"]
    assert {c["name"] for c in checks} == {"maxwellian_steady", "shifted_maxwellian_steady", "odd_for_even_df",
                                           "galilean_covariance", "energy_conservation", "h_theorem",
                                           "dirac_comb_blocking", "inverse_N_squared", "numpy_jax_agreement"}
    assert all(c["passed"] for c in checks)


def test_tabulated_df_gives_the_analytic_flux():
    """A tabulated profile (quintic-spline derivatives of a fine table) predicts the same flux
    as the analytic generalised Gaussian it samples."""
    from numerics import Tabulated

    exact = GeneralizedGaussian(4, SIGMA)
    grid = np.linspace(-4.5 * SIGMA, 4.5 * SIGMA, 901)
    table = Tabulated(grid, exact.pdf(grid))
    kw = dict(N=100, backend="jax", levels=2, eps0=0.3, points_per_eps=4.0)
    a = flux(HMF(), exact, [0.9, 2.4], **kw)
    b = flux(HMF(), table, [0.9, 2.4], **kw)
    np.testing.assert_allclose(b.by_eps, a.by_eps, rtol=5e-3)  # PCHIP values, quintic higher derivatives


def test_kronrod_rule_exactness_and_nodes():
    """The Gauss-Kronrod 7/15 constants: the Kronrod rule integrates x^d exactly to d = 23, the
    embedded Gauss rule to d = 13 and not beyond; the mirrored panels carry both rules."""
    from numerics.kinetic import KronrodNodes, kronrod_rule

    x, wk, wg = kronrod_rule()
    exact = lambda d: 0.0 if d % 2 else 2.0 / (d + 1)  # noqa: E731
    assert max(abs(np.sum(wk * x**d) - exact(d)) for d in range(24)) < 1e-14
    assert max(abs(np.sum(wg * x**d) - exact(d)) for d in range(14)) < 1e-14
    assert abs(np.sum(wk * x**24) - exact(24)) > 1e-10 and abs(np.sum(wg * x**14) - exact(14)) > 1e-6
    assert np.count_nonzero(wg) == 7
    kn = KronrodNodes(3)
    t, w = kn.t, kn.weights
    assert t.shape == (90,) and w.shape == (2, 90) and np.all(t[:45] > 0) and np.allclose(t[45:], -t[:45])
    # int_{-1}^{1} of an even and an odd smooth function; the pairing cancels 1/t
    np.testing.assert_allclose(w @ np.cos(3 * t), [2 * np.sin(3) / 3] * 2, rtol=0, atol=1e-6)
    assert abs(w[0] @ np.cos(3 * t) - 2 * np.sin(3) / 3) < 1e-14
    assert np.all(np.abs(w @ (np.exp(-t**2) / t)) < 1e-14)


def test_kronrod_value_is_far_more_accurate_than_its_estimate():
    """Default 4 panels: the 15-point value is within 1e-9 of a 64-panel reference, the
    estimate |K - G7| is an upper bound."""
    df = GeneralizedGaussian(4, SIGMA)
    v = np.linspace(-3.0, 3.0, 13) * SIGMA
    r = flux(HMF(), df, v, N=100)
    ref = flux(HMF(), df, v, N=100, panels=64)
    scale = np.max(np.abs(ref.flux))
    actual = np.abs(r.flux - ref.flux)
    assert np.max(actual) < 1e-9 * scale and np.all(actual <= r.error + 1e-13 * scale)
    assert r.meta["panels"] == 4 and "Kronrod" in r.meta["rule"]


def test_line_quadrature_refines_to_a_stated_tolerance():
    df = GeneralizedGaussian(4, SIGMA)
    v = np.array([0.5, 1.2, 2.2]) * SIGMA
    loose = flux(HMF(), df, v, N=100, panels=2, tol=None)
    tight = flux(HMF(), df, v, N=100, panels=2, tol=1e-9)
    scale = np.max(np.abs(tight.flux))
    assert np.max(loose.error) > 1e-6 * scale  # two panels are not enough
    assert tight.meta["panels"] > 2 and np.max(tight.error) <= 1e-9 * scale
    ref = flux(HMF(), df, v, N=100, panels=64)
    np.testing.assert_allclose(tight.flux, ref.flux, rtol=0, atol=1e-8 * scale)
