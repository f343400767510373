"""JAX backend: the NumPy reference forces, jit-compiled and batched over realisations.

Arrays are (R, N) (realisations x particles) and the realisations are batched by
broadcasting. Several steps run per compiled call (``lax.fori_loop`` with a run-time trip
count, so changing the number of steps between snapshots does not recompile). Float64 by
default (``numerics.backends.jax_module`` turns x64 on); float32 on request.

Conventions and formulas: see :mod:`numerics.nbody.forces_numpy` (the reference). Four
implementation choices differ from the reference, all for speed, all tested against it:

* Direct sums of the ring model take cos/sin of each angle once per force evaluation and form
  the pair terms by the addition formulas, like the reference. XLA:CPU would fuse those
  cos/sin into the N^2 pair loop and recompute them for every pair (it drops
  ``optimization_barrier``); :func:`_materialise` routes them through an exact 2x2 identity
  product, which XLA does not fuse, so they are computed N times, not N^2 times.
* The ring model's direct force evaluates each unordered pair once
  (:func:`antisymmetric_pair_sum`): the pair force is odd, f_ji = -f_ij (exactly, in floating
  point, with sin(theta_i - theta_j) from the addition formula), so the term of (i, j) is added
  to i and subtracted from j. That halves the square roots and divisions, which bound the
  throughput (XLA:CPU float64 sqrt: about 0.55 ns of the about 1 ns per pair term on one core
  here; replacing it by a Newton iteration from a bit-trick guess was not faster). Results differ
  from the reference by the order of the additions (and sincos's ulp) only: about 1e-14 relative.
* Harmonic sums get cos(k theta), sin(k theta) for k = 2..kmax from cos theta, sin theta by
  the rotation recurrence (angle addition) instead of 2 kmax trigonometric calls per
  particle; the rounding error grows like k * 1e-16 (below 1e-13 for kmax <= 100).
* In float64, cos and sin come from :func:`sincos` (fdlibm's kernels with a Cody-Waite
  reduction, written in jnp so that XLA vectorises it): within 1 ulp of NumPy's, and about 8x
  faster than XLA:CPU's own float64 cos + sin, which dominate the HMF step otherwise.
"""
from __future__ import annotations

import functools

import numpy as np

from numerics.backends import jax_module
from numerics.nbody.integrators import SplittingMethod, SteppedSystem, step


# fdlibm (k_sin.c, k_cos.c) minimax coefficients on [-pi/4, pi/4]
_SIN = (-1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04,
        2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10)
_COS = (4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05,
        -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11)
# pi/2 = _PIO2_1 + _PIO2_2 + _PIO2_2T; the first two have 33 significant bits, so q * _PIO2_1 and
# q * _PIO2_2 are exact for |q| < 2^20
_PIO2_1 = 1.57079632673412561417e+00
_PIO2_2 = 6.07710050630396597660e-11
_PIO2_2T = 2.02226624879595063154e-21
_TWO_OVER_PI = 0.63661977236758134308


def sincos(x):
    """(cos x, sin x) to within 1 ulp, for float64 |x| < 1e6 (angles, k * angles); NaN/inf -> NaN.

    x = q pi/2 + r with |r| <= pi/4 (Cody-Waite), fdlibm's polynomial kernels for sin r and
    cos r, then the quadrant q mod 4 selects and signs them. Float32 input uses jnp.cos/jnp.sin.
    """
    jnp = jax_module().numpy
    if x.dtype != jnp.float64:
        return jnp.cos(x), jnp.sin(x)
    q = jnp.round(x * _TWO_OVER_PI)
    r = (x - q * _PIO2_1) - q * _PIO2_2
    r = r - q * _PIO2_2T
    z = r * r
    s1, s2, s3, s4, s5, s6 = _SIN
    sin_r = r + (z * r) * (s1 + z * (s2 + z * (s3 + z * (s4 + z * (s5 + z * s6)))))
    c1, c2, c3, c4, c5, c6 = _COS
    poly = z * (c1 + z * (c2 + z * (c3 + z * (c4 + z * (c5 + z * c6)))))
    half_z = 0.5 * z
    w = 1.0 - half_z
    cos_r = w + (((1.0 - w) - half_z) + z * poly)
    quadrant = jnp.bitwise_and(q.astype(jnp.int32), 3)
    sin_x = jnp.where(quadrant == 0, sin_r, jnp.where(quadrant == 1, cos_r, jnp.where(quadrant == 2, -sin_r, -cos_r)))
    cos_x = jnp.where(quadrant == 0, cos_r, jnp.where(quadrant == 1, -sin_r, jnp.where(quadrant == 2, -cos_r, sin_r)))
    return cos_x, sin_x


