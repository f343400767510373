"""Potentials and velocity distributions against independent oracles.

Oracles are labelled where used: mpmath's Legendre function Q_{k-1/2} and mpmath quadrature for
the ring model's harmonics, SymPy derivatives and finite differences for forces, closed-form
moments (Gamma functions) and scipy quadrature for the distributions.
"""
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate

from numerics.models import (
    HMF,
    DiracComb,
    FourierPotential,
    Gaussian,
    GeneralizedGaussian,
    RingModel,
    Tabulated,
)
from numerics.models.distributions import distribution_from_dict
from numerics.models.potentials import potential_from_dict

THETA = np.linspace(-math.pi, math.pi, 401)


# ================================================================================================
# potentials
# ================================================================================================
def ring_harmonic_legendre(eps: float, k: int) -> float:
    """Oracle: U_k = Q_{k-1/2}(1 + eps^2/2) / pi (mpmath, 30 digits)."""
    with mpmath.workdps(30):
        z = 1 + mpmath.mpf(eps) ** 2 / 2
        return float(mpmath.legenq(k - mpmath.mpf(1) / 2, 0, z, type=3).real / mpmath.pi)


def ring_harmonic_quadrature(eps: float, k: int) -> float:
    """Oracle: U_k = (1/pi) int_0^pi cos(k theta) / sqrt(2 (1 - cos theta) + eps^2) dtheta (mpmath)."""
    with mpmath.workdps(30):
        e = mpmath.mpf(eps)
        f = lambda t: mpmath.cos(k * t) / mpmath.sqrt(4 * mpmath.sin(t / 2) ** 2 + e**2)  # noqa: E731
        cuts = [0, e / 2, e, 3 * e, 10 * e, mpmath.pi / 2, mpmath.pi]
        cuts = sorted({c for c in cuts if c <= mpmath.pi})
        return float(mpmath.quad(f, cuts) / mpmath.pi)


