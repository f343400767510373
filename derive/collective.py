"""Collective effects at order mu: the Balescu-Lenard operator, derived by the engine's stages.

Without the ``hot_limit`` step the Fourier equation of the order-mu pair correlation
h(v1, v2) = ghat2_1(k; v1, v2) (mode exp(i k.(theta1 - theta2))) keeps two integral terms,
int dv3 ghat2_1(-k; v2, v3) and int dv3 ghat2_1(k; v1, v3): the correlation polarises the
medium in which it evolves. With the exchange symmetry of g2 the equation reads

    d/dt h + (L1 + L2) h = S,    L_a h = i k_a.v_a h + a_a(v_a) int h dv_a,

with k_1 = k, k_2 = -k: each L_a is particle a's linearised Vlasov operator, a rank-one
perturbation of a multiplication operator, and S is the bare (Landau) source. The passes:

* :func:`orient`             -- exchange symmetry ghat(p; va, vb) = ghat(-p; vb, va), so that
                                every correlation carries the equation's own wavevector;
* :func:`recognise`          -- read off k_a, the couplings a_a and S
                                (:class:`CollectiveStructureError` if the structure is absent);
* :func:`identify_dielectric`-- the Sherman-Morrison denominator 1 + <A_a^-1 a_a> of each
                                one-particle resolvent, compared with :class:`Dielectric`'s
                                definition (A_a = i (k_a.v_a - omega_a) + 0, omega_1 = omega,
                                omega_2 = -omega);
* :func:`sherman_morrison`   -- R_a = (L_a - i omega_a)^-1
                                = A^-1 - A^-1 a <A^-1 .> / eps, verified on a generic function;
* :func:`bogoliubov`         -- zero initial correlation, F frozen, t -> oo:
                                h = int_0^oo ds e^{-L1 s} e^{-L2 s} S
                                  = int domega/2pi R1(omega) R2(-omega) S
                                (L1, L2 act on different variables and commute);
* :func:`density_projection` -- the flux needs only int dv2 h, and <1|_2 R2 = <A2^-1 .>_2 / eps2;
                                brackets <A_a^-1 c a_a> are recognised as c (eps_a - 1);
* :func:`frequency_integral` -- the omega integral by contour closing (poles of the free
                                resolvents; eps(omega + i0) analytic and zero-free in the
                                upper half-plane for a stable state), with the Plemelj rewriting
                                1/(x - i0) = -1/(-x - i0) + 2 pi i delta(x) for the mixed terms;
* :func:`substitute_flux`, :func:`collective_real_part` -- the flux of dF/dt = -div J, its
                                q -> -q average (eps_{-q}(-w) = conj eps_q(w)), conjugate pairs
                                |eps|^2 in the denominators, and the real part.

The dielectric function is a SymPy function class, :class:`Dielectric`, whose definition is
available as an expression; nothing here writes the final operator by hand.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy as sp

from derive import serialize
from derive.assumptions import System
from derive.derivation import Derivation
from derive.fourier import FourierEquation, FourierTerm, components, dot, fourier_system
from derive.kinetics import ghat_calls
from derive.operator import Operator
from derive.phase_space import DF
from derive.reduce import canonical_deltas, merge, symmetrise, use_resonances
from derive.symbols import PrincipalValue, Resonance, U, combine_resonances, split_resonance, velocity

#: frequency of the one-particle resolvents (the Fourier variable of the time integral)
OMEGA = sp.Symbol("omega", real=True)

#: named assumptions of the collective derivation, besides truncate and homogeneous
COLLECTIVE_ASSUMPTIONS = {
    "bogoliubov": "F frozen while correlations relax; correlations start at zero",
    "linear_stability": "eps_k(omega + i0) has no zero in the closed upper half-plane (no growing or "
                        "marginal mode): the dressed resolvents are analytic there",
}


class CollectiveStructureError(ValueError):
    """The correlation equation does not have the rank-one linearised-Vlasov structure."""


def _F(v) -> sp.Expr:
    return sp.Function("F")(*v)


def _definition_velocity(dimension: int) -> tuple[sp.Symbol, ...]:
    if dimension == 1:
        return (sp.Symbol("u", real=True),)
    return tuple(sp.Symbol(f"u_{c + 1}", real=True) for c in range(dimension))


# ----------------------------------------------------------------------------------------
# the dielectric function


class Dielectric(sp.Function):
    """eps_k(omega) = 1 - (2 pi)^d U_k int dv k.grad F(v) / (omega - k.v + i0), Landau prescription.

    Arguments: the d components of k, then omega. F is the engine's phase-space DF, so with
    F = M phi / (2 pi)^d this is 1 - M U_k int dv k.grad phi / (omega - k.v + i0), the function
    of :func:`numerics.models.stability.dielectric` (M = 1, d = 1).
    In the engine's distributions 1/(omega - k.v + i0) = -Resonance(k.v - omega, 1), so
    eps = 1 + (2 pi)^d U_k int dv k.grad F(v) Resonance(k.v - omega, 1) (:meth:`definition`).
    For real k and omega, conj eps_k(omega) = eps_{-k}(-omega) (:meth:`_eval_conjugate`).
    """

    is_commutative = True

    @classmethod
    def eval(cls, *args):
        if len(args) < 2:
            raise ValueError("Dielectric takes the wavevector components, then the frequency")
        w = args[-1]
        expanded = sp.expand(w)
        if expanded != w:
            return cls(*args[:-1], expanded)
        return None

    @property
    def wavevector(self) -> tuple:
        return tuple(self.args[:-1])

    @property
    def frequency(self) -> sp.Expr:
        return self.args[-1]

    @property
    def dimension(self) -> int:
        return len(self.args) - 1

    def _eval_conjugate(self):
        # F real and U_{-k} = U_k: conj 1/(x - i0) = 1/(x + i0) = -1/(-x - i0)
        return Dielectric(*[-k for k in self.wavevector], -self.frequency)

    def integrand(self, u) -> sp.Expr:
        """(2 pi)^d U_k k.grad F(u) Resonance(k.u - omega, 1): eps = 1 + int du integrand."""
        k = self.wavevector
        Fu = _F(u)
        return ((2 * sp.pi) ** self.dimension * U(*k) * sp.Add(*[kc * sp.Derivative(Fu, uc) for kc, uc in zip(k, u)])
                * Resonance(dot(k, u) - self.frequency, 1))

    def definition(self, u=None) -> sp.Expr:
        """The defining expression, 1 + Integral(...), over the velocity ``u`` (default u or u_c)."""
        u = tuple(u) if u is not None else _definition_velocity(self.dimension)
        return 1 + sp.Integral(self.integrand(u), *[(uc, -sp.oo, sp.oo) for uc in u])

    def _latex(self, printer, exp=None):
        k = ",".join(printer._print(a) for a in self.wavevector)
        out = r"\varepsilon_{%s}\left(%s\right)" % (k, printer._print(self.frequency))
        return out if exp is None else r"%s^{%s}" % (out, printer._print(exp))


# the JSON whitelist must know the class to store and reload Balescu-Lenard operators
serialize.register(Dielectric)


# ----------------------------------------------------------------------------------------
# exchange symmetry and recognition of the structure


def _ghat_parts(call, dimension: int):
    a = call.args
    return tuple(a[:dimension]), tuple(a[dimension:2 * dimension]), tuple(a[2 * dimension:])


def _flip(call, dimension: int):
    p, va, vb = _ghat_parts(call, dimension)
    return call.func(*[-c for c in p], *vb, *va)


@dataclass
class Oriented:
    """The g2 Fourier equation with every correlation written with the external wavevector."""

    equation: FourierEquation
    flipped: list  # (before, after) pairs

    def as_sympy(self) -> list:
        return [self.equation.as_sympy()] + [sp.Eq(a, b) for a, b in self.flipped]


def orient(eq: FourierEquation) -> Oriented:
    """g2 is symmetric under exchange of its particles, so its Fourier coefficients obey
    ghat2(p; va, vb) = ghat2(-p; vb, va). Rewrite every correlation of the source whose
    wavevector is minus the external one."""
    d = eq.dimension
    if eq.subject.kind != "g" or eq.subject.size != 2:
        raise CollectiveStructureError(f"expected the equation of a pair correlation, got {eq.subject}")
    k = tuple(eq.lhs.args[:d])
    minus_k = tuple(sp.expand(-c) for c in k)
    flipped = []
    source = []
    for term in eq.source:
        mapping = {}
        for call in ghat_calls(term.body):
            if call.func == eq.lhs.func and tuple(sp.expand(c) for c in call.args[:d]) == minus_k:
                mapping[call] = _flip(call, d)
                flipped.append((call, mapping[call]))
        source.append(FourierTerm(term.body.xreplace(mapping), term.sums, term.integrals))
    new = FourierEquation(eq.subject, eq.lhs, eq.external, eq.omega, source, d, eq.flux)
    return Oriented(new, flipped)


@dataclass
class LinearisedVlasov:
    """L_a h = i k_a.v_a h + a_a(v_a) int h dv_a: particle a's linearised Vlasov operator."""

    label: int
    wavevector: tuple
    velocity: tuple
    coupling: sp.Expr  # a_a(v_a)

    @property
    def dimension(self) -> int:
        return len(self.velocity)

    def coupling_at(self, u) -> sp.Expr:
        return self.coupling.xreplace(dict(zip(self.velocity, u)))

    def free_resolvent(self, u, frequency) -> sp.Expr:
        """A^-1 = (i (k_a.u - frequency) + 0)^-1 = -i Resonance(k_a.u - frequency, 1)."""
        return -sp.I * Resonance(dot(self.wavevector, u) - frequency, 1)

    def dielectric(self, frequency) -> Dielectric:
        return Dielectric(*self.wavevector, frequency)

    def as_sympy(self) -> sp.Eq:
        u = _definition_velocity(self.dimension)
        h = sp.Function("h")
        body = sp.I * dot(self.wavevector, self.velocity) * h(*self.velocity) + self.coupling * sp.Integral(
            h(*u), *[(uc, -sp.oo, sp.oo) for uc in u])
        return sp.Eq(sp.Function(f"L{self.label}")(h(*self.velocity)), body)


