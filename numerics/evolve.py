"""Kinetic-equation integrator: evolve a velocity PDF phi(v, t) under a given collision flux.

Equation and sign convention (PHYSICS.md, section 1):

    d(phi)/dt + dF[phi]/dv = 0,        positive F = particles move up in velocity,

with F[phi](v) any (nonlinear) functional of phi supplied by the caller as ``flux_fn``. The
integrator knows nothing about the operator; it only asks for the flux at the cell faces.

Discretisation
--------------
Finite volumes on a uniform grid of ``n`` cells [v_{i-1/2}, v_{i+1/2}] of width dv, phi_i the
value in cell i (sampled at the cell centre v_i):

    d(phi_i)/dt = -(F_{i+1/2} - F_{i-1/2}) / dv,      F at the two outer faces = 0 (walls).

The walls make the total mass M = sum_i phi_i dv conserved to round-off by construction. The
diagnostics are the moments of the same discrete measure (midpoint rule):

    M = sum phi_i dv,   P = sum v_i phi_i dv,   E = sum (v_i^2 / 2) phi_i dv,
    S = -sum phi_i ln(phi_i) dv          (cells with phi_i <= 0 contribute 0).

Summation by parts gives the exact semi-discrete rates

    dP/dt = dv sum_f F_f,     dE/dt = dv sum_f v_f F_f,     dS/dt = -sum_f F_f (ln phi_{i+1} - ln phi_i)

(sums over the interior faces f = i+1/2; see :func:`semidiscrete_rates`). So momentum and
energy are conserved iff the operator's face fluxes satisfy sum_f F_f = 0 and sum_f v_f F_f = 0;
the integrator then keeps them to round-off at any tolerance, because explicit Runge-Kutta
steps preserve every linear invariant of the semi-discrete system exactly.

Time stepping
-------------
Explicit embedded Runge-Kutta pairs with adaptive steps (``method``): Dormand-Prince 5(4)
("dopri5", default) or Bogacki-Shampine 3(2) ("bs32"), both FSAL; RMS error norm with scale
atol + rtol max(|phi|, |phi_new|) (Hairer, Norsett & Wanner) and a PI step-size controller. A
step is also rejected (and retried with 0.9 of the step, then half of it if that fails too) when

- phi would go negative beyond round-off (min phi_new < -negativity_tol), or
- the entropy would decrease beyond round-off (S_new < S_old - entropy_slack).

Later steps are then capped a little below the rejected one (the cap relaxes by 1% per accepted
step): an explicit scheme on a diffusion-like operator runs at its stability limit, dt ~ dv^2/D,
where such rejections would otherwise recur. So for an operator with a discrete H-theorem, S is
non-decreasing (to a few ulp) at every accepted step. If the step collapses below ``dt_min`` an
:class:`EvolutionError` says why (which check failed, by how much, at which time); if the
semi-discrete rate dS/dt itself is negative beyond what small steps can absorb, it says so at
once rather than crawling. NaN or inf in phi or in the flux raises at once, naming the time.

What the operator must provide: the continuum H-theorem and conservation laws do not carry over
to a discretisation by themselves. A centred flux with arithmetic face values and u, T from the
cell moments, for instance, loses O(dv^2) of the energy whatever rtol (measured: 21%, 4.8%, 1.2%
on 64, 128, 256 cells over a relaxation) and lowers S once near its own, slightly wrong, steady
state, which this integrator reports. :func:`semidiscrete_rates` checks a flux on given states.

Units: v and t in the caller's units; F in [phi] x [v] / [t]. Float64 throughout (NumPy). A
JAX-jitted ``flux_fn`` is fine: its output is converted with ``numpy.asarray``.
"""
from __future__ import annotations

import json
import math
import time as _time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from numerics._json import json_default

__all__ = [
    "VelocityGrid",
    "EvolutionResult",
    "EvolutionError",
    "NonFiniteError",
    "TABLEAUX",
    "evolve",
    "finite_volume_rhs",
    "semidiscrete_rates",
    "moments",
    "entropy",
    "load_evolution",
]

RESULT_FORMAT = "bbgky-evolve-result-v1"
_EPS = float(np.finfo(np.float64).eps)
MIN_CELLS = 8
#: after a step is rejected for positivity or entropy, later steps are capped at GUARD_BACKOFF x
#: that step, the cap growing by GUARD_RELAX per accepted step (an explicit scheme on a stiff
#: operator sits at its stability limit, where such rejections would otherwise recur)
GUARD_BACKOFF = 0.9
GUARD_RELAX = 1.01


class EvolutionError(RuntimeError):
    """The integration could not proceed (step collapse, step limit, non-finite values)."""

    def __init__(self, message: str, *, time: float | None = None):
        super().__init__(message)
        self.time = time


class NonFiniteError(EvolutionError):
    """NaN or inf appeared in phi or in the flux; ``time`` says when."""


