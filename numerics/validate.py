"""Checking kinetic predictions of the 1/N^2 flux against N-body ensembles (PHYSICS.md, section 4).

Everything here is on the measurement side; a prediction enters only through :func:`compare`,
so once the order-2 operator yields a flux array on the same velocity grid the check is

    fit = extrapolate_inverse_N(flux_ensemble(potential, df, Ns, R, t_end, dt, window))
    print(compare(predicted_N2_flux, fit))

Conventions (README "Conventions", PHYSICS.md section 1)
--------------------------------------------------------
* Flux in the continuity convention d(phi)/dt + dF/dv = 0, i.e.
  F(u) = -d/dt [fraction of particles with v < u]; positive = particles move up in velocity.
* Physical units of the run: total mass M = 1, particle mass mu = 1/N, velocities in the units
  of the df, time in the units of the potential (t, not tau = sigma t, unless stated; see
  :func:`q_scaling` and :meth:`FluxEnsemble.rescaled`).
* The 1/N^2 operator predicts F = F_2(u) / N^2 + O(1/N^3) with F_2 independent of N. Everything
  below is therefore expressed as **N^2 F** ("n2_flux"); a predicted flux passed to
  :func:`compare` is F_2 = N^2 F in these units.

Finite-N model (:func:`extrapolate_inverse_N`)
----------------------------------------------
At each u, N^2 F(u; N) = a(u) + b(u)/N, fitted by weighted least squares over the values of N
measured (weights 1/sigma_N(u)^2, sigma_N = N^2 x the half width of the 16%-84% bootstrap band).
a(u) is the N -> infinity intercept that the 1/N^2 operator predicts; b(u) absorbs the leading
finite-N correction (order 1/N^3 in F). Assumptions, each a way the fit can mislead:
  - linear in 1/N over the N range used; curvature (1/N^2 and beyond in N^2 F) is not modelled,
    and shows up only as chi^2/dof > 1 when there are >= 3 values of N (with 2 values the fit
    is exact, dof = 0, and nothing tests the model);
  - the measurements at different N are independent (independent seeds, see
    :func:`derived_seed`) and their errors Gaussian with the bootstrap half width as sigma;
  - every N measures the same thing: same profile, same Q, same time window. The window is a
    fixed interval of t, so the early-time, finite-N transients enter each N differently.
The 1-sigma errors of a and b are the usual (X^T W X)^-1 ones, not rescaled by chi^2/dof.
``degree=2`` adds c(u)/N^2 (needs >= 4 values of N to keep a degree of freedom).

Measured on this toolkit (HMF, generalised Gaussian n = 4, Q = 4, dt = 0.1, window t = [100, 1500],
N = 16, 32, 64, 128 with R = 3000, 4000, 8000, 8000): the *shape* of N^2 F is the same at every N
(zero crossings at |u| ~ 1.7 = 1.2 sigma), but its amplitude relative to N = 128 is 0.13, 0.38,
0.66, 1 -- not linear in 1/N. The a + b/N fit over N = 16-64 fails its chi^2 in the core
(|u| < 1.3) and lands at 0.71 of the N = 128 amplitude; over N = 32-128 it gives 1.01 +- 0.07
(chi^2/dof 1.1), over 64-128 1.35 +- 0.13, and a + b/N + c/N^2 over 16-128 1.13 +- 0.08. So with
N <= 128 the intercept carries a model (systematic) uncertainty of order 30 %, larger than its
statistical error: report it with the chi^2 and with the N subset used.

Hot limit (:func:`extrapolate_hot_limit`)
-----------------------------------------
The hot-limit operator is the leading order in Q_c/Q: the collective terms and the g2 g2 sources
of g3 it drops each carry one more coupling and one more DF. So the N -> infinity flux measured at
finite Q is F_bare (1 + O(Q_c/Q)), and the bare operator is tested by the Q -> infinity limit:
the N -> oo intercepts at several Q (or N^2 F at every (Q, N) at once, with a 1/N term) are brought
to the units of the hottest Q by the bare prediction's own Q scaling and fitted as
A(w) + B(w) Q_c/Q at each w = u/sigma; A is compared with the bare prediction by :func:`compare`.
The assumptions are those of the 1/N fit plus linearity in Q_c/Q over the Q range used (tested by
chi^2/dof when there are >= 3 values of Q).

Points seen by few realisations (the far tails, where only a handful of realisations have a
particle crossing u during the window) are left out of every fit and chi^2: fewer than
:data:`MIN_SUPPORT` realisations with a non-zero slope (``FluxEnsemble.supports``).

Error bars and correlations
---------------------------
Bootstrap half widths are per point. Neighbouring u are strongly correlated (the cumulative
fractions share particles), so a chi^2 summed over u with diagonal errors still has mean
"number of points" but a wider spread than a chi^2 law; every measurement therefore carries the
covariance of its mean flux across u (``FluxMeasurement.covariance``, from the per-realisation
slopes), which :func:`merge_runs`, :class:`FluxEnsemble`, the 1/N and hot-limit fits propagate and
:func:`compare` uses for a second, covariance-based chi^2 and a generalised least-squares amplitude. For a folded (odd)
profile only the points u > 0 are independent; u <= 0 are mirror images and are left out of
every chi^2, amplitude and sign count.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from numerics.nbody.measure import FluxMeasurement, flux_slopes

__all__ = [
    "CONVENTION",
    "FluxEnsemble",
    "InverseNFit",
    "Comparison",
    "QScaling",
    "flux_ensemble",
    "ensemble_from_runs",
    "extrapolate_inverse_N",
    "HotLimitFit",
    "extrapolate_hot_limit",
    "matched_windows",
    "json_floats",
    "compare",
    "merge_runs",
    "MIN_SUPPORT",
    "supported_mask",
    "weighted_line_fit",
    "PredictedFlux",
    "hot_profile",
    "predict_n2_flux",
    "q_scaling",
    "amplitude_ratio",
    "scaled_profile",
    "derived_seed",
    "plot_ensemble",
    "write_json",
]

CONVENTION = ("flux F(u) = -d/dt fraction(v < u) (continuity convention, positive = particles move up in v); "
              "M = 1, mu = 1/N; values are N^2 F, the quantity the 1/N^2 operator predicts independently of N")

#: fewest realisations with a non-zero flux slope at a point for its bootstrap error (and covariance) to be
#: trusted: in the far tails only a handful of realisations see a particle cross u, the statistics are
#: far from Gaussian and a covariance over such points is nearly singular. With R < 2 MIN_SUPPORT
#: realisations the threshold is R // 2 (:func:`_support_threshold`).
MIN_SUPPORT = 30


def _support_threshold(R: int) -> int:
    return max(2, min(MIN_SUPPORT, int(R) // 2))


def supported_mask(support, R: int, size: int) -> np.ndarray:
    """(U,) bool: at least min(MIN_SUPPORT, R // 2) of the R realisations have a non-zero slope at u
    (``support``, e.g. :attr:`FluxMeasurement.support`; all ``size`` points True when it is None)."""
    if support is None:
        return np.ones(size, dtype=bool)
    return np.asarray(support) >= _support_threshold(R)

INVERSE_N_MODEL = ("N^2 F(u; N) = a(u) + b(u)/N, weighted least squares over N at each u "
                   "(weights 1/sigma^2, sigma = N^2 x bootstrap half width); a(u) = N -> oo intercept")


# ============================================================================ small helpers
def _jsonable(x):
    """Plain JSON types; non-finite floats become None (strict JSON has no NaN)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, Path):
        return str(x)
    return x


def json_floats(values) -> np.ndarray:
    """Inverse of _jsonable for float arrays (None -> NaN): a stored report's lists back to arrays."""
    return np.array([np.nan if v is None else v for v in np.ravel(np.asarray(values, dtype=object))],
                    dtype=float).reshape(np.shape(values))


def write_json(obj, path) -> Path:
    """Write ``obj.to_dict()`` (or a dict) as strict JSON (NaN -> null)."""
    data = obj.to_dict() if hasattr(obj, "to_dict") else obj
    path = Path(path)
    path.write_text(json.dumps(_jsonable(data), indent=1, allow_nan=False))
    return path


