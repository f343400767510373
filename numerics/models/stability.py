"""Linear (Vlasov) stability of the homogeneous state: Q, Q_c and the dielectric function.

Conventions (PHYSICS.md, section 1): total mass M = 1, pair potential
U(theta) = -sum_k U_k exp(i k theta) with U_k > 0 attractive, velocity PDF phi(v) with
int phi dv = 1 and dispersion sigma^2 = int v^2 phi dv.

* ``Q = sigma^2 / (M U*)`` with ``U* = max_{k>=1} U_k``: large Q = dynamically hot.
* ``Q_c = -int phi_hat'(u) / u du`` for the unit-variance profile phi_hat(u) = sigma phi(sigma u);
  an even (more generally: peaked at v = 0) single-humped phi is linearly stable iff Q > Q_c.
* ``eps_k(omega) = 1 - M U_k int dv k phi'(v) / (omega - k v)``, omega -> omega + i0 (Landau).

Sign of the Landau (Plemelj) part, derived here once. Write c = omega / k. Then
omega + i0 - k v = -k (v - c - i0 sgn(k)), so

    k phi'(v) / (omega + i0 - k v) = -phi'(v) / (v - c - i0 sgn(k)),

and 1 / (x - i0 s) = P(1/x) + i pi s delta(x) for s = +-1. Hence

    eps_k(omega) = 1 + M U_k [ P int phi'(v) / (v - c) dv + i pi sgn(k) phi'(c) ],   c = omega / k.

At omega = 0 and an even phi this is 1 - M U_k Q_c / sigma^2, i.e. 1 - Q_c / Q for the most
attractive harmonic: the marginal stability point eps_k(0) = 0 is Q = Q_c.
For the Maxwellian this is the plasma-dispersion form
eps_k(omega) = 1 - (M U_k / sigma^2) [1 + zeta Z(zeta)], zeta = omega / (sqrt(2) |k| sigma)
(tested against scipy's Faddeeva function).

No SymPy: quadrature (scipy) for analytic profiles, exact piecewise-polynomial integrals for
:class:`~numerics.models.distributions.Tabulated`.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import integrate

from numerics.models.distributions import GeneralizedGaussian, Shifted, Tabulated, VelocityDistribution
from numerics.models.potentials import FourierPotential, Potential

#: total mass of the system (PHYSICS.md: M = 1 everywhere)
TOTAL_MASS = 1.0

__all__ = ["TOTAL_MASS", "Q", "critical_Q", "dielectric", "check_stable", "collective_indicator",
           "statically_dressed"]

# quadrature tolerances for the principal values (absolute, in units of 1/sigma^2)
_EPSABS = 1e-13
_EPSREL = 1e-11
_LIMIT = 400


# --------------------------------------------------------------------------------------------
# Q and Q_c
# --------------------------------------------------------------------------------------------
def Q(potential: Potential, df: VelocityDistribution, kmax: int | None = None) -> float:
    """Stability parameter Q = sigma^2 / (M U*), U* = max_{k>=1} U_k (``potential.attractive_max``).

    ``sigma`` is ``df.sigma`` (dispersion about the mean), M = 1. ``kmax`` truncates the
    potential as in :meth:`Potential.attractive_max` (default: its exact range, or 64).

    Returns ``math.inf`` when U* <= 0: with no attractive harmonic there is no Jeans-type
    instability, the system is "infinitely hot" in this sense, and Q > Q_c holds for any profile.
    """
    u_star = potential.attractive_max(kmax)
    if not u_star > 0.0:
        return math.inf
    return float(df.sigma) ** 2 / (TOTAL_MASS * u_star)


def critical_Q(df: VelocityDistribution) -> float:
    """Q_c = -int phi_hat'(u) / u du for the unit-variance profile phi_hat(u) = sigma phi(sigma u).

    Equivalently Q_c = -sigma^2 P int phi'(v) / v dv. The homogeneous state with this
    profile is linearly stable iff Q > Q_c (Penrose criterion for a single-humped profile whose
    maximum is at v = 0). Expected: 1 for the Gaussian, n Gamma(1-1/n) Gamma(3/n) / Gamma(1/n)^2
    for the generalised Gaussian of index n > 1.

    Returns ``math.inf`` for a generalised Gaussian with n <= 1: its cusp at v = 0 makes the
    integral diverge (eps_k(0) = -inf), so the state is unstable at every Q.

    Raises ValueError when the criterion does not apply: the profile is not single-humped with
    its maximum at v = 0 (phi'(0) != 0, phi' changes sign more than once, or v = 0 lies outside
    the support).
    """
    if isinstance(df, Shifted):  # Galilean invariance: the threshold of the unshifted profile
        return critical_Q(df.base)
    if isinstance(df, GeneralizedGaussian) and df.n <= 1.0:
        return math.inf
    _require_single_hump_at_zero(df)
    pv = float(_principal_value(df, np.zeros(1))[0])
    return -float(df.sigma) ** 2 * pv


def check_stable(potential: Potential, df: VelocityDistribution, kmax: int | None = None):
    """Return (Q, Q_c) if Q > Q_c; raise ValueError otherwise.

    The hot-limit (collective effects neglected) kinetic theory needs a linearly stable
    homogeneous state, well above threshold; this is the guard later code calls.
    With no attractive harmonic (Q = inf) the state is stable whatever Q_c is.
    """
    q = Q(potential, df, kmax)
    q_c = critical_Q(df)
    if math.isinf(q) and q > 0:
        return q, q_c
    if q <= q_c:
        raise ValueError(
            f"{potential!r} with {df!r}: Q = {q:.6g} <= Q_c = {q_c:.6g}: the homogeneous state is "
            "linearly unstable and the hot-limit theory does not apply (increase sigma or weaken "
            "the potential so that Q > Q_c, preferably Q >= 2-4 Q_c)"
        )
    return q, q_c


# --------------------------------------------------------------------------------------------
# dielectric function
# --------------------------------------------------------------------------------------------
def dielectric(potential: Potential, df: VelocityDistribution, k: int, omega, kmax: int | None = None):
    """Bare dielectric function eps_k(omega) = 1 - M U_k int dv k phi'(v) / (omega - k v).

    Landau prescription omega -> omega + i0, evaluated with the Plemelj formula (derivation in
    the module docstring):

        eps_k(omega) = 1 + M U_k [ P int phi'(v)/(v - c) dv + i pi sgn(k) phi'(c) ],  c = omega/k.

    ``k``: non-zero integer harmonic (negative k allowed; U_{-k} = U_k).
    ``omega``: real frequency, scalar or array (vectorised; result has its shape, complex128).
    ``kmax``: truncation of the potential; harmonics with |k| > kmax are zero in the truncated
    potential, so eps = 1 there. Default: no truncation.

    A :class:`Tabulated` profile is zero outside its grid; the jumps of phi at the grid ends
    (if the table does not end at zero) are part of phi' and are included.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k == 0:
        raise ValueError(f"k must be a non-zero integer harmonic index, got {k!r}")
    k = int(k)
    kabs = abs(k)
    if kmax is not None:
        kmax = int(kmax) if isinstance(kmax, (int, np.integer)) and not isinstance(kmax, bool) else kmax
        if not isinstance(kmax, int) or kmax < 1:
            raise ValueError(f"kmax must be an integer >= 1 or None, got {kmax!r}")
    u_k = 0.0 if (kmax is not None and kabs > kmax) else float(potential.coefficients(kabs)[kabs])

    omega_arr = np.asarray(omega)
    if np.iscomplexobj(omega_arr):
        if np.any(omega_arr.imag != 0):
            raise ValueError("omega must be real: the Landau prescription omega -> omega + i0 is "
                             "applied internally")
        omega_arr = omega_arr.real
    omega_arr = np.asarray(omega_arr, dtype=float)
    if not np.all(np.isfinite(omega_arr)):
        raise ValueError("omega must be finite")
    c = omega_arr.ravel() / k
    pv = _principal_value(df, c)
    landau = math.pi * np.sign(k) * np.asarray(df.dpdf(c), dtype=float)
    eps = 1.0 + TOTAL_MASS * u_k * (pv + 1j * landau)
    eps = eps.reshape(omega_arr.shape)
    return eps[()] if eps.ndim == 0 else eps


