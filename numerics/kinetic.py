"""The 1/N^2 (three-body) flux of a 1D homogeneous system, from the engine's generated kernels.

    derive.collision_operator(2)  --codegen-->  numerics/generated/three_body_1d_<backend>.py
                                                      |
    flux(potential, df, v, N=...)  <-- sums over wavevectors, 2D quadrature, eps -> 0

**What is evaluated.** The engine's order-2 operator is J(v1) = sum_{q2, p} int dv2 dv4
sum_kernels cofactor * prod_d (x_d - i0)^(-n_d): products of up to three boundary values at
linear forms x_d of velocity differences (see :mod:`derive.order2`). Every x_d vanishes at
v2 = v4 = v1, so all singular lines of the (v2, v4) plane meet at one point. The boundary
values are evaluated at a finite width, (x - i s eps)^(-n) with s the largest coefficient of
v2, v4 in x (so every pole lies at distance >= eps from the real axes, whatever the
harmonics; for products without pinches any such choice has the same limit), the plane integrated with the
trapezoidal rule on a grid fine enough to resolve eps (the rule converges geometrically for
such integrands: error ~ exp(-2 pi eps / h)), and eps -> 0 taken by Richardson extrapolation over ``levels`` halvings
(J(eps) = J0 + a eps + b eps^2 + ...). The difference between the last two extrapolants is
returned as the error estimate.

**Where it applies.** (1) The limit eps -> 0 exists term by term only when no two resonances
at one argument come from opposite sides ("pinches"). :func:`derive.order2.pinch_evidence`
proves that they cancel exactly when the harmonics of the potential contain no a + b = c
(HMF; any potential with odd harmonics only); for other potentials the engine does not yet
produce a well-defined operator and :func:`flux` raises. (2) The hot-limit theory needs a
linearly stable state well above threshold: Q <= Q_c raises (``allow_unstable=True``
overrides with a warning).

**Units.** M = 1, mu = 1/N, velocity PDF phi normalised to 1, flux in the continuity
convention d(phi)/dt + d(flux)/dv = 0 (PHYSICS.md section 1). The engine's F is the phase-space
DF, F = phi / (2 pi), and its J gives flux = 2 pi J.
"""
from __future__ import annotations

import itertools
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from numerics.models.distributions import VelocityDistribution
from numerics.models.potentials import Potential

OPERATOR = "three_body_1d"
TWO_PI = 2.0 * math.pi


class TheoryNotApplicable(ValueError):
    """The requested flux lies outside the domain where the derived operator is valid."""


# ---------------------------------------------------------------------------------------
# the generated operator, prepared for one potential

def _coefficient(c) -> float:
    return float(Fraction(str(c)))


def _linear(form: dict, values: dict):
    """sum_a sum_b C[a][b] * a * b with a, b names looked up in ``values`` ("1" is 1)."""
    total = 0.0
    for a, inner in form.items():
        weight = sum(_coefficient(c) * (1.0 if b == "1" else values[b]) for b, c in inner.items())
        if weight != 0.0:
            total = total + weight * (1.0 if a == "1" else values[a])
    return total


@dataclass
class _Instance:
    """One flux term at one choice of its summed wavevectors: constant arguments and the
    coefficients of its distribution arguments, ready for the grid."""

    kernels: list  # [(function, argument names, [(kind, order, (c1, c2, c4))...])]
    constants: dict
    df_args: list  # [(name, particle, derivative order)]
    term: int = 0  # index of the flux term in the generated module


def harmonics_of(potential: Potential, kmax: int) -> dict[int, float]:
    u = potential.coefficients(kmax)
    return {k: float(u[k]) for k in range(1, kmax + 1) if u[k] != 0.0}


def sum_free(harmonics) -> bool:
    """No two harmonics (equal or not) add up to a third: the condition under which the
    engine's order-2 flux has no pinched resonance products (see derive.order2.pinch_evidence)."""
    ks = {int(k) for k, u in dict(harmonics).items() if u != 0}
    return not any(a + b in ks for a in ks for b in ks)


