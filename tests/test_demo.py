"""The main job runs end to end on a tiny configuration and writes its report."""
import json

from numerics.cli import main


def test_demo_small(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BBGKY_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--N", "16", "--R", "8", "--t-end", "20", "--no-progress"])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["order1"]["vanishes_1d"] is True
    assert abs(report["stability"]["Q"] - 4.0) < 1e-12
    assert report["prediction"] is None  # stated, not invented
    assert (out / "flux.png").stat().st_size > 1000
    assert "no prediction is compared" in capsys.readouterr().out
