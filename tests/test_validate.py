"""numerics.validate: the 1/N extrapolation and the comparison on synthetic data with a known truth,
a tiny real ensemble on the numpy backend, input errors; one slow CPU-sized scaling run (-m slow)."""
from __future__ import annotations

import importlib.util
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from numerics import HMF, GeneralizedGaussian, Tabulated
from numerics.nbody.measure import FluxMeasurement
from numerics.validate import (
    FluxEnsemble,
    InverseNFit,
    amplitude_ratio,
    compare,
    derived_seed,
    extrapolate_inverse_N,
    flux_ensemble,
    plot_ensemble,
    q_scaling,
    scaled_profile,
    write_json,
)

U = np.linspace(-3.0, 3.0, 41)
NS = (16, 32, 64, 128)


def truth_a(u):
    return 0.01 * u * np.exp(-0.5 * u**2) * (1.0 - u**2 / 3.0)


def truth_b(u):
    return -0.3 * u * np.exp(-0.5 * u**2)


def synthetic(*, Ns=NS, u=U, seed=0, noise=lambda N: 2e-4 * (N / 16) ** 1.3, a=truth_a, b=truth_b, folded=False,
              covariances=False):
    """Per-N measurements of N^2 F = a + b/N + Gaussian noise of known sigma (the band half width)."""
    rng = np.random.default_rng(seed)
    ms, covs = [], []
    for N in Ns:
        s = noise(N) * np.ones_like(u)
        y = a(u) + b(u) / N + s * rng.standard_normal(u.size)
        if folded:
            y, s = 0.5 * (y - y[::-1]), s * math.sqrt(0.5) * np.where(u == 0, 0.0, 1.0)
        F, hw = y / N**2, s / N**2
        ms.append(FluxMeasurement(u=u, flux=F, lower=F - hw, upper=F + hw, window=(0.0, 1.0), n_realisations=100,
                                  N=N, folded=folded, fit_points=10))
        covs.append(np.diag(hw**2))
    return FluxEnsemble.from_measurements(ms, covariances=covs) if covariances else FluxEnsemble.from_measurements(ms)


# ---------------------------------------------------------------------------------- extrapolation
def test_noise_free_extrapolation_is_exact():
    fit = extrapolate_inverse_N(synthetic(noise=lambda N: 1e-12))  # tiny but resolvable band width
    np.testing.assert_allclose(fit.a, truth_a(U), rtol=0, atol=1e-10)
    np.testing.assert_allclose(fit.b, truth_b(U), rtol=0, atol=1e-8)
    assert fit.dof == 2 and fit.Ns == NS


def test_extrapolation_recovers_intercept_within_its_error_bars():
    pulls, chi2 = [], []
    for seed in range(25):
        fit = extrapolate_inverse_N(synthetic(seed=seed))
        pulls.append((fit.a - truth_a(U)) / fit.a_err)
        chi2.append(fit.global_chi2_dof)
    pulls = np.concatenate(pulls)
    inside = np.mean(np.abs(pulls) < 1.0)
    assert 0.60 < inside < 0.76, inside  # 68% expected; 1025 points
    assert 0.85 < np.std(pulls) < 1.15
    assert 0.85 < np.mean(chi2) < 1.15


def test_extrapolation_with_two_N_is_exact_and_flags_dof_zero():
    fit = extrapolate_inverse_N(synthetic(Ns=(32, 64)))
    assert fit.dof == 0 and np.all(np.isnan(fit.chi2_dof)) and math.isnan(fit.global_chi2_dof)
    ens = synthetic(Ns=(32, 64))
    y = ens.n2_flux
    np.testing.assert_allclose(fit.a, 2 * y[1] - y[0], rtol=1e-10, atol=1e-15)  # a = (x1 y2 - x2 y1)/(x1 - x2)


def test_extrapolation_subset_and_linear_model_violation_shows_in_chi2():
    curved = synthetic(noise=lambda N: 1e-5, b=lambda u: 0 * u, a=lambda u: truth_a(u))
    # add a 1/N^2 term far above the noise: the linear model must fail its chi^2
    ms = [FluxMeasurement(u=m.u, flux=m.flux + 50.0 * truth_a(U) / n**4, lower=m.lower + 50.0 * truth_a(U) / n**4,
                          upper=m.upper + 50.0 * truth_a(U) / n**4, window=m.window, n_realisations=100, N=n,
                          folded=False, fit_points=10) for n, m in zip(curved.Ns, curved.measurements)]
    fit = extrapolate_inverse_N(ms)
    assert fit.global_chi2_dof > 10
    sub = extrapolate_inverse_N(ms, Ns=(64, 128))
    assert sub.Ns == (64, 128) and sub.dof == 0


def test_quadratic_in_inverse_N_recovers_curved_truth():
    ms = []
    for n in NS:  # N^2 F = a + b/N + c/N^2 with a large c, tiny noise
        y = truth_a(U) + truth_b(U) / n + 40.0 * truth_a(U) / n**2
        F, hw = y / n**2, 1e-7 / n**2
        ms.append(FluxMeasurement(u=U, flux=F, lower=F - hw, upper=F + hw, window=(0.0, 1.0), n_realisations=100,
                                  N=n, folded=False, fit_points=10))
    lin = extrapolate_inverse_N(ms)
    quad = extrapolate_inverse_N(ms, degree=2)
    assert lin.global_chi2_dof > 100 and quad.global_chi2_dof < 1e-6
    assert quad.degree == 2 and quad.dof == 1 and quad.coefficients.shape == (3, U.size)
    np.testing.assert_allclose(quad.a, truth_a(U), atol=1e-8)
    np.testing.assert_allclose(quad.coefficients[2], 40.0 * truth_a(U), atol=1e-4)
    assert "c2(u)/N^2" in quad.model
    with pytest.raises(ValueError, match="degree = 3 needs at least 4 values of N"):
        extrapolate_inverse_N(ms, Ns=(16, 32, 64), degree=3)
    with pytest.raises(ValueError, match="degree must be an integer >= 1"):
        extrapolate_inverse_N(ms, degree=0)


def test_covariance_propagates_to_intercept():
    ens = synthetic(covariances=True)
    fit = extrapolate_inverse_N(ens)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.a_cov)), fit.a_err, rtol=1e-10)
    c = compare(truth_a(U), fit)
    assert c.chi2_cov == pytest.approx(c.chi2, rel=1e-8)


def test_points_seen_by_few_realisations_are_left_out():
    ens = synthetic(seed=6)
    support = np.full(U.size, 100)
    support[-5:] = 3  # the far tail: 3 of 100 realisations saw a crossing
    thin = FluxEnsemble.from_measurements(ens.measurements, Rs=[100] * 4, supports=[support] * 4)
    assert not thin.supported[:, -5:].any() and thin.supported[:, :-5].all()
    fit = extrapolate_inverse_N(thin)
    assert not fit.valid[-5:].any() and np.all(np.isnan(fit.a[-5:])) and fit.valid[:-5].all()
    c = compare(truth_a(U), fit)
    assert c.dof == U.size - 5
    single = FluxEnsemble.from_measurements([thin.measurements[0]], Rs=[100], supports=[support])
    assert compare(truth_a(U), single).dof == U.size - 5
    # the same support carried by the measurement itself: one mechanism for ensembles and measurements
    m = replace(thin.measurements[0], n_realisations=100, support=support)
    c = compare(truth_a(U), m)
    assert c.dof == U.size - 5 and not np.isin(np.arange(U.size - 5, U.size), c.points).any()
    np.testing.assert_array_equal(c.to_dict()["measured_support"], support)
    assert np.isfinite(c.measured_err[-5:]).all()  # stored whole; the selection is in points
    assert FluxEnsemble.from_measurements([m]).supports[0] is support
    with pytest.raises(ValueError, match="too few realisations"):
        compare(truth_a(U), replace(m, support=np.zeros(U.size, dtype=int)))


def test_folded_profile_uses_independent_points_only():
    ens = synthetic(folded=True, a=truth_a, b=truth_b)
    fit = extrapolate_inverse_N(ens)
    assert fit.folded
    j0 = int(np.flatnonzero(U == 0)[0])
    assert fit.a[j0] == 0.0 and fit.a_err[j0] == 0.0 and not fit.valid[j0]
    assert fit.summary()["n_points"] == np.count_nonzero(U > 0)
    assert compare(truth_a(U), fit).dof == np.count_nonzero(U > 0)


# ---------------------------------------------------------------------------------- comparison
def test_compare_matching_prediction():
    fit = extrapolate_inverse_N(synthetic(seed=3))
    c = compare(truth_a(U), fit)
    assert 0.5 < c.chi2_dof < 1.7
    assert abs(c.ratio - 1.0) < 3 * c.ratio_err and c.ratio_err < 0.1
    assert c.sign_agreement == 1.0 and c.n_sign_points >= 10
    assert c.dof == U.size
    # callable form and grid check
    c2 = compare(truth_a, fit, u=U)
    assert c2.chi2 == pytest.approx(c.chi2)
    json.dumps(c.to_dict(), allow_nan=False)
    assert "measured/predicted" in str(c)


def test_compare_detects_factor_two_and_sign_flip():
    fit = extrapolate_inverse_N(synthetic(seed=4))
    half = compare(0.5 * truth_a(U), fit)
    assert abs(half.ratio - 2.0) < 3 * half.ratio_err
    assert half.chi2_dof > 2 and half.p_value < 1e-6
    assert half.sign_agreement == 1.0  # same signs, wrong amplitude
    flip = compare(-truth_a(U), fit)
    assert abs(flip.ratio + 1.0) < 3 * flip.ratio_err
    assert flip.sign_agreement == 0.0 and flip.chi2_dof > 10


def test_compare_single_N_measurement_and_points():
    ens = synthetic(seed=5)
    m = ens.measurement(128)
    pred = truth_a(U) + truth_b(U) / 128
    c = compare(pred, m)
    assert c.measured_label == "N = 128" and abs(c.ratio - 1) < 3 * c.ratio_err
    sel = compare(pred, m, points=np.flatnonzero(U > 1))
    assert sel.dof == np.count_nonzero(U > 1)
    one = FluxEnsemble.from_measurements([m])
    assert compare(pred, one).chi2 == pytest.approx(c.chi2)