# ============================================================================================ grid
@dataclass(frozen=True)
class VelocityGrid:
    """Uniform grid of ``n_cells`` velocity cells between ``edges[0]`` and ``edges[-1]``.

    ``edges``: the n + 1 cell faces (the two outer ones are zero-flux walls);
    ``centres``: the n cell centres, where phi is sampled; ``dv``: the cell width;
    ``interior_faces``: the n - 1 faces between cells (``edges[1:-1]``).
    """

    edges: np.ndarray

    def __post_init__(self):
        edges = np.array(self.edges, dtype=np.float64)  # own copy, made read-only below
        if edges.ndim != 1:
            raise ValueError(f"v_edges must be a 1D array of cell faces, got shape {edges.shape}")
        if edges.size < MIN_CELLS + 1:
            raise ValueError(f"v_edges must hold at least {MIN_CELLS + 1} faces ({MIN_CELLS} cells), got "
                             f"{edges.size} face(s); the grid is too small")
        if not np.all(np.isfinite(edges)):
            raise ValueError("v_edges must be finite (found NaN or inf)")
        steps = np.diff(edges)
        if not np.all(steps > 0):
            raise ValueError("v_edges must be strictly increasing")
        dv = (edges[-1] - edges[0]) / (edges.size - 1)
        # allow the rounding of numpy.linspace (a few ulp of the largest |v|), nothing more
        slack = 1e-9 * dv + 64 * _EPS * float(np.max(np.abs(edges)))
        deviation = float(np.max(np.abs(steps - dv)))
        if deviation > slack:
            i = int(np.argmax(np.abs(steps - dv)))
            raise ValueError(f"v_edges must be uniformly spaced: cell {i} has width {steps[i]:.6g} "
                             f"but the mean width is {dv:.6g} (relative deviation {deviation / dv:.2g}); "
                             "this finite-volume scheme needs a uniform grid")
        edges.flags.writeable = False
        object.__setattr__(self, "edges", edges)

    @classmethod
    def uniform(cls, v_min: float, v_max: float, n_cells: int) -> "VelocityGrid":
        """``n_cells`` equal cells covering [v_min, v_max]."""
        if isinstance(n_cells, bool) or not isinstance(n_cells, (int, np.integer)):
            raise TypeError(f"n_cells must be an integer, got {n_cells!r}")
        if n_cells < MIN_CELLS:
            raise ValueError(f"n_cells must be >= {MIN_CELLS}, got {n_cells}; the grid is too small")
        if not (math.isfinite(v_min) and math.isfinite(v_max) and v_min < v_max):
            raise ValueError(f"need finite v_min < v_max, got v_min = {v_min!r}, v_max = {v_max!r}")
        return cls(np.linspace(float(v_min), float(v_max), int(n_cells) + 1))

    @property
    def n_cells(self) -> int:
        return self.edges.size - 1

    @property
    def dv(self) -> float:
        return float((self.edges[-1] - self.edges[0]) / self.n_cells)

    @property
    def centres(self) -> np.ndarray:
        return 0.5 * (self.edges[1:] + self.edges[:-1])

    @property
    def interior_faces(self) -> np.ndarray:
        return self.edges[1:-1]

    def __repr__(self) -> str:
        return f"VelocityGrid([{self.edges[0]:g}, {self.edges[-1]:g}], n_cells={self.n_cells}, dv={self.dv:.4g})"


def _as_grid(v_edges_or_grid) -> VelocityGrid:
    if isinstance(v_edges_or_grid, VelocityGrid):
        return v_edges_or_grid
    return VelocityGrid(np.asarray(v_edges_or_grid, dtype=np.float64))


# ============================================================================ discrete moments
def entropy(phi, grid: VelocityGrid) -> float:
    """S = -sum phi_i ln phi_i dv; cells with phi_i <= 0 (round-off) contribute 0."""
    phi = np.asarray(phi, dtype=np.float64)
    positive = phi > 0.0
    safe = np.where(positive, phi, 1.0)
    return float(-np.sum(np.where(positive, phi * np.log(safe), 0.0)) * grid.dv)


def moments(phi, grid: VelocityGrid) -> dict:
    """Discrete mass, momentum, energy (sum of v^2/2 phi dv) and entropy of cell values ``phi``."""
    phi = np.asarray(phi, dtype=np.float64)
    v = grid.centres
    dv = grid.dv
    return {
        "mass": float(np.sum(phi) * dv),
        "momentum": float(np.sum(v * phi) * dv),
        "energy": float(np.sum(0.5 * v * v * phi) * dv),
        "entropy": entropy(phi, grid),
    }


# ================================================================================ flux and rhs
def _face_fluxes(flux_fn, phi: np.ndarray, grid: VelocityGrid, when: str,
                 time: float | None = None) -> tuple[np.ndarray, float]:
    """Interior-face fluxes (n - 1,) and the largest |value| returned at the walls (then discarded)."""
    view = phi.view()
    view.flags.writeable = False  # the operator must not modify phi in place
    raw = np.asarray(flux_fn(view, grid), dtype=np.float64)
    n = grid.n_cells
    if raw.shape == (n + 1,):
        wall = float(max(abs(raw[0]), abs(raw[-1])))
        inner = raw[1:-1]
    elif raw.shape == (n - 1,):
        wall = 0.0
        inner = raw
    else:
        raise ValueError(f"flux_fn must return the flux at the {n + 1} cell faces (grid.edges) or at the {n - 1} "
                         f"interior faces (grid.interior_faces); it returned shape {raw.shape}")
    if not np.all(np.isfinite(inner)):
        bad = np.flatnonzero(~np.isfinite(inner))
        raise NonFiniteError(f"flux_fn returned NaN/inf {when}: {bad.size} of {n - 1} interior faces, first at "
                             f"v = {grid.interior_faces[bad[0]]:.6g} (value {inner[bad[0]]!r})", time=time)
    return inner, wall


