"""Flux measurement from ensemble snapshots, on synthetic runs (no N-body engine needed).

A synthetic run: C_r(t, u) = Phi(u) + offset_r(u) - F(u) t + noise_r(t, u), with a known odd
flux F, a large per-realisation offset that is constant in time (the initial sampling noise,
which a slope does not see) and a small per-snapshot noise.
"""
from __future__ import annotations

import json
import math
import types

import numpy as np
import pytest
from scipy.special import erf

from numerics.nbody.measure import (FluxMeasurement, default_output_paths, flux_error_budget, measure_flux,
                                    write_measurement)


def true_flux(u, amplitude=1e-3):
    return amplitude * u * np.exp(-0.5 * u**2) * (1.0 - u**2 / 6.0)


def synthetic_run(*, R=200, N=100, n_u=41, u_max=3.0, times=None, noise=None, offset=0.05, seed=1,
                  df=None, flux=true_flux, u_grid=None):
    rng = np.random.default_rng(seed)
    times = np.linspace(0.0, 100.0, 21) if times is None else np.asarray(times, dtype=float)
    u = np.linspace(-u_max, u_max, n_u) if u_grid is None else np.asarray(u_grid, dtype=float)
    noise = 0.5 / math.sqrt(N) if noise is None else noise
    base = 0.5 * (1.0 + erf(u / math.sqrt(2.0)))
    cumulative = (
        base[None, None, :]
        + offset * rng.standard_normal((R, 1, u.size))
        - flux(u)[None, None, :] * times[None, :, None]
        + noise * rng.standard_normal((R, times.size, u.size))
    )
    params = {"N": N, "R": R, "df": df if df is not None else {"name": "gaussian", "sigma": 1.0}}
    return types.SimpleNamespace(times=times, cumulative=cumulative, u_grid=u, params=params)


def slope_sd(run, window):
    """Expected standard deviation of the ensemble-mean slope for the synthetic noise."""
    t = run.times[(run.times >= window[0]) & (run.times <= window[1])]
    noise = 0.5 / math.sqrt(run.params["N"])
    return noise / math.sqrt(np.sum((t - t.mean()) ** 2)) / math.sqrt(run.cumulative.shape[0])


# --- the estimator ------------------------------------------------------------------------------
def test_noise_free_flux_is_exact():
    run = synthetic_run(noise=0.0, offset=0.0, R=3)
    for fold in (False, True):
        m = measure_flux(run, (0.0, 100.0), fold=fold, n_boot=50)
        np.testing.assert_allclose(m.flux, true_flux(run.u_grid), rtol=0, atol=1e-15)
        np.testing.assert_allclose(m.lower, m.flux, atol=1e-15)
        np.testing.assert_allclose(m.upper, m.flux, atol=1e-15)


def test_flux_is_minus_slope_of_ensemble_average():
    run = synthetic_run(R=20, seed=3)
    window = (20.0, 80.0)
    m = measure_flux(run, window, fold=False, n_boot=20)
    sel = (run.times >= 20.0) & (run.times <= 80.0)
    mean_c = run.cumulative.mean(axis=0)[sel]
    slope = np.polyfit(run.times[sel], mean_c, 1)[0]
    np.testing.assert_allclose(m.flux, -slope, rtol=1e-10, atol=1e-15)
    assert m.fit_points == int(sel.sum()) == 13
    assert m.window == window and m.n_realisations == 20 and m.N == 100


def test_a_fraction_no_particle_changes_has_exactly_zero_flux_and_error():
    """Far tails: a cumulative fraction that stays 0 or 1 in every realisation (no particle crosses u)
    is measured as exactly 0 with exactly 0 error, so that comparisons leave the point out. (A slope
    taken without removing the level gave C times the rounding of sum_t dt: a flux of ~1e-17 with an
    error of ~1e-33, which dominated chi^2 with a weight of 1e66.)"""
    run = synthetic_run(R=30, seed=4, times=np.linspace(100.0, 4146.7, 51))
    run.cumulative[:, :, 0] = 0.0
    run.cumulative[:, :, -1] = 1.0
    for fold in (False, True):
        m = measure_flux(run, (100.0, 4146.7), fold=fold, n_boot=50)
        assert m.flux[0] == m.flux[-1] == 0.0
        assert m.stderr[0] == m.stderr[-1] == 0.0
        assert np.all(m.stderr[1:-1][run.u_grid[1:-1] != 0.0] > 0)  # (the folded flux is 0 at u = 0)


