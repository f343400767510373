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


def _realisation_chunks(R: int, N: int):
    """Slices of realisations such that each chunk holds at most PAIR_BLOCK_ELEMENTS pairs."""
    per_chunk = max(1, PAIR_BLOCK_ELEMENTS // (N * N))
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
    for chunk in _realisation_chunks(*theta.shape):
        ci, si = cos_t[chunk, :, None], sin_t[chunk, :, None]
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
        out[chunk] = sin_d.sum(axis=2)
    out *= -mu
    return out


def ring_direct_potential_sum(theta: np.ndarray, softening: float) -> np.ndarray:
    """sum_{i != j} U(theta_i - theta_j) per realisation for U = -1/sqrt(2(1 - cos d) + eps^2); shape (R,)."""
    theta = np.asarray(theta, dtype=np.float64)
    R, N = theta.shape
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    eps2 = softening * softening
    out = np.empty(R)
    diag = np.arange(N)
    for chunk in _realisation_chunks(R, N):
        d2 = cos_t[chunk, :, None] * cos_t[chunk, None, :]
        d2 += sin_t[chunk, :, None] * sin_t[chunk, None, :]
        np.subtract(1.0, d2, out=d2)
        d2 *= 2.0
        d2 += eps2
        d2[:, diag, diag] = np.inf  # exclude i == j: 1/sqrt(inf) = 0
        out[chunk] = -(1.0 / np.sqrt(d2)).sum(axis=(1, 2))
    return out


# ---------------------------------------------------------------- any pair force, direct sums
def pair_direct_accel(theta: np.ndarray, potential, mu: float) -> np.ndarray:
    """a_i = mu sum_j potential.pair_force(theta_i - theta_j), for any potential with a pair force."""
    theta = np.asarray(theta)
    out = np.empty_like(theta)
    for chunk in _realisation_chunks(*theta.shape):
        d = theta[chunk, :, None] - theta[chunk, None, :]
        out[chunk] = np.asarray(potential.pair_force(d), dtype=theta.dtype).sum(axis=2)
    out *= mu
    return out


def pair_direct_potential_sum(theta: np.ndarray, potential) -> np.ndarray:
    """sum_{i != j} potential(theta_i - theta_j) per realisation; shape (R,)."""
    theta = np.asarray(theta, dtype=np.float64)
    R, N = theta.shape
    out = np.empty(R)
    diag = np.arange(N)
    for chunk in _realisation_chunks(R, N):
        u = np.array(potential(theta[chunk, :, None] - theta[chunk, None, :]), dtype=np.float64)
        u[:, diag, diag] = 0.0
        out[chunk] = u.sum(axis=(1, 2))
    return out


# ---------------------------------------------------------------- harmonic sums
def harmonic_sums(theta: np.ndarray, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """C_k = sum_j cos(k theta_j), S_k = sum_j sin(k theta_j) for each k in ``ks``; shapes (R, K)."""
    theta = np.asarray(theta)
    k_theta = np.asarray(ks, dtype=theta.dtype)[:, None] * theta[:, None, :]  # (R, K, N)
    return np.cos(k_theta).sum(axis=2), np.sin(k_theta).sum(axis=2)


def harmonic_accel(theta: np.ndarray, ks: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """a_i = sum_k w_k [sin(k theta_i) C_k - cos(k theta_i) S_k] with w_k = -2 mu k U_k.

    ``ks``: (K,) harmonic numbers; ``weights``: (K,) the w_k. Returns (R, N).
    """
    theta = np.asarray(theta)
    k_theta = np.asarray(ks, dtype=theta.dtype)[:, None] * theta[:, None, :]  # (R, K, N)
    cos_k, sin_k = np.cos(k_theta), np.sin(k_theta)
    wc = cos_k.sum(axis=2) * weights  # w_k C_k, (R, K)
    ws = sin_k.sum(axis=2) * weights  # w_k S_k
    return np.einsum("rkn,rk->rn", sin_k, wc) - np.einsum("rkn,rk->rn", cos_k, ws)


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
    per_chunk = max(1, (1 << 22) // max(1, v.shape[1] * len(u_grid)))
    for start in range(0, v.shape[0], per_chunk):
        block = v[start : start + per_chunk]
        counts = np.count_nonzero(block[:, :, None] < u_grid, axis=1)
        cumulative[start : start + per_chunk] = counts * (1.0 / v.shape[1])  # the same rounding on every backend
    return {
        "kinetic": 0.5 * mu * v2.sum(axis=1),
        "momentum": mu * v.sum(axis=1),
        "v2": v2.mean(axis=1),
        "v4": (v2 * v2).mean(axis=1),
        "cumulative": cumulative,
    }
