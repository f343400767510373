"""Numerical cross-check between stages: the long-time flux straight out of the solution
stage (Resonance = 1/(x - i0), before any simplification) and the final operator (deltas),
evaluated with regularised distributions on random smooth DFs and random potentials, agree
as the regularisation eps goes to zero."""
import numpy as np
import sympy as sp
from hypothesis import given, settings, strategies as st

import derive
from tests.helpers.regularised import evaluate_flux

OP1 = derive.collision_operator(1, 1)
v = sp.Symbol("v", real=True)


def mixture(params):
    """A smooth positive DF: a normalised mixture of two Gaussians; returns dF(n, v)."""
    (w, m1, s1, m2, s2) = params
    g = lambda m, s: sp.exp(-(v - m) ** 2 / (2 * s**2)) / sp.sqrt(2 * sp.pi * s**2)
    expr = w * g(m1, s1) + (1 - w) * g(m2, s2)
    funcs = [sp.lambdify(v, sp.diff(expr, v, n), "numpy") for n in range(4)]
    return lambda n, x: funcs[n](x)


dfs = st.tuples(st.floats(0.2, 0.8), st.floats(-1, 1), st.floats(0.6, 1.5), st.floats(-1, 1), st.floats(0.6, 1.5))
potentials = st.dictionaries(st.integers(1, 3), st.floats(-1, 1).filter(lambda x: abs(x) > 0.05), min_size=1, max_size=3)


@given(dfs, potentials)
@settings(max_examples=6)
def test_order1_flux_stage_agrees_with_final_form_as_eps_to_zero(df, pot):
    F = mixture(df)
    v1 = np.linspace(-2.0, 2.0, 9)
    vg = np.linspace(-7.0, 7.0, 2801)
    unsimplified = OP1.derivation["flux"].output[0]
    final = OP1.flux[0]
    diffs, norms = [], []
    for eps in (0.4, 0.2, 0.1):
        a = evaluate_flux(unsimplified, F, pot, v1, vg, eps)
        b = evaluate_flux(final, F, pot, v1, vg, eps)
        scale = np.max(np.abs(a)) + 1e-300
        assert np.max(np.abs(a.imag)) <= 1e-9 * max(scale, 1.0)  # the flux is real
        diffs.append(np.max(np.abs(a.real - b.real)))
        norms.append(np.max(np.abs(b.real)))
    # same distribution written two ways: agree at every eps to quadrature accuracy
    assert max(diffs) < 1e-6
    # and in 1D the order-1 flux tends to zero with the regularisation (kinetic blocking)
    assert norms[2] < norms[1] < norms[0]
