"""Ensemble runs: initial conditions, snapshots, run files, checkpoint/resume, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from numerics.backends import BackendUnavailableError, cupy_usable
from numerics.models import HMF, DiracComb, FourierPotential, Gaussian, GeneralizedGaussian, RingModel
from numerics.nbody import NBodyResult, SimulationError, initial_conditions, load_result, resume, simulate

ARRAYS = ("times", "energy", "momentum", "cumulative", "u_grid")


def assert_same_result(a: NBodyResult, b: NBodyResult, exact=True, tol=1e-12):
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        if exact:
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            np.testing.assert_allclose(x, y, rtol=0, atol=tol * max(1.0, np.max(np.abs(y))), err_msg=name)
    for key in ("v2", "v4"):
        if exact:
            np.testing.assert_array_equal(a.moments[key], b.moments[key])
        else:
            np.testing.assert_allclose(a.moments[key], b.moments[key], rtol=tol)


def small_run(**kw):
    args = dict(potential=RingModel(0.3), df=GeneralizedGaussian(4, 1.0), N=16, R=3, t_end=1.0, dt=0.02, n_snapshots=11)
    args.update(kw)
    return simulate(args.pop("potential"), args.pop("df"), args.pop("N"), args.pop("R"), args.pop("t_end"),
                    args.pop("dt"), progress=args.pop("progress", False), **args)


# ----------------------------------------------------------------------------- initial conditions
def test_initial_conditions_are_seeded_per_realisation():
    theta, v = initial_conditions(Gaussian(2.0), 50, 4, seed=9)
    assert theta.shape == v.shape == (4, 50)
    assert np.all((theta >= 0) & (theta < 2 * np.pi))
    np.testing.assert_allclose(v.mean(axis=1), 0.0, atol=1e-15)
    # realisation r does not depend on R; the documented recipe reproduces it
    theta2, v2 = initial_conditions(Gaussian(2.0), 50, 2, seed=9)
    np.testing.assert_array_equal(theta2, theta[:2])
    rng = np.random.default_rng(np.random.SeedSequence(9).spawn(4)[3])
    np.testing.assert_array_equal(rng.uniform(0, 2 * np.pi, 50), theta[3])
    raw = Gaussian(2.0).sample(rng, 50)
    np.testing.assert_allclose(raw - raw.mean(), v[3], atol=1e-15)
    assert not np.array_equal(initial_conditions(Gaussian(2.0), 50, 4, seed=10)[0], theta)


# ----------------------------------------------------------------------------- result content
def test_result_shapes_params_and_round_trip(tmp_path):
    run = small_run(n_snapshots=6, seed=4)
    R, T, U = 3, 6, 61
    assert run.times.shape == (T,) and run.energy.shape == run.momentum.shape == (R, T)
    assert run.cumulative.shape == (R, T, U) and run.u_grid.shape == (U,)
    assert run.moments["v2"].shape == run.moments["v4"].shape == (R, T)
    np.testing.assert_allclose(run.times, np.linspace(0, 1.0, 6), rtol=0, atol=1e-15)
    np.testing.assert_allclose(run.u_grid, np.linspace(-3, 3, 61))
    assert np.all(np.diff(run.cumulative, axis=2) >= 0) and np.all((run.cumulative >= 0) & (run.cumulative <= 1))
    p = run.params
    for key in ("potential", "df", "N", "R", "dt", "t_end", "method", "backend", "force", "kmax", "seed",
                "n_snapshots"):
        assert key in p, key
    assert p["potential"] == {"name": "ring", "softening": 0.3} and p["df"]["n"] == 4.0
    assert (p["N"], p["R"], p["seed"], p["force"], p["kmax"], p["method"]) == (16, 3, 4, "direct", None, "yoshida4")
    json.dumps(p)  # JSON-able
    assert run.wall_time > 0
    assert run.potential_model().softening == 0.3 and run.distribution().n == 4.0

    path = run.save(tmp_path / "run.npz")
    with np.load(path, allow_pickle=False) as data:  # no pickle needed
        assert "params_json" in data.files
    back = load_result(path)
    assert_same_result(back, run)
    assert back.params == json.loads(json.dumps(run.params)) and back.wall_time == run.wall_time


def test_default_u_grid_follows_sigma_and_custom_grid():
    run = small_run(df=Gaussian(2.0), n_snapshots=2, t_end=0.1)
    assert run.u_grid[0] == -6.0 and run.u_grid[-1] == 6.0
    run = small_run(n_snapshots=2, t_end=0.1, u_grid=[-1.0, 0.0, 1.0])
    assert run.cumulative.shape == (3, 2, 3)


@pytest.mark.parametrize("potential, kmax", [(RingModel(0.3), None), (HMF(), None), (RingModel(0.5), 16)],
                         ids=["ring-direct", "hmf", "ring-kmax16"])
def test_numpy_and_jax_runs_agree(potential, kmax):
    a = small_run(potential=potential, kmax=kmax, n_snapshots=5, seed=2)
    b = small_run(potential=potential, kmax=kmax, n_snapshots=5, seed=2, backend="jax")
    assert_same_result(b, a, exact=False, tol=1e-12)
    assert b.params["backend"] == "jax" and "jax" in b.params["versions"]


def test_float32_run():
    for backend in ("numpy", "jax"):
        run = small_run(dtype="float32", backend=backend, n_snapshots=3)
        assert run.params["dtype"] == "float32"
        assert run.relative_energy_error.max() < 1e-4


def test_dirac_comb_runs_with_kmax():
    run = small_run(potential=DiracComb(2, 0.2), kmax=6, n_snapshots=3)
    assert run.params["force"] == "harmonic" and run.params["kmax"] == 6


# ----------------------------------------------------------------------------- checkpoint / resume
class Stop(Exception):
    pass


def stop_at(index, exc=Stop):
    def callback(k, t):
        if k == index:
            raise exc(f"interrupted at snapshot {k}, t = {t}")

    return callback


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_resume_after_interruption_is_identical(tmp_path, backend):
    kw = dict(potential=FourierPotential({1: 0.5, 2: 0.2}), N=12, R=3, t_end=3.0, dt=0.05, n_snapshots=13,
              seed=8, backend=backend)
    reference = small_run(**kw)
    ckpt = tmp_path / "run.ckpt.npz"
    with pytest.raises(Stop):
        small_run(checkpoint=ckpt, checkpoint_every=0.0, callback=stop_at(5), **kw)
    with np.load(ckpt, allow_pickle=False) as data:
        assert int(data["n_done"]) == 6 and not bool(data["complete"])
        assert data["theta"].shape == (3, 12) and np.all(np.isnan(data["energy"][:, 6:]))
    with pytest.raises(ValueError, match="unfinished checkpoint"):
        load_result(ckpt)
    resumed = resume(ckpt, progress=False)
    assert_same_result(resumed, reference, exact=True)  # bitwise (numpy; JAX is deterministic on CPU too)
    control = ("checkpoint_every", "checkpoint_snapshots")  # run-control settings, not the physics
    assert {k: v for k, v in resumed.params.items() if k not in control} == \
        {k: v for k, v in reference.params.items() if k not in control}
    # the checkpoint now holds the finished run
    assert_same_result(load_result(ckpt), reference)
    assert_same_result(resume(ckpt, progress=False), reference)


def test_checkpoint_every_n_snapshots_and_keyboard_interrupt(tmp_path):
    kw = dict(N=16, R=2, t_end=2.0, dt=0.05, n_snapshots=11, seed=1)
    reference = small_run(**kw)
    ckpt = tmp_path / "c.npz"
    with pytest.raises(Stop):  # checkpoints at snapshots 3 and 6 (every 3 snapshots), stop at 7
        small_run(checkpoint=ckpt, checkpoint_every=1e9, checkpoint_snapshots=3, callback=stop_at(7), **kw)
    with np.load(ckpt, allow_pickle=False) as data:
        assert int(data["n_done"]) == 7
    assert_same_result(resume(ckpt, progress=False), reference)

    ckpt2 = tmp_path / "k.npz"
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C writes a checkpoint of the last consistent state
        small_run(checkpoint=ckpt2, checkpoint_every=1e9, callback=stop_at(4, KeyboardInterrupt), **kw)
    with np.load(ckpt2, allow_pickle=False) as data:
        assert int(data["n_done"]) == 5
    assert_same_result(resume(ckpt2, progress=False), reference)


def test_resume_rejects_a_run_file(tmp_path):
    path = small_run(n_snapshots=2, t_end=0.1).save(tmp_path / "r.npz")
    with pytest.raises(ValueError, match="run result"):
        resume(path, progress=False)
    with pytest.raises(FileNotFoundError):
        resume(tmp_path / "missing.npz")


def test_progress_bar_runs(capsys):
    small_run(n_snapshots=3, progress=True)
    assert "step" in capsys.readouterr().err


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kw, match", [
    (dict(N=1), "N must be an integer >= 2"),
    (dict(N=2.5), "N must be an integer"),
    (dict(R=0), "R must be an integer >= 1"),
    (dict(dt=0.0), "dt must be a finite number > 0"),
    (dict(dt=-0.1), "dt must be a finite number > 0"),
    (dict(dt=float("nan")), "dt must be"),
    (dict(t_end=0.0), "t_end must be a finite number > 0"),
    (dict(t_end=1.03), "t_end must be a positive integer multiple of dt"),
    (dict(method="rk4"), "method must be one of"),
    (dict(backend="tpu"), "backend must be one of"),
    (dict(force="fast"), "force must be one of"),
    (dict(kmax=0), "kmax must be an integer >= 1"),
    (dict(kmax=2.5), "kmax must be an integer >= 1"),
    (dict(kmax=4, force="direct"), "kmax truncates the harmonic sums"),
    (dict(force="harmonic"), "force='harmonic' needs kmax"),
    (dict(potential=DiracComb(2)), "kmax"),
    (dict(n_snapshots=1), "n_snapshots must be an integer >= 2"),
    (dict(n_snapshots=100), "n_snapshots must be between 2 and"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(dtype="float16"), "dtype must be one of"),
    (dict(max_energy_error=0.0), "max_energy_error must be"),
    (dict(u_grid=[1.0, 0.0]), "u_grid must be"),
])
def test_bad_input_is_named(kw, match):
    with pytest.raises(ValueError, match=match):
        small_run(**kw)


def test_gpu_backend_without_gpu_is_an_error():
    usable, reason = cupy_usable()
    if usable:
        pytest.skip(f"a usable GPU is present ({reason}); the error path cannot be exercised")
    with pytest.raises(BackendUnavailableError, match="no usable GPU|cupy"):
        small_run(backend="cupy")


class NaNGaussian(Gaussian):
    """A Gaussian whose second draw of each sample is NaN (a broken initial condition)."""

    def _sample_numpy(self, rng, shape):
        out = super()._sample_numpy(rng, shape)
        out[..., 1] = np.nan
        return out


def test_nan_stops_the_run_with_a_clear_error():
    with pytest.raises(SimulationError, match=r"realisation 0: non-finite velocity .* t = 0") as info:
        small_run(df=NaNGaussian(1.0))
    assert info.value.realisation == 0 and info.value.time == 0.0 and info.value.quantity == "velocity"


def test_energy_drift_stops_the_run():
    with pytest.raises(SimulationError, match=r"relative energy error .* exceeds max_energy_error = 1e-06") as info:
        small_run(potential=RingModel(0.1), dt=0.1, t_end=2.0, max_energy_error=1e-6)
    assert info.value.quantity == "relative energy error" and info.value.value > 1e-6
    assert 0 <= info.value.realisation < 3 and info.value.time > 0
    # disabled threshold: the same run completes
    run = small_run(potential=RingModel(0.1), dt=0.1, t_end=2.0, max_energy_error=None)
    assert run.relative_energy_error.max() > 1e-6


def _zero_energy_sigma(potential, N, R, seed):
    """sigma of a Gaussian DF for which realisation 0 starts with E(0) = K(0) + W(0) = 0 (to round-off).

    The angles do not depend on sigma and the velocities are sigma times the sigma = 1 draw, so
    K(0) scales as sigma^2 while W(0) stays fixed: sigma^2 = -W(0) / K(0; sigma = 1).
    """
    from numerics.nbody import build_system

    theta, v = initial_conditions(Gaussian(1.0), N, R, seed)
    d = build_system(potential, N, dt=0.1).diagnostics(theta, v, [0.0])
    return float(np.sqrt(-d["potential"][0] / d["kinetic"][0]))


def test_energy_check_does_not_misfire_when_initial_energy_is_zero():
    """Ring model: U_0 makes W(0) < 0, and a DF whose K(0) cancels it gives E(0) ~ 1e-16."""
    ring = RingModel(0.3)
    sigma = _zero_energy_sigma(ring, 16, 2, seed=3)
    run = small_run(potential=ring, df=Gaussian(sigma), R=2, seed=3)  # default max_energy_error = 1e-3
    e = run.energy
    kinetic0 = 0.5 * run.moments["v2"][0, 0]
    assert abs(e[0, 0]) < 1e-12 * kinetic0  # E(0) ~ 0 by construction
    old = np.abs(e[0] - e[0, 0]) / abs(e[0, 0])  # the former |E(t) - E(0)|/|E(0)|: a misfire
    assert old.max() > 1e3
    err = run.relative_energy_error
    assert err.max() < 1e-6  # the integration itself is accurate
    scale = 2.0 * kinetic0  # K(0) + |W(0)| with W(0) = -K(0)
    np.testing.assert_allclose(err[0], np.abs(e[0] - e[0, 0]) / scale, rtol=1e-12)


def test_energy_check_still_stops_a_diverging_run_from_zero_energy():
    ring = RingModel(0.3)
    sigma = _zero_energy_sigma(ring, 16, 2, seed=3)
    with pytest.raises(SimulationError, match=r"max\(\|E\(0\)\|, K\(0\) \+ \|W\(0\)\|\) = .* exceeds "
                                              r"max_energy_error = 0.001 .*kinetic K\(0\) = .*potential W\(0\) = ") as info:
        small_run(potential=ring, df=Gaussian(sigma), R=2, seed=3, dt=0.5, t_end=5.0, n_snapshots=11)
    assert info.value.quantity == "relative energy error" and info.value.value > 1e-3


def test_energy_error_scale():
    from numerics.nbody.engine import energy_error_scale

    # E(0) = K + W with K = <v^2>/2: (K, W) = (1, -1), (1, 2), (0, -3), (0, 0)
    e0 = np.array([0.0, 3.0, -3.0, 0.0])
    v2 = np.array([2.0, 2.0, 0.0, 0.0])
    np.testing.assert_array_equal(energy_error_scale(e0, v2), [2.0, 3.0, 3.0, 1.0])  # K + |W|; 1 if 0


def test_measure_flux_is_reexported():
    import numerics.nbody

    run = small_run(potential=HMF(), R=4, n_snapshots=11)
    m = numerics.nbody.measure_flux(run, (0.2, 1.0), n_boot=20)
    assert m.flux.shape == run.u_grid.shape and m.N == 16 and m.n_realisations == 4
