"""The code generator: the one place where symbolic operators become plain array functions.

    Operator --freeze--> FrozenOperator --render(backend)--> Python module text
                                                           --write--> numerics/generated/

**What is generated.** An :class:`~derive.operator.Operator` holds its flux as
``FourierTerm(body, sums, integrals)``: J_c(v1) = sum over the wavevectors in ``sums`` of the
integral over the velocities in ``integrals`` of ``body`` (dF/dt = -div_{v1} J, a positive
flux moves particles up in velocity; mu = 1/N). Bodies hold distributions (Dirac deltas and
their derivatives, principal values, resonances 1/(x - i0)^n) that cannot be evaluated
pointwise, so :func:`freeze` collects each body by its products of distribution factors,

    body = sum_p  cofactor_p(v, q, mu, U, F, F', ...) * prod_{d in p} distribution_d(x_d),

and one kernel function per (term, pattern p) returns the smooth ``cofactor_p`` as a plain
function of arrays. The distributions are described by JSON-able metadata (``METADATA`` in
the generated module), which the numerical code uses for quadrature:

* ``kind``: ``"delta"`` (the derivative ``delta^(order)(x)``; order 0 is delta itself),
  ``"pv"`` (``P(1/x^order)``), ``"resonance"`` (``1/(x - i0)^order``);
* ``argument``: the argument x as text (SymPy ``sstr``);
* ``linear_form``: x = sum_a sum_b C[a][b] * a * b with a a velocity-component name or ``"1"``
  and b a wavevector-component name or ``"1"`` (the names of the kernel arguments), e.g.
  ``{"v1": {"q1": 1}, "v2": {"q1": -1}}`` is q1*v1 - q1*v2. Coefficients are ints, or
  strings ``"p/q"`` for non-integer rationals (``fractions.Fraction(str(c))`` reads both).

**Kernel arguments** (all broadcastable arrays or scalars; listed per term in
``METADATA["terms"][i]["arguments"]`` with their role): the velocity components of particle 1
and of the integrated particles (``v1``, ``v2`` in 1D; ``v1_1, v1_2, v2_1, v2_2`` in 2D), the
wavevector components (``q1`` or ``q1_1, q1_2``; integers), ``mu`` when the term carries it,
the couplings U at the wavevectors the term needs (``U_q1`` = U_{q1}, ``U_q1_plus_q2`` =
U_{q1+q2}; role ``coupling`` with the wavevector as a linear form over the summed
wavevectors) and the DF and its derivatives at each velocity (``F0_v1`` = F(v1),
``F1_v1`` = F'(v1) in 1D; in d dimensions one digit per component of the derivative
multi-index, ``F10_v1`` = dF/dv1_1 at v1). Every kernel of a term takes the same arguments.
The result broadcasts against the arguments it depends on.

**Freeze.** Anything the backends cannot evaluate -- an unknown function, a symbol that is
not an input, a distribution that is not a plain factor, a distribution argument that is not
bilinear in velocities and wavevectors -- raises :class:`FreezeError` naming the node.

**Backends.** ``numpy`` and ``jax`` modules print the cofactors with the printers of
:mod:`derive.printers` after common-subexpression elimination (``sympy.cse``); the JAX module
has no Python control flow on values (jit/vmap-compatible). The ``cupy`` module holds CUDA C
sources for ``cupy.ElementwiseKernel`` (double precision; complex cofactors split into real
and imaginary outputs) and compiles them on first use; it imports CuPy only then.

**Files.** Each generated module starts with a header naming the operator, its content hash,
the engine fingerprint (:func:`derive.cache.engine_fingerprint`) and the command that
regenerates it (``bbgky regenerate``). Output is deterministic: the same operator gives a
byte-identical file. :data:`SHIPPED_OPERATORS` lists the operators whose kernels ship in
``numerics/generated``; ``bbgky regenerate --check`` (:func:`check_generated`) reports files
that differ from what the engine produces now.
"""
from __future__ import annotations

import difflib
import pprint
import re
import sys
import textwrap
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import sympy as sp
from sympy.core.function import AppliedUndef

from derive.fourier import FourierTerm, components
from derive.operator import Operator
from derive.printers import CUDA_PREAMBLE, KernelCudaPrinter, KernelJaxPrinter, KernelNumPyPrinter
from derive.symbols import PrincipalValue, Resonance, U, mu, velocity

#: operators whose kernels ship in numerics/generated: file stem -> derive.collision_operator options.
#: Adding an operator is one line here, then ``bbgky regenerate``.
SHIPPED_OPERATORS: dict[str, dict] = {
    "landau_1d": {"order": 1, "dimension": 1, "collective": False},
    "landau_2d": {"order": 1, "dimension": 2, "collective": False},
    "three_body_1d": {"order": 2, "dimension": 1, "collective": False},
    "three_body_resonance_1d": {"order": 2, "dimension": 1, "collective": False, "form": "resonance"},
}

#: backends a module is generated for, in this order
GENERATED_BACKENDS = ("numpy", "jax", "cupy")