def _divergence(inner: np.ndarray, dv: float) -> np.ndarray:
    """-(F_{i+1/2} - F_{i-1/2}) / dv with zero flux at the walls."""
    full = np.concatenate(([0.0], inner, [0.0]))
    return -(full[1:] - full[:-1]) / dv


def finite_volume_rhs(flux_fn, v_edges_or_grid) -> Callable[[np.ndarray], np.ndarray]:
    """The semi-discrete right-hand side phi -> d(phi)/dt of the scheme (for checks and other solvers)."""
    grid = _as_grid(v_edges_or_grid)

    def rhs(phi):
        phi = np.ascontiguousarray(phi, dtype=np.float64)
        inner, _ = _face_fluxes(flux_fn, phi, grid, "in finite_volume_rhs")
        return _divergence(inner, grid.dv)

    return rhs


def semidiscrete_rates(flux_fn, phi, v_edges_or_grid) -> dict:
    """Exact rates of the discrete invariants for cell values ``phi`` (a check for a new operator).

    Returns dM/dt (zero up to round-off by construction), dP/dt = dv sum_f F_f,
    dE/dt = dv sum_f v_f F_f and dS/dt = -sum_f F_f (ln phi_{i+1} - ln phi_i) (the last needs
    phi > 0); plus ``flux_scale`` = dv sum_f |F_f| to judge what is small. An operator conserves
    momentum and energy on this grid iff the two sums vanish.
    """
    grid = _as_grid(v_edges_or_grid)
    phi = np.ascontiguousarray(phi, dtype=np.float64)
    inner, wall = _face_fluxes(flux_fn, phi, grid, "in semidiscrete_rates")
    dv = grid.dv
    rates = {
        "mass": float(np.sum(_divergence(inner, dv)) * dv),
        "momentum": float(np.sum(inner) * dv),
        "energy": float(np.sum(grid.interior_faces * inner) * dv),
        "entropy": math.nan,
        "flux_scale": float(np.sum(np.abs(inner)) * dv),
        "wall_flux_discarded": wall,
    }
    if np.all(phi > 0):
        rates["entropy"] = float(-np.sum(inner * np.diff(np.log(phi))))
    return rates


# ================================================================================== RK tableaux
@dataclass(frozen=True)
class Tableau:
    """An explicit embedded Runge-Kutta pair with the FSAL property (last stage at the new point).

    ``A`` (s x s, strictly lower triangular; its last row = ``b``), ``c`` (s,), ``b`` (s,),
    ``e`` = b - b_hat (s,) for the error estimate, ``order`` of the propagated solution,
    ``error_order`` = 1 + order of the embedded one (the exponent of the step controller).
    """

    name: str
    A: np.ndarray
    c: np.ndarray
    b: np.ndarray
    e: np.ndarray
    order: int
    error_order: int


def _dopri5() -> Tableau:
    A = np.zeros((7, 7))
    A[1, :1] = [1 / 5]
    A[2, :2] = [3 / 40, 9 / 40]
    A[3, :3] = [44 / 45, -56 / 15, 32 / 9]
    A[4, :4] = [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729]
    A[5, :5] = [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656]
    b = np.array([35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0])
    A[6, :6] = b[:6]
    b_hat = np.array([5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40])
    c = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0])
    return Tableau("dopri5", A, c, b, b - b_hat, order=5, error_order=5)


def _bs32() -> Tableau:
    A = np.zeros((4, 4))
    A[1, :1] = [1 / 2]
    A[2, :2] = [0.0, 3 / 4]
    b = np.array([2 / 9, 1 / 3, 4 / 9, 0.0])
    A[3, :3] = b[:3]
    b_hat = np.array([7 / 24, 1 / 4, 1 / 3, 1 / 8])
    c = np.array([0.0, 1 / 2, 3 / 4, 1.0])
    return Tableau("bs32", A, c, b, b - b_hat, order=3, error_order=3)


#: registered methods, by name
TABLEAUX = {"dopri5": _dopri5(), "bs32": _bs32()}


