"""Phase-space term algebra for the hierarchy stages (Liouville -> BBGKY -> clusters -> truncation).

Every term of the BBGKY equations and of the correlation equations derived from them has the
same shape

    coeff * Integral dGamma_J  [ Op ( product of distribution factors ) ]

where Op is one of the three pieces of the Liouville operator -- the time derivative, the
free streaming v_i . d/dtheta_i, or the interaction F_ij . d/dv_i -- and it acts on the whole
product (factors that do not depend on particle i are constants for it). A :class:`Term`
stores exactly that, with SymPy leaves; :func:`canonical` relabels integrated particles so
that equal terms compare equal and cancel exactly. ``Term.as_sympy()`` renders a term as an
ordinary SymPy expression for inspection, printing and LaTeX.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Iterable

import sympy as sp

from derive.symbols import mu

# ----------------------------------------------------------------------------------------
# distribution factors


@dataclass(frozen=True, order=True)
class DF:
    """A distribution factor attached to a set of particles.

    kind:
      'P'  the N-body PDF (labels: the first few particles; the rest are implied)
      'f'  the reduced s-body DF f_s (s = len(labels)), O(1) when N -> oo
      'g'  the connected correlation g_s; g of a single particle is the one-body DF f
      'F'  the homogeneous one-body DF F(v) (after the homogeneity step)
    part: for a split correlation, the order in mu of the piece (g2 = g2^(1) + g2^(2));
    0 means "not split".
    """

    kind: str
    labels: tuple[int, ...]
    part: int = 0

    def __post_init__(self):
        if self.kind not in ("P", "f", "g", "F"):
            raise ValueError(f"unknown DF kind {self.kind!r}")
        object.__setattr__(self, "labels", tuple(sorted(self.labels)))

    @property
    def size(self) -> int:
        return len(self.labels)

    @property
    def is_one_body(self) -> bool:
        return self.kind == "F" or (self.kind in ("f", "g") and self.size == 1)

    @property
    def order(self) -> int:
        """Order in mu: g_s ~ mu^(s-1); a split piece has the order of its part."""
        if self.kind == "g" and self.size >= 2:
            return self.part if self.part else self.size - 1
        return 0

    def relabel(self, mapping: dict[int, int]) -> "DF":
        return replace(self, labels=tuple(mapping.get(a, a) for a in self.labels))

    def name(self) -> str:
        if self.kind == "F":
            return "F"
        if self.kind == "P":
            return "P_N"
        if self.is_one_body:
            return "f"
        base = f"{self.kind}{self.size}"
        return base + (f"^({self.part})" if self.part else "")

    def as_sympy(self, dimension: int = 1):
        from derive.symbols import angle, velocity

        args = []
        for a in self.labels:
            if self.kind != "F":
                args.extend(angle(a, dimension))
            args.extend(velocity(a, dimension))
        return sp.Function(self.name())(*args)


# ----------------------------------------------------------------------------------------
# the three pieces of the Liouville operator


@dataclass(frozen=True, order=True)
class Op:
    """'dt' (time derivative), 'stream' (v_i . d/dtheta_i) or 'force' (F_ij . d/dv_i)."""

    kind: str
    i: int = 0
    j: int = 0

    def __post_init__(self):
        if self.kind not in ("dt", "stream", "force"):
            raise ValueError(f"unknown operator {self.kind!r}")

    def relabel(self, mapping: dict[int, int]) -> "Op":
        return Op(self.kind, mapping.get(self.i, self.i), mapping.get(self.j, self.j))

    def acts_on(self) -> int | None:
        """The particle whose variables the operator differentiates (None for dt)."""
        return None if self.kind == "dt" else self.i


@dataclass(frozen=True)
class Term:
    """coeff * Integral over dGamma_{integrated} of op(product of factors)."""

    coeff: sp.Expr
    op: Op
    factors: tuple[DF, ...]
    integrated: tuple[int, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "coeff", sp.sympify(self.coeff))
        object.__setattr__(self, "factors", tuple(sorted(self.factors)))
        object.__setattr__(self, "integrated", tuple(sorted(self.integrated)))

    # -- bookkeeping ------------------------------------------------------------------
    @property
    def labels(self) -> set[int]:
        out = set()
        for f in self.factors:
            out.update(f.labels)
        if self.op.kind != "dt":
            out.add(self.op.i)
        if self.op.kind == "force":
            out.add(self.op.j)
        return out

    @property
    def open_labels(self) -> set[int]:
        return self.labels - set(self.integrated)

    @property
    def order(self) -> int:
        """Order in mu: explicit powers of mu plus the orders of the correlations."""
        power = sp.degree(sp.expand(self.coeff), mu) if self.coeff.has(mu) else 0
        return int(power) + sum(f.order for f in self.factors)

    def factor_containing(self, label: int) -> DF | None:
        for f in self.factors:
            if label in f.labels:
                return f
        return None

    def with_coeff(self, coeff) -> "Term":
        return replace(self, coeff=sp.sympify(coeff))

    def relabel(self, mapping: dict[int, int]) -> "Term":
        return Term(
            self.coeff,
            self.op.relabel(mapping),
            tuple(f.relabel(mapping) for f in self.factors),
            tuple(mapping.get(a, a) for a in self.integrated),
        )

    def is_trivially_zero(self) -> bool:
        """The operator differentiates w.r.t. a particle no factor depends on."""
        if self.coeff == 0:
            return True
        p = self.op.acts_on()
        if p is None:
            return False
        return self.factor_containing(p) is None

    # -- rendering --------------------------------------------------------------------
    def as_sympy(self, dimension: int = 1) -> sp.Expr:
        from derive.symbols import angle, velocity

        product = sp.Mul(*[f.as_sympy(dimension) for f in self.factors])
        if self.op.kind == "dt":
            body = sp.Derivative(product, sp.Symbol("t"))
        elif self.op.kind == "stream":
            th, v = angle(self.op.i, dimension), velocity(self.op.i, dimension)
            body = sp.Add(*[vc * sp.Derivative(product, tc) for vc, tc in zip(v, th)])
        else:
            i, j = self.op.i, self.op.j
            v = velocity(i, dimension)
            comps = [sp.Function(f"F{i}{j}" if dimension == 1 else f"F{i}{j}_{c + 1}")(
                *angle(i, dimension), *angle(j, dimension)) for c in range(dimension)]
            body = sp.Add(*[fc * sp.Derivative(product, vc) for fc, vc in zip(comps, v)])
        if self.integrated:
            limits = []
            for a in self.integrated:
                limits += [(th, 0, 2 * sp.pi) for th in angle(a, dimension)]
                limits += [(vc, -sp.oo, sp.oo) for vc in velocity(a, dimension)]
            body = sp.Integral(body, *limits)
        return self.coeff * body


def canonical(term: Term) -> Term:
    """Relabel integrated particles to the smallest labels above the open ones, in an order
    fixed by their role in the term, so that equal terms have equal representations."""
    open_ = sorted(term.open_labels)
    integrated = list(term.integrated)
    if not integrated:
        return term
    base = max(open_, default=0) + 1
    best = None
    for perm in itertools.permutations(integrated):
        mapping = {old: base + n for n, old in enumerate(perm)}
        candidate = term.relabel(mapping)
        key = (candidate.op, candidate.factors)
        if best is None or key < best[0]:
            best = (key, candidate)
    return best[1]


def collect(terms: Iterable[Term]) -> list[Term]:
    """Canonicalise, merge equal terms (adding coefficients) and drop zeros."""
    acc: dict[tuple, sp.Expr] = {}
    proto: dict[tuple, Term] = {}
    for term in terms:
        if term.is_trivially_zero():
            continue
        c = canonical(term)
        key = (c.op, c.factors, c.integrated)
        acc[key] = acc.get(key, 0) + c.coeff
        proto.setdefault(key, c)
    out = []
    for key, coeff in acc.items():
        coeff = sp.factor(sp.simplify(coeff))
        if coeff != 0:
            out.append(proto[key].with_coeff(coeff))
    return sorted(out, key=_sort_key)


def _sort_key(term: Term):
    rank = {"dt": 0, "stream": 1, "force": 2}[term.op.kind]
    return (rank, len(term.integrated), term.op, term.factors)


@dataclass
class Equation:
    """sum(terms) = 0 for the evolution of ``subject`` (a DF)."""

    subject: DF
    terms: list[Term]
    note: str = ""
    dimension: int = 1

    def __post_init__(self):
        self.terms = collect(self.terms)

    def __len__(self) -> int:
        return len(self.terms)

    def as_sympy(self) -> sp.Eq:
        return sp.Eq(sp.Add(*[t.as_sympy(self.dimension) for t in self.terms]), 0)

    def __str__(self) -> str:
        return f"[{self.subject.name()}{self.subject.labels}] " + str(self.as_sympy())

    def map_terms(self, fn) -> "Equation":
        out = []
        for term in self.terms:
            res = fn(term)
            if res is None:
                continue
            out.extend(res if isinstance(res, list) else [res])
        return Equation(self.subject, out, self.note, self.dimension)


def fresh_label(used: Iterable[int]) -> int:
    return max(used, default=0) + 1


def spectator_safe(spectators: Iterable[DF], term: Term) -> bool:
    """True when multiplying ``term`` by ``spectators`` may move them inside its operator."""
    p = term.op.acts_on()
    return p is None or all(p not in f.labels for f in spectators)


def times(term: Term, spectators: Iterable[DF], factor=1) -> Term:
    spectators = tuple(spectators)
    if not spectator_safe(spectators, term):
        raise AssertionError(f"spectators {spectators} depend on the variables the operator of {term} differentiates")
    return Term(term.coeff * factor, term.op, term.factors + spectators, term.integrated)


field  # re-exported for dataclass users