#: the command that regenerates every shipped file (named in each file's header)
REGENERATE_COMMAND = "bbgky regenerate"

#: first line of every generated file; files carrying it are owned by the generator
MARKER = "# GENERATED by derive.codegen -- do not edit by hand."

#: version of the METADATA layout (2: kernels list "vanishes_without", the couplings whose zero
#: makes the cofactor vanish, so a sum over wavevectors can skip them)
FORMAT_VERSION = 2

_DISTRIBUTIONS = (sp.DiracDelta, PrincipalValue, Resonance)
_FUNCTIONS = (sp.Abs, sp.sign, sp.exp)  # smooth functions the printers translate


class FreezeError(ValueError):
    """A SymPy node the code generator cannot translate into array code."""


# ---------------------------------------------------------------------------------------
# frozen objects: plain symbols for arrays, numbers, + * ** Abs sign exp; no SymPy functions

@dataclass(frozen=True)
class KernelArgument:
    """One argument of a kernel function: its name (a Python/C identifier) and role."""

    name: str
    role: str  # velocity | wavevector | parameter | coupling | df
    symbol: sp.Symbol
    info: tuple = ()  # (key, value) pairs for the metadata

    def as_dict(self) -> dict:
        info = dict(self.info)
        if self.role == "coupling":  # the wavevector as {abstract wavevector: integer coefficient}
            info["wavevector"] = dict(info["wavevector"])
        if self.role == "df":  # derivative multi-index, one entry per velocity component
            info["derivative"] = list(info["derivative"])
        return {"name": self.name, "role": self.role, **info}


@dataclass(frozen=True)
class DistributionFactor:
    kind: str  # delta | pv | resonance
    order: int
    argument: sp.Expr
    linear_form: tuple  # ((velocity name | "1", ((wavevector name | "1", coefficient), ...)), ...)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "order": self.order, "argument": sp.sstr(self.argument),
                "linear_form": {a: {b: _json_number(c) for b, c in inner} for a, inner in self.linear_form}}

    @property
    def tag(self) -> str:
        return "delta" if (self.kind == "delta" and self.order == 0) else f"{self.kind}{self.order}"


@dataclass
class FrozenKernel:
    """The smooth cofactor of one distribution pattern of one flux term."""

    function: str
    distributions: tuple[DistributionFactor, ...]
    cofactor: sp.Expr  # in the kernel argument symbols
    real_part: sp.Expr
    imag_part: sp.Expr
    source: str  # the cofactor in the engine's notation (F(v1), U(q1), ...)
    vanishes_without: tuple[str, ...] = ()  # coupling arguments whose zero makes the cofactor 0

    @property
    def is_complex(self) -> bool:
        return self.imag_part != 0

    def as_dict(self) -> dict:
        return {"function": self.function, "distributions": [d.as_dict() for d in self.distributions],
                "complex": self.is_complex, "cofactor": self.source,
                "vanishes_without": list(self.vanishes_without)}


@dataclass
class FrozenTerm:
    component: int  # 0-based component of J(v1)
    index: int  # position of the term in its component
    sums: tuple[tuple[str, tuple[str, ...]], ...]  # (abstract wavevector, its component names)
    integrals: tuple[str, ...]
    velocity: tuple[str, ...]  # components of v1
    arguments: tuple[KernelArgument, ...]
    kernels: list[FrozenKernel] = field(default_factory=list)
    nonzero: tuple = ()  # linear forms over the summed wavevectors the sum excludes at zero

    def as_dict(self) -> dict:
        out = {"component": self.component, "index": self.index,
               "sums": [{"name": n, "components": list(c)} for n, c in self.sums],
               "integrals": list(self.integrals), "velocity": list(self.velocity),
               "arguments": [a.as_dict() for a in self.arguments],
               "kernels": [k.as_dict() for k in self.kernels]}
        if self.nonzero:
            out["nonzero"] = [dict(f) for f in self.nonzero]
        return out


@dataclass
class FrozenOperator:
    name: str
    content_hash: str
    order: int
    dimension: int
    collective: bool
    terms: list[FrozenTerm]

    def metadata(self, backend: str, engine: str) -> dict:
        return {"format_version": FORMAT_VERSION, "operator": self.name, "order": self.order,
                "dimension": self.dimension, "collective": self.collective,
                "content_hash": self.content_hash, "engine_fingerprint": engine, "backend": backend,
                "flux_convention": "dF/dt = -div_{v1} J, J_c(v1) = sum_{sums} int d(integrals) "
                                   "sum_kernels cofactor * prod distributions; mu = 1/N",
                "terms": [t.as_dict() for t in self.terms]}

    def kernels(self):
        for term in self.terms:
            for kernel in term.kernels:
                yield term, kernel


# ---------------------------------------------------------------------------------------
# freeze

def _json_number(c: sp.Rational):
    return int(c) if c.is_Integer else str(Fraction(int(c.p), int(c.q)))