def derived_seed(seed: int, N: int) -> int:
    """The seed of the run with N particles: ``SeedSequence([seed, N])`` reduced to 63 bits.

    Different N get statistically independent initial conditions (with one seed for every N the
    first angles of a run with 2N particles would repeat those of the run with N), which the
    extrapolation in N assumes. The value is recorded in :attr:`FluxEnsemble.seeds`.
    """
    state = np.random.SeedSequence([int(seed), int(N)]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def _check_Ns(Ns, minimum: int = 1) -> tuple[int, ...]:
    try:
        values = list(Ns)
    except TypeError:
        raise ValueError(f"Ns must be a sequence of particle numbers N >= 2, got {Ns!r}") from None
    out = []
    for n in values:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            raise ValueError(f"Ns must hold integers N >= 2 (particles per realisation), got {n!r} in {Ns!r}")
        out.append(int(n))
    if len(set(out)) != len(out):
        raise ValueError(f"Ns must not repeat a value of N, got {Ns!r}")
    if len(out) < minimum:
        raise ValueError(f"Ns needs at least {minimum} value(s) of N, got {Ns!r}")
    return tuple(sorted(out))


def _check_R(R, Ns) -> dict[int, int]:
    if isinstance(R, Mapping):
        values = _per_N("R", R, Ns, what="realisations")
    elif isinstance(R, (int, np.integer)) and not isinstance(R, bool):
        values = {n: R for n in Ns}
    else:
        try:
            seq = list(R)
        except TypeError:
            raise ValueError(f"R must be an int, a sequence with one value per N, or a mapping N -> R; "
                             f"got {R!r}") from None
        if len(seq) != len(Ns):
            raise ValueError(f"R has {len(seq)} values but Ns has {len(Ns)} (R pairs with the sorted Ns {Ns})")
        values = dict(zip(Ns, seq))
    for n, r in values.items():
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 2:
            raise ValueError(f"R must be an integer >= 2 for every N (the bootstrap needs 2 realisations); "
                             f"got R = {r!r} for N = {n}")
    return {n: int(r) for n, r in values.items()}


def _snapshot_times(t_end: float, dt: float, n_snapshots: int) -> np.ndarray:
    n_steps = int(round(t_end / dt))
    return np.round(np.linspace(0, n_steps, n_snapshots)).astype(np.int64) * dt


def _check_window(window, t_end: float, dt: float, n_snapshots: int) -> tuple[float, float]:
    try:
        t0, t1 = (float(w) for w in window)
    except (TypeError, ValueError):
        raise ValueError(f"window must be a pair (t0, t1) inside [0, t_end = {t_end:g}], got {window!r}") from None
    if not (math.isfinite(t0) and math.isfinite(t1) and t0 < t1):
        raise ValueError(f"window must be (t0, t1) with t0 < t1, got {window!r}")
    slack = 1e-9 * max(abs(t_end), 1.0)
    if t0 < -slack or t1 > t_end + slack:
        raise ValueError(f"window {window!r} is not inside the run [0, t_end = {t_end:g}]; "
                         "raise t_end or move the window")
    times = _snapshot_times(t_end, dt, n_snapshots)
    inside = int(np.count_nonzero((times >= t0 - slack) & (times <= t1 + slack)))
    if inside < 3:
        raise ValueError(f"window {window!r} holds {inside} of the {n_snapshots} snapshots; the flux fit needs "
                         "at least 3 (widen the window or raise n_snapshots)")
    return t0, t1


def matched_windows(peak_n2_flux: float, Ns, fraction: float, *, dt: float, t0: float = 100.0
                    ) -> dict[int, tuple[float, float]]:
    """Fit windows (t0_N, t1_N) in which the predicted flux moves the same fraction of the
    particles across its peak at every N: t1_N = fraction N^2 / |peak N^2 F|, rounded up to a
    multiple of dt, and t0_N = min(t0, t1_N / 4) (the start skips the initial transient; short
    windows keep three quarters of their length).

    Finite-N corrections are then compared at equal relative evolution of the DF. The stored
    runs use fraction 6.0e-4 (HMF) and 8.9e-4 (ring model); the measurement's relative error
    grows as the fraction shrinks, roughly like fraction^-1 at fixed R.
    peak_n2_flux: the predicted N^2 F at its peak (``PredictedFlux.peak[1]``), finite, non-zero.
    """
    peak = float(peak_n2_flux)
    if not math.isfinite(peak) or peak == 0.0:
        raise ValueError(f"peak_n2_flux must be finite and non-zero (the predicted N^2 F at its peak), got "
                         f"{peak_n2_flux!r}")
    fraction = float(fraction)
    if not (0.0 < fraction < 1.0):
        raise ValueError(f"fraction must lie in (0, 1) (the fraction of particles the predicted flux moves across "
                         f"its peak during the window), got {fraction!r}")
    dt = float(dt)
    t0 = float(t0)
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive time step, got {dt!r}")
    if not (math.isfinite(t0) and t0 >= 0):
        raise ValueError(f"t0 must be a finite start time >= 0, got {t0!r}")
    out = {}
    for n in _check_Ns(Ns, 1):
        steps = math.ceil(fraction * n * n / abs(peak) / dt - 1e-9)
        t1 = float(f"{steps * dt:.12g}")  # a whole number of steps, without the float noise of the product
        out[n] = (min(t0, t1 / 4.0), t1)
    return out


def _same_grid(u: np.ndarray, u0: np.ndarray) -> bool:
    """Whether two velocity grids are the same (to rounding)."""
    return u.shape == u0.shape and bool(np.allclose(u, u0, rtol=1e-12, atol=1e-12 * max(1.0, np.max(np.abs(u0)))))


def weighted_line_fit(x, y, err) -> dict:
    """Weighted least-squares straight line y = a + b x (weights 1/err^2): a, b, their 1-sigma
    errors (not rescaled by chi^2), and chi^2/dof (None with two points)."""
    x, y, err = (np.asarray(v, dtype=float) for v in (x, y, err))
    if x.ndim != 1 or x.size < 2 or y.shape != x.shape or err.shape != x.shape:
        raise ValueError(f"x, y and err must be 1-D arrays of one length >= 2, got {x.shape}, {y.shape}, {err.shape}")
    if not np.all(np.isfinite(err) & (err > 0)):
        raise ValueError("err must be finite and > 0 at every point")
    w = 1.0 / err**2
    X = np.stack([np.ones_like(x), x], axis=1)
    cov = np.linalg.inv(X.T @ (w[:, None] * X))
    a, b = cov @ X.T @ (w * y)
    dof = x.size - 2
    chi2 = float(np.sum(w * (y - a - b * x) ** 2))
    return {"a": float(a), "b": float(b), "a_err": float(math.sqrt(cov[0, 0])), "b_err": float(math.sqrt(cov[1, 1])),
            "chi2_dof": chi2 / dof if dof > 0 else None}


def _symmetric(u: np.ndarray) -> bool:
    scale = max(float(np.max(np.abs(u))), 1e-300)
    return bool(np.allclose(u, -u[::-1], rtol=0.0, atol=1e-9 * scale))


def _independent(u: np.ndarray, folded: bool) -> np.ndarray:
    """Points carrying independent information: u > 0 for a folded (odd) profile, all otherwise."""
    return (u > 0) if folded else np.ones(u.shape, dtype=bool)


def scaled_profile(df, sigma: float):
    """The same velocity profile with dispersion ``sigma`` (phi_sigma(v) = phi_1(v/sigma)/sigma).

    Gaussian and generalised Gaussian are rebuilt from their parameters; a Tabulated profile is
    stretched (grid x sigma/sigma_df, pdf / (sigma/sigma_df)).
    """
    from numerics.models.distributions import Tabulated, distribution_from_dict

    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    if isinstance(df, Tabulated):
        s = sigma / df.sigma
        return Tabulated(df.grid * s, df.values / s)
    params = dict(df.parameters())
    if "sigma" not in params:
        raise ValueError(f"cannot rescale the profile {df!r}: it has no sigma parameter")
    params["sigma"] = sigma
    return distribution_from_dict(params)


# ============================================================================ the prediction
def hot_profile(potential, Q: float, n: float = 4.0, *, kmax: int | None = None):
    """The generalised Gaussian of index ``n`` whose dispersion gives the stability parameter
    ``Q`` = sigma^2 / U* for ``potential`` (U* = its largest attractive harmonic up to ``kmax``;
    HMF: U* = 1/2). Raises when Q is not a finite number > 0."""
    from numerics.models import GeneralizedGaussian

    if isinstance(Q, bool) or not isinstance(Q, (int, float, np.floating)) or not (math.isfinite(Q) and Q > 0):
        raise ValueError(f"Q must be a finite number > 0 (sigma^2 / U*), got {Q!r}")
    return GeneralizedGaussian(n, math.sqrt(float(Q) * potential.attractive_max(kmax)))


@dataclass(frozen=True)
class PredictedFlux:
    """The 1/N^2 operator's N^2 F on a velocity grid ``u`` (N-independent: the coefficient of 1/N^2).

    ``n2_flux``, ``n2_error`` on ``u`` (the error is the quadrature estimate of
    :func:`numerics.kinetic.flux`); ``evaluated``: the velocities at which the operator was
    evaluated (for an even profile only the distinct |u| > 0: the flux is odd, 0 at u = 0, and the
    grid values are its odd extension, not an interpolation); ``result``: the
    :class:`numerics.kinetic.FluxResult` there (meta, content hash, timings); ``seconds``: wall time.
    ``collective``: :func:`numerics.models.stability.collective_indicator` of the state (how much
    dressing the couplings by the static dielectric function would scale the flux; the prediction
    is the bare, hot-limit one), or None where Q <= Q_c was evaluated with ``allow_unstable``.
    """

    u: np.ndarray
    n2_flux: np.ndarray
    n2_error: np.ndarray
    evaluated: np.ndarray
    result: object
    seconds: float
    collective: dict | None = None

    @property
    def peak(self) -> tuple[float, float]:
        """(u, N^2 F) at the largest |N^2 F| on the grid (the smallest such u > 0 when the flux is odd)."""
        a = np.abs(self.n2_flux)
        candidates = np.flatnonzero(a == a.max())
        j = max(candidates, key=lambda i: (self.u[i] > 0, -abs(self.u[i])))
        return float(self.u[j]), float(self.n2_flux[j])

    def to_dict(self) -> dict:
        collective = None if self.collective is None else {
            "k": self.collective["k"], "indicator": self.collective["indicator"],
            "eps": [self.collective["eps"].real, self.collective["eps"].imag], "omega": self.collective["omega"]}
        return {"u": self.u.tolist(), "N2_flux": self.n2_flux.tolist(), "N2_error": self.n2_error.tolist(),
                "seconds": self.seconds, "operator_hash": dict(getattr(self.result, "meta", {}) or {}).get("content_hash"),
                "collective_indicator": collective}


def predict_n2_flux(potential, df, u, *, kmax: int | None = None, backend: str = "jax",
                    allow_unstable: bool = False, **flux_options) -> PredictedFlux:
    """N^2 F predicted by the derived 1/N^2 operator (:func:`numerics.kinetic.flux`) on the grid ``u``.

    For an even ``df`` the operator is evaluated once per distinct |u| > 0 and the grid filled by
    the odd extension (F(-u) = -F(u), F(0) = 0); otherwise at every u. ``kmax``, ``backend``,
    ``allow_unstable`` and ``flux_options`` go to :func:`numerics.kinetic.flux` (which raises for
    Q <= Q_c unless ``allow_unstable``). The single place where the examples and ``bbgky demo``
    turn the operator into the N^2 F that :func:`compare` takes.
    """
    from numerics.kinetic import flux
    from numerics.models.stability import collective_indicator

    u = np.asarray(u, dtype=float)
    if u.ndim != 1 or u.size == 0 or not np.all(np.isfinite(u)):
        raise ValueError(f"u must be a non-empty 1-D array of finite velocities, got shape {u.shape}")
    N = 2.0  # any N: flux() returns F_2 / N^2
    start = time.perf_counter()
    if df.is_even:  # evaluate at the distinct |u| > 0 (|u|, |-u| equal to rounding count as one); F odd, F(0) = 0
        a = np.abs(u)
        scale = float(a.max())
        evaluated, inverse = np.unique(np.round(a[a > 0] / max(scale, 1e-300), 12), return_inverse=True)
        evaluated = evaluated * scale
        if evaluated.size == 0:
            raise ValueError("u has no point other than 0, where the flux of an even profile vanishes")
        sign, where = np.sign(u), a > 0
    else:
        evaluated, inverse = u.copy(), np.arange(u.size)
        sign, where = np.ones_like(u), np.ones(u.shape, dtype=bool)
    res = flux(potential, df, evaluated, N=N, kmax=kmax, backend=backend, allow_unstable=allow_unstable,
               **flux_options)
    n2, err = np.zeros_like(u), np.zeros_like(u)
    n2[where] = sign[where] * N**2 * res.flux[inverse]
    err[where] = N**2 * res.error[inverse]
    try:
        collective = collective_indicator(potential, df, kmax=kmax)
    except ValueError:
        if not allow_unstable:  # flux() would have raised first; this is not expected
            raise
        collective = None  # Q <= Q_c, evaluated on request: the indicator diverges or is meaningless
    return PredictedFlux(u=u, n2_flux=n2, n2_error=err, evaluated=evaluated, result=res,
                         seconds=time.perf_counter() - start, collective=collective)


# ============================================================================ the ensemble
@dataclass
class FluxEnsemble:
    """Flux measurements of one set-up at several N (see :func:`flux_ensemble`).

    ``measurements[i]`` is the :class:`FluxMeasurement` at ``Ns[i]`` (ascending N), all on the
    grid :attr:`u`, each over its own fit window (:attr:`windows`; one shared window unless the
    windows were matched per N, :func:`matched_windows`). Per N: ``Rs`` realisations, ``seeds`` (the int seed
    passed to :func:`numerics.nbody.simulate`), ``wall_times`` (s, the whole simulate call,
    JIT compilation included), ``run_times`` (s, the engine's own integration time),
    ``particle_steps_per_s`` (N R n_steps / run_time), ``energy_errors`` (largest relative energy
    error of any realisation at any snapshot), ``even_chi2_dof`` (chi^2/dof of
    the even part (F(u) + F(-u))/2 of the *unfolded* flux against 0 over u > 0, with the
    covariance across u when R is large enough, over the u > 0 with support >= MIN_SUPPORT: ~1
    when the measured flux is odd, as it must be for an even df; NaN when not measured).
    The covariance across u and the support of each N live in its measurement
    (:attr:`FluxMeasurement.covariance`, :attr:`FluxMeasurement.support`), and :attr:`covariances`,
    :attr:`supports` read them there: points supported by fewer than min(:data:`MIN_SUPPORT`, R // 2)
    realisations are left out of the fits and chi^2.
    ``params``: the set-up (potential, df, t_end, dt, window, backend, ...), JSON-able.
    ``units``: "t" (the run's time) or "tau" (tau = sigma t, velocities in units of sigma; see
    :meth:`rescaled`).
    """

    Ns: tuple[int, ...]
    measurements: tuple[FluxMeasurement, ...]
    Rs: tuple[int, ...] = ()
    seeds: tuple[int | None, ...] = ()
    wall_times: tuple[float, ...] = ()
    run_times: tuple[float, ...] = ()
    particle_steps_per_s: tuple[float, ...] = ()
    energy_errors: tuple[float, ...] = ()
    even_chi2_dof: tuple[float, ...] = ()
    params: dict = field(default_factory=dict)
    units: str = "t"

    def __post_init__(self):
        K = len(self.Ns)
        if K == 0 or len(self.measurements) != K:
            raise ValueError(f"measurements ({len(self.measurements)}) must pair one-to-one with Ns ({self.Ns})")
        nan = (float("nan"),) * K
        for name, default in (("Rs", tuple(m.n_realisations for m in self.measurements)), ("seeds", (None,) * K),
                              ("wall_times", nan), ("run_times", nan), ("particle_steps_per_s", nan),
                              ("energy_errors", nan), ("even_chi2_dof", nan)):
            value = tuple(getattr(self, name)) or default
            if len(value) != K:
                raise ValueError(f"{name} has {len(value)} entries, Ns has {K}")
            setattr(self, name, value)

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_measurements(cls, measurements: Sequence[FluxMeasurement], *, covariances=None, supports=None,
                          **fields) -> "FluxEnsemble":
        """An ensemble from per-N measurements (e.g. loaded from files, or synthetic).

        Checks that every measurement knows its N, that the N are distinct, the u grids equal
        and the folding the same; sorts by N (extra per-N fields are sorted along).
        ``covariances``, ``supports``: one per measurement (or None each) to set on the measurements
        (:attr:`FluxMeasurement.covariance`, :attr:`FluxMeasurement.support`), e.g. for synthetic data.
        """
        ms = list(measurements)
        if not ms:
            raise ValueError("measurements is empty")
        for name, values in (("covariance", covariances), ("support", supports)):
            if values is not None:
                values = list(values)
                if len(values) != len(ms):
                    raise ValueError(f"{name}s has {len(values)} entries, measurements has {len(ms)}")
                ms = [replace(m, **{name: v}) for m, v in zip(ms, values)]
        for i, m in enumerate(ms):
            if not isinstance(m, FluxMeasurement):
                raise TypeError(f"measurements[{i}] is a {type(m).__name__}, not a FluxMeasurement")
            if m.N is None:
                raise ValueError(f"measurements[{i}] does not record N (FluxMeasurement.N is None)")
        Ns = [m.N for m in ms]
        if len(set(Ns)) != len(Ns):
            raise ValueError(f"measurements repeat a value of N: {Ns}")
        u0 = np.asarray(ms[0].u, dtype=float)
        for i, m in enumerate(ms[1:], 1):
            u = np.asarray(m.u, dtype=float)
            if not _same_grid(u, u0):
                raise ValueError(f"measurements have different u grids: N = {m.N} ({u.size} points, "
                                 f"{u[0]:g}..{u[-1]:g}) vs N = {ms[0].N} ({u0.size} points, {u0[0]:g}..{u0[-1]:g}); "
                                 "all N must be measured on the same u_grid")
            if bool(m.folded) != bool(ms[0].folded):
                raise ValueError(f"measurements mix folded and unfolded fluxes (N = {m.N} vs N = {ms[0].N})")
        order = np.argsort(Ns)
        sorted_fields = {}
        for name, value in fields.items():
            if name in ("params", "units"):
                sorted_fields[name] = value
            else:
                value = tuple(value)
                if len(value) != len(ms):
                    raise ValueError(f"{name} has {len(value)} entries, measurements has {len(ms)}")
                sorted_fields[name] = tuple(value[i] for i in order)
        return cls(Ns=tuple(int(Ns[i]) for i in order), measurements=tuple(ms[i] for i in order), **sorted_fields)

    # -- views -----------------------------------------------------------------------------
    @property
    def u(self) -> np.ndarray:
        return np.asarray(self.measurements[0].u, dtype=float)

    @property
    def folded(self) -> bool:
        return bool(self.measurements[0].folded)

    @property
    def covariances(self) -> tuple:
        """Per N the (U, U) covariance of the mean flux across u (folded like it), or None."""
        return tuple(m.covariance for m in self.measurements)

    @property
    def supports(self) -> tuple:
        """Per N the (U,) number of realisations with a non-zero flux slope at each u, or None."""
        return tuple(m.support for m in self.measurements)

    @property
    def window(self) -> tuple[float, float]:
        """The fit window of the smallest N (the shared one unless windows are matched per N)."""
        return tuple(self.measurements[0].window)

    @property
    def windows(self) -> tuple[tuple[float, float], ...]:
        """The fit window at each N."""
        return tuple(tuple(float(x) for x in m.window) for m in self.measurements)

    @property
    def n2_flux(self) -> np.ndarray:
        """N^2 F, shape (len(Ns), U)."""
        return np.array([n * n * np.asarray(m.flux, dtype=float) for n, m in zip(self.Ns, self.measurements)])

    @property
    def n2_lower(self) -> np.ndarray:
        return np.array([n * n * np.asarray(m.lower, dtype=float) for n, m in zip(self.Ns, self.measurements)])

    @property
    def n2_upper(self) -> np.ndarray:
        return np.array([n * n * np.asarray(m.upper, dtype=float) for n, m in zip(self.Ns, self.measurements)])

    @property
    def n2_err(self) -> np.ndarray:
        """N^2 x half width of the 16%-84% bootstrap band (one sigma), shape (len(Ns), U)."""
        return 0.5 * (self.n2_upper - self.n2_lower)

    @property
    def supported(self) -> np.ndarray:
        """(len(Ns), U) bool: at least min(MIN_SUPPORT, R // 2) realisations have a non-zero slope
        there (all True where the support is not known)."""
        return np.array([supported_mask(sup, R, self.u.size) for sup, R in zip(self.supports, self.Rs)])

    def measurement(self, N: int) -> FluxMeasurement:
        if N not in self.Ns:
            raise ValueError(f"N = {N!r} was not measured; Ns = {self.Ns}")
        return self.measurements[self.Ns.index(N)]

    def peaks(self) -> list[dict]:
        """Per N: the largest |N^2 F| over the independent points, its u, value, error and S/N."""
        out = []
        mask = _independent(self.u, self.folded)
        for n, y, e in zip(self.Ns, self.n2_flux, self.n2_err):
            idx = np.flatnonzero(mask)
            j = int(idx[np.argmax(np.abs(y[idx]))])
            out.append({"N": n, "u": float(self.u[j]), "n2_flux": float(y[j]), "n2_err": float(e[j]),
                        "snr": float(abs(y[j]) / e[j]) if e[j] > 0 else float("nan")})
        return out

    def rescaled(self, sigma: float) -> "FluxEnsemble":
        """The same ensemble in units of sigma: w = u / sigma, tau = sigma t, flux per unit tau.

        The fraction of particles with v < u = sigma w is unchanged, and d/dtau = (1/sigma) d/dt,
        so F_tau(w) = F_t(sigma w) / sigma (errors and covariances alike); windows become sigma t.
        Comparing these at fixed profile isolates the dependence on Q (:func:`q_scaling`).
        """
        if self.units != "t":
            raise ValueError(f"this ensemble is already in units {self.units!r}")
        s = float(sigma)
        ms = tuple(replace(m, u=np.asarray(m.u) / s, flux=np.asarray(m.flux) / s, lower=np.asarray(m.lower) / s,
                           upper=np.asarray(m.upper) / s, window=(m.window[0] * s, m.window[1] * s),
                           covariance=None if m.covariance is None else np.asarray(m.covariance) / (s * s))
                   for m in self.measurements)
        params = dict(self.params)
        params["sigma"] = s
        params["units_note"] = "w = u/sigma, tau = sigma t, flux F_tau(w) = F_t(sigma w)/sigma"
        return replace(self, measurements=ms, params=params, units="tau")

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self, *, include_covariances: bool = False) -> dict:
        """JSON-ready summary: per-N measurements (with their supports, and their covariances across u when
        ``include_covariances``), N^2 F with its band, timings, peaks, set-up."""
        per_n = []
        for i, (n, m) in enumerate(zip(self.Ns, self.measurements)):
            md = m.to_dict()
            if not include_covariances:
                md.pop("covariance", None)
            entry = {
                "N": n, "R": self.Rs[i], "seed": self.seeds[i], "wall_time_s": self.wall_times[i],
                "run_time_s": self.run_times[i], "particle_steps_per_s": self.particle_steps_per_s[i],
                "max_relative_energy_error": self.energy_errors[i], "even_part_chi2_dof": self.even_chi2_dof[i],
                "n2_flux": self.n2_flux[i], "n2_lower": self.n2_lower[i], "n2_upper": self.n2_upper[i],
                "n2_err": self.n2_err[i], "measurement": md,
            }
            per_n.append(entry)
        return _jsonable({
            "convention": CONVENTION, "units": self.units, "Ns": list(self.Ns), "u": self.u,
            "window": _shared_or_per_N([list(w) for w in self.windows]), "folded": self.folded,
            "peaks": self.peaks(), "per_N": per_n,
            "params": self.params,
        })

    @classmethod
    def from_dict(cls, data: dict) -> "FluxEnsemble":
        """Inverse of :meth:`to_dict` (covariances only if they were included; files that kept covariance and
        support beside the measurement, as written before they moved into it, are read too)."""
        per_n = data["per_N"]

        def nan_or(x):
            return float("nan") if x is None else float(x)

        ms = []
        for e in per_n:
            md = dict(e["measurement"])
            for key in ("covariance", "support"):
                if md.get(key) is None and e.get(key) is not None:
                    md[key] = e[key]
            for key in ("u", "flux", "lower", "upper") + (("covariance",) if md.get("covariance") is not None else ()):
                md[key] = json_floats(md[key])
            ms.append(FluxMeasurement.from_dict(md))
        return cls.from_measurements(
            ms, Rs=[e["R"] for e in per_n], seeds=[e.get("seed") for e in per_n],
            wall_times=[nan_or(e.get("wall_time_s")) for e in per_n],
            run_times=[nan_or(e.get("run_time_s")) for e in per_n],
            particle_steps_per_s=[nan_or(e.get("particle_steps_per_s")) for e in per_n],
            energy_errors=[nan_or(e.get("max_relative_energy_error")) for e in per_n],
            even_chi2_dof=[nan_or(e.get("even_part_chi2_dof")) for e in per_n],
            params=data.get("params", {}), units=data.get("units", "t"))


