"""`bbgky nbody | resume | measure` end to end on tiny runs."""
from __future__ import annotations

import json

import numpy as np
import pytest

from numerics.cli import main
from numerics.nbody import load_result
from numerics.nbody.cli import default_resume_output

BASE = ["nbody", "--potential", "ring", "--softening", "0.5", "--df", "gg", "--n", "4", "--sigma", "1",
        "--N", "16", "--R", "4", "--t-end", "4", "--dt", "0.05", "--snapshots", "21", "--seed", "3", "--no-progress"]


def test_nbody_resume_and_measure(tmp_path, capsys):
    out = tmp_path / "run.npz"
    ckpt = tmp_path / "run.ckpt.npz"
    assert main(BASE + ["--out", str(out), "--checkpoint", str(ckpt)]) == 0
    run = load_result(out)
    assert run.params["potential"] == {"name": "ring", "softening": 0.5}
    assert run.params["df"] == {"name": "generalized_gaussian", "n": 4.0, "sigma": 1.0}
    assert (run.N, run.R, run.params["seed"], len(run.times)) == (16, 4, 3, 21)
    assert "wrote" in capsys.readouterr().out

    assert default_resume_output(ckpt) == tmp_path / "run.npz"
    assert default_resume_output(tmp_path / "c.npz") == tmp_path / "c.result.npz"
    again = tmp_path / "again.npz"
    assert main(["resume", str(ckpt), "--out", str(again), "--no-progress"]) == 0
    np.testing.assert_array_equal(load_result(again).cumulative, run.cumulative)

    js, png = tmp_path / "m.json", tmp_path / "m.png"
    assert main(["measure", str(out), "--window", "1", "4", "--out-json", str(js), "--out-png", str(png)]) == 0
    data = json.loads(js.read_text())
    assert len(data["flux"]) == 61 and png.exists()


def test_models_from_the_command_line(tmp_path):
    out = tmp_path / "f.npz"
    assert main(["nbody", "--potential", "fourier", "--harmonics", "1:0.5,2:0.1", "--N", "8", "--R", "2",
                 "--t-end", "1", "--dt", "0.1", "--snapshots", "3", "--backend", "jax", "--method", "leapfrog",
                 "--out", str(out), "--no-progress"]) == 0
    run = load_result(out)
    assert run.params["potential"]["harmonics"] == {"1": 0.5, "2": 0.1}
    assert (run.params["backend"], run.params["method"], run.params["kmax"]) == ("jax", "leapfrog", 2)


@pytest.mark.parametrize("args, message", [
    (["--N", "1"], "N must be an integer >= 2"),
    (["--backend", "cupy"], "cupy"),
    (["--potential", "ring", "--softening", "0.5", "--kmax", "0"], "kmax must be"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, args, message):
    argv = ["nbody", "--N", "8", "--R", "2", "--t-end", "1", "--dt", "0.1", "--snapshots", "3",
            "--out", str(tmp_path / "x.npz"), "--no-progress"] + args
    from numerics.backends import cupy_usable

    if "cupy" in args and cupy_usable()[0]:
        pytest.skip("a usable GPU is present: backend='cupy' does not fail here")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
