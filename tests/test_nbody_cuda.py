"""CuPy backend: the CUDA sources compile (nvcc, no GPU needed); GPU runs match NumPy (GPU only)."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from numerics.backends import cupy_usable
from numerics.models import HMF, FourierPotential, Gaussian, RingModel
from numerics.nbody import build_system, initial_conditions, simulate
from numerics.nbody.forces_cupy import CUDA_SOURCE, KERNEL_NAMES, name_expressions

NVCC = shutil.which("nvcc")
GPU_OK, GPU_REASON = cupy_usable()
needs_gpu = pytest.mark.skipif(not GPU_OK, reason=f"GPU test skipped: {GPU_REASON}")


def test_name_expressions_cover_both_precisions():
    assert name_expressions("float64") == [f"{k}<double>" for k in KERNEL_NAMES]
    assert name_expressions("float32") == [f"{k}<float>" for k in KERNEL_NAMES]
    for name in KERNEL_NAMES:
        assert f"__global__ void {name}(" in CUDA_SOURCE


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH: cannot syntax-check the CUDA kernels")
def test_cuda_kernels_compile_with_nvcc(tmp_path):
    """Compile every kernel for double and float (explicit instantiations) to catch syntax errors."""
    source = tmp_path / "nbody_kernels.cu"
    source.write_text(CUDA_SOURCE)
    obj = tmp_path / "nbody_kernels.o"
    cmd = [NVCC, "-c", "-std=c++14", "-DBBGKY_EXPLICIT_INSTANTIATION", "-arch=sm_80", "-Xptxas", "-v",
           "-o", str(obj), str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert obj.stat().st_size > 0
    compiled = proc.stdout + proc.stderr  # ptxas -v lists every compiled entry point
    for name in KERNEL_NAMES:
        for ctype in ("IdE", "IfE"):  # mangled template arguments: double, float
            assert f"{len(name)}{name}{ctype}" in compiled, (name, ctype)


# ------------------------------------------------------------------------------------ GPU only
@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("potential, kmax", [(RingModel(0.1), None), (HMF(), None),
                                             (FourierPotential({1: 0.5, 3: 0.2}), None), (RingModel(0.3), 40)],
                         ids=["ring-direct", "hmf", "fourier", "ring-kmax40"])
def test_cupy_matches_numpy(potential, kmax):
    theta, v = initial_conditions(Gaussian(1.0), 200, 3, seed=4)
    ref = build_system(potential, 200, dt=0.05, kmax=kmax)
    gpu = build_system(potential, 200, dt=0.05, kmax=kmax, backend="cupy")
    a_ref = ref.accel(theta)
    a_gpu = gpu.to_host(gpu.accel(gpu.to_device(theta)))
    assert np.max(np.abs(a_gpu - a_ref)) <= 1e-12 * max(1.0, np.max(np.abs(a_ref)))
    u = np.linspace(-2, 2, 5)
    d_ref = ref.diagnostics(theta, v, u)
    d_gpu = gpu.diagnostics(gpu.to_device(theta), gpu.to_device(v), u)
    for key in ("energy", "momentum", "v2", "v4"):
        np.testing.assert_allclose(d_gpu[key], d_ref[key], rtol=1e-12, atol=1e-14)
    t_ref, v_ref = ref.advance(theta, v, 5)
    t_gpu, v_gpu = gpu.advance(gpu.to_device(theta), gpu.to_device(v), 5)
    np.testing.assert_allclose(gpu.to_host(v_gpu), v_ref, rtol=0, atol=1e-12)
    s32 = build_system(potential, 200, dt=0.05, kmax=kmax, backend="cupy", dtype="float32")
    a32 = s32.to_host(s32.accel(s32.to_device(theta)))
    assert np.max(np.abs(a32 - a_ref)) <= 1e-4 * max(1.0, np.max(np.abs(a_ref)))


@needs_gpu
@pytest.mark.gpu
def test_cupy_run_and_direct_force_restriction():
    a = simulate(RingModel(0.3), Gaussian(1.0), 64, 4, 1.0, 0.02, n_snapshots=6, progress=False)
    b = simulate(RingModel(0.3), Gaussian(1.0), 64, 4, 1.0, 0.02, n_snapshots=6, progress=False, backend="cupy")
    np.testing.assert_allclose(b.energy, a.energy, rtol=1e-12)
    with pytest.raises(ValueError, match="RingModel only"):
        build_system(FourierPotential({1: 0.5}), 8, dt=0.1, force="direct", backend="cupy")