def merge_runs(measurements: Sequence[FluxMeasurement], seeds: Sequence[int]) -> FluxMeasurement:
    """One measurement from independent runs of one set-up at one N (e.g. runs with different seeds).

    The merged flux is the mean over all realisations, sum_i R_i F_i / sum_i R_i, i.e. what one run
    with every realisation would have measured; its one-sigma error is sqrt(sum_i (R_i e_i)^2) /
    sum_i R_i with e_i each run's :attr:`FluxMeasurement.stderr`. The band returned is the
    symmetric mean +- error (it is propagated, not bootstrapped: ``n_boot`` is 0). The covariance
    across u, sum_i (R_i / sum R)^2 C_i, is kept when every run carries one, and the support (realisations
    with a non-zero slope at u), sum_i S_i, when every run records it (else None).

    ``seeds``: the simulation seed of each run. Runs that share a seed share their realisations
    and are refused, as are runs that differ in N (or do not record it), u grid, window or folding.
    """
    ms = list(measurements)
    seeds = list(seeds)
    if not ms:
        raise ValueError("measurements is empty: nothing to merge")
    if len(seeds) != len(ms):
        raise ValueError(f"seeds has {len(seeds)} entries, measurements has {len(ms)}: one seed per run")
    for i, m in enumerate(ms):
        if not isinstance(m, FluxMeasurement):
            raise TypeError(f"measurements[{i}] is a {type(m).__name__}, not a FluxMeasurement")
    first = ms[0]
    if first.N is None:
        raise ValueError("measurements[0] does not record N (FluxMeasurement.N is None); only runs at one known N merge")
    u0 = np.asarray(first.u, dtype=float)
    for i, m in enumerate(ms[1:], 1):
        if m.N != first.N:
            raise ValueError(f"measurements[{i}] is at N = {m.N}, measurements[0] at N = {first.N}: "
                             "only runs at one N merge (use FluxEnsemble for several N)")
        u = np.asarray(m.u, dtype=float)
        if not _same_grid(u, u0):
            raise ValueError(f"measurements[{i}] has another u grid ({u.size} points) than measurements[0] "
                             f"({u0.size} points)")
        if tuple(map(float, m.window)) != tuple(map(float, first.window)):
            raise ValueError(f"measurements[{i}] has the window {tuple(m.window)}, measurements[0] {tuple(first.window)}")
        if bool(m.folded) != bool(first.folded):
            raise ValueError(f"measurements[{i}] and measurements[0] differ in folding")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat ({seeds}): runs with one seed share their realisations and are not independent")
    R = np.array([m.n_realisations for m in ms], dtype=float)
    if np.any(R < 1):
        raise ValueError(f"every run needs n_realisations >= 1, got {R.astype(int).tolist()}")
    total = R.sum()
    flux = sum(r * np.asarray(m.flux, dtype=float) for r, m in zip(R, ms)) / total
    err = np.sqrt(sum((r * np.asarray(m.stderr, dtype=float)) ** 2 for r, m in zip(R, ms))) / total
    covariance = None
    if all(m.covariance is not None for m in ms):
        covariance = sum((r / total) ** 2 * np.asarray(m.covariance, dtype=float) for r, m in zip(R, ms))
    support = None
    if all(m.support is not None for m in ms):
        support = sum(np.asarray(m.support, dtype=int) for m in ms)
    return FluxMeasurement(u=u0, flux=flux, lower=flux - err, upper=flux + err, window=tuple(first.window),
                           n_realisations=int(total), N=first.N, folded=first.folded,
                           fit_points=min(m.fit_points for m in ms), n_boot=0, seed=None, covariance=covariance,
                           support=support)