def prepare(module, harmonics: dict[int, float], *, half: bool = False) -> list[_Instance]:
    """Every (term, wavevectors) pair of the generated operator with at least one kernel that
    does not vanish: a kernel is kept when none of the couplings listed in its
    ``vanishes_without`` metadata is zero (absent harmonics, and U_0, are zero).

    ``half=True`` keeps the wavevector choices whose first summed wavevector is positive: the
    choices (q, p) and (-q, -p) give complex-conjugate contributions (the reality the engine's
    ``real_part`` stage proves), so J = 2 Re (sum over the half)."""
    if module.METADATA.get("format_version", 1) < 2:
        raise ValueError(f"generated module {module.__name__} predates METADATA format 2; run `bbgky regenerate`")
    kmax = max(harmonics)
    table = {0: 0.0, **{k: v for k, v in harmonics.items()}}
    values = [q for q in range(-2 * kmax, 2 * kmax + 1) if q != 0]
    out = []
    for term_index, term in enumerate(module.METADATA["terms"]):
        args = term["arguments"]
        sums = [s["name"] for s in term["sums"]]
        couplings = [a for a in args if a["role"] == "coupling"]
        df_args = [(a["name"], a["particle"], a["derivative"][0]) for a in args if a["role"] == "df"]
        for combo in itertools.product(values, repeat=len(sums)):
            if half and combo[0] < 0:
                continue
            qv = dict(zip(sums, (float(q) for q in combo)))
            consts = dict(qv)
            for c in couplings:
                k = int(round(abs(_linear({"1": c["wavevector"]}, qv))))
                consts[c["name"]] = table.get(k, 0.0)
            kernels = []
            for kern in term["kernels"]:
                if any(consts[name] == 0.0 for name in kern["vanishes_without"]):
                    continue
                dists = []
                for d in kern["distributions"]:
                    coeffs = []
                    for vel in ("v1", "v2", "v4"):
                        inner = d["linear_form"].get(vel, {})
                        coeffs.append(sum(_coefficient(c) * (1.0 if b == "1" else qv[b]) for b, c in inner.items()))
                    if set(d["linear_form"]) - {"v1", "v2", "v4"}:
                        raise ValueError(f"distribution argument {d['argument']} involves other velocities than "
                                         "v1, v2, v4")
                    if max(abs(coeffs[1]), abs(coeffs[2])) == 0.0:
                        raise ValueError(f"distribution argument {d['argument']} does not involve v2 or v4")
                    dists.append((d["kind"], int(d["order"]), tuple(coeffs)))
                fn = module.KERNELS[kern["function"]]
                names = fn.__code__.co_varnames[:fn.__code__.co_argcount]
                kernels.append((fn, names, dists))
            if kernels:
                out.append(_Instance(kernels, consts, df_args, term_index))
    return out


# ---------------------------------------------------------------------------------------
# regularised evaluation on the (v2, v4) plane

def _regularised(kind: str, order: int, x, eps, xp=np):
    """The boundary value at finite width: resonance (x - i eps)^-n, pv Re (x - i eps)^-n,
    delta^(n) the n-th derivative of the Lorentzian eps / (pi (x^2 + eps^2))."""
    if kind == "resonance":
        return (x - 1j * eps) ** (-order)
    if kind == "pv":
        return xp.real((x - 1j * eps) ** (-order))
    if kind == "delta":
        m = order
        c = (-1) ** m * math.factorial(m) / (2j * math.pi)
        return c * ((x - 1j * eps) ** (-m - 1) - (x + 1j * eps) ** (-m - 1))
    raise ValueError(f"unknown distribution kind {kind!r}")