def _describe(node: sp.Basic) -> str:
    if isinstance(node, AppliedUndef):
        return f"{sp.sstr(node)} (undefined function {node.func.__name__!r})"
    if isinstance(node, _DISTRIBUTIONS):
        return f"{sp.sstr(node)} (a distribution that is not a plain factor of a product)"
    if isinstance(node, sp.Symbol):
        return f"{sp.sstr(node)} (a symbol that is not a kernel input)"
    return f"{sp.sstr(node)} (SymPy node {type(node).__name__!r})"


def _particle_label(symbol: sp.Symbol) -> int:
    m = re.fullmatch(r"v(\d+)(?:_\d+)?", symbol.name)
    if not m:
        raise FreezeError(f"cannot freeze integration variable {symbol} (not a particle velocity v<label>)")
    return int(m.group(1))


class _TermFreezer:
    """Freezes one FourierTerm of a d-dimensional flux."""

    def __init__(self, term: FourierTerm, dimension: int, where: str):
        self.term, self.d, self.where = term, dimension, where
        # velocities, per particle (particle 1 first, then the integrated ones in order)
        labels = [1]
        for v in term.integrals:
            label = _particle_label(v)
            if label not in labels:
                labels.append(label)
        self.velocities = {a: velocity(a, dimension) for a in labels}
        expected = tuple(c for a in labels[1:] for c in self.velocities[a])
        if tuple(term.integrals) != expected:
            raise FreezeError(f"{where}: integrals {term.integrals} are not whole particle velocities {expected}")
        self.velocity_symbols = [c for a in labels for c in self.velocities[a]]
        # wavevectors: abstract symbol -> component symbols
        self.sums = [(s, components(s, dimension)) for s in term.sums]
        self.wavevector_symbols = [c for _, comps in self.sums for c in comps]
        self.component_of = {c: (s, i) for s, comps in self.sums for i, c in enumerate(comps)}
        self.couplings: dict[str, KernelArgument] = {}  # by argument name
        self.dfs: dict[str, KernelArgument] = {}

    def fail(self, node, why: str = ""):
        raise FreezeError(f"cannot freeze {_describe(node)} in {self.where}" + (f": {why}" if why else "")
                          + ". The code generator translates F(v) and its derivatives, U(q), DiracDelta, "
                          "PrincipalValue, Resonance, Abs, sign, exp, sums, products, numeric powers, "
                          "numbers, pi and I over the velocities, wavevectors and mu.")

    # -- smooth inputs ------------------------------------------------------------------
    def _df_argument(self, node: sp.Expr) -> KernelArgument:
        f, counts = (node.expr, {}) if isinstance(node, sp.Derivative) else (node, {})
        for var, n in (node.variable_count if isinstance(node, sp.Derivative) else ()):
            counts[var] = counts.get(var, 0) + int(n)
        if not (isinstance(f, AppliedUndef) and f.func.__name__ == "F"):
            self.fail(node, "only derivatives of the DF F are translated")
        particle = next((a for a, v in self.velocities.items() if tuple(f.args) == v), None)
        if particle is None:
            self.fail(f, f"F must take the full velocity of a particle ({', '.join(map(str, self.velocities[1]))} "
                         "or an integrated one)")
        if any(var not in f.args for var in counts):
            self.fail(node, "differentiation variable is not an argument of F")
        multi = [int(counts.get(c, 0)) for c in f.args]
        digits = "".join(map(str, multi)) if max(multi) < 10 else "_".join(map(str, multi))
        name = f"F{digits}_v{particle}"
        return KernelArgument(name, "df", sp.Symbol(name, real=True),
                              (("particle", particle), ("derivative", tuple(multi))))

    def _coupling_argument(self, node: U) -> KernelArgument:
        if len(node.args) != self.d:
            self.fail(node, f"U takes {self.d} wavevector components here")
        forms = []
        for c, arg in enumerate(node.args):
            poly = {}
            for mono in sp.Add.make_args(sp.expand(arg)):
                coeff, rest = mono.as_coeff_Mul()
                if rest not in self.component_of or self.component_of[rest][1] != c or not coeff.is_Integer:
                    self.fail(node, "a coupling's argument must be an integer combination of the summed wavevectors")
                key = self.component_of[rest][0].name
                poly[key] = poly.get(key, 0) + int(coeff)
            forms.append({k: v for k, v in poly.items() if v})
        if any(f != forms[0] for f in forms):
            self.fail(node, "the components of a coupling's wavevector do not come from one wavevector")
        form = tuple(sorted(forms[0].items(), key=lambda kv: _natural_key(kv[0])))
        name = "U_" + _linear_name(form)
        return KernelArgument(name, "coupling", sp.Symbol(name, real=True), (("wavevector", form),))

    # -- distributions ------------------------------------------------------------------
    def _distribution(self, node: sp.Expr) -> DistributionFactor:
        if isinstance(node, sp.DiracDelta):
            kind, order = "delta", (node.args[1] if len(node.args) > 1 else sp.Integer(0))
        else:
            kind, order = ("pv" if isinstance(node, PrincipalValue) else "resonance"), node.args[1]
        if not order.is_Integer:
            self.fail(node, "the order of a distribution must be an integer")
        arg = sp.expand(node.args[0])
        names = {s: s.name for s in self.velocity_symbols + self.wavevector_symbols}
        velocities, wavevectors = set(self.velocity_symbols), set(self.wavevector_symbols)
        form: dict[str, dict[str, sp.Rational]] = {}
        for mono in sp.Add.make_args(arg):
            coeff, rest = mono.as_coeff_Mul()
            factors = [] if rest == 1 else list(sp.Mul.make_args(rest))
            vs = [f for f in factors if f in velocities]
            ks = [f for f in factors if f in wavevectors]
            if not coeff.is_Rational or len(vs) > 1 or len(ks) > 1 or len(vs) + len(ks) != len(factors):
                self.fail(node, "a distribution's argument must be bilinear in the velocities and the wavevectors "
                                f"(offending monomial {sp.sstr(mono)})")
            a = names[vs[0]] if vs else "1"
            b = names[ks[0]] if ks else "1"
            form.setdefault(a, {})
            form[a][b] = form[a].get(b, 0) + coeff
        order_key = {n: i for i, n in enumerate(["1"] + [names[s] for s in self.velocity_symbols])}
        kkey = {n: i for i, n in enumerate(["1"] + [names[s] for s in self.wavevector_symbols])}
        linear = tuple((a, tuple((b, form[a][b]) for b in sorted(form[a], key=kkey.get) if form[a][b] != 0))
                       for a in sorted(form, key=order_key.get))
        linear = tuple((a, inner) for a, inner in linear if inner)
        return DistributionFactor(kind, int(order), node.args[0], linear)

    # -- the walk -----------------------------------------------------------------------
    def _smooth(self, expr: sp.Expr) -> sp.Expr:
        """Replace F, its derivatives and U by argument symbols; check every other node."""
        reps: dict[sp.Expr, sp.Symbol] = {}

        def collect(node):
            if isinstance(node, sp.Derivative) or (isinstance(node, AppliedUndef) and node.func.__name__ == "F"):
                arg = self._df_argument(node)
                self.dfs[arg.name] = arg
                reps[node] = arg.symbol
            elif isinstance(node, U):
                arg = self._coupling_argument(node)
                self.couplings[arg.name] = arg
                reps[node] = arg.symbol
            else:
                for a in node.args:
                    collect(a)

        collect(expr)
        frozen = expr.xreplace(reps)
        self._validate(frozen)
        return frozen

    def _validate(self, expr: sp.Expr) -> None:
        allowed = set(self.velocity_symbols) | set(self.wavevector_symbols) | {mu} \
            | {a.symbol for a in self.dfs.values()} | {a.symbol for a in self.couplings.values()}
        stack = [expr]
        while stack:
            node = stack.pop()
            if isinstance(node, sp.Symbol):
                if node not in allowed:
                    self.fail(node)
                continue
            if isinstance(node, sp.Number) or node in (sp.pi, sp.I, sp.E):
                continue
            if isinstance(node, sp.Pow):
                if not node.exp.is_Rational:
                    self.fail(node, "only numeric powers are translated")
                stack.append(node.base)
                continue
            if isinstance(node, (sp.Add, sp.Mul)) or isinstance(node, _FUNCTIONS):
                if isinstance(node, _FUNCTIONS) and node.has(sp.I):
                    self.fail(node, "a smooth function of a complex argument is not translated")
                stack.extend(node.args)
                continue
            self.fail(node)

    def freeze(self, component: int, index: int, prefix: str) -> FrozenTerm:
        patterns: dict[tuple, list[sp.Expr]] = {}
        for mono in sp.Add.make_args(sp.expand(self.term.body)):
            dist, smooth = [], []
            for factor in sp.Mul.make_args(mono):
                base, exp = factor.as_base_exp()
                if isinstance(base, _DISTRIBUTIONS):
                    if exp != 1:
                        self.fail(factor, "a power of a distribution is not defined")
                    dist.append(base)
                else:
                    smooth.append(factor)
            key = tuple(sorted(dist, key=sp.default_sort_key))
            if len(set(key)) != len(key):
                self.fail(sp.Mul(*key), "a product of a distribution with itself is not defined")
            patterns.setdefault(key, []).append(sp.Mul(*smooth))
        used_tags: dict[str, int] = {}
        kernels = []
        for key in sorted(patterns, key=lambda k: sp.default_sort_key(sp.Tuple(*k))):
            cofactor = sp.factor_terms(sp.Add(*patterns[key]))
            if cofactor == 0:
                continue
            distributions = tuple(self._distribution(node) for node in key)
            frozen = self._smooth(cofactor)
            expanded = sp.expand(frozen)
            imag = expanded.coeff(sp.I)
            real = sp.expand(expanded - sp.I * imag)
            if real.has(sp.I) or imag.has(sp.I):
                self.fail(frozen, "cannot separate the real and imaginary parts")
            tag = "_".join(d.tag for d in distributions) or "smooth"
            used_tags[tag] = used_tags.get(tag, 0) + 1
            name = f"{prefix}_term{index}_{tag}" + (f"_{used_tags[tag]}" if used_tags[tag] > 1 else "")
            couplings = sorted((x for x in frozen.free_symbols if x.name.startswith("U_")), key=lambda x: x.name)
            vanishing = tuple(x.name for x in couplings if sp.expand(frozen.subs(x, 0)) == 0)
            kernels.append(FrozenKernel(name, distributions, frozen, sp.factor_terms(real), sp.factor_terms(imag),
                                        sp.sstr(cofactor), vanishing))
        if not kernels:
            raise FreezeError(f"{self.where}: the term is identically zero")
        # arguments: velocities, wavevectors, mu, couplings, DF values -- the union over the kernels
        args = []
        for a, comps in self.velocities.items():
            for c, s in enumerate(comps):
                args.append(KernelArgument(s.name, "velocity", s, (("particle", a), ("component", c))))
        for s, comps in self.sums:
            for c, k in enumerate(comps):
                args.append(KernelArgument(k.name, "wavevector", k, (("wavevector", s.name), ("component", c))))
        if any(k.cofactor.has(mu) for k in kernels):
            args.append(KernelArgument("mu", "parameter", mu, (("meaning", "mass per particle 1/N"),)))
        args += sorted(self.couplings.values(), key=lambda a: _natural_key(a.name))
        particles = list(self.velocities)
        args += sorted(self.dfs.values(),
                       key=lambda a: (particles.index(dict(a.info)["particle"]), sum(dict(a.info)["derivative"]),
                                      [-n for n in dict(a.info)["derivative"]]))
        names = [a.name for a in args]
        if len(set(names)) != len(names):
            raise FreezeError(f"{self.where}: kernel argument names collide: {names}")
        nonzero = []
        for form in self.term.nonzero:
            poly = {}
            for mono in sp.Add.make_args(sp.expand(form)):
                coeff, rest = mono.as_coeff_Mul()
                if rest not in self.component_of or not coeff.is_Integer:
                    self.fail(form, "an excluded wavevector combination must be an integer combination of the sums")
                poly[rest.name] = poly.get(rest.name, 0) + int(coeff)
            nonzero.append(tuple(sorted(poly.items(), key=lambda kv: _natural_key(kv[0]))))
        return FrozenTerm(component, index, tuple((s.name, tuple(k.name for k in comps)) for s, comps in self.sums),
                          tuple(s.name for s in self.term.integrals), tuple(s.name for s in self.velocities[1]),
                          tuple(args), kernels, tuple(nonzero))


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _linear_name(form) -> str:
    """(('q1', 1), ('q2', -1)) -> 'q1_minus_q2'; (('q1', 2),) -> '2q1'."""
    parts = []
    for i, (name, c) in enumerate(form):
        word = ("minus_" if c < 0 else "") if i == 0 else ("minus_" if c < 0 else "plus_")
        parts.append(word + (f"{abs(c)}" if abs(c) != 1 else "") + name)
    return "_".join(parts)


