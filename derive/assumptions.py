"""Stage 3: truncation in powers of mu and the named simplifying assumptions.

Each step takes a :class:`System` (evolution equations keyed by the DF they evolve) and
returns a new one plus a record of every term it removed and why, so that a Derivation can
show and test each assumption on its own:

* :func:`truncate`     -- split correlations into their orders in mu (g2 = g2^(1) + g2^(2)
                          at order 2) and keep terms up to the requested order;
* :func:`homogeneous`  -- f(theta, v) = F(v): angle derivatives of F vanish, and so does the
                          mean field int dGamma_j F_ij F(v_j) (int U'(theta) dtheta = 0);
* :func:`hot_limit`    -- drop collective effects: terms where a correlation acts back on the
                          potential in which it evolves, int dGamma_j F_ij g(..., j, ...) with
                          particle i outside that correlation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from derive.cluster import CorrelationEquations
from derive.phase_space import DF, Equation, Term


@dataclass
class Dropped:
    """A term removed by a named step, and why."""

    step: str
    equation: str
    term: Term
    reason: str


@dataclass
class System:
    """Evolution equations (sum of terms = 0), keyed by the DF they evolve."""

    equations: dict[DF, Equation]
    dimension: int = 1
    dropped: list[Dropped] = field(default_factory=list)

    def __getitem__(self, subject: DF) -> Equation:
        return self.equations[subject]

    def __iter__(self):
        return iter(self.equations.values())

    def term_counts(self) -> dict[str, int]:
        return {_name(s): len(eq) for s, eq in self.equations.items()}

    def n_terms(self) -> int:
        return sum(len(eq) for eq in self.equations.values())

    def subjects(self) -> list[DF]:
        return list(self.equations)

    def find(self, kind: str, size: int, part: int = 0) -> Equation:
        for s, eq in self.equations.items():
            if s.kind == kind and s.size == size and s.part == part:
                return eq
        raise KeyError(f"no equation for {kind}{size} part {part}")


def _name(subject: DF) -> str:
    return f"{subject.name()}{subject.labels}"


def _split_factor(factor: DF, order: int) -> list[DF]:
    if factor.kind == "g" and factor.size >= 2:
        return [DF("g", factor.labels, p) for p in range(factor.size - 1, order + 1)]
    return [factor]


def _split_term(term: Term, order: int) -> list[Term]:
    out = [term]
    for idx, factor in enumerate(term.factors):
        pieces = _split_factor(factor, order)
        if len(pieces) == 1 and pieces[0] == factor:
            continue
        new = []
        for t in out:
            for piece in pieces:
                facs = list(t.factors)
                facs[facs.index(factor)] = piece
                new.append(Term(t.coeff, t.op, tuple(facs), t.integrated))
        out = new
    return out


def truncate(equations: CorrelationEquations, order: int) -> System:
    """Keep the equations needed at ``order`` and the terms up to that order.

    The one-body equation keeps every term of order <= ``order``; the equation of g_n splits
    into one equation per part g_n^(p), n-1 <= p <= ``order``, holding exactly the terms of
    order p. Terms of higher order are recorded as dropped.
    """
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    dimension = next(iter(equations)).dimension
    dropped: list[Dropped] = []
    out: dict[DF, Equation] = {}
    for n, eq in equations.equations.items():
        if n - 1 > order:
            continue
        pieces = [t for term in eq.terms for t in _split_term(term, order)]
        if n == 1:
            keep = []
            for t in pieces:
                if t.order <= order:
                    keep.append(t)
                else:
                    dropped.append(Dropped("truncate", "f", t, f"order mu^{t.order} > mu^{order}"))
            out[DF("g", (1,))] = Equation(DF("g", (1,)), keep, note=f"one-body DF up to order mu^{order}", dimension=dimension)
            continue
        labels = tuple(range(1, n + 1))
        for part in range(n - 1, order + 1):
            subject = DF("g", labels, part)
            keep = [t for t in pieces if t.order == part]
            out[subject] = Equation(subject, keep, note=f"order mu^{part} part of g_{n}", dimension=dimension)
        for t in pieces:
            if t.order > order:
                dropped.append(Dropped("truncate", f"g{n}", t, f"order mu^{t.order} > mu^{order}"))
    return System(out, dimension, dropped)


def homogeneous(system: System) -> System:
    """f(theta, v) -> F(v) and the two consequences of homogeneity."""
    dropped: list[Dropped] = []
    out: dict[DF, Equation] = {}

    def to_F(df: DF) -> DF:
        return DF("F", df.labels) if (df.kind in ("g", "f") and df.size == 1) else df

    for subject, eq in system.equations.items():
        new_subject = to_F(subject)
        keep = []
        for term in eq.terms:
            term = Term(term.coeff, term.op, tuple(to_F(f) for f in term.factors), term.integrated)
            if term.op.kind == "stream":
                holder = term.factor_containing(term.op.i)
                if holder is not None and holder.kind == "F":
                    dropped.append(Dropped("homogeneous", _name(new_subject), term,
                                           "dF/dtheta = 0 for a homogeneous F(v)"))
                    continue
            if term.op.kind == "force" and term.op.j in term.integrated:
                holder = term.factor_containing(term.op.j)
                if holder is not None and holder.kind == "F":
                    dropped.append(Dropped("homogeneous", _name(new_subject), term,
                                           "mean field vanishes: int dtheta_j U'(theta_i - theta_j) = 0"))
                    continue
            keep.append(term)
        out[new_subject] = Equation(new_subject, keep, eq.note, eq.dimension)
    return System(out, system.dimension, system.dropped + dropped)


def is_collective(term: Term) -> bool:
    """Linear back-reaction: int dGamma_j F_ij . d/dv_i [F(i) g(j, ...) ...] -- a correlation of
    j that does not contain i polarises the one-body DF of i through the potential."""
    if term.op.kind != "force" or term.op.j not in term.integrated:
        return False
    holder_j = term.factor_containing(term.op.j)
    holder_i = term.factor_containing(term.op.i)
    return (holder_j is not None and holder_j.kind == "g" and holder_j.size >= 2
            and term.op.i not in holder_j.labels
            and holder_i is not None and holder_i.is_one_body)


def is_nonlinear_source(term: Term) -> bool:
    """int dGamma_j F_ij . d/dv_i [g(i, ...) g(j, ...)]: the potential of one correlation acting
    on another (quadratic in correlations)."""
    if term.op.kind != "force" or term.op.j not in term.integrated:
        return False
    holder_j = term.factor_containing(term.op.j)
    holder_i = term.factor_containing(term.op.i)
    return (holder_j is not None and holder_j.kind == "g" and holder_j.size >= 2
            and holder_i is not None and holder_i.kind == "g" and holder_i.size >= 2
            and holder_i is not holder_j and term.op.i not in holder_j.labels)


def hot_limit(system: System) -> System:
    """Drop collective effects (dynamically hot system: Q >> Q_c)."""
    dropped: list[Dropped] = []
    out: dict[DF, Equation] = {}
    for subject, eq in system.equations.items():
        keep = []
        for term in eq.terms:
            if is_collective(term):
                dropped.append(Dropped("hot_limit", _name(subject), term,
                                       "collective effect: a correlation acting back on the potential "
                                       "in which it evolves"))
            else:
                keep.append(term)
        out[subject] = Equation(subject, keep, eq.note, eq.dimension)
    return System(out, system.dimension, system.dropped + dropped)


# ---------------------------------------------------------------------------------------
# the three further drops of the order-mu^2 derivation (PHYSICS.md section 3, step 7)

def _drop(system: System, step: str, predicate, reason: str) -> System:
    dropped: list[Dropped] = []
    out: dict[DF, Equation] = {}
    for subject, eq in system.equations.items():
        keep = []
        for term in eq.terms:
            if predicate(subject, term):
                dropped.append(Dropped(step, _name(subject), term, reason))
            else:
                keep.append(term)
        out[subject] = Equation(subject, keep, eq.note, eq.dimension)
    return System(out, system.dimension, system.dropped + dropped)


def is_landau_source(subject: DF, term: Term) -> bool:
    """In the one-body equation: int dGamma_2 F_12 . d/dv1 g2^(1)(1, 2) (the order-1 flux)."""
    return (subject.is_one_body and term.op.kind == "force"
            and any(f.kind == "g" and f.size == 2 and f.part == 1 for f in term.factors))


def drop_landau_source(system: System) -> System:
    """Drop the order-mu (Landau) flux from the one-body equation: it vanishes identically for
    1D homogeneous systems (Operator.check_vanishes_1d is the evidence)."""
    if system.dimension != 1:
        raise ValueError("drop_landau_source is legitimate only in dimension 1 (the Landau flux vanishes there)")
    return _drop(system, "drop_landau_source", is_landau_source,
                 "order-mu Landau flux: vanishes identically in 1D homogeneous systems")


def is_two_body_source(subject: DF, term: Term) -> bool:
    """In the equation of g2^(2): mu F_12 . d/dv_i g2^(1)(1, 2) (no third particle)."""
    return (subject.kind == "g" and subject.size == 2 and subject.part == 2 and term.op.kind == "force"
            and not term.integrated and term.factors == (DF("g", subject.labels, 1),))


def drop_two_body_source(system: System) -> System:
    """Drop mu F_12 . (d/dv1 - d/dv2) g2^(1) from the g2^(2) equation: a purely two-body source,
    whose only resonances are k (v1 - v2); its contribution to the 1D flux vanishes (evidence:
    derive.pipeline.two_body_source_contribution)."""
    if system.dimension != 1:
        raise ValueError("drop_two_body_source is legitimate only in dimension 1")
    return _drop(system, "drop_two_body_source", is_two_body_source,
                 "two-body source of g2^(2): its contribution to the 1D flux vanishes")


def drop_nonlinear_sources(system: System) -> System:
    """Drop the g2 g2 sources of g3: each carries one more coupling U and one more DF than the
    F g2 sources, i.e. a relative factor U*/sigma^2 = 1/Q, negligible in the hot limit."""
    return _drop(system, "drop_nonlinear_sources", lambda s, t: is_nonlinear_source(t),
                 "g2 g2 source of g3: smaller than the F g2 sources by a factor of order 1/Q")
