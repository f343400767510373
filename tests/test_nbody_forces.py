"""Forces and energies of the N-body engine: direct vs harmonic sums, NumPy vs JAX."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numerics.models import HMF, DiracComb, FourierPotential, Gaussian, Potential, RingModel
from numerics.nbody import build_system, initial_conditions, resolve_force_model
from numerics.nbody import forces_numpy

FOURIER3 = FourierPotential({1: 0.5, 2: 0.2, 3: -0.1})


def random_state(R=3, N=40, seed=7, sigma=1.0):
    return initial_conditions(Gaussian(sigma), N, R, seed)


def close(a, b, tol):
    """max |a - b| <= tol * max(1, max |b|)."""
    a, b = np.asarray(a), np.asarray(b)
    scale = max(1.0, float(np.max(np.abs(b))))
    return float(np.max(np.abs(a - b))) <= tol * scale


# ----------------------------------------------------------------------------- force selection
def test_force_selection():
    assert resolve_force_model(HMF()).kind == "harmonic" and resolve_force_model(HMF()).kmax == 1
    assert resolve_force_model(FOURIER3).kmax == 3 and resolve_force_model(FOURIER3).ks == (1, 2, 3)
    assert resolve_force_model(FOURIER3, force="direct").kind == "direct"
    ring = resolve_force_model(RingModel(0.1))
    assert ring.kind == "direct" and ring.ring_softening == 0.1
    truncated = resolve_force_model(RingModel(0.1), kmax=30)
    assert truncated.kind == "harmonic" and truncated.kmax == 30 and len(truncated.ks) == 30
    comb = resolve_force_model(DiracComb(2, 0.3), kmax=7)
    assert comb.ks == (2, 4, 6) and comb.uk == (0.3, 0.3, 0.3)


# ----------------------------------------------------------------------------- physics of the forces
def test_direct_equals_harmonic_for_a_finite_fourier_potential():
    theta, _ = random_state()
    direct = build_system(FOURIER3, 40, dt=0.1, force="direct")
    harmonic = build_system(FOURIER3, 40, dt=0.1, force="harmonic")
    assert close(direct.accel(theta), harmonic.accel(theta), 1e-13)
    assert close(direct.potential_sum(theta), harmonic.potential_sum(theta), 1e-12)


def test_hmf_force_is_the_mean_field():
    """HMF: a_i = -mu sum_j sin(theta_i - theta_j) = -(sin th_i Mx - cos th_i My) / N ... explicitly."""
    theta, _ = random_state()
    mx, my = np.cos(theta).mean(1, keepdims=True), np.sin(theta).mean(1, keepdims=True)
    expected = -(np.sin(theta) * mx - np.cos(theta) * my)
    assert close(build_system(HMF(), 40, dt=0.1).accel(theta), expected, 1e-14)


def test_ring_fast_path_equals_generic_pair_force():
    """Addition-formula fast path vs potential.pair_force(theta_i - theta_j) with trig per pair."""
    theta, _ = random_state()
    ring = RingModel(0.1)
    mu = 1.0 / theta.shape[1]
    fast = forces_numpy.ring_direct_accel(theta, ring.softening, mu)
    generic = forces_numpy.pair_direct_accel(theta, ring, mu)
    assert close(fast, generic, 1e-12)
    fast_u = forces_numpy.ring_direct_potential_sum(theta, ring.softening)
    generic_u = forces_numpy.pair_direct_potential_sum(theta, ring)
    assert close(fast_u, generic_u, 1e-12)


def test_truncated_ring_converges_to_direct():
    """Harmonic sums of the ring model approach the direct force as kmax grows (U_k ~ e^{-k eps})."""
    theta, _ = random_state()
    ring = RingModel(0.5)
    direct = build_system(ring, 40, dt=0.1).accel(theta)
    errors = [np.max(np.abs(build_system(ring, 40, dt=0.1, kmax=k).accel(theta) - direct)) for k in (10, 30, 60)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-9 * np.max(np.abs(direct))
    d_u = build_system(ring, 40, dt=0.1).potential_sum(theta)
    h_u = build_system(ring, 40, dt=0.1, kmax=60).potential_sum(theta)
    assert close(h_u, d_u, 1e-9)


def test_energy_and_momentum_normalisation():
    theta, v = random_state(R=2, N=10)
    system = build_system(RingModel(0.3), 10, dt=0.1)
    d = system.diagnostics(theta, v, np.array([-1.0, 0.0, 1.0]))
    mu = 0.1
    pair = 0.0
    for i in range(10):
        for j in range(10):
            if i != j:
                pair += RingModel(0.3)(theta[0, i] - theta[0, j])
    expected = mu * np.sum(v[0] ** 2) / 2 + 0.5 * mu**2 * pair
    assert d["energy"][0] == pytest.approx(expected, rel=1e-13)
    assert d["momentum"][0] == pytest.approx(mu * v[0].sum(), abs=1e-16)
    np.testing.assert_array_equal(d["cumulative"][1], [(v[1] < u).mean() for u in (-1.0, 0.0, 1.0)])
    assert d["v4"][0] == pytest.approx(np.mean(v[0] ** 4))


# ----------------------------------------------------------------------------- backends agree
BACKEND_CASES = [
    ("ring-direct", RingModel(0.1), None, None),
    ("fourier3-direct", FOURIER3, None, "direct"),
    ("fourier3-harmonic", FOURIER3, None, None),
    ("hmf", HMF(), None, None),
    ("ring-kmax40", RingModel(0.3), 40, None),
    ("diraccomb-kmax9", DiracComb(3, 0.2), 9, None),
]


@pytest.mark.parametrize("name, potential, kmax, force", BACKEND_CASES, ids=[c[0] for c in BACKEND_CASES])
def test_jax_forces_and_energies_agree_with_numpy(name, potential, kmax, force):
    theta, v = random_state(R=3, N=48)
    ref = build_system(potential, 48, dt=0.1, kmax=kmax, force=force)
    jax_system = build_system(potential, 48, dt=0.1, kmax=kmax, force=force, backend="jax")
    assert close(jax_system.to_host(jax_system.accel(theta)), ref.accel(theta), 1e-12)
    u = np.linspace(-2, 2, 9)
    d_ref = ref.diagnostics(theta, v, u)
    d_jax = jax_system.diagnostics(jax_system.to_device(theta), jax_system.to_device(v), u)
    for key in ("energy", "kinetic", "potential", "momentum", "v2", "v4"):
        assert close(d_jax[key], d_ref[key], 1e-12), key
    np.testing.assert_array_equal(d_jax["cumulative"], d_ref["cumulative"])
    # a few steps: the same trajectory
    t_ref, v_ref = ref.advance(theta, v, 5)
    t_jax, v_jax = jax_system.advance(theta, v, 5)
    assert close(jax_system.to_host(t_jax), t_ref, 1e-12)
    assert close(jax_system.to_host(v_jax), v_ref, 1e-12)


def test_float32_forces_are_close_to_float64():
    theta, _ = random_state()
    for backend in ("numpy", "jax"):
        for potential in (RingModel(0.3), FOURIER3):
            f64 = build_system(potential, 40, dt=0.1, backend=backend).accel(theta)
            s32 = build_system(potential, 40, dt=0.1, backend=backend, dtype="float32")
            f32 = np.asarray(s32.to_host(s32.accel(theta.astype(np.float32))))
            assert f32.dtype == np.float32
            assert close(f32, np.asarray(f64), 2e-5)


class OpaquePotential(Potential):
    """A potential whose pair force exists in NumPy only (no Fourier description, not a RingModel)."""

    name = "opaque"

    def coefficients(self, kmax):
        return np.zeros(kmax + 1)

    def pair_force(self, dtheta):
        return -np.sin(np.asarray(dtheta, dtype=float))

    def __call__(self, dtheta):
        return -np.cos(np.asarray(dtheta, dtype=float))


def test_generic_direct_force_numpy_only():
    theta, _ = random_state(R=2, N=12)
    numpy_system = build_system(OpaquePotential(), 12, dt=0.1)
    assert close(numpy_system.accel(theta), build_system(HMF(), 12, dt=0.1).accel(theta), 1e-14)
    with pytest.raises(ValueError, match="RingModel and finite Fourier"):
        build_system(OpaquePotential(), 12, dt=0.1, backend="jax")


def test_jax_sincos_within_one_ulp_of_numpy():
    from numerics.nbody.forces_jax import jax_module, sincos

    jnp = jax_module().numpy
    x = np.concatenate([np.random.default_rng(0).uniform(-700.0, 700.0, 200_000), np.linspace(-7.0, 7.0, 100_001),
                        np.pi / 4 * np.arange(-16, 17), [0.0, -0.0, 1e-300, 5e-324]])
    c, s = (np.asarray(a) for a in sincos(jnp.asarray(x)))
    for mine, ref in ((c, np.cos(x)), (s, np.sin(x))):
        ulps = np.abs(mine - ref) / np.spacing(np.maximum(np.abs(ref), 1e-300))
        assert ulps.max() <= 1.0
    c, s = sincos(jnp.asarray([np.nan, np.inf, -np.inf]))
    assert np.all(np.isnan(np.asarray(c))) and np.all(np.isnan(np.asarray(s)))


@pytest.mark.parametrize("R, N", [(7, 50), (1, 33), (5, 8)])
def test_jax_blocked_pair_sums_match_numpy(monkeypatch, R, N):
    """Tiny blocks force realisation chunks and padded source tiles through the blocked path."""
    import numerics.nbody.forces_jax as forces_jax

    monkeypatch.setattr(forces_jax, "PAIR_BLOCK", 1 << 10)
    monkeypatch.setattr(forces_jax, "SOURCE_TILE", 16)
    forces_jax._compiled.cache_clear()
    try:
        theta, v = initial_conditions(Gaussian(1.0), N, R, seed=1)
        for potential, force in ((RingModel(0.2), None), (FOURIER3, "direct")):
            ref = build_system(potential, N, dt=0.1, force=force)
            fast = build_system(potential, N, dt=0.1, force=force, backend="jax")
            assert close(fast.to_host(fast.accel(theta)), ref.accel(theta), 1e-12)
            e_ref = ref.diagnostics(theta, v, [0.0])["energy"]
            e_fast = fast.diagnostics(fast.to_device(theta), fast.to_device(v), [0.0])["energy"]
            assert close(e_fast, e_ref, 1e-12)
    finally:
        forces_jax._compiled.cache_clear()


@pytest.mark.parametrize("R, N, tile", [(7, 50, 8), (3, 50, 16), (2, 64, 16), (1, 33, 4), (4, 24, 8)],
                         ids=["7-tiles-padded", "4-tiles-padded", "4-tiles", "9-tiles-padded", "3-tiles"])
def test_jax_half_pair_sums_match_numpy(monkeypatch, R, N, tile):
    """Each unordered pair once (action and reaction): odd and even tile counts, padding, realisation chunks."""
    import numerics.nbody.forces_jax as forces_jax

    monkeypatch.setattr(forces_jax, "HALF_PAIR_TILE", tile)
    monkeypatch.setattr(forces_jax, "HALF_PAIR_BLOCK", 2 * -(-N // tile) * tile * tile)  # 2 realisations per chunk
    forces_jax._compiled.cache_clear()
    try:
        theta, v = initial_conditions(Gaussian(1.0), N, R, seed=2)
        ref = build_system(RingModel(0.2), N, dt=0.1)
        fast = build_system(RingModel(0.2), N, dt=0.1, backend="jax")
        a_ref, a_fast = ref.accel(theta), np.asarray(fast.to_host(fast.accel(theta)))
        assert close(a_fast, a_ref, 1e-12)
        assert np.max(np.abs(a_fast.sum(axis=1))) <= 1e-14 * N * max(1.0, float(np.max(np.abs(a_ref))))  # 3rd law
        t_ref, v_ref = ref.advance(theta, v, 3)
        t_fast, v_fast = fast.advance(theta, v, 3)
        assert close(fast.to_host(t_fast), t_ref, 1e-12) and close(fast.to_host(v_fast), v_ref, 1e-12)
    finally:
        forces_jax._compiled.cache_clear()


def test_jax_half_pair_sum_counts_every_ordered_pair_once():
    """antisymmetric_pair_sum of a generic odd term equals the full pair_sum (tiles 16: N = 40 -> 3 tiles, 64 -> 4)."""
    from numerics.nbody.forces_jax import antisymmetric_pair_sum, jax_module, pair_sum

    jnp = jax_module().numpy
    x = jnp.asarray(np.random.default_rng(4).normal(size=(3, 64)))
    y = jnp.asarray(np.random.default_rng(5).normal(size=(3, 64)))

    def odd(targets, sources):  # odd in the pair, zero for a source padded with zeros
        (xi, yi), (xj, yj) = targets, sources
        return (xi * yj - yi * xj) * jnp.exp(-(xi * xj + yi * yj))

    for n in (40, 64, 17, 5):
        full = np.asarray(pair_sum((x[:, :n], y[:, :n]), odd))
        half = np.asarray(antisymmetric_pair_sum((x[:, :n], y[:, :n]), odd))
        np.testing.assert_allclose(half, full, rtol=0, atol=1e-13 * np.max(np.abs(full)))


def test_numpy_blocking_does_not_change_results(monkeypatch):
    """Blocks of realisations and target rows: every sum is the same reduction, so bitwise equal."""
    theta, _ = random_state(R=5, N=30)
    ring = RingModel(0.2)
    ks, weights = np.array([1.0, 2.0, 5.0]), np.array([-0.3, 0.1, 0.05])
    reference = (forces_numpy.ring_direct_accel(theta, 0.2, 1 / 30), forces_numpy.ring_direct_potential_sum(theta, 0.2),
                 forces_numpy.pair_direct_accel(theta, ring, 1 / 30), forces_numpy.harmonic_accel(theta, ks, weights))
    monkeypatch.setattr(forces_numpy, "PAIR_BLOCK_ELEMENTS", 64)  # < N^2: blocks of two target rows
    blocked = (forces_numpy.ring_direct_accel(theta, 0.2, 1 / 30), forces_numpy.ring_direct_potential_sum(theta, 0.2),
               forces_numpy.pair_direct_accel(theta, ring, 1 / 30), forces_numpy.harmonic_accel(theta, ks, weights))
    for a, b in zip(reference, blocked):
        np.testing.assert_array_equal(a, b)


@settings(deadline=None)
@given(harmonics=st.dictionaries(st.integers(1, 6), st.floats(-1.0, 1.0, allow_nan=False), min_size=1, max_size=4),
       seed=st.integers(0, 2**32 - 1))
def test_pair_forces_sum_to_zero_and_paths_agree(harmonics, seed):
    """Newton's third law (total force zero) and direct == harmonic, for random Fourier potentials."""
    harmonics = {k: u for k, u in harmonics.items() if u != 0.0} or {1: 0.5}
    potential = FourierPotential(harmonics)
    theta, _ = initial_conditions(Gaussian(1.0), 9, 2, seed)
    harmonic = build_system(potential, 9, dt=0.1).accel(theta)
    direct = build_system(potential, 9, dt=0.1, force="direct").accel(theta)
    scale = max(1.0, float(np.max(np.abs(direct))))
    assert np.max(np.abs(harmonic.sum(axis=1))) <= 1e-14 * 9 * scale
    assert np.max(np.abs(direct.sum(axis=1))) <= 1e-14 * 9 * scale
    assert close(harmonic, direct, 1e-13)
