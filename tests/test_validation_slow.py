"""Slow validation of the derived 1/N^2 operator against N-body (run with ``pytest -m slow``):
``examples/flux_vs_nbody.py`` at N = 128, R = 8192 (about 3 minutes on 2 cores)."""
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _example():
    spec = importlib.util.spec_from_file_location("flux_vs_nbody", ROOT / "examples" / "flux_vs_nbody.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_hmf_prediction_against_nbody_at_n128(tmp_path):
    """HMF, n = 4, Q = 4 (Q/Q_c = 8.8). Over the whole profile: every significant point has
    the predicted sign and the amplitude ratio is 1 within 40 %. In the tails |u| > 1.5 sigma
    (>= 10 points, where collective amplification is negligible) chi^2/dof <= 2 with no free
    parameter. The small-|u| excess (up to ~1.6x, PHYSICS.md section 4) is what the hot-limit
    theory neglects and is not asserted away."""
    out = tmp_path / "fvn"
    assert _example().main(["--Ns", "128", "--R", "8192", "--out", str(out), "--no-progress"]) == 0
    c = json.loads((out / "flux_vs_nbody.json").read_text())["comparisons"]["N=128"]
    assert c["sign_agreement"] >= 0.95 and c["n_sign_points"] >= 8
    assert abs(c["ratio_measured_over_predicted"] - 1.0) <= 0.4
    u, p = np.array(c["u"]), np.array(c["predicted"])
    m, e = np.array(c["measured_values"]), np.array(c["measured_err"])
    sigma = math.sqrt(2.0)
    tails = (u > 1.5 * sigma) & (e > 0)
    assert tails.sum() >= 10
    chi2_dof = float(np.sum(((m[tails] - p[tails]) / e[tails]) ** 2) / tails.sum())
    assert chi2_dof <= 2.0, chi2_dof
    peak = int(np.argmax(np.abs(m)))
    assert abs(m[peak]) / e[peak] >= 5.0