def freeze_term(term: FourierTerm, dimension: int, component: int = 0, index: int = 0,
                where: str | None = None) -> FrozenTerm:
    """Freeze one flux term (component ``component`` of J, position ``index``)."""
    where = where or f"flux component J_{component + 1}, term {index}"
    return _TermFreezer(term, dimension, where).freeze(component, index, f"J{component + 1}")


def freeze(op: Operator) -> FrozenOperator:
    """Convert the operator's flux into frozen kernels (plain-symbol cofactors + metadata)."""
    if not op.flux:
        raise FreezeError(f"operator {op.name} has no flux to generate kernels for "
                          "(the Vlasov equation is not a collision operator)")
    terms = []
    for c, comp in enumerate(op.flux):
        for i, term in enumerate(comp):
            terms.append(freeze_term(term, op.dimension, c, i, f"{op.name}, flux component J_{c + 1}, term {i}"))
    return FrozenOperator(op.name, op.content_hash, op.order, op.dimension, op.collective, terms)


# ---------------------------------------------------------------------------------------
# render

def _header(frozen: FrozenOperator, backend: str, engine: str) -> str:
    options = f"order={frozen.order}, dimension={frozen.dimension}, collective={frozen.collective}"
    return "\n".join([
        MARKER,
        f"# operator:           {frozen.name}  (derive.collision_operator({options}))",
        f"# content hash:       {frozen.content_hash}  (derive.Operator.content_hash)",
        f"# engine fingerprint: {engine}  (derive.cache.engine_fingerprint())",
        f"# backend:            {backend}",
        f"# regenerate with:    {REGENERATE_COMMAND}   (or: python3 -m numerics.cli regenerate)",
        "",
    ])


