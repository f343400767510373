"""Linear stability: Q, Q_c, the dielectric function and the stability guard.

Oracles (independent of the library code):
* closed forms for Q_c: 1 for the Gaussian, n Gamma(1-1/n) Gamma(3/n) / Gamma(1/n)^2 for the
  generalised Gaussian;
* the plasma dispersion function Z(zeta) = i sqrt(pi) w(zeta) (scipy's Faddeeva function) for a
  Maxwellian. Derivation of the oracle used below (k > 0, phi Gaussian of dispersion s):
  phi' = -v phi / s^2, and with v/(v - c) = 1 + c/(v - c),
  int phi'(v)/(v - c - i0) dv = -(1/s^2) [1 + zeta Z(zeta)], zeta = c/(sqrt 2 s), so
  eps_k(omega) = 1 - (M U_k / s^2) [1 + zeta Z(zeta)],  zeta = omega / (sqrt 2 |k| s).
  (Note the minus sign: at omega = 0, Z(0) = i sqrt(pi), so this gives 1 - U_k / s^2, which is
  1 - 1/Q = 0.5 for the HMF at s = 1; a plus sign would give 1.5.)
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import gamma, wofz

import numerics
from numerics.models import (
    HMF,
    DiracComb,
    FourierPotential,
    Gaussian,
    GeneralizedGaussian,
    RingModel,
    Tabulated,
)
from numerics.models import Shifted
from numerics.models.stability import (Q, check_stable, collective_indicator, critical_Q, dielectric,
                                       statically_dressed)


def plasma_Z(zeta):
    return 1j * math.sqrt(math.pi) * wofz(zeta)


def maxwellian_eps(u_k, k, sigma, omega):
    zeta = np.asarray(omega, dtype=float) / (math.sqrt(2.0) * abs(k) * sigma)
    return 1.0 - (u_k / sigma**2) * (1.0 + zeta * plasma_Z(zeta))


def qc_generalized_gaussian(n):
    return n * gamma(1.0 - 1.0 / n) * gamma(3.0 / n) / gamma(1.0 / n) ** 2


# --- Q ------------------------------------------------------------------------------------------
def test_public_surface():
    for name in ("Q", "critical_Q", "dielectric", "check_stable", "collective_indicator", "statically_dressed"):
        assert getattr(numerics, name) is getattr(numerics.models, name)


def test_Q_hmf_and_fourier():
    assert Q(HMF(), Gaussian(1.0)) == pytest.approx(2.0, rel=1e-15)
    assert Q(HMF(), Gaussian(2.0)) == pytest.approx(8.0, rel=1e-15)
    # U* is the largest harmonic, not the first
    assert Q(FourierPotential({1: 0.1, 3: 0.4, 5: -1.0}), GeneralizedGaussian(4, 0.5)) == pytest.approx(0.25 / 0.4)
    # ring model: U_1 is the largest harmonic
    ring = RingModel(0.5)
    assert Q(ring, Gaussian(1.0), kmax=20) == pytest.approx(1.0 / ring.coefficients(20)[1], rel=1e-14)


def test_Q_is_infinite_without_attraction():
    assert Q(FourierPotential({1: -0.5, 2: 0.0}), Gaussian()) == math.inf
    assert check_stable(FourierPotential({1: -0.5}), Gaussian()) == (math.inf, pytest.approx(1.0))


# --- Q_c ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5])
def test_critical_Q_gaussian_is_one(sigma):
    assert critical_Q(Gaussian(sigma)) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("n", [1.5, 2.0, 3.0, 4.0, 6.0, 10.0])
def test_critical_Q_generalized_gaussian_closed_form(n):
    assert critical_Q(GeneralizedGaussian(n, 1.3)) == pytest.approx(qc_generalized_gaussian(n), rel=1e-10)


def test_critical_Q_n4_value():
    assert critical_Q(GeneralizedGaussian(4.0)) == pytest.approx(0.45695, abs=5e-6)


def test_critical_Q_cusp_is_infinite():
    # n <= 1: a cusp at v = 0, -phi'(v)/v ~ 1/|v| is not integrable: unstable at every Q
    assert critical_Q(GeneralizedGaussian(1.0)) == math.inf
    assert critical_Q(GeneralizedGaussian(0.5)) == math.inf
    with pytest.raises(ValueError, match="unstable"):
        check_stable(HMF(), GeneralizedGaussian(1.0, 100.0))


def test_critical_Q_tabulated_gaussian():
    v = np.linspace(-9, 9, 1201)
    tab = Tabulated(v, np.exp(-0.5 * v**2))
    # PCHIP interpolation error only (the principal value of the interpolant is exact); PCHIP's
    # slopes next to the peak are O(1)-relative wrong, so Q_c converges like O(h): 1.4e-3 here
    assert critical_Q(tab) == pytest.approx(1.0, abs=2e-3)
    v4 = np.linspace(-3, 3, 1201)
    tab4 = Tabulated(v4, GeneralizedGaussian(4.0).pdf(v4))
    assert critical_Q(tab4) == pytest.approx(qc_generalized_gaussian(4.0), abs=2e-3)


def test_critical_Q_rejects_profiles_outside_the_criterion():
    v = np.linspace(-5, 5, 201)
    shifted = Tabulated(v, np.exp(-0.5 * (v - 0.7) ** 2))
    with pytest.raises(ValueError, match="single-humped"):
        critical_Q(shifted)
    two_humps = Tabulated(v, np.exp(-2 * (v - 1.5) ** 2) + np.exp(-2 * (v + 1.5) ** 2))
    with pytest.raises(ValueError, match="single-humped"):
        critical_Q(two_humps)
    positive_only = Tabulated(np.linspace(0.5, 4, 50), np.exp(-np.linspace(0.5, 4, 50)))
    with pytest.raises(ValueError, match="v = 0"):
        critical_Q(positive_only)


def test_critical_Q_non_even_but_peaked_at_zero():
    # skewed, single-humped, maximum at v = 0: the criterion applies. Oracle: the
    # principal value of the interpolant by piecewise quadrature.
    from scipy.integrate import quad

    v = np.concatenate([np.linspace(-4, 0, 161), np.linspace(0, 6, 241)[1:]])
    p = np.where(v < 0, np.exp(-v**2), np.exp(-0.25 * v**2))
    tab = Tabulated(v, p)
    assert not tab.is_even
    total = 0.0
    for a, b in zip(v[:-1], v[1:]):
        if a == 0.0 or b == 0.0:  # phi'(0) = 0: -phi'(v)/v is regular, but split at 0
            total += quad(lambda x: -float(tab.dpdf(x)) / x if x != 0 else 0.0, a, b, epsabs=1e-14)[0]
        else:
            total += quad(lambda x: -float(tab.dpdf(x)) / x, a, b, epsabs=1e-14)[0]
    # end steps of the truncated table: phi' contains phi(a) delta(v - a) - phi(b) delta(v - b)
    total += -tab.values[0] / v[0] + tab.values[-1] / v[-1]
    assert critical_Q(tab) == pytest.approx(tab.sigma**2 * total, rel=1e-8)


# --- dielectric ---------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [1.0, 0.6])
@pytest.mark.parametrize("k", [1, -1, 2, -3])
def test_dielectric_gaussian_against_plasma_dispersion_function(sigma, k):
    pot = FourierPotential({1: 0.5, 2: 0.3, 3: 0.2})
    u_k = pot.coefficients(3)[abs(k)]
    omega = np.linspace(-6, 6, 25)
    eps = dielectric(pot, Gaussian(sigma), k, omega)
    assert eps.shape == omega.shape and eps.dtype == np.complex128
    np.testing.assert_allclose(eps, maxwellian_eps(u_k, k, sigma, omega), rtol=0, atol=1e-12)


def test_plasma_oracle_itself_at_zero_frequency():
    # the oracle formula gives 1 - 1/Q for HMF at sigma = 1: 1 - U_1 = 0.5
    assert maxwellian_eps(0.5, 1, 1.0, 0.0) == pytest.approx(0.5 + 0j, abs=1e-15)


@pytest.mark.parametrize("sigma", [0.8, 1.0, 1.7])
def test_dielectric_at_zero_is_one_minus_inverse_Q(sigma):
    df = Gaussian(sigma)
    for pot in (HMF(), RingModel(0.5)):
        q = Q(pot, df, kmax=30)
        eps0 = dielectric(pot, df, 1, 0.0)  # k = 1 is the most attractive harmonic of both
        assert np.iscomplexobj(eps0) and np.ndim(eps0) == 0
        assert eps0 == pytest.approx(1.0 - 1.0 / q, abs=1e-13)
    assert dielectric(HMF(), Gaussian(1.0), 1, 0.0) == pytest.approx(0.5, abs=1e-14)


def test_marginal_stability_at_critical_Q_generalized_gaussian():
    # choose sigma so that Q = Q_c (closed form) for HMF: sigma^2 = Q_c U_1
    n = 4.0
    qc = qc_generalized_gaussian(n)
    df = GeneralizedGaussian(n, math.sqrt(qc * 0.5))
    assert Q(HMF(), df) == pytest.approx(qc, rel=1e-14)
    assert critical_Q(df) == pytest.approx(qc, rel=1e-10)
    assert abs(dielectric(HMF(), df, 1, 0.0)) < 1e-10
    # hotter: eps(0) > 0, colder: eps(0) < 0
    assert dielectric(HMF(), GeneralizedGaussian(n, 1.05 * df.sigma), 1, 0.0).real > 0
    assert dielectric(HMF(), GeneralizedGaussian(n, 0.95 * df.sigma), 1, 0.0).real < 0


def test_dielectric_symmetries_and_landau_sign():
    pot, df = HMF(), GeneralizedGaussian(4.0, 1.0)
    omega = np.array([0.3, 1.0, 2.2])
    e_plus = dielectric(pot, df, 1, omega)
    # even phi: eps_{-k}(omega) = eps_k(omega); reality: eps_k(-omega) = conj(eps_k(omega))
    np.testing.assert_allclose(dielectric(pot, df, -1, omega), e_plus, atol=1e-13)
    np.testing.assert_allclose(dielectric(pot, df, 1, -omega), np.conj(e_plus), atol=1e-13)
    # Landau part: Im eps = M U_k pi sgn(k) phi'(omega/k) < 0 for omega/k > 0 (Landau damping)
    assert np.all(e_plus.imag < 0)
    np.testing.assert_allclose(e_plus.imag, 0.5 * math.pi * df.dpdf(omega), rtol=1e-14)


def test_dielectric_high_frequency_limit():
    # omega >> k sigma: eps -> 1 + M U_k k^2 / omega^2 (1 + 3 k^2 sigma^2 / omega^2 + ...)
    # (attractive interaction: the Jeans sign, opposite to a plasma's 1 - omega_p^2 / omega^2)
    omega = 60.0
    eps = dielectric(HMF(), GeneralizedGaussian(3.0), 1, omega)
    assert eps.real - 1.0 == pytest.approx(0.5 / omega**2 * (1 + 3 / omega**2), rel=1e-5)
    assert eps.imag == pytest.approx(0.0, abs=1e-300)


def test_dielectric_tabulated_against_gaussian():
    v = np.linspace(-9, 9, 1201)
    tab = Tabulated(v, np.exp(-0.5 * v**2))
    omega = np.linspace(-4, 4, 17)
    np.testing.assert_allclose(dielectric(HMF(), tab, 1, omega), maxwellian_eps(0.5, 1, 1.0, omega), atol=2e-3)


def test_dielectric_truncated_potential_and_dirac_comb():
    # a harmonic above kmax is absent from the truncated potential: eps = 1
    assert dielectric(RingModel(0.1), Gaussian(), 12, 0.4, kmax=10) == 1.0
    comb = DiracComb(2, 0.25)
    assert dielectric(comb, Gaussian(), 3, 0.0) == 1.0
    assert dielectric(comb, Gaussian(), 4, 0.0) == pytest.approx(0.75)


@pytest.mark.parametrize("bad_k", [0, 1.0, 1.5, True, "1", None])
def test_dielectric_rejects_bad_k(bad_k):
    with pytest.raises(ValueError, match="k must be a non-zero integer"):
        dielectric(HMF(), Gaussian(), bad_k, 0.1)


def test_dielectric_rejects_complex_or_nonfinite_omega():
    with pytest.raises(ValueError, match="omega"):
        dielectric(HMF(), Gaussian(), 1, 0.1 + 0.2j)
    with pytest.raises(ValueError, match="omega"):
        dielectric(HMF(), Gaussian(), 1, [0.0, np.nan])


@given(n=st.floats(1.2, 8.0), sigma=st.floats(0.3, 3.0))
def test_static_dielectric_matches_Q_over_Qc(n, sigma):
    # eps_1(0) = 1 - Q_c / Q for the HMF, at any n and sigma
    df = GeneralizedGaussian(n, sigma)
    eps0 = dielectric(HMF(), df, 1, 0.0)
    assert eps0.imag == 0.0
    assert eps0.real == pytest.approx(1.0 - qc_generalized_gaussian(n) / Q(HMF(), df), abs=1e-9)


# --- check_stable -------------------------------------------------------------------------------
def test_check_stable_returns_Q_and_Qc():
    q, qc = check_stable(HMF(), GeneralizedGaussian(4.0, 1.0))
    assert q == pytest.approx(2.0) and qc == pytest.approx(qc_generalized_gaussian(4.0), rel=1e-10)


@pytest.mark.parametrize("df", [Gaussian(0.7), GeneralizedGaussian(4.0, 0.4), GeneralizedGaussian(3.0, 0.5)])
def test_check_stable_raises_below_threshold(df):
    with pytest.raises(ValueError, match=r"Q = .* <= Q_c = .*linearly unstable.*hot-limit theory does not apply"):
        check_stable(HMF(), df)


def test_dielectric_reality_condition_for_a_skewed_profile():
    # real potential and real phi: eps_{-k}(-omega) = conj(eps_k(omega)), even when phi is not even
    v = np.linspace(-5, 5, 201)
    tab = Tabulated(v, np.exp(-0.5 * v**2) * (1 + 0.5 * np.tanh(v)))
    pot = FourierPotential({1: 0.2, 2: 0.1})
    omega = np.array([-1.3, -0.2, 0.0, 0.45, 2.0])
    for k in (1, 2):
        np.testing.assert_allclose(dielectric(pot, tab, -k, -omega), np.conj(dielectric(pot, tab, k, omega)),
                                   atol=1e-13)
    # not symmetric in k alone: the profile is skewed
    assert not np.allclose(dielectric(pot, tab, -1, omega), dielectric(pot, tab, 1, omega))


# --- collective indicator ---------------------------------------------------------------------
@pytest.mark.parametrize("q", [2.0, 4.0, 8.8])
@pytest.mark.parametrize("potential", [HMF(), RingModel(0.5), FourierPotential({1: 0.2, 2: 0.5, 3: -0.1})])
def test_collective_indicator_is_static_dressing_of_the_strongest_harmonic(potential, q):
    """For an even single-humped profile the indicator is (1 - Q_c/Q)^-4 at the most attractive
    harmonic, whatever the potential (PV of phi'/v is k-independent); a shifted profile gives the
    same value at omega = k vbar (Galilean invariance of eps)."""
    u_star = potential.attractive_max(10)
    n = 4.0
    sigma = math.sqrt(q * u_star)
    df = GeneralizedGaussian(n, sigma=sigma)
    got = collective_indicator(potential, df, kmax=10)
    k_star = int(np.argmax(potential.coefficients(10)[1:])) + 1
    assert got["k"] == k_star and got["omega"] == 0.0
    assert got["indicator"] == pytest.approx((1.0 - qc_generalized_gaussian(n) / q) ** -4, rel=1e-8)
    shifted = collective_indicator(potential, Shifted(df, 0.37), kmax=10)
    assert shifted["omega"] == pytest.approx(0.37 * k_star)
    assert shifted["indicator"] == pytest.approx(got["indicator"], rel=1e-8)


@pytest.mark.parametrize("static_dressing", [collective_indicator, statically_dressed])
def test_static_dressing_refuses_marginal_and_unstable_states_and_bad_kmax(static_dressing):
    qc = qc_generalized_gaussian(4.0)
    for q in (qc, 0.8 * qc):
        df = GeneralizedGaussian(4.0, sigma=math.sqrt(q * 0.5))
        with pytest.raises(ValueError, match="Q <= Q_c"):
            static_dressing(HMF(), df)
    df = GeneralizedGaussian(4.0, sigma=2.0)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="kmax"):
            static_dressing(HMF(), df, kmax=bad)


def test_collective_indicator_of_a_repulsive_potential_is_below_one():
    """No attractive harmonic: screening."""
    assert collective_indicator(FourierPotential({1: -0.5}), GeneralizedGaussian(4.0, sigma=2.0))["indicator"] < 1.0


# --- static dressing (a heuristic) ----------------------------------------------------------------
@pytest.mark.parametrize("q", [2.0, 8.8])
@pytest.mark.parametrize("potential", [HMF(), RingModel(0.5), FourierPotential({1: 0.2, 2: 0.5, 3: -0.1})])
def test_statically_dressed_divides_each_harmonic_by_its_static_eps(potential, q):
    """For an even single-humped profile eps_k(0) = 1 - (U_k / U*) Q_c / Q (the PV of phi'/v is
    k-independent), so each harmonic is U_k / (1 - (U_k/U*) Q_c/Q); repulsive harmonics are
    screened (|eps| > 1); a shifted profile is dressed at omega = k vbar, to the same values."""
    u = potential.coefficients(10)
    n = 4.0
    df = GeneralizedGaussian(n, sigma=math.sqrt(q * potential.attractive_max(10)))
    x = qc_generalized_gaussian(n) / q
    dressed = statically_dressed(potential, df, kmax=10)
    assert isinstance(dressed, FourierPotential)
    expected = np.array([0.0] + [u[k] / (1.0 - u[k] / u[1:].max() * x) for k in range(1, 11)])
    np.testing.assert_allclose(dressed.coefficients(10), expected, rtol=1e-9, atol=1e-15)
    screened = u[1:] < 0
    assert np.all(np.abs(dressed.coefficients(10)[1:][screened]) < np.abs(u[1:][screened]))
    np.testing.assert_allclose(statically_dressed(potential, Shifted(df, 0.37), kmax=10).coefficients(10),
                               expected, rtol=1e-8, atol=1e-15)


def test_statically_dressed_keeps_the_harmonics_up_to_kmax():
    df = GeneralizedGaussian(4.0, sigma=2.0)
    with pytest.raises(ValueError, match="no non-zero harmonic 1..2"):
        statically_dressed(FourierPotential({3: 0.5}), df, kmax=2)
    # only the harmonics up to kmax are kept
    assert statically_dressed(RingModel(0.5), df, kmax=3).kmax_exact == 3
