"""N-body ensembles on the circle: the engine that checks kinetic predictions (PHYSICS.md, section 4).

Public surface:

    simulate(potential, df, N, R, t_end, dt, *, kmax=None, method="yoshida4", backend="numpy",
             seed=0, n_snapshots=101, u_grid=None, force=None, max_energy_error=1e-3,
             checkpoint=None, checkpoint_every=60.0, progress=True, dtype="float64") -> NBodyResult
    resume(path, progress=True) -> NBodyResult
    load_result(path) -> NBodyResult
    measure_flux(result, window, ...)            (from numerics.nbody.measure)
    initial_conditions(df, N, R, seed), build_system(...), SimulationError, METHODS

Conventions: N particles of mass mu = 1/N per realisation, angles in [0, 2 pi), pair potential
U(theta) = -sum_k U_k e^{ik theta}; energy E = mu sum v^2/2 + (mu^2/2) sum_{i != j} U. Details in
:mod:`numerics.nbody.engine` and :mod:`numerics.nbody.system`. Importing this package does not
import JAX or CuPy; the backends are loaded when asked for.
"""
from numerics.nbody.engine import (  # noqa: F401
    NBodyResult,
    SimulationError,
    initial_conditions,
    load_result,
    resume,
    simulate,
)
from numerics.nbody.integrators import METHODS  # noqa: F401
from numerics.nbody.system import build_system, resolve_force_model  # noqa: F401


def measure_flux(result, window, **kwargs):
    """Flux F(u) = -d/dt <fraction(v < u)> of a run; see :func:`numerics.nbody.measure.measure_flux`."""
    from numerics.nbody.measure import measure_flux as _measure_flux

    return _measure_flux(result, window, **kwargs)


__all__ = [
    "simulate",
    "resume",
    "load_result",
    "measure_flux",
    "NBodyResult",
    "SimulationError",
    "initial_conditions",
    "build_system",
    "resolve_force_model",
    "METHODS",
]