def _even_part_chi2(run, window) -> float:
    """chi^2/dof of the even part of the per-realisation slopes against 0.

    (The covariance of the mean flux and the support come with the measurement, :func:`measure_flux`.)
    The even part e_r(u) = (s_r(u) + s_r(-u))/2 must average to 0 when the df is even; its
    chi^2/dof over the u > 0 with a non-zero spread uses the covariance of the mean across u
    (neighbouring u are strongly correlated) when it is invertible, else the diagonal (then only
    its mean is 1, its spread is wider than a chi^2 law's). Only points where >= MIN_SUPPORT
    (or R // 2 when R is small)
    realisations have a non-zero even part enter.
    """
    slopes, _ = flux_slopes(run.times, run.cumulative, window)
    R = slopes.shape[0]
    u = np.asarray(run.u_grid, dtype=float)
    even_chi2 = float("nan")
    if _symmetric(u):
        even = 0.5 * (slopes + slopes[:, ::-1])
        mean = even.mean(axis=0)
        se = even.std(axis=0, ddof=1) / math.sqrt(R)
        use = (u > 0) & (se > 0) & (np.count_nonzero(even, axis=0) >= _support_threshold(R))
        if np.any(use):
            n_use = int(np.count_nonzero(use))
            value = None
            if R > 2 * n_use + 2:
                value = _chi2_with_covariance(mean[use], np.atleast_2d(np.cov(even[:, use], rowvar=False) / R))
            even_chi2 = float(np.sum((mean[use] / se[use]) ** 2) if value is None else value) / n_use
    return even_chi2


def _per_N(name: str, value, Ns, what: str | None = None) -> dict:
    """One value for every N, or a mapping N -> value (``what``, default ``name``) covering every N."""
    if isinstance(value, Mapping):
        missing = [n for n in Ns if n not in value]
        if missing:
            raise ValueError(f"{name} (a mapping N -> {what or name}) has no entry for N = {missing}")
        return {n: value[n] for n in Ns}
    return {n: value for n in Ns}


def _shared_or_per_N(values: list):
    return values[0] if all(v == values[0] for v in values) else values


def flux_ensemble(potential, df, Ns, R, t_end, dt: float, window, *, backend: str = "jax", seed: int = 0,
                  kmax: int | None = None, u_grid=None, progress: bool = True, n_snapshots: int = 101,
                  n_boot: int = 1000, method: str = "yoshida4", fold: bool | None = None,
                  max_energy_error: float | None = 1e-3, save_dir=None) -> FluxEnsemble:
    """Run an N-body ensemble for each N in ``Ns`` and measure the flux over ``window``.

    potential, df, dt, kmax, method, backend, max_energy_error: as in
    :func:`numerics.nbody.simulate` (same for every N).
    Ns: distinct particle numbers (>= 2), run in ascending order.
    R: realisations, an int for every N, a sequence paired with the sorted Ns, or a mapping N -> R.
    t_end: duration of each run, one number or a mapping N -> t_end.
    window: (t0, t1) of the linear fit, or a mapping N -> (t0, t1) (e.g. :func:`matched_windows`),
        inside [0, t_end] and holding >= 3 snapshots (checked for every N before anything runs).
    seed: base seed; the run with N particles uses ``derived_seed(seed, N)`` (recorded).
    u_grid: common velocity grid (default linspace(-3 sigma, 3 sigma, 61), sigma of the df).
    n_snapshots: snapshots from 0 to t_end (the slope noise comes from slow velocity diffusion,
        so a denser cadence hardly reduces it; the default is plenty).
    n_boot: bootstrap replicates of :func:`numerics.nbody.measure_flux` (16%/84% band).
    fold: None = fold iff the df is even (as measure_flux).
    save_dir: if given, each run is saved there as ``run_N{N}.npz`` for re-analysis.
    progress: the engine's progress bar plus one summary line per N (on stderr).
    """
    from numerics.nbody import simulate
    from numerics.nbody.engine import _check_positive

    Ns = _check_Ns(Ns)
    Rs = _check_R(R, Ns)
    t_ends = {n: _check_positive("t_end", x, f"duration of the run at N = {n}")
              for n, x in _per_N("t_end", t_end, Ns).items()}
    dt = _check_positive("dt", dt, "time step")
    if isinstance(n_snapshots, bool) or not isinstance(n_snapshots, (int, np.integer)) or n_snapshots < 3:
        raise ValueError(f"n_snapshots must be an integer >= 3, got {n_snapshots!r}")
    windows = {n: _check_window(w, t_ends[n], dt, int(n_snapshots))
               for n, w in _per_N("window", window, Ns).items()}
    if u_grid is None:
        u_grid = np.linspace(-3.0 * df.sigma, 3.0 * df.sigma, 61)
    u_grid = np.asarray(u_grid, dtype=float)
    if u_grid.ndim != 1 or u_grid.size < 2 or not np.all(np.isfinite(u_grid)) or np.any(np.diff(u_grid) <= 0):
        raise ValueError(f"u_grid must be a 1D array of >= 2 finite, strictly increasing velocities, got shape "
                         f"{u_grid.shape}")
    if save_dir is not None:
        save_dir = Path(save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)

    rows = []
    for N in Ns:
        seed_N = derived_seed(seed, N)
        start = time.perf_counter()
        run = simulate(potential, df, N, Rs[N], t_ends[N], dt, kmax=kmax, method=method, backend=backend, seed=seed_N,
                       n_snapshots=int(n_snapshots), u_grid=u_grid, max_energy_error=max_energy_error,
                       progress=progress)
        wall = time.perf_counter() - start
        if save_dir is not None:
            run.save(save_dir / f"run_N{N}.npz")
        rows.append(_measure_run(run, windows[N], fold=fold, n_boot=n_boot, wall=wall, progress=progress))
        del run
    params = {
        "potential": potential.parameters(), "df": df.parameters(), "sigma": float(df.sigma),
        # one value when every N shares it, else one per N (paired with the sorted Ns)
        "t_end": _shared_or_per_N([t_ends[n] for n in Ns]),
        "dt": dt, "window": _shared_or_per_N([list(windows[n]) for n in Ns]), "backend": backend,
        "method": method, "kmax": kmax,
        "n_snapshots": int(n_snapshots), "n_boot": int(n_boot), "seed": int(seed),
        "seeding": "run with N particles: simulate(seed=derived_seed(seed, N)), "
                   "derived_seed = SeedSequence([seed, N]).generate_state(2, uint32) packed to 63 bits",
        "u_grid": u_grid, "max_energy_error": max_energy_error,
    }
    return _ensemble(rows, params)


def _measure_run(run, window, *, fold, n_boot: int, wall: float, progress: bool) -> dict:
    """One run's measurement and diagnostics, as :func:`flux_ensemble` records them per N (the
    bootstrap seed is the run's own simulation seed, so a stored run re-measures identically)."""
    from numerics.nbody import measure_flux

    N, R = int(run.params["N"]), int(run.params["R"])
    seed_N = int(run.params["seed"])
    m = measure_flux(run, window, fold=fold, n_boot=n_boot, seed=seed_N)
    even_chi2 = _even_part_chi2(run, window)
    n_steps = int(run.params["n_steps"])
    rate = N * R * n_steps / run.wall_time if run.wall_time > 0 else float("nan")
    err = float(np.nanmax(run.relative_energy_error))
    if progress:
        u_grid = np.asarray(run.u_grid, dtype=float)
        y, e = N * N * m.flux, N * N * m.stderr
        idx = np.flatnonzero(_independent(u_grid, m.folded))
        j = int(idx[np.argmax(np.abs(y[idx]))])
        print(f"[flux_ensemble] N = {N}, R = {R}: {wall:.1f} s ({rate:.3g} particle-steps/s), "
              f"max rel dE {err:.1e}; peak N^2 F = {y[j]:.4g} +- {e[j]:.2g} at u = {u_grid[j]:.3g}, "
              f"even part chi2/dof {even_chi2:.2f}", file=sys.stderr, flush=True)
    return {"measurement": m, "R": R, "seed": seed_N, "wall": wall, "run_time": float(run.wall_time), "rate": rate,
            "energy": err, "even": even_chi2}


def _ensemble(rows: list, params: dict) -> FluxEnsemble:
    return FluxEnsemble.from_measurements(
        [r["measurement"] for r in rows], Rs=[r["R"] for r in rows], seeds=[r["seed"] for r in rows],
        wall_times=[r["wall"] for r in rows], run_times=[r["run_time"] for r in rows],
        particle_steps_per_s=[r["rate"] for r in rows], energy_errors=[r["energy"] for r in rows],
        even_chi2_dof=[r["even"] for r in rows], params=params)


def ensemble_from_runs(runs, window, *, fold: bool | None = None, n_boot: int = 1000,
                       progress: bool = False) -> FluxEnsemble:
    """Measure stored N-body runs (``flux_ensemble(..., save_dir=...)``, ``bbgky nbody``) as
    :func:`flux_ensemble` measures a fresh run: same measurement, bootstrap seed (the run's own
    seed), covariance, diagnostics.

    runs: :class:`numerics.nbody.NBodyResult` objects or paths of their NPZ files, one per N
        (distinct N, one u grid).
    window: (t0, t1), or a mapping N -> (t0, t1), inside every run's snapshots (>= 3 of them).
    Wall times are the runs' own (``wall_time``): nothing is simulated here.
    """
    from numerics.nbody import load_result

    loaded = [load_result(r) if isinstance(r, (str, Path)) else r for r in runs]
    if not loaded:
        raise ValueError("runs is empty: nothing to measure")
    Ns = _check_Ns([int(r.params["N"]) for r in loaded])
    windows = _per_N("window", window, Ns)
    rows = []
    for run in sorted(loaded, key=lambda r: int(r.params["N"])):
        N = int(run.params["N"])
        w = _check_window(windows[N], float(run.params["t_end"]), float(run.params["dt"]), int(run.params["n_snapshots"]))
        rows.append(_measure_run(run, w, fold=fold, n_boot=n_boot, wall=float(run.wall_time), progress=progress))
    first = loaded[0].params
    params = {"potential": first["potential"], "df": first["df"], "sigma": float(first["df"].get("sigma", float("nan"))),
              "window": _shared_or_per_N([list(windows[n]) for n in Ns]), "n_boot": int(n_boot),
              "measured_from": "stored runs (numerics.validate.ensemble_from_runs)"}
    return _ensemble(rows, params)


