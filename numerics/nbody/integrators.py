"""Symplectic splitting integrators for particles on the circle.

Equations of motion (PHYSICS.md, section 1): d theta_i / dt = v_i, d v_i / dt = a_i(theta),
with a_i = mu * sum_j pair_force(theta_i - theta_j) and mu = 1/N. Time is in the units of the
potential (for HMF, U(theta) = -cos theta, the dynamical time is of order 1/sqrt(M U_1)).

A splitting method is a sequence "drift c_1 dt, kick d_1 dt, drift c_2 dt, ..., kick d_m dt,
drift c_{m+1} dt": a drift moves theta += c dt v at fixed v, a kick changes v += d dt a(theta)
at fixed theta. Each kick costs one force evaluation. Both methods here are symmetric
(c_i = c_{m+2-i}, d_i = d_{m+1-i}), hence time-reversible and symplectic.

* ``leapfrog`` (Stoermer-Verlet, drift-kick-drift): order 2, one force evaluation per step.
* ``yoshida4`` (Yoshida 1990, the triple-jump composition of leapfrog): order 4, three force
  evaluations per step, with w1 = 1 / (2 - 2^(1/3)), w0 = -2^(1/3) w1 and
  c = (w1/2, (w0+w1)/2, (w0+w1)/2, w1/2), d = (w1, w0, w1).

Angles are wrapped into [0, 2 pi) once per step (after the last drift); within a step they may
leave the interval by at most |v| dt, which the periodic forces do not notice.

The stepping functions take the array module ``xp`` (numpy, cupy or jax.numpy) so that every
backend runs exactly the same sequence of floating-point operations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

TWO_PI = 2.0 * math.pi

YOSHIDA_W1 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
YOSHIDA_W0 = -(2.0 ** (1.0 / 3.0)) * YOSHIDA_W1


@dataclass(frozen=True)
class SplittingMethod:
    """A symmetric drift-kick splitting: ``drifts`` has one entry more than ``kicks``."""

    name: str
    drifts: tuple[float, ...]
    kicks: tuple[float, ...]
    order: int

    @property
    def force_evaluations(self) -> int:
        """Force evaluations per step."""
        return len(self.kicks)

    def scaled(self, dt: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(c_i dt, d_i dt) as Python floats, computed once per run."""
        return tuple(c * dt for c in self.drifts), tuple(d * dt for d in self.kicks)


METHODS: dict[str, SplittingMethod] = {
    "leapfrog": SplittingMethod("leapfrog", (0.5, 0.5), (1.0,), order=2),
    "yoshida4": SplittingMethod(
        "yoshida4",
        (0.5 * YOSHIDA_W1, 0.5 * (YOSHIDA_W0 + YOSHIDA_W1), 0.5 * (YOSHIDA_W0 + YOSHIDA_W1), 0.5 * YOSHIDA_W1),
        (YOSHIDA_W1, YOSHIDA_W0, YOSHIDA_W1),
        order=4,
    ),
}


class SteppedSystem:
    """Bookkeeping shared by every backend's system: particle count, mass per particle
    mu = 1/N, time step, splitting method with its scaled drift/kick steps, and dtype."""

    def _init_steps(self, force_model, N: int, dt: float, method: SplittingMethod, dtype: str) -> None:
        import numpy as np

        self.force_model = force_model
        self.N = int(N)
        self.mu = 1.0 / self.N
        self.dt = float(dt)
        self.method = method
        self.dtype = np.dtype(dtype)
        self.drifts_dt, self.kicks_dt = method.scaled(self.dt)


def get_method(name: str) -> SplittingMethod:
    """The splitting method called ``name``; ValueError listing the valid names otherwise."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {name!r}") from None


def wrap_angles_inplace(theta, xp):
    """theta -> theta mod 2 pi in [0, 2 pi), in place (NumPy / CuPy arrays).

    ``remainder`` can round a tiny negative angle up to exactly 2 pi; the second line maps
    that value to 0 (subtracting 0.0 elsewhere leaves every other angle bit-for-bit unchanged).
    """
    xp.remainder(theta, TWO_PI, out=theta)
    theta -= TWO_PI * (theta >= TWO_PI)
    return theta


def wrap_angles(theta, xp):
    """Functional twin of :func:`wrap_angles_inplace` (JAX arrays)."""
    theta = xp.remainder(theta, TWO_PI)
    return xp.where(theta >= TWO_PI, theta - TWO_PI, theta)


def step_inplace(theta, v, accel, drifts_dt, kicks_dt, xp) -> None:
    """One splitting step, updating ``theta`` and ``v`` in place (NumPy / CuPy).

    ``accel(theta)`` returns dv/dt for every particle (same shape as theta, (R, N)).
    ``drifts_dt``, ``kicks_dt``: the method's coefficients times dt (:meth:`SplittingMethod.scaled`).
    """
    for c, d in zip(drifts_dt, kicks_dt):
        theta += c * v
        v += d * accel(theta)
    theta += drifts_dt[-1] * v
    wrap_angles_inplace(theta, xp)


def step(theta, v, accel, drifts_dt, kicks_dt, xp):
    """One splitting step, functional form (JAX): returns the new (theta, v).

    Performs the same floating-point operations, in the same order, as :func:`step_inplace`.
    """
    for c, d in zip(drifts_dt, kicks_dt):
        theta = theta + c * v
        v = v + d * accel(theta)
    theta = theta + drifts_dt[-1] * v
    return wrap_angles(theta, xp), v
