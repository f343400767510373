"""Stage 5: from the long-time flux to a real, reduced form.

* :func:`real_part`        -- Sokhotski-Plemelj split of every Resonance into P and delta, and
                              the real part; the imaginary part must be odd under flipping all
                              summed wavevectors (so it sums to zero) -- returned as evidence;
* :func:`symmetrise`       -- average over the flip of all summed wavevectors (q -> -q), which
                              removes the parts that sum to zero;
* :func:`use_resonances`   -- f(x) delta(x) = f(0) delta(x): substitute the resonance condition
                              of every (undifferentiated) Dirac delta into its smooth cofactor;
* :func:`integrate_deltas` -- in 1D, delta(a (v_j - w)) = delta(v_j - w)/|a|, then integrate an
                              integrated velocity against it.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.fourier import FourierTerm, components
from derive.symbols import PrincipalValue, Resonance, combine_resonances, split_resonance


def _flip_sums(term: FourierTerm, dimension: int) -> sp.Expr:
    mapping = {}
    for s in term.sums:
        for c in components(s, dimension):
            mapping[c] = -c
    return term.body.subs(mapping, simultaneous=True)


def _real_imag(expr: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    e = sp.expand(expr)
    re_part = e.xreplace({sp.I: 0})
    im_part = sp.expand((e - re_part) / sp.I)
    return re_part, im_part


@dataclass
class RealPart:
    terms: list[FourierTerm]
    imaginary_residue: list[sp.Expr]  # im(q) + im(-q) for each term; all zero when consistent

    @property
    def imaginary_sums_to_zero(self) -> bool:
        return all(r == 0 for r in self.imaginary_residue)


def real_part(terms: list[FourierTerm], dimension: int) -> RealPart:
    out, residues = [], []
    for term in terms:
        body = split_resonance(combine_resonances(term.body))
        re_part, im_part = _real_imag(body)
        flipped = FourierTerm(im_part, term.sums, term.integrals)
        residues.append(sp.simplify(sp.expand(im_part + _flip_sums(flipped, dimension))))
        if re_part != 0:
            out.append(FourierTerm(re_part, term.sums, term.integrals))
    return RealPart(out, residues)


def symmetrise(terms: list[FourierTerm], dimension: int) -> list[FourierTerm]:
    out = []
    for term in terms:
        body = sp.expand((term.body + _flip_sums(term, dimension)) / 2)
        if body != 0:
            out.append(FourierTerm(body, term.sums, term.integrals))
    return out


def _delta_factors(expr: sp.Expr):
    return [a for a in sp.Mul.make_args(expr) if isinstance(a, sp.DiracDelta)]


def canonical_deltas(expr: sp.Expr) -> sp.Expr:
    """delta(-x) = delta(x) (and delta^(n)(-x) = (-1)^n delta^(n)(x)): pick the sign for which
    the leading term of the expanded argument has a positive coefficient."""

    def fix(*args):
        x = sp.expand(args[0])
        n = int(args[1]) if len(args) > 1 else 0
        lead = sorted(sp.Add.make_args(x), key=sp.default_sort_key)[0]
        if lead.as_coeff_Mul()[0] < 0:
            return (-1) ** n * (sp.DiracDelta(-x, n) if n else sp.DiracDelta(-x))
        return sp.DiracDelta(x, n) if n else sp.DiracDelta(x)

    return expr.replace(sp.DiracDelta, fix)


def merge(terms: list[FourierTerm], dimension: int) -> list[FourierTerm]:
    """Add the bodies of terms with the same integrals and number of sums (sums renamed to a
    canonical q1, q2, ...), with Dirac deltas in canonical sign."""
    groups: dict[tuple, sp.Expr] = {}
    for term in terms:
        canon = tuple(sp.Symbol(f"q{n + 1}", integer=True) for n in range(len(term.sums)))
        mapping = {}
        for old, new in zip(term.sums, canon):
            mapping.update(dict(zip(components(old, dimension), components(new, dimension))))
        key = (canon, term.integrals)
        groups[key] = groups.get(key, 0) + canonical_deltas(term.body.xreplace(mapping))
    out = []
    for (sums, integrals), body in groups.items():
        body = sp.expand(body)
        if body != 0:
            out.append(FourierTerm(body, sums, integrals))
    return out


def _is_function_factor(f: sp.Expr) -> bool:
    from sympy.core.function import AppliedUndef

    return bool(f.atoms(AppliedUndef)) or isinstance(f, (sp.Derivative, sp.Subs))


def use_resonances(terms: list[FourierTerm], into_functions: bool = False) -> list[FourierTerm]:
    """For each term with an undifferentiated delta(x), solve x = 0 for one integrated velocity
    component appearing linearly in x and substitute it into the smooth cofactors: the explicit
    (polynomial, coupling) factors, and with ``into_functions`` also the DFs."""
    out = []
    for term in terms:
        new_body = 0
        for piece in sp.Add.make_args(sp.expand(term.body)):
            deltas = [d for d in _delta_factors(piece) if len(d.args) == 1]
            if not deltas:
                new_body += piece
                continue
            delta = deltas[0]
            arg = delta.args[0]
            target = next((v for v in term.integrals if arg.has(v) and sp.degree(arg, v) == 1), None)
            if target is None:
                new_body += piece
                continue
            value = sp.solve(arg, target)[0]
            rest = sp.Mul.make_args(piece / delta)
            rest = [f if (_is_function_factor(f) and not into_functions) else f.subs(target, value).doit()
                    for f in rest]
            new_body += sp.Mul(*rest) * delta
        new_body = sp.expand(new_body)
        if new_body != 0:
            out.append(FourierTerm(new_body, term.sums, term.integrals))
    return out


def integrate_deltas(terms: list[FourierTerm]) -> list[FourierTerm]:
    """1D: integrate an integrated velocity against delta(a v + b) (no derivative on it)."""
    out = []
    for term in terms:
        remaining = list(term.integrals)
        new_body = 0
        done_vars = set()
        for piece in sp.Add.make_args(sp.expand(term.body)):
            deltas = [d for d in _delta_factors(piece) if len(d.args) == 1]
            target = None
            if deltas:
                arg = deltas[0].args[0]
                target = next((v for v in term.integrals if arg.has(v) and sp.degree(arg, v) == 1), None)
            if target is None:
                new_body += piece
                continue
            coeff = sp.diff(arg, target)
            value = sp.solve(arg, target)[0]
            rest = (piece / deltas[0]).subs(target, value).doit()
            new_body += rest / sp.Abs(coeff)
            done_vars.add(target)
        if done_vars and len(done_vars) == 1:
            remaining = [v for v in remaining if v not in done_vars]
        elif done_vars:
            raise NotImplementedError("pieces of one term integrated against different velocities")
        new_body = sp.simplify(sp.expand(new_body))
        if new_body != 0:
            out.append(FourierTerm(new_body, term.sums, tuple(remaining)))
    return out


PrincipalValue, Resonance  # re-exported names used by callers