def _docstring(frozen: FrozenOperator, backend: str) -> str:
    what = {"numpy": "NumPy functions", "jax": "jax.numpy functions (jit- and vmap-compatible)",
            "cupy": "CuPy ElementwiseKernels (CUDA C, double precision; compiled on first call, GPU only)"}[backend]
    return f'''"""Flux-integrand kernels of the {frozen.name} collision operator: {what}.

The flux is J_c(v1) = sum over the wavevectors of term["sums"] of the integral over the
velocities term["integrals"] of sum over term["kernels"] of cofactor * prod(distributions),
for the terms of METADATA["terms"] (c = term["component"], 0-based); dF/dt = -div_{{v1}} J and a
positive flux moves particles up in velocity; mu = 1/N. Each function below returns the smooth
cofactor of one pattern of distributions; the distributions themselves (kind delta | pv |
resonance, order, argument as a bilinear linear_form over the argument names) are described in
METADATA and integrated by the numerical code. KERNELS maps the function names to the functions.
See derive/codegen.py for the argument conventions. Generated: do not edit.
"""
'''


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, width=100, initial_indent=indent, subsequent_indent=indent + "    ",
                         break_long_words=False, break_on_hyphens=False)


def _kernel_doc(term: FrozenTerm, kernel: FrozenKernel, indent: str) -> list[str]:
    dist = " * ".join(sp.sstr(_distribution_expr(d)) for d in kernel.distributions) or "1 (no distribution)"
    kind = "complex" if kernel.is_complex else "real"
    return [_wrap(f'"""Smooth {kind} cofactor of {dist} in term {term.index} of J_{term.component + 1}:', indent),
            "", _wrap(kernel.source, indent), f'{indent}"""']


