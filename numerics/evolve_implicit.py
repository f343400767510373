"""Implicit (BDF) time stepping of the kinetic equation, with checkpoints: for stiff operators.

Same equation, grid, diagnostics and result as :func:`numerics.evolve.evolve` (finite volumes,
zero-flux walls, :class:`~numerics.evolve.EvolutionResult`); only the time stepper differs. It
is what the 1/N^2 three-body operator needs: its canonical form reads the DF's derivatives up to
fourth order, so its finite-volume Jacobian has eigenvalues growing like (cells)^4 (measured on
the HMF, n = 4, Q = 4: -557, -5204, -19685 for 32, 48, 64 cells, against a relaxation rate of
order 0.01), far beyond what an explicit step can follow. SciPy's variable-order BDF
(:class:`scipy.integrate.BDF`, Jacobian by finite differences of ``flux_fn``) steps at the
relaxation's own pace.

Invariants: a linear multistep method with Newton iterations keeps every linear invariant of
the semi-discrete system (each Newton update lies in the range of the Jacobian, which the
invariants annihilate): mass to round-off by the walls (round-off times the conditioning of
the Newton matrix: measured 3e-14 for the three-body relaxation, 5e-11 for a stiff test
Fokker-Planck operator), momentum and energy likewise when
the operator's face fluxes satisfy sum_f F_f = 0 and sum_f v_f F_f = 0 (see
:func:`numerics.kinetic.three_body_flux_fn`). Snapshots between steps come from the stepper's
interpolant, a combination of states with weights summing to one, so they keep them too.

Checks at every accepted step, as in the explicit path: NaN/inf raises
:class:`~numerics.evolve.NonFiniteError`; a step whose state goes negative beyond
``negativity_tol`` (default: ``NEGATIVITY_FRACTION`` = 1e-6 of max phi: the finite-volume
form of the three-body operator is not positivity preserving: the coefficient b of phi' in
its flux a phi + b phi' changes sign with v, and where b > 0 next to an empty tail cell the
face flux empties that cell. Measured for the HMF relaxation (32 cells, +-4.5 sigma): the
outermost cell reaches -2.8e-8 (1e-7 of max phi) at tau ~ 375, where the final Maxwellian is
7e-5 of its peak. Step-size control cannot remove this; the most negative value met is
reported as ``info["min_phi"]``) or lowers the entropy by more than ``entropy_slack`` is undone and the
stepper restarted from the previous state with half the step (it is counted in
``info["n_rejected"]``); below ``dt_min`` it raises :class:`~numerics.evolve.EvolutionError`.

Checkpoints: with ``checkpoint=PATH`` the state, step size and every record so far are written
to an NPZ file (no pickle) every ``checkpoint_every`` seconds of wall time and at the end;
:func:`resume` continues from such a file with the same ``flux_fn`` and returns the result of
the whole run. The stepper's multistep history is not stored: a resumed run restarts at first
order from the saved state and step, so it matches an uninterrupted run to the tolerances,
not bitwise.
"""
from __future__ import annotations

import json
import math
import time as _time
from pathlib import Path

import numpy as np

from numerics._json import json_default
from numerics.evolve import (EvolutionError, EvolutionResult, NonFiniteError, VelocityGrid, _as_grid,
                             _initial_state, _output_times, _positive_float, entropy, entropy_round_off, moments, read_npz)

CHECKPOINT_FORMAT = "bbgky-evolve-checkpoint-v1"
#: default negativity tolerance, as a fraction of max phi
NEGATIVITY_FRACTION = 1e-6
__all__ = ["evolve_implicit", "resume", "CHECKPOINT_FORMAT"]