# ============================================================================ 1/N extrapolation
@dataclass
class _LineFit:
    """What the point-by-point extrapolations share: at every u an intercept ``a`` and a slope ``b``
    (1-sigma errors ``a_err``, ``b_err``, covariance ``cov_ab``), ``chi2`` per u with ``dof``
    degrees of freedom, ``valid`` where the fit is defined."""

    u: np.ndarray
    a: np.ndarray
    a_err: np.ndarray
    b: np.ndarray
    b_err: np.ndarray
    cov_ab: np.ndarray
    chi2: np.ndarray
    dof: int
    valid: np.ndarray

    @property
    def chi2_dof(self) -> np.ndarray:
        """chi^2/dof per u (NaN where dof = 0 or the point is not valid)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self.chi2 / self.dof if self.dof > 0 else np.full_like(self.chi2, np.nan)
        return np.where(self.valid, out, np.nan)

    @property
    def independent(self) -> np.ndarray:
        return _independent(self.u, self.folded) & self.valid

    @property
    def global_chi2_dof(self) -> float:
        """Sum of chi^2 over the independent valid points / (their number x dof); NaN if dof = 0.

        Neighbouring u are correlated, so this has mean 1 for a good model but a wider spread
        than a chi^2 law with that many degrees of freedom.
        """
        use = self.independent
        if self.dof <= 0 or not np.any(use):
            return float("nan")
        return float(np.sum(self.chi2[use]) / (np.count_nonzero(use) * self.dof))

    def _summary_head(self) -> dict:
        raise NotImplementedError

    @property
    def label(self) -> str:
        """What :func:`compare` calls this profile."""
        raise NotImplementedError

    def summary(self) -> dict:
        """Intercept profile in numbers: the peak |a| (u, a, error, S/N), the best S/N, global chi^2/dof."""
        use = np.flatnonzero(self.independent & (self.a_err > 0))
        out = {**self._summary_head(), "dof_per_point": self.dof, "n_points": int(use.size),
               "global_chi2_dof": self.global_chi2_dof, "model": self.model, "units": self.units}
        if use.size == 0:
            out.update({"u_peak": None, "a_peak": None, "a_err_peak": None, "snr_peak": None, "max_snr": None})
            return out
        j = int(use[np.argmax(np.abs(self.a[use]))])
        snr = np.abs(self.a[use]) / self.a_err[use]
        k = int(use[np.argmax(snr)])
        out.update({
            "u_peak": float(self.u[j]), "a_peak": float(self.a[j]), "a_err_peak": float(self.a_err[j]),
            "b_peak": float(self.b[j]), "b_err_peak": float(self.b_err[j]),
            "snr_peak": float(abs(self.a[j]) / self.a_err[j]), "chi2_dof_peak": float(self.chi2_dof[j]),
            "max_snr": float(snr.max()), "u_max_snr": float(self.u[k]),
            "total_snr": float(math.sqrt(np.sum(snr**2))),
        })
        return out


@dataclass
class InverseNFit(_LineFit):
    """Result of :func:`extrapolate_inverse_N` on the grid ``u``.

    ``a``, ``a_err``: the N -> oo intercept of N^2 F and its 1-sigma error; ``b``, ``b_err``:
    the 1/N slope; ``cov_ab``: their covariance; ``chi2`` per u with ``dof`` = len(Ns) - 2;
    ``valid``: points where the fit is defined (every N has a non-zero error there, from at
    least :data:`MIN_SUPPORT` realisations when the support is known; where the
    flux and its error vanish at every N, e.g. u = 0 of a folded profile, a = 0 with a_err = 0
    and valid False); ``a_cov``: U x U covariance of a across u (None without the per-N
    covariances). ``folded``: the profile is odd and only u > 0 are independent.
    ``degree``: polynomial degree in 1/N (1 = the a + b/N model), ``coefficients`` (degree + 1, U):
    a, b, then the higher ones.
    """

    Ns: tuple[int, ...]
    folded: bool
    a_cov: np.ndarray | None = None
    units: str = "t"
    model: str = INVERSE_N_MODEL
    coefficients: np.ndarray | None = None
    degree: int = 1

    def _summary_head(self) -> dict:
        return {"Ns": list(self.Ns), "degree": self.degree}

    @property
    def label(self) -> str:
        return f"N -> oo intercept (Ns = {list(self.Ns)})"

    def to_dict(self) -> dict:
        return _jsonable({
            "convention": CONVENTION, "model": self.model, "units": self.units, "Ns": list(self.Ns),
            "folded": self.folded, "u": self.u, "a": self.a, "a_err": self.a_err, "b": self.b, "b_err": self.b_err,
            "cov_ab": self.cov_ab, "chi2": self.chi2, "dof": self.dof, "chi2_dof": self.chi2_dof,
            "valid": self.valid, "degree": self.degree, "coefficients": self.coefficients, "summary": self.summary(),
        })


def _as_ensemble(result) -> FluxEnsemble:
    if isinstance(result, FluxEnsemble):
        return result
    if isinstance(result, FluxMeasurement):
        return FluxEnsemble.from_measurements([result])
    try:
        items = list(result)
    except TypeError:
        raise TypeError(f"result must be a FluxEnsemble or a sequence of FluxMeasurement, got "
                        f"{type(result).__name__}") from None
    return FluxEnsemble.from_measurements(items)


def _pointwise_fit(X: np.ndarray, y: np.ndarray, s: np.ndarray, supported: np.ndarray):
    """Weighted least squares y[:, j] = X @ c[:, j] at every point j (weights 1/s^2).

    X: (K, P) design matrix shared by all points; y, s: (K, U) values and 1-sigma errors.
    Returns (coef (P, U), coef_cov (P, P, U), chi2 (U,), weights of the first coefficient (K, U),
    ok (U,)); points with a zero or non-finite error at some K, or not ``supported``, are left NaN."""
    K, U = y.shape
    P = X.shape[1]
    positive = np.all(s > 0, axis=0) & np.all(np.isfinite(s), axis=0) & supported
    coef = np.full((P, U), np.nan)
    coef_cov = np.full((P, P, U), np.nan)
    chi2 = np.full(U, np.nan)
    weights_a = np.zeros((K, U))  # coef[0, u] = sum_K weights_a[K, u] y_K(u)
    ok = np.zeros(U, dtype=bool)
    for j in np.flatnonzero(positive):
        w = 1.0 / s[:, j] ** 2
        A = X.T @ (w[:, None] * X)
        try:
            A_inv = np.linalg.inv(A)
        except np.linalg.LinAlgError:
            continue
        L = A_inv @ (X.T * w[None, :])  # (P, K): coefficients = L @ y
        coef[:, j] = L @ y[:, j]
        coef_cov[:, :, j] = A_inv
        chi2[j] = float(np.sum(w * (y[:, j] - X @ coef[:, j]) ** 2))
        weights_a[:, j] = L[0]
        ok[j] = True
    return coef, coef_cov, chi2, weights_a, ok


def _propagated_covariance(weights: np.ndarray, covs) -> np.ndarray | None:
    """Covariance across u of c(u) = sum_k weights[k, u] y_k(u) for independent profiles y_k
    with covariances ``covs[k]`` (U, U): sum_k outer(weights[k], weights[k]) * covs[k].
    None when any profile's covariance is unknown."""
    covs = list(covs)
    if any(c is None for c in covs):
        return None
    U = weights.shape[1]
    out = np.zeros((U, U))
    for k, c in enumerate(covs):
        out += np.outer(weights[k], weights[k]) * np.asarray(c, dtype=float)
    return out


def extrapolate_inverse_N(result, *, Ns: Sequence[int] | None = None, degree: int = 1) -> InverseNFit:
    """Fit N^2 F(u; N) = a(u) + b(u)/N at each u; a(u) is the N -> oo limit the 1/N^2 operator predicts.

    result: a :class:`FluxEnsemble` (or a sequence of FluxMeasurement with distinct N on one grid).
    Ns: optional subset of the measured N to fit (e.g. drop the smallest N to test the
        linear-in-1/N assumption).
    degree: polynomial degree in 1/N (default 1: a + b/N, the model of the module docstring;
        2 adds c/N^2, a check of the curvature that needs >= 4 values of N to keep a dof).
    Weighted least squares with weights 1/sigma_N^2, sigma_N = N^2 x bootstrap half width;
    errors from (X^T W X)^-1 (not rescaled by chi^2/dof); chi^2 per u with
    dof = len(Ns) - degree - 1. Needs >= degree + 1 (so >= 2) values of N.
    """
    ens = _as_ensemble(result)
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 1:
        raise ValueError(f"degree must be an integer >= 1 (polynomial degree in 1/N), got {degree!r}")
    degree = int(degree)
    if Ns is not None:
        Ns = _check_Ns(Ns)
        missing = [n for n in Ns if n not in ens.Ns]
        if missing:
            raise ValueError(f"Ns asks for N = {missing}, which the result does not hold (it has {ens.Ns})")
        keep = [ens.Ns.index(n) for n in Ns]
    else:
        keep = list(range(len(ens.Ns)))
    used = tuple(ens.Ns[i] for i in keep)
    if len(used) < 2:
        raise ValueError(f"extrapolate_inverse_N needs at least 2 values of N to fit a + b/N; got Ns = {used}")
    if len(used) < degree + 1:
        raise ValueError(f"extrapolate_inverse_N with degree = {degree} needs at least {degree + 1} values of N; "
                         f"got Ns = {used}")
    y = ens.n2_flux[keep]  # (K, U)
    s = ens.n2_err[keep]
    if not np.all(np.isfinite(y)):
        raise ValueError("the measured fluxes hold non-finite values")
    supported = np.all(ens.supported[keep], axis=0)
    K, U = y.shape
    P = degree + 1
    X = np.array([1.0 / n for n in used])[:, None] ** np.arange(P)[None, :]  # (K, P): 1, 1/N, 1/N^2, ...
    coef, coef_cov, chi2, weights_a, ok = _pointwise_fit(X, y, s, supported)
    a, b = coef[0].copy(), coef[1].copy()
    var_a, var_b, cov_ab = coef_cov[0, 0], coef_cov[1, 1], coef_cov[0, 1]
    # points where flux and error vanish at every N (u = 0 of a folded profile; tails nobody reaches)
    exact_zero = ~ok & np.all(y == 0, axis=0) & np.all(s == 0, axis=0)
    a = np.where(exact_zero, 0.0, a)
    b = np.where(exact_zero, 0.0, b)
    a_err = np.where(exact_zero, 0.0, np.sqrt(var_a))
    b_err = np.where(exact_zero, 0.0, np.sqrt(var_b))
    coef[:, exact_zero] = 0.0

    # Cov(a(u), a(u')) = sum_N c_N(u) c_N(u') N^4 Cov_N(u, u'), independent N
    a_cov = _propagated_covariance(weights_a, [None if ens.covariances[i] is None else
                                               float(n) ** 4 * np.asarray(ens.covariances[i]) for i, n in zip(keep, used)])
    model = INVERSE_N_MODEL if degree == 1 else INVERSE_N_MODEL.replace(
        "a(u) + b(u)/N", "a(u) + b(u)/N + " + " + ".join(f"c{p}(u)/N^{p}" for p in range(2, P)))
    return InverseNFit(u=ens.u, a=a, a_err=a_err, b=b, b_err=b_err, cov_ab=cov_ab, chi2=chi2, dof=K - P,
                       valid=ok, Ns=used, folded=ens.folded, a_cov=a_cov, units=ens.units, model=model,
                       coefficients=coef, degree=degree)


# ============================================================================ Q -> oo extrapolation
#: models of :func:`extrapolate_hot_limit`, by its ``finite_n`` argument
HOT_LIMIT_MODELS = {
    None: "y(w; Q) / s(Q) = A(w) + B(w) Q_c/Q",
    "shared": "y(w; Q, N) / s(Q) = A(w) + B(w) Q_c/Q + C(w)/N",
    "linear": "y(w; Q, N) / s(Q) = A(w) + B(w) Q_c/Q + C(w)/N + D(w) Q_c/(Q N)",
}
_HOT_LIMIT_NOTE = ("at each w = u/sigma, weighted least squares; y = N -> oo intercept of N^2 F (finite_n None) or N^2 F "
                   "at N; s(Q) = the bare prediction at Q over the one at the hottest Q (the operator's own scaling at "
                   "fixed profile); A(w) = the N, Q -> oo limit, on the hottest Q's grid and units")