def _integrand_sum(instances, v1, eps, grid, dfs_grid, dfs_v1, mu, xp=np):
    """Sum over instances and kernels of cofactor * prod(regularised distributions) on the
    (v2, v4) grid, integrated by the trapezoidal rule. Distribution factors are computed once
    per distinct (kind, order, argument) and shared between kernels."""
    V2 = grid[:, None]
    V4 = grid[None, :]
    cache = {}

    def factor(kind, order, coeffs):
        key = (kind, order, coeffs)
        if key not in cache:
            c1, c2, c4 = coeffs
            width = eps * max(abs(c2), abs(c4))  # every pole at distance >= eps from the real v2, v4 axes
            cache[key] = _regularised(kind, order, c1 * v1 + c2 * V2 + c4 * V4, width, xp)
        return cache[key]

    columns = {2: lambda k: dfs_grid[k][:, None], 4: lambda k: dfs_grid[k][None, :], 1: lambda k: dfs_v1[k]}
    total = 0.0
    for inst in instances:
        kw = dict(inst.constants)
        kw["v1"], kw["v2"], kw["v4"], kw["mu"] = v1, V2, V4, mu
        for name, particle, order in inst.df_args:
            kw[name] = columns[particle](order)
        for fn, names, dists in inst.kernels:
            value = fn(*[kw[k] for k in names])
            for kind, order, coeffs in dists:
                value = value * factor(kind, order, coeffs)
            total = total + value
    inner = xp.trapezoid(total, grid, axis=1)
    return xp.trapezoid(inner, grid)


def _plane_integral(instances, v1, eps, grid, dfs_grid, dfs_v1, mu):
    """NumPy reference: int dv2 dv4 of the regularised integrand at one v1 and eps."""
    return complex(_integrand_sum(instances, v1, eps, grid, dfs_grid, dfs_v1, mu, np))


class _JaxPlane:
    """The same integral for every v1, jit-compiled with JAX. The instances of one flux term
    share its kernels and differ only by constants (wavevectors, couplings) and distribution
    coefficients, so each term is one ``lax.scan`` over its wavevector choices: the traced
    graph grows with the number of kernels (176), not with the number of instances, and a
    potential with several harmonics compiles as fast as the HMF. ``lax.map`` runs over v1."""

    def __init__(self, instances):
        from numerics.backends import jax_module

        jax = jax_module()
        jnp = jax.numpy
        groups: dict[int, list] = {}
        for inst in instances:
            groups.setdefault(inst.term, []).append(inst)
        plans = []
        for insts in groups.values():
            union: dict = {}
            for inst in insts:
                for fn, names, dists in inst.kernels:
                    union.setdefault(fn.__name__, (fn, names, [(k, o) for k, o, _ in dists]))
            kernels = list(union.values())
            const_names = sorted(insts[0].constants)
            consts = {n: np.array([inst.constants[n] for inst in insts]) for n in const_names}
            # distribution coefficients per instance, for every kernel of the union (zeros when a
            # kernel is absent from an instance: its cofactor vanishes there by construction)
            coeffs = []
            for fn, _, dlist in kernels:
                per = []
                for inst in insts:
                    found = {f.__name__: d for f, _, d in inst.kernels}.get(fn.__name__)
                    per.append([c for _, _, c in found] if found else [(0.0, 1.0, 0.0)] * len(dlist))
                coeffs.append(np.array(per))  # (instances, distributions, 3)
            present = np.array([[1.0 if fn.__name__ in {f.__name__ for f, _, _ in inst.kernels} else 0.0
                                 for fn, _, _ in kernels] for inst in insts])
            plans.append((kernels, const_names, consts, coeffs, present, insts[0].df_args))

        def plane(v1, eps, grid, dfs_grid, dfs_v1, mu):
            V2, V4 = grid[:, None], grid[None, :]
            columns = {2: lambda k: dfs_grid[k][:, None], 4: lambda k: dfs_grid[k][None, :], 1: lambda k: dfs_v1[k]}
            total = jnp.zeros((grid.size, grid.size), dtype=complex)
            for kernels, const_names, consts, coeffs, present, df_args in plans:
                def body(acc, x, kernels=kernels, const_names=const_names, df_args=df_args):
                    cvals, cks, pres = x
                    kw = dict(zip(const_names, cvals))
                    kw["v1"], kw["v2"], kw["v4"], kw["mu"] = v1, V2, V4, mu
                    for name, particle, order in df_args:
                        kw[name] = columns[particle](order)
                    out = 0.0
                    for j, (fn, names, dlist) in enumerate(kernels):
                        value = fn(*[kw[k] for k in names])
                        for d, (kind, order) in enumerate(dlist):
                            c1, c2, c4 = cks[j][d, 0], cks[j][d, 1], cks[j][d, 2]
                            width = eps * jnp.maximum(jnp.abs(c2), jnp.abs(c4))
                            value = value * _regularised(kind, order, c1 * v1 + c2 * V2 + c4 * V4, width, jnp)
                        out = out + pres[j] * value
                    return acc + out, None

                xs = ([jnp.asarray(consts[n]) for n in const_names], [jnp.asarray(c) for c in coeffs],
                      jnp.asarray(present))
                total, _ = jax.lax.scan(body, total, xs)
            return jnp.trapezoid(jnp.trapezoid(total, grid, axis=1), grid)

        def many(v1s, dfs_v1s, eps, grid, dfs_grid, mu):
            return jax.lax.map(lambda a: plane(a[0], eps, grid, dfs_grid, a[1], mu), (v1s, dfs_v1s))

        self._fn = jax.jit(many)
        self._jnp = jnp

    def __call__(self, v1s, eps, grid, dfs_grid, dfs_v1s, mu) -> np.ndarray:
        jnp = self._jnp
        out = self._fn(jnp.asarray(v1s), jnp.asarray(dfs_v1s), eps, jnp.asarray(grid), jnp.asarray(dfs_grid), mu)
        return np.asarray(out)