@dataclass
class CollectiveEquation:
    """d/dt h + (L1 + L2) h = S for h = ghat2_1(k; v1, v2)."""

    subject: DF
    unknown: sp.Expr
    external: tuple
    operators: tuple  # (L1, L2)
    source: sp.Expr  # the bare source S(v1, v2)
    n_collective: int  # source pieces recognised as collective
    dimension: int
    flux: list = field(default_factory=list)  # the one-body equation's flux terms (unchanged)

    def n_terms(self) -> int:
        return len(sp.Add.make_args(self.source)) + self.n_collective

    def as_sympy(self) -> sp.Eq:
        t = sp.Symbol("t")
        lhs = sp.Derivative(self.unknown, t)
        for op in self.operators:
            u = _definition_velocity(self.dimension)
            moved = self.unknown.xreplace(dict(zip(op.velocity, u)))
            lhs += sp.I * dot(op.wavevector, op.velocity) * self.unknown + op.coupling * sp.Integral(
                moved, *[(uc, -sp.oo, sp.oo) for uc in u])
        return sp.Eq(lhs, self.source)


def recognise(eq: FourierEquation, flux=()) -> CollectiveEquation:
    """Read the rank-one structure off the (oriented) Fourier equation of g2^(1)."""
    d = eq.dimension
    if eq.subject.kind != "g" or eq.subject.size != 2:
        raise CollectiveStructureError(f"expected the equation of a pair correlation, got {eq.subject}")
    k, v1, v2 = _ghat_parts(eq.lhs, d)
    omega = sp.expand(eq.omega)
    ks = {1: tuple(omega.coeff(c) for c in v1), 2: tuple(omega.coeff(c) for c in v2)}
    if sp.expand(omega - dot(ks[1], v1) - dot(ks[2], v2)) != 0:
        raise CollectiveStructureError(f"the streaming frequency {omega} is not k1.v1 + k2.v2")
    couplings = {1: sp.Integer(0), 2: sp.Integer(0)}
    bare = []
    n_collective = 0
    for term in eq.source:
        if term.sums:
            raise CollectiveStructureError(f"unexpected sum over {term.sums} in the order-mu source")
        body = sp.expand(term.body.doit())
        for piece in sp.Add.make_args(body):
            calls = ghat_calls(piece)
            if not calls:
                if term.integrals:
                    raise CollectiveStructureError(f"an integrated source term without a correlation: {piece}")
                bare.append(piece)
                continue
            if len(calls) != 1:
                raise CollectiveStructureError(f"a source term quadratic in correlations: {piece}")
            call = next(iter(calls))
            coeff = sp.simplify(piece / call)
            if ghat_calls(coeff) or call.func != eq.lhs.func:
                raise CollectiveStructureError(f"not linear in {eq.lhs.func}: {piece}")
            u = tuple(term.integrals)
            if len(u) != d:
                raise CollectiveStructureError(f"a collective term integrates over one particle: {term.integrals}")
            slot = None
            for a, va in ((1, v1), (2, v2)):
                if call == eq.lhs.xreplace(dict(zip(va, u))):
                    slot = a
            if slot is None:
                raise CollectiveStructureError(
                    f"{call} is not {eq.lhs} with one particle's velocity integrated over: the equation "
                    "does not have the rank-one linearised-Vlasov form (was the exchange symmetry applied?)")
            other = v2 if slot == 1 else v1
            if coeff.has(*u) or coeff.has(*other):
                raise CollectiveStructureError(f"the coupling of {piece} depends on more than v{slot}")
            couplings[slot] += -coeff  # moved to the left-hand side
            n_collective += 1
    if n_collective == 0:
        raise CollectiveStructureError(
            "the g2 equation has no collective term int dv' ghat2(..v'..): keep the collective terms "
            "(do not apply hot_limit) to derive the Balescu-Lenard operator")
    operators = []
    for a, va in ((1, v1), (2, v2)):
        coupling = sp.factor_terms(sp.expand(couplings[a]))
        if coupling == 0:
            raise CollectiveStructureError(f"particle {a} carries no collective term")
        operators.append(LinearisedVlasov(a, ks[a], va, coupling))
    return CollectiveEquation(eq.subject, eq.lhs, eq.external, tuple(operators), sp.Add(*bare), n_collective, d,
                              list(flux))