def test_recovers_known_flux_despite_large_offsets():
    run = synthetic_run(R=400, offset=0.2, seed=5)
    m = measure_flux(run, (0.0, 100.0), n_boot=300)
    sd = slope_sd(run, (0.0, 100.0)) / math.sqrt(2.0)  # folded
    err = m.flux - true_flux(run.u_grid)
    assert np.max(np.abs(err)) < 4.5 * sd
    # the bootstrap error agrees with the known noise level
    inner = run.u_grid != 0.0
    assert np.median(m.stderr[inner]) == pytest.approx(sd, rel=0.2)


def test_bootstrap_resamples_realisations_with_default_rng():
    run = synthetic_run(R=30, seed=7)
    m = measure_flux(run, (0.0, 100.0), fold=False, n_boot=200, seed=11)
    # replicate the documented procedure by hand
    sel = np.ones(run.times.size, bool)
    t = run.times[sel]
    dt = t - t.mean()
    per_real = -np.einsum("t,rtu->ru", dt, run.cumulative[:, sel]) / np.dot(dt, dt)
    idx = np.random.default_rng(11).integers(0, 30, size=(200, 30))
    boot = per_real[idx].mean(axis=1)
    lo, hi = np.quantile(boot, [0.16, 0.84], axis=0)
    np.testing.assert_allclose(m.lower, lo, rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(m.upper, hi, rtol=1e-12, atol=1e-18)
    # reproducible with the seed, different with another
    m2 = measure_flux(run, (0.0, 100.0), fold=False, n_boot=200, seed=11)
    m3 = measure_flux(run, (0.0, 100.0), fold=False, n_boot=200, seed=12)
    np.testing.assert_array_equal(m.lower, m2.lower)
    assert not np.array_equal(m.lower, m3.lower)


# --- folding ------------------------------------------------------------------------------------
def test_folded_flux_is_odd_and_less_noisy():
    run = synthetic_run(R=300, seed=9, n_u=61)
    folded = measure_flux(run, (0.0, 100.0), n_boot=400)
    raw = measure_flux(run, (0.0, 100.0), fold=False, n_boot=400)
    assert folded.folded and not raw.folded
    np.testing.assert_allclose(folded.flux, -folded.flux[::-1], atol=1e-18)
    assert folded.flux[30] == 0.0  # u = 0
    np.testing.assert_allclose(folded.lower, -folded.upper[::-1], atol=1e-15)
    inner = run.u_grid != 0.0
    ratio = np.median(folded.stderr[inner]) / np.median(raw.stderr[inner])
    assert 0.55 < ratio < 0.85  # 1/sqrt(2) for independent noise at u and -u


@pytest.mark.parametrize(
    "df, expected",
    [
        ({"name": "gaussian", "sigma": 1.0}, True),
        ({"name": "generalized_gaussian", "n": 4.0, "sigma": 1.0}, True),
        ({"name": "tabulated", "v": [-2.0, -1.0, 0.0, 1.0, 2.0], "pdf": [0.1, 0.5, 1.0, 0.5, 0.1]}, True),
        ({"name": "tabulated", "v": [-2.0, -1.0, 0.0, 1.0, 2.0], "pdf": [0.1, 0.6, 1.0, 0.5, 0.1]}, False),
    ],
)
def test_automatic_folding_follows_the_df(df, expected):
    run = synthetic_run(R=5, df=df)
    assert measure_flux(run, (0.0, 100.0), n_boot=10).folded is expected


def test_folding_needs_a_symmetric_grid_and_a_known_df():
    run = synthetic_run(R=5, u_grid=np.linspace(-2.0, 3.0, 21))
    with pytest.raises(ValueError, match="symmetric"):
        measure_flux(run, (0.0, 100.0), n_boot=10)
    assert not measure_flux(run, (0.0, 100.0), fold=False, n_boot=10).folded
    run = synthetic_run(R=5)
    run.params = {"N": 100}
    with pytest.raises(ValueError, match="fold"):
        measure_flux(run, (0.0, 100.0), n_boot=10)
    assert measure_flux(run, (0.0, 100.0), fold=True, n_boot=10).folded


# --- error bars ---------------------------------------------------------------------------------
def test_bootstrap_band_covers_the_truth_about_68_percent():
    hits = trials = 0
    for seed in (21, 22, 23):
        run = synthetic_run(R=150, n_u=121, seed=seed, u_max=4.0)
        m = measure_flux(run, (10.0, 90.0), n_boot=400, seed=seed)
        positive = run.u_grid > 0  # folded: u < 0 carries the same information
        truth = true_flux(run.u_grid)[positive]
        hits += int(np.sum((m.lower[positive] <= truth) & (truth <= m.upper[positive])))
        trials += int(positive.sum())
    coverage = hits / trials
    assert 0.55 < coverage < 0.80, coverage  # 0.68 expected; sd over seeds ~ 0.04 here (0.73 now)


# --- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "window, match",
    [
        ((-10.0, 50.0), r"window .* not inside the run's times \[0, 100\]"),
        ((50.0, 150.0), r"window .* not inside the run's times \[0, 100\]"),
        ((60.0, 40.0), r"window must be \(t0, t1\) with t0 < t1"),
        ((40.0, 40.0), r"window must be \(t0, t1\) with t0 < t1"),
        ((41.0, 50.0), r"window .* holds 2 snapshot\(s\).*at least 3.*\[0, 100\]"),
        ((float("nan"), 50.0), r"window must be"),
        (5.0, r"window must be a pair"),
        ((1.0, 2.0, 3.0), r"window must be a pair"),
    ],
)
def test_bad_windows(window, match):
    run = synthetic_run(R=4)
    with pytest.raises(ValueError, match=match):
        measure_flux(run, window, n_boot=10)