def test_compare_reports_signal_to_noise_at_both_peaks():
    u = np.linspace(0.1, 3.0, 30)
    pred = np.exp(-((u - 1.0) / 0.3) ** 2)  # peak at u = 1
    meas = 0.8 * np.exp(-((u - 2.0) / 0.3) ** 2) + 0.1 * pred  # peak moved to u = 2
    err = np.full(u.size, 0.02)
    m = FluxMeasurement(u=u, flux=meas, lower=meas - err, upper=meas + err, window=(0.0, 1.0),
                        n_realisations=10, N=1, folded=False, fit_points=3)
    c = compare(pred, m)
    snr = c.peak_snr
    j1, j2 = int(np.argmin(abs(u - 1.0))), int(np.argmin(abs(u - 2.0)))
    assert snr["u_predicted"] == pytest.approx(u[j1]) and snr["u_measured"] == pytest.approx(u[j2])
    assert snr["predicted"] == pytest.approx(abs(meas[j1]) / 0.02)
    assert snr["measured"] == pytest.approx(abs(meas[j2]) / 0.02)
    assert c.summary()["peak_snr"] == snr and "S/N at the predicted peak" in str(c)
    # restricted to the points compared
    low = compare(pred, m, points=np.flatnonzero(u < 1.5))
    assert low.peak_snr["u_measured"] < 1.5


def test_amplitude_ratio_with_errors_on_both():
    rng = np.random.default_rng(1)
    x = truth_a(U)
    sx = 2e-4 * np.ones_like(U)
    y = 0.25 * x + 5e-5 * rng.standard_normal(U.size)
    r, e = amplitude_ratio(y, 5e-5 * np.ones_like(U), x + sx * rng.standard_normal(U.size), sx)
    assert abs(r - 0.25) < 3 * e and e < 0.05


# ---------------------------------------------------------------------------------- bad inputs
def test_bad_inputs_name_the_parameter():
    ens = synthetic()
    with pytest.raises(ValueError, match="at least 2 values of N"):
        extrapolate_inverse_N(synthetic(Ns=(32,)))
    with pytest.raises(ValueError, match="at least 2 values of N"):
        extrapolate_inverse_N(ens, Ns=(64,))
    with pytest.raises(ValueError, match="Ns asks for N"):
        extrapolate_inverse_N(ens, Ns=(64, 256))
    other = FluxMeasurement(u=U[:-1], flux=U[:-1] * 0, lower=U[:-1] * 0 - 1, upper=U[:-1] * 0 + 1, window=(0, 1),
                            n_realisations=2, N=256, folded=False, fit_points=3)
    with pytest.raises(ValueError, match="different u grids"):
        FluxEnsemble.from_measurements(list(ens.measurements) + [other])
    with pytest.raises(ValueError, match="repeat"):
        FluxEnsemble.from_measurements(list(ens.measurements[:2]) * 2)
    fit = extrapolate_inverse_N(ens)
    with pytest.raises(ValueError, match="predicted_flux has shape"):
        compare(truth_a(U[:-1]), fit)
    with pytest.raises(ValueError, match=r"u \(the predicted flux's grid"):
        compare(truth_a(U), fit, u=U * 1.1)
    with pytest.raises(ValueError, match="extrapolate_inverse_N"):
        compare(truth_a(U), ens)
    with pytest.raises(ValueError, match="points"):
        compare(truth_a(U), fit, points=np.ones(3, dtype=bool))
    bad = truth_a(U).copy()
    bad[30] = np.nan
    with pytest.raises(ValueError, match="predicted_flux is not finite"):
        compare(bad, fit)


def test_flux_ensemble_rejects_bad_set_up_before_running():
    df = GeneralizedGaussian(4, math.sqrt(2.0))
    kw = dict(backend="numpy", progress=False)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="window"):
        flux_ensemble(HMF(), df, (8, 16), 4, 20.0, 0.1, (5.0, 30.0), **kw)
    with pytest.raises(ValueError, match="window"):
        flux_ensemble(HMF(), df, (8, 16), 4, 20.0, 0.1, (10.0, 5.0), **kw)
    with pytest.raises(ValueError, match="window .* holds 1 of the 5 snapshots"):
        flux_ensemble(HMF(), df, (8, 16), 4, 20.0, 0.1, (4.0, 6.0), n_snapshots=5, **kw)
    with pytest.raises(ValueError, match="Ns must not repeat"):
        flux_ensemble(HMF(), df, (8, 8), 4, 20.0, 0.1, (5.0, 20.0), **kw)
    with pytest.raises(ValueError, match="Ns must hold integers N >= 2"):
        flux_ensemble(HMF(), df, (1, 8), 4, 20.0, 0.1, (5.0, 20.0), **kw)
    with pytest.raises(ValueError, match=r"R \(a mapping N -> realisations\) has no entry for N = \[16\]"):
        flux_ensemble(HMF(), df, (8, 16), {8: 4}, 20.0, 0.1, (5.0, 20.0), **kw)
    with pytest.raises(ValueError, match="R has 3 values"):
        flux_ensemble(HMF(), df, (8, 16), [4, 4, 4], 20.0, 0.1, (5.0, 20.0), **kw)
    with pytest.raises(ValueError, match="u_grid"):
        flux_ensemble(HMF(), df, (8, 16), 4, 20.0, 0.1, (5.0, 20.0), u_grid=[1.0, 0.0], **kw)
    assert time.perf_counter() - start < 5.0  # nothing was simulated


# ---------------------------------------------------------------------------------- real runs
@pytest.fixture(scope="module")
def tiny():
    df = GeneralizedGaussian(4, math.sqrt(2.0))
    u = np.linspace(-3.0, 3.0, 21) * df.sigma
    return flux_ensemble(HMF(), df, (16, 8), 16, 20.0, 0.1, (5.0, 20.0), backend="numpy", seed=7, u_grid=u,
                         progress=False, n_snapshots=21, n_boot=200)


def test_tiny_real_ensemble_shapes_seeds_and_json(tiny, tmp_path):
    ens = tiny
    assert ens.Ns == (8, 16) and ens.Rs == (16, 16) and ens.units == "t"
    assert ens.seeds == (derived_seed(7, 8), derived_seed(7, 16)) and ens.seeds[0] != ens.seeds[1]
    assert ens.n2_flux.shape == ens.n2_err.shape == (2, 21)
    assert ens.folded and np.allclose(ens.n2_flux, -ens.n2_flux[:, ::-1])
    assert all(c.shape == (21, 21) for c in ens.covariances)
    assert all(sup.shape == (21,) and sup.max() <= 16 for sup in ens.supports)
    assert all(t > 0 for t in ens.wall_times) and all(r > 0 for r in ens.particle_steps_per_s)
    assert all(e < 1e-3 for e in ens.energy_errors) and all(np.isfinite(ens.even_chi2_dof))
    np.testing.assert_allclose(np.sqrt(np.diag(ens.covariances[1])) * 256, ens.n2_err[1], rtol=0.5, atol=1e-12)
    data = json.loads(json.dumps(ens.to_dict(include_covariances=True), allow_nan=False))
    back = FluxEnsemble.from_dict(data)
    np.testing.assert_allclose(back.n2_flux, ens.n2_flux)
    np.testing.assert_allclose(back.covariances[0], ens.covariances[0])
    np.testing.assert_array_equal(back.supports[1], ens.supports[1])
    lean = FluxEnsemble.from_dict(json.loads(json.dumps(ens.to_dict(), allow_nan=False)))
    assert lean.covariances == (None, None)
    np.testing.assert_array_equal(lean.supports[0], ens.supports[0])
    # the layout written before covariance and support moved into the measurement
    old = json.loads(json.dumps(ens.to_dict(), allow_nan=False))
    for e, c, sup in zip(old["per_N"], ens.covariances, ens.supports):
        e["measurement"].pop("support")
        e["covariance"], e["support"] = c.tolist(), sup.tolist()
    older = FluxEnsemble.from_dict(old)
    np.testing.assert_allclose(older.covariances[1], ens.covariances[1])
    np.testing.assert_array_equal(older.supports[1], ens.supports[1])
    fit = extrapolate_inverse_N(ens)
    assert isinstance(fit, InverseNFit) and fit.a.shape == (21,) and fit.dof == 0
    write_json(fit, tmp_path / "fit.json")
    assert json.loads((tmp_path / "fit.json").read_text())["Ns"] == [8, 16]
    png = plot_ensemble(ens, tmp_path / "f.png", fit=fit, predicted=np.zeros(21))
    assert png.stat().st_size > 1000


def test_tiny_real_ensemble_is_reproducible(tiny):
    df = GeneralizedGaussian(4, math.sqrt(2.0))
    again = flux_ensemble(HMF(), df, (8, 16), 16, 20.0, 0.1, (5.0, 20.0), backend="numpy", seed=7, u_grid=tiny.u,
                          progress=False, n_snapshots=21, n_boot=200)
    np.testing.assert_array_equal(again.n2_flux, tiny.n2_flux)


def test_flux_ensemble_with_windows_matched_per_N_is_the_runs_made_one_by_one(tiny, tmp_path):
    """t_end and window given per N run each N exactly as a run of that N alone would (same derived
    seed): N = 16 over its own window is the tiny fixture's N = 16; the ensemble records each window."""
    df = GeneralizedGaussian(4, math.sqrt(2.0))
    kw = dict(backend="numpy", seed=7, u_grid=tiny.u, progress=False, n_snapshots=21, n_boot=200)
    ens = flux_ensemble(HMF(), df, (8, 16), 16, {8: 10.0, 16: 20.0}, 0.1, {8: (2.5, 10.0), 16: (5.0, 20.0)}, **kw)
    alone = flux_ensemble(HMF(), df, (8,), 16, 10.0, 0.1, (2.5, 10.0), **kw)
    assert ens.windows == ((2.5, 10.0), (5.0, 20.0)) and ens.window == (2.5, 10.0)
    np.testing.assert_array_equal(ens.n2_flux[1], tiny.n2_flux[1])
    np.testing.assert_array_equal(ens.n2_flux[0], alone.n2_flux[0])
    assert ens.params["t_end"] == [10.0, 20.0] and ens.params["window"] == [[2.5, 10.0], [5.0, 20.0]]
    assert tiny.params["t_end"] == 20.0 and tiny.params["window"] == [5.0, 20.0]
    data = json.loads(json.dumps(ens.to_dict(), allow_nan=False))
    assert data["window"] == [[2.5, 10.0], [5.0, 20.0]]
    assert FluxEnsemble.from_dict(data).windows == ens.windows
    assert plot_ensemble(ens, tmp_path / "m.png").stat().st_size > 1000
    with pytest.raises(ValueError, match=r"window \(a mapping N -> window\) has no entry for N = \[16\]"):
        flux_ensemble(HMF(), df, (8, 16), 16, 20.0, 0.1, {8: (2.5, 10.0)}, **kw)
    with pytest.raises(ValueError, match="not inside the run"):
        flux_ensemble(HMF(), df, (8, 16), 16, {8: 10.0, 16: 20.0}, 0.1, (5.0, 20.0), **kw)