# ====================================================================================== result
@dataclass
class EvolutionResult:
    """Output of :func:`evolve`.

    Per accepted step (index 0 = the initial state): ``t``, ``dt`` (the step that led there;
    0 for the initial state), ``mass``, ``momentum``, ``energy``, ``entropy`` (discrete moments,
    module docstring). Snapshots: ``t_out`` (T,) and ``phi_out`` (T, n) on ``grid``; the last
    snapshot is t_end. ``info``: method, tolerances, step counts (accepted; rejected by
    reason: error, negative, entropy), flux evaluations, wall time, normalisation factor applied
    to phi0, largest |flux| the operator returned at the walls (discarded), thresholds used.
    """

    grid: VelocityGrid
    t: np.ndarray
    dt: np.ndarray
    mass: np.ndarray
    momentum: np.ndarray
    energy: np.ndarray
    entropy: np.ndarray
    t_out: np.ndarray
    phi_out: np.ndarray
    info: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def phi(self) -> np.ndarray:
        """The final state phi(t_end) (cell values)."""
        return self.phi_out[-1]

    @property
    def v(self) -> np.ndarray:
        """Cell centres."""
        return self.grid.centres

    @property
    def mass_error(self) -> np.ndarray:
        """|M(t) - M(0)| / |M(0)|."""
        return np.abs(self.mass - self.mass[0]) / abs(self.mass[0])

    @property
    def momentum_error(self) -> np.ndarray:
        """|P(t) - P(0)| / sqrt(2 M(0) E(0)): relative to the thermal momentum (P(0) may be 0)."""
        scale = math.sqrt(max(2.0 * self.mass[0] * self.energy[0], 0.0)) or 1.0
        return np.abs(self.momentum - self.momentum[0]) / scale

    @property
    def energy_error(self) -> np.ndarray:
        """|E(t) - E(0)| / |E(0)|."""
        return np.abs(self.energy - self.energy[0]) / (abs(self.energy[0]) or 1.0)

    @property
    def entropy_decrease(self) -> float:
        """Largest decrease of S between consecutive accepted steps (<= 0 means none)."""
        return float(np.max(-np.diff(self.entropy), initial=-math.inf)) if self.entropy.size > 1 else -math.inf

    def maxwellian(self) -> np.ndarray:
        """Cell values of the Maxwellian with the final mass, momentum and energy (the state the
        run should approach under an operator with an H-theorem)."""
        from numerics.models import Gaussian

        m = self.mass[-1]
        mean = self.momentum[-1] / m
        return m * Gaussian(math.sqrt(2.0 * self.energy[-1] / m - mean**2)).pdf(self.grid.centres - mean)

    def summary(self) -> str:
        i = self.info
        return (f"{i.get('method')} rtol={i.get('rtol'):g} atol={i.get('atol'):g}: t = 0 -> {self.t[-1]:g} on "
                f"{self.grid.n_cells} cells, {i.get('n_accepted')} steps accepted, rejected "
                f"{i.get('n_rejected')}, {i.get('n_flux_evaluations')} flux evaluations, "
                f"{i.get('wall_time', math.nan):.2f} s; max relative errors: mass {self.mass_error.max():.2e}, "
                f"momentum {self.momentum_error.max():.2e}, energy {self.energy_error.max():.2e}; "
                f"largest entropy decrease between steps {self.entropy_decrease:.2e}, "
                f"S: {self.entropy[0]:.10g} -> {self.entropy[-1]:.10g}")

    # ------------------------------------------------------------------------------- files
    def save(self, path) -> Path:
        """Write an NPZ file (no pickle; ``info`` stored as JSON text)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "format": np.array(RESULT_FORMAT),
            "v_edges": np.asarray(self.grid.edges),
            "t": self.t, "dt": self.dt, "mass": self.mass, "momentum": self.momentum,
            "energy": self.energy, "entropy": self.entropy, "t_out": self.t_out, "phi_out": self.phi_out,
            "info_json": np.array(json.dumps(self.info, sort_keys=True, default=json_default)),
        }
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
        self.path = path
        return path

    @classmethod
    def load(cls, path) -> "EvolutionResult":
        path = Path(path)
        raw = read_npz(path, RESULT_FORMAT, "evolution result")
        return cls(grid=VelocityGrid(raw["v_edges"]), t=raw["t"], dt=raw["dt"], mass=raw["mass"],
                   momentum=raw["momentum"], energy=raw["energy"], entropy=raw["entropy"], t_out=raw["t_out"],
                   phi_out=raw["phi_out"], info=json.loads(str(raw["info_json"])), path=path)

    def plot(self, png_path, *, title: str = "") -> Path:
        """PNG: phi(v) at the snapshot times; conservation errors, entropy and dt against time."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(11.0, 7.5))
        FigureCanvasAgg(fig)
        ax_phi, ax_cons, ax_s, ax_dt = (fig.add_subplot(2, 2, k) for k in range(1, 5))
        v = self.grid.centres
        colours = _colour_ramp(len(self.t_out))
        for k, (tk, pk) in enumerate(zip(self.t_out, self.phi_out)):
            ax_phi.plot(v, pk, color=colours[k], lw=1.2, label=f"t = {tk:.4g}")
        ax_phi.set_xlabel("velocity $v$")
        ax_phi.set_ylabel(r"$\varphi(v, t)$")
        ax_phi.legend(fontsize=7, ncol=2)
        floor = 1e-18  # exact zeros would vanish from a log plot
        for series, label in ((self.mass_error, r"mass $|\Delta M|/M_0$"),
                              (self.momentum_error, r"momentum $|\Delta P|/\sqrt{2M_0E_0}$"),
                              (self.energy_error, r"energy $|\Delta E|/E_0$")):
            ax_cons.semilogy(self.t[1:], np.maximum(np.maximum.accumulate(series[1:]), floor), lw=1.2, label=label)
        ax_cons.set_xlabel("time $t$")
        ax_cons.set_ylabel("largest relative drift so far")
        ax_cons.legend(fontsize=8)
        ax_s.plot(self.t, self.entropy, color="C3", lw=1.2)
        ax_s.set_xlabel("time $t$")
        ax_s.set_ylabel(r"entropy $S = -\sum \varphi \ln\varphi \, dv$")
        ax_dt.semilogy(self.t[1:], self.dt[1:], color="C4", lw=1.0)
        ax_dt.set_xlabel("time $t$")
        ax_dt.set_ylabel("accepted step $dt$")
        i = self.info
        fig.suptitle(f"{title + ': ' if title else ''}{i.get('method')} rtol={i.get('rtol'):g} atol={i.get('atol'):g}, "
                     f"{self.grid.n_cells} cells, {i.get('n_accepted')} steps "
                     f"(flux convention: d$\\varphi$/dt + dF/dv = 0, F > 0 moves particles up in v)", fontsize=9)
        fig.tight_layout()
        png_path = Path(png_path)
        png_path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png_path, dpi=110)
        return png_path