# ----------------------------------------------------------------------------------------
# the dielectric function as the Sherman-Morrison denominator


@dataclass
class DielectricIdentity:
    """1 + <A_a^-1 a_a> (the Sherman-Morrison denominator) == Dielectric(k_a, omega_a)."""

    label: int
    frequency: sp.Expr
    denominator: sp.Expr
    dielectric: Dielectric
    residual: sp.Expr  # integrand difference, 0 when identified

    @property
    def holds(self) -> bool:
        return self.residual == 0

    def as_sympy(self) -> list:
        return [sp.Eq(self.denominator, self.dielectric), sp.Eq(self.dielectric, self.dielectric.definition())]


def identify_dielectric(op: LinearisedVlasov, frequency) -> DielectricIdentity:
    u = _definition_velocity(op.dimension)
    integrand = op.coupling_at(u) * op.free_resolvent(u, frequency)
    eps = op.dielectric(frequency)
    residual = sp.simplify(sp.expand((integrand - eps.integrand(u)).doit()))
    denominator = 1 + sp.Integral(integrand, *[(uc, -sp.oo, sp.oo) for uc in u])
    out = DielectricIdentity(op.label, frequency, denominator, eps, residual)
    if not out.holds:
        raise CollectiveStructureError(f"the Sherman-Morrison denominator of particle {op.label} is not the "
                                       f"dielectric function: integrands differ by {residual}")
    return out


def _frequencies() -> dict[int, sp.Expr]:
    """omega_1 = omega, omega_2 = -omega: int_0^oo ds e^{-L1 s} e^{-L2 s}
    = int domega/2pi (L1 - i omega)^-1 (L2 + i omega)^-1, both with the causal (+ i0) prescription."""
    return {1: OMEGA, 2: -OMEGA}


# ----------------------------------------------------------------------------------------
# the one-particle resolvents


