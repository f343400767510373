"""Pair potentials on the circle.

Convention (README, "Conventions"):

    U(theta) = - sum_{k in Z} U_k exp(i k theta),   U_{-k} = U_k real,

so U_k > 0 is an attractive harmonic and U(theta) = -U_0 - 2 sum_{k>=1} U_k cos(k theta).
The equations of motion are d v_i / dt = mu * sum_j pair_force(theta_i - theta_j) with
pair_force(dtheta) = -U'(dtheta) (the force per unit mu exerted on i by j).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Mapping

import numpy as np


def _check_kmax(kmax) -> int:
    if isinstance(kmax, bool) or not isinstance(kmax, (int, np.integer)):
        raise TypeError(f"kmax must be an integer >= 1, got {kmax!r}")
    if kmax < 1:
        raise ValueError(f"kmax must be an integer >= 1, got {kmax}")
    return int(kmax)


class Potential(ABC):
    """A pair potential, even in its argument, given by its Fourier coefficients U_k."""

    #: short name used in run files and plots
    name: str = "potential"

    @abstractmethod
    def coefficients(self, kmax: int) -> np.ndarray:
        """U_0, U_1, ..., U_kmax as a float64 array of length kmax + 1."""

    @property
    def kmax_exact(self) -> int | None:
        """Largest non-zero harmonic if the Fourier series is finite, else None."""
        return None

    def parameters(self) -> dict:
        """JSON-serialisable description (round-trips through :func:`potential_from_dict`)."""
        return {"name": self.name}

    # --- real-space evaluation -------------------------------------------------------------
    def __call__(self, dtheta):
        """U(dtheta), from the Fourier series truncated at :attr:`kmax_exact`."""
        return self.truncated_value(dtheta, self._default_kmax("U(dtheta)"))

    def pair_force(self, dtheta):
        """Force -U'(dtheta) per unit mu on a particle at angular separation dtheta."""
        return self.truncated_force(dtheta, self._default_kmax("pair_force"))

    def _default_kmax(self, what: str) -> int:
        if self.kmax_exact is None:
            raise NotImplementedError(f"{type(self).__name__} has no finite Fourier series; "
                                      f"{what} must be overridden")
        return self.kmax_exact

    def truncated_value(self, dtheta, kmax: int):
        """U truncated at kmax: -U_0 - 2 sum_{k=1}^{kmax} U_k cos(k dtheta)."""
        u = self.coefficients(_check_kmax(kmax))
        x = np.asarray(dtheta, dtype=float)
        out = np.full_like(x, -u[0])
        for k in range(1, kmax + 1):
            if u[k] != 0.0:
                out -= 2.0 * u[k] * np.cos(k * x)
        return out

    def truncated_force(self, dtheta, kmax: int):
        """-U'_trunc(dtheta) = -2 sum_{k=1}^{kmax} k U_k sin(k dtheta)."""
        u = self.coefficients(_check_kmax(kmax))
        x = np.asarray(dtheta, dtype=float)
        out = np.zeros_like(x)
        for k in range(1, kmax + 1):
            if u[k] != 0.0:
                out -= 2.0 * k * u[k] * np.sin(k * x)
        return out

    def attractive_max(self, kmax: int | None = None) -> float:
        """U* = max_{k>=1} U_k (the most attractive harmonic), as used in Q = sigma^2/(M U*)."""
        kmax = self.kmax_exact if kmax is None else _check_kmax(kmax)
        if kmax is None:
            kmax = 64
        return float(np.max(self.coefficients(kmax)[1:]))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.parameters().items() if k != "name")
        return f"{type(self).__name__}({args})"


class FourierPotential(Potential):
    """A finite Fourier potential given as {k: U_k} for k >= 1 (U_0 optional, irrelevant)."""

    name = "fourier"

    def __init__(self, harmonics: Mapping[int, float]):
        if not isinstance(harmonics, Mapping) or len(harmonics) == 0:
            raise ValueError("harmonics must be a non-empty mapping {k: U_k} with integer k >= 0")
        clean: dict[int, float] = {}
        for k, value in harmonics.items():
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
                raise ValueError(f"harmonic index k must be an integer >= 0, got {k!r}")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"U_{k} must be finite, got {value}")
            clean[int(k)] = value
        if all(k == 0 for k in clean):
            raise ValueError("harmonics needs at least one k >= 1 (U_0 does not act on the dynamics)")
        self.harmonics = dict(sorted(clean.items()))

    @property
    def kmax_exact(self) -> int:
        return max(k for k, v in self.harmonics.items() if k >= 1)

    def coefficients(self, kmax: int) -> np.ndarray:
        kmax = _check_kmax(kmax)
        out = np.zeros(kmax + 1)
        for k, value in self.harmonics.items():
            if k <= kmax:
                out[k] = value
        return out

    def parameters(self) -> dict:
        return {"name": self.name, "harmonics": {str(k): v for k, v in self.harmonics.items()}}


class HMF(FourierPotential):
    """Hamiltonian Mean Field model: U(theta) = -cos(theta), i.e. U_1 = 1/2."""

    name = "hmf"

    def __init__(self):
        super().__init__({1: 0.5})

    def parameters(self) -> dict:
        return {"name": self.name}


