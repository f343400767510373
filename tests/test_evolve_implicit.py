"""The implicit (BDF) kinetic-equation integrator and the three-body flux as a face-flux operator."""
from __future__ import annotations

import math

import numpy as np
import pytest

from numerics import HMF, FourierPotential, Gaussian, GeneralizedGaussian
from numerics.evolve import EvolutionError, VelocityGrid, evolve, finite_volume_rhs, load_evolution
from numerics.evolve_implicit import evolve_implicit, resume
from numerics.kinetic import _line_evaluator, flux, harmonics_of, three_body_flux_fn

SIGMA = math.sqrt(2.0)  # HMF at Q = 4


def _maxwellian_like(result):
    m = result.mass[-1]
    mean = result.momentum[-1] / m
    var = 2.0 * result.energy[-1] / m - mean**2
    return m * Gaussian(math.sqrt(var)).pdf(result.grid.centres - mean)


@pytest.mark.parametrize("harmonics", [{1: 0.5}, {1: 0.5, 2: -0.3, 3: 0.2}])
def test_canonical_flux_has_no_second_derivative_at_v1(harmonics):
    """The canonical flux is a phi(v1) + b phi'(v1) + c phi''(v1); c vanishes identically once
    the line integrals are summed (what lets the face fluxes use two-point stencils)."""
    df = GeneralizedGaussian(4, SIGMA)
    v = np.linspace(-3.0, 3.0, 9) * SIGMA
    _, evaluate = _line_evaluator("numpy", harmonics_of(FourierPotential(harmonics), max(harmonics)))
    coeff = {o: evaluate(v, df, sigma=SIGMA, mu=1.0, panels=8, at_v1={k: float(k == o) for k in range(5)})
             for o in range(3)}
    scale = max(np.max(np.abs(coeff[0])), np.max(np.abs(coeff[1])))
    assert np.max(np.abs(coeff[2])) < 1e-12 * scale
    # and the split reproduces the flux with the DF's own values at v1
    whole = evaluate(v, df, sigma=SIGMA, mu=1.0, panels=8)
    split = coeff[0] * df.derivative(v, 0) + coeff[1] * df.derivative(v, 1)
    np.testing.assert_allclose(split, whole, rtol=0, atol=1e-12 * np.max(np.abs(whole)))


def test_face_fluxes_converge_to_the_flux_of_the_sampled_profile():
    df = GeneralizedGaussian(4, SIGMA)
    ref = None
    errors = []
    for cells in (32, 64):
        grid = VelocityGrid.uniform(-4.5 * SIGMA, 4.5 * SIGMA, cells)
        fn = three_body_flux_fn(HMF(), N=2.0, backend="numpy", conserve=False)
        F = fn(df.pdf(grid.centres), grid)
        ref = flux(HMF(), df, grid.interior_faces, N=2.0, check_kmax=False).flux
        errors.append(np.max(np.abs(F - ref)) / np.max(np.abs(ref)))
    # observed: 5.9 % and 3.0 % of max |F| (first order in dv: the spline's fourth derivatives)
    assert errors[1] < 0.6 * errors[0], errors
    assert errors[1] < 0.04, errors


def test_conservation_correction_is_small_and_exact():
    grid = VelocityGrid.uniform(-4.5 * SIGMA, 4.5 * SIGMA, 40)
    phi = GeneralizedGaussian(4, SIGMA).pdf(grid.centres)
    fn = three_body_flux_fn(HMF(), N=10.0, backend="numpy")
    F = fn(phi, grid)
    faces = grid.interior_faces
    assert abs(np.sum(F)) < 1e-14 * np.sum(np.abs(F))
    assert abs(np.sum(faces * F)) < 1e-14 * np.sum(np.abs(faces * F))
    assert 0.0 < fn.last_correction < 0.05


def test_three_body_flux_fn_bad_input():
    with pytest.raises(ValueError, match="N must be"):
        three_body_flux_fn(HMF(), N=0.5)
    with pytest.raises(ValueError, match="backend"):
        three_body_flux_fn(HMF(), N=10, backend="cupy")
    with pytest.raises(ValueError, match="kmax"):
        three_body_flux_fn(FourierPotential({1: 0.5}), N=10, kmax=0)
    with pytest.raises(ValueError, match="panels"):
        three_body_flux_fn(HMF(), N=10, panels=3)


def test_three_body_jacobian_is_stiff_but_stable_far_from_equilibrium():
    """Why the implicit stepper: the finite-volume Jacobian of the canonical flux at the n = 4
    state has no growing mode, and its most negative eigenvalue grows like cells^4."""
    df = GeneralizedGaussian(4, SIGMA)
    fn = three_body_flux_fn(HMF(), N=1.0, backend="jax")
    spectra = {}
    for cells in (16, 24):
        grid = VelocityGrid.uniform(-4.5 * SIGMA, 4.5 * SIGMA, cells)
        rhs = finite_volume_rhs(fn, grid)
        phi = df.pdf(grid.centres)
        eps = 1e-7 * phi.max()
        jac = np.stack([(rhs(phi + eps * e) - rhs(phi - eps * e)) / (2 * eps) for e in np.eye(cells)], axis=1)
        spectra[cells] = np.linalg.eigvals(jac)
    for ev in spectra.values():
        assert ev.real.max() < 1e-6 * abs(ev.real.min())
    ratio = spectra[24].real.min() / spectra[16].real.min()
    assert ratio > (24 / 16) ** 3, ratio