@dataclass
class Resolvent:
    """R_a(omega_a) psi = A^-1 psi - A^-1 a_a <A^-1 psi> / eps_a,  A = i (k_a.v_a - omega_a) + 0."""

    operator: LinearisedVlasov
    frequency: sp.Expr
    dielectric: Dielectric
    verification: dict  # name -> residual (all 0)

    @property
    def holds(self) -> bool:
        return all(r == 0 for r in self.verification.values())

    def as_sympy(self) -> list:
        op = self.operator
        psi = sp.Function("psi")
        u = _definition_velocity(op.dimension)
        Ainv = op.free_resolvent(op.velocity, self.frequency)
        bracket = sp.Integral(op.free_resolvent(u, self.frequency) * psi(*u), *[(uc, -sp.oo, sp.oo) for uc in u])
        rhs = Ainv * psi(*op.velocity) - Ainv * op.coupling * bracket / self.dielectric
        lhs = sp.Function(f"R{op.label}")(psi(*op.velocity))
        proj = sp.Eq(sp.Integral(lhs, *[(vc, -sp.oo, sp.oo) for vc in op.velocity]), bracket / self.dielectric)
        return [sp.Eq(lhs, rhs), proj] + [sp.Eq(sp.Symbol(n), r) for n, r in self.verification.items()]


def sherman_morrison(op: LinearisedVlasov, identity: DielectricIdentity) -> Resolvent:
    """(A + a <1|)^-1 = A^-1 - A^-1 a <1| A^-1 / (1 + <1| A^-1 a>), checked on a generic psi:
    with X = <A^-1 psi>, Y = <A^-1 a>, D = 1 + Y the resolvent applied by (L - i omega) gives psi
    back, and its velocity integral is X / D (what the flux uses)."""
    A, a, psi, X, Y, D = sp.symbols("A a psi X Y D")
    R_psi = psi / A - (a / A) * X / D  # value at v
    int_R_psi = X - Y * X / D  # <R psi>: int A^-1 psi - int A^-1 a * X / D
    back = A * R_psi + a * int_R_psi  # (A + a <1|) R psi
    checks = {
        "(L - i omega) R psi - psi": sp.simplify((back - psi).subs(D, 1 + Y)),
        "int R psi - X / eps": sp.simplify((int_R_psi - X / D).subs(D, 1 + Y)),
    }
    out = Resolvent(op, identity.frequency, identity.dielectric, checks)
    if not out.holds:
        raise AssertionError(f"Sherman-Morrison identity fails: {checks}")
    return out


# ----------------------------------------------------------------------------------------
# Bogoliubov solution and its density projection


@dataclass
class FrequencyTerm:
    """int domega/2pi int d(integrals) of the product of ``factors``."""

    factors: tuple
    integrals: tuple = ()

    def __post_init__(self):
        # flatten and combine powers (eps * eps^-1 = 1); sums (susceptibilities) stay single factors
        flat = []
        for f in self.factors:
            flat.extend(sp.Mul.make_args(sp.sympify(f)))
        sums = [f for f in flat if isinstance(f, sp.Add)]
        product = sp.Mul(*[f for f in flat if not isinstance(f, sp.Add)])
        self.factors = tuple(f for f in sp.Mul.make_args(product) if f != 1) + tuple(sums)

    @property
    def body(self) -> sp.Expr:
        return sp.Mul(*self.factors)

    def as_sympy(self) -> sp.Expr:
        return sp.Integral(self.body / (2 * sp.pi), (OMEGA, -sp.oo, sp.oo),
                           *[(v, -sp.oo, sp.oo) for v in self.integrals])


@dataclass
class FormalSolution:
    """h = lim_{t->oo} int_0^t ds e^{-L1 s} e^{-L2 s} S = int domega/2pi R1(omega) R2(-omega) S."""

    equation: CollectiveEquation
    resolvents: tuple

    def as_sympy(self) -> list:
        s, t = sp.symbols("s t", positive=True)
        L1, L2 = sp.symbols("L1 L2", commutative=False)
        S = sp.Symbol("S", commutative=False)
        w1, w2 = (r.frequency for r in self.resolvents)
        time_form = sp.Limit(sp.Integral(sp.exp(-L1 * s) * sp.exp(-L2 * s) * S, (s, 0, t)), t, sp.oo)
        freq_form = sp.Integral(sp.Function("R1")(w1) * sp.Function("R2")(w2) * S / (2 * sp.pi),
                                (OMEGA, -sp.oo, sp.oo))
        return [sp.Eq(self.equation.unknown, time_form), sp.Eq(self.equation.unknown, freq_form),
                sp.Eq(sp.Symbol("S"), self.equation.source)]


def bogoliubov(eq: CollectiveEquation, resolvents) -> FormalSolution:
    freq = _frequencies()
    if tuple(r.frequency for r in resolvents) != (freq[1], freq[2]):
        raise AssertionError("resolvent frequencies must be (omega, -omega)")
    return FormalSolution(eq, tuple(resolvents))


def separable(expr: sp.Expr, va: tuple, vb: tuple) -> list[tuple[sp.Expr, sp.Expr]]:
    """Write S(va, vb) as a short sum of products s_a(va) s_b(vb) (grouping by one factor, then
    by the other), so that one-particle brackets keep their component sums together."""
    pieces = []
    for piece in sp.Add.make_args(sp.expand(expr)):
        fa, fb, const = [], [], []
        for f in sp.Mul.make_args(piece):
            if f.has(*va) and f.has(*vb):
                raise CollectiveStructureError(f"the bare source does not separate in v1, v2: {piece}")
            (fa if f.has(*va) else fb if f.has(*vb) else const).append(f)
        pieces.append((sp.Mul(*const) * sp.Mul(*fa), sp.Mul(*fb)))
    grouped: dict = {}
    for sa, sb in pieces:  # group by the b factor
        grouped[sb] = grouped.get(sb, 0) + sa
    regrouped: dict = {}
    for sb, sa in grouped.items():  # then by the a factor up to a constant
        c, rest = sp.factor_terms(sa).as_independent(*va, as_Add=False)
        regrouped.setdefault(rest, []).append(c * sb)
    return [(rest, sp.Add(*bs)) for rest, bs in regrouped.items() if rest != 0]


