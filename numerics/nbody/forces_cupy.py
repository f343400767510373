"""CuPy backend: CUDA RawKernels for the direct ring-model force and the harmonic sums.

GPU twin of :mod:`numerics.nbody.forces_numpy` (same formulas, same (R, N) layout, tested
against it on a machine with a GPU; the kernel source is compiled with ``nvcc`` by the test
suite everywhere ``nvcc`` exists, so syntax errors are caught without a GPU).

Kernels (``CUDA_SOURCE``, templated on the real type T = double or float):

* ``particle_sincos<T>``: cos and sin of every angle, once per force evaluation.
* ``ring_direct_accel<T>``: one thread per particle i, one block row per realisation
  (grid = (ceil(N / B), R), B threads). The sources j are processed in tiles of B particles
  whose cos/sin are staged in shared memory; angle differences come from the addition formulas
  sin(a - b) = sa cb - ca sb, cos(a - b) = ca cb + sa sb, and the softened distance from the
  reciprocal square root: a_i = -mu sum_{j != i} sin d * rsqrt(2 (1 - cos d) + eps^2)^3.
* ``ring_direct_potential<T>``: phi_i = sum_{j != i} U(d_ij) with the same tiling (energy).
* ``harmonic_sums<T>``: C_k, S_k per realisation and harmonic (grid = (K, R); block reduction
  in shared memory; B must be a power of two).
* ``harmonic_accel<T>``: a_i = sum_k w_k [sin(k theta_i) C_k - cos(k theta_i) S_k],
  w_k = -2 mu k U_k, with C, S, w, k staged in shared memory in tiles of B harmonics.

The direct force on the GPU exists for the ring model only; any other potential raises a
ValueError pointing to the harmonic sums.
"""
from __future__ import annotations

import numpy as np

from numerics.nbody.integrators import SplittingMethod, SteppedSystem, step_inplace

#: threads per block (= tile length); a power of two, required by the block reduction
BLOCK = 128
#: largest grid y-dimension on CUDA devices (realisations per launch)
MAX_GRID_Y = 65535