def collective_indicator(potential: Potential, df: VelocityDistribution, kmax: int | None = None) -> dict:
    """How large the collective effects the hot-limit (bare) operators neglect may be: an indicator.

    The three-body flux is quartic in the pair couplings U_k. Dressing each coupling by the
    static dielectric function of its harmonic, U_k -> U_k / eps_k(k vbar) (vbar the mean velocity),
    would scale it by |eps_k(k vbar)|^-4. This returns that factor for the most attractive harmonic
    k* (the largest, since P int phi'(v) / (v - vbar) dv does not depend on k): for an even
    single-humped phi it is (1 - Q_c / Q)^-4. It is a size, not a prediction: the dressed operator
    is not derived here, and N-body fluxes measured against the bare prediction deviate in shape
    too (README, "Q and N dependence").

    ``kmax``: truncation of the potential, as in :func:`Q` (default: its exact range, or 64).
    Returns {"k": k*, "eps": eps_k*(k* vbar) (complex), "indicator": |eps|^-4, "omega": k* vbar}.
    Raises ValueError when Re eps <= 0 there (Q <= Q_c for a single-humped phi: at marginal
    stability the indicator diverges, beyond it the homogeneous state does not persist).
    """
    kmax = _kmax_or_range(potential, kmax)
    coefficients = np.asarray(potential.coefficients(kmax), dtype=float)
    k_star = int(np.argmax(coefficients[1:])) + 1
    omega, eps = _static_eps(potential, df, k_star, kmax)
    return {"k": k_star, "eps": eps, "indicator": abs(eps) ** -4, "omega": omega}


