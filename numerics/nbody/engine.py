"""Ensembles of N-body runs on the circle: initial conditions, integration, snapshots, checkpoints.

Conventions (PHYSICS.md, sections 1 and 4): each of the R independent realisations holds N
particles of mass mu = 1/N (total mass M = 1) with angles theta in [0, 2 pi) and velocities v,
pair potential U(theta) = -sum_k U_k e^{ik theta}, d v_i/dt = mu sum_j pair_force(theta_i - theta_j).
Energy E = mu sum_i v_i^2/2 + (mu^2/2) sum_{i != j} U(theta_i - theta_j) (see
:mod:`numerics.nbody.system`), momentum P = mu sum_i v_i, both per realisation.

Initial conditions: realisation r uses its own generator
``numpy.random.default_rng(numpy.random.SeedSequence(seed).spawn(R)[r])`` (the same stream as
``SeedSequence(seed, spawn_key=(r,))``, so realisation r does not depend on R); it draws N
angles uniform in [0, 2 pi), then N velocities ``df.sample(rng, N)``; finally the mean velocity
of each realisation is subtracted (zero total momentum). The same initial conditions are used
on every backend.

Snapshots store what the flux measurement needs, not the phase space: at each snapshot time
and for each realisation, the fraction of particles with v < u for every u of ``u_grid``
(``cumulative``, (R, T, U)), the energy and momentum (R, T), and the velocity moments
<v^2>, <v^4> (means over the N particles, (R, T)).

Energy check: the relative energy error of a realisation is
``|E(t) - E(0)| / max(|E(0)|, K(0) + |W(0)|)`` (:func:`relative_energy_error`), with K the kinetic
and W the potential energy (E = K + W). Dividing by |E(0)| alone misfires when E(0) is close to
0, which happens when K(0) cancels W(0) (the ring model's U_0 shifts W by -U_0 (N - 1)/(2 N)):
K(0) + |W(0)| >= |E(0)| is the size of the terms that cancel, and vanishes only for a state
with no motion and no potential energy at all. W(0) includes the U_0 shift, so a potential with
a large |U_0| makes the check correspondingly looser (the check never becomes stricter than
the former |E(t) - E(0)|/|E(0)|).
"""
from __future__ import annotations

import math
import time as _time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from numerics.models.distributions import VelocityDistribution, distribution_from_dict
from numerics.models.potentials import Potential, potential_from_dict
from numerics.nbody.checkpoint import (
    CHECKPOINT_FORMAT,
    RESULT_FORMAT,
    load_checkpoint,
    params_to_json,
    read_npz,
    save_checkpoint,
    write_npz_atomic,
)
from numerics.nbody.integrators import TWO_PI, get_method
from numerics.nbody.system import build_system, check_dtype, resolve_force_model

#: wall-clock seconds aimed at per compiled/looped chunk of steps (progress bar and checkpoint granularity)
TARGET_CHUNK_SECONDS = 0.5

SEEDING = ("realisation r: rng = numpy.random.default_rng(numpy.random.SeedSequence(seed).spawn(R)[r]); "
           "theta = rng.uniform(0, 2 pi, N); v = df.sample(rng, N); v -= mean(v)")
ENERGY_NORMALISATION = "E = mu sum_i v_i^2/2 + (mu^2/2) sum_{i != j} U(theta_i - theta_j), mu = 1/N; P = mu sum_i v_i"
ENERGY_ERROR = "|E(t) - E(0)| / max(|E(0)|, K(0) + |W(0)|), K(0) = <v^2>(0)/2 kinetic, W(0) = E(0) - K(0) potential"


def energy_error_scale(e0, v2_0) -> np.ndarray:
    """max(|E(0)|, K(0) + |W(0)|) per realisation: the denominator of the relative energy error.

    ``e0``: E(0); ``v2_0``: <v^2> at t = 0 (means over the particles), so that the kinetic energy
    is K(0) = mu sum_i v_i^2 / 2 = <v^2>/2 (mu = 1/N) and the potential energy W(0) = E(0) - K(0).
    K(0) + |W(0)| >= |E(0)| (K >= 0), so this is K(0) + |W(0)| up to round-off; unlike |E(0)|
    it does not vanish when the kinetic energy cancels the potential energy. It is 0 only for
    v = 0 and W = 0; the error is then absolute (divided by 1).
    """
    e0 = np.asarray(e0, dtype=np.float64)
    k0 = 0.5 * np.asarray(v2_0, dtype=np.float64)
    scale = np.maximum(np.abs(e0), k0 + np.abs(e0 - k0))
    return np.where(scale == 0.0, 1.0, scale)