CUDA_SOURCE = r"""
// Forces of N particles on the circle, batched over R realisations (arrays (R, N), row-major).
// Conventions: see numerics/nbody/forces_numpy.py. Templated on T = double | float.

template <typename T> struct Real;

template <> struct Real<double> {
    static __device__ __forceinline__ void sincos_(double x, double* s, double* c) { sincos(x, s, c); }
    static __device__ __forceinline__ double rsqrt_(double x) { return rsqrt(x); }
};

template <> struct Real<float> {
    static __device__ __forceinline__ void sincos_(float x, float* s, float* c) { sincosf(x, s, c); }
    static __device__ __forceinline__ float rsqrt_(float x) { return rsqrtf(x); }
};

// cos and sin of every angle (n = R * N entries), computed once per force evaluation.
template <typename T>
__global__ void particle_sincos(const T* __restrict__ theta, T* __restrict__ cos_out,
                                T* __restrict__ sin_out, const long long n)
{
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx < n) {
        T s, c;
        Real<T>::sincos_(theta[idx], &s, &c);
        cos_out[idx] = c;
        sin_out[idx] = s;
    }
}

// Softened ring model, direct sum. grid = (ceil(n / blockDim.x), R); dynamic shared memory
// 2 * blockDim.x * sizeof(T). accel[r, i] = -mu sum_{j != i} sin(d) / (2 (1 - cos d) + eps2)^{3/2}.
template <typename T>
__global__ void ring_direct_accel(const T* __restrict__ cos_t, const T* __restrict__ sin_t,
                                  T* __restrict__ accel, const int n, const T eps2, const T mu)
{
    extern __shared__ unsigned char shared_raw[];
    T* tile_cos = reinterpret_cast<T*>(shared_raw);
    T* tile_sin = tile_cos + blockDim.x;

    const long long row = (long long)blockIdx.y * n;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    T ci = T(1), si = T(0);
    if (i < n) {
        ci = cos_t[row + i];
        si = sin_t[row + i];
    }
    T acc = T(0);
    for (int start = 0; start < n; start += blockDim.x) {
        const int j = start + threadIdx.x;
        tile_cos[threadIdx.x] = (j < n) ? cos_t[row + j] : T(1);
        tile_sin[threadIdx.x] = (j < n) ? sin_t[row + j] : T(0);
        __syncthreads();
        const int count = min((int)blockDim.x, n - start);
        for (int q = 0; q < count; ++q) {
            const T cj = tile_cos[q];
            const T sj = tile_sin[q];
            const T sin_d = si * cj - ci * sj;
            const T cos_d = ci * cj + si * sj;
            const T inv = Real<T>::rsqrt_(T(2) * (T(1) - cos_d) + eps2);
            const T term = sin_d * inv * inv * inv;
            acc -= (start + q != i) ? term : T(0);
        }
        __syncthreads();
    }
    if (i < n) accel[row + i] = mu * acc;
}

// Softened ring model: phi[r, i] = sum_{j != i} U(theta_i - theta_j), U = -1/sqrt(2(1 - cos d) + eps2).
template <typename T>
__global__ void ring_direct_potential(const T* __restrict__ cos_t, const T* __restrict__ sin_t,
                                      T* __restrict__ phi, const int n, const T eps2)
{
    extern __shared__ unsigned char shared_raw[];
    T* tile_cos = reinterpret_cast<T*>(shared_raw);
    T* tile_sin = tile_cos + blockDim.x;

    const long long row = (long long)blockIdx.y * n;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    T ci = T(1), si = T(0);
    if (i < n) {
        ci = cos_t[row + i];
        si = sin_t[row + i];
    }
    T acc = T(0);
    for (int start = 0; start < n; start += blockDim.x) {
        const int j = start + threadIdx.x;
        tile_cos[threadIdx.x] = (j < n) ? cos_t[row + j] : T(1);
        tile_sin[threadIdx.x] = (j < n) ? sin_t[row + j] : T(0);
        __syncthreads();
        const int count = min((int)blockDim.x, n - start);
        for (int q = 0; q < count; ++q) {
            const T cos_d = ci * tile_cos[q] + si * tile_sin[q];
            const T u = -Real<T>::rsqrt_(T(2) * (T(1) - cos_d) + eps2);
            acc += (start + q != i) ? u : T(0);
        }
        __syncthreads();
    }
    if (i < n) phi[row + i] = acc;
}

// C[r, q] = sum_j cos(k_q theta_j), S[r, q] = sum_j sin(k_q theta_j).
// grid = (K, R); blockDim.x a power of two; dynamic shared memory 2 * blockDim.x * sizeof(T).
template <typename T>
__global__ void harmonic_sums(const T* __restrict__ theta, const int* __restrict__ ks,
                              T* __restrict__ C, T* __restrict__ S, const int n, const int nk)
{
    extern __shared__ unsigned char shared_raw[];
    T* red_cos = reinterpret_cast<T*>(shared_raw);
    T* red_sin = red_cos + blockDim.x;

    const int q = blockIdx.x;
    const long long row = (long long)blockIdx.y * n;
    const T k = T(ks[q]);
    T c_acc = T(0), s_acc = T(0);
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        T s, c;
        Real<T>::sincos_(k * theta[row + j], &s, &c);
        c_acc += c;
        s_acc += s;
    }
    red_cos[threadIdx.x] = c_acc;
    red_sin[threadIdx.x] = s_acc;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) {
            red_cos[threadIdx.x] += red_cos[threadIdx.x + stride];
            red_sin[threadIdx.x] += red_sin[threadIdx.x + stride];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        C[(long long)blockIdx.y * nk + q] = red_cos[0];
        S[(long long)blockIdx.y * nk + q] = red_sin[0];
    }
}

// accel[r, i] = sum_q w_q [sin(k_q theta_i) C[r, q] - cos(k_q theta_i) S[r, q]], w_q = -2 mu k_q U_kq.
// grid = (ceil(n / blockDim.x), R); dynamic shared memory 2 * blockDim.x * sizeof(T) + blockDim.x * sizeof(int).
template <typename T>
__global__ void harmonic_accel(const T* __restrict__ theta, const int* __restrict__ ks,
                               const T* __restrict__ weights, const T* __restrict__ C,
                               const T* __restrict__ S, T* __restrict__ accel, const int n, const int nk)
{
    extern __shared__ unsigned char shared_raw[];
    T* tile_wc = reinterpret_cast<T*>(shared_raw);
    T* tile_ws = tile_wc + blockDim.x;
    int* tile_k = reinterpret_cast<int*>(tile_ws + blockDim.x);

    const long long row = (long long)blockIdx.y * n;
    const long long sums_row = (long long)blockIdx.y * nk;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const T th = (i < n) ? theta[row + i] : T(0);
    T acc = T(0);
    for (int start = 0; start < nk; start += blockDim.x) {
        const int q = start + threadIdx.x;
        if (q < nk) {
            tile_wc[threadIdx.x] = weights[q] * C[sums_row + q];
            tile_ws[threadIdx.x] = weights[q] * S[sums_row + q];
            tile_k[threadIdx.x] = ks[q];
        }
        __syncthreads();
        const int count = min((int)blockDim.x, nk - start);
        for (int p = 0; p < count; ++p) {
            T s, c;
            Real<T>::sincos_(T(tile_k[p]) * th, &s, &c);
            acc += s * tile_wc[p] - c * tile_ws[p];
        }
        __syncthreads();
    }
    if (i < n) accel[row + i] = acc;
}

#ifdef BBGKY_EXPLICIT_INSTANTIATION
// For an offline syntax check with nvcc (CuPy instantiates through name_expressions instead).
#define BBGKY_INSTANTIATE(T)                                                                          \
    template __global__ void particle_sincos<T>(const T*, T*, T*, const long long);                   \
    template __global__ void ring_direct_accel<T>(const T*, const T*, T*, const int, const T, const T); \
    template __global__ void ring_direct_potential<T>(const T*, const T*, T*, const int, const T);    \
    template __global__ void harmonic_sums<T>(const T*, const int*, T*, T*, const int, const int);    \
    template __global__ void harmonic_accel<T>(const T*, const int*, const T*, const T*, const T*, T*, \
                                               const int, const int);
BBGKY_INSTANTIATE(double)
BBGKY_INSTANTIATE(float)
#endif
"""