_EVALUATORS: dict = {}


def _evaluator(backend: str, harmonics: dict):
    """(module, instances, evaluator) for a backend and potential, kept for the process so that
    JAX compiles once per potential and grid size."""
    from numerics.generated import load

    key = (backend, tuple(sorted(harmonics.items())))
    if key not in _EVALUATORS:
        module = load(OPERATOR, backend)
        instances = prepare(module, harmonics, half=True)
        evaluator = _numpy_plane(instances) if backend == "numpy" else _JaxPlane(instances)
        _EVALUATORS[key] = (module, instances, evaluator)
    return _EVALUATORS[key]


def _numpy_plane(instances):
    def evaluate(v1s, eps, grid, dfs_grid, dfs_v1s, mu) -> np.ndarray:
        return np.array([_plane_integral(instances, float(x), eps, grid, dfs_grid, d, mu)
                         for x, d in zip(v1s, dfs_v1s)])
    return evaluate


# ---------------------------------------------------------------------------------------
# public API

@dataclass
class FluxResult:
    """The predicted flux on a velocity grid, with its error estimate and provenance."""

    v: np.ndarray
    flux: np.ndarray  # continuity convention, physical units (M = 1, mu = 1/N)
    error: np.ndarray  # |difference of the last two Richardson extrapolants|
    eps: np.ndarray  # regularisation widths used (velocity units)
    by_eps: np.ndarray  # (levels, len(v)) flux at each eps
    N: float
    kmax: int
    sigma: float
    Q: float
    potential: dict
    df: dict
    backend: str
    seconds: float
    meta: dict = field(default_factory=dict)

    def dimensionless(self):
        """(u, N^2 Q^4 flux / sigma): velocity in units of sigma and the flux rescaled by the
        expected 1/(N^2 Q^4) scaling, with time in units of 1/sigma."""
        return self.v / self.sigma, self.flux * self.N**2 * self.Q**4 / self.sigma

    def as_dict(self) -> dict:
        return {"v": self.v.tolist(), "flux": self.flux.tolist(), "error": self.error.tolist(),
                "eps": self.eps.tolist(), "by_eps": self.by_eps.tolist(),
                "N": self.N, "kmax": self.kmax, "sigma": self.sigma, "Q": self.Q,
                "potential": self.potential, "df": self.df, "backend": self.backend,
                "seconds": self.seconds, "meta": self.meta,
                "convention": "d(phi)/dt + d(flux)/dv = 0; M = 1, mu = 1/N"}

    def save(self, path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.as_dict(), indent=1))
        return path