def relative_energy_error(energy, v2_0) -> np.ndarray:
    """|E(t) - E(0)| / max(|E(0)|, K(0) + |W(0)|); ``energy`` (R, T) with E(0) in column 0, ``v2_0`` (R,)."""
    energy = np.asarray(energy, dtype=np.float64)
    return np.abs(energy - energy[:, :1]) / energy_error_scale(energy[:, 0], v2_0)[:, None]


_SNAPSHOT_KEYS = ("energy", "momentum", "cumulative", "moment_v2", "moment_v4")


class SimulationError(RuntimeError):
    """A run stopped because a realisation went wrong (non-finite values, energy drift).

    Attributes name what and where: ``realisation`` (index), ``time``, ``quantity``
    ("angle", "velocity", "energy" or "relative energy error") and ``value``. The relative energy
    error is |E(t) - E(0)| / max(|E(0)|, K(0) + |W(0)|) (:data:`ENERGY_ERROR`).
    """

    def __init__(self, message: str, *, realisation: int | None = None, time: float | None = None,
                 quantity: str | None = None, value: float | None = None):
        super().__init__(message)
        self.realisation = realisation
        self.time = time
        self.quantity = quantity
        self.value = value


# ---------------------------------------------------------------------------------- result
@dataclass
class NBodyResult:
    """Snapshots of an ensemble run.

    times: (T,) snapshot times (in the potential's time units; t = step * dt).
    energy, momentum: (R, T) per realisation, normalisation in :data:`ENERGY_NORMALISATION`.
    cumulative: (R, T, U) fraction of each realisation's particles with v < u_grid[j].
    u_grid: (U,) velocity grid.
    moments: {"v2": (R, T), "v4": (R, T)}, means of v^2 and v^4 over each realisation's particles.
    params: JSON-able description of the run (potential, df, N, R, dt, t_end, method, backend,
        force, kmax, seed, n_snapshots, ...); rebuild the models with :meth:`potential_model`
        and :meth:`distribution`.
    wall_time: seconds of computation (summed over resumed sessions).
    """

    times: np.ndarray
    energy: np.ndarray
    momentum: np.ndarray
    cumulative: np.ndarray
    u_grid: np.ndarray
    moments: dict
    params: dict
    wall_time: float = 0.0
    path: Path | None = field(default=None, compare=False)

    @property
    def R(self) -> int:
        return int(self.energy.shape[0])

    @property
    def N(self) -> int:
        return int(self.params["N"])

    @property
    def relative_energy_error(self) -> np.ndarray:
        """|E(t) - E(0)| / max(|E(0)|, K(0) + |W(0)|), shape (R, T); see :func:`relative_energy_error`.

        K(0) = <v^2>(0)/2 is the kinetic and W(0) = E(0) - K(0) the potential energy at t = 0: the
        denominator does not vanish when E(0) is close to 0.
        """
        return relative_energy_error(self.energy, self.moments["v2"][:, 0])

    def potential_model(self) -> Potential:
        return potential_from_dict(self.params["potential"])

    def distribution(self) -> VelocityDistribution:
        return distribution_from_dict(self.params["df"])

    def _arrays(self) -> dict:
        return {
            "times": np.asarray(self.times, dtype=np.float64),
            "energy": np.asarray(self.energy, dtype=np.float64),
            "momentum": np.asarray(self.momentum, dtype=np.float64),
            "cumulative": np.asarray(self.cumulative, dtype=np.float64),
            "u_grid": np.asarray(self.u_grid, dtype=np.float64),
            "moment_v2": np.asarray(self.moments["v2"], dtype=np.float64),
            "moment_v4": np.asarray(self.moments["v4"], dtype=np.float64),
        }

    def save(self, path) -> Path:
        """Write the NPZ run file (layout: :mod:`numerics.nbody.checkpoint`), atomically."""
        arrays = self._arrays()
        arrays["format"] = np.array(RESULT_FORMAT)
        arrays["params_json"] = np.array(params_to_json(self.params))
        arrays["wall_time"] = np.array(float(self.wall_time))
        self.path = write_npz_atomic(path, arrays)
        return self.path

    @classmethod
    def load(cls, path) -> "NBodyResult":
        """Read a run file, or a completed checkpoint (NPZ, no pickle)."""
        raw = read_npz(path)
        fmt = str(raw.get("format", ""))
        if fmt == CHECKPOINT_FORMAT:
            if not bool(raw["complete"]):
                T = raw["energy"].shape[1]
                raise ValueError(f"{path} is an unfinished checkpoint ({int(raw['n_done'])} of {T} snapshots); "
                                 "continue it with numerics.nbody.resume(path) or `bbgky resume`")
        elif fmt != RESULT_FORMAT:
            raise ValueError(f"{path} is not an N-body run file (format {fmt!r})")
        return cls(times=raw["times"], energy=raw["energy"], momentum=raw["momentum"],
                   cumulative=raw["cumulative"], u_grid=raw["u_grid"],
                   moments={"v2": raw["moment_v2"], "v4": raw["moment_v4"]},
                   params=raw["params"], wall_time=float(raw["wall_time"]), path=Path(path))


