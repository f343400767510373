"""NumPy reference forces and energies, batched over realisations (arrays shaped (R, N)).

Conventions (PHYSICS.md, section 1): N particles of mass mu = 1/N (total mass 1) per
realisation; pair potential U(theta) = -sum_k U_k e^{ik theta} = -U_0 - 2 sum_{k>=1} U_k cos(k theta);
acceleration a_i = d v_i / dt = mu * sum_j pair_force(theta_i - theta_j), pair_force = -U'.

Two ways to compute the acceleration:

* **direct**, O(N^2) per realisation: sums the pair force over all pairs. The softened ring
  model has a fast path that evaluates cos and sin of each angle once and gets the angle
  differences from the addition formulas
      sin(a - b) = sin a cos b - cos a sin b,   cos(a - b) = cos a cos b + sin a sin b,
  so that the N^2 pair loop needs no trigonometric function:
      pair_force = -sin(d) / (2 (1 - cos d) + eps^2)^{3/2}.
  Any other potential goes through ``potential.pair_force(theta_i - theta_j)``.
* **harmonic sums**, O(N K) for K harmonics: with C_k = sum_j cos(k theta_j),
  S_k = sum_j sin(k theta_j),
      a_i = -2 mu sum_k k U_k [sin(k theta_i) C_k - cos(k theta_i) S_k].

Potential-energy sums come with each: sum_{i != j} U(theta_i - theta_j) per realisation. For
harmonic sums, sum_{i != j} U = -U_0 N (N - 1) - 2 sum_k U_k (C_k^2 + S_k^2 - N).

Everything here is the reference that the JAX and CuPy backends are tested against.
"""
from __future__ import annotations

import numpy as np

#: largest number of pair elements (chunk of realisations x N x N) held at once by the direct sums
PAIR_BLOCK_ELEMENTS = 1 << 18