def _distribution_expr(d: DistributionFactor) -> sp.Expr:
    if d.kind == "delta":
        return sp.DiracDelta(d.argument, d.order) if d.order else sp.DiracDelta(d.argument)
    return (PrincipalValue if d.kind == "pv" else Resonance)(d.argument, d.order)


def _cse(exprs: list[sp.Expr], avoid: set[str]):
    temporaries = sp.numbered_symbols("x", real=True, exclude=[sp.Symbol(n) for n in avoid])
    return sp.cse(exprs, symbols=temporaries, order="canonical")


def _render_python(frozen: FrozenOperator, backend: str, engine: str) -> str:
    printer = KernelNumPyPrinter() if backend == "numpy" else KernelJaxPrinter()
    lines = [_header(frozen, backend, engine) + _docstring(frozen, backend)]
    if backend == "numpy":
        lines.append("import numpy  # noqa: F401\n")
    else:
        lines.append("from numerics.backends import jax_module\n\njax = jax_module()  # JAX with 64-bit floats\n"
                     "import jax.numpy  # noqa: E402,F401\n")
    lines += _constants(frozen, backend, engine)
    for term, kernel in frozen.kernels():
        names = [a.name for a in term.arguments]
        lines.append(f"\ndef {kernel.function}({', '.join(names)}):")
        lines += _kernel_doc(term, kernel, "    ")
        temps, (result,) = _cse([kernel.cofactor], set(names))
        for sym, value in temps:
            lines.append(f"    {sym} = {printer.doprint(value)}")
        lines.append(f"    return {printer.doprint(result)}\n")
    lines.append("\nKERNELS = {")
    lines += [f"    {k.function!r}: {k.function}," for _, k in frozen.kernels()]
    lines.append("}\n")
    return "\n".join(lines)


def _constants(frozen: FrozenOperator, backend: str, engine: str) -> list[str]:
    prefix = "METADATA = "
    meta = pprint.pformat(frozen.metadata(backend, engine), width=100 - len(prefix), sort_dicts=True)
    meta = textwrap.indent(meta, " " * len(prefix))[len(prefix):]
    return [f"OPERATOR = {frozen.name!r}", f"CONTENT_HASH = {frozen.content_hash!r}",
            f"ENGINE_FINGERPRINT = {engine!r}", f"BACKEND = {backend!r}", "",
            "#: JSON-able description of every term, kernel and distribution factor",
            f"{prefix}{meta}", ""]


def cuda_sources(frozen: FrozenOperator) -> dict[str, dict]:
    """CuPy ElementwiseKernel specifications: function -> {name, in_params, out_params, operation}."""
    printer = KernelCudaPrinter()
    out = {}
    for term, kernel in frozen.kernels():
        names = [a.name for a in term.arguments]
        outputs = ["out_re", "out_im"] if kernel.is_complex else ["out"]
        parts = [kernel.real_part, kernel.imag_part] if kernel.is_complex else [kernel.real_part]
        temps, results = _cse(parts, set(names) | set(outputs))
        body = [f"const double {sym} = {printer.doprint(value)};" for sym, value in temps]
        body += [f"{o} = {printer.doprint(r)};" for o, r in zip(outputs, results)]
        out[kernel.function] = {"name": f"{frozen.name}_{kernel.function}",
                                "in_params": ", ".join(f"float64 {n}" for n in names),
                                "out_params": ", ".join(f"float64 {o}" for o in outputs),
                                "operation": "\n".join(body) + "\n"}
    return out