def test_bad_inputs():
    run = synthetic_run(R=1)
    with pytest.raises(ValueError, match="R >= 2"):
        measure_flux(run, (0.0, 100.0))
    run = synthetic_run(R=4)
    with pytest.raises(ValueError, match="n_boot"):
        measure_flux(run, (0.0, 100.0), n_boot=1)
    run.u_grid = run.u_grid[:-1]
    with pytest.raises(ValueError, match="u_grid"):
        measure_flux(run, (0.0, 100.0))
    run = synthetic_run(R=4)
    run.times = run.times[:-1]
    with pytest.raises(ValueError, match=r"\(R, T, U\)"):
        measure_flux(run, (0.0, 90.0))


# --- serialisation and files --------------------------------------------------------------------
def test_to_dict_is_json_and_round_trips():
    m = measure_flux(synthetic_run(R=10), (0.0, 100.0), n_boot=50)
    data = json.loads(json.dumps(m.to_dict()))
    np.testing.assert_allclose(data["stderr"], 0.5 * (np.array(data["upper"]) - np.array(data["lower"])))
    assert data["window"] == [0.0, 100.0] and data["N"] == 100 and data["folded"] is True
    assert data["n_realisations"] == 10 and data["fit_points"] == 21 and data["quantiles"] == [0.16, 0.84]
    assert "positive = particles move up" in data["sign_convention"]
    back = FluxMeasurement.from_dict(data)
    np.testing.assert_array_equal(back.flux, m.flux)
    np.testing.assert_array_equal(back.stderr, m.stderr)
    assert (back.window, back.N, back.folded, back.fit_points) == (m.window, m.N, m.folded, m.fit_points)


def test_default_output_paths(tmp_path):
    js, png = default_output_paths(tmp_path / "run_N64.npz")
    assert js == tmp_path / "run_N64.flux.json" and png == tmp_path / "run_N64.flux.png"