def _pair_blocks(R: int, N: int):
    """(realisations, targets) slices of blocks holding about PAIR_BLOCK_ELEMENTS pairs each.

    Each block covers whole rows of sources j, so every sum over j is the same NumPy reduction
    whatever the blocking (results do not depend on R or on the block size).
    """
    rows = max(1, min(N, PAIR_BLOCK_ELEMENTS // N))  # target particles per block
    per_chunk = max(1, PAIR_BLOCK_ELEMENTS // (N * rows)) if rows == N else 1
    for r0 in range(0, R, per_chunk):
        for i0 in range(0, N, rows):
            yield slice(r0, min(R, r0 + per_chunk)), slice(i0, min(N, i0 + rows))


def _realisation_chunks(R: int, per_realisation: int, budget: int = PAIR_BLOCK_ELEMENTS):
    """Slices of realisations holding at most ``budget`` elements (at least one realisation)."""
    per_chunk = max(1, budget // max(1, per_realisation))
    for start in range(0, R, per_chunk):
        yield slice(start, min(R, start + per_chunk))


# ---------------------------------------------------------------- softened ring, direct sums
def ring_direct_accel(theta: np.ndarray, softening: float, mu: float) -> np.ndarray:
    """Acceleration of every particle in the softened ring model, by direct summation.

    ``theta``: (R, N) angles. Returns (R, N): a_i = -mu sum_j sin(d_ij) / (2(1 - cos d_ij) + eps^2)^{3/2},
    d_ij = theta_i - theta_j (the j = i term is exactly zero: sin a cos a - cos a sin a = 0).
    """
    theta = np.asarray(theta)
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    eps2 = softening * softening
    out = np.empty_like(theta)
    for chunk, rows in _pair_blocks(*theta.shape):
        ci, si = cos_t[chunk, rows, None], sin_t[chunk, rows, None]
        cj, sj = cos_t[chunk, None, :], sin_t[chunk, None, :]
        sin_d = si * cj
        sin_d -= ci * sj
        d2 = ci * cj
        d2 += si * sj  # cos(d)
        np.subtract(1.0, d2, out=d2)
        d2 *= 2.0
        d2 += eps2  # 2 (1 - cos d) + eps^2
        denom = np.sqrt(d2)
        denom *= d2
        sin_d /= denom
        out[chunk, rows] = sin_d.sum(axis=2)
    out *= -mu
    return out


def ring_direct_potential_sum(theta: np.ndarray, softening: float) -> np.ndarray:
    """sum_{i != j} U(theta_i - theta_j) per realisation for U = -1/sqrt(2(1 - cos d) + eps^2); shape (R,)."""
    theta = np.asarray(theta, dtype=np.float64)
    R, N = theta.shape
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    eps2 = softening * softening
    per_particle = np.empty((R, N))
    for chunk, rows in _pair_blocks(R, N):
        d2 = cos_t[chunk, rows, None] * cos_t[chunk, None, :]
        d2 += sin_t[chunk, rows, None] * sin_t[chunk, None, :]
        np.subtract(1.0, d2, out=d2)
        d2 *= 2.0
        d2 += eps2
        i = np.arange(rows.start, rows.stop)
        d2[:, i - rows.start, i] = np.inf  # exclude i == j: 1/sqrt(inf) = 0
        per_particle[chunk, rows] = -(1.0 / np.sqrt(d2)).sum(axis=2)
    return per_particle.sum(axis=1)


# ---------------------------------------------------------------- any pair force, direct sums
def pair_direct_accel(theta: np.ndarray, potential, mu: float) -> np.ndarray:
    """a_i = mu sum_j potential.pair_force(theta_i - theta_j), for any potential with a pair force."""
    theta = np.asarray(theta)
    out = np.empty_like(theta)
    for chunk, rows in _pair_blocks(*theta.shape):
        d = theta[chunk, rows, None] - theta[chunk, None, :]
        out[chunk, rows] = np.asarray(potential.pair_force(d), dtype=theta.dtype).sum(axis=2)
    out *= mu
    return out


def pair_direct_potential_sum(theta: np.ndarray, potential) -> np.ndarray:
    """sum_{i != j} potential(theta_i - theta_j) per realisation; shape (R,)."""
    theta = np.asarray(theta, dtype=np.float64)
    R, N = theta.shape
    per_particle = np.empty((R, N))
    for chunk, rows in _pair_blocks(R, N):
        u = np.array(potential(theta[chunk, rows, None] - theta[chunk, None, :]), dtype=np.float64)
        i = np.arange(rows.start, rows.stop)
        u[:, i - rows.start, i] = 0.0  # exclude i == j
        per_particle[chunk, rows] = u.sum(axis=2)
    return per_particle.sum(axis=1)


# ---------------------------------------------------------------- harmonic sums
def harmonic_sums(theta: np.ndarray, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """C_k = sum_j cos(k theta_j), S_k = sum_j sin(k theta_j) for each k in ``ks``; shapes (R, K)."""
    theta = np.asarray(theta)
    R, N = theta.shape
    ks = np.asarray(ks, dtype=theta.dtype)
    C = np.empty((R, ks.size), dtype=theta.dtype)
    S = np.empty_like(C)
    for chunk in _realisation_chunks(R, ks.size * N):
        k_theta = ks[:, None] * theta[chunk, None, :]  # (r, K, N)
        C[chunk] = np.cos(k_theta).sum(axis=2)
        S[chunk] = np.sin(k_theta).sum(axis=2)
    return C, S


def harmonic_accel(theta: np.ndarray, ks: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """a_i = sum_k w_k [sin(k theta_i) C_k - cos(k theta_i) S_k] with w_k = -2 mu k U_k.

    ``ks``: (K,) harmonic numbers; ``weights``: (K,) the w_k. Returns (R, N).
    """
    theta = np.asarray(theta)
    R, N = theta.shape
    ks = np.asarray(ks, dtype=theta.dtype)
    out = np.empty_like(theta)
    for chunk in _realisation_chunks(R, ks.size * N):
        k_theta = ks[:, None] * theta[chunk, None, :]  # (r, K, N)
        cos_k, sin_k = np.cos(k_theta), np.sin(k_theta)
        wc = cos_k.sum(axis=2) * weights  # w_k C_k, (r, K)
        ws = sin_k.sum(axis=2) * weights  # w_k S_k
        sin_k *= wc[:, :, None]
        cos_k *= ws[:, :, None]
        sin_k -= cos_k
        out[chunk] = sin_k.sum(axis=1)
    return out


def harmonic_potential_sum(theta: np.ndarray, ks: np.ndarray, uk: np.ndarray, u0: float) -> np.ndarray:
    """sum_{i != j} U_trunc(theta_i - theta_j) = -U_0 N(N-1) - 2 sum_k U_k (C_k^2 + S_k^2 - N); shape (R,)."""
    theta = np.asarray(theta, dtype=np.float64)
    n = theta.shape[1]
    c, s = harmonic_sums(theta, ks)
    return -u0 * n * (n - 1) - 2.0 * ((c * c + s * s - n) * np.asarray(uk)).sum(axis=1)


# ---------------------------------------------------------------- snapshot diagnostics
def kinetic_and_moments(v: np.ndarray, u_grid: np.ndarray, mu: float) -> dict:
    """Per-realisation diagnostics that depend on velocities only (float64).

    kinetic = mu sum_i v_i^2 / 2, momentum = mu sum_i v_i, v2 = <v^2>, v4 = <v^4> (means over
    the N particles), cumulative[r, j] = fraction of particles with v < u_grid[j].
    """
    v = np.asarray(v, dtype=np.float64)
    v2 = v * v
    cumulative = np.empty((v.shape[0], len(u_grid)))
    for chunk in _realisation_chunks(v.shape[0], v.shape[1] * len(u_grid), 1 << 22):
        counts = np.count_nonzero(v[chunk, :, None] < u_grid, axis=1)
        cumulative[chunk] = counts * (1.0 / v.shape[1])  # the same rounding on every backend
    return {
        "kinetic": 0.5 * mu * v2.sum(axis=1),
        "momentum": mu * v.sum(axis=1),
        "v2": v2.mean(axis=1),
        "v4": (v2 * v2).mean(axis=1),
        "cumulative": cumulative,
    }
