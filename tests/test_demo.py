"""The main job runs end to end (tiny configuration) and writes its report; the CI-sized smoke
validation compares a real N-body measurement with the derived 1/N^2 prediction."""
import json

import pytest

from numerics.cli import main


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One derivation cache for the module: the first demo derives and caches, the next fetch."""
    return tmp_path_factory.mktemp("bbgky-cache")


def test_demo_small(tmp_path, monkeypatch, capsys, cache_dir):
    monkeypatch.setenv("BBGKY_CACHE_DIR", str(cache_dir))
    out = tmp_path / "demo"
    config = tmp_path / "demo.toml"
    config.write_text('N = 16\nR = 8\nt_end = 20.0\nbackend = "numpy"\n')
    rc = main(["demo", "--config", str(config), "--out", str(out), "--backend", "jax", "--no-progress"])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["parameters"]["N"] == 16 and report["parameters"]["backend"] == "jax"  # CLI beats TOML
    assert report["order1"]["vanishes_1d"] is True
    assert report["order2"]["canonical"] is True and report["order2"]["h_theorem"] is True
    assert [s["name"] for s in report["order2"]["stages"]][-2:] == ["canonical", "symmetric"]
    assert abs(report["stability"]["Q"] - 4.0) < 1e-12
    pred = report["prediction"]
    assert len(pred["u"]) == 30 and min(pred["N2_flux"]) < 0 < max(pred["N2_flux"])
    assert {"ratio_measured_over_predicted", "chi2_dof", "n_points"} <= set(report["comparison"])
    assert (out / "flux.png").stat().st_size > 1000
    assert "[compare] measured/predicted" in capsys.readouterr().out


def test_demo_rejects_unknown_config_keys(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("particles = 16\n")
    with pytest.raises(SystemExit, match="unknown keys.*particles"):
        main(["demo", "--config", str(config), "--out", str(tmp_path / "x")])


def test_smoke_validation_hmf_n128(tmp_path, monkeypatch, cache_dir):
    """CI-sized validation (about 2 minutes on 2 cores): HMF, n = 4, Q = 4, N = 128, R = 4096,
    t = 1500. The measured flux has the predicted sign wherever it is significant and its
    best-fit amplitude is within 40 % of the derived 1/N^2 prediction (at N = 128 the finite-N
    factor is ~1, PHYSICS.md section 4)."""
    monkeypatch.setenv("BBGKY_CACHE_DIR", str(cache_dir))
    out = tmp_path / "smoke"
    rc = main(["demo", "--out", str(out), "--N", "128", "--R", "4096", "--t-end", "1500", "--no-progress"])
    assert rc == 0
    cmp = json.loads((out / "report.json").read_text())["comparison"]
    assert cmp["n_sign_points"] >= 8 and cmp["sign_agreement"] >= 0.95, cmp
    assert abs(cmp["ratio_measured_over_predicted"] - 1.0) <= 0.4, cmp