@dataclass
class HotLimitFit(_LineFit):
    """Result of :func:`extrapolate_hot_limit`, on the grid ``u`` of the hottest Q (``Q_ref``).

    ``a``, ``a_err``: the Q -> oo (and N -> oo) limit A, in the units of Q_ref; ``b``, ``b_err``:
    the slope in Q_c/Q (the O(1/Q) correction the hot-limit operator drops, times Q/Q_c);
    ``coefficients`` (P, U): A, B, then C (the 1/N slope) and D when ``finite_n`` asks for them,
    ``coefficients_err`` their 1-sigma errors;
    ``chi2`` per u with ``dof`` = number of profiles - P. ``points``: the (Q, N) of every profile
    (N None for intercepts); ``scales``: s(Q) per value of ``Qs``; ``predicted``: the bare
    prediction at Q_ref, which A is to be compared with.
    """

    Qs: tuple[float, ...]
    Q_c: float
    Q_ref: float
    scales: np.ndarray
    predicted: np.ndarray
    folded: bool
    points: tuple = ()
    finite_n: str | None = None
    coefficients: np.ndarray | None = None
    coefficients_err: np.ndarray | None = None
    a_cov: np.ndarray | None = None
    units: str = "t"
    model: str = HOT_LIMIT_MODELS[None] + ", " + _HOT_LIMIT_NOTE

    def _summary_head(self) -> dict:
        return {"Qs": list(self.Qs), "Q_c": self.Q_c, "Q_ref": self.Q_ref, "finite_n": self.finite_n,
                "n_profiles": len(self.points)}

    @property
    def label(self) -> str:
        xs = ", ".join(f"{q / self.Q_c:.3g}" for q in self.Qs)
        how = "N -> oo, then Q -> oo" if self.finite_n is None else f"joint N, Q -> oo ({self.finite_n} 1/N slope)"
        return f"{how} intercept (Q/Q_c = {xs}; units of Q = {self.Q_ref:g})"

    def to_dict(self) -> dict:
        return _jsonable({
            "convention": CONVENTION, "model": self.model, "units": self.units, "Qs": list(self.Qs),
            "Q_c": self.Q_c, "Q_ref": self.Q_ref, "scales": self.scales, "folded": self.folded,
            "points": [list(p) for p in self.points], "finite_n": self.finite_n, "u": self.u, "a": self.a,
            "a_err": self.a_err, "b": self.b, "b_err": self.b_err, "cov_ab": self.cov_ab, "coefficients": self.coefficients,
            "coefficients_err": self.coefficients_err, "chi2": self.chi2, "dof": self.dof, "chi2_dof": self.chi2_dof, "valid": self.valid,
            "predicted": self.predicted, "summary": self.summary(),
        })


def extrapolate_hot_limit(profiles: Sequence[Mapping], Q_c: float, *, finite_n: str | None = None,
                          folded: bool = True, rtol: float = 1e-6) -> HotLimitFit:
    """Fit fluxes measured at several Q as A(w) + B(w) Q_c/Q (+ finite-N terms) at each w = u/sigma.

    The hot-limit (bare) operator is the leading term of an expansion in 1/Q: the collective terms
    and the g2 g2 sources it drops each carry one more coupling and one more DF, a relative factor
    of order Q_c/Q. A(w), the Q -> oo limit of the N -> oo flux, is therefore what the bare
    operator predicts, and B(w) measures the first correction.

    profiles: one mapping per measurement, with keys ``Q``, ``sigma`` (the velocity dispersion of
        the profile at that Q), ``u`` (its grid), ``n2_flux`` and ``n2_err`` (N^2 F and its 1-sigma
        error), ``predicted`` (the bare prediction of N^2 F on ``u``), and ``N`` when finite_n is set;
        optionally ``n2_cov``, the (U, U) covariance of ``n2_flux`` across u: when every profile
        has one, the fit's ``a_cov`` (the covariance of A across u) is propagated from them.
    Q_c: the critical Q of the profile shape (the same at every Q).
    finite_n: how the profiles depend on N.
        None: each profile is an N -> oo intercept (e.g. an :class:`InverseNFit`'s ``a``), one per
            Q (at least 2): the model is A + B Q_c/Q, fitted after the 1/N extrapolation.
        "shared": each profile is N^2 F at its N; the model adds C(w)/N with one C for every Q in
            the units of the hottest Q (the relative finite-N correction does not depend on Q).
        "linear": adds D(w) Q_c/(Q N) too, letting the 1/N slope move linearly with 1/Q (this tests
            "shared": D consistent with zero).
    folded: the profiles are odd in u (only u > 0 are independent).
    rtol: how far the ratio of two bare predictions may vary over w (it must be one number: the
        same profile shape at every Q).

    Every profile is brought to the units of the hottest Q by s(Q) = predicted(w; Q) /
    predicted(w; Q_ref), which the function checks is independent of w; errors are the
    profiles' errors over |s(Q)|, taken independent between profiles. Weighted least squares,
    errors from (X^T W X)^-1 (not rescaled by chi^2/dof), dof = number of profiles - parameters
    (0: the fit is exact and nothing tests the model).
    """
    if finite_n not in HOT_LIMIT_MODELS:
        raise ValueError(f"finite_n must be one of {list(HOT_LIMIT_MODELS)}, got {finite_n!r}")
    if not math.isfinite(Q_c) or Q_c <= 0:
        raise ValueError(f"Q_c must be a positive finite number, got {Q_c!r}")
    need = ("Q", "sigma", "u", "n2_flux", "n2_err", "predicted") + (("N",) if finite_n else ())
    for i, prof in enumerate(profiles):
        missing = [k for k in need if k not in prof]
        if missing:
            raise ValueError(f"profiles[{i}] lacks {missing} (each needs {', '.join(need)})")
        if finite_n is None and prof.get("N") is not None:
            raise ValueError(f"profiles[{i}] is at N = {prof['N']}: with finite_n=None every profile must be an "
                             "N -> oo intercept (pass finite_n='shared' to fit N^2 F at several N)")
    points = [(float(prof["Q"]), None if finite_n is None else int(prof["N"])) for prof in profiles]
    if len(set(points)) != len(points):
        raise ValueError(f"profiles hold a value of (Q, N) twice ({points}): merge them first")
    Qs = tuple(sorted({q for q, _ in points}, reverse=True))  # hottest first
    if len(Qs) < 2:
        raise ValueError(f"extrapolate_hot_limit needs at least 2 values of Q to fit A + B Q_c/Q; got Q = {list(Qs)}")
    for q in Qs:
        if not q > Q_c:
            raise ValueError(f"Q = {q:g} is not above Q_c = {Q_c:g}: the hot-limit expansion needs Q > Q_c")
    if finite_n:
        bad = [n for _, n in points if n < 2]
        if bad:
            raise ValueError(f"every N must be >= 2, got {bad}")
        if len({n for _, n in points}) < 2:
            raise ValueError("finite_n needs at least 2 values of N to fit the 1/N slope")
    ref = next(prof for prof in profiles if float(prof["Q"]) == Qs[0])
    u_ref = np.asarray(ref["u"], dtype=float)
    w_ref = u_ref / float(ref["sigma"])
    p_ref = np.asarray(ref["predicted"], dtype=float)
    shape_points = np.abs(p_ref) > 1e-3 * np.max(np.abs(p_ref))
    if not np.any(shape_points):
        raise ValueError(f"the bare prediction at Q = {Qs[0]:g} vanishes on the whole grid")
    scales = {}
    y, s, covs = [], [], []
    for (q, n), prof in zip(points, profiles):
        u = np.asarray(prof["u"], dtype=float)
        if u.shape != u_ref.shape or not np.allclose(u / float(prof["sigma"]), w_ref, rtol=1e-9, atol=1e-12):
            raise ValueError(f"the grid at Q = {q:g} is not the grid at Q = {Qs[0]:g} in w = u/sigma: measure every Q "
                             "on one grid in units of sigma")
        ratio = np.asarray(prof["predicted"], dtype=float)[shape_points] / p_ref[shape_points]
        scale = float(np.median(ratio))
        if not np.all(np.abs(ratio / scale - 1.0) <= rtol):
            raise ValueError(f"the bare predictions at Q = {q:g} and Q = {Qs[0]:g} are not one shape in u/sigma "
                             f"(their ratio varies by {np.ptp(ratio) / abs(scale):.2g} over the grid, rtol = {rtol:g}): "
                             "the profiles must differ only by their dispersion")
        if q in scales and not math.isclose(scales[q], scale, rel_tol=rtol):
            raise ValueError(f"two profiles at Q = {q:g} carry different bare predictions")
        scales[q] = scale
        y.append(np.asarray(prof["n2_flux"], dtype=float) / scale)
        s.append(np.asarray(prof["n2_err"], dtype=float) / abs(scale))
        cov = prof.get("n2_cov")
        if cov is not None:
            cov = np.asarray(cov, dtype=float)
            if cov.shape != (u_ref.size, u_ref.size):
                raise ValueError(f"profiles at Q = {q:g}: n2_cov has shape {cov.shape}, the grid {u_ref.size} points")
            cov = cov / scale**2
        covs.append(cov)
    y, s = np.array(y), np.array(s)
    x = np.array([Q_c / q for q, _ in points])
    columns = [np.ones_like(x), x]
    if finite_n:
        inv_n = np.array([1.0 / n for _, n in points])
        columns.append(inv_n)
        if finite_n == "linear":
            columns.append(x * inv_n)
    X = np.stack(columns, axis=1)
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ValueError(f"the (Q, N) of the profiles {points} do not determine the {X.shape[1]} coefficients of "
                         f"{HOT_LIMIT_MODELS[finite_n]}")
    finite = np.all(np.isfinite(y), axis=0)
    coef, coef_cov, chi2, weights_a, ok = _pointwise_fit(X, np.where(finite, y, 0.0), s, finite)
    exact_zero = ~ok & np.all(y == 0, axis=0) & np.all(s == 0, axis=0)
    coef[:, exact_zero] = 0.0
    coef_err = np.sqrt(np.stack([coef_cov[i, i] for i in range(X.shape[1])]))
    coef_err[:, exact_zero] = 0.0
    a_err, b_err = coef_err[0].copy(), coef_err[1].copy()
    return HotLimitFit(u=u_ref, a=coef[0].copy(), a_err=a_err, b=coef[1].copy(), b_err=b_err, cov_ab=coef_cov[0, 1],
                       chi2=chi2, dof=len(points) - X.shape[1], valid=ok, Qs=Qs, Q_c=float(Q_c), Q_ref=Qs[0],
                       scales=np.array([scales[q] for q in Qs]), predicted=p_ref, folded=folded, points=tuple(points),
                       finite_n=finite_n, coefficients=coef, coefficients_err=coef_err,
                       a_cov=_propagated_covariance(weights_a, covs),
                       model=HOT_LIMIT_MODELS[finite_n] + ", " + _HOT_LIMIT_NOTE)