def test_write_measurement_with_a_stub_loader(tmp_path, monkeypatch):
    import numerics.nbody

    run = synthetic_run(R=12)
    run.params["potential"] = {"name": "hmf"}
    run.params["seed_array"] = np.arange(3)  # numpy content must still serialise
    loaded = []

    def fake_load_result(path):
        loaded.append(path)
        return run

    monkeypatch.setattr(numerics.nbody, "load_result", fake_load_result, raising=False)
    run_path = tmp_path / "ens.npz"
    m = write_measurement(run_path, (10.0, 90.0), n_boot=50)
    assert loaded == [run_path]
    data = json.loads((tmp_path / "ens.flux.json").read_text())
    assert data["params"]["potential"] == {"name": "hmf"} and data["params"]["seed_array"] == [0, 1, 2]
    assert data["window"] == [10.0, 90.0]
    np.testing.assert_allclose(data["flux"], m.flux)
    png = (tmp_path / "ens.flux.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    # explicit paths
    write_measurement(run_path, (10.0, 90.0), json_path=tmp_path / "a.json", png_path=tmp_path / "b.png", n_boot=20)
    assert (tmp_path / "a.json").exists() and (tmp_path / "b.png").exists()


# --- what differencing within realisations buys -------------------------------------------------
def test_error_budget_without_offsets_pairing_does_not_help():
    # snapshots independent in time: pairing cannot help; each error has its textbook value
    run = synthetic_run(R=4000, offset=0.0, seed=11)
    window = (10.0, 90.0)
    b = flux_error_budget(run.times, run.cumulative, window)
    noise, R = 0.5 / math.sqrt(run.params["N"]), 4000
    np.testing.assert_allclose(b["least_squares"], slope_sd(run, window), rtol=0.1)
    np.testing.assert_allclose(b["two_point"], math.sqrt(2.0) * noise / math.sqrt(R) / 80.0, rtol=0.1)
    np.testing.assert_allclose(b["two_point_unpaired"], math.sqrt(2.0) * noise / math.sqrt(R) / 80.0, rtol=0.1)
    # 17 snapshots in the window: the least-squares slope beats the two-point difference
    assert np.all(b["least_squares"] < 0.6 * b["two_point"])


def test_error_budget_pairing_removes_what_a_realisation_keeps():
    # a per-realisation offset (its own sample of phi) 20x the snapshot noise: it cancels in a
    # difference within each realisation, not between independent ensembles
    run = synthetic_run(R=2000, offset=1.0, noise=0.05, seed=12)
    window = (0.0, 100.0)
    b = flux_error_budget(run.times, run.cumulative, window)
    np.testing.assert_allclose(b["least_squares"], slope_sd(run, window), rtol=0.1)  # noise 0.05 = 0.5/sqrt(N)
    np.testing.assert_allclose(b["two_point_unpaired"], math.sqrt(2.0 * (1.0 + 0.05**2) / 2000) / 100.0, rtol=0.1)
    assert np.all(b["two_point_unpaired"] > 15.0 * b["two_point"])
    # the least-squares error is the spread that measure_flux's bootstrap resamples
    m = measure_flux(run, window, fold=False, n_boot=400, seed=1)
    np.testing.assert_allclose(m.stderr, b["least_squares"], rtol=0.25)


def test_error_budget_fold_and_input_checks():
    run = synthetic_run(R=500, seed=13)
    folded = flux_error_budget(run.times, run.cumulative, (0.0, 100.0), fold=True)
    raw = flux_error_budget(run.times, run.cumulative, (0.0, 100.0))
    for key in folded:
        # folding averages two independent noises: the error drops by about sqrt(2) away from u = 0
        ratio = folded[key][-5:] / raw[key][-5:]
        assert np.all((ratio > 0.6) & (ratio < 0.85)), key
        assert folded[key][run.u_grid.size // 2] == 0.0
    with pytest.raises(ValueError, match="at least 2 realisations"):
        flux_error_budget(run.times, run.cumulative[:1], (0.0, 100.0))
    with pytest.raises(ValueError, match="window"):
        flux_error_budget(run.times, run.cumulative, (50.0, 40.0))