def test_matched_windows_reproduce_the_stored_runs_rule():
    """t1 = fraction N^2 / |peak N^2 F|, rounded up to a multiple of dt: with the stored HMF Q = 5
    prediction and the fraction of the N = 512 run it gives the stored N = 128, 256 windows (3275,
    13100, 52400: one fraction, 6.03e-4, at every N); short windows start at t1 / 4; bad inputs are
    refused by name."""
    from numerics.validate import matched_windows

    stored = Path(__file__).resolve().parents[1] / "examples" / "results" / "flux_vs_nbody_Q5_N512"
    peak = max(abs(x) for x in json.loads((stored / "flux_vs_nbody.json").read_text())["prediction"]["N2_flux"])
    got = matched_windows(-peak, [512, 128, 256], 52400.0 * peak / 512**2, dt=0.1)
    assert list(got) == [128, 256, 512] and all(w[0] == 100.0 for w in got.values())
    assert [got[n][1] for n in (128, 256, 512)] == [3275.0, 13100.0, 52400.0]
    for n, (t0, t1) in matched_windows(0.01, [8, 64, 100], 1e-3, dt=0.3).items():
        assert t1 >= 1e-3 * n * n / 0.01 - 1e-9 and t1 - 0.3 < 1e-3 * n * n / 0.01
        assert abs(t1 / 0.3 - round(t1 / 0.3)) < 1e-9 and t0 == min(100.0, t1 / 4)
    for kwargs, match in [(dict(peak_n2_flux=0.0), "peak_n2_flux"), (dict(peak_n2_flux=float("nan")), "peak_n2_flux"),
                          (dict(fraction=0.0), r"fraction must lie in \(0, 1\)"), (dict(fraction=1.5), "fraction"),
                          (dict(dt=0.0), "dt"), (dict(Ns=[1]), "Ns"), (dict(t0=-1.0), "t0")]:
        args = dict(peak_n2_flux=0.01, Ns=[64], fraction=1e-3, dt=0.1) | kwargs
        with pytest.raises(ValueError, match=match):
            matched_windows(args.pop("peak_n2_flux"), args.pop("Ns"), args.pop("fraction"), **args)


def test_rescaled_and_scaled_profile(tiny):
    s = 2.0
    r = tiny.rescaled(s)
    assert r.units == "tau" and r.window == (10.0, 40.0)
    np.testing.assert_allclose(r.u, tiny.u / s)
    np.testing.assert_allclose(r.n2_flux, tiny.n2_flux / s)
    np.testing.assert_allclose(r.covariances[0], tiny.covariances[0] / s**2)
    with pytest.raises(ValueError, match="already"):
        r.rescaled(s)
    g = scaled_profile(GeneralizedGaussian(4, 1.0), 3.0)
    assert g.n == 4 and g.sigma == 3.0
    t = Tabulated(np.linspace(-3, 3, 61), np.exp(-np.linspace(-3, 3, 61) ** 2 / 2))
    t2 = scaled_profile(t, 2.0 * t.sigma)
    assert t2.sigma == pytest.approx(2.0 * t.sigma, rel=1e-6)
    assert t2.pdf(2.0) == pytest.approx(t.pdf(1.0) / 2.0, rel=1e-6)


def test_q_scaling_tiny_run_in_tau_units():
    res = q_scaling(HMF(), GeneralizedGaussian(4), (4.0, 8.0), (8,), 16, 20.0, 0.1, (5.0, 20.0),
                    w_grid=np.linspace(-3, 3, 13), backend="numpy", progress=False, n_snapshots=11, n_boot=100)
    assert res.sigmas == pytest.approx((math.sqrt(2.0), 2.0))
    assert [e.units for e in res.ensembles] == ["tau", "tau"]
    assert [e.params["Q"] for e in res.ensembles] == [4.0, 8.0]
    np.testing.assert_allclose(res.ensembles[1].u, np.linspace(-3, 3, 13))
    assert res.ensembles[1].window == pytest.approx((5.0, 20.0))
    assert res.ratios[0] == pytest.approx(1.0) and math.isfinite(res.ratios[1])
    assert res.expected_ratios == pytest.approx((1.0, 1 / 16))
    json.dumps(res.to_dict(), allow_nan=False)