# ============================================================================ comparison
@dataclass
class Comparison:
    """Prediction vs measurement (see :func:`compare`); all numbers over ``points``."""

    u: np.ndarray
    predicted: np.ndarray
    measured: np.ndarray
    measured_err: np.ndarray
    points: np.ndarray
    chi2: float
    dof: int
    ratio: float
    ratio_err: float
    chi2_scaled: float
    sign_agreement: float
    n_sign_points: int
    chi2_cov: float | None
    measured_label: str
    units: str = "t"
    measured_cov: np.ndarray | None = None
    measured_support: np.ndarray | None = None
    ratio_cov: float | None = None
    ratio_cov_err: float | None = None
    chi2_cov_scaled: float | None = None

    @property
    def chi2_dof(self) -> float:
        return self.chi2 / self.dof if self.dof > 0 else float("nan")

    @property
    def chi2_scaled_dof(self) -> float:
        return self.chi2_scaled / (self.dof - 1) if self.dof > 1 else float("nan")

    @property
    def chi2_cov_dof(self) -> float | None:
        return None if self.chi2_cov is None or self.dof <= 0 else self.chi2_cov / self.dof

    @property
    def chi2_cov_scaled_dof(self) -> float | None:
        return None if self.chi2_cov_scaled is None or self.dof <= 1 else self.chi2_cov_scaled / (self.dof - 1)

    @property
    def p_value(self) -> float:
        """P(chi^2 >= observed) for dof independent Gaussian points (uses chi2_cov when known)."""
        from scipy.stats import chi2 as chi2_law

        value = self.chi2_cov if self.chi2_cov is not None else self.chi2
        return float(chi2_law.sf(value, self.dof)) if self.dof > 0 else float("nan")

    @property
    def peak_snr(self) -> dict:
        """Signal-to-noise |m|/sigma of the measurement at the flux peak, over the compared points:
        ``predicted`` at the point where |predicted| is largest, ``measured`` where |measured| is."""
        m, e, p = (np.asarray(a, dtype=float)[self.points] for a in (self.measured, self.measured_err, self.predicted))
        jp, jm = int(np.argmax(np.abs(p))), int(np.argmax(np.abs(m)))
        return {"predicted": float(abs(m[jp]) / e[jp]), "u_predicted": float(self.u[self.points][jp]),
                "measured": float(abs(m[jm]) / e[jm]), "u_measured": float(self.u[self.points][jm])}

    def summary(self) -> dict:
        return _jsonable({
            "measured": self.measured_label, "n_points": self.dof, "chi2_dof": self.chi2_dof,
            "peak_snr": self.peak_snr,
            "chi2_cov_dof": self.chi2_cov_dof, "p_value": self.p_value, "ratio_measured_over_predicted": self.ratio,
            "ratio_err": self.ratio_err, "chi2_dof_after_ratio": self.chi2_scaled_dof,
            "ratio_cov": self.ratio_cov, "ratio_cov_err": self.ratio_cov_err,
            "chi2_cov_dof_after_ratio": self.chi2_cov_scaled_dof,
            "sign_agreement": self.sign_agreement, "n_sign_points": self.n_sign_points, "units": self.units,
        })

    def __str__(self) -> str:
        cov = "" if self.chi2_cov is None else f" (with covariance {self.chi2_cov_dof:.3g})"
        gls = "" if self.ratio_cov is None else (f"; with the covariance {self.ratio_cov:.3g} +- {self.ratio_cov_err:.2g} "
                                                 f"(then chi2/dof = {self.chi2_cov_scaled_dof:.3g})")
        signs = (f"signs agree at {self.sign_agreement:.0%} of the {self.n_sign_points} points with S/N >= 2"
                 if self.n_sign_points else "no point has S/N >= 2 (sign agreement undefined)")
        return (f"{self.measured_label}: chi2/dof = {self.chi2_dof:.3g}{cov} over {self.dof} points; "
                f"measured/predicted = {self.ratio:.3g} +- {self.ratio_err:.2g} (then chi2/dof = "
                f"{self.chi2_scaled_dof:.3g}){gls}; {signs}; S/N at the predicted peak {self.peak_snr['predicted']:.3g}, "
                f"at the measured peak {self.peak_snr['measured']:.3g}")

    def to_dict(self) -> dict:
        out = self.summary()
        out.update(_jsonable({"convention": CONVENTION, "u": self.u, "predicted": self.predicted,
                              "measured_values": self.measured, "measured_err": self.measured_err,
                              "points": self.points}))
        if self.measured_cov is not None:  # (U, U) covariance of measured_values, for re-analysis
            out["measured_cov"] = _jsonable(np.asarray(self.measured_cov, dtype=float))
        if self.measured_support is not None:  # (U,) realisations with a non-zero slope at u
            out["measured_support"] = _jsonable(np.asarray(self.measured_support, dtype=int))
        return out


def _measured_profile(measured, N):
    """(u, N^2 F, error, folded, covariance or None, support or None, supported, label, units) of what
    ``compare`` compares to; ``supported`` (U,) is False where too few realisations support a point
    (:data:`MIN_SUPPORT`): such points are not compared."""
    if isinstance(measured, _LineFit):
        return (measured.u, measured.a, measured.a_err, measured.folded, measured.a_cov, None,
                np.ones(np.size(measured.u), dtype=bool), measured.label, measured.units)
    if isinstance(measured, FluxEnsemble):
        if len(measured.Ns) != 1:
            raise ValueError(f"measured is an ensemble of {len(measured.Ns)} values of N {measured.Ns}: pass "
                             "extrapolate_inverse_N(result) or result.measurement(N)")
        n = measured.Ns[0]
        return (measured.u, measured.n2_flux[0], measured.n2_err[0], measured.folded,
                None if measured.covariances[0] is None else n**4 * np.asarray(measured.covariances[0]),
                measured.supports[0], measured.supported[0], f"N = {n}", measured.units)
    if isinstance(measured, FluxMeasurement):
        n = measured.N if N is None else N
        if n is None:
            raise ValueError("measured (a FluxMeasurement) does not record N; pass N=... to compare N^2 F")
        cov = None if measured.covariance is None else float(n) ** 4 * np.asarray(measured.covariance, float)
        u = np.asarray(measured.u, float)
        return (u, n * n * np.asarray(measured.flux, float), n * n * np.asarray(measured.stderr, float), measured.folded,
                cov, measured.support, supported_mask(measured.support, measured.n_realisations, u.size), f"N = {n}", "t")
    raise TypeError(f"measured must be an InverseNFit, a HotLimitFit, a FluxMeasurement or a one-N FluxEnsemble, got "
                    f"{type(measured).__name__}")


def _select_points(points, n: int) -> np.ndarray:
    if points is None:
        return np.ones(n, dtype=bool)
    p = np.asarray(points)
    if p.dtype == bool:
        if p.shape != (n,):
            raise ValueError(f"points (a boolean mask) must have shape ({n},), got {p.shape}")
        return p.copy()
    if not np.issubdtype(p.dtype, np.integer) or p.ndim != 1:
        raise ValueError("points must be None, a boolean mask over u or a 1D array of integer indices")
    if p.size and (p.min() < -n or p.max() >= n):
        raise ValueError(f"points holds indices outside 0..{n - 1}")
    mask = np.zeros(n, dtype=bool)
    mask[p] = True
    return mask


def _usable_correlation(cov: np.ndarray, rcond: float = 1e-8):
    """(standard deviations d, correlation matrix) of ``cov``, or None when it is not usable:
    non-finite, a zero variance, or singular (a sample covariance from R realisations has rank
    <= R - 1, so it needs R well above the number of points; its inverse is then biased high by
    about (R - 1)/(R - p - 2), negligible for R >> p)."""
    if not np.all(np.isfinite(cov)):
        return None
    d = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    if np.any(d <= 0):
        return None
    corr = cov / np.outer(d, d)
    eig = np.linalg.eigvalsh(corr)
    if eig[0] <= rcond * eig[-1]:
        return None
    return d, corr


def _chi2_with_covariance(r: np.ndarray, cov: np.ndarray, rcond: float = 1e-8) -> float | None:
    """r^T C^-1 r, or None when C is not usable (:func:`_usable_correlation`)."""
    usable = _usable_correlation(cov, rcond)
    if usable is None:
        return None
    d, corr = usable
    z = r / d
    value = float(z @ np.linalg.solve(corr, z))
    return value if math.isfinite(value) and value >= 0 else None


def _gls_scale(m: np.ndarray, p: np.ndarray, cov: np.ndarray, rcond: float = 1e-8):
    """Generalised least squares m = A p with covariance ``cov``: (A, its 1-sigma error, chi^2 after
    the fit), or None when ``cov`` is not usable (:func:`_usable_correlation`)."""
    usable = _usable_correlation(cov, rcond)
    if usable is None:
        return None
    d, corr = usable
    pz, mz = p / d, m / d
    cp = np.linalg.solve(corr, pz)
    spp = float(pz @ cp)
    if not spp > 0:
        return None
    A = float(cp @ mz) / spp
    rz = mz - A * pz
    return A, 1.0 / math.sqrt(spp), float(rz @ np.linalg.solve(corr, rz))


def compare(predicted_flux, measured, *, points=None, u=None, N: int | None = None) -> Comparison:
    """chi^2, amplitude ratio and sign agreement between a predicted and a measured N^2 F.

    predicted_flux: F_2(u) = N^2 F predicted by the 1/N^2 operator, in the continuity
        convention (positive = particles move up in v), M = 1, mu = 1/N, the run's time units
        (or tau units for a :meth:`FluxEnsemble.rescaled` measurement), on the measured grid:
        an array of shape (U,), or a callable evaluated at the measured u.
    measured: an :class:`InverseNFit` or a :class:`HotLimitFit` (the intercept a(u) and its error), a
        :class:`FluxMeasurement` (N^2 F at its N, or ``N``), or a one-N :class:`FluxEnsemble`.
    points: optional boolean mask or indices restricting the points compared.
    u: optional grid of ``predicted_flux``, checked against the measured grid.

    Always excluded: points with a zero or non-finite error, points that fewer than
    min(:data:`MIN_SUPPORT`, R // 2) realisations support (when the measurement records its support),
    and u <= 0 of a folded (odd) profile (mirror images of u > 0). Returned (:class:`Comparison`):
      chi2 = sum ((m - p)/sigma)^2 with dof = number of points (no free parameter);
      ratio = best-fit A in m = A p (weighted least squares), ratio_err its 1-sigma error,
        chi2_scaled the chi^2 after that fit (dof - 1);
      sign_agreement = fraction of the points with |m|/sigma >= 2 where sign(p) == sign(m)
        (NaN if there is none; n_sign_points says how many);
      chi2_cov = (m - p)^T C^-1 (m - p) with the measured covariance C when it is known, and then
        also ratio_cov, ratio_cov_err, chi2_cov_scaled: the amplitude by generalised least squares
        (with C; neighbouring points are correlated, so the weighted fit's error above, which takes
        them independent, can be too small or too large) and the chi^2 after it (dof - 1).
    """
    mu, m, err, folded, cov, support, supported, label, units = _measured_profile(measured, N)
    mu = np.asarray(mu, dtype=float)
    if callable(predicted_flux):
        p = np.asarray(predicted_flux(mu), dtype=float)
    else:
        p = np.asarray(predicted_flux, dtype=float)
    if p.shape != mu.shape:
        raise ValueError(f"predicted_flux has shape {p.shape} but the measured grid has {mu.size} points; "
                         "evaluate the prediction on measured.u")
    if u is not None:
        ug = np.asarray(u, dtype=float)
        if ug.shape != mu.shape or not np.allclose(ug, mu, rtol=1e-9, atol=1e-12):
            raise ValueError(f"u (the predicted flux's grid, {ug.size} points) does not match the measured grid "
                             f"({mu.size} points, {mu[0]:g}..{mu[-1]:g})")
    use = (_select_points(points, mu.size) & _independent(mu, folded) & supported & np.isfinite(m) & np.isfinite(err)
           & (err > 0))
    bad = np.flatnonzero(use & ~np.isfinite(p))
    if bad.size:
        raise ValueError(f"predicted_flux is not finite at {bad.size} compared point(s), e.g. u = {mu[bad[0]]:g}")
    idx = np.flatnonzero(use)
    if idx.size == 0:
        raise ValueError("no point to compare: every selected point has a zero or non-finite error, too few "
                         f"realisations supporting it (< min({MIN_SUPPORT}, R // 2)), or lies at u <= 0 of a folded "
                         "profile")
    mm, pp, ee = m[idx], p[idx], err[idx]
    chi2 = float(np.sum(((mm - pp) / ee) ** 2))
    spp = float(np.sum(pp * pp / ee**2))
    if spp > 0:
        ratio = float(np.sum(pp * mm / ee**2) / spp)
        ratio_err = float(1.0 / math.sqrt(spp))
        chi2_scaled = float(np.sum(((mm - ratio * pp) / ee) ** 2))
    else:
        ratio = ratio_err = chi2_scaled = float("nan")
    strong = np.abs(mm) / ee >= 2.0
    n_sign = int(np.count_nonzero(strong))
    agree = float(np.mean(np.sign(mm[strong]) == np.sign(pp[strong]))) if n_sign else float("nan")
    chi2_cov = gls = None
    if cov is not None:
        sub = np.asarray(cov, dtype=float)[np.ix_(idx, idx)]
        chi2_cov = _chi2_with_covariance(mm - pp, sub)
        gls = _gls_scale(mm, pp, sub)
    return Comparison(u=mu, predicted=p, measured=m, measured_err=err, points=idx, chi2=chi2, dof=int(idx.size),
                      ratio=ratio, ratio_err=ratio_err, chi2_scaled=chi2_scaled, sign_agreement=agree,
                      n_sign_points=n_sign, chi2_cov=chi2_cov, measured_label=label, units=units,
                      measured_cov=None if cov is None else np.asarray(cov, dtype=float),
                      measured_support=None if support is None else np.asarray(support, dtype=int),
                      ratio_cov=None if gls is None else gls[0], ratio_cov_err=None if gls is None else gls[1],
                      chi2_cov_scaled=None if gls is None else gls[2])