def _bracket(op: LinearisedVlasov, s: sp.Expr, frequency, dummy: tuple):
    """<A_a^-1 s> as factors: c (eps_a - 1) when s = c a_a (the dielectric's own integral), else
    the integrand over ``dummy`` (returned with the dummy as a new integration variable)."""
    ratio = sp.cancel(sp.expand(s) / sp.expand(op.coupling))
    if not ratio.has(*op.velocity):
        return [ratio, op.dielectric(frequency) - 1], ()
    s_u = s.xreplace(dict(zip(op.velocity, dummy)))
    return [op.free_resolvent(dummy, frequency), s_u], tuple(dummy)


@dataclass
class ProjectedSolution:
    """int dv2 h(k; v1, v2) as frequency integrals (before the omega integral)."""

    unknown: sp.Expr
    terms: list

    def n_terms(self) -> int:
        return len(self.terms)

    def as_sympy(self) -> list:
        return [sp.Eq(sp.Symbol("int_dv2_" + self.unknown.func.__name__), sp.Add(*[t.as_sympy() for t in self.terms]))]


def density_projection(formal: FormalSolution) -> ProjectedSolution:
    """int dv2 [R1(omega) R2(-omega) S] = R1(omega) <A2^-1 S>_2 / eps2 for each separable piece
    s1(v1) s2(v2) of S, then R1 applied by Sherman-Morrison:
        A1^-1 s1 <A2^-1 s2>/eps2 - A1^-1 a1 <A1^-1 s1><A2^-1 s2>/(eps1 eps2)."""
    eq = formal.equation
    op1, op2 = eq.operators
    r1, r2 = formal.resolvents
    d = eq.dimension
    v2_dummy = velocity(2, d)  # particle 2's velocity is integrated (density projection)
    v3_dummy = velocity(3, d)  # dummy for particle 1's bracket
    terms = []
    for s1, s2 in separable(eq.source, op1.velocity, op2.velocity):
        b2, int2 = _bracket(op2, s2, r2.frequency, v2_dummy)
        b1, int1 = _bracket(op1, s1, r1.frequency, v3_dummy)
        A1 = op1.free_resolvent(op1.velocity, r1.frequency)
        terms.append(FrequencyTerm(tuple([A1, s1] + b2 + [r2.dielectric ** -1]), int2))
        terms.append(FrequencyTerm(tuple([-1, A1, op1.coupling] + b1 + b2
                                         + [r1.dielectric ** -1, r2.dielectric ** -1]), int1 + int2))
    return ProjectedSolution(eq.unknown, terms)


# ----------------------------------------------------------------------------------------
# the frequency integral