def statically_dressed(potential: Potential, df: VelocityDistribution, kmax: int | None = None) -> FourierPotential:
    """The potential with every harmonic dressed by its static dielectric function, a heuristic.

    U_k -> U_k / |eps_k(k vbar)| for k = 1..kmax (vbar the mean velocity; for an even
    single-humped phi, eps_k(0) = 1 - (U_k / U*) Q_c / Q, real). Putting it into the bare
    operator estimates how much collective dressing at zero frequency would change the flux:
    for one harmonic (HMF) the three-body flux, quartic in U, scales by exactly (1 - Q_c/Q)^-4
    (what :func:`collective_indicator` reports). It is *not* a derived operator: the dressed
    order-1/N^2 operator (dynamic eps_k(omega) at the resonances, and the g2 g2 sources the hot
    limit drops) is not derived here, and ``examples/hot_limit.py --static-dressing`` compares
    this estimate with the measured N -> oo excess (it fails for the ring model, README).

    ``kmax``: harmonics kept (default: the potential's exact range, or 64).
    Raises ValueError when Re eps_k <= 0 for some harmonic (at or beyond marginal stability).
    """
    kmax = _kmax_or_range(potential, kmax)
    coefficients = np.asarray(potential.coefficients(kmax), dtype=float)
    dressed = {k: coefficients[k] / abs(_static_eps(potential, df, k, kmax)[1])
               for k in range(1, kmax + 1) if coefficients[k] != 0.0}
    if not dressed:
        raise ValueError(f"the potential has no non-zero harmonic 1..{kmax} to dress")
    return FourierPotential(dressed)


# --------------------------------------------------------------------------------------------
# internals
# --------------------------------------------------------------------------------------------
def _kmax_or_range(potential: Potential, kmax) -> int:
    """``kmax`` checked, or the potential's exact range (64 for an infinite series) when None."""
    if kmax is None:
        return potential.kmax_exact if potential.kmax_exact is not None else 64
    if isinstance(kmax, bool) or not isinstance(kmax, (int, np.integer)) or kmax < 1:
        raise ValueError(f"kmax must be an integer >= 1 or None, got {kmax!r}")
    return int(kmax)


