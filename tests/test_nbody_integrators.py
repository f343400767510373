"""Integrators of the N-body engine: convergence order, time reversibility, conservation laws."""
from __future__ import annotations

import numpy as np
import pytest

from numerics.models import HMF, FourierPotential, Gaussian, GeneralizedGaussian, RingModel
from numerics.nbody import METHODS, build_system, initial_conditions, simulate
from numerics.nbody.integrators import TWO_PI, YOSHIDA_W0, YOSHIDA_W1, get_method


def energy_errors(method, dts, potential=None, backend="numpy"):
    """max_t |E(t) - E(0)|/|E(0)| of a smooth system (HMF, N = 16, R = 2) for each dt."""
    potential = HMF() if potential is None else potential
    out = []
    for dt in dts:
        run = simulate(potential, Gaussian(1.0), 16, 2, 8.0, dt, method=method, backend=backend, seed=3,
                       n_snapshots=21, max_energy_error=None, progress=False)
        out.append(run.relative_energy_error.max())
    return np.array(out)


def fitted_order(dts, errs):
    return float(np.polyfit(np.log(dts), np.log(errs), 1)[0])


@pytest.mark.parametrize("potential", [HMF(), FourierPotential({1: 0.5, 2: 0.25})], ids=["hmf", "fourier2"])
def test_yoshida4_energy_error_scales_as_dt4(potential):
    dts = np.array([0.4, 0.2, 0.1, 0.05])
    errs = energy_errors("yoshida4", dts, potential)
    assert np.all(errs > 1e-12), "errors must be truncation, not round-off, dominated"
    order = fitted_order(dts, errs)
    assert 3.7 <= order <= 4.3, (order, errs)


def test_yoshida4_order_on_jax_too():
    dts = np.array([0.4, 0.2, 0.1])
    order = fitted_order(dts, energy_errors("yoshida4", dts, backend="jax"))
    assert 3.7 <= order <= 4.3


def test_leapfrog_energy_error_scales_as_dt2():
    dts = np.array([0.4, 0.2, 0.1, 0.05])
    order = fitted_order(dts, energy_errors("leapfrog", dts))
    assert 1.8 <= order <= 2.2


def test_yoshida_coefficients():
    m = get_method("yoshida4")
    assert m.force_evaluations == 3 and METHODS["leapfrog"].force_evaluations == 1
    assert YOSHIDA_W1 == pytest.approx(1.0 / (2.0 - 2.0 ** (1.0 / 3.0)))
    assert YOSHIDA_W0 == pytest.approx(-(2.0 ** (1.0 / 3.0)) / (2.0 - 2.0 ** (1.0 / 3.0)))
    assert sum(m.drifts) == pytest.approx(1.0, abs=1e-15) and sum(m.kicks) == pytest.approx(1.0, abs=1e-15)
    assert m.drifts == m.drifts[::-1] and m.kicks == m.kicks[::-1]  # symmetric -> time-reversible


CASES = [
    ("ring-direct", RingModel(0.3), None),
    ("hmf-harmonic", HMF(), None),
    ("ring-truncated", RingModel(0.5), 12),
]


def _wrapped_difference(a, b):
    return np.abs((a - b + np.pi) % TWO_PI - np.pi)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("method", ["yoshida4", "leapfrog"])
@pytest.mark.parametrize("name, potential, kmax", CASES, ids=[c[0] for c in CASES])
def test_time_reversibility(name, potential, kmax, method, backend):
    """Forward n steps, flip velocities, n steps, flip again: back to the start up to round-off."""
    system = build_system(potential, 24, dt=0.05, kmax=kmax, method=method, backend=backend)
    theta0, v0 = initial_conditions(GeneralizedGaussian(4, 1.0), 24, 3, seed=11)
    theta, v = system.advance(system.to_device(theta0), system.to_device(v0), 40)
    assert np.max(_wrapped_difference(system.to_host(theta), theta0)) > 0.1  # it did move
    theta, v = system.advance(theta, -v, 40)
    theta, v = system.to_host(theta), -system.to_host(v)
    assert np.max(_wrapped_difference(theta, theta0)) < 1e-10
    assert np.max(np.abs(v - v0)) < 1e-10


def test_angles_stay_wrapped():
    system = build_system(HMF(), 16, dt=0.1)
    theta0, v0 = initial_conditions(Gaussian(3.0), 16, 4, seed=2)
    theta, _ = system.advance(theta0, v0, 50)
    assert np.all(theta >= 0.0) and np.all(theta < TWO_PI)


@pytest.mark.parametrize("potential, kmax", [(RingModel(0.2), None), (FourierPotential({1: 0.5, 2: 0.2, 3: -0.1}), None),
                                             (RingModel(0.5), 20)], ids=["ring-direct", "fourier3", "ring-kmax20"])
def test_momentum_conserved_to_round_off(potential, kmax):
    run = simulate(potential, GeneralizedGaussian(4, 1.0), 32, 3, 5.0, 0.05, kmax=kmax, seed=5, n_snapshots=11,
                   max_energy_error=None, progress=False)
    assert np.max(np.abs(run.momentum[:, 0])) < 1e-15  # mean velocity removed
    assert np.max(np.abs(run.momentum)) < 1e-13


def test_energy_conserved_at_small_dt():
    run = simulate(RingModel(0.3), Gaussian(1.0), 32, 2, 4.0, 0.01, seed=1, n_snapshots=5, progress=False)
    assert run.relative_energy_error.max() < 1e-7
