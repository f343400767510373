"""Velocity flux measured from ensembles of N-body snapshots (PHYSICS.md, section 4).

Sign convention (public API, files and plots): continuity equation d(phi)/dt + dF/dv = 0, so

    F(u) = - d/dt [fraction of particles with v < u],

positive flux = particles move up in velocity.

No histograms: a run stores, for every realisation r, snapshot time t and grid value u_j, the
fraction C_r(t, u_j) of its particles with v < u_j. The flux is minus the least-squares slope
in time of the realisation-averaged C over a window [t0, t1] (early enough that phi has not
changed, late enough that the initial transients are over). A linear fit is linear in the data,
so this equals the average of the per-realisation slopes, which is what the bootstrap resamples.
For an even phi, F is odd in u and is folded, F(u) -> (F(u) - F(-u))/2, halving the noise.
Error bars: percentile bootstrap over realisations, 16% / 84% quantiles. Neighbouring u are
strongly correlated (adjacent points 0.5-0.9 in the stored ring-model runs: a particle that
crosses one grid value often crosses the next), so every measurement also carries the covariance
of its mean flux across u, Cov_r(slope_r) / R, which a chi^2 of the whole profile must use.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from numerics._json import json_default

__all__ = ["FluxMeasurement", "measure_flux", "write_measurement", "flux_slopes", "flux_error_budget", "fold_odd"]

#: names of distributions that are even by construction (zero mean)
_EVEN_DF_NAMES = ("gaussian", "generalized_gaussian")

FLUX_LABEL = r"flux $\mathcal{F}(u) = -\,d/dt\,$[fraction with $v<u$]  (positive = particles move up in $v$)"


@dataclass(frozen=True)
class FluxMeasurement:
    """Flux F(u) measured from an N-body ensemble, with 16%/84% bootstrap bands.

    ``flux``, ``lower``, ``upper``: arrays on ``u`` (positive = particles move up in v), in
    units of [fraction of particles] / [time unit of the run].
    ``window``: the (t0, t1) fit window; ``fit_points``: snapshots inside it;
    ``n_realisations``: R; ``N``: particles per realisation (None if the run does not say);
    ``folded``: whether F was antisymmetrised (even DF).
    ``covariance``: (U, U) covariance across u of ``flux`` (None when unknown, e.g. rebuilt from
    a band alone); its diagonal is the squared one-sigma error, close to ``stderr``**2.
    ``support``: (U,) how many realisations have a non-zero (folded) flux slope at each u (None when
    unknown). In the far tails only a handful of realisations see a particle cross u; there the
    bootstrap error is not a Gaussian one-sigma error (``numerics.validate.MIN_SUPPORT``).
    """

    u: np.ndarray
    flux: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    window: tuple[float, float]
    n_realisations: int
    N: int | None
    folded: bool
    fit_points: int
    n_boot: int = 0
    seed: int | None = None
    sign_convention: str = field(default="F(u) = -d/dt fraction(v < u); positive = particles move up in v")
    covariance: np.ndarray | None = field(default=None, repr=False)
    support: np.ndarray | None = field(default=None, repr=False)

    @property
    def stderr(self) -> np.ndarray:
        """Half width of the 16%-84% band: a one-sigma error for Gaussian statistics."""
        return 0.5 * (self.upper - self.lower)

    def to_dict(self) -> dict:
        """JSON-ready dictionary (lists and plain numbers; ``covariance`` and ``support`` only when known)."""
        out = {
            "u": np.asarray(self.u, dtype=float).tolist(),
            "flux": np.asarray(self.flux, dtype=float).tolist(),
            "lower": np.asarray(self.lower, dtype=float).tolist(),
            "upper": np.asarray(self.upper, dtype=float).tolist(),
            "stderr": np.asarray(self.stderr, dtype=float).tolist(),
            "window": [float(self.window[0]), float(self.window[1])],
            "n_realisations": int(self.n_realisations),
            "N": None if self.N is None else int(self.N),
            "folded": bool(self.folded),
            "fit_points": int(self.fit_points),
            "n_boot": int(self.n_boot),
            "seed": self.seed,
            "quantiles": [0.16, 0.84],
            "sign_convention": self.sign_convention,
        }
        if self.covariance is not None:
            out["covariance"] = np.asarray(self.covariance, dtype=float).tolist()
        if self.support is not None:
            out["support"] = np.asarray(self.support, dtype=int).tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "FluxMeasurement":
        """Inverse of :meth:`to_dict` (extra keys, e.g. the run's params, are ignored)."""
        return cls(
            u=np.asarray(data["u"], dtype=float),
            flux=np.asarray(data["flux"], dtype=float),
            lower=np.asarray(data["lower"], dtype=float),
            upper=np.asarray(data["upper"], dtype=float),
            window=(float(data["window"][0]), float(data["window"][1])),
            n_realisations=int(data["n_realisations"]),
            N=None if data.get("N") is None else int(data["N"]),
            folded=bool(data["folded"]),
            fit_points=int(data["fit_points"]),
            n_boot=int(data.get("n_boot", 0)),
            seed=data.get("seed"),
            covariance=None if data.get("covariance") is None else np.asarray(data["covariance"], dtype=float),
            support=None if data.get("support") is None else np.asarray(data["support"], dtype=int),
        )


# --------------------------------------------------------------------------------------------
def flux_slopes(times, cumulative, window) -> tuple[np.ndarray, np.ndarray]:
    """Per-realisation flux estimates -slope_t C_r(t, u) over the window.

    Returns (flux_r of shape (R, U), mask of the snapshots used). Validates ``window``.
    """
    times = np.asarray(times, dtype=float)
    cumulative = np.asarray(cumulative, dtype=float)
    if times.ndim != 1:
        raise ValueError(f"result.times must be 1D, got shape {times.shape}")
    if cumulative.ndim != 3 or cumulative.shape[1] != times.size:
        raise ValueError("result.cumulative must have shape (R, T, U) with T = len(times) = "
                         f"{times.size}, got {cumulative.shape}")
    t_lo, t_hi = float(np.min(times)), float(np.max(times))
    try:
        t0, t1 = (float(w) for w in window)
    except (TypeError, ValueError):
        raise ValueError(f"window must be a pair (t0, t1) of times in [{t_lo:g}, {t_hi:g}], "
                         f"got {window!r}") from None
    if not (math.isfinite(t0) and math.isfinite(t1) and t0 < t1):
        raise ValueError(f"window must be (t0, t1) with t0 < t1, got {window!r}; "
                         f"the run's times span [{t_lo:g}, {t_hi:g}]")
    slack = 1e-9 * max(abs(t_lo), abs(t_hi), 1.0)
    if t0 < t_lo - slack or t1 > t_hi + slack:
        raise ValueError(f"window {window!r} is not inside the run's times [{t_lo:g}, {t_hi:g}]")
    mask = (times >= t0 - slack) & (times <= t1 + slack)
    n_fit = int(np.count_nonzero(mask))
    if n_fit < 3:
        raise ValueError(f"window {window!r} holds {n_fit} snapshot(s); a flux fit needs at least 3 "
                         f"(the run's times span [{t_lo:g}, {t_hi:g}] with {times.size} snapshots)")
    t = times[mask]
    dt = t - t.mean()
    # C relative to its first snapshot in the window: the same least-squares slope (sum_t dt = 0), but
    # a fraction that never changes (no particle crosses u, as in the far tails) gives exactly 0 rather
    # than C times the rounding error of sum_t dt, which would pass for a measured flux with a tiny error
    c = cumulative[:, mask, :]
    c = c - c[:, :1, :]
    slopes = np.einsum("t,rtu->ru", dt, c) / np.dot(dt, dt)
    return -slopes, mask


def flux_error_budget(times, cumulative, window, *, fold: bool = False) -> dict[str, np.ndarray]:
    """One-sigma errors of three flux estimators over ``window`` from one run, each of shape (U,).

    All three use the same R realisations, i.e. the same cost:

    ``least_squares``: what :func:`measure_flux` does, a least-squares slope per realisation over
        every snapshot in the window, then their spread / sqrt(R);
    ``two_point``: -(C(t1) - C(t0)) / (t1 - t0) per realisation, from the window's first and last
        snapshots only, then its spread / sqrt(R);
    ``two_point_unpaired``: the same difference of ensemble means when the two ensembles are
        independent (histograms of independent samples, the initial one drawn afresh):
        sqrt(Var_r C(t0) + Var_r C(t1)) / sqrt(R) / (t1 - t0).

    two_point_unpaired / two_point is what differencing within realisations buys (what a
    realisation keeps for the whole window, its own sample of phi, cancels); two_point /
    least_squares is what the snapshots inside the window add. Squared, they are factors in R.
    ``fold``: errors of the folded flux (F(u) - F(-u))/2, for an even df on a symmetric grid.
    """
    slopes, mask = flux_slopes(times, cumulative, window)
    R = slopes.shape[0]
    if R < 2:
        raise ValueError(f"flux errors need at least 2 realisations, got R = {R}")
    t = np.asarray(times, dtype=float)[mask]
    c = np.asarray(cumulative, dtype=float)[:, mask, :]
    first, last = c[:, 0, :], c[:, -1, :]
    if fold:
        slopes, first, last = fold_odd(slopes), fold_odd(first), fold_odd(last)
    span = float(t[-1] - t[0])
    root_r = math.sqrt(R)
    return {
        "least_squares": slopes.std(axis=0, ddof=1) / root_r,
        "two_point": (last - first).std(axis=0, ddof=1) / root_r / span,
        "two_point_unpaired": np.sqrt(first.var(axis=0, ddof=1) + last.var(axis=0, ddof=1)) / root_r / span,
    }


def _is_even_df(params) -> bool:
    df = (params or {}).get("df") if isinstance(params, dict) else None
    if not isinstance(df, dict) or "name" not in df:
        raise ValueError("cannot decide whether to fold: result.params has no 'df' description "
                         "with a 'name'; pass fold=True or fold=False")
    if df["name"] in _EVEN_DF_NAMES:
        return True
    from numerics.models.distributions import distribution_from_dict

    return bool(distribution_from_dict(df).is_even)


def fold_odd(flux: np.ndarray) -> np.ndarray:
    """(F(u) - F(-u)) / 2 along the last axis, for a grid symmetric about 0."""
    return 0.5 * (flux - flux[..., ::-1])


def measure_flux(result, window, *, fold: bool | None = None, n_boot: int = 1000, seed: int = 0) -> FluxMeasurement:
    """Measure F(u) = -d/dt <fraction(v < u)> from an ensemble run.

    ``result``: has ``times`` (T,), ``cumulative`` (R, T, U) (fraction of each realisation's
    particles with v < u_grid[j] at each snapshot), ``u_grid`` (U,), ``params`` (dict; ``N``
    and the ``df`` description are read from it).
    ``window``: (t0, t1) inside the run's times, holding at least 3 snapshots.
    ``fold``: None = fold iff the DF is even; True/False to force. Folding needs a u grid
    symmetric about 0.
    ``n_boot``, ``seed``: bootstrap over realisations (resampled with replacement,
    ``numpy.random.default_rng(seed)``); lower/upper are the 16%/84% quantiles.
    The covariance of the mean flux across u is Cov_r(per-realisation slopes) / R (folded
    like the flux), the sample estimate the bootstrap converges to; the support at u is the number
    of realisations whose (folded) slope there is non-zero.
    """
    u = np.asarray(result.u_grid, dtype=float)
    cumulative = np.asarray(result.cumulative, dtype=float)
    if u.ndim != 1 or cumulative.ndim != 3 or cumulative.shape[2] != u.size:
        raise ValueError(f"result.u_grid (shape {u.shape}) must be 1D and match the last axis of "
                         f"result.cumulative (shape {cumulative.shape})")
    n_real = cumulative.shape[0]
    if n_real < 2:
        raise ValueError(f"the bootstrap over realisations needs R >= 2 realisations, got R = {n_real}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise ValueError(f"n_boot must be an integer >= 2, got {n_boot!r}")
    params = getattr(result, "params", None) or {}

    per_real, mask = flux_slopes(result.times, cumulative, window)
    do_fold = _is_even_df(params) if fold is None else bool(fold)
    if do_fold:
        scale = max(float(np.max(np.abs(u))), 1e-300)
        if not np.allclose(u, -u[::-1], rtol=0.0, atol=1e-9 * scale):
            raise ValueError("folding (even DF) needs a u grid symmetric about 0 "
                             f"(u_grid[j] = -u_grid[-1-j]); got u_grid from {u[0]:g} to {u[-1]:g} "
                             "that is not; pass fold=False")

    flux = per_real.mean(axis=0)
    if do_fold:
        flux = fold_odd(flux)
    slopes = fold_odd(per_real) if do_fold else per_real
    covariance = np.atleast_2d(np.cov(slopes, rowvar=False, ddof=1)) / n_real

    rng = np.random.default_rng(seed)
    boot = np.empty((int(n_boot), u.size))
    chunk = max(1, int(4_000_000 // max(n_real, 1)))
    for start in range(0, int(n_boot), chunk):
        stop = min(int(n_boot), start + chunk)
        idx = rng.integers(0, n_real, size=(stop - start, n_real))
        # counts[b, r] = how often realisation r was drawn in replicate b
        flat = (idx + n_real * np.arange(stop - start)[:, None]).ravel()
        counts = np.bincount(flat, minlength=(stop - start) * n_real).reshape(stop - start, n_real)
        boot[start:stop] = counts @ per_real / n_real
    if do_fold:
        boot = fold_odd(boot)
    lower, upper = np.quantile(boot, [0.16, 0.84], axis=0)

    n_particles = params.get("N") if isinstance(params, dict) else None
    return FluxMeasurement(
        u=u,
        flux=flux,
        lower=lower,
        upper=upper,
        window=(float(window[0]), float(window[1])),
        n_realisations=int(n_real),
        N=None if n_particles is None else int(n_particles),
        folded=do_fold,
        fit_points=int(np.count_nonzero(mask)),
        n_boot=int(n_boot),
        seed=seed,
        covariance=covariance,
        support=np.count_nonzero(slopes, axis=0),
    )


# --------------------------------------------------------------------------------------------


def default_output_paths(result_path) -> tuple[Path, Path]:
    """``run.npz`` -> (``run.flux.json``, ``run.flux.png``) next to the run file."""
    p = Path(result_path)
    return p.with_name(p.stem + ".flux.json"), p.with_name(p.stem + ".flux.png")


def plot_measurement(measurement: FluxMeasurement, png_path, *, title_extra: str = "") -> Path:
    """Write a PNG of F(u) with its 16%-84% band (Agg canvas; pyplot state untouched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    m = measurement
    fig = Figure(figsize=(7.0, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.fill_between(m.u, m.lower, m.upper, color="C0", alpha=0.3, lw=0, label="16%-84% bootstrap band")
    ax.plot(m.u, m.flux, color="C0", lw=1.5, label="measured flux" + (" (folded)" if m.folded else ""))
    ax.set_xlabel(r"velocity $u$")
    ax.set_ylabel(FLUX_LABEL, fontsize=8)
    n_text = "?" if m.N is None else str(m.N)
    ax.set_title(f"N = {n_text}, R = {m.n_realisations}, window t = [{m.window[0]:g}, {m.window[1]:g}] "
                 f"({m.fit_points} snapshots){title_extra}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path, dpi=120)
    return png_path


def write_measurement(result_path, window, json_path=None, png_path=None, *, fold: bool | None = None,
                      n_boot: int = 1000, seed: int = 0) -> FluxMeasurement:
    """Load a run file, measure its flux, write ``<stem>.flux.json`` and ``<stem>.flux.png``.

    The JSON holds :meth:`FluxMeasurement.to_dict` plus the run's ``params`` and the run
    file's path. Returns the measurement.
    """
    from numerics.nbody import load_result  # lazily: the N-body engine is not needed otherwise

    result = load_result(result_path)
    measurement = measure_flux(result, window, fold=fold, n_boot=n_boot, seed=seed)
    default_json, default_png = default_output_paths(result_path)
    json_path = Path(json_path) if json_path is not None else default_json
    png_path = Path(png_path) if png_path is not None else default_png
    payload = measurement.to_dict()
    payload["params"] = getattr(result, "params", None)
    payload["result_path"] = str(result_path)
    with open(json_path, "w") as fh:
        json.dump(payload, fh, indent=1, default=json_default)
    plot_measurement(measurement, png_path)
    return measurement