def _check_inputs(potential, df, v, N, kmax, levels, eps0):
    if not isinstance(potential, Potential):
        raise TypeError(f"potential must be a numerics Potential, got {type(potential).__name__}")
    if not isinstance(df, VelocityDistribution):
        raise TypeError(f"df must be a numerics VelocityDistribution, got {type(df).__name__}")
    v = np.atleast_1d(np.asarray(v, dtype=float))
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError("v must be a non-empty 1D array of finite velocities")
    if not (isinstance(N, (int, float, np.integer, np.floating)) and math.isfinite(N) and N >= 2):
        raise ValueError(f"N must be a finite number >= 2, got {N!r}")
    if kmax is None:
        kmax = potential.kmax_exact
        if kmax is None:
            raise ValueError(f"kmax is required for {type(potential).__name__} (an infinite Fourier series); "
                             "give kmax >= 1")
    if isinstance(kmax, bool) or not isinstance(kmax, (int, np.integer)) or kmax < 1:
        raise ValueError(f"kmax must be an integer >= 1, got {kmax!r}")
    if isinstance(levels, bool) or not isinstance(levels, int) or not 2 <= levels <= 5:
        raise ValueError(f"levels must be an integer in [2, 5], got {levels!r}")
    if not (isinstance(eps0, (int, float)) and 0 < eps0 <= 1):
        raise ValueError(f"eps0 (first regularisation width in units of sigma) must be in (0, 1], got {eps0!r}")
    return v, int(kmax)


def richardson(values) -> tuple[np.ndarray, np.ndarray]:
    """Extrapolate values[j] = J(eps0 / 2^j) to eps -> 0 assuming J = J0 + a eps + b eps^2 + ...
    (Richardson table); returns (J0, |J0 - the extrapolant one order lower|)."""
    rows = [[np.asarray(x, dtype=float)] for x in values]
    for j in range(1, len(rows)):
        for m in range(1, j + 1):
            f = 2.0**m
            rows[j].append((f * rows[j][m - 1] - rows[j - 1][m - 1]) / (f - 1.0))
    last = rows[-1]
    return last[-1], np.abs(last[-1] - last[-2])