def entropy_round_off(y: np.ndarray, dv: float, given: float | None = None) -> float:
    """The entropy slack of the step checks: ``given`` if set, else the round-off of S for the
    cell values ``y`` (4 eps sum phi (|ln phi| + 1) dv)."""
    if given is not None:
        return float(given)
    pos = y > 0
    logs = np.abs(np.log(np.where(pos, y, 1.0)))
    return 4.0 * _EPS * float(np.sum(np.where(pos, y * (logs + 1.0), 0.0))) * dv


def read_npz(path: Path, fmt: str, what: str) -> dict:
    """The arrays of an NPZ file written by this package (no pickle), checked for its format tag."""
    if not path.exists():
        raise FileNotFoundError(f"no such {what} file: {path}")
    with np.load(path, allow_pickle=False) as data:
        raw = {k: data[k] for k in data.files}
    if str(raw.get("format", "")) != fmt:
        raise ValueError(f"{path} is not an {what} (format {str(raw.get('format', ''))!r})")
    return raw


def load_evolution(path) -> EvolutionResult:
    """Read a file written by :meth:`EvolutionResult.save`."""
    return EvolutionResult.load(path)


def _colour_ramp(n: int):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(x) for x in np.linspace(0.0, 0.9, max(n, 1))]




_COLLAPSE_HINTS = {
    "error": "The error estimate does not shrink with dt: flux_fn may be discontinuous in phi, or too stiff for "
             "an explicit method at this grid spacing (loosen rtol/atol or coarsen the grid).",
    "negative": "phi is driven below zero however small the step: flux_fn does not preserve positivity at this "
                "state (or negativity_tol is stricter than the operator's round-off).",
    "entropy": "S drops however small the step: flux_fn has no discrete H-theorem at this state (check it with "
               "semidiscrete_rates); pass check_entropy=False to integrate it anyway.",
}