KERNEL_NAMES = ("particle_sincos", "ring_direct_accel", "ring_direct_potential", "harmonic_sums", "harmonic_accel")
_CTYPES = {"float64": "double", "float32": "float"}


def name_expressions(dtype: str) -> list[str]:
    """The template instantiations CuPy compiles for ``dtype`` ("float64" or "float32")."""
    ctype = _CTYPES[np.dtype(dtype).name]
    return [f"{name}<{ctype}>" for name in KERNEL_NAMES]


_MODULES: dict = {}


def _module(cupy, dtype: str):
    """Compiled RawModule for ``dtype`` (compiled once per process; CuPy caches on disk too)."""
    if dtype not in _MODULES:
        _MODULES[dtype] = cupy.RawModule(code=CUDA_SOURCE, options=("-std=c++14",),
                                         name_expressions=name_expressions(dtype))
    return _MODULES[dtype]


class CupySystem(SteppedSystem):
    """GPU backend. Same interface as :class:`numerics.nbody.system.NumpySystem`."""

    backend = "cupy"

    def __init__(self, force_model, N: int, dt: float, method: SplittingMethod, dtype: str = "float64"):
        from numerics.backends import require_backend

        self.cp = require_backend("cupy")  # BackendUnavailableError without a usable GPU
        fm = force_model
        if fm.kind == "direct" and fm.ring_softening is None:
            raise ValueError(f"backend='cupy' computes the direct force for RingModel only, not "
                             f"{type(fm.potential).__name__}; use the harmonic sums (give kmax, or "
                             "force='harmonic' for a finite Fourier potential)")
        self._init_steps(fm, N, dt, method, dtype)
        self._real = self.dtype.type
        module = _module(self.cp, self.dtype.name)
        ctype = _CTYPES[self.dtype.name]
        self._kernels = {name: module.get_function(f"{name}<{ctype}>") for name in KERNEL_NAMES}
        if self.dtype.name != "float64":  # energies are always evaluated in float64
            module64 = _module(self.cp, "float64")
            self._kernels64 = {name: module64.get_function(f"{name}<double>") for name in KERNEL_NAMES}
        else:
            self._kernels64 = self._kernels
        if fm.kind == "harmonic":
            self._ks = self.cp.asarray(np.asarray(fm.ks, dtype=np.int32))
            self._weights = self.cp.asarray(fm.weights(self.mu).astype(self.dtype))

    # ------------------------------------------------------------------ transfers
    def to_device(self, x):
        return self.cp.asarray(np.asarray(x), dtype=self.dtype)

    def to_host(self, x) -> np.ndarray:
        return self.cp.asnumpy(x)

    # ------------------------------------------------------------------ kernels
    def _row_chunks(self, R: int):
        for start in range(0, R, MAX_GRID_Y):
            yield start, min(R, start + MAX_GRID_Y)

    def _sincos(self, theta, kernels):
        cp = self.cp
        cos_t = cp.empty_like(theta)
        sin_t = cp.empty_like(theta)
        n = theta.size
        kernels["particle_sincos"](((n + BLOCK - 1) // BLOCK,), (BLOCK,), (theta, cos_t, sin_t, np.int64(n)))
        return cos_t, sin_t

    def _ring_accel(self, theta):
        theta = self.cp.ascontiguousarray(theta)
        R, N = theta.shape
        cos_t, sin_t = self._sincos(theta, self._kernels)
        out = self.cp.empty_like(theta)
        real = self._real
        eps2, mu = real(self.force_model.ring_softening**2), real(self.mu)
        shared = 2 * BLOCK * self.dtype.itemsize
        for a, b in self._row_chunks(R):
            grid = ((N + BLOCK - 1) // BLOCK, b - a)
            self._kernels["ring_direct_accel"](grid, (BLOCK,), (cos_t[a:b], sin_t[a:b], out[a:b], np.int32(N), eps2, mu),
                                               shared_mem=shared)
        return out

    def _harmonic_sums(self, theta, kernels, ks, real_dtype):
        cp = self.cp
        R, N = theta.shape
        nk = int(ks.size)
        C = cp.empty((R, nk), dtype=real_dtype)
        S = cp.empty((R, nk), dtype=real_dtype)
        shared = 2 * BLOCK * np.dtype(real_dtype).itemsize
        for a, b in self._row_chunks(R):
            kernels["harmonic_sums"]((nk, b - a), (BLOCK,), (theta[a:b], ks, C[a:b], S[a:b], np.int32(N), np.int32(nk)),
                                     shared_mem=shared)
        return C, S

    def _harmonic_accel(self, theta):
        theta = self.cp.ascontiguousarray(theta)
        R, N = theta.shape
        C, S = self._harmonic_sums(theta, self._kernels, self._ks, self.dtype)
        out = self.cp.empty_like(theta)
        nk = int(self._ks.size)
        shared = 2 * BLOCK * self.dtype.itemsize + BLOCK * 4  # w C, w S tiles + the k tile
        for a, b in self._row_chunks(R):
            grid = ((N + BLOCK - 1) // BLOCK, b - a)
            self._kernels["harmonic_accel"](grid, (BLOCK,), (theta[a:b], self._ks, self._weights, C[a:b], S[a:b], out[a:b],
                                                             np.int32(N), np.int32(nk)), shared_mem=shared)
        return out

    def accel(self, theta):
        if self.force_model.kind == "harmonic":
            return self._harmonic_accel(theta)
        return self._ring_accel(theta)

    def advance(self, theta, v, n_steps: int):
        theta = self.cp.array(theta, dtype=self.dtype)
        v = self.cp.array(v, dtype=self.dtype)
        for _ in range(int(n_steps)):
            step_inplace(theta, v, self.accel, self.drifts_dt, self.kicks_dt, self.cp)
        return theta, v

    # ------------------------------------------------------------------ diagnostics
    def potential_sum(self, theta):
        """sum_{i != j} U(theta_i - theta_j) per realisation, float64, on the device."""
        cp = self.cp
        fm = self.force_model
        theta = cp.ascontiguousarray(theta, dtype=cp.float64)
        R, N = theta.shape
        if fm.kind == "harmonic":
            ks = self._ks
            C, S = self._harmonic_sums(theta, self._kernels64, ks, np.float64)
            uk = cp.asarray(np.asarray(fm.uk, dtype=np.float64))
            return -fm.u0 * N * (N - 1) - 2.0 * ((C * C + S * S - N) * uk).sum(axis=1)
        cos_t, sin_t = self._sincos(theta, self._kernels64)
        phi = cp.empty_like(theta)
        shared = 2 * BLOCK * 8
        for a, b in self._row_chunks(R):
            grid = ((N + BLOCK - 1) // BLOCK, b - a)
            self._kernels64["ring_direct_potential"](grid, (BLOCK,), (cos_t[a:b], sin_t[a:b], phi[a:b], np.int32(N),
                                                                      np.float64(fm.ring_softening**2)), shared_mem=shared)
        return phi.sum(axis=1)

    def diagnostics(self, theta, v, u_grid) -> dict:
        cp = self.cp
        v64 = v.astype(cp.float64)
        v2 = v64 * v64
        u = cp.asarray(np.asarray(u_grid, dtype=np.float64))
        R = v64.shape[0]
        cumulative = cp.empty((R, u.size), dtype=cp.float64)
        per_chunk = max(1, (1 << 24) // max(1, v64.shape[1] * u.size))
        for start in range(0, R, per_chunk):
            block = v64[start : start + per_chunk]
            cumulative[start : start + per_chunk] = (block[:, :, None] < u).sum(axis=1) * (1.0 / v64.shape[1])
        kinetic = 0.5 * self.mu * v2.sum(axis=1)
        potential = 0.5 * self.mu * self.mu * self.potential_sum(theta)
        out = {
            "kinetic": kinetic,
            "potential": potential,
            "energy": kinetic + potential,
            "momentum": self.mu * v64.sum(axis=1),
            "v2": v2.mean(axis=1),
            "v4": (v2 * v2).mean(axis=1),
            "cumulative": cumulative,
            "finite": cp.isfinite(theta).all(axis=1) & cp.isfinite(v).all(axis=1),
        }
        return {key: cp.asnumpy(value) for key, value in out.items()}