def flux(potential: Potential, df: VelocityDistribution, v, *, N: float, kmax: int | None = None,
         backend: str = "numpy", levels: int = 3, eps0: float = 0.2, points_per_eps: float = 4.5,
         allow_unstable: bool = False, progress=None) -> FluxResult:
    """The 1/N^2 flux (continuity convention, physical units) at velocities ``v``.

    ``potential`` is truncated at ``kmax`` (default: its exact range); ``df`` must be smooth
    (third derivatives are needed). Regularisation widths eps0 * sigma / 2^j, j < ``levels``,
    with grid spacing eps / points_per_eps. ``backend``: "numpy" (reference) or "jax".
    Raises :class:`TheoryNotApplicable` for pinched potentials and, unless ``allow_unstable``,
    for Q <= Q_c.
    """
    from numerics.models.stability import Q as stability_Q
    from numerics.models.stability import critical_Q

    start = time.perf_counter()
    v, kmax = _check_inputs(potential, df, v, N, kmax, levels, eps0)
    if not (isinstance(points_per_eps, (int, float)) and math.isfinite(points_per_eps) and points_per_eps >= 1):
        raise ValueError(f"points_per_eps must be a number >= 1 (grid points per regularisation width), "
                         f"got {points_per_eps!r}")
    if backend not in ("numpy", "jax"):
        raise ValueError(f"backend must be 'numpy' or 'jax' for the three-body flux, got {backend!r} "
                         "(the CuPy kernels are generated but the plane quadrature has no CuPy driver yet)")
    harmonics = harmonics_of(potential, kmax)
    if not harmonics:
        raise ValueError(f"potential has no non-zero harmonic up to kmax = {kmax}")
    if not sum_free(harmonics):
        sums = sorted({(a, b, a + b) for a in harmonics for b in harmonics if a <= b and a + b in harmonics})
        raise TheoryNotApplicable(
            f"potential truncated at kmax = {kmax} has harmonics {sorted(harmonics)} with a + b = c "
            f"(e.g. {sums[0][0]} + {sums[0][1]} = {sums[0][2]}): the engine's order-2 flux then holds pinched "
            "resonance products that do not cancel (derive.order2.pinch_evidence), and the canonical form "
            "that resolves them is not derived yet. Supported: harmonics with no a + b = c, e.g. HMF or "
            "odd harmonics only.")
    q = stability_Q(potential, df, kmax)
    q_c = critical_Q(df)
    if q <= q_c:
        message = (f"Q = {q:.4g} <= Q_c = {q_c:.4g}: the homogeneous state is linearly unstable and the "
                   "hot-limit three-body theory does not apply (raise sigma or weaken the potential)")
        if not allow_unstable:
            raise TheoryNotApplicable(message + "; pass allow_unstable=True to evaluate anyway")
        warnings.warn(message + " (allow_unstable=True)", RuntimeWarning, stacklevel=2)
    elif q < 2.0 * q_c:
        warnings.warn(f"Q = {q:.4g} < 2 Q_c = {2 * q_c:.4g}: collective effects the hot-limit theory neglects "
                      "are not small", RuntimeWarning, stacklevel=2)
    module, instances, evaluator = _evaluator(backend, harmonics)
    sigma = float(df.sigma)
    lo, hi = df.support(1e-14)
    mu = 1.0 / float(N)
    eps_list = eps0 * sigma / 2.0 ** np.arange(levels)
    by_eps = np.zeros((levels, v.size))
    dfs_v1s = np.stack([df.derivative(v, k) / TWO_PI for k in range(4)], axis=1)
    for j, eps in enumerate(eps_list):
        h = eps / points_per_eps
        n = int(math.ceil((hi - lo) / h)) + 1
        grid = np.linspace(lo, hi, n)
        dfs_grid = np.stack([df.derivative(grid, k) / TWO_PI for k in range(4)])
        values = evaluator(v, float(eps), grid, dfs_grid, dfs_v1s, mu)
        by_eps[j] = 2.0 * TWO_PI * np.real(values)
        if progress is not None:
            progress(j)
    best, err = richardson(by_eps)
    return FluxResult(v, best, err, eps_list, by_eps, float(N), kmax, sigma, q,
                      potential.parameters(), df.parameters(), backend, time.perf_counter() - start,
                      {"operator": OPERATOR, "content_hash": module.CONTENT_HASH, "levels": levels, "eps0": eps0,
                       "points_per_eps": points_per_eps, "support": [lo, hi], "harmonics": harmonics})


# ---------------------------------------------------------------------------------------
# property-based verification (``bbgky verify``)

def _random_sum_free(rng) -> dict[int, float]:
    choices = [(1,), (2,), (1, 3), (2, 3), (3,)]
    ks = choices[rng.integers(len(choices))]
    out = {}
    for k in ks:
        out[int(k)] = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 1.0))
    if max(out.values()) <= 0:  # keep one attractive harmonic so Q is finite
        out[ks[0]] = abs(out[ks[0]])
    return out