def evolve_implicit(flux_fn, phi0, v_edges_or_grid, t_end: float, *, rtol: float = 1e-5, atol: float = 1e-9,
                    n_snapshots: int = 11, output_times=None, normalise: bool = True, dt0: float | None = None,
                    dt_min: float | None = None, negativity_tol: float | None = None,
                    entropy_slack: float | None = None, check_entropy: bool = True, max_steps: int = 100_000,
                    edge_warning: float = 1e-6, checkpoint=None, checkpoint_every: float = 60.0,
                    progress: bool = True) -> EvolutionResult:
    """Integrate d(phi)/dt = -dF[phi]/dv from 0 to ``t_end`` with variable-order BDF.

    Arguments as in :func:`numerics.evolve.evolve` (``flux_fn(phi, grid)`` returns the face
    fluxes; ``phi0`` cell values, a distribution or a callable; ``rtol``/``atol`` the BDF
    tolerances), plus ``checkpoint`` (an NPZ path written every ``checkpoint_every`` > 0
    seconds and at the end) for :func:`resume`. Returns an
    :class:`~numerics.evolve.EvolutionResult` with ``info["method"] == "bdf"``.
    """
    if not callable(flux_fn):
        raise TypeError(f"flux_fn must be callable as flux_fn(phi, grid), got {type(flux_fn).__name__}")
    grid = _as_grid(v_edges_or_grid)
    t_end = _positive_float("t_end", t_end)
    params = _parameters(rtol, atol, dt0, dt_min, negativity_tol, entropy_slack, check_entropy, max_steps,
                         checkpoint_every, t_end)
    phi, factor = _initial_state(phi0, grid, bool(normalise), float(edge_warning))
    t_out = _output_times(t_end, output_times, n_snapshots)
    m0 = moments(phi, grid)
    state = {
        "t": 0.0, "phi": phi, "h": params["dt0"], "t_out": t_out, "i_out": 1,
        "rec_t": [0.0], "rec_dt": [0.0], "rec": {k: [m0[k]] for k in ("mass", "momentum", "energy", "entropy")},
        "snaps": [phi.copy()], "rejected": {"negative": 0, "entropy": 0}, "n_evals": 0, "n_jac": 0,
        "wall": 0.0, "factor": factor, "resumed": 0,
    }
    return _run(flux_fn, grid, state, params, checkpoint, progress)


def resume(flux_fn, checkpoint, *, progress: bool = True, checkpoint_every: float | None = None,
           max_steps: int | None = None) -> EvolutionResult:
    """Continue the run saved in ``checkpoint`` (written by :func:`evolve_implicit`, at its
    interval, at the end, and when a run stops on an error or an interrupt) to its t_end with
    ``flux_fn`` (the same operator: its name is checked when the flux function carries one),
    updating the checkpoint as it goes. ``max_steps`` replaces the saved limit (counted from
    the run's start). Returns the whole run's result."""
    path = Path(checkpoint)
    raw = read_npz(path, CHECKPOINT_FORMAT, "evolution checkpoint")
    meta = json.loads(str(raw["meta_json"]))
    params = meta["params"]
    if checkpoint_every is not None:
        params["checkpoint_every"] = _positive_float("checkpoint_every", checkpoint_every)
    if max_steps is not None:
        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
            raise ValueError(f"max_steps must be an integer >= 1, got {max_steps!r}")
        params["max_steps"] = int(max_steps)
    name = getattr(flux_fn, "operator_name", None)
    if name is not None and meta.get("operator_name") not in (None, name):
        raise ValueError(f"checkpoint {path} was written with operator {meta['operator_name']!r}, "
                         f"flux_fn is {name!r}")
    grid = VelocityGrid(raw["v_edges"])
    state = {
        "t": float(meta["t"]), "phi": raw["phi"].astype(np.float64), "h": float(meta["h"]), "t_out": raw["t_out"],
        "i_out": int(meta["i_out"]), "rec_t": raw["t"].tolist(), "rec_dt": raw["dt"].tolist(),
        "rec": {k: raw[k].tolist() for k in ("mass", "momentum", "energy", "entropy")},
        "snaps": list(raw["phi_out"]), "rejected": meta["rejected"], "n_evals": int(meta["n_evals"]),
        "n_jac": int(meta["n_jac"]), "wall": float(meta["wall"]), "factor": float(meta["factor"]),
        "resumed": int(meta["resumed"]) + 1, "min_phi": float(meta.get("min_phi", 0.0)),
    }
    return _run(flux_fn, grid, state, params, path, progress)


# ---------------------------------------------------------------------------------------

