"""The code generator (derive.codegen) and the generated kernels (numerics.generated).

Generated kernels are checked against an independent reference: the operator's SymPy body,
with its distributions regularised (tests/helpers/regularised.py) and lambdified, versus the
generated smooth cofactors times the same regularised distributions rebuilt from the
generated METADATA alone (kind, order, linear form of the argument).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from sympy.core.function import AppliedUndef

import derive
from derive import codegen
from derive.codegen import FreezeError, freeze, freeze_term, render
from derive.derivation import Derivation
from derive.fourier import FourierTerm
from derive.operator import Operator
from derive.symbols import PrincipalValue, Resonance, U, mu, velocity
from numerics.backends import BackendUnavailableError, cupy_usable
from numerics.generated import available, load
from tests.helpers.regularised import regularise

EPS = 0.4  # width of the regularised distributions
ROOT = Path(__file__).resolve().parent.parent
F = sp.Function("F")


@pytest.fixture(scope="module")
def operators():
    return {name: codegen.shipped_operator(name) for name in codegen.SHIPPED_OPERATORS}


@pytest.fixture(scope="module")
def frozen(operators):
    return {name: freeze(op) for name, op in operators.items()}


# -- the reference: direct SymPy evaluation vs cofactors x distributions from METADATA ---------

def _ufun(*k):
    return 0.7 / (1.0 + sum(np.asarray(c, dtype=float) ** 2 for c in k)) + 0.05


def _random_inputs(rng, term: FourierTerm, dimension: int, n: int = 300):
    """Values for every velocity component, wavevector component, mu and F-derivative of a term."""
    labels = sorted({1} | {int(s.name[1:].split("_")[0]) for s in term.integrals})
    values = {}
    for a in labels:
        for v in velocity(a, dimension):
            values[v.name] = rng.normal(size=n)
    # put a fifth of the points close to the resonances of particle 1 with the others
    close = slice(0, n // 5)
    for a in labels[1:]:
        for v1, va in zip(velocity(1, dimension), velocity(a, dimension)):
            values[va.name][close] = values[v1.name][close] + 0.05 * rng.normal(size=n // 5)
    for s in term.sums:
        for comp in derive.fourier.components(s, dimension):
            q = rng.integers(1, 5, size=n) * rng.choice([-1, 1], size=n)
            values[comp.name] = q
    for form in term.nonzero:  # excluded wavevector combinations (k1 + k2 = 0): redraw until none vanishes
        f = sp.lambdify(list(term.sums), form, "numpy")
        while np.any(bad := f(*[values[s.name] for s in term.sums]) == 0):
            for s in term.sums:
                values[s.name] = np.where(bad, rng.integers(1, 5, size=n) * rng.choice([-1, 1], size=n), values[s.name])
    values["mu"] = 0.37
    dfs = {}
    for node in term.body.atoms(sp.Derivative, AppliedUndef):
        f = node.expr if isinstance(node, sp.Derivative) else node
        if isinstance(f, AppliedUndef) and f.func == F:
            particle = int(f.args[0].name[1:].split("_")[0])
            counts = dict(node.variable_count) if isinstance(node, sp.Derivative) else {}
            dfs[(particle, tuple(int(counts.get(v, 0)) for v in f.args))] = rng.normal(size=n)
    values["F"] = dfs
    return values


def _direct(term: FourierTerm, dimension: int, values, magnitude: bool = False) -> np.ndarray:
    """The regularised body, lambdified straight from SymPy (no use of the code generator).
    ``magnitude``: instead, the sum of the absolute values of its monomials (the size of what
    cancels, which sets the round-off of any evaluation of the sum)."""
    body = regularise(term.body, EPS)
    if magnitude:
        body = sp.Add(*[sp.Abs(m) for m in sp.Add.make_args(body)])
    reps, feed = {}, {}
    for node in body.atoms(sp.Derivative, AppliedUndef):
        f = node.expr if isinstance(node, sp.Derivative) else node
        if not (isinstance(f, AppliedUndef) and f.func == F):
            continue
        particle = int(f.args[0].name[1:].split("_")[0])
        counts = dict(node.variable_count) if isinstance(node, sp.Derivative) else {}
        key = (particle, tuple(int(counts.get(v, 0)) for v in f.args))
        sym = sp.Symbol(f"DF_{particle}_{'_'.join(map(str, key[1]))}")
        reps[node] = sym
        feed[sym] = values["F"][key]
    body = body.xreplace(reps).replace(U, lambda *k: sp.Function("Ufun")(*k))
    symbols = sorted(body.free_symbols - set(feed), key=lambda s: s.name)
    fn = sp.lambdify(symbols + list(feed), body, modules=[{"Ufun": _ufun, "re": np.real, "im": np.imag}, "numpy"])
    args = [values["mu"] if s == mu else values[s.name] for s in symbols] + list(feed.values())
    n = len(next(iter(values["F"].values())))
    return np.asarray(fn(*args)) * np.ones(n)


_DELTA_DERIVATIVES = {}


def _regularised(kind: str, order: int, x: np.ndarray) -> np.ndarray:
    if kind == "delta":
        if order not in _DELTA_DERIVATIVES:
            y = sp.Symbol("y", real=True)
            _DELTA_DERIVATIVES[order] = sp.lambdify(y, sp.diff(EPS / (sp.pi * (y**2 + EPS**2)), y, order), "numpy")
        return _DELTA_DERIVATIVES[order](x)
    if kind == "pv":
        return np.real((x - 1j * EPS) ** (-order))
    if kind == "resonance":
        return (x - 1j * EPS) ** (-order)
    raise AssertionError(kind)


def _from_metadata(module, term_meta: dict, values) -> np.ndarray:
    """sum over kernels of cofactor(...) x prod of regularised distributions built from METADATA."""
    components = {s["name"]: s["components"] for s in term_meta["sums"]}
    args = []
    for a in term_meta["arguments"]:
        if a["role"] in ("velocity", "wavevector"):
            args.append(values[a["name"]])
        elif a["role"] == "parameter":
            args.append(values[a["name"]])
        elif a["role"] == "coupling":
            dimension = len(next(iter(components.values())))
            k = [sum(c * values[components[w][i]] for w, c in a["wavevector"].items()) for i in range(dimension)]
            args.append(_ufun(*k))
        elif a["role"] == "df":
            args.append(values["F"][(a["particle"], tuple(a["derivative"]))])
        else:
            raise AssertionError(a)
    total = 0
    for kernel in term_meta["kernels"]:
        value = np.asarray(module.KERNELS[kernel["function"]](*args))
        for d in kernel["distributions"]:
            x = 0.0
            for a, inner in d["linear_form"].items():
                for b, c in inner.items():
                    x = x + float(Fraction(str(c))) * (1.0 if a == "1" else values[a]) * (1.0 if b == "1" else values[b])
            value = value * _regularised(d["kind"], d["order"], np.asarray(x, dtype=float))
        total = total + value
    return np.asarray(total)


def _compare(op: Operator, module, seed: int) -> None:
    rng = np.random.default_rng(seed)
    meta = {(t["component"], t["index"]): t for t in module.METADATA["terms"]}
    assert len(meta) == sum(len(c) for c in op.flux)
    for c, comp in enumerate(op.flux):
        for i, term in enumerate(comp):
            values = _random_inputs(rng, term, op.dimension)
            want = _direct(term, op.dimension, values)
            got = np.asarray(_from_metadata(module, meta[(c, i)], values))
            scale = np.max(np.abs(want))
            assert scale > 0
            tol = 1e-12 * scale
            if np.max(np.abs(got - want)) > tol:
                # a long sum with cancellation (the three-body kernels): the round-off of any
                # evaluation order is a few ulp of the sum of the monomials' magnitudes
                # (measured: 8.7e-13 of the scale, 3.6e-11 relative, for JAX's reordered sums)
                tol = tol + 256 * np.finfo(float).eps * np.abs(_direct(term, op.dimension, values, magnitude=True))
            np.testing.assert_array_less(np.abs(got - want), tol + 1e-300,
                                         err_msg=f"{op.name} J_{c + 1} term {i}, {module.BACKEND}")


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("name", list(codegen.SHIPPED_OPERATORS))
def test_shipped_kernels_agree_with_sympy(operators, name, backend):
    module = load(name, backend)
    assert module.CONTENT_HASH == operators[name].content_hash
    seed = 10 * list(codegen.SHIPPED_OPERATORS).index(name) + ["numpy", "jax"].index(backend)
    _compare(operators[name], module, seed=seed)


def _synthetic_operator() -> Operator:
    """A three-particle, two-wavevector 1D flux exercising every distribution kind, derivative
    orders, complex cofactors, couplings at combined wavevectors and a smooth part."""
    v1, v2, v3 = (velocity(a, 1)[0] for a in (1, 2, 3))
    q1, q2 = sp.symbols("q1 q2", integer=True)
    body = mu**2 * (
        sp.I * q1 * q2 * U(q1) * U(q1 + q2) * Resonance(q1 * v1 - q2 * v2 + (q2 - q1) * v3, 2)
        * F(v1) * sp.Derivative(F(v2), v2) * F(v3)
        + U(q2) ** 2 * sp.Abs(q1) * PrincipalValue(q1 * (v1 - v2), 1) * sp.DiracDelta(q2 * (v1 - v3), 1)
        * sp.Derivative(F(v1), (v1, 2)) * F(v3)
        + U(q1) * U(q1 - q2) * sp.sign(q2) / q1**2 * sp.DiracDelta(q1 * v1 - q1 * v3)
        * F(v2) * sp.Derivative(F(v3), v3) * (v1 - v3) ** 2
        + sp.Rational(1, 3) * U(q1) ** 2 * q1**2 * F(v1) * F(v2) * F(v3) * sp.exp(-v2**2)
        + 2 * sp.I * U(q2) * PrincipalValue(q2 * v2 - q2 * v3, 3) * F(v1) * F(v2) * sp.Derivative(F(v3), v3)
    )
    term = FourierTerm(body, (q1, q2), (v2, v3))
    return Operator(2, 1, False, [], [[term]], Derivation({"synthetic": True}))


def _import_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_synthetic_operator_every_distribution_kind(tmp_path, backend):
    op = _synthetic_operator()
    frozen = freeze(op)
    kinds = {(d.kind, d.order) for _, k in frozen.kernels() for d in k.distributions}
    assert kinds == {("resonance", 2), ("pv", 1), ("delta", 1), ("delta", 0), ("pv", 3)}
    assert any(k.is_complex for _, k in frozen.kernels())
    assert any(not k.distributions for _, k in frozen.kernels())  # the smooth part
    names = {a.name for a in frozen.terms[0].arguments}
    assert {"U_q1", "U_q2", "U_q1_plus_q2", "U_q1_minus_q2", "F2_v1", "F1_v3"} <= names
    path = tmp_path / f"synthetic_{backend}.py"
    path.write_text(render(frozen, backend, engine="test"))
    _compare(op, _import_file(path, f"synthetic_{backend}"), seed=7)


# -- JAX: jit and vmap --------------------------------------------------------------------------

def test_jax_kernels_jit_and_vmap():
    from numerics.backends import jax_module

    jax = jax_module()
    numpy_module, jax_module_ = load("landau_1d", "numpy"), load("landau_1d", "jax")
    term = jax_module_.METADATA["terms"][0]
    function = term["kernels"][0]["function"]
    names = [a["name"] for a in term["arguments"]]
    rng = np.random.default_rng(3)
    n, m = 7, 11
    batched = {"v1", "F0_v1", "F1_v1"}  # particle-1 quantities vary along the vmapped axis
    values = {name: (rng.normal(size=(n, 1)) if name in batched else rng.normal(size=(1, m))) for name in names}
    values["q1"] = rng.integers(1, 4, size=(1, m))
    want = numpy_module.KERNELS[function](*[values[k] for k in names])
    jitted = jax.jit(jax_module_.KERNELS[function])
    np.testing.assert_allclose(np.asarray(jitted(*[values[k] for k in names])), want, rtol=1e-14, atol=0)
    assert jitted(*[values[k] for k in names]).dtype == np.float64
    in_axes = tuple(0 if k in batched else None for k in names)
    flat = [values[k][:, 0] if k in batched else values[k][0] for k in names]
    mapped = jax.jit(jax.vmap(jax_module_.KERNELS[function], in_axes=in_axes))(*flat)
    np.testing.assert_allclose(np.asarray(mapped), want, rtol=1e-14, atol=0)
    # 2D: jit as well
    term2 = load("landau_2d", "jax").METADATA["terms"][1]
    f2 = load("landau_2d", "jax").KERNELS[term2["kernels"][0]["function"]]
    args2 = [rng.integers(1, 3, size=5) if a["role"] == "wavevector" else rng.normal(size=5) for a in term2["arguments"]]
    np.testing.assert_allclose(np.asarray(jax.jit(f2)(*args2)),
                               load("landau_2d", "numpy").KERNELS[term2["kernels"][0]["function"]](*args2),
                               rtol=1e-14, atol=0)


# -- files: headers, determinism, regenerate and --check ------------------------------------------

def test_generated_files_have_headers(operators):
    from derive.cache import engine_fingerprint

    directory = codegen.generated_dir()
    assert available() == {name: sorted(codegen.GENERATED_BACKENDS) for name in codegen.SHIPPED_OPERATORS}
    for name, op in operators.items():
        for backend in codegen.GENERATED_BACKENDS:
            text = (directory / f"{name}_{backend}.py").read_text()
            head = text.splitlines()[:7]
            assert head[0] == codegen.MARKER
            assert any(name in line and "operator" in line for line in head)
            assert any(op.content_hash in line and "content hash" in line for line in head)
            assert any("engine fingerprint" in line for line in head)
            assert any("regenerate with:" in line and codegen.REGENERATE_COMMAND in line for line in head)
            compile(text, f"{name}_{backend}.py", "exec")
    assert len(engine_fingerprint()) == 16


def test_regeneration_is_deterministic(frozen):
    """A fresh interpreter with another hash seed derives every shipped operator again and
    renders the same bytes as this process (derivation and rendering are both deterministic)."""
    script = ("import sys; from derive import codegen; fr = codegen.frozen_shipped(); "
              "sys.stdout.write(''.join(codegen.render(fr[n], b, 'fixed') for n in fr "
              "for b in codegen.GENERATED_BACKENDS))")
    env = {**os.environ, "PYTHONHASHSEED": "4321"}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out == "".join(render(frozen[n], b, "fixed") for n in frozen for b in codegen.GENERATED_BACKENDS)


def test_check_passes_on_committed_files(frozen):
    report = codegen.check_generated(frozen=frozen)
    assert report.ok, report.message()
    assert not report.stale and not report.missing and not report.unexpected


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory, operators):
    """A derivation cache holding the shipped operators (derived once by the module fixture),
    so the command-line tests below exercise the cached path instead of re-deriving."""
    from derive import cache

    directory = tmp_path_factory.mktemp("bbgky-cache")
    old = os.environ.get("BBGKY_CACHE_DIR")
    os.environ["BBGKY_CACHE_DIR"] = str(directory)
    try:
        for name, op in operators.items():
            cache.save(op, codegen.SHIPPED_OPERATORS[name])
    finally:
        if old is None:
            del os.environ["BBGKY_CACHE_DIR"]
        else:
            os.environ["BBGKY_CACHE_DIR"] = old
    return directory


def test_cache_keeps_the_symmetric_form(operators, warm_cache, monkeypatch):
    """The three-body operator carries its symmetric form (the "symmetric" stage), and the JSON
    cache gives it back: constant, coupling Lambda and quadratic form, and the checks run on it."""
    from derive import cache

    op = operators["three_body_1d"]
    assert op.symmetric is not None and "symmetric" in op.derivation.stage_names()
    monkeypatch.setenv("BBGKY_CACHE_DIR", str(warm_cache))
    back = cache.load(codegen.SHIPPED_OPERATORS["three_body_1d"])
    assert back.symmetric.constant == op.symmetric.constant
    assert sp.simplify(back.symmetric.coupling - op.symmetric.coupling) == 0
    assert back.symmetric.quadratic_form == op.symmetric.quadratic_form
    assert back.check_h_theorem().holds


def test_check_fails_on_a_modified_copy(tmp_path, capsys, monkeypatch, warm_cache):
    from numerics.cli import main

    monkeypatch.setenv("BBGKY_CACHE_DIR", str(warm_cache))
    copy = tmp_path / "generated"
    shutil.copytree(codegen.generated_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert main(["regenerate", "--check", "--directory", str(copy)]) == 0
    assert "ok:" in capsys.readouterr().out
    target = copy / "landau_1d_numpy.py"
    text = target.read_text()
    assert "2*numpy.pi**2" in text
    target.write_text(text.replace("2*numpy.pi**2", "3*numpy.pi**2"))  # a copy, never the committed file
    assert main(["regenerate", "--check", "--directory", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "landau_1d_numpy.py" in err and "differ" in err and "bbgky regenerate" in err
    stale = next(line for line in err.splitlines() if line.startswith("generated files differ"))
    assert "landau_1d_numpy.py" in stale and "landau_2d_numpy.py" not in stale
    (copy / "landau_2d_jax.py").unlink()
    assert main(["regenerate", "--check", "--directory", str(copy)]) == 1
    assert "missing" in capsys.readouterr().err


def test_check_header_only_and_strict(tmp_path, frozen):
    copy = tmp_path / "generated"
    copy.mkdir()
    for name, op in frozen.items():
        for backend in codegen.GENERATED_BACKENDS:
            (copy / f"{name}_{backend}.py").write_text(render(op, backend, "0123456789abcdef"))
    lenient = codegen.check_generated(copy, frozen=frozen)
    assert lenient.ok and len(lenient.header_only) == 3 * len(codegen.SHIPPED_OPERATORS) and "engine fingerprint" in lenient.message()
    strict = codegen.check_generated(copy, frozen=frozen, strict=True)
    assert not strict.ok and "landau_1d_cupy.py" in strict.message()


def test_regenerate_writes_and_prunes(tmp_path, capsys, monkeypatch, warm_cache):
    from numerics.cli import main

    monkeypatch.setenv("BBGKY_CACHE_DIR", str(warm_cache))
    out = tmp_path / "gen"
    out.mkdir()
    (out / "retired_numpy.py").write_text(codegen.MARKER + "\n")  # a generated file no longer shipped
    assert codegen.check_generated(out).unexpected == ["retired_numpy.py"]
    assert main(["regenerate", "--directory", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "removed" in printed and "landau_2d_cupy.py" in printed
    assert not (out / "retired_numpy.py").exists()
    for name in (f"{op}_{b}.py" for op in codegen.SHIPPED_OPERATORS for b in codegen.GENERATED_BACKENDS):
        committed = (codegen.generated_dir() / name).read_text().splitlines()
        fresh = (out / name).read_text().splitlines()
        # identical but for the engine fingerprint lines (others may be editing the engine)
        assert [a for a in committed if "engine" not in a.lower()] == [b for b in fresh if "engine" not in b.lower()]
    assert codegen.check_generated(out).ok


# -- freeze errors ----------------------------------------------------------------------------------

def _term(body, sums=None, integrals=None):
    q1 = sp.Symbol("q1", integer=True)
    v2 = velocity(2, 1)[0]
    return FourierTerm(body, sums if sums is not None else (q1,), integrals if integrals is not None else (v2,))


V1, V2 = velocity(1, 1)[0], velocity(2, 1)[0]
Q1 = sp.Symbol("q1", integer=True)


@pytest.mark.parametrize("body, match", [
    (sp.Function("G")(V1) * sp.DiracDelta(Q1 * (V1 - V2)), r"G\(v1\) \(undefined function 'G'\)"),
    (sp.besselj(0, V1) * F(V2), r"besselj\(0, v1\) \(SymPy node 'besselj'\)"),
    (sp.Symbol("t") * F(V1) * sp.DiracDelta(V1 - V2), r"t \(a symbol that is not a kernel input\)"),
    (F(V1) * sp.DiracDelta(V1**2 - V2), r"bilinear.*v1\*\*2"),
    (F(V1) * sp.DiracDelta(Q1 * (V1 - V2)) ** 2, r"power of a distribution"),
    (sp.Abs(sp.DiracDelta(V1 - V2)) * F(V1), r"DiracDelta\(v1 - v2\) \(a distribution that is not a plain factor"),
    (F(V1 + V2) * sp.DiracDelta(V1 - V2), r"F\(v1 \+ v2\).*full velocity"),
    (U(Q1 * V1) * F(V1), r"U\(q1\*v1\).*integer combination"),
    (F(V1) ** V2 * sp.DiracDelta(V1 - V2), r"only numeric powers"),
])
def test_freeze_names_the_unsupported_node(body, match):
    with pytest.raises(FreezeError, match=match):
        freeze_term(_term(body), 1)


def test_freeze_error_names_the_place_and_refuses_vlasov():
    op = _synthetic_operator()
    bad = Operator(1, 1, False, [], [[op.flux[0][0], _term(sp.Function("ghat2")(V1, V2) * sp.DiracDelta(V1 - V2))]],
                   Derivation({}))
    with pytest.raises(FreezeError, match=r"undefined function 'ghat2'\) in landau_1d, flux component J_1, term 1"):
        freeze(bad)
    with pytest.raises(FreezeError, match="no flux"):
        freeze(derive.collision_operator(0, 1))


# -- CuPy: generated sources, C syntax, GPU run ------------------------------------------------------

def _cuda_specs():
    specs = []
    for name in codegen.SHIPPED_OPERATORS:
        module = _import_file(codegen.generated_dir() / f"{name}_cupy.py", f"_check_{name}_cupy")
        specs += [(module.PREAMBLE, spec) for spec in module.ELEMENTWISE.values()]
    frozen = freeze(_synthetic_operator())
    specs += [(codegen.CUDA_PREAMBLE, spec) for spec in codegen.cuda_sources(frozen).values()]
    return specs


def _params(text):
    return [p.split()[1] for p in text.split(",")]


def _c_wrapper(preamble, spec) -> str:
    ins, outs = _params(spec["in_params"]), _params(spec["out_params"])
    sig = ", ".join([f"double {p}" for p in ins] + [f"double *{o}_ptr" for o in outs])
    return (f"#include <math.h>\n{preamble}\nvoid {spec['name']}({sig}) {{\n"
            + "".join(f"    double {o};\n" for o in outs) + spec["operation"]
            + "".join(f"    *{o}_ptr = {o};\n" for o in outs) + "}\n")


def _cuda_wrapper(preamble, spec) -> str:
    ins, outs = _params(spec["in_params"]), _params(spec["out_params"])
    sig = ", ".join([f"const double *in_{p}" for p in ins] + [f"double *out_{o}" for o in outs] + ["int n"])
    return (f"#include <math.h>\n{preamble}\nextern \"C\" __global__ void {spec['name']}({sig}) {{\n"
            "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n    if (i >= n) return;\n"
            + "".join(f"    const double {p} = in_{p}[i];\n" for p in ins)
            + "".join(f"    double {o};\n" for o in outs) + spec["operation"]
            + "".join(f"    out_{o}[i] = {o};\n" for o in outs) + "}\n")


def test_cupy_sources_compile_with_gcc(tmp_path):
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler (gcc/cc) on PATH to syntax-check the generated CUDA C")
    specs = _cuda_specs()
    assert any(_params(s["out_params"]) == ["out_re", "out_im"] for _, s in specs)  # complex split exercised
    source = tmp_path / "kernels.c"
    source.write_text("\n".join(_c_wrapper(p, s) for p, s in specs))
    result = subprocess.run([gcc, "-std=c99", "-fsyntax-only", "-Wall", "-Werror", str(source)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_cupy_sources_compile_with_nvcc(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH: the CUDA compile check of the generated kernels needs the CUDA toolkit")
    source = tmp_path / "kernels.cu"
    source.write_text("\n".join(_cuda_wrapper(p, s) for p, s in _cuda_specs()))
    result = subprocess.run([nvcc, "-c", str(source), "-o", str(tmp_path / "kernels.o")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_cupy_backend_unavailable_is_an_error():
    ok, reason = cupy_usable()
    if ok:
        pytest.skip("a usable GPU is present: the unavailable-backend error cannot be observed")
    with pytest.raises(BackendUnavailableError, match="usable GPU"):
        load("landau_1d", "cupy")
    module = _import_file(codegen.generated_dir() / "landau_1d_cupy.py", "_landau_1d_cupy_no_gpu")
    with pytest.raises(BackendUnavailableError):
        module.KERNELS["J1_term0_delta"](*[1.0] * 9)


def test_load_rejects_unknown_names():
    with pytest.raises(ValueError, match="no generated numpy kernels for operator 'three_body_3d'"):
        load("three_body_3d", "numpy")
    with pytest.raises(ValueError, match="backend must be one of"):
        load("landau_1d", "torch")


@pytest.mark.gpu
@pytest.mark.skipif(not cupy_usable()[0], reason=cupy_usable()[1])
@pytest.mark.parametrize("name", list(codegen.SHIPPED_OPERATORS))
def test_cupy_kernels_match_numpy(name):
    import cupy

    gpu, cpu = load(name, "cupy"), load(name, "numpy")
    rng = np.random.default_rng(11)
    for term in cpu.METADATA["terms"]:
        args = [rng.integers(1, 4, size=64) if a["role"] == "wavevector" else rng.normal(size=64)
                for a in term["arguments"]]
        for kernel in term["kernels"]:
            want = cpu.KERNELS[kernel["function"]](*args)
            got = cupy.asnumpy(gpu.KERNELS[kernel["function"]](*[cupy.asarray(a) for a in args]))
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