def _materialise(jnp, lax, *arrays):
    """Return ``arrays`` unchanged in value but computed once (an exact identity product).

    Multiplying by the identity matrix is exact (x * 1 + y * 0 = x for finite x); XLA does not
    fuse a dot into its elementwise consumers, so the producers are not recomputed per pair.
    """
    stacked = jnp.stack(arrays)
    eye = jnp.eye(len(arrays), dtype=stacked.dtype)
    out = jnp.einsum("ab,b...->a...", eye, stacked, precision=lax.Precision.HIGHEST)
    return tuple(out[i] for i in range(len(arrays)))


#: pair terms evaluated per block of :func:`pair_sum` (realisations x source tile x targets); bounds
#: memory and keeps XLA's fused loops in cache
PAIR_BLOCK = 1 << 20
#: largest source tile of :func:`pair_sum`. At most 32: XLA:CPU splits a longer reduction into a
#: reduce-window plus a reduce, which it does not fuse with the pair terms, so all R N T terms
#: would be written to memory and read back (measured 1.4x slower at T = 256)
SOURCE_TILE = 32
#: tile of :func:`antisymmetric_pair_sum` (targets and sources); None: :func:`half_pair_tile`
HALF_PAIR_TILE = None
#: pair terms per block of :func:`antisymmetric_pair_sum` (realisation chunk x tiles x tile x tile,
#: stored once and summed twice): 1 MiB, about a core's L2
HALF_PAIR_BLOCK = 1 << 17
#: harmonics per iteration of the recurrence loops
SCAN_UNROLL = 4