def _parameters(rtol, atol, dt0, dt_min, negativity_tol, entropy_slack, check_entropy, max_steps,
                checkpoint_every, t_end) -> dict:
    rtol = _positive_float("rtol", rtol)
    atol = _positive_float("atol", atol)
    if dt0 is not None:
        dt0 = _positive_float("dt0", dt0)
    dt_min = 1e-12 * t_end if dt_min is None else _positive_float("dt_min", dt_min)
    for name, value in (("negativity_tol", negativity_tol), ("entropy_slack", entropy_slack)):
        if value is not None and not (math.isfinite(float(value)) and float(value) >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    checkpoint_every = _positive_float("checkpoint_every", checkpoint_every)
    return {"rtol": rtol, "atol": atol, "dt0": dt0, "dt_min": dt_min, "negativity_tol": negativity_tol,
            "entropy_slack": entropy_slack, "check_entropy": bool(check_entropy), "max_steps": int(max_steps),
            "checkpoint_every": checkpoint_every, "t_end": t_end}


def _run(flux_fn, grid: VelocityGrid, state: dict, params: dict, checkpoint, progress: bool) -> EvolutionResult:
    from scipy.integrate import BDF
    from tqdm.auto import tqdm

    from numerics.evolve import _divergence, _face_fluxes

    dv, v = grid.dv, grid.centres
    t_end = params["t_end"]
    max_wall = [0.0]

    def rhs(t, y):
        state["n_evals"] += 1
        inner, wall = _face_fluxes(flux_fn, y, grid, f"at t = {t:.6g}", t)
        max_wall[0] = max(max_wall[0], wall)
        return _divergence(inner, dv)

    def stepper(t0, y0, first_step):
        if first_step is not None:
            first_step = min(first_step, t_end - t0)
        return BDF(rhs, t0, y0, t_end, rtol=params["rtol"], atol=params["atol"], first_step=first_step)

    def save():
        if checkpoint is not None:
            _save_checkpoint(checkpoint, grid, state, params, flux_fn)

    t, phi = state["t"], state["phi"]
    S = state["rec"]["entropy"][-1]
    finished = state["i_out"] >= state["t_out"].size
    solver = None if finished else stepper(t, phi, state["h"] if state["h"] else None)
    start = _time.perf_counter()
    wall0 = state["wall"]
    last_save = start
    n_steps = len(state["rec_t"]) - 1 + sum(state["rejected"].values())
    bar = tqdm(total=t_end, initial=t, disable=not progress, desc="evolve bdf", dynamic_ncols=True, mininterval=0.5,
               bar_format="{l_bar}{bar}| t={n:.4g}/{total:.4g} [{elapsed}<{remaining}{postfix}]")
    try:
        while state["i_out"] < state["t_out"].size:
            if n_steps >= params["max_steps"]:
                raise EvolutionError(f"max_steps = {params['max_steps']} steps reached at t = {t:.6g} of "
                                     f"t_end = {t_end:g}; raise max_steps or loosen rtol/atol", time=t)
            message = solver.step()
            n_steps += 1
            if solver.status == "failed":
                raise EvolutionError(f"BDF step failed at t = {solver.t:.6g}: {message}", time=solver.t)
            y_new, t_new = solver.y, float(solver.t)
            if not np.all(np.isfinite(y_new)):
                raise NonFiniteError(f"phi became NaN/inf during the step t = {t:.6g} -> {t_new:.6g}", time=t)
            reason = None
            neg_tol = (params["negativity_tol"] if params["negativity_tol"] is not None
                       else NEGATIVITY_FRACTION * float(np.max(y_new)))
            if float(np.min(y_new)) < -neg_tol:
                reason, detail = "negative", f"phi would reach {float(np.min(y_new)):.3g} at v = {v[int(np.argmin(y_new))]:.6g}"
            S_new = entropy(y_new, grid)
            if reason is None and params["check_entropy"] and S - S_new > entropy_round_off(y_new, dv, params["entropy_slack"]):
                reason, detail = "entropy", f"entropy would decrease by {S - S_new:.3g}"
            if reason is not None:
                state["rejected"][reason] += 1
                h = 0.5 * (t_new - t)
                if h < params["dt_min"]:
                    raise EvolutionError(f"step size collapsed at t = {t:.6g}: dt = {h:.3g} < dt_min = "
                                         f"{params['dt_min']:.3g}; last rejection: {reason}: {detail}. "
                                         f"Rejections so far: {state['rejected']}", time=t)
                state["n_jac"] += solver.njev
                solver = stepper(t, phi, h)
                continue
            state["min_phi"] = min(state.get("min_phi", 0.0), float(np.min(y_new)))  # accepted states only
            dense = solver.dense_output()
            while state["i_out"] < state["t_out"].size and state["t_out"][state["i_out"]] <= t_new:
                t_snap = float(state["t_out"][state["i_out"]])
                state["snaps"].append(y_new.copy() if t_snap == t_new else np.asarray(dense(t_snap), dtype=float))
                state["i_out"] += 1
            state["rec_t"].append(t_new)
            state["rec_dt"].append(t_new - t)
            state["rec"]["mass"].append(float(np.sum(y_new) * dv))
            state["rec"]["momentum"].append(float(np.sum(v * y_new) * dv))
            state["rec"]["energy"].append(float(np.sum(0.5 * v * v * y_new) * dv))
            state["rec"]["entropy"].append(S_new)
            bar.update(t_new - t)
            t, phi, S = t_new, y_new.copy(), S_new
            state["t"], state["phi"], state["h"] = t, phi, float(solver.h_abs)
            now = _time.perf_counter()
            if now - last_save >= params["checkpoint_every"]:
                state["wall"] = wall0 + now - start
                save()
                last_save = now
    except BaseException:  # an error or an interrupt: keep the last accepted state for resume()
        state["wall"] = wall0 + _time.perf_counter() - start
        save()
        raise
    finally:
        bar.close()
    if solver is not None:
        state["n_jac"] += solver.njev
    state["wall"] = wall0 + _time.perf_counter() - start
    save()
    rec = state["rec"]
    info = {
        "method": "bdf", "rtol": params["rtol"], "atol": params["atol"], "t_end": t_end,
        "n_accepted": len(state["rec_t"]) - 1, "n_rejected": dict(state["rejected"]),
        "n_flux_evaluations": state["n_evals"], "n_jacobians": state["n_jac"], "wall_time": state["wall"],
        "normalisation_factor": state["factor"], "max_wall_flux": max_wall[0], "dt_min": params["dt_min"],
        "check_entropy": params["check_entropy"], "negativity_tol": params["negativity_tol"],
        "entropy_slack": params["entropy_slack"], "n_cells": grid.n_cells,
        "v_range": [float(grid.edges[0]), float(grid.edges[-1])], "resumed": state["resumed"],
        "min_phi": float(min(state.get("min_phi", 0.0), float(np.min(state["phi"])))),
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
    }
    for key in ("last_correction", "largest_correction"):
        if hasattr(flux_fn, key):
            info[f"conservation_{key}"] = float(getattr(flux_fn, key))
    return EvolutionResult(grid=grid, t=np.array(state["rec_t"]), dt=np.array(state["rec_dt"]),
                           mass=np.array(rec["mass"]), momentum=np.array(rec["momentum"]),
                           energy=np.array(rec["energy"]), entropy=np.array(rec["entropy"]),
                           t_out=np.asarray(state["t_out"]), phi_out=np.array(state["snaps"]), info=info)


def _save_checkpoint(path, grid: VelocityGrid, state: dict, params: dict, flux_fn) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"t": state["t"], "h": state["h"], "min_phi": state.get("min_phi", 0.0), "i_out": state["i_out"], "rejected": state["rejected"],
            "n_evals": state["n_evals"], "n_jac": state["n_jac"], "wall": state["wall"], "factor": state["factor"],
            "resumed": state["resumed"], "params": params, "operator_name": getattr(flux_fn, "operator_name", None)}
    arrays = {"format": np.array(CHECKPOINT_FORMAT), "v_edges": np.asarray(grid.edges), "phi": state["phi"],
              "t_out": np.asarray(state["t_out"]), "phi_out": np.array(state["snaps"]),
              "t": np.array(state["rec_t"]), "dt": np.array(state["rec_dt"]),
              **{k: np.array(state["rec"][k]) for k in ("mass", "momentum", "energy", "entropy")},
              "meta_json": np.array(json.dumps(meta, default=json_default))}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    tmp.replace(path)  # atomic: an interrupted write leaves the previous checkpoint intact
    return path