def _render_cupy(frozen: FrozenOperator, engine: str) -> str:
    lines = [_header(frozen, "cupy", engine) + _docstring(frozen, "cupy")]
    lines.append("from numerics.backends import require_backend\n")
    lines += _constants(frozen, "cupy", engine)
    lines.append("#: defines M_PI where NVRTC's math header does not")
    lines.append(f"PREAMBLE = {CUDA_PREAMBLE!r}\n")
    lines.append("#: cupy.ElementwiseKernel(in_params, out_params, operation, name, preamble=PREAMBLE) per function")
    lines.append("ELEMENTWISE = {")
    for function, spec in cuda_sources(frozen).items():
        lines.append(f"    {function!r}: {{")
        lines.append(f"        'name': {spec['name']!r},")
        lines.append(f"        'in_params': {spec['in_params']!r},")
        lines.append(f"        'out_params': {spec['out_params']!r},")
        lines.append("        'operation': '''")
        lines.append(spec["operation"] + "''',")
        lines.append("    },")
    lines.append("}\n")
    lines.append('''_compiled = {}


def _launch(function, arguments):
    """Compile (once) and run the ElementwiseKernel of ``function``; float64 in, float64/complex128 out."""
    cupy = require_backend("cupy")  # BackendUnavailableError without a usable GPU
    kernel = _compiled.get(function)
    if kernel is None:
        spec = ELEMENTWISE[function]
        kernel = cupy.ElementwiseKernel(spec["in_params"], spec["out_params"], spec["operation"],
                                        spec["name"], preamble=PREAMBLE)
        _compiled[function] = kernel
    out = kernel(*[cupy.asarray(a, dtype=cupy.float64) for a in arguments])
    if isinstance(out, tuple):
        return out[0] + 1j * out[1]
    return out
''')
    for term, kernel in frozen.kernels():
        names = [a.name for a in term.arguments]
        lines.append(f"\ndef {kernel.function}({', '.join(names)}):")
        lines += _kernel_doc(term, kernel, "    ")
        lines.append(f"    return _launch({kernel.function!r}, [{', '.join(names)}])\n")
    lines.append("\nKERNELS = {")
    lines += [f"    {k.function!r}: {k.function}," for _, k in frozen.kernels()]
    lines.append("}\n")
    return "\n".join(lines)


def render(frozen: FrozenOperator, backend: str, engine: str | None = None) -> str:
    """The text of the generated module of ``frozen`` for ``backend`` (deterministic)."""
    if backend not in GENERATED_BACKENDS:
        raise ValueError(f"backend must be one of {GENERATED_BACKENDS}, got {backend!r}")
    if engine is None:
        from derive.cache import engine_fingerprint

        engine = engine_fingerprint()
    text = _render_cupy(frozen, engine) if backend == "cupy" else _render_python(frozen, backend, engine)
    compile(text, f"<generated {frozen.name}_{backend}>", "exec")  # a syntax error is a generator bug
    return text


def generate(op: Operator, backend: str, engine: str | None = None) -> str:
    """Freeze ``op`` and render its module for ``backend``."""
    return render(freeze(op), backend, engine)


# ---------------------------------------------------------------------------------------
# the shipped files: regenerate and check

def generated_dir() -> Path:
    """numerics/generated of this source tree."""
    return Path(__file__).resolve().parent.parent / "numerics" / "generated"


def shipped_operator(name: str, *, use_cache: bool = False, log=None) -> Operator:
    """Derive (or fetch from the content-hash cache) the shipped operator ``name``."""
    from derive import cache
    from derive.pipeline import collision_operator

    options = SHIPPED_OPERATORS[name]
    op = cache.load(options) if use_cache else None
    if op is None:
        op = collision_operator(options["order"], options["dimension"], options["collective"],
                                form=options.get("form", "canonical"))
        if use_cache:
            cache.save(op, options)
        if log:
            log(f"{name}: compiled (content hash {op.content_hash})")
    elif log:
        log(f"{name}: fetched from cache (content hash {op.content_hash})")
    if op.name != name:
        raise ValueError(f"SHIPPED_OPERATORS[{name!r}] derives an operator named {op.name!r}")
    return op


def frozen_shipped(names=None, *, use_cache: bool = False, log=None) -> dict[str, FrozenOperator]:
    return {name: freeze(shipped_operator(name, use_cache=use_cache, log=log))
            for name in (names or SHIPPED_OPERATORS)}


def expected_files(frozen: dict[str, FrozenOperator], engine: str | None = None) -> dict[str, str]:
    """File name -> text for every shipped operator and backend."""
    return {f"{name}_{backend}.py": render(op, backend, engine)
            for name, op in frozen.items() for backend in GENERATED_BACKENDS}


def _generated_files(directory: Path) -> list[Path]:
    out = []
    for path in sorted(directory.glob("*.py")):
        with open(path, encoding="utf-8") as fh:
            if fh.readline().rstrip("\n") == MARKER:
                out.append(path)
    return out


def regenerate(directory: Path | str | None = None, *, use_cache: bool = False, log=None) -> dict[str, str]:
    """Write every shipped module into ``directory`` (default numerics/generated); remove
    generated files of operators no longer shipped. Returns {file name: 'wrote'|'unchanged'|'removed'}."""
    directory = Path(directory) if directory is not None else generated_dir()
    directory.mkdir(parents=True, exist_ok=True)
    files = expected_files(frozen_shipped(use_cache=use_cache, log=log))
    status = {}
    for name, text in files.items():
        path = directory / name
        if path.exists() and path.read_text(encoding="utf-8") == text:
            status[name] = "unchanged"
            continue
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        status[name] = "wrote"
    for path in _generated_files(directory):
        if path.name not in files:
            path.unlink()
            status[path.name] = "removed"
    return status