def test_implicit_relaxation_conserves_raises_entropy_and_approaches_the_maxwellian():
    grid = VelocityGrid.uniform(-4.5 * SIGMA, 4.5 * SIGMA, 32)
    fn = three_body_flux_fn(HMF(), N=1.0, backend="jax")
    r = evolve(fn, GeneralizedGaussian(4, SIGMA), grid, 20.0, method="bdf", rtol=1e-5, atol=1e-9,
               n_snapshots=5, progress=False)
    assert r.info["method"] == "bdf"
    assert r.mass_error.max() < 1e-12
    assert r.momentum_error.max() < 1e-12
    assert r.energy_error.max() < 1e-12
    assert r.entropy_decrease <= 0.0  # S never decreases between accepted steps
    target = _maxwellian_like(r)
    dist = [float(np.max(np.abs(p - target)) / np.max(target)) for p in r.phi_out]
    assert all(b < a for a, b in zip(dist, dist[1:])), dist
    assert dist[-1] < 0.3 * dist[0], dist
    assert r.info["min_phi"] > -1e-7 * np.max(r.phi)


from test_evolve import fokker_planck_flux  # noqa: E402  (the conservative, entropy-stable test operator)

_fokker_planck = fokker_planck_flux(1.0)


def test_checkpoint_on_error_and_resume(tmp_path):
    grid = VelocityGrid.uniform(-6.0, 6.0, 40)
    df = GeneralizedGaussian(4, 1.0)
    full = evolve_implicit(_fokker_planck, df, grid, 4.0, n_snapshots=5, progress=False)
    ck = tmp_path / "run.checkpoint.npz"
    with pytest.raises(EvolutionError, match="max_steps"):
        evolve_implicit(_fokker_planck, df, grid, 4.0, n_snapshots=5, progress=False, checkpoint=ck, max_steps=15)
    assert ck.exists()
    with np.load(ck, allow_pickle=False) as data:
        assert 0.0 < data["t"][-1] < 4.0
    resumed = resume(_fokker_planck, ck, progress=False, max_steps=10_000)
    assert resumed.info["resumed"] == 1
    assert resumed.t[-1] == 4.0 and resumed.phi_out.shape == full.phi_out.shape
    np.testing.assert_allclose(resumed.t_out, full.t_out)
    np.testing.assert_allclose(resumed.phi, full.phi, atol=2e-5 * np.max(full.phi))
    assert resumed.mass_error.max() < 1e-9  # round-off times the conditioning of the Newton matrix (measured 5e-11)
    path = resumed.save(tmp_path / "r.npz")
    assert load_evolution(path).info["method"] == "bdf"


def test_resume_refuses_another_operator_and_other_files(tmp_path):
    grid = VelocityGrid.uniform(-6.0, 6.0, 16)
    ck = tmp_path / "ck.npz"
    fn = three_body_flux_fn(HMF(), N=1.0, backend="numpy")
    with pytest.raises(EvolutionError):
        evolve_implicit(fn, GeneralizedGaussian(4, SIGMA), grid, 1.0, progress=False, checkpoint=ck, max_steps=1)
    other = three_body_flux_fn(FourierPotential({1: 0.5, 2: 0.1}), N=1.0, backend="numpy")
    with pytest.raises(ValueError, match="operator"):
        resume(other, ck, progress=False)
    np.savez(tmp_path / "x.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="not an evolution checkpoint"):
        resume(fn, tmp_path / "x.npz", progress=False)
    with pytest.raises(FileNotFoundError):
        resume(fn, tmp_path / "missing.npz", progress=False)


@pytest.mark.parametrize("kw, pattern", [(dict(rtol=0.0), "rtol"), (dict(atol=-1.0), "atol"),
                                         (dict(checkpoint_every=0.0), "checkpoint_every"),
                                         (dict(max_steps=0), "max_steps"), (dict(negativity_tol=-1.0), "negativity_tol")])
def test_implicit_bad_input_names_the_parameter(kw, pattern):
    grid = VelocityGrid.uniform(-6.0, 6.0, 16)
    with pytest.raises(ValueError, match=pattern):
        evolve_implicit(_fokker_planck, Gaussian(1.0), grid, 1.0, progress=False, **kw)


def test_nan_from_the_flux_raises():
    from numerics.evolve import NonFiniteError

    grid = VelocityGrid.uniform(-6.0, 6.0, 16)

    def bad(phi, grid):
        return np.full(grid.interior_faces.size, np.nan)

    with pytest.raises(NonFiniteError):
        evolve_implicit(bad, Gaussian(1.0), grid, 1.0, progress=False)


def test_evolve_command_writes_npz_png_and_checkpoint(tmp_path, capsys):
    from numerics.cli import main

    out = tmp_path / "relax.npz"
    assert main(["evolve", "--N", "100", "--tau-end", "2", "--cells", "32", "--snapshots", "3", "--no-progress",
                 "--out", str(out)]) == 0
    r = load_evolution(out)
    assert r.info["method"] == "bdf" and r.info["N"] == 100.0 and r.t[-1] == pytest.approx(2.0 * 100**2)
    assert out.with_suffix(".png").stat().st_size > 1000
    assert (tmp_path / "relax.checkpoint.npz").exists()
    text = capsys.readouterr().out
    assert "distance to the Maxwellian" in text
    # resuming a finished run returns it unchanged
    assert main(["evolve", "--N", "100", "--no-progress", "--resume", str(tmp_path / "relax.checkpoint.npz"),
                 "--out", str(tmp_path / "again.npz")]) == 0
    np.testing.assert_array_equal(load_evolution(tmp_path / "again.npz").phi, r.phi)


def test_evolve_command_refuses_an_unstable_state(capsys):
    from numerics.cli import main

    assert main(["evolve", "--Q", "0.3", "--tau-end", "1", "--no-progress"]) == 1
    assert "Q_c" in capsys.readouterr().err
