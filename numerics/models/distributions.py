"""Velocity distributions phi(v), normalised to int phi dv = 1.

The one-body DF on phase space is F(theta, v) = M phi(v) / (2 pi) with M = 1.
Every distribution has ``pdf``, ``dpdf`` (d phi / dv), ``sample`` and its dispersion ``sigma``
(sigma^2 = int v^2 phi dv, zero mean unless stated).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np
from scipy import special


def _rng(seed_or_key):
    """A numpy Generator from an int seed, a SeedSequence or a Generator."""
    if isinstance(seed_or_key, np.random.Generator):
        return seed_or_key
    if isinstance(seed_or_key, (np.random.SeedSequence, int, np.integer)) and not isinstance(seed_or_key, bool):
        return np.random.default_rng(seed_or_key)
    raise TypeError("seed_or_key must be an int seed, a numpy SeedSequence/Generator, or a JAX PRNG key; "
                    f"got {type(seed_or_key).__name__}")


def _check_order(order) -> int:
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 0:
        raise ValueError(f"order must be an integer >= 0, got {order!r}")
    return int(order)


def _is_jax_key(obj) -> bool:
    mod = type(obj).__module__
    return mod.startswith("jax") or mod.startswith("jaxlib")


class VelocityDistribution(ABC):
    """A normalised, even or general, velocity PDF."""

    name = "distribution"

    @abstractmethod
    def pdf(self, v): ...

    @abstractmethod
    def dpdf(self, v): ...

    @abstractmethod
    def _sample_numpy(self, rng: np.random.Generator, shape) -> np.ndarray: ...

    @property
    @abstractmethod
    def sigma(self) -> float: ...

    @property
    def mean(self) -> float:
        return 0.0

    @property
    def is_even(self) -> bool:
        return True

    def parameters(self) -> dict:
        return {"name": self.name}

    def derivative(self, v, order: int):
        """d^order phi / dv^order at v (order 0 is the PDF itself). Collision kernels need up to
        the third derivative; subclasses that are smooth enough provide the higher orders."""
        order = _check_order(order)
        if order == 0:
            return self.pdf(v)
        if order == 1:
            return self.dpdf(v)
        raise NotImplementedError(f"{type(self).__name__} provides no derivative of order {order}")

    def support(self, tol: float = 1e-13) -> tuple[float, float]:
        """An interval outside which phi < tol * max(phi) (for quadrature limits)."""
        s, m = self.sigma, self.mean
        grid = m + s * np.linspace(-40.0, 40.0, 8001)
        p = self.pdf(grid)
        keep = np.nonzero(p >= tol * p.max())[0]
        return float(grid[keep[0]]), float(grid[keep[-1]])

    def sample(self, seed_or_key, shape) -> np.ndarray:
        """Draw float64 samples of the given shape.

        ``seed_or_key``: an int seed or numpy Generator (NumPy draw), or a JAX PRNG key (the
        key is folded into a 64-bit seed for the same NumPy sampler, so a key gives the same
        samples on every backend).
        """
        if _is_jax_key(seed_or_key):
            from numerics.backends import jax_module

            jax = jax_module()
            bits = np.asarray(jax.random.bits(seed_or_key, (2,), dtype=np.uint32), dtype=np.uint64)
            seed_or_key = int((bits[0] << np.uint64(32)) | bits[1])
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        return np.asarray(self._sample_numpy(_rng(seed_or_key), shape), dtype=np.float64)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.parameters().items() if k != "name")
        return f"{type(self).__name__}({args})"


class GeneralizedGaussian(VelocityDistribution):
    """phi(v) proportional to exp(-|v/s|^n), with s chosen so that the variance is sigma^2.

    n = 2 is the Maxwellian; n = 4 is the standard flat-topped non-equilibrium profile.
    """

    name = "generalized_gaussian"

    def __init__(self, n: float, sigma: float = 1.0):
        n = float(n)
        sigma = float(sigma)
        if not math.isfinite(n) or n <= 0.0:
            raise ValueError(f"n must be a finite number > 0, got {n}")
        if not math.isfinite(sigma) or sigma <= 0.0:
            raise ValueError(f"sigma must be a finite number > 0, got {sigma}")
        self.n = n
        self._sigma = sigma
        # variance of exp(-|v/s|^n) is s^2 Gamma(3/n) / Gamma(1/n)
        self.scale = sigma * math.sqrt(math.exp(special.gammaln(1.0 / n) - special.gammaln(3.0 / n)))
        self._norm = 1.0 / (2.0 * self.scale * math.gamma(1.0 + 1.0 / n))

    @property
    def sigma(self) -> float:
        return self._sigma

    def parameters(self) -> dict:
        return {"name": self.name, "n": self.n, "sigma": self._sigma}

    def pdf(self, v):
        x = np.abs(np.asarray(v, dtype=float)) / self.scale
        return self._norm * np.exp(-(x**self.n))

    def dpdf(self, v):
        v = np.asarray(v, dtype=float)
        x = np.abs(v) / self.scale
        # d/dv exp(-x^n) = -n x^(n-1) sign(v)/s exp(-x^n); finite at v = 0 for n >= 1
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = -self.n * x ** (self.n - 1.0) * np.sign(v) / self.scale
        slope = np.where(v == 0.0, 0.0, slope)
        return self._norm * slope * np.exp(-(x**self.n))

    def derivative(self, v, order: int):
        """Exact derivatives for an even integer n (phi is then smooth): phi^(k) = P_k(x) phi / s^k
        with x = v/s, P_0 = 1, P_(k+1) = P_k' - n x^(n-1) P_k. Other n have a non-smooth point
        at v = 0 and only the first derivative."""
        order = _check_order(order)
        if order <= 1:
            return super().derivative(v, order)
        if not (self.n.is_integer() and int(self.n) % 2 == 0):
            raise ValueError(f"derivative of order {order} needs a smooth profile: GeneralizedGaussian "
                             f"with n = {self.n:g} is not infinitely differentiable at v = 0 "
                             "(use an even integer n, e.g. 2 or 4)")
        from numpy.polynomial import polynomial as P

        n = int(self.n)
        poly = np.array([1.0])
        drift = np.zeros(n)
        drift[n - 1] = -float(n)  # -n x^(n-1)
        for _ in range(order):
            poly = P.polyadd(P.polyder(poly) if poly.size > 1 else np.array([0.0]), P.polymul(drift, poly))
        x = np.asarray(v, dtype=float) / self.scale
        return P.polyval(x, poly) * self.pdf(v) / self.scale**order

    def _sample_numpy(self, rng, shape):
        # |v/s|^n ~ Gamma(1/n, 1)
        g = rng.gamma(1.0 / self.n, 1.0, size=shape)
        sign = np.where(rng.random(size=shape) < 0.5, -1.0, 1.0)
        return sign * self.scale * g ** (1.0 / self.n)


class Gaussian(GeneralizedGaussian):
    """Maxwellian phi(v) = exp(-v^2 / (2 sigma^2)) / sqrt(2 pi sigma^2)."""

    name = "gaussian"

    def __init__(self, sigma: float = 1.0):
        super().__init__(2.0, sigma)

    def parameters(self) -> dict:
        return {"name": self.name, "sigma": self._sigma}

    def pdf(self, v):
        v = np.asarray(v, dtype=float)
        s2 = self._sigma**2
        return np.exp(-0.5 * v * v / s2) / math.sqrt(2.0 * math.pi * s2)

    def dpdf(self, v):
        v = np.asarray(v, dtype=float)
        return -v / self._sigma**2 * self.pdf(v)

    def _sample_numpy(self, rng, shape):
        return self._sigma * rng.standard_normal(size=shape)


class Tabulated(VelocityDistribution):
    """A PDF given on a grid: phi is the monotone cubic (PCHIP) interpolant of the samples,
    zero outside [v[0], v[-1]], renormalised to unit mass.

    The tabulated values must be finite and non-negative with a positive integral; the grid
    strictly increasing. Sampling inverts the cumulative distribution of the interpolant.
    """

    name = "tabulated"

    def __init__(self, v, pdf):
        from scipy.interpolate import PchipInterpolator

        v = np.asarray(v, dtype=float)
        p = np.asarray(pdf, dtype=float)
        if v.ndim != 1 or p.shape != v.shape or v.size < 4:
            raise ValueError("v and pdf must be 1D arrays of the same length >= 4, "
                             f"got shapes {v.shape} and {p.shape}")
        if not (np.all(np.isfinite(v)) and np.all(np.diff(v) > 0)):
            raise ValueError("v must be finite and strictly increasing")
        if not np.all(np.isfinite(p)):
            raise ValueError("pdf must be finite everywhere (found NaN or inf)")
        if np.any(p < 0):
            raise ValueError(f"pdf must be >= 0 everywhere; min value is {p.min():.3g} "
                             f"at v = {v[np.argmin(p)]:.3g}")
        interp = PchipInterpolator(v, p, extrapolate=False)
        mass = float(interp.integrate(v[0], v[-1]))
        if not (mass > 0.0 and math.isfinite(mass)):
            raise ValueError(f"pdf is not normalisable: its integral over the grid is {mass} (must be > 0)")
        self.grid = v
        self.values = p / mass
        self._interp = PchipInterpolator(v, self.values, extrapolate=False)
        self._deriv = self._interp.derivative()
        fine = np.linspace(v[0], v[-1], 8 * v.size + 1)
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (self.pdf(fine[1:]) + self.pdf(fine[:-1])) * np.diff(fine))])
        self._cdf_grid = fine
        self._cdf = cdf / cdf[-1]
        self._mean = self._moment(1)
        self._sigma = math.sqrt(max(self._moment(2) - self._mean**2, 0.0))
        if self._sigma <= 0:
            raise ValueError("pdf has zero dispersion (all mass at one point)")

    def _moment(self, n: int) -> float:
        from scipy.integrate import quad

        total = 0.0
        for a, b in zip(self.grid[:-1], self.grid[1:]):
            total += quad(lambda x: x**n * float(self._interp(x)), a, b)[0]
        return total

    @property
    def sigma(self) -> float:
        """Dispersion about the mean."""
        return self._sigma

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def is_even(self) -> bool:
        return bool(np.allclose(self.grid, -self.grid[::-1]) and np.allclose(self.values, self.values[::-1]))

    def parameters(self) -> dict:
        return {"name": self.name, "v": self.grid.tolist(), "pdf": self.values.tolist()}

    def pdf(self, v):
        out = self._interp(np.asarray(v, dtype=float))
        return np.nan_to_num(out, nan=0.0)

    def dpdf(self, v):
        out = self._deriv(np.asarray(v, dtype=float))
        return np.nan_to_num(out, nan=0.0)

    def derivative(self, v, order: int):
        """Derivatives of order >= 2 from a quintic interpolating spline of the tabulated values
        (the PCHIP interpolant is only once differentiable); zero outside the grid."""
        order = _check_order(order)
        if order <= 1:
            return super().derivative(v, order)
        if order > 4:
            raise ValueError(f"Tabulated provides derivatives up to order 4, got {order}")
        if self.grid.size < 6:
            raise ValueError("derivatives of order >= 2 need at least 6 tabulated points")
        if getattr(self, "_quintic", None) is None:
            from scipy.interpolate import make_interp_spline

            self._quintic = make_interp_spline(self.grid, self.values, k=5)
        x = np.asarray(v, dtype=float)
        inside = (x >= self.grid[0]) & (x <= self.grid[-1])
        return np.where(inside, self._quintic(x, nu=order), 0.0)

    def _sample_numpy(self, rng, shape):
        u = rng.random(size=shape)
        return np.interp(u, self._cdf, self._cdf_grid)


class Shifted(VelocityDistribution):
    """A profile moved by a constant velocity: phi(v) = base.phi(v - shift) (a Galilean boost;
    a shifted Maxwellian is a steady state of every collision operator)."""

    name = "shifted"

    def __init__(self, base: VelocityDistribution, shift: float):
        if not isinstance(base, VelocityDistribution):
            raise TypeError(f"base must be a VelocityDistribution, got {type(base).__name__}")
        shift = float(shift)
        if not math.isfinite(shift):
            raise ValueError(f"shift must be finite, got {shift}")
        self.base, self.shift = base, shift

    @property
    def sigma(self) -> float:
        return self.base.sigma

    @property
    def mean(self) -> float:
        return self.base.mean + self.shift

    @property
    def is_even(self) -> bool:
        return self.shift == 0.0 and self.base.is_even

    def parameters(self) -> dict:
        return {"name": self.name, "base": self.base.parameters(), "shift": self.shift}

    def pdf(self, v):
        return self.base.pdf(np.asarray(v, dtype=float) - self.shift)

    def dpdf(self, v):
        return self.base.dpdf(np.asarray(v, dtype=float) - self.shift)

    def derivative(self, v, order: int):
        return self.base.derivative(np.asarray(v, dtype=float) - self.shift, order)

    def _sample_numpy(self, rng, shape):
        return self.base._sample_numpy(rng, shape) + self.shift


def distribution_from_dict(data) -> VelocityDistribution:
    """Rebuild a distribution from :meth:`VelocityDistribution.parameters`."""
    name = data.get("name")
    if name == "gaussian":
        return Gaussian(float(data.get("sigma", 1.0)))
    if name == "generalized_gaussian":
        return GeneralizedGaussian(float(data["n"]), float(data.get("sigma", 1.0)))
    if name == "tabulated":
        return Tabulated(np.asarray(data["v"]), np.asarray(data["pdf"]))
    if name == "shifted":
        return Shifted(distribution_from_dict(data["base"]), float(data["shift"]))
    raise ValueError(f"unknown distribution name {name!r}; expected gaussian, generalized_gaussian or tabulated")
