"""The derived collision operator and the checks it can run on itself.

An :class:`Operator` holds the flux J(v1) of dF/dt = -div_{v1} J (continuity convention: a
positive flux moves particles up in velocity), as sums over wavevectors and integrals over the
other particles' velocities, together with the :class:`~derive.derivation.Derivation` that
produced it. ``check_*`` methods return :class:`Evidence` -- the expressions that were shown
to vanish or to be non-negative -- never bare booleans.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import sympy as sp
from sympy.core.function import AppliedUndef

from derive.derivation import Derivation
from derive.fourier import FourierTerm, components
from derive.reduce import integrate_deltas, use_resonances
from derive.serialize import encode
from derive.symbols import U, velocity


@dataclass
class Evidence:
    """The outcome of a check and the expressions that establish it."""

    name: str
    holds: bool
    statement: str
    expressions: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.holds

    def __str__(self) -> str:
        head = f"[{'holds' if self.holds else 'FAILS'}] {self.name}: {self.statement}"
        return "\n".join([head] + ["    " + sp.sstr(e) for e in self.expressions])


@dataclass
class Operator:
    """A collision operator derived by the engine."""

    order: int
    dimension: int
    collective: bool
    assumptions: list[str]
    flux: list[list[FourierTerm]]  # components of J(v1); empty for the Vlasov equation
    derivation: Derivation
    equation: sp.Expr | None = None  # phase-space form (Vlasov) when there is no flux
    form: str = "canonical"  # order 2: "canonical" (single resonance, well-posed) or "resonance"
    #: order 2, canonical form: the same flux in symmetric form, C (k1+k2) |Lambda|^2 (k.d/dv) F1 F2 F3
    #: (a :class:`derive.symmetric.SymmetricForm`, derived by the "symmetric" stage)
    symmetric: object = None

    # -- identity -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        names = {0: "vlasov", 1: "balescu_lenard" if self.collective else "landau", 2: "three_body"}
        suffix = "" if self.form == "canonical" else f"_{self.form}"
        return f"{names.get(self.order, f'order{self.order}')}{suffix}_{self.dimension}d"

    def canonical_expression(self) -> sp.Expr:
        """dF/dt (or the Vlasov equation) as one SymPy expression."""
        if self.equation is not None:
            return self.equation
        v1 = velocity(1, self.dimension)
        div = 0
        for c, comp in enumerate(self.flux):
            j = sp.Add(*[t.as_sympy(self.dimension) for t in comp])
            div += sp.Derivative(j, v1[c])
        return sp.Eq(sp.Derivative(sp.Function("F")(*v1), sp.Symbol("t")), -div, evaluate=False)

    @property
    def content_hash(self) -> str:
        payload = json.dumps({"options": [self.order, self.dimension, self.collective, self.assumptions],
                              "flux": [[[encode(t.body), [encode(s) for s in t.sums],
                                         [encode(v) for v in t.integrals]]
                                        + ([[encode(x) for x in t.nonzero]] if t.nonzero else [])
                                        for t in comp] for comp in self.flux],
                              "equation": encode(self.equation) if self.equation is not None else None,
                              **({"form": self.form} if self.form != "canonical" else {})},
                             sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def n_terms(self) -> int:
        return sum(len(sp.Add.make_args(t.body)) for comp in self.flux for t in comp)

    def resonances(self) -> list[sp.Expr]:
        """The arguments of the resonance distributions (delta, P) left in the flux."""
        out = set()
        for comp in self.flux:
            for t in comp:
                for d in t.body.atoms(sp.DiracDelta):
                    out.add(d.args[0])
                for f in t.body.atoms(AppliedUndef):
                    pass
        return sorted(out, key=sp.default_sort_key)

    def __repr__(self) -> str:
        return f"Operator({self.name}, {self.n_terms()} terms, hash {self.content_hash})"

    # -- two-body structure (orders <= 1) ----------------------------------------------------
    def _pair_kernel(self) -> tuple[list[sp.Expr], sp.Symbol]:
        """j(v1, v2; q) with J(v1) = sum_q int dv2 j: one sum, one integrated particle (label 2)."""
        q = sp.Symbol("q", integer=True)
        comps = []
        for comp in self.flux:
            total = 0
            for t in comp:
                if len(t.sums) != 1:
                    raise ValueError("the pair kernel needs exactly one summed wavevector per term")
                labels = {s.name.split("_")[0] for s in t.integrals}
                if labels != {"v2"}:
                    raise ValueError(f"the pair kernel needs integrals over particle 2 only, got {t.integrals}")
                mapping = dict(zip(components(t.sums[0], self.dimension), components(q, self.dimension)))
                total += t.body.xreplace(mapping)
            comps.append(sp.expand(total))
        return comps, q

    def _swap12(self, expr: sp.Expr) -> sp.Expr:
        v1, v2 = velocity(1, self.dimension), velocity(2, self.dimension)
        mapping = {**dict(zip(v1, v2)), **dict(zip(v2, v1))}
        return expr.xreplace(mapping).doit()

    def _resonant_zero(self, expr: sp.Expr) -> sp.Expr:
        """Simplify using the resonance conditions of the Dirac deltas (f(x) delta(x) = f(0) delta(x))."""
        v2 = velocity(2, self.dimension)
        reduced = use_resonances([FourierTerm(sp.expand(expr), (), v2)], into_functions=True)
        return sp.simplify(sum((t.body for t in reduced), sp.Integer(0)))

    def _on_resonance(self, expr: sp.Expr) -> sp.Expr:
        """f(x) delta(x) = f(0) delta(x) in the explicit cofactors only (the DFs are left alone)."""
        reduced = use_resonances([FourierTerm(sp.expand(expr), (), velocity(2, self.dimension))])
        return sum((t.body for t in reduced), sp.Integer(0))

    def check_vanishes_1d(self) -> Evidence:
        """In 1D the only resonance of a two-body kernel is v1 = v2, where drift and diffusion
        cancel: integrating the flux against its delta leaves 0."""
        if self.dimension != 1 or self.order != 1:
            raise ValueError("check_vanishes_1d applies to the order-1 operator in dimension 1")
        reduced = integrate_deltas([t for comp in self.flux for t in comp])
        residual = [sp.simplify(sum((t.body for t in reduced), sp.Integer(0)))]
        holds = all(r == 0 for r in residual)
        return Evidence("vanishes_1d", holds,
                        "after integrating over v2 against delta(q (v1 - v2)), the flux integrand is "
                        + ("identically 0" if holds else "non-zero"),
                        [t.body for comp in self.flux for t in comp] + residual)

    def check_conservation(self) -> dict[str, Evidence]:
        """Mass (divergence form), momentum (antisymmetry of the pair kernel under 1 <-> 2) and
        energy ((v1 - v2) . j vanishes on the resonance)."""
        if self.order == 2:
            return self._symmetric().check_conservation()
        out = {"mass": Evidence("mass", True, "dF/dt = -div_{v1} J(v1) is a divergence; int dF/dt dv1 = 0 "
                                "for a flux that vanishes at infinite |v1|", [self.canonical_expression()])}
        if self.order != 1:
            raise ValueError("check_conservation is implemented for two-body (order-1) operators")
        j, _ = self._pair_kernel()
        mom = [self._resonant_zero(jc + self._swap12(jc)) for jc in j]
        out["momentum"] = Evidence("momentum", all(m == 0 for m in mom),
                                   "dP/dt = int int j(v1,v2) = (1/2) int int [j(v1,v2) + j(v2,v1)]; "
                                   "the symmetrised kernel is", mom)
        v1, v2 = velocity(1, self.dimension), velocity(2, self.dimension)
        energy = sum(v1[c] * j[c] + v2[c] * self._swap12(j[c]) for c in range(self.dimension))
        energy = self._resonant_zero(energy)
        out["energy"] = Evidence("energy", energy == 0,
                                 "dE/dt = (1/2) int int [v1.j(v1,v2) + v2.j(v2,v1)] with the resonance "
                                 "condition applied is", [energy])
        return out

    # -- three-body (order 2): through the symmetric form ---------------------------------------
    def _symmetric(self):
        if self.order != 2 or self.symmetric is None:
            raise ValueError("this check needs the symmetric form of the order-2 operator: "
                             "derive.collision_operator(2) (form='canonical') carries it")
        return self.symmetric

    def check_steady_states(self) -> Evidence:
        """Order 2: shifted Maxwellians are steady, and only they (see SymmetricForm.check_maxwellian)."""
        return self._symmetric().check_maxwellian()

    def check_blocking(self) -> Evidence:
        """Order 2: the potentials for which the flux vanishes for every F are the Dirac combs."""
        return self._symmetric().check_blocking()

    def check_averaging_weights(self) -> Evidence:
        """Order 2: weights that make the fourth-order principal value an ordinary one."""
        return self._symmetric().averaging_weights()[1]

    def check_h_theorem(self) -> Evidence:
        """dS/dt = -(1/2) int int [j(1,2).grad1 F1/F1 + j(2,1).grad2 F2/F2] >= 0, shown by
        factoring the symmetrised integrand into manifestly non-negative factors."""
        if self.order == 2:
            return self._symmetric().check_h_theorem()
        if self.order != 1:
            raise ValueError("check_h_theorem is implemented for two-body (order-1) operators")
        j, q = self._pair_kernel()
        d = self.dimension
        v = {a: velocity(a, d) for a in (1, 2)}
        Fsym = {a: sp.Symbol(f"F{a}", positive=True) for a in (1, 2)}
        G = {a: [sp.Symbol(f"dF{a}_{c + 1}", real=True) for c in range(d)] for a in (1, 2)}
        Ffun = sp.Function("F")

        def symbolic(expr):
            rep = {}
            for a in (1, 2):
                for c in range(d):
                    rep[sp.Derivative(Ffun(*v[a]), v[a][c])] = G[a][c]
            expr = expr.xreplace(rep)
            return expr.xreplace({Ffun(*v[a]): Fsym[a] for a in (1, 2)})

        integrand = 0
        for c in range(d):
            integrand += j[c] * G[1][c] / Fsym[1] + symbolic(self._swap12(j[c])) * 0
        # j(2,1) . grad2 F2 / F2:
        # the resonance condition in explicit cofactors (e.g. eps(q.v2) = eps(q.v1) on delta(q.(v1 - v2)))
        j21 = [self._on_resonance(symbolic(self._swap12(jc))) for jc in j]
        j12 = [self._on_resonance(symbolic(jc)) for jc in j]
        integrand = -sum(j12[c] * G[1][c] / Fsym[1] + j21[c] * G[2][c] / Fsym[2] for c in range(d)) / 2
        integrand = sp.factor(sp.simplify(integrand))
        factors = sp.Mul.make_args(integrand)
        nonneg = []
        for f in factors:
            base, exp = f.as_base_exp()
            ok = (f.is_nonnegative is True) or (exp.is_even is True) or isinstance(f, sp.DiracDelta) \
                or (isinstance(base, U) and exp.is_even) or _has_conjugate_partner(f, factors)
            nonneg.append(ok)
        holds = all(nonneg)
        return Evidence("h_theorem", holds,
                        "symmetrised entropy-production integrand = product of non-negative factors "
                        "(constants, U_q^2, Dirac delta, F's, |z|^2 = z z*, a square)" if holds else
                        "could not write the entropy production as a product of non-negative factors",
                        [integrand])


def _has_conjugate_partner(factor: sp.Expr, factors) -> bool:
    """z**e with conj(z)**e also a factor: together |z|^(2e) >= 0 (a dielectric function and its
    conjugate, eps_q(w) eps_{-q}(-w) = |eps_q(w)|^2). Only for an evaluated conjugate."""
    base, exp = factor.as_base_exp()
    if not exp.is_real or base.is_real:
        return False
    partner = base.conjugate()
    return not isinstance(partner, sp.conjugate) and partner != base and partner ** exp in factors