def verify(operator: str = OPERATOR, *, examples: int = 3, seed: int = 0, log=None) -> dict:
    """Physics checks of the generated three-body operator on random sum-free potentials and
    smooth DFs. Returns {"checks": [{"name", "passed", "detail", ...}], ...}.

    Per example: the Maxwellian and a shifted Maxwellian are steady (|flux| below 3 % of the
    flux of an n = 4 profile of the same sigma); the flux is odd for an even DF and Galilean
    covariant (a shifted profile gives the shifted flux); energy conservation int v F dv = 0
    (and momentum int F dv = 0, exact by oddness) to 5 % of int |v F| dv; F scales exactly as
    N^-2; NumPy and JAX agree to 1e-10.
    """
    from numerics.models import FourierPotential, Gaussian, GeneralizedGaussian, Shifted

    if operator != OPERATOR:
        raise ValueError(f"verify knows the generated operator {OPERATOR!r}, got {operator!r}")
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise ValueError(f"examples must be an integer >= 1, got {examples!r}")
    rng = np.random.default_rng(seed)
    fast = dict(levels=3, eps0=0.3, points_per_eps=4.0, backend="jax")
    checks = []

    def record(name, passed, detail, **extra):
        checks.append({"name": name, "passed": bool(passed), "detail": detail, **extra})
        if log:
            log(f"[{'pass' if passed else 'FAIL'}] {name}: {detail}")

    for e in range(examples):
        harmonics = _random_sum_free(rng) if e else {1: 0.5}
        pot = FourierPotential(harmonics)
        q = float(rng.uniform(3.0, 8.0))
        sigma = math.sqrt(q * max(pot.attractive_max(), 1e-12))
        n = int(rng.choice([4, 6]))
        tag = f"U = {harmonics}, n = {n}, sigma = {sigma:.3g}"
        ref_df = GeneralizedGaussian(n, sigma)
        v = sigma * np.linspace(0.0, 4.0, 17)
        ref = flux(pot, ref_df, v, N=1000, **fast)
        scale = float(np.max(np.abs(ref.flux)))
        probe = sigma * np.array([0.4, 1.1, 2.2])
        for name, df in (("maxwellian", Gaussian(sigma)), ("shifted_maxwellian", Shifted(Gaussian(sigma), 0.3 * sigma))):
            r = flux(pot, df, probe + df.mean, N=1000, **fast)
            worst = float(np.max(np.abs(r.flux))) / scale
            record(f"{name}_steady", worst < 0.03, f"{tag}: max |F| / max |F_n{n}| = {worst:.2e} (< 0.03)",
                   example=e)
        odd = flux(pot, ref_df, np.concatenate([-probe, probe]), N=1000, **fast)
        asym = float(np.max(np.abs(odd.by_eps[:, :3] + odd.by_eps[:, 3:]))) / scale
        record("odd_for_even_df", asym < 1e-8, f"{tag}: max |F(-v) + F(v)| / max |F| = {asym:.1e}", example=e)
        shift = 0.5 * sigma
        moved = flux(pot, Shifted(ref_df, shift), probe + shift, N=1000, **fast)
        gal = float(np.max(np.abs(moved.by_eps - odd.by_eps[:, 3:]))) / scale
        record("galilean_covariance", gal < 1e-6, f"{tag}: shifted profile vs shifted flux, max diff / max |F| "
               f"= {gal:.1e}", example=e)
        energy = 2.0 * np.trapezoid(v * ref.flux, v)
        e_scale = 2.0 * np.trapezoid(np.abs(v * ref.flux), v)
        record("energy_conservation", abs(energy) < 0.05 * e_scale,
               f"{tag}: int v F dv = {energy:.2e}, int |v F| dv = {e_scale:.2e} (ratio < 0.05; int F dv = 0 "
               "by oddness)", example=e)
        ratio = float(flux(pot, ref_df, probe[:1], N=1000, **fast).flux[0]
                      / flux(pot, ref_df, probe[:1], N=2000, **fast).flux[0])
        record("inverse_N_squared", abs(ratio - 4.0) < 1e-10, f"{tag}: F(N=1000)/F(N=2000) = {ratio:.12f}",
               example=e)
        if e == 0:
            kw = dict(N=1000, levels=2, eps0=0.4, points_per_eps=3.0)
            a = flux(pot, ref_df, probe[:2], backend="numpy", **kw)
            b = flux(pot, ref_df, probe[:2], backend="jax", **kw)
            diff = float(np.max(np.abs(a.by_eps - b.by_eps)) / np.max(np.abs(a.by_eps)))
            record("numpy_jax_agreement", diff < 1e-10, f"{tag}: max relative difference {diff:.1e}", example=e)
    return {"operator": operator, "seed": seed, "examples": examples, "checks": checks}