class RingModel(Potential):
    """Softened ring model U(theta) = -1/sqrt(2 (1 - cos theta) + eps^2), eps > 0.

    Its harmonics U_k = Q_{k-1/2}(1 + eps^2/2) / pi (Legendre function of the second kind)
    decay like exp(-k acosh(1 + eps^2/2)) ~ exp(-k eps); see :func:`_ring_harmonics`.
    """

    name = "ring"

    def __init__(self, softening: float):
        softening = float(softening)
        if not math.isfinite(softening) or softening <= 0.0:
            raise ValueError(f"softening must be a finite number > 0, got {softening}")
        self.softening = softening
        self._cache: dict[int, np.ndarray] = {}

    def parameters(self) -> dict:
        return {"name": self.name, "softening": self.softening}

    def __call__(self, dtheta):
        x = np.asarray(dtheta, dtype=float)
        return -1.0 / np.sqrt(2.0 * (1.0 - np.cos(x)) + self.softening**2)

    def pair_force(self, dtheta):
        x = np.asarray(dtheta, dtype=float)
        d2 = 2.0 * (1.0 - np.cos(x)) + self.softening**2
        return -np.sin(x) / (d2 * np.sqrt(d2))

    def coefficients(self, kmax: int) -> np.ndarray:
        kmax = _check_kmax(kmax)
        if kmax not in self._cache:
            self._cache[kmax] = _ring_harmonics(self.softening, kmax)
        return self._cache[kmax].copy()


def _ring_harmonics(softening: float, kmax: int) -> np.ndarray:
    """U_k = Q_{k-1/2}(z) / pi, z = 1 + eps^2/2, for k = 0..kmax, to ~1e-13 relative accuracy.

    Two methods, each used where it is accurate:

    * the trapezoidal rule (FFT) on the integrand 1/sqrt(4 sin^2(theta/2) + eps^2), exact up
      to round-off for harmonics that are not tiny (spectral convergence: the poles sit at
      Im(theta) = +-acosh(z));
    * Miller's backward recurrence for the small tail, where the FFT's absolute round-off
      would dominate: Q_{k-1/2} is the minimal solution of
      (nu + 1) Q_{nu+1} = (2 nu + 1) z Q_nu - nu Q_{nu-1}, normalised to the FFT value at the
      junction.
    """
    eps2 = softening**2
    rate = math.acosh(1.0 + 0.5 * eps2)  # U_{k+1}/U_k -> exp(-rate)
    m = int(2 ** math.ceil(math.log2(max(4 * (kmax + 1), 45.0 / rate + kmax, 64))))
    m = min(m, 2**22)
    theta = 2.0 * np.pi * np.arange(m) / m
    values = 1.0 / np.sqrt(4.0 * np.sin(0.5 * theta) ** 2 + eps2)  # = -U(theta)
    fft = np.fft.rfft(values).real[: kmax + 1] / m
    trusted = fft > 1e-4 * fft[0]
    if trusted.all():
        return fft
    junction = int(np.argmin(trusted)) - 1  # last index before the first untrusted one
    z = 1.0 + 0.5 * eps2
    start = kmax + int(math.ceil(45.0 / rate)) + 16
    q = np.zeros(start + 2)
    q[start] = 1e-280
    for k in range(start, junction, -1):  # q[k-1] from q[k], q[k+1]; nu = k - 1/2
        nu = k - 0.5
        q[k - 1] = ((2.0 * nu + 1.0) * z * q[k] - (nu + 1.0) * q[k + 1]) / nu
        if q[k - 1] > 1e250:  # rescale to avoid overflow; only ratios matter
            q[k - 1 :] *= 1e-250
    out = fft.copy()
    out[junction:] = q[junction : kmax + 1] * (fft[junction] / q[junction])
    return out


class DiracComb(Potential):
    """Dirac comb of period 2 pi / k0: U_k = amplitude for k a multiple of k0, else 0.

    A purely local interaction (U(theta) is a sum of Dirac deltas). It has no smooth pair
    force, so it cannot be integrated directly by the N-body engine; truncated at a finite
    kmax it is an ordinary finite Fourier potential.
    """

    name = "dirac_comb"

    def __init__(self, k0: int, amplitude: float = 1.0):
        if isinstance(k0, bool) or not isinstance(k0, (int, np.integer)) or k0 < 1:
            raise ValueError(f"k0 must be an integer >= 1, got {k0!r}")
        amplitude = float(amplitude)
        if not math.isfinite(amplitude):
            raise ValueError(f"amplitude must be finite, got {amplitude}")
        self.k0 = int(k0)
        self.amplitude = amplitude

    def parameters(self) -> dict:
        return {"name": self.name, "k0": self.k0, "amplitude": self.amplitude}

    def coefficients(self, kmax: int) -> np.ndarray:
        kmax = _check_kmax(kmax)
        out = np.zeros(kmax + 1)
        out[:: self.k0] = self.amplitude
        return out

    def __call__(self, dtheta):
        raise ValueError("DiracComb is a sum of Dirac deltas: evaluate truncated_value(dtheta, kmax)")

    def pair_force(self, dtheta):
        raise ValueError("DiracComb has no smooth pair force (it is a local interaction); "
                         "truncate it with kmax to use the harmonic-sum force")


def potential_from_dict(data: Mapping) -> Potential:
    """Rebuild a potential from :meth:`Potential.parameters` (used by run files and the CLI)."""
    name = data.get("name")
    if name == "hmf":
        return HMF()
    if name == "fourier":
        return FourierPotential({int(k): float(v) for k, v in data["harmonics"].items()})
    if name == "ring":
        return RingModel(float(data["softening"]))
    if name == "dirac_comb":
        return DiracComb(int(data["k0"]), float(data.get("amplitude", 1.0)))
    raise ValueError(f"unknown potential name {name!r}; expected one of hmf, fourier, ring, dirac_comb")