def _static_eps(potential: Potential, df: VelocityDistribution, k: int, kmax: int) -> tuple[float, complex]:
    """(omega, eps_k(omega)) at omega = k vbar; refused when Re eps <= 0 (Q <= Q_c for a single hump)."""
    omega = k * float(df.mean)
    eps = complex(dielectric(potential, df, k, omega, kmax=kmax))
    if not eps.real > 1e-12:
        raise ValueError(f"eps_{k}({omega:g}) = {eps.real:.3g}{eps.imag:+.3g}i has a real part <= 0: the state is "
                         "at or beyond marginal stability (Q <= Q_c), where collective effects diverge and the "
                         "hot-limit theory does not apply")
    return omega, eps


def _support(df: VelocityDistribution) -> tuple[float, float]:
    """A finite interval outside which phi (and phi') is negligible (< ~1e-20 of its peak)."""
    if isinstance(df, Tabulated):
        return float(df.grid[0]), float(df.grid[-1])
    if isinstance(df, GeneralizedGaussian):
        # exp(-x^n) < 1e-20 for x^n > 46
        half = df.scale * 46.0 ** (1.0 / df.n)
        return -half, half
    # generic profile: widen until the PDF has died off on both sides
    mean, sigma = float(df.mean), float(df.sigma)
    peak = float(np.max(df.pdf(mean + sigma * np.linspace(-5, 5, 201))))
    half = 8.0 * sigma
    for _ in range(40):
        if max(float(df.pdf(mean - half)), float(df.pdf(mean + half))) <= 1e-20 * peak:
            break
        half *= 1.5
    return mean - half, mean + half


def _principal_value(df: VelocityDistribution, c: np.ndarray) -> np.ndarray:
    """P int phi'(v) / (v - c) dv for each real c (phi' in the sense of distributions)."""
    c = np.asarray(c, dtype=float)
    if isinstance(df, Tabulated):
        return _principal_value_tabulated(df, c)
    a, b = _support(df)
    cusp = isinstance(df, GeneralizedGaussian) and df.n <= 1.0
    out = np.empty(c.shape)
    for i, ci in enumerate(c):
        if cusp and ci == 0.0:
            out[i] = -math.inf  # phi' ~ -sign(v)|v|^(n-1): -phi'/v is not integrable at 0
        else:
            out[i] = _principal_value_quad(df.dpdf, a, b, float(ci), float(df.sigma))
    return out


def _principal_value_quad(dphi, a: float, b: float, c: float, sigma: float) -> float:
    """P int_a^b f(v)/(v - c) dv (f = 0 outside [a, b]) by folding about the pole:

        P int_{c-h}^{c+h} f(v)/(v - c) dv = int_0^h [f(c + t) - f(c - t)] / t dt,

    which is an ordinary integral (bounded integrand for Lipschitz f). h covers [a, b].
    """

    def f(v):
        return float(dphi(v)) if a <= v <= b else 0.0

    def integrand(t):
        if t == 0.0:
            return 0.0  # measure zero; the limit is 2 f'(c) but quad never needs it
        return (f(c + t) - f(c - t)) / t

    h = max(b - c, c - a)
    # breakpoints: where phi' has its features (around v = 0, within a few sigma) and the
    # support ends, seen from the pole
    candidates = {abs(c), abs(c - a), abs(c - b)}
    for m in (-4.0, -2.0, -1.0, 1.0, 2.0, 4.0):
        candidates.add(abs(c - m * sigma))
    points = sorted(p for p in candidates if 0.0 < p < h)
    value, _ = integrate.quad(integrand, 0.0, h, points=points or None, epsabs=_EPSABS,
                              epsrel=_EPSREL, limit=_LIMIT)
    return float(value)