# ====================================================================================== inputs
def _positive_float(name: str, value) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number > 0, got {value!r}") from None
    if not (math.isfinite(x) and x > 0.0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return x


def _initial_state(phi0, grid: VelocityGrid, normalise: bool, edge_warning: float) -> tuple[np.ndarray, float]:
    if callable(getattr(phi0, "pdf", None)):
        phi0 = phi0.pdf(grid.centres)
    elif callable(phi0):
        phi0 = phi0(grid.centres)
    phi = np.array(phi0, dtype=np.float64)  # a copy: the caller's array is never touched
    n = grid.n_cells
    if phi.shape != (n,):
        raise ValueError(f"phi0 must hold one value per cell ({n} cells), got shape {phi.shape}")
    if not np.all(np.isfinite(phi)):
        bad = np.flatnonzero(~np.isfinite(phi))
        raise ValueError(f"phi0 must be finite: {bad.size} NaN/inf value(s), first at v = {grid.centres[bad[0]]:.6g}")
    if np.any(phi < 0.0):
        i = int(np.argmin(phi))
        raise ValueError(f"phi0 must be >= 0 everywhere: its minimum is {phi[i]:.3g} at v = {grid.centres[i]:.6g}")
    with np.errstate(over="ignore"):  # an overflowing mass is refused just below, by name
        mass = float(np.sum(phi) * grid.dv)
    if not (math.isfinite(mass) and mass > 0.0):
        raise ValueError(f"phi0 is not normalisable: its mass sum(phi0) dv = {mass!r} (must be finite and > 0)")
    peak = float(np.max(phi))
    edge = max(phi[0], phi[-1]) / peak
    if edge > edge_warning:
        warnings.warn(f"phi0 at the grid edge is {edge:.2g} of its maximum (> {edge_warning:g}): the zero-flux "
                      f"walls at v = {grid.edges[0]:g} and {grid.edges[-1]:g} will distort the evolution; "
                      "widen the grid", UserWarning, stacklevel=3)
    factor = 1.0
    if normalise:
        factor = 1.0 / mass
        phi *= factor
    return phi, factor


def _output_times(t_end: float, output_times, n_snapshots: int) -> np.ndarray:
    if output_times is None:
        if isinstance(n_snapshots, bool) or not isinstance(n_snapshots, (int, np.integer)) or n_snapshots < 2:
            raise ValueError(f"n_snapshots must be an integer >= 2 (t = 0 and t_end included), got {n_snapshots!r}")
        return np.linspace(0.0, t_end, int(n_snapshots))
    times = np.asarray(output_times, dtype=np.float64).ravel()
    if times.size == 0 or not np.all(np.isfinite(times)) or np.any(times < 0) or np.any(times > t_end):
        raise ValueError(f"output_times must be finite times in [0, t_end = {t_end:g}], got {output_times!r}")
    return np.unique(np.concatenate(([0.0], times, [t_end])))


# ===================================================================================== stepper
def _error_norm(err: np.ndarray, y: np.ndarray, y_new: np.ndarray, rtol: float, atol: float) -> float:
    scale = atol + rtol * np.maximum(np.abs(y), np.abs(y_new))
    return float(np.sqrt(np.mean((err / scale) ** 2)))


def evolve(flux_fn, phi0, v_edges_or_grid, t_end: float, *, method: str = "dopri5", rtol: float = 1e-6,
           atol: float = 1e-10, dt0: float | None = None, dt_min: float | None = None, dt_max: float | None = None,
           n_snapshots: int = 11, output_times=None, normalise: bool = True, negativity_tol: float | None = None,
           entropy_slack: float | None = None, check_entropy: bool = True, max_steps: int = 1_000_000,
           edge_warning: float = 1e-6, progress: bool = True) -> EvolutionResult:
    """Integrate d(phi)/dt = -dF[phi]/dv from t = 0 to ``t_end`` (finite volumes, zero-flux walls).

    ``flux_fn(phi, grid) -> F``: the collision flux at the cell faces for cell values ``phi``
    (float64, shape (n,), read-only) on ``grid`` (:class:`VelocityGrid`: ``edges``, ``centres``,
    ``interior_faces``, ``dv``). Return either the n + 1 values at ``grid.edges`` (the two wall
    values are discarded and the largest is reported in ``info['max_wall_flux']``) or the n - 1
    values at ``grid.interior_faces``. Sign: positive F moves particles up in v.
    ``phi0``: cell values (n,), a distribution with ``.pdf`` or a callable v -> phi, sampled at
    the cell centres; must be finite, >= 0, with finite positive mass. With ``normalise`` (the
    default) it is rescaled to unit mass (M = 1), the factor reported in ``info``.
    ``v_edges_or_grid``: a :class:`VelocityGrid` or the n + 1 uniformly spaced cell faces
    (n >= 8).
    ``method``: "dopri5" (Dormand-Prince 5(4)) or "bs32" (Bogacki-Shampine 3(2)), explicit; or
    "bdf" (implicit, variable order, for stiff operators such as the 1/N^2 flux: see
    :mod:`numerics.evolve_implicit`, which also offers checkpoints and resume).
    ``rtol``, ``atol``: error tolerances (> 0); atol in units of phi.
    ``dt0``: first trial step (default: Hairer's starting-step estimate); ``dt_max``: largest step
    (default: no limit besides landing on output times); ``dt_min``: the floor below which a
    rejected step raises :class:`EvolutionError` (default 1e-12 t_end).
    ``n_snapshots``: equally spaced snapshot times including 0 and t_end, or ``output_times``
    (0 and t_end are added); steps are shortened to land on them exactly.
    ``negativity_tol``: a step is rejected when min(phi_new) < -negativity_tol (default
    64 eps max(phi), round-off). ``entropy_slack``: a step is rejected when S drops by more
    than this (default 4 eps sum phi (|ln phi| + 1) dv, the round-off of S); ``check_entropy``
    = False disables the entropy check (for operators without an H-theorem).
    ``max_steps``: accepted plus rejected steps before giving up.
    ``edge_warning``: warn if phi0 at a wall exceeds this fraction of its maximum.
    ``progress``: tqdm progress bar (False to disable).

    Returns an :class:`EvolutionResult`; ``.save(path)`` writes NPZ, ``.plot(path)`` a PNG.
    Raises ValueError/TypeError naming the parameter for bad input, :class:`NonFiniteError`
    (naming the time) for NaN/inf in phi or the flux, :class:`EvolutionError` when the step
    collapses below ``dt_min`` or ``max_steps`` is exceeded.
    """
    if method == "bdf":
        from numerics.evolve_implicit import evolve_implicit

        if dt_max is not None:
            raise ValueError("dt_max is not supported with method='bdf'")
        return evolve_implicit(flux_fn, phi0, v_edges_or_grid, t_end, rtol=rtol, atol=atol, n_snapshots=n_snapshots,
                               output_times=output_times, normalise=normalise, dt0=dt0, dt_min=dt_min,
                               negativity_tol=negativity_tol, entropy_slack=entropy_slack,
                               check_entropy=check_entropy, max_steps=max_steps, edge_warning=edge_warning,
                               progress=progress)
    if not callable(flux_fn):
        raise TypeError(f"flux_fn must be callable as flux_fn(phi, grid), got {type(flux_fn).__name__}")
    grid = _as_grid(v_edges_or_grid)
    t_end = _positive_float("t_end", t_end)
    rtol = _positive_float("rtol", rtol)
    atol = _positive_float("atol", atol)
    if method not in TABLEAUX:
        raise ValueError(f"method must be one of {sorted(TABLEAUX) + ['bdf']}, got {method!r}")
    tab = TABLEAUX[method]
    dt_min = 1e-12 * t_end if dt_min is None else _positive_float("dt_min", dt_min)
    dt_max = math.inf if dt_max is None else _positive_float("dt_max", dt_max)
    if dt0 is not None:
        dt0 = _positive_float("dt0", dt0)
    if negativity_tol is not None and not (math.isfinite(float(negativity_tol)) and float(negativity_tol) >= 0):
        raise ValueError(f"negativity_tol must be a finite number >= 0, got {negativity_tol!r}")
    if entropy_slack is not None and not (math.isfinite(float(entropy_slack)) and float(entropy_slack) >= 0):
        raise ValueError(f"entropy_slack must be a finite number >= 0, got {entropy_slack!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    phi, factor = _initial_state(phi0, grid, bool(normalise), float(edge_warning))
    t_out = _output_times(t_end, output_times, n_snapshots)

    dv = grid.dv
    v = grid.centres
    n_evals = 0
    max_wall = 0.0

    def rhs(y: np.ndarray, when: str, at: float) -> np.ndarray:
        nonlocal n_evals, max_wall
        n_evals += 1
        inner, wall = _face_fluxes(flux_fn, y, grid, when, at)
        max_wall = max(max_wall, wall)
        return _divergence(inner, dv)

    def neg_threshold(y):
        return float(negativity_tol) if negativity_tol is not None else 64.0 * _EPS * float(np.max(np.abs(y)))

    def s_slack(y):
        return entropy_round_off(y, dv, entropy_slack)

    # records, per accepted step
    rec_t, rec_dt = [0.0], [0.0]
    m0 = moments(phi, grid)
    rec = {k: [m0[k]] for k in ("mass", "momentum", "energy", "entropy")}
    snaps = [phi.copy()]
    rejected = {"error": 0, "negative": 0, "entropy": 0}

    k_first = rhs(phi, "at t = 0 (initial state)", 0.0)
    S = m0["entropy"]
    t = 0.0
    if dt0 is None:
        h = _starting_step(lambda y: rhs(y, "while choosing the first step (t = 0)", 0.0), phi, k_first, tab, rtol, atol)
    else:
        h = dt0
    h = min(h, dt_max, t_end)
    i_out = 1
    err_prev = 1.0
    h_guard = math.inf  # cap after a positivity/entropy rejection, relaxed by GUARD_RELAX per accepted step
    n_attempts = 0
    last_reject: str | None = None
    s = len(tab.c)
    K = np.empty((s, grid.n_cells))

    from tqdm.auto import tqdm

    start = _time.perf_counter()
    bar = tqdm(total=t_end, disable=not progress, desc=f"evolve {method}", dynamic_ncols=True, mininterval=0.5,
               bar_format="{l_bar}{bar}| t={n:.4g}/{total:.4g} [{elapsed}<{remaining}{postfix}]")
    try:
        while i_out < t_out.size:
            target = t_out[i_out]
            remaining = target - t
            landing = h >= remaining * (1.0 - 1e-12)
            if landing:
                step = remaining
            elif h > 0.5 * remaining:  # two even steps rather than a full one and a sliver
                step = 0.5 * remaining
            else:
                step = h
            n_attempts += 1
            if n_attempts > max_steps:
                raise EvolutionError(f"max_steps = {max_steps} steps (accepted + rejected) reached at t = {t:.6g} "
                                     f"of t_end = {t_end:g} with dt = {step:.3g}; raise max_steps or loosen rtol/atol",
                                     time=t)
            when = f"during the step t = {t:.6g} -> {t + step:.6g} (dt = {step:.3g})"
            K[0] = k_first
            for i in range(1, s - 1):
                y_stage = phi + step * (tab.A[i, :i] @ K[:i])
                K[i] = rhs(y_stage, when, t + tab.c[i] * step)
            increment = tab.b[: s - 1] @ K[: s - 1]
            y_new = phi + step * increment
            if not np.all(np.isfinite(y_new)):
                raise NonFiniteError(f"phi became NaN/inf {when}", time=t)
            K[s - 1] = rhs(y_new, when, t + step)
            err = _error_norm(step * (tab.e @ K), phi, y_new, rtol, atol)

            reason = None
            if not err <= 1.0:
                reason = "error"
            else:
                neg = float(np.min(y_new))
                if neg < -neg_threshold(y_new):
                    reason = "negative"
                    detail = (f"phi would reach {neg:.3g} at v = {v[int(np.argmin(y_new))]:.6g} "
                              f"(tolerance {neg_threshold(y_new):.2g})")
                elif check_entropy:
                    S_new = entropy(y_new, grid)
                    drop = S - S_new
                    if drop > s_slack(y_new):
                        reason = "entropy"
                        detail = f"entropy would decrease by {drop:.3g} (slack {s_slack(y_new):.2g})"
            if reason is not None:
                rejected[reason] += 1
                if reason == "entropy":
                    _raise_if_entropy_rate_negative(phi, k_first, grid, t, s_slack(y_new), t_end, dt_min,
                                                    max_steps - n_attempts)
                if reason == "error":
                    detail = f"error estimate {err:.3g} x tolerance"
                    fac = 0.2 if not math.isfinite(err) else max(0.2, 0.9 * err ** (-1.0 / tab.error_order))
                else:
                    # first guard rejection in a row: probably the stability edge, back off a little;
                    # repeated ones: halve
                    fac = GUARD_BACKOFF if last_reject is None else 0.5
                    h_guard = GUARD_BACKOFF * step
                last_reject = f"{reason}: {detail}"
                h = step * fac
                if h < dt_min or t + h == t:
                    raise EvolutionError(
                        f"step size collapsed at t = {t:.6g}: dt = {h:.3g} < dt_min = {dt_min:.3g}. Last rejection: "
                        f"{last_reject}. Rejections so far: {rejected}. {_COLLAPSE_HINTS[reason]}", time=t)
                continue

            # accepted
            if check_entropy:
                S = S_new
            else:
                S = entropy(y_new, grid)
            t = float(target) if landing else t + step
            phi = y_new
            k_first = K[s - 1].copy()
            rec_t.append(t)
            rec_dt.append(step)
            rec["mass"].append(float(np.sum(phi) * dv))
            rec["momentum"].append(float(np.sum(v * phi) * dv))
            rec["energy"].append(float(np.sum(0.5 * v * v * phi) * dv))
            rec["entropy"].append(S)
            bar.update(step)
            if landing:
                snaps.append(phi.copy())
                i_out += 1
                bar.set_postfix_str(f"dt={step:.2g}", refresh=False)
            # PI step-size control (Gustafsson), limited growth after a rejection
            err_c = max(err, 1e-10)
            fac = 0.9 * err_c ** (-0.7 / tab.error_order) * err_prev ** (0.4 / tab.error_order)
            fac = min(5.0 if last_reject is None else 1.0, max(0.2, fac))
            err_prev = err_c
            last_reject = None
            h_new = step * fac
            if landing and step < h:  # shortened only to land on an output time: keep the earlier proposal
                h_new = max(h_new, h)
            h_guard *= GUARD_RELAX
            h = min(dt_max, h_guard, h_new)
    finally:
        bar.close()
    wall = _time.perf_counter() - start

    info = {
        "method": method, "rtol": rtol, "atol": atol, "t_end": t_end,
        "n_accepted": len(rec_t) - 1, "n_rejected": rejected, "n_flux_evaluations": n_evals,
        "wall_time": wall, "normalisation_factor": factor, "max_wall_flux": max_wall,
        "dt_min": dt_min, "check_entropy": bool(check_entropy),
        "negativity_tol": negativity_tol, "entropy_slack": entropy_slack,
        "n_cells": grid.n_cells, "v_range": [float(grid.edges[0]), float(grid.edges[-1])],
    }
    return EvolutionResult(grid=grid, t=np.array(rec_t), dt=np.array(rec_dt), mass=np.array(rec["mass"]),
                           momentum=np.array(rec["momentum"]), energy=np.array(rec["energy"]),
                           entropy=np.array(rec["entropy"]), t_out=t_out, phi_out=np.array(snaps), info=info)


def _raise_if_entropy_rate_negative(phi: np.ndarray, rate: np.ndarray, grid: VelocityGrid, t: float, slack: float,
                                    t_end: float, dt_min: float, steps_left: int) -> None:
    """Stop when the semi-discrete flow itself lowers S faster than small steps can absorb.

    dS/dt = -sum (ln phi_i + 1) d(phi_i)/dt dv (cells with phi_i > 0). If it is negative, a step
    dt lowers S by about dt |dS/dt|, so only dt < slack / |dS/dt| passes the entropy check. A
    round-off-sized negative rate (an operator at equilibrium) allows ordinary steps; a genuinely
    negative one needs dt below ``dt_min`` or more than the remaining ``max_steps`` steps to
    reach t_end, and no step-size reduction can fix it: say so at once instead of crawling.
    """
    pos = phi > 0
    weights = np.where(pos, np.log(np.where(pos, phi, 1.0)) + 1.0, 0.0)
    ds_dt = float(-np.sum(weights * rate) * grid.dv)
    if not ds_dt < 0.0:
        return
    dt_ok = slack / -ds_dt
    if dt_ok < dt_min or (t_end - t) / max(dt_ok, 1e-300) > steps_left:
        raise EvolutionError(
            f"flux_fn decreases the entropy at t = {t:.6g}: the semi-discrete rate dS/dt = {ds_dt:.3g} < 0, so only "
            f"steps dt < {dt_ok:.3g} keep S within its round-off slack {slack:.2g} (dt_min = {dt_min:.3g}, "
            f"{steps_left} of max_steps left for t_end - t = {t_end - t:.6g}); no step size can fix this. The "
            "operator's discretisation has no discrete H-theorem at this state (check it with semidiscrete_rates); "
            "pass check_entropy=False to integrate it anyway", time=t)


def _starting_step(f, y0, f0, tab: Tableau, rtol: float, atol: float) -> float:
    """Hairer, Norsett & Wanner (II.4): a first step from the size of y and of its derivatives."""
    scale = atol + rtol * np.abs(y0)
    d0 = float(np.sqrt(np.mean((y0 / scale) ** 2)))
    d1 = float(np.sqrt(np.mean((f0 / scale) ** 2)))
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    y1 = y0 + h0 * f0
    f1 = f(y1)
    d2 = float(np.sqrt(np.mean(((f1 - f0) / scale) ** 2))) / h0
    if max(d1, d2) <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / tab.error_order)
    return min(100.0 * h0, h1)