def amplitude_ratio(numerator, numerator_err, denominator, denominator_err, *, points=None,
                    iterations: int = 50) -> tuple[float, float]:
    """Best-fit r in numerator = r x denominator, with errors on both (effective variance).

    Weighted least squares with weights 1/(sigma_num^2 + r^2 sigma_den^2), iterated to a fixed
    point; returns (r, 1-sigma error). Points with a non-positive total error are skipped.
    """
    y, sy = np.asarray(numerator, float), np.asarray(numerator_err, float)
    x, sx = np.asarray(denominator, float), np.asarray(denominator_err, float)
    if not (y.shape == sy.shape == x.shape == sx.shape):
        raise ValueError("numerator, denominator and their errors must share one shape")
    use = _select_points(points, y.size) & np.isfinite(y) & np.isfinite(x) & np.isfinite(sy) & np.isfinite(sx)
    use &= (sy > 0) | (sx > 0)
    y, sy, x, sx = y[use], sy[use], x[use], sx[use]
    if y.size == 0:
        raise ValueError("amplitude_ratio: no usable point")
    w = 1.0 / np.maximum(sy**2, 1e-300)
    r = float(np.sum(w * x * y) / max(np.sum(w * x * x), 1e-300))
    for _ in range(iterations):
        w = 1.0 / np.maximum(sy**2 + r * r * sx**2, 1e-300)
        r_new = float(np.sum(w * x * y) / max(np.sum(w * x * x), 1e-300))
        if abs(r_new - r) <= 1e-12 * max(abs(r), 1e-300):
            r = r_new
            break
        r = r_new
    w = 1.0 / np.maximum(sy**2 + r * r * sx**2, 1e-300)
    return r, float(1.0 / math.sqrt(max(np.sum(w * x * x), 1e-300)))


# ============================================================================ Q scaling
@dataclass
class QScaling:
    """Result of :func:`q_scaling`: N^2 F in tau units at each Q and the amplitude ratios to the first Q."""

    Qs: tuple[float, ...]
    sigmas: tuple[float, ...]
    ensembles: tuple[FluxEnsemble, ...]  # rescaled (units "tau")
    fits: tuple[InverseNFit | None, ...]
    ratios: tuple[float, ...]
    ratio_errs: tuple[float, ...]
    expected_exponent: float = -4.0

    @property
    def expected_ratios(self) -> tuple[float, ...]:
        return tuple((q / self.Qs[0]) ** self.expected_exponent for q in self.Qs)

    @property
    def exponents(self) -> tuple[float, ...]:
        """Measured exponent p in ratio = (Q / Q_0)^p (NaN for Q_0 itself or a ratio <= 0)."""
        out = []
        for q, r in zip(self.Qs, self.ratios):
            out.append(math.log(r) / math.log(q / self.Qs[0]) if q != self.Qs[0] and r > 0 else float("nan"))
        return tuple(out)

    @property
    def exponent_errs(self) -> tuple[float, ...]:
        out = []
        for q, r, e in zip(self.Qs, self.ratios, self.ratio_errs):
            out.append(e / (r * abs(math.log(q / self.Qs[0]))) if q != self.Qs[0] and r > 0 else float("nan"))
        return tuple(out)

    def to_dict(self) -> dict:
        return _jsonable({
            "Qs": list(self.Qs), "sigmas": list(self.sigmas), "ratios_to_first_Q": list(self.ratios),
            "ratio_errs": list(self.ratio_errs), "expected_ratios": list(self.expected_ratios),
            "expected_exponent": self.expected_exponent, "exponents": list(self.exponents),
            "exponent_errs": list(self.exponent_errs),
            "units": "w = u/sigma, tau = sigma t, N^2 F per unit tau (dimensionless); sigma^2 = Q U*",
            "ensembles": [e.to_dict() for e in self.ensembles],
            "fits": [None if f is None else f.to_dict() for f in self.fits],
        })


def q_scaling(potential, df, Qs, Ns, R, tau_end: float, dtau: float, tau_window, *, w_grid=None,
              backend: str = "jax", seed: int = 0, kmax: int | None = None, progress: bool = True,
              n_snapshots: int = 101, n_boot: int = 1000, expected_exponent: float = -4.0) -> QScaling:
    """N-body flux at several Q (sigma^2 = Q U*) for one velocity profile; ratio of N^2 F amplitudes.

    Expected (PHYSICS.md section 1): at fixed profile the 1/N^2 flux scales as 1/(N^2 Q^4) when
    time is measured in units of 1/sigma, i.e. T_relax ~ N^2 Q^4 / sigma. Each Q is therefore run
    and measured in dimensionless variables: velocities w = u/sigma (grid ``w_grid``, default
    linspace(-3, 3, 61)), time tau = sigma t (``tau_end``, step ``dtau``, fit window
    ``tau_window``, all in tau; the run uses t_end = tau_end/sigma, dt = dtau/sigma, so every Q
    takes the same number of steps and snapshots and the same dimensionless window), and the
    flux per unit tau, F_tau(w) = F_t(sigma w)/sigma (:meth:`FluxEnsemble.rescaled`).

    df: the profile; it is rescaled to sigma = sqrt(Q U*) at each Q (:func:`scaled_profile`).
    Ns, R: as :func:`flux_ensemble`; with >= 2 values of N the amplitudes compared are the
        1/N intercepts a(w), with one N they are N^2 F at that N (finite-N corrections differ
        between Q, so a single-N ratio mixes them in).
    Ratio to the first Q: :func:`amplitude_ratio` of the profiles over the independent points
    (errors on both, assumed independent: the i-th Q uses ``flux_ensemble(seed=derived_seed(seed, i))``,
    so no two Q share initial conditions). Collective effects grow as Q -> Q_c and the finite-N corrections depend on
    Q, so departures from Q^-4 at low Q or small N are expected, not bugs.
    """
    Qs = tuple(float(q) for q in Qs)
    if len(Qs) < 2 or any(not (math.isfinite(q) and q > 0) for q in Qs):
        raise ValueError(f"Qs must hold at least 2 finite values > 0, got {Qs!r}")
    Ns = _check_Ns(Ns)
    try:
        tau0, tau1 = (float(t) for t in tau_window)
    except (TypeError, ValueError):
        raise ValueError(f"tau_window must be a pair (tau0, tau1), got {tau_window!r}") from None
    w_grid = np.linspace(-3.0, 3.0, 61) if w_grid is None else np.asarray(w_grid, dtype=float)
    ustar = potential.attractive_max(kmax)
    if not ustar > 0:
        raise ValueError(f"the potential has no attractive harmonic (U* = {ustar:g}); Q = sigma^2/U* is undefined")
    sigmas, ensembles, fits, profiles = [], [], [], []
    for iq, q in enumerate(Qs):
        sigma = math.sqrt(q * ustar)
        seed_q = derived_seed(seed, iq)  # independent initial conditions per Q (the ratio's error assumes it)
        ens = flux_ensemble(potential, scaled_profile(df, sigma), Ns, R, tau_end / sigma, dtau / sigma,
                            (tau0 / sigma, tau1 / sigma), backend=backend, seed=seed_q, kmax=kmax,
                            u_grid=sigma * w_grid, progress=progress, n_snapshots=n_snapshots, n_boot=n_boot)
        ens = ens.rescaled(sigma)
        ens.params["Q"] = q
        ens.params["q_scaling_seed"] = {"seed": int(seed), "index": iq, "seed_of_flux_ensemble": seed_q}
        fit = extrapolate_inverse_N(ens) if len(Ns) >= 2 else None
        sigmas.append(sigma)
        ensembles.append(ens)
        fits.append(fit)
        profiles.append((fit.a, fit.a_err, fit.independent) if fit is not None
                        else (ens.n2_flux[0], ens.n2_err[0], _independent(ens.u, ens.folded)))
    ratios, errs = [], []
    y0, e0, m0 = profiles[0]
    for y, e, m in profiles:
        r, re = amplitude_ratio(y, e, y0, e0, points=m & m0)
        ratios.append(r)
        errs.append(re)
    return QScaling(Qs=Qs, sigmas=tuple(sigmas), ensembles=tuple(ensembles), fits=tuple(fits), ratios=tuple(ratios),
                    ratio_errs=tuple(errs), expected_exponent=float(expected_exponent))


# ============================================================================ plot
def plot_ensemble(result: FluxEnsemble, path, *, fit: InverseNFit | None = None, predicted=None,
                  predicted_label: str = "prediction", title: str | None = None) -> Path:
    """PNG of N^2 F vs u for each N (line + 16%-84% band), the 1/N intercept a(u) +- 1 sigma band
    (if ``fit`` is given) and a predicted N^2 F (array on the same grid, optional). Agg canvas;
    the pyplot state is untouched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    u = result.u
    fig = Figure(figsize=(8.0, 5.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.axhline(0.0, color="0.6", lw=0.8)
    lo, hi = result.n2_lower, result.n2_upper
    for i, (n, y) in enumerate(zip(result.Ns, result.n2_flux)):
        color = f"C{i % 10}"
        ax.fill_between(u, lo[i], hi[i], color=color, alpha=0.2, lw=0)
        ax.plot(u, y, color=color, lw=1.2, label=f"N = {n}, R = {result.Rs[i]}")
    if fit is not None:
        band_lo, band_hi = fit.a - fit.a_err, fit.a + fit.a_err
        ax.fill_between(fit.u, band_lo, band_hi, color="k", alpha=0.25, lw=0)
        chi = fit.global_chi2_dof
        chi_text = "" if not math.isfinite(chi) else f", $\\chi^2$/dof = {chi:.2f}"
        ax.plot(fit.u, fit.a, color="k", lw=2.0, label=f"N $\\to\\infty$ (a + b/N fit over N = "
                f"{', '.join(map(str, fit.Ns))}{chi_text}) $\\pm 1\\sigma$")
    if predicted is not None:
        p = np.asarray(predicted, dtype=float)
        if p.shape != u.shape:
            raise ValueError(f"predicted has shape {p.shape}, the measured grid {u.shape}")
        ax.plot(u, p, color="C3", lw=1.8, ls="--", label=predicted_label)
    tau = result.units == "tau"
    ax.set_xlabel(r"velocity $w = u/\sigma$" if tau else r"velocity $u$")
    ax.set_ylabel(r"$N^2\,\mathcal{F}(u)$, $\mathcal{F} = -\,d/d%s\,$[fraction with $v<u$]" % ("\\tau" if tau else "t"))
    w = result.window
    shown = (f"window {'tau' if tau else 't'} = [{w[0]:g}, {w[1]:g}]" if len(set(result.windows)) == 1 else
             "windows matched per N: " + ", ".join(f"[{a:g}, {b:g}]" for a, b in result.windows))
    ax.set_title(title or shown +
                 f"{' (folded: odd in u)' if result.folded else ''}; positive = particles move up in v", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path