def _linear_in_omega(x: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    x = sp.expand(x)
    c = sp.diff(x, OMEGA)
    if c.has(OMEGA) or not c.is_number or c == 0:
        raise CollectiveStructureError(f"{x} is not linear in omega with a numerical coefficient")
    return c, sp.expand(x - c * OMEGA)


def _classify(factor: sp.Expr):
    """(kind, half, decay): kind 'pole' (a Resonance: half = where its pole lies), 'analytic'
    (half = the half-plane where it is analytic), 'delta' or None (omega-free);
    decay = power of 1/omega at infinity."""
    if not factor.has(OMEGA):
        return None, None, 0
    base, e = factor.as_base_exp()
    if isinstance(base, Resonance):
        if not (e.is_Integer and e > 0):
            raise CollectiveStructureError(f"unexpected power of a resonance: {factor}")
        c, _ = _linear_in_omega(base.args[0])
        # 1/(c omega + r - i0): pole at omega = (-r + i0)/c
        return "pole", ("upper" if c > 0 else "lower"), int(base.args[1]) * int(e)
    if isinstance(base, Dielectric):
        if not e.is_Integer:
            raise CollectiveStructureError(f"unexpected power of a dielectric function: {factor}")
        s, _ = _linear_in_omega(base.frequency)
        # eps(w + i0) is analytic for Im w > 0; zero-free there (linear stability) for negative powers
        return "analytic", ("upper" if s > 0 else "lower"), 0
    if isinstance(factor, sp.DiracDelta):
        return "delta", None, 0
    if isinstance(factor, sp.Add):
        # a susceptibility c (eps - 1) = c <A^-1 a>: analytic like eps, decays like 1/omega
        eps = [t for t in sp.Add.make_args(factor) if t.has(OMEGA)]
        rest = sp.Add(*[t for t in sp.Add.make_args(factor) if not t.has(OMEGA)])
        if len(eps) == 1:
            c, d = eps[0].as_independent(OMEGA, as_Add=False)
            if isinstance(d, Dielectric) and sp.expand(rest + c) == 0:
                _, half, _ = _classify(d)
                return "analytic", half, 1
    raise CollectiveStructureError(f"cannot place {factor} in the complex omega plane")


def _close_contour(term: FrequencyTerm):
    """int domega/2pi of a product whose factors are analytic in one half-plane except simple
    poles: close there (the integrand decays at least like 1/omega^2) and sum the residues.
    Returns the omega-free expression, or None when no half-plane qualifies (mixed term)."""
    info = [(f,) + _classify(f) for f in term.factors]
    if any(kind == "delta" for _, kind, _, _ in info):
        return None
    decay = sum(dec for _, _, _, dec in info)
    candidates = []
    for half in ("lower", "upper"):
        other = "upper" if half == "lower" else "lower"
        # blockers: analytic factors that are analytic only in the other half-plane
        if any(kind == "analytic" and h == other for _, kind, h, _ in info):
            continue
        candidates.append((sum(kind == "pole" and h == half for _, kind, h, _ in info), half))
    if not candidates:
        return None
    if decay < 2:
        raise CollectiveStructureError(f"the omega integrand of {term.body} decays too slowly to close the contour")
    _, half = min(candidates)  # fewest residues
    poles = [f for f, kind, h, _ in info if kind == "pole" and h == half]
    result = sp.Integer(0)
    locations = []
    for pole in poles:
        base, e = pole.as_base_exp()
        if e != 1 or base.args[1] != 1:
            raise CollectiveStructureError(f"a multiple pole {pole} in the omega integral")
        c, r = _linear_in_omega(base.args[0])
        w0 = sp.expand(-r / c)
        if any(sp.expand(w0 - w) == 0 for w in locations):
            raise CollectiveStructureError(f"two resonances share the pole omega = {w0}")
        locations.append(w0)
        rest_at = []
        for f in term.factors:
            if f is pole:
                continue
            if f in poles:
                # another pole on the same side, at w0' - i0 as w0 is: the i0's cancel, and the two
                # residues combine into a regular function of w0 - w0' -- a principal value each
                rest_at.append(PrincipalValue(sp.expand(f.args[0].subs(OMEGA, w0)), f.args[1]))
            else:
                rest_at.append(f.subs(OMEGA, w0))
        # residue of rest/(c (omega - w0)) is rest(w0)/c; clockwise (lower) gives -2 pi i
        sign = -1 if half == "lower" else 1
        result += sign * sp.I * sp.Mul(*rest_at) / c
    return result


def _integrate_delta(term: FrequencyTerm) -> sp.Expr:
    deltas = [f for f in term.factors if isinstance(f, sp.DiracDelta) and f.has(OMEGA)]
    if len(deltas) != 1 or len(deltas[0].args) != 1:
        raise CollectiveStructureError(f"cannot integrate {term.body} over omega")
    delta = deltas[0]
    c, r = _linear_in_omega(delta.args[0])
    w0 = sp.expand(-r / c)
    rest = [f for f in term.factors if f is not delta]
    return sp.Mul(*[f.subs(OMEGA, w0) for f in rest]) / (2 * sp.pi * sp.Abs(c))


def _plemelj_lower(term: FrequencyTerm) -> list[FrequencyTerm]:
    """Rewrite every resonance with its pole in the upper half-plane,
    1/(x - i0) = -1/(-x - i0) + 2 pi i delta(x), so that mixed terms can be recombined."""
    out = [[]]
    for f in term.factors:
        kind, half, _ = _classify(f)
        if kind == "pole" and half == "upper":
            base, e = f.as_base_exp()
            if e != 1 or base.args[1] != 1:
                raise CollectiveStructureError(f"cannot rewrite {f}")
            x = base.args[0]
            options = [-Resonance(sp.expand(-x), 1), 2 * sp.pi * sp.I * sp.DiracDelta(x)]
            out = [acc + [o] for acc in out for o in options]
        else:
            out = [acc + [f] for acc in out]
    return [FrequencyTerm(tuple(fs), term.integrals) for fs in out]


def _velocity_label(sym) -> int | None:
    m = re.match(r"^v(\d+)(_\d+)?$", sym.name)
    return int(m.group(1)) if m else None


def _canonical_dummies(body: sp.Expr, integrals: tuple, dimension: int) -> tuple[sp.Expr, tuple]:
    """Rename integrated velocities to the first labels above the open ones."""
    integrated = sorted({_velocity_label(v) for v in integrals})
    open_ = {_velocity_label(s) for s in body.free_symbols if _velocity_label(s) is not None} - set(integrated)
    nxt = max(open_, default=0) + 1
    mapping, new_integrals = {}, []
    for a in integrated:
        for old, new in zip(velocity(a, dimension), velocity(nxt, dimension)):
            mapping[old] = new
            new_integrals.append(new)
        nxt += 1
    return body.xreplace(mapping), tuple(new_integrals)


@dataclass
class FrequencyIntegral:
    """int dv2 h(k; v1, v2) after the omega integral, and a log of how each term was done."""

    unknown: sp.Expr
    terms: list  # FourierTerm (no sums)
    log: list  # (rule, expression) pairs

    def n_terms(self) -> int:
        return len(self.terms)

    def as_sympy(self) -> list:
        rhs = sp.Add(*[t.as_sympy() for t in self.terms])
        return [sp.Eq(sp.Symbol("int_dv2_" + self.unknown.func.__name__), rhs)] + [
            sp.Eq(sp.Symbol(rule), sp.Integral(expr / (2 * sp.pi), (OMEGA, -sp.oo, sp.oo))) for rule, expr in self.log]


def frequency_integral(projected: ProjectedSolution, dimension: int) -> FrequencyIntegral:
    queue = list(projected.terms)
    done: list[tuple[sp.Expr, tuple]] = []
    pool: list[FrequencyTerm] = []
    log = []
    while queue:
        term = queue.pop(0)
        if any(isinstance(f, sp.DiracDelta) and f.has(OMEGA) for f in term.factors):
            done.append((_integrate_delta(term), term.integrals))
            log.append(("delta", term.body))
            continue
        closed = _close_contour(term)
        if closed is not None:
            done.append((closed, term.integrals))
            log.append(("residues", term.body))
            continue
        adds = [f for f in term.factors if isinstance(f, sp.Add) and f.has(OMEGA)]
        if adds:  # split a susceptibility c (eps - 1) into its two parts
            f = adds[0]
            rest = [g for g in term.factors if g is not f]
            for part in sp.Add.make_args(f):
                queue.append(FrequencyTerm(tuple(rest + [part]), term.integrals))
            log.append(("split", term.body))
            continue
        pool.append(term)
    if pool:
        # mixed terms: Plemelj-rewrite their upper-half-plane poles, recombine, then integrate
        groups: dict[tuple, sp.Expr] = {}
        for term in pool:
            log.append(("plemelj", term.body))
            for rewritten in _plemelj_lower(term):
                body, integrals = _canonical_dummies(rewritten.body, rewritten.integrals, dimension)
                groups[integrals] = groups.get(integrals, 0) + body
        for integrals, body in groups.items():
            body = sp.expand(body)
            for piece in sp.Add.make_args(body):
                if piece == 0:
                    continue
                t = FrequencyTerm(sp.Mul.make_args(piece), integrals)
                if any(isinstance(f, sp.DiracDelta) and f.has(OMEGA) for f in t.factors):
                    done.append((_integrate_delta(t), integrals))
                    log.append(("delta", piece))
                    continue
                closed = _close_contour(t)
                if closed is None:
                    raise CollectiveStructureError(f"the omega integral of {piece} mixes both half-planes "
                                                   "and does not recombine")
                done.append((closed, integrals))
                log.append(("residues", piece))
    groups: dict[tuple, sp.Expr] = {}
    for expr, integrals in done:
        body, integrals = _canonical_dummies(sp.expand(expr), integrals, dimension)
        groups[integrals] = groups.get(integrals, 0) + body
    terms = [FourierTerm(sp.expand(body), (), integrals) for integrals, body in groups.items()
             if sp.expand(body) != 0]
    return FrequencyIntegral(projected.unknown, terms, log)


# ----------------------------------------------------------------------------------------
# flux, real part


def substitute_flux(flux: list[list[FourierTerm]], solution: FrequencyIntegral, external: tuple,
                    dimension: int) -> list[list[FourierTerm]]:
    """Each flux term is c(q) int dv2 ghat2_1(p; v1, v2): replace the integral by the projected
    solution with the external wavevector k -> p."""
    d = dimension
    ks = [c for k in external for c in components(k, d)]
    out = []
    for comp in flux:
        terms = []
        for term in comp:
            calls = ghat_calls(term.body)
            if len(calls) != 1:
                raise CollectiveStructureError(f"flux term {term.body} is not linear in one correlation")
            call = next(iter(calls))
            p, va, vb = _ghat_parts(call, d)
            coeff = sp.simplify(term.body / call)
            if call.func != solution.unknown.func or va != velocity(1, d) or tuple(term.integrals) != vb \
                    or coeff.has(*vb) or ghat_calls(coeff):
                raise CollectiveStructureError(f"flux term {term.body} is not c int dv2 ghat2_1(p; v1, v2)")
            mapping = dict(zip(ks, p))
            for sol in solution.terms:
                body = sp.expand(coeff * sol.body.xreplace(mapping))
                if body != 0:
                    terms.append(FourierTerm(body, term.sums, sol.integrals))
        out.append(terms)
    return out


def _dielectric_powers(piece: sp.Expr) -> dict:
    powers: dict = {}
    for f in sp.Mul.make_args(piece):
        base, e = f.as_base_exp()
        if isinstance(base, Dielectric):
            powers[base] = powers.get(base, 0) + e
    return powers


def _used_labels(expr: sp.Expr, integrals) -> set[int]:
    syms = set(expr.free_symbols) | set(integrals)
    return {_velocity_label(s) for s in syms if _velocity_label(s) is not None}


def pair_conjugates(term: FourierTerm, dimension: int) -> list[FourierTerm]:
    """Give every dielectric in a denominator its conjugate partner, eps^-1 = eps*/(eps eps*), and
    expand the dielectrics left in numerators by their definition (fresh integration velocity):
    afterwards every dielectric appears as |eps|^(2m), m < 0, which is real."""
    out = []
    for piece in sp.Add.make_args(sp.expand(term.body)):
        powers = _dielectric_powers(piece)
        rest = piece
        for base, e in powers.items():
            rest = rest / base ** e
        numer, denom = [], sp.Integer(1)
        seen = set()
        for base in powers:
            if base in seen:
                continue
            conj = base.conjugate()
            seen |= {base, conj}
            e1, e2 = powers.get(base, 0), powers.get(conj, 0)
            m = min(e1, e2, 0)
            denom *= (base * conj) ** m if m != 0 else 1
            numer += [base] * int(e1 - m) + [conj] * int(e2 - m)
        integrals = tuple(term.integrals)
        pieces = [(sp.expand(rest * denom), integrals)]
        for eps in numer:
            new = []
            for body, ints in pieces:
                label = max(_used_labels(body, ints) | {1}) + 1
                u = velocity(label, dimension)
                new.append((body, ints))  # the "1" of the definition
                new.append((sp.expand(body * eps.integrand(u)), ints + tuple(u)))
            pieces = new
        for body, ints in pieces:
            if body != 0:
                out.append(FourierTerm(body, term.sums, ints))
    return out


def _paired(piece: sp.Expr) -> bool:
    powers = _dielectric_powers(piece)
    return all(e < 0 and powers.get(b.conjugate()) == e for b, e in powers.items())


@dataclass
class CollectiveRealPart:
    terms: list
    imaginary: list  # imaginary parts after the q -> -q average (all 0 when consistent)
    unpaired: list  # pieces with a dielectric not in a conjugate pair (none when consistent)

    @property
    def holds(self) -> bool:
        return all(r == 0 for r in self.imaginary) and not self.unpaired


def collective_real_part(terms: list[FourierTerm], dimension: int) -> CollectiveRealPart:
    """Average over q -> -q (which conjugates every dielectric), pair conjugates, split the
    resonances (Sokhotski-Plemelj) and keep the real part; the imaginary part must vanish."""
    averaged = symmetrise(terms, dimension)
    paired = [p for t in averaged for p in pair_conjugates(t, dimension)]
    split = [FourierTerm(canonical_deltas(sp.expand(split_resonance(combine_resonances(t.body)))), t.sums, t.integrals)
             for t in paired]
    merged = merge(split, dimension)
    out, imag, unpaired = [], [], []
    for t in merged:
        body = sp.expand(t.body)
        re_part = body.xreplace({sp.I: 0})
        im_part = sp.expand((body - re_part) / sp.I)
        imag.append(sp.simplify(im_part))
        unpaired += [p for p in sp.Add.make_args(re_part) if _dielectric_powers(p) and not _paired(p)]
        if re_part != 0:
            out.append(FourierTerm(re_part, t.sums, t.integrals))
    return CollectiveRealPart(out, imag, unpaired)


# ----------------------------------------------------------------------------------------
# the chain


def balescu_lenard(d: Derivation, system: System, assumptions: list[str], progress=None) -> Operator:
    """Continue a derivation after the homogeneity step, keeping the collective terms."""
    dimension = system.dimension
    subjects = sorted(s.name() for s in system.subjects())
    if subjects != ["F", "g2^(1)"]:
        raise CollectiveStructureError(f"the collective pass needs the order-mu system (F, g2^(1)), got {subjects}")

    def view_terms(J):
        return [t.as_sympy(dimension) for c in J for t in c]

    fourier = d.run("fourier", "Fourier expansion in the angles (collective terms kept: no hot limit)",
                    lambda: fourier_system(system), lambda f: sum(e.n_terms() for e in f.values()),
                    lambda f: [e.as_sympy() for e in f.values()], progress)
    g_eq = next(e for s, e in fourier.items() if s.kind == "g")
    f_eq = next(e for s, e in fourier.items() if s.kind == "F")
    oriented = d.run("exchange_symmetry", "ghat2(p; va, vb) = ghat2(-p; vb, va): correlations carry the external k",
                     lambda: orient(g_eq), lambda o: len(o.equation.source), lambda o: o.as_sympy(), progress)
    structure = d.run("collective_structure",
                      "recognised d/dt h + (L1 + L2) h = S, L_a = i k_a.v_a + a_a(v_a) int dv_a (rank one)",
                      lambda: recognise(oriented.equation, f_eq.flux), lambda s: s.n_terms(),
                      lambda s: [s.as_sympy()] + [op.as_sympy() for op in s.operators], progress)
    freq = _frequencies()
    identities = d.run("dielectric", "Sherman-Morrison denominators 1 + <A_a^-1 a_a> = eps_{k_a}(omega_a)",
                       lambda: [identify_dielectric(op, freq[op.label]) for op in structure.operators],
                       lambda xs: len(xs), lambda xs: [e for x in xs for e in x.as_sympy()], progress)
    resolvents = d.run("sherman_morrison", "one-particle resolvents (L_a - i omega_a)^-1, identity verified",
                       lambda: [sherman_morrison(op, ident) for op, ident in zip(structure.operators, identities)],
                       lambda xs: len(xs), lambda xs: [e for x in xs for e in x.as_sympy()], progress)
    formal = d.run("bogoliubov", COLLECTIVE_ASSUMPTIONS["bogoliubov"] + "; h = int domega/2pi R1(omega) R2(-omega) S",
                   lambda: bogoliubov(structure, resolvents), lambda f: 1, lambda f: f.as_sympy(), progress)
    projected = d.run("density_projection", "int dv2 h = R1 <A2^-1 S>_2 / eps2, brackets <A^-1 a> = eps - 1",
                      lambda: density_projection(formal), lambda p: p.n_terms(), lambda p: p.as_sympy(), progress)
    solution = d.run("frequency_integral", "omega integral: residues, Plemelj recombination ("
                     + COLLECTIVE_ASSUMPTIONS["linear_stability"] + ")",
                     lambda: frequency_integral(projected, dimension), lambda s: s.n_terms(),
                     lambda s: s.as_sympy(), progress)
    flux = d.run("flux", "flux J(v1), dF/dt = -div J, dressed correlation substituted",
                 lambda: substitute_flux(structure.flux, solution, structure.external, dimension),
                 lambda J: sum(len(c) for c in J), view_terms, progress)
    real = d.run("real_part", "q -> -q average (eps_{-q}(-w) = conj eps_q(w)), conjugate pairs, real part",
                 lambda: [collective_real_part(c, dimension) for c in flux], lambda rs: sum(len(r.terms) for r in rs),
                 lambda rs: [t.as_sympy(dimension) for r in rs for t in r.terms], progress)
    if not all(r.holds for r in real):
        raise AssertionError("the dressed flux is not real after the q -> -q average: "
                             f"{[r.imaginary for r in real]}, unpaired {[r.unpaired for r in real]}")
    final = d.run("use_resonances", "resonance condition substituted into explicit cofactors; like terms merged",
                  lambda: [merge(use_resonances(r.terms), dimension) for r in real], lambda J: sum(len(c) for c in J),
                  view_terms, progress)
    names = list(assumptions) + [a for a in COLLECTIVE_ASSUMPTIONS if a not in assumptions]
    return Operator(1, dimension, True, names, final, d)
