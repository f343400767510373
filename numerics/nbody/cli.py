"""``bbgky nbody | resume | measure``: N-body ensembles from the command line.

    bbgky nbody --potential hmf|ring|fourier [--softening EPS] [--harmonics "1:0.5,2:0.1"]
                --df gaussian|gg [--n 4] [--sigma 1] --N 64 --R 100 --t-end 100 --dt 0.1
                [--kmax K] [--force direct|harmonic] [--method yoshida4|leapfrog]
                [--backend numpy|jax|cupy] [--dtype float64|float32] [--seed 0] [--snapshots 101]
                [--max-energy-error 1e-3|none] --out RUN.npz [--checkpoint CKPT.npz]
                [--checkpoint-every SECONDS] [--no-progress]
    bbgky resume CKPT.npz [--out RUN.npz] [--no-progress]
    bbgky measure RUN.npz --window T0 T1 [--out-json J] [--out-png P]

Imports only NumPy at parser-building time; the engine, JAX and matplotlib load when a
command runs.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def _harmonics(text: str) -> dict[int, float]:
    """'1:0.5,2:0.1' -> {1: 0.5, 2: 0.1}."""
    out: dict[int, float] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            k, value = item.split(":")
            out[int(k)] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--harmonics expects 'k:U_k' pairs separated by commas "
                                             f"(e.g. '1:0.5,2:0.1'), got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError("--harmonics is empty")
    return out


def _optional_float(text: str):
    return None if text.lower() in ("none", "off", "no") else float(text)


def build_potential(args):
    """The potential named by --potential (with --softening / --harmonics)."""
    from numerics.models import HMF, FourierPotential, RingModel

    if args.potential == "hmf":
        return HMF()
    if args.potential == "ring":
        if args.softening is None:
            raise ValueError("--potential ring needs --softening EPS (> 0)")
        return RingModel(args.softening)
    if args.harmonics is None:
        raise ValueError("--potential fourier needs --harmonics 'k:U_k,...' (e.g. '1:0.5,2:0.1')")
    return FourierPotential(args.harmonics)


def build_df(args, sigma: float):
    """The profile named by --df (gaussian, or gg with --n) at dispersion ``sigma``."""
    from numerics.models import Gaussian, GeneralizedGaussian

    return Gaussian(sigma) if args.df == "gaussian" else GeneralizedGaussian(args.gg_n, sigma)


def _build_models(args):
    return build_potential(args), build_df(args, args.sigma)


def _cmd_nbody(args) -> int:
    from numerics.nbody import simulate

    potential, df = _build_models(args)
    result = simulate(potential, df, args.n_particles, args.realisations, args.t_end, args.dt, kmax=args.kmax,
                      method=args.method, backend=args.backend, seed=args.seed, n_snapshots=args.snapshots,
                      force=args.force, max_energy_error=args.max_energy_error, checkpoint=args.checkpoint,
                      checkpoint_every=args.checkpoint_every, progress=not args.no_progress, dtype=args.dtype)
    path = result.save(args.out)
    _report(result, path)
    return 0


def default_resume_output(checkpoint) -> Path:
    """Where ``bbgky resume CKPT`` writes the run: CKPT with '.ckpt' dropped, else '<stem>.result.npz'."""
    p = Path(checkpoint)
    name = p.name
    for suffix in (".ckpt.npz", ".checkpoint.npz"):
        if name.endswith(suffix):
            return p.with_name(name[: -len(suffix)] + ".npz")
    return p.with_name(p.stem + ".result.npz")


def _cmd_resume(args) -> int:
    from numerics.nbody import resume

    result = resume(args.checkpoint, progress=not args.no_progress)
    path = result.save(args.out if args.out is not None else default_resume_output(args.checkpoint))
    _report(result, path)
    return 0


def _cmd_measure(args) -> int:
    from numerics.nbody.measure import write_measurement

    measurement = write_measurement(args.result, tuple(args.window), args.out_json, args.out_png)
    print(f"measured the flux of {args.result} over t in [{args.window[0]:g}, {args.window[1]:g}] "
          f"({getattr(measurement, 'fit_points', '?')} snapshots)")
    return 0


def _report(result, path) -> None:
    err = float(result.relative_energy_error.max())
    print(f"wrote {path}: N = {result.N}, R = {result.R}, {len(result.times)} snapshots to t = {result.times[-1]:g}, "
          f"max relative energy error {err:.2e}, {result.wall_time:.1f} s")


def register(subparsers) -> None:
    """Add the ``nbody``, ``resume`` and ``measure`` subcommands."""
    p = subparsers.add_parser("nbody", help="run an ensemble of N-body simulations, write a run file (NPZ)",
                              description="Integrate R realisations of N particles on the circle and write "
                              "the snapshots needed by the flux measurement.")
    p.add_argument("--potential", choices=("hmf", "ring", "fourier"), default="hmf")
    p.add_argument("--softening", type=float, default=None, help="ring model softening eps > 0")
    p.add_argument("--harmonics", type=_harmonics, default=None, help="fourier potential: 'k:U_k,...'")
    p.add_argument("--df", choices=("gaussian", "gg"), default="gaussian",
                   help="velocity distribution: Maxwellian or generalised Gaussian exp(-|v/s|^n)")
    p.add_argument("--n", dest="gg_n", type=float, default=4.0, help="exponent n of --df gg (default 4)")
    p.add_argument("--sigma", type=float, default=1.0, help="velocity dispersion sigma (default 1)")
    p.add_argument("--N", dest="n_particles", type=int, required=True, help="particles per realisation (>= 2)")
    p.add_argument("--R", dest="realisations", type=int, required=True, help="realisations (>= 1)")
    p.add_argument("--t-end", dest="t_end", type=float, required=True, help="duration (a multiple of dt)")
    p.add_argument("--dt", type=float, required=True, help="time step")
    p.add_argument("--kmax", type=int, default=None, help="truncate at kmax and use harmonic sums")
    p.add_argument("--force", choices=("direct", "harmonic"), default=None, help="force the force computation")
    p.add_argument("--method", choices=("yoshida4", "leapfrog"), default="yoshida4")
    p.add_argument("--backend", choices=("numpy", "jax", "cupy"), default="numpy")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snapshots", type=int, default=101, help="number of snapshots, t = 0 and t_end included")
    p.add_argument("--max-energy-error", dest="max_energy_error", type=_optional_float, default=1e-3,
                   help="stop when |E(t)-E(0)| / max(|E(0)|, K(0)+|W(0)|) exceeds this ('none' disables; default 1e-3)")
    p.add_argument("--out", required=True, help="run file to write (.npz)")
    p.add_argument("--checkpoint", default=None, help="checkpoint file (.npz), rewritten periodically")
    p.add_argument("--checkpoint-every", dest="checkpoint_every", type=float, default=60.0,
                   help="seconds of wall time between checkpoints (default 60)")
    p.add_argument("--no-progress", dest="no_progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_nbody)

    p = subparsers.add_parser("resume", help="continue a checkpointed N-body run, write its run file",
                              description="Continue the run saved in a checkpoint to its end; the result is "
                              "identical to an uninterrupted run.")
    p.add_argument("checkpoint", help="checkpoint file written by `bbgky nbody --checkpoint`")
    p.add_argument("--out", default=None,
                   help="run file to write (default: the checkpoint name without '.ckpt', or '<stem>.result.npz')")
    p.add_argument("--no-progress", dest="no_progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_resume)

    p = subparsers.add_parser("measure", help="measure the velocity flux of a run file",
                              description="Flux F(u) = -d/dt [fraction with v < u] over a time window, with "
                              "bootstrap error bars; writes JSON and PNG.")
    p.add_argument("result", help="run file (.npz)")
    p.add_argument("--window", nargs=2, type=float, metavar=("T0", "T1"), required=True, help="fit window in time")
    p.add_argument("--out-json", dest="out_json", default=None, help="JSON output (default <stem>.flux.json)")
    p.add_argument("--out-png", dest="out_png", default=None, help="PNG output (default <stem>.flux.png)")
    p.set_defaults(func=_cmd_measure)