def load_result(path) -> NBodyResult:
    """Load a run file written by :meth:`NBodyResult.save` (or a completed checkpoint)."""
    return NBodyResult.load(path)


# ---------------------------------------------------------------------------------- inputs
def _check_int(name: str, value, minimum: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum} ({what}), got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} ({what}), got {value}")
    return int(value)


def _check_positive(name: str, value, what: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number > 0 ({what}), got {value!r}") from None
    if not math.isfinite(x) or x <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0 ({what}), got {value!r}")
    return x


def _check_u_grid(u_grid, sigma: float) -> np.ndarray:
    if u_grid is None:
        return np.linspace(-3.0 * sigma, 3.0 * sigma, 61)
    u = np.asarray(u_grid, dtype=np.float64)
    if u.ndim != 1 or u.size < 1 or not np.all(np.isfinite(u)) or np.any(np.diff(u) <= 0):
        raise ValueError("u_grid must be a non-empty 1D array of finite, strictly increasing velocities, "
                         f"got shape {u.shape}")
    return u


def initial_conditions(df: VelocityDistribution, N: int, R: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(theta, v), each (R, N) float64, as described in the module docstring (zero momentum per realisation)."""
    theta = np.empty((R, N))
    v = np.empty((R, N))
    for r, child in enumerate(np.random.SeedSequence(seed).spawn(R)):
        rng = np.random.default_rng(child)
        theta[r] = rng.uniform(0.0, TWO_PI, N)
        v[r] = df.sample(rng, N)
    v -= v.mean(axis=1, keepdims=True)
    return theta, v


def _software_versions(backend: str) -> dict:
    import platform

    versions = {"python": platform.python_version(), "numpy": np.__version__}
    if backend == "jax":
        import jax

        versions["jax"] = jax.__version__
    if backend == "cupy":
        import cupy

        versions["cupy"] = cupy.__version__
    return versions


# ---------------------------------------------------------------------------------- running
class _Run:
    """State of one ensemble run between snapshots (fresh or resumed)."""

    def __init__(self, params: dict, system, u_grid: np.ndarray, theta, v, step: int, n_done: int,
                 snapshots: dict, wall_time_before: float, checkpoint, progress: bool, callback):
        self.params = params
        self.system = system
        self.u_grid = u_grid
        # (theta, v, step) replaced in one assignment, so an interrupt never sees a torn state
        self.state = (system.to_device(theta), system.to_device(v), int(step))
        self.n_done = int(n_done)
        self.snapshots = snapshots
        self.wall_time_before = float(wall_time_before)
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.progress = progress
        self.callback = callback
        self.steps = np.asarray(params["snapshot_steps"], dtype=np.int64)
        self.times = self.steps * float(params["dt"])

    theta = property(lambda self: self.state[0])
    v = property(lambda self: self.state[1])
    step = property(lambda self: self.state[2])

    # -- diagnostics
    def _record(self, k: int) -> None:
        """Diagnostics of the current state as snapshot k, with the NaN and energy checks."""
        d = self.system.diagnostics(self.theta, self.v, self.u_grid)
        t = float(self.times[k])
        where = f"at t = {t:g} (snapshot {k}, step {self.step})"
        bad = np.flatnonzero(~d["finite"])
        if bad.size:
            r = int(bad[0])
            theta_r = self.system.to_host(self.theta[r])
            quantity = "angle" if not np.all(np.isfinite(theta_r)) else "velocity"
            raise SimulationError(f"realisation {r}: non-finite {quantity} (NaN or inf) {where}; "
                                  f"{bad.size} of {len(d['finite'])} realisations affected. Reduce dt "
                                  f"(now {self.params['dt']:g}) or check the initial conditions.",
                                  realisation=r, time=t, quantity=quantity, value=float("nan"))
        bad = np.flatnonzero(~np.isfinite(d["energy"]))
        if bad.size:
            r = int(bad[0])
            raise SimulationError(f"realisation {r}: non-finite energy ({d['energy'][r]}) {where}",
                                  realisation=r, time=t, quantity="energy", value=float(d["energy"][r]))
        s = self.snapshots
        s["energy"][:, k] = d["energy"]
        s["momentum"][:, k] = d["momentum"]
        s["cumulative"][:, k, :] = d["cumulative"]
        s["moment_v2"][:, k] = d["v2"]
        s["moment_v4"][:, k] = d["v4"]
        self.n_done = k + 1
        threshold = self.params["max_energy_error"]
        e0 = s["energy"][:, 0]
        scale = energy_error_scale(e0, s["moment_v2"][:, 0])  # from stored snapshot 0: survives a resume
        err = np.abs(d["energy"] - e0) / scale
        self.max_energy_error_seen = float(err.max())
        if threshold is not None and k > 0 and np.any(err > threshold):
            r = int(np.argmax(err))
            k0 = 0.5 * float(s["moment_v2"][r, 0])
            raise SimulationError(f"realisation {r}: relative energy error |E(t) - E(0)| / max(|E(0)|, K(0) + |W(0)|) "
                                  f"= {err[r]:.3g} {where} exceeds max_energy_error = {threshold:g} (E(t) = "
                                  f"{d['energy'][r]:.6g}, E(0) = {e0[r]:.6g}, kinetic K(0) = {k0:.6g}, potential "
                                  f"W(0) = {e0[r] - k0:.6g}). Reduce dt (now {self.params['dt']:g}), or raise or "
                                  "disable (None) max_energy_error.",
                                  realisation=r, time=t, quantity="relative energy error", value=float(err[r]))

    def _save_checkpoint(self, wall_time: float, complete: bool = False) -> None:
        if self.checkpoint is None:
            return
        save_checkpoint(self.checkpoint, params=self.params, u_grid=self.u_grid,
                        theta=self.system.to_host(self.theta), v=self.system.to_host(self.v), step=self.step,
                        n_done=self.n_done, snapshots={"times": self.times, **self.snapshots}, wall_time=wall_time,
                        complete=complete)

    def execute(self) -> NBodyResult:
        from tqdm.auto import tqdm

        params = self.params
        n_steps = int(params["n_steps"])
        every = float(params["checkpoint_every"])
        every_snapshots = params.get("checkpoint_snapshots")
        start = _time.perf_counter()
        self.max_energy_error_seen = 0.0
        if self.n_done == 0:
            self._record(0)
        last_checkpoint = start
        snapshots_since = 0
        cap = 1  # steps per compiled/looped chunk; grows to ~TARGET_CHUNK_SECONDS of work
        bar = tqdm(total=n_steps, initial=self.step, unit="step", disable=not self.progress, mininterval=0.5,
                   desc=f"nbody {params['backend']} N={params['N']} R={params['R']}", dynamic_ncols=True)
        try:
            while self.step < n_steps:
                target = int(self.steps[self.n_done])
                n = min(target - self.step, cap)
                t0 = _time.perf_counter()
                theta, v = self.system.advance(self.theta, self.v, n)
                elapsed = _time.perf_counter() - t0
                self.state = (theta, v, self.step + n)
                bar.update(n)
                cap = max(1, min(4 * cap, int(TARGET_CHUNK_SECONDS * n / max(elapsed, 1e-9))))
                recorded = self.step == target
                if recorded:
                    self._record(self.n_done)
                    snapshots_since += 1
                    bar.set_postfix_str(f"t={self.times[self.n_done - 1]:.4g} max rel dE={self.max_energy_error_seen:.1e}",
                                        refresh=False)
                now = _time.perf_counter()
                if self.checkpoint is not None and (now - last_checkpoint >= every or
                                                    (every_snapshots and snapshots_since >= every_snapshots)):
                    self._save_checkpoint(self.wall_time_before + now - start)
                    last_checkpoint, snapshots_since = now, 0
                if recorded and self.callback is not None:
                    self.callback(self.n_done - 1, float(self.times[self.n_done - 1]))
        except KeyboardInterrupt:
            # the state is that of the last completed chunk: safe to checkpoint, then stop
            self._save_checkpoint(self.wall_time_before + _time.perf_counter() - start)
            raise
        finally:
            bar.close()
        wall_time = self.wall_time_before + _time.perf_counter() - start
        self._save_checkpoint(wall_time, complete=True)
        s = self.snapshots
        return NBodyResult(times=self.times.copy(), energy=s["energy"], momentum=s["momentum"],
                           cumulative=s["cumulative"], u_grid=self.u_grid,
                           moments={"v2": s["moment_v2"], "v4": s["moment_v4"]},
                           params=dict(params), wall_time=wall_time)


def _empty_snapshots(R: int, T: int, U: int) -> dict:
    return {
        "energy": np.full((R, T), np.nan),
        "momentum": np.full((R, T), np.nan),
        "cumulative": np.full((R, T, U), np.nan),
        "moment_v2": np.full((R, T), np.nan),
        "moment_v4": np.full((R, T), np.nan),
    }


def simulate(potential: Potential, df: VelocityDistribution, N: int, R: int, t_end: float, dt: float, *,
             kmax: int | None = None, method: str = "yoshida4", backend: str = "numpy", seed: int = 0,
             n_snapshots: int = 101, u_grid=None, force: str | None = None, max_energy_error: float | None = 1e-3,
             checkpoint=None, checkpoint_every: float = 60.0, progress: bool = True, dtype: str = "float64",
             checkpoint_snapshots: int | None = None, callback=None) -> NBodyResult:
    """Integrate R realisations of N particles from t = 0 to t_end and return their snapshots.

    potential: a :class:`numerics.models.Potential` (HMF, FourierPotential, RingModel, DiracComb).
    df: the velocity distribution phi(v) of the initial conditions (angles are uniform).
    N >= 2 particles per realisation (mass mu = 1/N each), R >= 1 realisations.
    t_end > 0, dt > 0: duration and time step, t_end an integer multiple of dt.
    kmax: truncate the potential at harmonic kmax and use harmonic sums (O(N kmax)); default:
        harmonic sums for a finite Fourier potential (HMF: kmax = 1), direct pair sums (O(N^2))
        otherwise (RingModel). ``force="direct"|"harmonic"`` forces the choice.
    method: "yoshida4" (4th order, 3 force evaluations per step) or "leapfrog" (2nd order).
    backend: "numpy" (reference), "jax" (jit-compiled, CPU or GPU) or "cupy" (CUDA kernels;
        BackendUnavailableError without a usable GPU, never a silent CPU run).
    seed: int >= 0; initial conditions as in the module docstring (recorded in ``params``).
    n_snapshots: snapshot times, evenly spaced steps from 0 to t_end inclusive (2 <= n <= steps + 1).
    u_grid: velocities u of the cumulative fractions (default linspace(-3 sigma, 3 sigma, 61)).
    max_energy_error: stop with :class:`SimulationError` when a realisation's relative energy
        error |E(t) - E(0)| / max(|E(0)|, K(0) + |W(0)|) exceeds it at a snapshot (None disables);
        K(0) and W(0) are the kinetic and potential energies at t = 0, so the check does not
        misfire when E(0) = K(0) + W(0) is close to 0. NaN/inf always stops.
    checkpoint: path of an NPZ checkpoint, rewritten atomically every ``checkpoint_every``
        seconds of wall time and/or every ``checkpoint_snapshots`` snapshots, on Ctrl-C, and at
        the end; continue an interrupted run with :func:`resume` (bitwise identical on numpy).
    progress: tqdm progress bar with ETA (False to disable).
    dtype: "float64" (default) or "float32" state; diagnostics are always float64.
    callback: optional ``callback(snapshot_index, time)`` after each snapshot (and its
        checkpoint, if one was due); an exception it raises stops the run.
    """
    N = _check_int("N", N, 2, "particles per realisation")
    R = _check_int("R", R, 1, "realisations")
    dt = _check_positive("dt", dt, "time step")
    t_end = _check_positive("t_end", t_end, "duration of the run")
    ratio = t_end / dt
    n_steps = int(round(ratio))
    if n_steps < 1 or abs(ratio - n_steps) > 1e-6 * max(1.0, ratio):
        raise ValueError(f"t_end must be a positive integer multiple of dt: t_end/dt = {ratio:.6g} "
                         f"(t_end = {t_end:g}, dt = {dt:g})")
    seed = _check_int("seed", seed, 0, "seed of numpy.random.SeedSequence")
    n_snapshots = _check_int("n_snapshots", n_snapshots, 2, "snapshots including t = 0 and t_end")
    if n_snapshots > n_steps + 1:
        raise ValueError(f"n_snapshots must be between 2 and n_steps + 1 = {n_steps + 1} "
                         f"(one snapshot per step at most), got {n_snapshots}")
    if max_energy_error is not None:
        max_energy_error = _check_positive("max_energy_error", max_energy_error, "or None to disable")
    checkpoint_every = float(checkpoint_every)
    if not (checkpoint_every >= 0.0):
        raise ValueError(f"checkpoint_every must be >= 0 seconds, got {checkpoint_every!r}")
    if checkpoint_snapshots is not None:
        checkpoint_snapshots = _check_int("checkpoint_snapshots", checkpoint_snapshots, 1, "or None")
    get_method(method)
    dtype = check_dtype(dtype)
    if not isinstance(df, VelocityDistribution):
        raise TypeError(f"df must be a numerics.models VelocityDistribution, got {type(df).__name__}")
    u_grid = _check_u_grid(u_grid, df.sigma)
    force_model = resolve_force_model(potential, kmax, force)  # before the backend: model errors first
    system = build_system(potential, N, dt=dt, kmax=kmax, method=method, backend=backend, force=force, dtype=dtype)

    steps = np.round(np.linspace(0, n_steps, n_snapshots)).astype(np.int64)
    params = {
        "engine": "numerics.nbody",
        "potential": potential.parameters(),
        "df": df.parameters(),
        "N": N,
        "R": R,
        "mu": 1.0 / N,
        "dt": dt,
        "t_end": n_steps * dt,
        "n_steps": n_steps,
        "method": method,
        "backend": backend,
        "force": force_model.kind,
        "kmax": force_model.kmax,
        "dtype": dtype,
        "seed": seed,
        "seeding": SEEDING,
        "n_snapshots": n_snapshots,
        "snapshot_steps": steps.tolist(),
        "max_energy_error": max_energy_error,
        "checkpoint_every": checkpoint_every,
        "checkpoint_snapshots": checkpoint_snapshots,
        "energy_normalisation": ENERGY_NORMALISATION,
        "energy_error": ENERGY_ERROR,
        "versions": _software_versions(backend),
    }
    theta, v = initial_conditions(df, N, R, seed)
    run = _Run(params, system, u_grid, theta, v, 0, 0, _empty_snapshots(R, n_snapshots, u_grid.size), 0.0,
               checkpoint, progress, callback)
    return run.execute()


def resume(path, progress: bool = True, *, callback=None) -> NBodyResult:
    """Continue the run checkpointed at ``path`` to its t_end; returns the full NBodyResult.

    The checkpoint keeps being updated at the same path with the run's checkpoint settings. On
    the numpy backend the result is bitwise identical to an uninterrupted run with the same
    inputs. A checkpoint of a finished run returns its result at once.
    """
    data = load_checkpoint(path)
    params = data["params"]
    potential = potential_from_dict(params["potential"])
    distribution_from_dict(params["df"])  # validates the description
    force = params["force"]  # the force kind actually used, with its truncation kmax
    kmax = params["kmax"] if force == "harmonic" else None
    system = build_system(potential, params["N"], dt=params["dt"], kmax=kmax, method=params["method"],
                          backend=params["backend"], force=force, dtype=params["dtype"])
    snapshots = {key: np.array(data[key]) for key in _SNAPSHOT_KEYS}
    run = _Run(params, system, np.asarray(data["u_grid"], dtype=np.float64), data["theta"], data["v"],
               int(data["step"]), int(data["n_done"]), snapshots, float(data["wall_time"]), path, progress, callback)
    return run.execute()
