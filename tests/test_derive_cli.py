"""The `bbgky derive` command and the content-hash cache."""
import json

import pytest

from derive import cache
from numerics.cli import main


def test_derive_cli_compiles_then_fetches(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BBGKY_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["derive", "--order", "1", "--checks"]) == 0
    out = capsys.readouterr().out
    assert "compiled" in out and "hot_limit" in out and "[holds] vanishes_1d" in out
    assert main(["derive", "--order", "1"]) == 0
    out = capsys.readouterr().out
    assert "fetched from cache" in out
    files = list((tmp_path / "cache").glob("operator-*.json"))
    assert len(files) == 1
    json.loads(files[0].read_text())  # plain JSON


def test_cached_operator_equals_fresh(tmp_path, monkeypatch):
    import derive

    monkeypatch.setenv("BBGKY_CACHE_DIR", str(tmp_path))
    op = derive.collision_operator(1, 2)
    options = {"order": 1, "dimension": 2, "collective": False}
    cache.save(op, options)
    loaded = cache.load(options)
    assert loaded.content_hash == op.content_hash
    assert loaded.derivation.from_cache
    assert loaded.check_h_theorem().holds


def test_corrupt_cache_is_reported(tmp_path, monkeypatch):
    import derive

    monkeypatch.setenv("BBGKY_CACHE_DIR", str(tmp_path))
    options = {"order": 1, "dimension": 1, "collective": False}
    path = cache.save(derive.collision_operator(1, 1), options)
    data = json.loads(path.read_text())
    data["content_hash"] = "0" * 16
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="corrupt"):
        cache.load(options)


def test_derive_cli_writes_latex_and_json(tmp_path, monkeypatch):
    monkeypatch.setenv("BBGKY_CACHE_DIR", str(tmp_path / "c"))
    tex, js = tmp_path / "d.tex", tmp_path / "d.json"
    assert main(["derive", "--order", "1", "--dimension", "2", "--latex", str(tex), "--json", str(js)]) == 0
    assert "dmath" in tex.read_text()
    assert json.loads(js.read_text())["stages"][-1]["name"] == "use_resonances"


def test_derive_cli_reports_bad_order(capsys):
    assert main(["derive", "--order", "7"]) == 1
    assert "order must be" in capsys.readouterr().err