@dataclass
class GeneratedCheck:
    """Outcome of comparing committed generated files with what the engine produces now."""

    directory: Path
    engine: str
    stale: list[str] = field(default_factory=list)  # kernel code or metadata differs
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # generated files the engine no longer ships
    header_only: list[str] = field(default_factory=list)  # identical but for the engine fingerprint
    strict: bool = False
    diffs: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.stale or self.missing or self.unexpected or (self.strict and self.header_only))

    def message(self) -> str:
        d = self.directory
        lines = []
        if self.stale:
            lines.append("generated files differ from what the engine produces now: "
                         + ", ".join(str(d / n) for n in self.stale))
        if self.missing:
            lines.append("generated files are missing: " + ", ".join(str(d / n) for n in self.missing))
        if self.unexpected:
            lines.append("generated files of operators the engine no longer ships: "
                         + ", ".join(str(d / n) for n in self.unexpected))
        if self.header_only:
            lines.append(("" if self.strict else "note: ") + "only the engine fingerprint in the header differs "
                         f"(engine now {self.engine}; the kernels are identical): "
                         + ", ".join(str(d / n) for n in self.header_only))
        if not self.ok:
            lines.append(f"run `{REGENERATE_COMMAND}` and commit the files")
            for name in self.stale:
                lines.append(self.diffs.get(name, ""))
        else:
            lines.insert(0, f"ok: the generated files in {d} match the engine (fingerprint {self.engine})")
        return "\n".join(line for line in lines if line)


def _committed_fingerprint(text: str) -> str | None:
    for line in text.splitlines()[:10]:
        if line.startswith("# engine fingerprint:"):
            return line.split(":", 1)[1].split()[0]
    return None


def check_generated(directory: Path | str | None = None, *, strict: bool = False, use_cache: bool = False,
                    frozen: dict[str, FrozenOperator] | None = None, log=None) -> GeneratedCheck:
    """Compare the generated files in ``directory`` with what the engine produces now.

    A file whose only difference is the engine fingerprint (the engine's source changed but
    not the code it generates) is listed in ``header_only``: a failure with ``strict=True``,
    a note otherwise.
    """
    from derive.cache import engine_fingerprint

    directory = Path(directory) if directory is not None else generated_dir()
    engine = engine_fingerprint()
    frozen = frozen if frozen is not None else frozen_shipped(use_cache=use_cache, log=log)
    expected = expected_files(frozen, engine)
    report = GeneratedCheck(directory, engine, strict=strict)
    for name, text in expected.items():
        path = directory / name
        if not path.exists():
            report.missing.append(name)
            continue
        committed = path.read_text(encoding="utf-8")
        if committed == text:
            continue
        old = _committed_fingerprint(committed)
        stem, backend = name[:-3].rsplit("_", 1)
        if old and old != engine and render(frozen[stem], backend, old) == committed:
            report.header_only.append(name)
            continue
        report.stale.append(name)
        diff = difflib.unified_diff(committed.splitlines(), text.splitlines(), f"{name} (committed)",
                                    f"{name} (engine now)", lineterm="", n=1)
        report.diffs[name] = "\n".join(list(diff)[:40])
    if directory.is_dir():
        report.unexpected = [p.name for p in _generated_files(directory) if p.name not in expected]
    return report


# ---------------------------------------------------------------------------------------
# bbgky regenerate

def register(subparsers) -> None:
    p = subparsers.add_parser(
        "regenerate", help="regenerate the kernels in numerics/generated from the derived operators",
        description="Derive every shipped operator (" + ", ".join(SHIPPED_OPERATORS) + "), freeze its flux "
        "into smooth cofactors + distribution metadata, and write NumPy, JAX and CuPy modules to "
        "numerics/generated. With --check, write nothing and exit 1 if the files there differ from what "
        "the engine produces now.")
    p.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on any difference")
    p.add_argument("--strict", action="store_true",
                   help="with --check: also fail when only the engine fingerprint in a header differs")
    p.add_argument("--directory", metavar="DIR", help="directory of the generated modules "
                   "(default: numerics/generated of this source tree)")
    p.add_argument("--no-cache", action="store_true", help="derive from scratch; do not read or write the cache")
    p.set_defaults(func=run)


def run(args) -> int:
    def log(msg):
        print(msg, file=sys.stderr)

    use_cache = not args.no_cache
    if args.check:
        report = check_generated(args.directory, strict=args.strict, use_cache=use_cache, log=log)
        print(report.message(), file=sys.stdout if report.ok else sys.stderr)
        return 0 if report.ok else 1
    directory = Path(args.directory) if args.directory else generated_dir()
    for name, what in regenerate(directory, use_cache=use_cache, log=log).items():
        size = (directory / name).stat().st_size if what != "removed" else 0
        print(f"{what:9s} {directory / name}" + (f"  ({size} bytes)" if size else ""))
    return 0