# ---------------------------------------------------------------------------------- slow: CPU-sized run
def _load_example():
    path = Path(__file__).resolve().parents[1] / "examples" / "nbody_scaling.py"
    spec = importlib.util.spec_from_file_location("nbody_scaling_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_cpu_sized_scaling_run(tmp_path):
    """The example's default run (HMF, n = 4, Q = 4, N = 16, 32, 64; a few minutes on 2 cores with JAX).

    Checked, as verified on such runs: the measured flux is odd (folded, and the even part of the
    unfolded flux is consistent with 0), the N -> oo intercept has S/N >= 2 at its peak, and that
    peak, on u > 0, is negative (particles near |u| ~ sigma move toward u = 0).
    """
    example = _load_example()
    assert example.main(["--out", str(tmp_path), "--no-progress"]) == 0
    ens = FluxEnsemble.from_dict(json.loads((tmp_path / "ensemble.json").read_text()))
    assert ens.folded and np.allclose(ens.n2_flux, -ens.n2_flux[:, ::-1], atol=0)
    assert all(c < 3.0 for c in ens.even_chi2_dof), ens.even_chi2_dof
    assert all(e < 1e-4 for e in ens.energy_errors)
    summary = json.loads((tmp_path / "summary.json").read_text())["fit_summary"]
    assert summary["snr_peak"] >= 2.0, summary
    assert summary["u_peak"] > 0 and summary["a_peak"] < 0, summary
    assert (tmp_path / "scaling.png").stat().st_size > 1000


# ---------------------------------------------------------------------------------- performance report
def test_performance_example_quick(tmp_path):
    """examples/performance.py --quick runs end to end and writes a consistent report.

    The figures of a quick run are too noisy to assert speed-ups (those are measured, not tested:
    README, "Performance"); what holds at any size: differencing within realisations beats the
    difference of independent ensembles, because each realisation keeps its initial sample of phi.
    """
    path = Path(__file__).resolve().parents[1] / "examples" / "performance.py"
    spec = importlib.util.spec_from_file_location("performance_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "performance.json").read_text())
    assert report["force"]["harmonic_over_direct"] > 0
    assert [b["R"] for b in report["batching"]["runs"]] == [1, 8]
    windows = report["statistics_run"]["windows"]
    assert [w["window"] for w in windows] == [[5.0, 30.0], [5.0, 60.0]]
    for w in windows:
        assert set(w["errors"]) == {"least_squares", "two_point", "two_point_unpaired"}
        assert all(e > 0 and math.isfinite(e) for e in w["errors"].values())
        assert w["pairing_gain_in_R"] > 1.0
    assert all(v > 0 for v in report["time_to_target_s"].values())
    with pytest.raises(SystemExit):
        module.main(["--quick", "--target", "0", "--out", str(tmp_path)])


# ------------------------------------------------------------- flux_vs_nbody.py --combine on stored runs
def test_flux_vs_nbody_combine_reproduces_the_stored_merge(tmp_path, capsys):
    """The stored HMF runs at N = 256 (seeds 0, 1, 2) and N = 128 (seeds 0, 21) merge, without a
    simulation, into the stored combined result (R = 8192 and 12288; ratio and chi^2 to rounding);
    a run given twice is refused (same seed, same realisations)."""
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("flux_vs_nbody_example", root / "examples" / "flux_vs_nbody.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stored = root / "examples" / "results"
    runs = [str(stored / d) for d in ("flux_vs_nbody_T6000", "flux_vs_nbody_T6000_N256_seed1",
                                      "flux_vs_nbody_T6000_N256_seed2", "flux_vs_nbody_T6000_N128_seed21")]
    base = ["--t-end", "6000", "--window", "100", "6000", "--out", str(tmp_path)]
    assert module.main(base + ["--combine", *runs]) == 0
    printed = capsys.readouterr().out
    assert "combined: N = 128, R = 12288" in printed and "combined: N = 256, R = 8192" in printed
    got = json.loads((tmp_path / "flux_vs_nbody.json").read_text())
    want = json.loads((stored / "flux_vs_nbody_T6000_combined" / "flux_vs_nbody.json").read_text())
    assert set(got["comparisons"]) == set(want["comparisons"])
    for label, c in want["comparisons"].items():
        for key in ("ratio_measured_over_predicted", "ratio_err", "chi2_dof", "chi2_dof_after_ratio"):
            assert got["comparisons"][label][key] == pytest.approx(c[key], rel=1e-9), (label, key)
    with pytest.raises(SystemExit, match="share a seed"):
        module.main(base + ["--combine", runs[1], runs[1]])


def _flux_vs_nbody_module():
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("flux_vs_nbody_example", root / "examples" / "flux_vs_nbody.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, root / "examples" / "results"


def test_flux_vs_nbody_combine_takes_single_N_and_recombines_combined_reports(tmp_path, capsys):
    """DIR:N takes one N from a report; a combined report records per N its realisations, seeds and
    window, so it combines again (and a run already inside it is refused as a shared seed); an older
    combined report without them is refused rather than read with the wrong R."""
    module, stored = _flux_vs_nbody_module()
    base = ["--t-end", "6000", "--window", "100", "6000", "--out", str(tmp_path / "out")]
    combined = stored / "flux_vs_nbody_T6000_combined"
    assert module.main(base + ["--combine", f"{combined}:128", f"{combined}:256"]) == 0
    got = json.loads((tmp_path / "out" / "flux_vs_nbody.json").read_text())["comparisons"]
    want = json.loads((combined / "flux_vs_nbody.json").read_text())["comparisons"]
    assert set(got) == {"N=128", "N=256", "1/N intercept"}
    for label in ("N=128", "N=256"):
        assert got[label]["ratio_measured_over_predicted"] == pytest.approx(
            want[label]["ratio_measured_over_predicted"], rel=1e-12)
    assert (got["N=128"]["n_realisations"], got["N=128"]["seeds"]) == (12288, [0, 21])
    assert (got["N=256"]["n_realisations"], got["N=256"]["seeds"]) == (8192, [0, 1, 2])
    with pytest.raises(SystemExit, match="share a seed"):
        module.main(base + ["--combine", f"{combined}:256", str(stored / "flux_vs_nbody_T6000_N256_seed1")])
    with pytest.raises(SystemExit, match="no comparison at N = 1024"):
        module.main(base + ["--combine", f"{combined}:1024"])
    old = json.loads((combined / "flux_vs_nbody.json").read_text())
    for c in old["comparisons"].values():
        for key in ("n_realisations", "seeds", "window"):
            c.pop(key, None)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "flux_vs_nbody.json").write_text(json.dumps(old))
    with pytest.raises(SystemExit, match="older combined .or re-compared. report"):
        module.main(base + ["--combine", str(tmp_path / "old")])
    capsys.readouterr()


def test_flux_vs_nbody_matched_windows_extrapolates_the_stored_Q2_runs(tmp_path, capsys):
    """The HMF Q = 2 runs at N = 128-2048 have windows t1 proportional to N^2: without
    --matched-windows they are refused, with it they are extrapolated in 1/N (the stored report
    flux_vs_nbody_Q2_inverse_N), each N keeping its own window; the intercept at the measured peak
    equals an independent weighted straight-line fit in 1/N (numpy.polyfit) of the stored per-N values."""
    module, stored = _flux_vs_nbody_module()
    runs = [str(stored / f"flux_vs_nbody_Q2_N{n}") for n in (128, 256, 512, 1024, 2048)]
    base = ["--Q", "2", "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match="window"):
        module.main(base + ["--combine", *runs])
    with pytest.raises(SystemExit):  # --matched-windows needs --combine
        module.parse_args(base + ["--matched-windows"])
    assert module.main(base + ["--matched-windows", "--combine", *runs]) == 0
    got = json.loads((tmp_path / "flux_vs_nbody.json").read_text())["comparisons"]
    want = json.loads((stored / "flux_vs_nbody_Q2_inverse_N" / "flux_vs_nbody.json").read_text())["comparisons"]
    windows = [tuple(got[f"N={n}"]["window"]) for n in (128, 256, 512, 1024, 2048)]
    assert windows == [(20.0, 132.0), (100.0, 530.0), (100.0, 2120.0), (100.0, 8480.0), (100.0, 33920.0)]
    c = got["1/N intercept"]
    for key in ("ratio_measured_over_predicted", "ratio_err", "chi2_dof", "chi2_dof_after_ratio"):
        assert c[key] == pytest.approx(want["1/N intercept"][key], rel=1e-9)
    assert c["fit"]["Ns"] == [128, 256, 512, 1024, 2048] and c["fit"]["dof_per_point"] == 3
    u = np.asarray(c["u"])
    j = int(np.argmin(np.abs(u - c["fit"]["u_peak"])))
    Ns = np.array([128, 256, 512, 1024, 2048], dtype=float)
    y = np.array([got[f"N={n}"]["measured_values"][j] for n in Ns.astype(int)])
    e = np.array([got[f"N={n}"]["measured_err"][j] for n in Ns.astype(int)])
    slope, intercept = np.polyfit(1.0 / Ns, y, 1, w=1.0 / e)
    assert c["fit"]["a_peak"] == pytest.approx(intercept, rel=1e-9)
    assert c["measured_values"][j] == pytest.approx(intercept, rel=1e-9)
    capsys.readouterr()


def test_flux_vs_nbody_matched_fraction_runs_each_N_over_its_own_window(tmp_path, capsys):
    """--matched-fraction F: each N runs to t1 = F N^2 / |peak N^2 F| and is fitted over its own
    window; the report records the windows, and combining it needs --matched-windows."""
    module, _ = _flux_vs_nbody_module()
    out = tmp_path / "run"
    argv = ["--Ns", "8", "16", "--R", "32", "--matched-fraction", "2e-3", "--backend", "numpy", "--no-progress",
            "--u-points", "21"]
    assert module.main(argv + ["--out", str(out)]) == 0
    report = json.loads((out / "flux_vs_nbody.json").read_text())
    peak = max(abs(x) for x in report["prediction"]["N2_flux"])
    for n in (8, 16):
        t0, t1 = report["comparisons"][f"N={n}"]["window"]
        assert t1 == pytest.approx(2e-3 * n * n / peak, abs=0.1) and t0 == pytest.approx(t1 / 4)
    assert report["args"]["matched_fraction"] == 2e-3 and report["args"]["window"] is None
    combine = ["--u-points", "21", "--out", str(tmp_path / "again"), "--combine", str(out)]
    with pytest.raises(SystemExit, match="combine it with --matched-windows"):
        module.main(combine)
    assert module.main(combine + ["--matched-windows"]) == 0
    again = json.loads((tmp_path / "again" / "flux_vs_nbody.json").read_text())["comparisons"]
    assert again["N=16"]["measured_values"] == report["comparisons"]["N=16"]["measured_values"]
    for bad in (["--t-end", "100"], ["--window", "1", "2"], ["--combine", str(out)]):
        with pytest.raises(SystemExit):
            module.parse_args(argv + bad)
    with pytest.raises(SystemExit):
        module.parse_args(["--matched-fraction", "1.5"])
    capsys.readouterr()


# ---------------------------------------------------------------- merging runs at one N (merge_runs)
def _runs_from_slopes(slopes: np.ndarray, splits, *, N: int = 64, window=(100.0, 1500.0)):
    """FluxMeasurements of per-realisation flux samples (R x U), split into independent 'runs'
    with the textbook standard error as a symmetric band."""
    out = []
    for part in np.split(slopes, splits):
        mean = part.mean(axis=0)
        err = part.std(axis=0, ddof=1) / math.sqrt(part.shape[0])
        out.append(FluxMeasurement(u=U, flux=mean, lower=mean - err, upper=mean + err, window=window,
                                   n_realisations=part.shape[0], N=N, folded=True, fit_points=20))
    return out


def test_merge_runs_is_the_run_over_all_realisations():
    """Runs cut from one sample merge into that sample's mean exactly, and into its standard error
    to within the scatter of an error estimate (R = 3000: a few per cent)."""
    from numerics.validate import merge_runs

    rng = np.random.default_rng(11)
    slopes = truth_a(U) + 0.05 * rng.standard_normal((3000, U.size))
    whole = _runs_from_slopes(slopes, [])[0]
    parts = _runs_from_slopes(slopes, [500, 1700])  # R = 500, 1200, 1300: unequal on purpose
    merged = merge_runs(parts, seeds=[0, 1, 2])
    assert merged.n_realisations == 3000 and merged.N == 64 and merged.folded and merged.n_boot == 0
    np.testing.assert_allclose(merged.flux, whole.flux, rtol=0, atol=1e-15)
    np.testing.assert_allclose(merged.stderr, whole.stderr, rtol=0.08)
    np.testing.assert_allclose(0.5 * (merged.lower + merged.upper), merged.flux, atol=1e-15)  # symmetric band
    # the weights are R, not 1/err^2: an unweighted mean of the parts differs from the sample mean
    plain = np.mean([p.flux for p in parts], axis=0)
    assert np.max(np.abs(plain - whole.flux)) > 1e-4
    # one run merges into itself
    single = merge_runs(parts[:1], seeds=[5])
    np.testing.assert_array_equal(single.flux, parts[0].flux)
    np.testing.assert_allclose(single.stderr, parts[0].stderr, rtol=1e-14)


@pytest.mark.parametrize("change, seeds, match", [
    ({}, [3, 3], "seeds repeat"),
    ({"N": 128}, [0, 1], "N = 128"),
    ({"u": U * 1.01}, [0, 1], "u grid"),
    ({"window": (100.0, 3000.0)}, [0, 1], "window"),
    ({"folded": False}, [0, 1], "folding"),
    ({}, [0], "one seed per run"),
])
def test_merge_runs_refuses_runs_that_are_not_one_setup(change, seeds, match):
    from dataclasses import replace as dc_replace

    from numerics.validate import merge_runs

    rng = np.random.default_rng(2)
    a, b = _runs_from_slopes(truth_a(U) + 0.05 * rng.standard_normal((200, U.size)), [100])
    with pytest.raises(ValueError, match=match):
        merge_runs([a, dc_replace(b, **change)], seeds=seeds)


def test_merge_runs_needs_runs_at_a_known_n():
    from dataclasses import replace as dc_replace

    from numerics.validate import merge_runs

    a, = _runs_from_slopes(np.ones((4, U.size)) + np.arange(4)[:, None], [])
    with pytest.raises(ValueError, match="empty"):
        merge_runs([], seeds=[])
    with pytest.raises(ValueError, match="does not record N"):
        merge_runs([dc_replace(a, N=None)], seeds=[0])
    with pytest.raises(TypeError, match="not a FluxMeasurement"):
        merge_runs([a, {"flux": a.flux}], seeds=[0, 1])


# ---------------------------------------------------------------- the prediction (predict_n2_flux)
def test_hot_profile_has_the_requested_Q():
    from numerics.models.stability import Q as stability_Q
    from numerics.validate import hot_profile

    for q in (2.0, 4.0, 8.0):
        df = hot_profile(HMF(), q)
        assert df.sigma == pytest.approx(math.sqrt(q / 2.0), rel=1e-14)  # HMF: U* = 1/2
        assert stability_Q(HMF(), df) == pytest.approx(q, rel=1e-12)
    for bad in (0.0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="Q must be a finite number > 0"):
            hot_profile(HMF(), bad)


def test_predict_n2_flux_odd_extension_and_galilean_shift():
    """Even profile: the operator is evaluated once per distinct |u| > 0 (linspace rounding
    included) and the grid holds the odd extension, equal to 4 x flux(N = 2) evaluated directly at
    -u. A shifted profile is not even: every point is evaluated, and the flux is the unshifted
    one at u - shift (Galilean invariance of the operator)."""
    from numerics.kinetic import flux
    from numerics.models import Shifted
    from numerics.validate import hot_profile, predict_n2_flux

    df = hot_profile(HMF(), 4.0)
    u = np.linspace(-2.0 * df.sigma, 2.0 * df.sigma, 5)
    p = predict_n2_flux(HMF(), df, u)
    assert p.evaluated.size == 2 and p.n2_flux[2] == 0.0
    direct = 4.0 * flux(HMF(), df, u[:2], N=2.0).flux
    np.testing.assert_allclose(p.n2_flux[:2], direct, rtol=1e-8, atol=1e-8 * np.max(np.abs(direct)))
    np.testing.assert_allclose(p.n2_flux[::-1], -p.n2_flux, rtol=1e-12)
    assert p.peak[0] > 0 and abs(p.peak[1]) == np.max(np.abs(p.n2_flux))

    shift = 0.4
    v = np.array([-0.5, 0.3, 1.1])
    moved = predict_n2_flux(HMF(), Shifted(df, shift), v)
    assert moved.evaluated.size == 3
    base = predict_n2_flux(HMF(), df, v - shift)
    np.testing.assert_allclose(moved.n2_flux, base.n2_flux, rtol=1e-6, atol=1e-6 * np.max(np.abs(p.n2_flux)))
    with pytest.raises(ValueError, match="u must be a non-empty 1-D array"):
        predict_n2_flux(HMF(), df, [[0.1, 0.2]])
    with pytest.raises(ValueError, match="no point other than 0"):
        predict_n2_flux(HMF(), df, [0.0])


def test_predict_n2_flux_carries_the_collective_indicator():
    """The prediction says how large the neglected collective effects may be: the static dressing
    indicator of the state ((1 - Q_c/Q)^-4 for the HMF), also in to_dict; below Q_c, evaluated only
    on request (allow_unstable), there is none."""
    import warnings

    from numerics.models.stability import critical_Q
    from numerics.validate import hot_profile, predict_n2_flux

    df = hot_profile(HMF(), 4.0)
    p = predict_n2_flux(HMF(), df, np.array([0.5, 1.0]))
    assert p.collective["indicator"] == pytest.approx((1.0 - critical_Q(df) / 4.0) ** -4, rel=1e-10)
    stored = p.to_dict()["collective_indicator"]
    assert stored["k"] == 1 and stored["indicator"] == p.collective["indicator"] and stored["eps"][1] == 0.0
    json.dumps(p.to_dict())
    cold = hot_profile(HMF(), 0.9 * critical_Q(df))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        q = predict_n2_flux(HMF(), cold, np.array([0.5]), allow_unstable=True)
    assert q.collective is None and q.to_dict()["collective_indicator"] is None


# ---------------------------------------------------------------- q_dependence.py on stored runs
def test_q_dependence_example_on_stored_runs(tmp_path):
    """examples/q_dependence.py tabulates stored comparisons at one N against Q/Q_c: the rows
    reproduce the stored ratios, the indicators follow (1 - Q_c/Q)^-4, the Q exponent is -4 plus
    the slope of ln(ratio) (two points: exact), and bad input is refused."""
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("q_dependence_example", root / "examples" / "q_dependence.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stored = root / "examples" / "results"
    runs = [str(stored / "flux_vs_nbody_Q2"), str(stored / "flux_vs_nbody")]  # N = 64 at Q = 2 and Q = 4
    assert module.main(["--N", "64", "128", "--out", str(tmp_path), *runs]) == 0
    report = json.loads((tmp_path / "q_dependence.json").read_text())
    assert report["Ns"] == [64, 128]
    assert [(r["N"], r["Q"]) for r in report["rows"]] == [(64, 2.0), (64, 4.0), (128, 4.0)]
    assert list(report["q_exponent"]) == ["64"]  # one Q at N = 128: no exponent
    rows = report["rows"][:2]
    for r, d in zip(rows, runs):
        c = json.loads((Path(d) / "flux_vs_nbody.json").read_text())["comparisons"]["N=64"]
        assert r["ratio"] == c["ratio_measured_over_predicted"]
        assert r["eps1_static_inv4"] == pytest.approx((1.0 - 1.0 / r["Q_over_Qc"]) ** -4, rel=1e-6)
        assert r["eps1_at_peak_inv4"] > 1.0
    assert rows[0]["Q_c"] == pytest.approx(0.457, abs=1e-3)  # generalised Gaussian n = 4 (PHYSICS.md)
    slope = math.log(rows[1]["ratio"] / rows[0]["ratio"]) / math.log(2.0)
    assert report["q_exponent"]["64"]["measured_exponent"] == pytest.approx(-4.0 + slope, rel=1e-9)
    assert (tmp_path / "q_dependence.png").stat().st_size > 1000
    assert report["n_fits"] == {}  # no Q with three N here
    # Q = 2 at three N: the 1/N fit is the weighted line in 1/N of the stored ratios
    q2 = [str(stored / f"flux_vs_nbody_Q2_N{n}") for n in (128, 256, 512)]
    assert module.main(["--N", "128", "256", "512", "--out", str(tmp_path / "q2"), *q2]) == 0
    fits = json.loads((tmp_path / "q2" / "q_dependence.json").read_text())["n_fits"]["2"]
    cs = [json.loads((Path(d) / "flux_vs_nbody.json").read_text())["comparisons"][f"N={n}"]
          for d, n in zip(q2, (128, 256, 512))]
    (b, a) = np.polyfit(1.0 / np.array([128, 256, 512]), [c["ratio_measured_over_predicted"] for c in cs], 1,
                        w=[1.0 / c["ratio_err"] for c in cs])
    assert fits["Ns"] == [128, 256, 512] and fits["a + b/N"]["a"] == pytest.approx(a, rel=1e-9)
    assert module.main(["--N", "64", "128", "--out", str(tmp_path), runs[0], runs[1] + ":128"]) == 0  # DIR:N
    assert [(r["N"], r["Q"]) for r in json.loads((tmp_path / "q_dependence.json").read_text())["rows"]] == [
        (64, 2.0), (128, 4.0)]
    with pytest.raises(SystemExit, match="share a value of Q"):
        module.main(["--N", "64", "--out", str(tmp_path), runs[1], runs[1]])
    with pytest.raises(SystemExit, match="not among --N"):
        module.main(["--N", "64", "--out", str(tmp_path), runs[1] + ":128"])
    with pytest.raises(SystemExit, match="no comparison at N = 256"):
        module.main(["--N", "256", "--out", str(tmp_path), runs[0]])
    with pytest.raises(SystemExit, match="potential"):
        module.main(["--N", "64", "--out", str(tmp_path), runs[0], str(stored / "flux_vs_nbody_ring")])


# ---------------------------------------------------------------- window_scan.py on a tiny stored run
def test_window_scan_example_on_a_tiny_run(tmp_path):
    """examples/window_scan.py splits a stored run into sub-windows, compares each with the
    prediction and fits a trend; the sub-window fluxes are those measure_flux gives directly."""
    from numerics.nbody import measure_flux, simulate
    from numerics.validate import hot_profile

    df = hot_profile(HMF(), 4.0)
    u = np.linspace(-3 * df.sigma, 3 * df.sigma, 21)
    run = simulate(HMF(), df, 16, 64, 60.0, 0.1, backend="numpy", seed=3, n_snapshots=31, u_grid=u, progress=False)
    path = run.save(tmp_path / "run_N16.npz")
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("window_scan_example", root / "examples" / "window_scan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(path), "--t0", "6", "--split", "3", "--n-boot", "50", "--out", str(tmp_path / "ws")]) == 0
    report = json.loads((tmp_path / "ws" / "window_scan.json").read_text())
    assert [r["window"] for r in report["rows"]] == [[6.0, 24.0], [24.0, 42.0], [42.0, 60.0]]
    m = measure_flux(run, (24.0, 42.0), n_boot=50)
    j = int(np.argmax(np.abs(np.asarray(report["prediction"]["N2_flux"])) * (u > 0)))
    assert report["rows"][1]["at_predicted_peak"] == pytest.approx(
        256 * m.flux[j] / report["prediction"]["N2_flux"][j], rel=1e-12)
    assert math.isfinite(report["trend"]["slope_sigmas"]) and report["N"] == 16 and report["R"] == 64
    assert (tmp_path / "ws" / "window_scan.png").stat().st_size > 1000
    with pytest.raises(SystemExit):
        module.main([str(path), "--split", "1"])
    with pytest.raises(SystemExit, match="--t0 must lie in"):
        module.main([str(path), "--t0", "60", "--out", str(tmp_path / "ws")])


def test_weighted_line_fit_against_numpy_polyfit():
    """a, b agree with numpy.polyfit(w = 1/err); errors with its unscaled covariance; chi^2 by hand."""
    from numerics.validate import weighted_line_fit

    rng = np.random.default_rng(4)
    x = np.linspace(0.0, 3.0, 7)
    err = 0.05 + 0.1 * rng.random(7)
    y = 0.4 - 1.3 * x + err * rng.standard_normal(7)
    fit = weighted_line_fit(x, y, err)
    (b, a), cov = np.polyfit(x, y, 1, w=1.0 / err, cov="unscaled")
    assert fit["a"] == pytest.approx(a, rel=1e-10) and fit["b"] == pytest.approx(b, rel=1e-10)
    assert fit["a_err"] == pytest.approx(math.sqrt(cov[1, 1]), rel=1e-8)
    assert fit["b_err"] == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-8)
    assert fit["chi2_dof"] == pytest.approx(np.sum(((y - a - b * x) / err) ** 2) / 5, rel=1e-10)
    assert weighted_line_fit([0.0, 1.0], [1.0, 2.0], [0.1, 0.1])["chi2_dof"] is None
    with pytest.raises(ValueError, match="err must be finite and > 0"):
        weighted_line_fit(x, y, np.zeros(7))
    with pytest.raises(ValueError, match="length >= 2"):
        weighted_line_fit([1.0], [1.0], [1.0])


# ---------------------------------------------------------------- Q -> oo extrapolation
def _hot_profiles(Qs, Q_c, slope, *, noise=0.0, seed=0, Ns=None, cn=0.0, dn=0.0):
    """Synthetic fluxes: the bare shape truth_a(w) scaled like sigma / Q^4, times 1 + slope Q_c/Q
    (N -> oo intercepts), or with Ns times 1 + slope Q_c/Q + cn/N + dn Q_c/(Q N) (N^2 F at each N)."""
    rng = np.random.default_rng(seed)
    out = []
    for q in Qs:
        for n in (Ns or [None]):
            sigma = math.sqrt(q / 2.0)
            scale = sigma / q**4
            bare = scale * truth_a(U)  # on the grid u = w sigma, U being w
            err = 0.05 * scale * np.max(np.abs(truth_a(U))) * np.exp(-0.25 * U**2)
            err[U == 0] = 0.0
            x = Q_c / q
            factor = 1.0 + slope * x + (0.0 if n is None else (cn + dn * x) / n)
            a = bare * factor + noise * err * rng.standard_normal(U.size)
            a[U == 0] = 0.0
            prof = {"Q": q, "sigma": sigma, "u": U * sigma, "n2_flux": a, "n2_err": err, "predicted": bare}
            if n is not None:
                prof["N"] = n
            out.append(prof)
    return out


def test_hot_limit_recovers_the_bare_shape_and_the_slope_exactly():
    from numerics.validate import HotLimitFit, extrapolate_hot_limit

    Q_c = 0.45
    fit = extrapolate_hot_limit(_hot_profiles([2.0, 2.5, 3.0, 4.0], Q_c, 3.8), Q_c)
    assert isinstance(fit, HotLimitFit) and fit.Qs == (4.0, 3.0, 2.5, 2.0) and fit.Q_ref == 4.0 and fit.dof == 2
    ref = truth_a(U) * math.sqrt(2.0) / 4.0**4
    np.testing.assert_allclose(fit.u, U * math.sqrt(2.0))
    np.testing.assert_allclose(fit.predicted, ref, rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(fit.a, ref, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(fit.b[fit.valid], 3.8 * ref[fit.valid], rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(fit.scales, [1.0, (3 / 4) ** -3.5, (2.5 / 4) ** -3.5, (2 / 4) ** -3.5], rtol=1e-9)
    assert fit.a[U == 0] == 0.0 and not fit.valid[U == 0]  # u = 0 of a folded profile: no error, no fit
    c = compare(fit.predicted, fit)
    assert c.chi2 < 1e-12 and "Q -> oo" in c.measured_label and math.isclose(c.ratio, 1.0, rel_tol=1e-9)


def test_hot_limit_matches_numpy_polyfit_and_has_honest_errors():
    from numerics.validate import extrapolate_hot_limit

    Q_c, Qs = 0.45, [2.0, 2.5, 3.0, 4.0, 5.0]
    profiles = _hot_profiles(Qs, Q_c, 3.8, noise=1.0, seed=3)
    fit = extrapolate_hot_limit(profiles, Q_c)
    j = int(np.argmax(np.abs(fit.predicted)))
    x = np.array([Q_c / p["Q"] for p in profiles])
    scale = np.array([p["predicted"][j] / fit.predicted[j] for p in profiles])
    y = np.array([p["n2_flux"][j] for p in profiles]) / scale
    s = np.array([p["n2_err"][j] for p in profiles]) / scale
    slope, intercept = np.polyfit(x, y, 1, w=1.0 / s)  # independent: numpy's weighted polyfit
    assert math.isclose(fit.a[j], intercept, rel_tol=1e-9) and math.isclose(fit.b[j], slope, rel_tol=1e-9)
    # the truth lies within the errors (20 independent points: |pull| < 4 everywhere, chi^2/dof near 1)
    use = fit.independent
    pulls = (fit.a[use] - fit.predicted[use]) / fit.a_err[use]
    assert np.all(np.abs(pulls) < 4.0) and 0.2 < np.mean(pulls**2) < 2.5
    assert 0.2 < fit.global_chi2_dof < 2.5
    summary = fit.summary()
    assert summary["Qs"] == [5.0, 4.0, 3.0, 2.5, 2.0] and summary["n_points"] == 20
    assert json.loads(json.dumps(fit.to_dict()))["Q_ref"] == 5.0


@pytest.mark.parametrize("change, match", [
    ("shape", "not one shape in u/sigma"),
    ("grid", "not the grid"),
    ("cold", "not above Q_c"),
    ("twice", r"a value of \(Q, N\) twice"),
    ("one", "at least 2 values of Q"),
    ("key", "lacks"),
])
def test_hot_limit_refuses_inputs_it_cannot_extrapolate(change, match):
    from numerics.validate import extrapolate_hot_limit

    Q_c = 0.45
    profiles = _hot_profiles([2.0, 3.0, 4.0], Q_c, 1.0)
    if change == "shape":
        profiles[1]["predicted"] = profiles[1]["predicted"] * (1.0 + 0.1 * U**2)
    elif change == "grid":
        profiles[1]["u"] = profiles[1]["u"] * 1.01
    elif change == "cold":
        profiles[0]["Q"] = 0.4
    elif change == "twice":
        profiles[1]["Q"] = 2.0
    elif change == "one":
        profiles = profiles[:1]
    else:
        del profiles[2]["n2_err"]
    with pytest.raises(ValueError, match=match):
        extrapolate_hot_limit(profiles, Q_c)
    with pytest.raises(ValueError, match="Q_c must be"):
        extrapolate_hot_limit(_hot_profiles([2.0, 3.0], Q_c, 1.0), -1.0)


def test_hot_limit_example_on_the_stored_intercepts(tmp_path, capsys):
    """examples/hot_limit.py on the stored 1/N intercepts at Q = 2-4: its Q -> oo value at the
    predicted peak is the weighted line in Q_c/Q (numpy.polyfit) of the stored intercepts over the
    stored bare predictions; the criterion is reported as computed; static dressing of the HMF is
    (1 - Q_c/Q)^-4; bad input is refused."""
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("hot_limit_example", root / "examples" / "hot_limit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stored = root / "examples" / "results"
    runs = [str(stored / f"flux_vs_nbody_Q{q}_inverse_N") for q in ("2", "2.5", "3", "4")]
    assert module.main(["--out", str(tmp_path), "--static-dressing", *runs]) == 0
    report = json.loads((tmp_path / "hot_limit.json").read_text())
    assert [r["Q"] for r in report["inputs"]] == [4.0, 3.0, 2.5, 2.0]
    assert report["Q_c"] == pytest.approx(0.457, abs=1e-3)
    # static dressing of the one HMF harmonic: the quartic flux scales by exactly (1 - Q_c/Q)^-4
    dressing = report["static_dressing"]
    xs = np.array([report["Q_c"] / r["Q"] for r in dressing["per_Q"]])
    np.testing.assert_allclose([r["static_ratio"] for r in dressing["per_Q"]], (1.0 - xs) ** -4, rtol=1e-9)
    assert dressing["c_first_order"] == pytest.approx(4.0, abs=2e-3)  # Richardson leaves -20 x^2 = -1e-3
    w = 1.0 / np.array([r["measured_err"] for r in dressing["per_Q"]])
    (c_static,), *_ = np.linalg.lstsq((xs * w)[:, None], ((1.0 - xs) ** -4 - 1.0) * w, rcond=None)
    assert dressing["c"] == pytest.approx(c_static, rel=1e-8)
    cs = [json.loads((Path(d) / "flux_vs_nbody.json").read_text())["comparisons"]["1/N intercept"] for d in runs]
    ref = np.array(cs[-1]["predicted"], dtype=float)  # Q = 4, the hottest
    j = int(np.argmax(np.abs(ref) * (np.array(cs[-1]["u"]) > 0)))
    scale = np.array([c["predicted"][j] / ref[j] for c in cs])
    y = np.array([c["measured_values"][j] for c in cs]) / scale
    s = np.array([c["measured_err"][j] for c in cs]) / np.abs(scale)
    x = report["Q_c"] / np.array([2.0, 2.5, 3.0, 4.0])
    slope, intercept = np.polyfit(x, y, 1, w=1.0 / s)
    fit = report["analyses"]["sequential"]["fit"]
    assert fit["a"][j] == pytest.approx(intercept, rel=1e-9) and fit["b"][j] == pytest.approx(slope, rel=1e-9)
    # the joint fit at the same point: one weighted least squares over every stored (Q, N)
    rows = _stored_rows(runs, (2.0, 2.5, 3.0, 4.0))
    joint = report["analyses"]["joint_shared"]
    assert len(rows) == 14 and joint["fit"]["a"][j] == pytest.approx(_joint_intercept(rows, j, report["Q_c"]), rel=1e-8)
    assert set(report["analyses"]) == {"sequential", "joint_shared", "joint_linear"}
    for analysis in report["analyses"].values():
        comparison, criterion = analysis["comparison"], analysis["criterion"]
        assert comparison["n_points"] == criterion["points"] == 20
        assert criterion["met"] == (criterion["chi2_dof"] <= 2 and criterion["snr_at_predicted_peak"] >= 5)
        assert criterion["chi2_cov_dof"] is None and criterion["statistic"].startswith("diagonal")
    assert report["analyses"]["joint_linear"]["D_test"]["n_points"] == 20
    assert report["amplitude_fit"]["a_err"] > 0 and (tmp_path / "hot_limit.png").stat().st_size > 1000
    r = np.array([c["ratio_measured_over_predicted"] for c in cs])
    e = np.array([c["ratio_err"] for c in cs])
    (c_lin,), *_ = np.linalg.lstsq((x / e)[:, None], (r - 1.0) / e, rcond=None)  # r = 1 + c x
    (p_law,), *_ = np.linalg.lstsq((-np.log1p(-x) * r / e)[:, None], np.log(r) * r / e, rcond=None)  # r = (1 - x)^-p
    models = report["amplitude_models"]
    assert models["1 + c Q_c/Q"]["value"] == pytest.approx(c_lin, rel=1e-9)
    assert models["(1 - Q_c/Q)^-p"]["value"] == pytest.approx(p_law, rel=1e-9)
    assert "criterion" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="two or more reports with a '1/N intercept'"):
        module.main(["--out", str(tmp_path), runs[0], str(stored / "flux_vs_nbody_Q5_N256")])
    with pytest.raises(SystemExit, match="potential"):
        module.main(["--out", str(tmp_path), runs[0], str(stored / "flux_vs_nbody_ring_inverse_N_T4000")])
    # a report at one N (Q = 5, N = 256) enters the joint fits only, which are then in the units of Q = 5
    single = str(stored / "flux_vs_nbody_Q5_N256")
    assert module.main(["--out", str(tmp_path / "single"), *runs, single]) == 0
    more = json.loads((tmp_path / "single" / "hot_limit.json").read_text())
    assert [r["Q"] for r in more["inputs"]] == [4.0, 3.0, 2.5, 2.0]
    assert [(r["Q"], r["N"]) for r in more["joint_only"]] == [(5.0, 256)]
    assert more["analyses"]["sequential"]["fit"]["a"][j] == pytest.approx(fit["a"][j], rel=1e-12)
    rows = _stored_rows(runs + [single], (2.0, 2.5, 3.0, 4.0, 5.0))
    assert len(rows) == 15 and more["analyses"]["joint_shared"]["fit"]["a"][j] == pytest.approx(
        _joint_intercept(rows, j, report["Q_c"]), rel=1e-8)
    capsys.readouterr()


def _stored_rows(runs, Qs):
    """(Q, N, comparison) for every per-N comparison stored in the reports."""
    return [(q, int(k[2:]), c) for d, q in zip(runs, Qs)
            for k, c in json.loads((Path(d) / "flux_vs_nbody.json").read_text())["comparisons"].items()
            if k.startswith("N=")]


def _joint_intercept(rows, j, Q_c):
    """Independent oracle of the joint shared-slope fit at point j: weighted least squares of
    A + B Q_c/Q + C/N over the rows, each N^2 F brought to the units of the hottest Q by the ratio
    of the stored bare predictions."""
    hottest = max(rows, key=lambda r: r[0])[2]["predicted"][j]
    sc = np.array([c["predicted"][j] / hottest for _, _, c in rows])
    M = np.stack([np.ones(len(rows)), [Q_c / q for q, _, _ in rows], [1.0 / n for _, n, _ in rows]], axis=1)
    w = (sc / np.array([c["measured_err"][j] for _, _, c in rows])) ** 2
    y = np.array([c["measured_values"][j] for _, _, c in rows]) / sc
    coef, *_ = np.linalg.lstsq(M * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)
    return coef[0]


@pytest.mark.parametrize("finite_n", ["shared", "linear"])
def test_hot_limit_jointly_in_N_and_Q_recovers_every_coefficient(finite_n):
    """N^2 F at several (Q, N): A + B Q_c/Q + C/N (+ D Q_c/(Q N)) recovered exactly; the shared
    model fitted to data whose 1/N slope moves with Q leaves a chi^2 that shows it."""
    from numerics.validate import extrapolate_hot_limit

    Q_c, dn = 0.45, (0.0 if finite_n == "shared" else -400.0)
    profiles = _hot_profiles([2.0, 3.0, 4.0], Q_c, 3.8, Ns=[64, 128, 256], cn=-60.0, dn=dn)
    fit = extrapolate_hot_limit(profiles, Q_c, finite_n=finite_n)
    ref = truth_a(U) * math.sqrt(2.0) / 4.0**4
    P = 3 if finite_n == "shared" else 4
    assert fit.coefficients.shape == (P, U.size) and fit.dof == 9 - P and len(fit.points) == 9
    v = fit.valid
    np.testing.assert_allclose(fit.a, ref, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(fit.coefficients[1, v], 3.8 * ref[v], rtol=1e-8)
    np.testing.assert_allclose(fit.coefficients[2, v], -60.0 * ref[v], rtol=1e-8)
    if finite_n == "linear":
        np.testing.assert_allclose(fit.coefficients[3, v], dn * ref[v], rtol=1e-8)
        shared = extrapolate_hot_limit(profiles, Q_c, finite_n="shared")
        assert np.nanmax(shared.chi2_dof) > 3.0  # noise-free data the shared model cannot fit
    else:
        assert np.nanmax(fit.chi2) < 1e-12
    assert "joint N, Q" in compare(fit.predicted, fit).measured_label


@pytest.mark.parametrize("change, match", [
    ("model", "finite_n must be one of"),
    ("no N", "lacks"),
    ("one N", "at least 2 values of N"),
    ("N given", "must be an N -> oo intercept"),
])
def test_hot_limit_joint_fit_refuses_what_it_cannot_fit(change, match):
    from numerics.validate import extrapolate_hot_limit

    Q_c = 0.45
    profiles = _hot_profiles([2.0, 4.0], Q_c, 1.0, Ns=[64, 128])
    finite_n = "shared"
    if change == "model":
        finite_n = "quadratic"
    elif change == "no N":
        del profiles[0]["N"]
    elif change == "one N":
        profiles = [p for p in profiles if p["N"] == 64]
    else:
        finite_n = None
    with pytest.raises(ValueError, match=match):
        extrapolate_hot_limit(profiles, Q_c, finite_n=finite_n)


# ---------------------------------------------------------------- covariance across u, end to end
def _correlated_cov(err: np.ndarray, rho: float = 0.7) -> np.ndarray:
    """Covariance with the given diagonal and correlation rho^|i-j| (neighbours correlated)."""
    i = np.arange(err.size)
    return np.outer(err, err) * rho ** np.abs(i[:, None] - i[None, :])


def test_measured_covariance_is_that_of_the_folded_slopes_and_survives_json(tiny, tmp_path):
    """measure_flux's covariance is Cov_r(folded per-realisation slopes) / R, its diagonal the
    bootstrap's variance to within the bootstrap's own scatter; stored runs re-measure to the same."""
    from numerics.nbody import measure_flux, simulate
    from numerics.nbody.measure import flux_slopes, fold_odd
    from numerics.validate import ensemble_from_runs

    df = GeneralizedGaussian(4, math.sqrt(2.0))
    u = np.linspace(-3.0, 3.0, 21) * df.sigma
    run = simulate(HMF(), df, 16, 64, 20.0, 0.1, backend="numpy", seed=3, n_snapshots=21, u_grid=u)
    m = measure_flux(run, (5.0, 20.0), n_boot=4000, seed=1)
    slopes, _ = flux_slopes(run.times, run.cumulative, (5.0, 20.0))
    np.testing.assert_allclose(m.covariance, np.cov(fold_odd(slopes), rowvar=False) / 64, rtol=1e-12, atol=1e-30)
    np.testing.assert_array_equal(m.support, np.count_nonzero(fold_odd(slopes), axis=0))
    assert m.support[u.size // 2] == 0 and m.support.max() <= 64  # F(0) of a folded profile is 0 by symmetry
    inner = np.abs(u) < 2.0 * df.sigma
    inner &= u != 0
    np.testing.assert_allclose(np.sqrt(np.diag(m.covariance))[inner], m.stderr[inner], rtol=0.15)
    back = FluxMeasurement.from_dict(json.loads(json.dumps(m.to_dict())))
    np.testing.assert_array_equal(back.covariance, m.covariance)
    assert "covariance" not in FluxMeasurement.from_dict({**m.to_dict(), "covariance": None}).to_dict()
    # the same run stored and re-measured: what flux_ensemble would have recorded
    run.save(tmp_path / "run_N16.npz")
    again = ensemble_from_runs([tmp_path / "run_N16.npz"], (5.0, 20.0), n_boot=200)
    fresh = measure_flux(run, (5.0, 20.0), n_boot=200, seed=int(run.params["seed"]))
    np.testing.assert_array_equal(again.measurements[0].flux, fresh.flux)
    np.testing.assert_array_equal(again.measurements[0].upper, fresh.upper)
    np.testing.assert_array_equal(again.covariances[0], fresh.covariance)
    np.testing.assert_array_equal(again.supports[0], fresh.support)
    assert again.Ns == (16,) and again.seeds == (int(run.params["seed"]),) and again.wall_times[0] == run.wall_time
    with pytest.raises(ValueError, match="window"):
        ensemble_from_runs([tmp_path / "run_N16.npz"], (5.0, 40.0))
    with pytest.raises(ValueError, match="empty"):
        ensemble_from_runs([], (5.0, 20.0))


def test_tiny_ensemble_carries_its_measurements_covariances(tiny):
    for m, c in zip(tiny.measurements, tiny.covariances):
        assert m.covariance is not None
        np.testing.assert_array_equal(c, m.covariance)
    # one source: covariances given to the ensemble are set on its measurements
    fake = [np.eye(21) * k for k in (1.0, 2.0)]
    again = FluxEnsemble.from_measurements(tiny.measurements, covariances=fake)
    assert again.measurement(16).covariance is fake[1] and again.covariances[0] is fake[0]
    with pytest.raises(ValueError, match="covariances has 1 entries"):
        FluxEnsemble.from_measurements(tiny.measurements, covariances=fake[:1])
    r = tiny.rescaled(2.0)
    np.testing.assert_allclose(r.measurements[1].covariance, tiny.measurements[1].covariance / 4.0)
    np.testing.assert_allclose(r.covariances[1], tiny.covariances[1] / 4.0)


def test_merge_runs_propagates_the_covariance_or_drops_it():
    from dataclasses import replace as dc_replace

    from numerics.validate import merge_runs

    rng = np.random.default_rng(5)
    slopes = truth_a(U) + 0.05 * rng.standard_normal((900, U.size))
    parts = [dc_replace(p, covariance=np.cov(s, rowvar=False) / s.shape[0])
             for p, s in zip(_runs_from_slopes(slopes, [200, 500]), np.split(slopes, [200, 500]))]
    merged = merge_runs(parts, seeds=[1, 2, 3])
    R = np.array([200.0, 300.0, 400.0])
    expected = sum((r / 900.0) ** 2 * p.covariance for r, p in zip(R, parts))
    np.testing.assert_allclose(merged.covariance, expected, rtol=1e-14)
    # the diagonal is the merged error squared (the parts' bands are their textbook standard errors)
    np.testing.assert_allclose(np.sqrt(np.diag(merged.covariance)), merged.stderr, rtol=1e-12)
    assert merge_runs([parts[0], dc_replace(parts[1], covariance=None)], seeds=[1, 2]).covariance is None


def test_merge_runs_adds_the_supports_or_drops_them():
    from numerics.validate import merge_runs

    rng = np.random.default_rng(6)
    slopes = truth_a(U) + 0.05 * rng.standard_normal((900, U.size))
    supports = [rng.integers(0, r + 1, U.size) for r in (200, 300, 400)]
    parts = [replace(p, support=sup) for p, sup in zip(_runs_from_slopes(slopes, [200, 500]), supports)]
    merged = merge_runs(parts, seeds=[1, 2, 3])
    np.testing.assert_array_equal(merged.support, supports[0] + supports[1] + supports[2])
    assert merge_runs([parts[0], replace(parts[1], support=None)], seeds=[1, 2]).support is None
    back = FluxMeasurement.from_dict(json.loads(json.dumps(merged.to_dict())))
    np.testing.assert_array_equal(back.support, merged.support)
    assert "support" not in replace(merged, support=None).to_dict()


def test_compare_uses_a_measurements_covariance():
    """chi2_cov = r^T C^-1 r over the compared points; with a diagonal C it is the plain chi^2."""
    N = 64
    err = 1e-6 * (1.0 + U**2)
    rng = np.random.default_rng(9)
    flux = truth_a(U) / N**2 + err * rng.standard_normal(U.size)
    base = FluxMeasurement(u=U, flux=flux, lower=flux - err, upper=flux + err, window=(0.0, 1.0), n_realisations=500,
                           N=N, folded=False, fit_points=10)
    assert compare(truth_a(U), base).chi2_cov is None
    from dataclasses import replace as dc_replace

    diag = compare(truth_a(U), dc_replace(base, covariance=np.diag(err**2)))
    assert math.isclose(diag.chi2_cov, diag.chi2, rel_tol=1e-10)
    # generalised least squares with a diagonal covariance is the weighted fit
    assert math.isclose(diag.ratio_cov, diag.ratio, rel_tol=1e-10)
    assert math.isclose(diag.ratio_cov_err, diag.ratio_err, rel_tol=1e-10)
    assert math.isclose(diag.chi2_cov_scaled, diag.chi2_scaled, rel_tol=1e-9)
    C = _correlated_cov(err)
    c = compare(truth_a(U), dc_replace(base, covariance=C), points=np.arange(10, 30))
    r = (N**2 * flux - truth_a(U))[10:30]
    by_hand = float(r @ np.linalg.solve(N**4 * C[10:30, 10:30], r))
    assert math.isclose(c.chi2_cov, by_hand, rel_tol=1e-9) and not math.isclose(c.chi2_cov, c.chi2, rel_tol=0.05)
    p = truth_a(U)[10:30]
    Ci = np.linalg.inv(N**4 * C[10:30, 10:30])
    m = (N**2 * flux)[10:30]
    A = float(p @ Ci @ m) / float(p @ Ci @ p)
    assert math.isclose(c.ratio_cov, A, rel_tol=1e-9)
    assert math.isclose(c.ratio_cov_err, 1.0 / math.sqrt(float(p @ Ci @ p)), rel_tol=1e-9)
    assert math.isclose(c.chi2_cov_scaled, float((m - A * p) @ Ci @ (m - A * p)), rel_tol=1e-8)
    assert "with the covariance" in str(c) and c.summary()["chi2_cov_dof_after_ratio"] == c.chi2_cov_scaled / 19
    stored = json.loads(json.dumps(c.to_dict()))
    np.testing.assert_allclose(np.array(stored["measured_cov"]), N**4 * C, rtol=1e-12)
    from scipy.stats import chi2 as chi2_law

    assert math.isclose(c.p_value, chi2_law.sf(c.chi2_cov, 20), rel_tol=1e-12)


@pytest.mark.parametrize("finite_n", [None, "shared"])
def test_hot_limit_propagates_the_profiles_covariances(finite_n):
    """A is linear in the profiles: its covariance across u is sum_p L_p C_p L_p^T, checked against
    the derivative dA(u)/dy_p(u) taken by finite differences; diagonal inputs give a_err^2."""
    from numerics.validate import extrapolate_hot_limit

    Q_c = 0.45
    profiles = _hot_profiles([2.0, 3.0, 4.0, 5.0], Q_c, 3.0, noise=1.0, seed=4, Ns=None if finite_n is None else [64, 128])
    fit0 = extrapolate_hot_limit(profiles, Q_c, finite_n=finite_n)
    assert fit0.a_cov is None  # no profile has a covariance
    diag = [{**p, "n2_cov": np.diag(p["n2_err"] ** 2)} for p in profiles]
    fit = extrapolate_hot_limit(diag, Q_c, finite_n=finite_n)
    use = fit.valid
    np.testing.assert_allclose(np.sqrt(np.diag(fit.a_cov))[use], fit.a_err[use], rtol=1e-10)
    corr = [{**p, "n2_cov": _correlated_cov(p["n2_err"], 0.6)} for p in profiles]
    fit = extrapolate_hot_limit(corr, Q_c, finite_n=finite_n)
    # dA(u)/dy_p(u) by finite differences, then sum_p w_p(u) w_p(u') C_p(u, u')
    weights = np.zeros((len(profiles), U.size))
    for k, p in enumerate(profiles):
        h = 1e-3 * np.max(np.abs(p["n2_flux"]))
        bumped = [dict(q) for q in profiles]
        bumped[k]["n2_flux"] = p["n2_flux"] + h
        weights[k] = np.nan_to_num((extrapolate_hot_limit(bumped, Q_c, finite_n=finite_n).a - fit0.a) / h)
    expected = sum(np.outer(w, w) * c["n2_cov"] for w, c in zip(weights, corr))
    i = np.flatnonzero(use)
    np.testing.assert_allclose(fit.a_cov[np.ix_(i, i)], expected[np.ix_(i, i)], rtol=1e-6,
                               atol=1e-9 * np.max(np.abs(expected)))
    assert compare(fit.predicted, fit).chi2_cov is not None
    with pytest.raises(ValueError, match="n2_cov has shape"):
        extrapolate_hot_limit([{**corr[0], "n2_cov": np.eye(3)}] + corr[1:], Q_c, finite_n=finite_n)


def test_flux_vs_nbody_from_runs_remeasures_stored_runs_with_their_covariance(tmp_path, capsys):
    """--save-runs keeps the runs; --from-runs with the same options measures them into the same
    report (values and errors bit for bit) with the covariance across u stored, which --combine
    carries into the 1/N intercept's covariance chi^2. Runs made with other options are refused."""
    module, _ = _flux_vs_nbody_module()
    argv = ["--Ns", "8", "16", "--R", "32", "--t-end", "40", "--window", "10", "40", "--backend", "numpy",
            "--no-progress", "--u-points", "21", "--seed", "4"]
    assert module.main(argv + ["--out", str(tmp_path / "run"), "--save-runs", str(tmp_path / "runs")]) == 0
    assert module.main(argv + ["--out", str(tmp_path / "again"), "--from-runs", str(tmp_path / "runs")]) == 0
    first = json.loads((tmp_path / "run" / "flux_vs_nbody.json").read_text())["comparisons"]
    again = json.loads((tmp_path / "again" / "flux_vs_nbody.json").read_text())["comparisons"]
    for label in ("N=8", "N=16"):
        assert again[label]["measured_values"] == first[label]["measured_values"]
        assert again[label]["measured_err"] == first[label]["measured_err"]
        cov = np.asarray(again[label]["measured_cov"], dtype=float)
        assert cov.shape == (21, 21) and again[label]["chi2_cov_dof"] is not None
    assert again["1/N intercept"]["measured_cov"] is not None
    combined = ["--u-points", "21", "--t-end", "40", "--window", "10", "40", "--out", str(tmp_path / "comb"),
                "--combine", str(tmp_path / "again")]
    assert module.main(combined) == 0
    comb = json.loads((tmp_path / "comb" / "flux_vs_nbody.json").read_text())["comparisons"]
    for label in ("N=8", "N=16"):
        assert comb[label]["chi2_cov_dof"] == pytest.approx(again[label]["chi2_cov_dof"], rel=1e-9)
        assert comb[label]["measured_support"] == again[label]["measured_support"]
    # the stored supports leave the same thin tail points out of the recombined intercept
    assert comb["1/N intercept"]["points"] == again["1/N intercept"]["points"]
    assert len(comb["1/N intercept"]["points"]) < 10  # (10 points at u > 0; the far tail is too thin at R = 32)
    assert comb["1/N intercept"]["chi2_cov_dof"] == pytest.approx(again["1/N intercept"]["chi2_cov_dof"], rel=1e-9)
    for bad, match in ((["--seed", "5"], "seed"), (["--R", "16"], "R = 32"), (["--Q", "5"], "profile"),
                       (["--Ns", "8", "32"], "does not exist")):
        changed = list(argv)
        for flag in ("--seed", "--R", "--Q", "--Ns"):
            if bad[0] == flag and flag in changed:
                i = changed.index(flag)
                end = i + 1
                while end < len(changed) and not changed[end].startswith("--"):
                    end += 1
                del changed[i:end]
        with pytest.raises(SystemExit, match=match):
            module.main(changed + bad + ["--out", str(tmp_path / "bad"), "--from-runs", str(tmp_path / "runs")])
    with pytest.raises(SystemExit):
        module.parse_args(argv + ["--from-runs", "x", "--save-runs", "y"])
    capsys.readouterr()


def test_hot_limit_example_judges_by_the_covariance_chi2_when_every_input_has_one(tmp_path, capsys):
    """With a covariance stored in every input report the criterion uses the covariance chi^2 of
    A; a diagonal covariance equal to the squared errors gives back exactly the diagonal chi^2,
    and a correlated one changes it."""
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("hot_limit_example", root / "examples" / "hot_limit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stored = root / "examples" / "results"
    for rho in (0.0, 0.6):
        for q in ("3", "4"):
            data = json.loads((stored / f"flux_vs_nbody_Q{q}_inverse_N" / "flux_vs_nbody.json").read_text())
            for c in data["comparisons"].values():
                err = np.nan_to_num(np.array([np.nan if x is None else x for x in c["measured_err"]], dtype=float))
                c["measured_cov"] = _correlated_cov(err, rho).tolist() if rho else np.diag(err**2).tolist()
            d = tmp_path / f"rho{rho}" / f"Q{q}"
            d.mkdir(parents=True)
            (d / "flux_vs_nbody.json").write_text(json.dumps(data))
        assert module.main(["--out", str(tmp_path / f"out{rho}"), str(tmp_path / f"rho{rho}" / "Q3"),
                            str(tmp_path / f"rho{rho}" / "Q4")]) == 0
        crit = json.loads((tmp_path / f"out{rho}" / "hot_limit.json").read_text())["analyses"]["sequential"]["criterion"]
        assert crit["statistic"] == "covariance"
        if rho:
            assert not crit["chi2_cov_dof"] == pytest.approx(crit["chi2_dof"], rel=0.05)
        else:
            assert crit["chi2_cov_dof"] == pytest.approx(crit["chi2_dof"], rel=1e-9)
        assert crit["met"] == (crit["chi2_cov_dof"] <= 2 and crit["snr_at_predicted_peak"] >= 5)
    capsys.readouterr()


def test_hot_limit_example_leaves_out_the_points_a_stored_support_does_not_carry():
    """A stored per-N comparison that records its support enters the hot-limit fits without the
    thin tail points, as compare leaves them out; one without a support enters whole."""
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("hot_limit_example", root / "examples" / "hot_limit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    u = np.linspace(-3.0, 3.0, 7)
    c = {"u": u.tolist(), "measured_values": (0.1 * u).tolist(), "measured_err": [0.01] * 7,
         "predicted": (0.1 * u).tolist(), "n_realisations": 100}
    whole = module._profile(c, 4.0, 1.0, N=64)
    assert np.isfinite(whole["n2_err"]).all()
    thin = module._profile({**c, "measured_support": [3, 40, 80, 0, 80, 40, 3]}, 4.0, 1.0, N=64)
    np.testing.assert_array_equal(np.isfinite(thin["n2_err"]), [False, True, True, False, True, True, False])
