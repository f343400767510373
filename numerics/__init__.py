"""Numerical layer of the toolkit: arrays only, no SymPy at run time.

Conventions (see README, "Conventions"): N particles on the circle, total mass M = 1,
mass per particle mu = 1/N, pair potential U(theta) = -sum_k U_k exp(i k theta) with
U_{-k} = U_k, velocity PDF phi(v) normalised to 1, flux in the continuity convention
d(phi)/dt + d(flux)/dv = 0 (positive flux = particles move up in velocity).

Float64 is the default everywhere; importing :mod:`numerics.backends` (done lazily by every
JAX code path) switches JAX to 64-bit mode so users never have to.
"""
from numerics.models import (  # noqa: F401  (curated public surface)
    HMF,
    DiracComb,
    FourierPotential,
    RingModel,
    Potential,
    Gaussian,
    GeneralizedGaussian,
    Shifted,
    Tabulated,
    VelocityDistribution,
    Q,
    check_stable,
    collective_indicator,
    critical_Q,
    dielectric,
    statically_dressed,
)

__all__ = [
    "HMF",
    "DiracComb",
    "FourierPotential",
    "RingModel",
    "Potential",
    "Gaussian",
    "GeneralizedGaussian",
    "Shifted",
    "Tabulated",
    "VelocityDistribution",
    "Q",
    "check_stable",
    "collective_indicator",
    "critical_Q",
    "dielectric",
    "statically_dressed",
]