def pair_sum(features, pair_term, *, exclude_self: bool = False):
    """Per-particle sums over sources, out[r, i] = sum_j pair_term(f[r, i], f[r, j]), blocked.

    ``features``: tuple of (R, N) arrays (e.g. cos theta, sin theta); ``pair_term(targets,
    sources)`` receives them broadcast as targets (B, 1, N) and sources (B, T, 1) and returns the
    (B, T, N) terms, summed over the source axis. Realisations are processed in chunks of B and
    sources in tiles of T (padded, padding masked out) so that a block holds about PAIR_BLOCK
    terms whatever R and N are: XLA:CPU would otherwise materialise all R N^2 terms. With
    ``exclude_self`` the j = i terms are dropped (for potentials singular or non-zero at 0).
    """
    jax = jax_module()
    jnp, lax = jax.numpy, jax.lax
    R, N = features[0].shape
    T = N if N <= SOURCE_TILE else max(8, min(SOURCE_TILE, PAIR_BLOCK // N))
    n_tiles = -(-N // T)
    B = max(1, min(R, PAIR_BLOCK // (N * T)))
    n_chunks = -(-R // B)
    target_index = jnp.arange(N)

    def chunk_sum(chunk):
        targets = tuple(f[:, None, :] for f in chunk)
        padded = tuple(jnp.pad(f, ((0, 0), (0, n_tiles * T - N))) for f in chunk)

        def tile_sum(t, acc):
            sources = tuple(lax.dynamic_slice_in_dim(f, t * T, T, axis=1)[:, :, None] for f in padded)
            term = pair_term(targets, sources)
            source_index = t * T + jnp.arange(T)
            keep = (source_index < N)[:, None]
            if exclude_self:
                keep = keep & (source_index[:, None] != target_index[None, :])
            if exclude_self or n_tiles * T != N:
                term = jnp.where(keep[None], term, 0.0)
            return acc + jnp.sum(term, axis=1)

        zero = jnp.zeros(chunk[0].shape, dtype=chunk[0].dtype)
        if n_tiles == 1:
            return tile_sum(0, zero)
        return lax.fori_loop(0, n_tiles, tile_sum, zero)

    if n_chunks == 1:
        return chunk_sum(features)
    pad_rows = n_chunks * B - R
    stacked = tuple(jnp.pad(f, ((0, pad_rows), (0, 0))).reshape(n_chunks, B, N) for f in features)
    return lax.map(chunk_sum, stacked).reshape(n_chunks * B, N)[:R]


def half_pair_tile(N: int) -> int:
    """Tile of :func:`antisymmetric_pair_sum`: :data:`HALF_PAIR_TILE` if set, else 16 below N = 512, 32 above.

    Measured on 2 cores (Zen 4, ring model, float64): 32 is 15-20% faster than 16 at N = 1024
    and 2048, the same at N = 256, slower below (N = 128: 15%; N = 200: 30%, more padding);
    64 is never faster. Reductions of up to 32 terms stay fused (see :data:`SOURCE_TILE`).
    """
    if HALF_PAIR_TILE is not None:
        return int(HALF_PAIR_TILE)
    return 16 if N < 512 else 32


def antisymmetric_pair_sum(features, pair_term):
    """out[r, i] = sum_j pair_term(f[r, i], f[r, j]) for an odd pair term, each unordered pair once.

    Same call as :func:`pair_sum`, for a ``pair_term`` that is odd, pair_term(x, y) = -pair_term(y, x),
    and zero for y = x (e.g. the ring model's pair force, with sin(theta_i - theta_j) from the
    addition formula, which is exactly odd in floating point). The term of the pair (i, j) is
    evaluated once and used twice: + on i (action) and - on j (reaction, Newton's third law), so
    about N^2/2 + N T/2 terms are evaluated instead of N^2. The result differs from
    :func:`pair_sum` by the order of the additions only (round-off).

    Zero padding: when N is not a multiple of the tile, features padded with zeros must give
    pair_term = 0 with any partner (true of the ring force: sin_d = s_i 0 - c_i 0 = 0).

    Schedule: particles are split into n_t tiles of T (:func:`half_pair_tile`); for shift
    s = 0..n_t // 2 the block of tile a (targets) against tile (a + s) mod n_t (sources) is
    evaluated for every a at once, shape (B, n_t, T sources, T targets), stored once, then summed
    over sources (action on tile a) and over targets (reaction on tile a + s). Shift 0 (a tile
    against itself) and, for even n_t, shift n_t / 2 (each pair of tiles met twice) contribute
    their action only, so every ordered pair (i, j) is counted exactly once. Realisations go in
    chunks of B so that a block holds about :data:`HALF_PAIR_BLOCK` terms. All the heavy work
    sits inside the while loop over shifts (at least 2 iterations: n_t >= 3 is assumed worth it),
    so that XLA never fuses it into the non-parallel dynamic-update-slice of the chunk loop.
    """
    jax = jax_module()
    jnp, lax = jax.numpy, jax.lax
    R, N = features[0].shape
    T = min(half_pair_tile(N), N)
    n_t = -(-N // T)
    n_pad = n_t * T
    dtype = features[0].dtype
    n_chunks = -(-R // max(1, min(R, HALF_PAIR_BLOCK // (n_pad * T))))
    B = -(-R // n_chunks)  # balanced chunks: at most n_chunks - 1 padded realisations

    def chunk_sum(chunk):
        b = chunk[0].shape[0]
        tiles = tuple(jnp.pad(f, ((0, 0), (0, n_pad - N))).reshape(b, n_t, T) for f in chunk)
        doubled = tuple(jnp.concatenate([x, x], axis=1) for x in tiles)  # tile (a + s) mod n_t = doubled[a + s]
        targets = tuple(x[:, :, None, :] for x in tiles)  # targets on the minor axis (measured faster)

        def shift_sum(s, acc):
            sources = tuple(lax.dynamic_slice_in_dim(x, s, n_t, axis=1)[:, :, :, None] for x in doubled)
            term = pair_term(targets, sources)  # (b, n_t, T sources, T targets)
            action = jnp.sum(term, axis=2)
            reaction = jnp.sum(term, axis=3)  # -(force on the sources), tile a + s
            reaction = jnp.where((s == 0) | (2 * s == n_t), 0.0, reaction)
            reaction = jnp.concatenate([reaction, reaction], axis=1)  # roll by s: tile a + s <- entry a
            return acc + action - lax.dynamic_slice_in_dim(reaction, n_t - s, n_t, axis=1)

        acc = lax.fori_loop(0, n_t // 2 + 1, shift_sum, jnp.zeros((b, n_t, T), dtype))
        return acc.reshape(b, n_pad)[:, :N]

    if n_chunks == 1:
        return chunk_sum(features)
    padded = tuple(jnp.pad(f, ((0, n_chunks * B - R), (0, 0))) for f in features)

    def chunk_body(k, out):
        chunk = tuple(lax.dynamic_slice_in_dim(f, k * B, B, axis=0) for f in padded)
        return lax.dynamic_update_slice_in_dim(out, chunk_sum(chunk), k * B, axis=0)

    return lax.fori_loop(0, n_chunks, chunk_body, jnp.zeros((n_chunks * B, N), dtype))[:R]


def _make_accel(force_model, mu: float, dtype):
    """A traceable acceleration function theta (R, N) -> dv/dt (R, N) for this force model."""
    jax = jax_module()
    jnp, lax = jax.numpy, jax.lax
    fm = force_model

    if fm.kind == "direct" and fm.ring_softening is not None:
        eps2 = fm.ring_softening**2

        def ring_pair_force(targets, sources):
            (ci, si), (cj, sj) = targets, sources
            sin_d = si * cj - ci * sj  # sin(theta_i - theta_j); exactly 0 for j = i
            cos_d = ci * cj + si * sj  # cos(theta_i - theta_j)
            d2 = 2.0 * (1.0 - cos_d) + eps2
            return sin_d / (d2 * jnp.sqrt(d2))

        def ring_accel(theta):
            cs = _materialise(jnp, lax, *sincos(theta))
            if -(-theta.shape[1] // half_pair_tile(theta.shape[1])) >= 3:  # 3 tiles or more: half-pair pays
                return (-mu) * antisymmetric_pair_sum(cs, ring_pair_force)
            return (-mu) * pair_sum(cs, ring_pair_force)

        return ring_accel

    if fm.kind == "direct":
        if fm.fourier is None:
            raise ValueError(f"backend='jax' evaluates the direct force of RingModel and finite Fourier "
                             f"potentials only, not {type(fm.potential).__name__}; use backend='numpy' "
                             "or the harmonic sums (kmax)")
        terms = [(k, 2.0 * k * u) for k, u in fm.fourier if u != 0.0]

        def fourier_pair_force(targets, sources):
            d = targets[0] - sources[0]  # theta_i - theta_j, as the reference
            f = jnp.zeros_like(d)
            for k, amp in terms:  # pair_force = -2 sum_k k U_k sin(k d), same order as the reference
                f = f - amp * sincos(k * d)[1]
            return f

        def fourier_direct_accel(theta):
            return mu * pair_sum((theta,), fourier_pair_force)

        return fourier_direct_accel

    kmax = fm.kmax
    w = jnp.asarray(np.concatenate([[0.0], -2.0 * mu * np.arange(1, kmax + 1) * fm.dense_coefficients()]), dtype=dtype)

    def harmonic_accel(theta):
        return _harmonic_accel(jnp, lax, theta, kmax, w)

    return harmonic_accel


def _rotations(jnp, lax, theta, kmax):
    """(c1, s1, rotate): cos/sin of theta and the map (cos k.theta, sin k.theta) -> k+1.

    No :func:`_materialise` here: these are O(N) per harmonic, and letting XLA fuse sincos into
    its consumers is faster than storing them (measured).
    """
    c1, s1 = sincos(theta)

    def rotate(c, s):
        return c * c1 - s * s1, s * c1 + c * s1

    return c1, s1, rotate


def _harmonic_sums(jnp, lax, theta, kmax):
    """C_k, S_k for k = 1..kmax, shapes (kmax, R), by the rotation recurrence."""
    c1, s1, rotate = _rotations(jnp, lax, theta, kmax)
    if kmax == 1:
        return c1.sum(axis=1)[None], s1.sum(axis=1)[None]

    def body(cs, _):
        c, s = cs
        return rotate(c, s), (c.sum(axis=1), s.sum(axis=1))

    _, (C, S) = lax.scan(body, (c1, s1), None, length=kmax, unroll=SCAN_UNROLL)
    return C, S


def _harmonic_accel(jnp, lax, theta, kmax, w):
    """a_i = sum_k w_k [sin(k theta_i) C_k - cos(k theta_i) S_k]; ``w`` holds w_0 = 0, w_1..w_kmax."""
    c1, s1, rotate = _rotations(jnp, lax, theta, kmax)
    if kmax == 1:
        wc, ws = w[1] * c1.sum(axis=1), w[1] * s1.sum(axis=1)
        return s1 * wc[:, None] - c1 * ws[:, None]

    def sums(cs, _):
        c, s = cs
        return rotate(c, s), (c.sum(axis=1), s.sum(axis=1))

    _, (C, S) = lax.scan(sums, (c1, s1), None, length=kmax, unroll=SCAN_UNROLL)
    WC, WS = w[1:, None] * C, w[1:, None] * S  # (kmax, R)

    def force(carry, x):
        c, s, acc = carry
        wc, ws = x
        acc = acc + (s * wc[:, None] - c * ws[:, None])
        c, s = rotate(c, s)
        return (c, s, acc), None

    (_, _, acc), _ = lax.scan(force, (c1, s1, jnp.zeros_like(theta)), (WC, WS), unroll=SCAN_UNROLL)
    return acc


def _make_potential_sum(force_model):
    """Traceable theta (R, N) float64 -> sum_{i != j} U(theta_i - theta_j), shape (R,)."""
    jax = jax_module()
    jnp, lax = jax.numpy, jax.lax
    fm = force_model

    if fm.kind == "direct" and fm.ring_softening is not None:
        eps2 = fm.ring_softening**2

        def ring_pair_potential(targets, sources):
            (ci, si), (cj, sj) = targets, sources
            return -1.0 / jnp.sqrt(2.0 * (1.0 - (ci * cj + si * sj)) + eps2)

        def ring_potential_sum(theta):
            cs = _materialise(jnp, lax, *sincos(theta))
            return jnp.sum(pair_sum(cs, ring_pair_potential, exclude_self=True), axis=1)

        return ring_potential_sum

    if fm.kind == "direct":
        terms = [(k, 2.0 * u) for k, u in fm.fourier if u != 0.0]
        u0 = float(fm.potential.coefficients(1)[0])

        def fourier_pair_potential(targets, sources):
            d = targets[0] - sources[0]
            u = jnp.full_like(d, -u0)
            for k, amp in terms:
                u = u - amp * sincos(k * d)[0]
            return u

        def fourier_potential_sum(theta):
            return jnp.sum(pair_sum((theta,), fourier_pair_potential, exclude_self=True), axis=1)

        return fourier_potential_sum

    uk = jnp.asarray(fm.dense_coefficients())

    def harmonic_potential_sum(theta):
        n = theta.shape[1]
        C, S = _harmonic_sums(jnp, lax, theta, fm.kmax)  # (kmax, R)
        return -fm.u0 * n * (n - 1) - 2.0 * jnp.sum((C * C + S * S - n) * uk[:, None], axis=0)

    return harmonic_potential_sum


@functools.lru_cache(maxsize=32)
def _compiled(force_model, N: int, dt: float, method: SplittingMethod, dtype: str):
    """jit-compiled (accel, advance, diagnostics) for one configuration (cached)."""
    jax = jax_module()
    jnp, lax = jax.numpy, jax.lax
    mu = 1.0 / N
    accel = _make_accel(force_model, mu, dtype)
    potential_sum = _make_potential_sum(force_model)
    drifts_dt, kicks_dt = method.scaled(dt)

    def one_step(_, state):
        theta, v = state
        return step(theta, v, accel, drifts_dt, kicks_dt, jnp)

    def advance(theta, v, n_steps):
        return lax.fori_loop(0, n_steps, one_step, (theta, v))

    def diagnostics(theta, v, u_grid):
        theta64 = theta.astype(jnp.float64)
        v64 = v.astype(jnp.float64)
        v2 = v64 * v64
        kinetic = 0.5 * mu * jnp.sum(v2, axis=1)
        potential = 0.5 * mu * mu * potential_sum(theta64)
        return {
            "kinetic": kinetic,
            "potential": potential,
            "energy": kinetic + potential,
            "momentum": mu * jnp.sum(v64, axis=1),
            "v2": jnp.mean(v2, axis=1),
            "v4": jnp.mean(v2 * v2, axis=1),
            "cumulative": jnp.sum(v64[:, :, None] < u_grid[None, None, :], axis=1).astype(jnp.float64) * (1.0 / N),
            "finite": jnp.all(jnp.isfinite(theta), axis=1) & jnp.all(jnp.isfinite(v), axis=1),
        }

    return jax.jit(accel), jax.jit(advance), jax.jit(diagnostics)


class JaxSystem(SteppedSystem):
    """JAX backend (CPU or GPU, whichever ``jax.default_backend()`` is)."""

    backend = "jax"

    def __init__(self, force_model, N: int, dt: float, method: SplittingMethod, dtype: str = "float64"):
        self.jax = jax_module()
        self._init_steps(force_model, N, dt, method, dtype)
        self._accel, self._advance, self._diagnostics = _compiled(force_model, self.N, self.dt, method,
                                                                  self.dtype.name)

    def to_device(self, x):
        return self.jax.numpy.asarray(np.asarray(x), dtype=self.dtype)

    def to_host(self, x) -> np.ndarray:
        return np.asarray(x)

    def accel(self, theta):
        return self._accel(self.to_device(theta))

    def advance(self, theta, v, n_steps: int):
        theta, v = self._advance(self.to_device(theta), self.to_device(v), int(n_steps))
        theta.block_until_ready()
        return theta, v

    def diagnostics(self, theta, v, u_grid) -> dict:
        out = self._diagnostics(theta, v, self.jax.numpy.asarray(np.asarray(u_grid, dtype=np.float64)))
        return {key: np.asarray(value) for key, value in out.items()}


__all__ = ["JaxSystem"]
