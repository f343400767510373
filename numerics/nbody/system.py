"""What the engine integrates: a force model plus an integrator on one backend.

:func:`resolve_force_model` decides how the acceleration is computed (direct pair sums or
harmonic sums, and the truncation kmax) and validates that choice against the potential.
:func:`build_system` returns an object with the same methods on every backend:

    accel(theta)               -> dv/dt, shape (R, N), on the backend's device
    advance(theta, v, n_steps) -> (theta, v) after n_steps steps (new arrays; inputs untouched)
    diagnostics(theta, v, u_grid) -> dict of float64 NumPy arrays, one value per realisation:
        energy, kinetic, potential, momentum, v2, v4, finite (R,), cumulative (R, U)
    to_device(x), to_host(x)

Energy normalisation (stated once, used everywhere in the N-body engine): the energy of N
particles of mass mu = 1/N (total mass 1),

    E = mu sum_i v_i^2 / 2 + (mu^2 / 2) sum_{i != j} U(theta_i - theta_j),

i.e. 1/N times the "energy per unit mass" sum_i v_i^2/2 + (mu/2) sum_{i != j} U of PHYSICS.md;
the relative energy error is the same with either. Momentum P = mu sum_i v_i. With harmonic
sums the potential is the truncated U (harmonics 0..kmax), the one whose dynamics is
integrated, so E is conserved by the truncated dynamics.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from numerics.models.potentials import Potential, RingModel
from numerics.nbody import forces_numpy
from numerics.nbody.integrators import SplittingMethod, SteppedSystem, get_method, step_inplace

FORCE_KINDS = ("direct", "harmonic")
DTYPES = ("float64", "float32")


def check_kmax(kmax) -> int:
    """kmax as an int >= 1, or ValueError naming the parameter and its valid range."""
    if isinstance(kmax, bool) or not isinstance(kmax, (int, np.integer)):
        raise ValueError(f"kmax must be an integer >= 1 (or None), got {kmax!r}")
    if kmax < 1:
        raise ValueError(f"kmax must be an integer >= 1 (or None), got {kmax}")
    return int(kmax)


def check_dtype(dtype) -> str:
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return name


def _has_pair_force(potential: Potential) -> bool:
    try:
        value = np.asarray(potential.pair_force(np.array([0.5])), dtype=float)
    except (ValueError, NotImplementedError):
        return False
    return value.shape == (1,)


@dataclass(frozen=True, eq=False)
class ForceModel:
    """How the acceleration is computed.

    kind: "direct" (pair sums, O(N^2)) or "harmonic" (harmonic sums, O(N kmax)).
    kmax: truncation of the harmonic sums (None for direct).
    ks, uk: the harmonics k >= 1 with U_k != 0 kept by the harmonic sums, and their U_k.
    u0: U_0 (enters the energy only).
    ring_softening: eps of a RingModel on the direct path (the trig-free fast path), else None.
    fourier: (k, U_k) for k = 1..kmax_exact of a finite Fourier potential on the direct path
        (lets the JAX backend evaluate its pair force), else None.
    """

    kind: str
    potential: Potential
    kmax: int | None
    ks: tuple[int, ...] = ()
    uk: tuple[float, ...] = ()
    u0: float = 0.0
    ring_softening: float | None = None
    fourier: tuple[tuple[int, float], ...] | None = None

    @property
    def key(self) -> tuple:
        """Hashable identity (used to cache compiled kernels)."""
        return (self.kind, self.kmax, self.ks, self.uk, self.u0, self.ring_softening, self.fourier,
                json.dumps(self.potential.parameters(), sort_keys=True), type(self.potential).__qualname__)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other) -> bool:
        return isinstance(other, ForceModel) and self.key == other.key

    def weights(self, mu: float) -> np.ndarray:
        """w_k = -2 mu k U_k for k in ``ks`` (the harmonic-sum acceleration's coefficients)."""
        return np.array([-2.0 * mu * k * u for k, u in zip(self.ks, self.uk)])

    def dense_coefficients(self) -> np.ndarray:
        """U_1..U_kmax as a dense array (zeros for the harmonics not in ``ks``)."""
        out = np.zeros(self.kmax)
        for k, u in zip(self.ks, self.uk):
            out[k - 1] = u
        return out


def resolve_force_model(potential: Potential, kmax=None, force: str | None = None) -> ForceModel:
    """Choose the force computation.

    * ``kmax`` given -> harmonic sums truncated at kmax (any potential; ``force="direct"`` is
      then a contradiction and an error);
    * else a finite Fourier series (``potential.kmax_exact`` not None, e.g. HMF, kmax = 1) ->
      harmonic sums with all its harmonics, unless ``force="direct"``;
    * else (e.g. RingModel) -> direct pair sums; ``force="harmonic"`` needs a kmax.
    A DiracComb has no pair force: it needs kmax.
    """
    if not isinstance(potential, Potential):
        raise TypeError(f"potential must be a numerics.models Potential, got {type(potential).__name__}")
    if force is not None and force not in FORCE_KINDS:
        raise ValueError(f"force must be one of {FORCE_KINDS} or None (automatic), got {force!r}")
    if kmax is not None:
        kmax = check_kmax(kmax)
        if force == "direct":
            raise ValueError("kmax truncates the harmonic sums; it cannot be combined with force='direct' "
                             "(drop kmax, or use force='harmonic')")
        kind = "harmonic"
    elif force == "harmonic":
        kmax = potential.kmax_exact
        if kmax is None:
            raise ValueError(f"force='harmonic' needs kmax for {type(potential).__name__}, whose Fourier series "
                             "is infinite: pass kmax >= 1 (the truncation; check convergence in kmax)")
        kind = "harmonic"
    elif force == "direct" or potential.kmax_exact is None:
        kind = "direct"
    else:
        kind, kmax = "harmonic", potential.kmax_exact

    if kind == "direct":
        if not _has_pair_force(potential):
            raise ValueError(f"{type(potential).__name__} has no smooth pair force, so it cannot be integrated "
                             "by direct summation: pass kmax >= 1 to use harmonic sums truncated at kmax")
        fourier = None
        if potential.kmax_exact is not None:
            coeffs = potential.coefficients(potential.kmax_exact)
            fourier = tuple((k, float(coeffs[k])) for k in range(1, potential.kmax_exact + 1))
        softening = potential.softening if isinstance(potential, RingModel) else None
        return ForceModel("direct", potential, None, ring_softening=softening, fourier=fourier)

    coeffs = np.asarray(potential.coefficients(kmax), dtype=float)
    ks = tuple(int(k) for k in range(1, kmax + 1) if coeffs[k] != 0.0)
    if not ks:
        raise ValueError(f"the potential has no non-zero harmonic 1 <= k <= kmax = {kmax}: nothing would move")
    return ForceModel("harmonic", potential, kmax, ks=ks, uk=tuple(float(coeffs[k]) for k in ks),
                      u0=float(coeffs[0]))


# -------------------------------------------------------------------------------------- NumPy
class NumpySystem(SteppedSystem):
    """Reference backend: NumPy, one realisation chunk at a time for the direct sums."""

    backend = "numpy"

    def __init__(self, force_model: ForceModel, N: int, dt: float, method: SplittingMethod, dtype: str = "float64"):
        self._init_steps(force_model, N, dt, method, dtype)
        fm = force_model
        if fm.kind == "harmonic":
            self._ks = np.asarray(fm.ks, dtype=self.dtype)
            self._weights = fm.weights(self.mu).astype(self.dtype)

    def to_device(self, x):
        return np.array(x, dtype=self.dtype)

    def to_host(self, x) -> np.ndarray:
        return np.asarray(x)

    def accel(self, theta):
        fm = self.force_model
        if fm.kind == "harmonic":
            return forces_numpy.harmonic_accel(theta, self._ks, self._weights)
        if fm.ring_softening is not None:
            return forces_numpy.ring_direct_accel(theta, fm.ring_softening, self.mu)
        return forces_numpy.pair_direct_accel(theta, fm.potential, self.mu)

    def advance(self, theta, v, n_steps: int):
        theta = np.array(theta, dtype=self.dtype)
        v = np.array(v, dtype=self.dtype)
        for _ in range(int(n_steps)):
            step_inplace(theta, v, self.accel, self.drifts_dt, self.kicks_dt, np)
        return theta, v

    def potential_sum(self, theta) -> np.ndarray:
        """sum_{i != j} U(theta_i - theta_j) per realisation, float64 (truncated U for harmonic sums)."""
        fm = self.force_model
        theta = np.asarray(theta, dtype=np.float64)
        if fm.kind == "harmonic":
            return forces_numpy.harmonic_potential_sum(theta, np.asarray(fm.ks, float), np.asarray(fm.uk), fm.u0)
        if fm.ring_softening is not None:
            return forces_numpy.ring_direct_potential_sum(theta, fm.ring_softening)
        return forces_numpy.pair_direct_potential_sum(theta, fm.potential)

    def diagnostics(self, theta, v, u_grid) -> dict:
        theta = np.asarray(theta)
        v = np.asarray(v)
        out = forces_numpy.kinetic_and_moments(v, np.asarray(u_grid, dtype=np.float64), self.mu)
        out["finite"] = np.isfinite(theta).all(axis=1) & np.isfinite(v).all(axis=1)
        with np.errstate(invalid="ignore", over="ignore"):
            out["potential"] = 0.5 * self.mu * self.mu * self.potential_sum(theta)
        out["energy"] = out["kinetic"] + out["potential"]
        return out


def build_system(potential: Potential, N: int, *, dt: float, kmax=None, method: str = "yoshida4",
                 backend: str = "numpy", force: str | None = None, dtype: str = "float64"):
    """The integrable system on ``backend`` ("numpy", "jax" or "cupy"); see the module docstring.

    Raises ValueError for an unknown backend/method/force/dtype and
    numerics.backends.BackendUnavailableError for "cupy" without a usable GPU.
    """
    from numerics.backends import require_backend

    require_backend(backend)
    splitting = get_method(method)
    dtype = check_dtype(dtype)
    force_model = resolve_force_model(potential, kmax, force)
    if backend == "numpy":
        return NumpySystem(force_model, N, dt, splitting, dtype)
    if backend == "jax":
        from numerics.nbody.forces_jax import JaxSystem

        return JaxSystem(force_model, N, dt, splitting, dtype)
    from numerics.nbody.forces_cupy import CupySystem

    return CupySystem(force_model, N, dt, splitting, dtype)