@pytest.mark.parametrize("eps", [0.01, 0.1, 0.5, 1.0])
def test_ring_harmonics_against_legendre_Q(eps):
    kmax = 60
    u = RingModel(eps).coefficients(kmax)
    ref = np.array([ring_harmonic_legendre(eps, k) for k in range(kmax + 1)])
    np.testing.assert_allclose(u, ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("eps, ks", [(0.1, [0, 1, 7, 30]), (0.5, [1, 4, 25]), (0.01, [2, 50])])
def test_ring_harmonics_against_direct_quadrature(eps, ks):
    u = RingModel(eps).coefficients(max(ks))
    for k in ks:
        assert u[k] == pytest.approx(ring_harmonic_quadrature(eps, k), rel=1e-12, abs=0)


def test_ring_harmonics_do_not_depend_on_kmax():
    ring = RingModel(0.2)
    long = ring.coefficients(200)
    for kmax in (1, 3, 17, 64, 150):
        np.testing.assert_allclose(ring.coefficients(kmax), long[: kmax + 1], rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "pot", [HMF(), FourierPotential({1: 0.3, 4: -0.1}), RingModel(0.3), DiracComb(3, 0.7)], ids=repr
)
@pytest.mark.parametrize("kmax", [1, 5, 40])
def test_coefficients_are_float64_of_length_kmax_plus_one(pot, kmax):
    c = pot.coefficients(kmax)
    assert isinstance(c, np.ndarray) and c.dtype == np.float64 and c.shape == (kmax + 1,)
    # the returned array is a copy: mutating it does not change the model
    c[:] = 99.0
    assert not np.any(pot.coefficients(kmax) == 99.0)


def test_hmf_is_minus_cos():
    hmf = HMF()
    np.testing.assert_allclose(hmf(THETA), -np.cos(THETA), atol=1e-15)
    np.testing.assert_allclose(hmf.pair_force(THETA), -np.sin(THETA), atol=1e-15)
    np.testing.assert_array_equal(hmf.coefficients(3), [0.0, 0.5, 0.0, 0.0])
    assert hmf.attractive_max() == 0.5 and hmf.kmax_exact == 1


def test_fourier_potential_values_and_force_against_sympy():
    harmonics = {0: 0.2, 1: 0.5, 3: -0.25, 4: 0.125}
    pot = FourierPotential(harmonics)
    th = sp.Symbol("theta", real=True)
    # oracle: U = -sum_k U_k e^{ik theta} over k in Z, written with both signs of k
    expr = -sum(
        (sp.Rational(str(v)) * (sp.exp(sp.I * k * th) + (sp.exp(-sp.I * k * th) if k else 0)))
        for k, v in harmonics.items()
    )
    expr = sp.simplify(sp.expand_complex(expr))
    u_fn = sp.lambdify(th, expr, "numpy")
    f_fn = sp.lambdify(th, -sp.diff(expr, th), "numpy")
    np.testing.assert_allclose(pot(THETA), u_fn(THETA), atol=1e-14)
    np.testing.assert_allclose(pot.pair_force(THETA), f_fn(THETA), atol=1e-14)
    # truncation: harmonics above kmax are dropped
    np.testing.assert_allclose(pot.truncated_force(THETA, 3), -2 * (0.5 * np.sin(THETA) - 0.75 * np.sin(3 * THETA)),
                               atol=1e-14)


def test_fourier_pair_force_by_finite_differences():
    pot = FourierPotential({1: 0.4, 2: 0.1, 5: 0.05})
    h = 1e-5
    fd = -(pot(THETA + h) - pot(THETA - h)) / (2 * h)
    np.testing.assert_allclose(pot.pair_force(THETA), fd, atol=1e-9)


@pytest.mark.parametrize("eps", [0.1, 0.5, 1.0])
def test_ring_pair_force_is_minus_derivative(eps):
    ring = RingModel(eps)
    th = sp.Symbol("theta", real=True)
    e = sp.Float(eps, 30)
    expr = -1 / sp.sqrt(2 * (1 - sp.cos(th)) + e**2)
    np.testing.assert_allclose(ring(THETA), sp.lambdify(th, expr, "numpy")(THETA), rtol=1e-13)
    np.testing.assert_allclose(ring.pair_force(THETA), sp.lambdify(th, -sp.diff(expr, th), "numpy")(THETA),
                               rtol=1e-13, atol=1e-13)
    h = 1e-6 * eps
    fd = -(ring(THETA + h) - ring(THETA - h)) / (2 * h)
    np.testing.assert_allclose(ring.pair_force(THETA), fd, rtol=1e-6, atol=1e-6 / eps**2)


@pytest.mark.parametrize("eps", [0.1, 0.5])
def test_truncated_ring_converges_to_exact(eps):
    ring = RingModel(eps)
    exact_u, exact_f = ring(THETA), ring.pair_force(THETA)
    tail = ring.coefficients(800)
    errors = []
    for kmax in (5, 10, 20, 40, 80, 160, 320):
        err_u = np.max(np.abs(ring.truncated_value(THETA, kmax) - exact_u))
        # oracle bound: |U - U_trunc| <= 2 sum_{k > kmax} |U_k|
        assert err_u <= 2 * np.sum(tail[kmax + 1 :]) + 1e-12
        errors.append(err_u)
    assert all(b < a for a, b in zip(errors, errors[1:]) if a > 1e-13)
    assert errors[-1] < 1e-12
    np.testing.assert_allclose(ring.truncated_force(THETA, 600), exact_f, atol=1e-9 * np.max(np.abs(exact_f)))


def test_dirac_comb_coefficients():
    comb = DiracComb(3, 0.7)
    c = comb.coefficients(10)
    expected = np.where(np.arange(11) % 3 == 0, 0.7, 0.0)
    np.testing.assert_array_equal(c, expected)
    assert comb.attractive_max(10) == 0.7
    assert DiracComb(1).coefficients(4).tolist() == [1.0] * 5
    with pytest.raises(ValueError, match="truncated_value"):
        comb(0.1)
    with pytest.raises(ValueError, match="pair force"):
        comb.pair_force(0.1)
    # truncated, it is an ordinary Fourier potential
    np.testing.assert_allclose(comb.truncated_value(THETA, 6),
                               -0.7 - 1.4 * (np.cos(3 * THETA) + np.cos(6 * THETA)), atol=1e-14)


@pytest.mark.parametrize("pot", [HMF(), FourierPotential({2: 0.3, 7: -1.5}), RingModel(0.25), DiracComb(2, 0.5)],
                         ids=repr)
def test_potential_round_trip(pot):
    back = potential_from_dict(pot.parameters())
    assert type(back) is type(pot) and back.parameters() == pot.parameters()
    np.testing.assert_array_equal(back.coefficients(12), pot.coefficients(12))


# --- property tests --------------------------------------------------------------------------
harmonic_dicts = st.dictionaries(st.integers(1, 12), st.floats(-2.0, 2.0, allow_nan=False), min_size=1, max_size=5)


@given(harmonics=harmonic_dicts, theta=st.floats(-10.0, 10.0))
def test_fourier_pair_force_is_odd(harmonics, theta):
    pot = FourierPotential(harmonics)
    assert pot.pair_force(-theta) == pytest.approx(-pot.pair_force(theta), abs=1e-12)
    assert pot(-theta) == pytest.approx(pot(theta), abs=1e-12)


@given(eps=st.floats(0.01, 3.0), theta=st.floats(-10.0, 10.0))
def test_ring_pair_force_is_odd_and_attractive(eps, theta):
    ring = RingModel(eps)
    f = ring.pair_force(theta)
    assert f == pytest.approx(-ring.pair_force(-theta), rel=1e-12, abs=1e-300)
    # attraction: the force pulls towards dtheta = 0 (mod 2 pi)
    assert f * math.sin(theta) <= 0.0


# --- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [-0.1, 0.0, float("nan"), float("inf")])
def test_ring_rejects_bad_softening(bad):
    with pytest.raises(ValueError, match="softening"):
        RingModel(bad)


@pytest.mark.parametrize("pot", [HMF(), RingModel(0.5), DiracComb(2)], ids=repr)
def test_bad_kmax(pot):
    for bad in (0, -3):
        with pytest.raises(ValueError, match="kmax"):
            pot.coefficients(bad)
        with pytest.raises(ValueError, match="kmax"):
            pot.attractive_max(bad)
    for bad in (2.5, 3.0, True, "4"):
        with pytest.raises(TypeError, match="kmax"):
            pot.coefficients(bad)


def test_bad_fourier_and_comb_input():
    with pytest.raises(ValueError, match="harmonics"):
        FourierPotential({})
    with pytest.raises(ValueError, match="harmonic index k"):
        FourierPotential({-1: 0.5})
    with pytest.raises(ValueError, match="U_2"):
        FourierPotential({2: float("nan")})
    with pytest.raises(ValueError, match="k >= 1"):
        FourierPotential({0: 1.0})
    with pytest.raises(ValueError, match="k0"):
        DiracComb(0)
    with pytest.raises(ValueError, match="amplitude"):
        DiracComb(2, float("inf"))
    with pytest.raises(ValueError, match="unknown potential"):
        potential_from_dict({"name": "coulomb"})


# ================================================================================================
# velocity distributions
# ================================================================================================
def generalized_gaussian_moment(n, sigma, p):
    """Oracle: <|v|^p> = s^p Gamma((p+1)/n) / Gamma(1/n), s^2 = sigma^2 Gamma(1/n) / Gamma(3/n)."""
    s = sigma * math.sqrt(math.gamma(1 / n) / math.gamma(3 / n))
    return s**p * math.gamma((p + 1) / n) / math.gamma(1 / n)


def quad_moment(df, p, center=0.0):
    """Oracle: int (v - center)^p phi dv by scipy quadrature (piecewise on a tabulated grid)."""
    if isinstance(df, Tabulated):
        edges = df.grid
    else:
        edges = np.linspace(-40 * df.sigma, 40 * df.sigma, 81)
    return sum(integrate.quad(lambda v: (v - center) ** p * float(df.pdf(v)), a, b, epsabs=1e-14, limit=200)[0]
               for a, b in zip(edges[:-1], edges[1:]))


TAB_V = np.linspace(-4.0, 4.0, 61)
DISTRIBUTIONS = {
    "gaussian": Gaussian(1.3),
    "gg4": GeneralizedGaussian(4.0, 0.8),
    "gg3": GeneralizedGaussian(3.0, 1.0),
    "tabulated_even": Tabulated(TAB_V, np.exp(-np.abs(TAB_V) ** 3)),
    "tabulated_skewed": Tabulated(TAB_V, np.exp(-0.5 * TAB_V**2) * (1 + 0.5 * np.tanh(TAB_V))),
}


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_sampled_moments(name):
    df = DISTRIBUTIONS[name]
    x = df.sample(12345, 10**6)
    assert x.dtype == np.float64 and x.shape == (10**6,)
    n = x.size
    if isinstance(df, GeneralizedGaussian):
        m2 = generalized_gaussian_moment(df.n, df.sigma, 2)
        m4 = generalized_gaussian_moment(df.n, df.sigma, 4)
        m8 = generalized_gaussian_moment(df.n, df.sigma, 8)
        mean = 0.0
        assert m2 == pytest.approx(df.sigma**2, rel=1e-12)
    else:
        mean = quad_moment(df, 1)
        m2, m4, m8 = (quad_moment(df, p, mean) for p in (2, 4, 8))
        assert df.mean == pytest.approx(mean, abs=1e-10)
        assert df.sigma**2 == pytest.approx(m2, rel=1e-8)
    c = x - mean
    z_mean = (x.mean() - mean) / math.sqrt(m2 / n)
    z_var = (np.mean(c**2) - m2) / math.sqrt((m4 - m2**2) / n)
    z_m4 = (np.mean(c**4) - m4) / math.sqrt((m8 - m4**2) / n)
    assert max(abs(z_mean), abs(z_var), abs(z_m4)) < 5.0, (z_mean, z_var, z_m4)


def test_sampling_is_reproducible_and_accepts_generators_and_jax_keys():
    df = GeneralizedGaussian(4.0)
    np.testing.assert_array_equal(df.sample(7, (3, 4)), df.sample(np.random.default_rng(7), (3, 4)))
    assert df.sample(7, (3, 4)).shape == (3, 4)
    import jax

    key = jax.random.PRNGKey(3)
    a, b = df.sample(key, 5), df.sample(key, 5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, df.sample(jax.random.PRNGKey(4), 5))
    with pytest.raises(TypeError, match="seed_or_key"):
        df.sample(1.5, 3)


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_pdf_normalised_and_dpdf_matches_finite_differences(name):
    df = DISTRIBUTIONS[name]
    assert quad_moment(df, 0) == pytest.approx(1.0, abs=1e-10)
    # away from the grid nodes of a tabulated pdf (PCHIP is C1; central differences are fine)
    v = np.linspace(-3.3, 3.3, 67) + 0.0123
    h = 1e-6
    fd = (df.pdf(v + h) - df.pdf(v - h)) / (2 * h)
    np.testing.assert_allclose(df.dpdf(v), fd, atol=1e-7)


def test_generalized_gaussian_special_cases():
    v = np.linspace(-5, 5, 101)
    np.testing.assert_allclose(GeneralizedGaussian(2.0, 1.7).pdf(v), Gaussian(1.7).pdf(v), rtol=1e-13)
    np.testing.assert_allclose(GeneralizedGaussian(2.0, 1.7).dpdf(v), Gaussian(1.7).dpdf(v), rtol=1e-12, atol=1e-300)
    assert GeneralizedGaussian(4.0).dpdf(0.0) == 0.0
    assert Gaussian().is_even and DISTRIBUTIONS["tabulated_even"].is_even
    assert not DISTRIBUTIONS["tabulated_skewed"].is_even


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_distribution_round_trip(name):
    df = DISTRIBUTIONS[name]
    back = distribution_from_dict(df.parameters())
    assert type(back) is type(df)
    v = np.linspace(-3, 3, 31)
    np.testing.assert_allclose(back.pdf(v), df.pdf(v), rtol=1e-12)


@given(n=st.floats(1.0, 8.0), sigma=st.floats(0.1, 10.0))
def test_generalized_gaussian_variance_by_quadrature(n, sigma):
    df = GeneralizedGaussian(n, sigma)
    norm = 2 * integrate.quad(lambda v: float(df.pdf(v)), 0, np.inf, epsabs=0, epsrel=1e-11)[0]
    var = 2 * integrate.quad(lambda v: v * v * float(df.pdf(v)), 0, np.inf, epsabs=0, epsrel=1e-11)[0]
    assert norm == pytest.approx(1.0, rel=1e-9)
    assert var == pytest.approx(sigma**2, rel=1e-9)


# --- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_n(bad):
    with pytest.raises(ValueError, match="n must"):
        GeneralizedGaussian(bad)


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan")])
def test_bad_sigma(bad):
    with pytest.raises(ValueError, match="sigma"):
        GeneralizedGaussian(4.0, bad)
    with pytest.raises(ValueError, match="sigma"):
        Gaussian(bad)


def test_bad_tabulated_input():
    v = np.linspace(-3, 3, 13)
    good = np.exp(-(v**2))
    with pytest.raises(ValueError, match="pdf must be >= 0"):
        Tabulated(v, np.where(v == 1.0, -0.1, good))
    with pytest.raises(ValueError, match="pdf must be finite"):
        Tabulated(v, np.where(v == 0.5, np.nan, good))
    with pytest.raises(ValueError, match="pdf is not normalisable"):
        Tabulated(v, np.zeros_like(v))
    with pytest.raises(ValueError, match="v must be finite and strictly increasing"):
        Tabulated(v[::-1], good)
    with pytest.raises(ValueError, match="v must be finite and strictly increasing"):
        Tabulated(np.concatenate([v[:5], v[4:-1]]), good)
    with pytest.raises(ValueError, match="v and pdf"):
        Tabulated(v, good[:-1])
    with pytest.raises(ValueError, match="unknown distribution"):
        distribution_from_dict({"name": "kappa"})


def test_derivatives_of_smooth_profiles_match_finite_differences():
    from numerics.models.distributions import GeneralizedGaussian, Shifted, Tabulated

    v = np.linspace(-3, 3, 13)
    h = 1e-4
    g = GeneralizedGaussian(4, 1.3)
    for k in range(1, 4):
        fd = (g.derivative(v + h, k - 1) - g.derivative(v - h, k - 1)) / (2 * h)
        np.testing.assert_allclose(g.derivative(v, k), fd, atol=1e-7)
    s = Shifted(g, 0.4)
    np.testing.assert_allclose(s.derivative(v, 3), g.derivative(v - 0.4, 3))
    assert s.mean == pytest.approx(0.4) and s.sigma == g.sigma and not s.is_even
    grid = np.linspace(-6, 6, 241)
    t = Tabulated(grid, np.exp(-grid**2 / 2))
    np.testing.assert_allclose(t.derivative(v, 2), (v**2 - 1) * np.exp(-v**2 / 2) / np.sqrt(2 * np.pi), atol=1e-6)
    with pytest.raises(ValueError, match="n = 3 is not infinitely differentiable"):
        GeneralizedGaussian(3).derivative(v, 2)
    with pytest.raises(ValueError, match="order must be an integer >= 0"):
        g.derivative(v, -1)


def test_shifted_round_trips_and_keeps_its_threshold():
    from numerics.models.distributions import Gaussian, Shifted, distribution_from_dict
    from numerics.models.stability import critical_Q

    s = Shifted(Gaussian(1.5), -0.7)
    back = distribution_from_dict(s.parameters())
    assert back.parameters() == s.parameters()
    assert critical_Q(s) == pytest.approx(critical_Q(Gaussian(1.5)))
    x = s.sample(3, 20000)
    assert abs(x.mean() + 0.7) < 0.05