def _principal_value_tabulated(df: Tabulated, c: np.ndarray) -> np.ndarray:
    """Exact P int phi'(v)/(v - c) dv for the PCHIP interpolant (piecewise cubic phi).

    On a piece [x_i, x_{i+1}], phi'(v) = A s^2 + B s + C with s = v - x_i; with d = c - x_i,

        int_0^h p(s)/(s - d) ds = A h^2/2 + (B + A d) h + p_i(c) ln|(x_{i+1} - c)/(x_i - c)|.

    The logarithms are regrouped per node, with weight p_{i-1}(c) - p_i(c); it vanishes where
    the pole sits on an interior node (phi' is continuous), so the principal value is finite
    there. phi is zero outside the grid, so its jumps at the ends add
    phi(x_0)/(x_0 - c) - phi(x_m)/(x_m - c).
    """
    from scipy.interpolate import PchipInterpolator

    x = df.grid
    deriv = PchipInterpolator(x, df.values).derivative()
    coef = deriv.c  # (3, m), highest power first, local variable s = v - x_i
    A, B, C = coef[0], coef[1], coef[2]
    h = np.diff(x)
    d = c[:, None] - x[None, :-1]  # (n_c, m)
    poly_part = np.sum(A * h**2 / 2 + (B + A * d) * h, axis=1)
    p_at_c = (A * d + B) * d + C  # each piece's polynomial continued to c
    weights = np.zeros((c.size, x.size))
    weights[:, 1:] += p_at_c
    weights[:, :-1] -= p_at_c
    dist = np.abs(x[None, :] - c[:, None])
    # pole on a node: an interior node's weight vanishes in exact arithmetic (phi' is
    # continuous), so its term is dropped; on an end node with phi' != 0 there, or with a jump
    # of phi, the principal value genuinely diverges and the result is infinite
    drop = dist == 0.0
    drop[:, [0, -1]] &= weights[:, [0, -1]] == 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(drop, 0.0, weights * np.log(dist))
        jumps = np.zeros(c.shape)
        if df.values[0] != 0.0:
            jumps += df.values[0] / (x[0] - c)
        if df.values[-1] != 0.0:
            jumps -= df.values[-1] / (x[-1] - c)
        return poly_part + np.sum(terms, axis=1) + jumps


def _require_single_hump_at_zero(df: VelocityDistribution) -> None:
    """Raise ValueError unless phi is single-humped with its maximum at v = 0."""
    a, b = _support(df)
    if not a < 0.0 < b:
        raise ValueError(
            f"critical_Q needs a single-humped profile peaked at v = 0, but v = 0 lies outside the "
            f"support [{a:.4g}, {b:.4g}] of {df!r}"
        )
    if isinstance(df, Tabulated):
        x = df.grid
        v = np.concatenate([x, 0.5 * (x[1:] + x[:-1]), [0.0]])
    else:
        v = np.concatenate([np.linspace(a, b, 4001), [0.0]])
    slope = np.asarray(df.dpdf(v), dtype=float)
    scale = float(np.max(np.abs(slope)))
    tol = 1e-8 * scale
    slope0 = float(df.dpdf(0.0))
    if abs(slope0) > tol:
        raise ValueError(
            f"critical_Q: phi'(0) = {slope0:.3g} != 0 for {df!r}; Q_c = -int phi_hat'(u)/u du is "
            "the stability criterion only for an even single-humped profile (more generally one "
            "whose single maximum is at v = 0); shift the profile to its peak or use an even one"
        )
    wrong = ((v < 0) & (slope < -tol)) | ((v > 0) & (slope > tol))
    if np.any(wrong):
        bad = v[wrong]
        raise ValueError(
            f"critical_Q: {df!r} is not single-humped about v = 0 (phi' has the wrong sign at "
            f"v = {bad[0]:.4g} and {bad.size - 1} other points); the criterion Q > Q_c with "
            "Q_c = -int phi_hat'(u)/u du needs an even single-humped profile"
        )
