"""Symmetric (Landau-like) form of the order-mu^2 flux, derived from the canonical form.

The canonical flux (:func:`derive.canonical.line_form`) is

    J(v1) = sum_{k1, k2} int dv2 dv4 delta(k.v) [A + B P(1/(v2 - v1))],    k = (k1+k2, -k1, -k2),

with DF derivatives up to fourth order. This module shows that it *is*

    J(v1) = C sum_{k1, k2} int dv2 dv4 delta(k.v) (k1 + k2) |Lambda_{k1,k2}(v)|^2 (k . d/dv) F(v1) F(v2) F(v4),

first derivatives only, with a constant C < 0 and a coupling Lambda linear in the three pair
couplings X = U(k1) U(k2), Y = U(k1) U(k1+k2), Z = U(k2) U(k1+k2) -- and finds C and Lambda.
Nothing is assumed about them; the steps are:

1. ``symmetrise``: average the body over the two relabellings of the summed wavenumbers that
   keep v1 and the resonance line (swap: k1 <-> k2 with v2 <-> v4; negation: k -> -k). The sum
   over (k1, k2) is unchanged, and the integrand becomes unique (step 3).
2. ``on_line``: on delta(k.v) every velocity difference is a multiple of y = v2 - v1
   (v4 = v1 + c y, c = -k1/k2); the cofactor becomes a Laurent polynomial in y for each product
   F^(a)(v1) F^(b)(v2) F^(d)(v4).
3. ``normal_form``: integration by parts along the line, exact for the Hadamard finite part
   (no boundary terms), moves every derivative off F(v4):
   F2^(b) F4^(d) h = -(1/c) [F2^(b+1) F4^(d-1) h + F2^(b) F4^(d-1) h'] + total derivative.
   For generic c the result sum_{a,b} F1^(a) F2^(b) F4 h_ab(y) is unique: two forms of the
   functional agree iff their normal forms agree coefficient by coefficient.
4. ``quadratic_form``: the normal form of each coupling class P Q (P, Q in X, Y, Z) is divided
   by the normal form of (k1+k2) y^-4 (k.d/dv) F1 F2 F4; the class is of the symmetric shape iff
   the ratio is one and the same function m_PQ(k1, k2), independent of y and of the DF product.
5. ``factor_rank_one``: the 3x3 matrix of the m_PQ is checked to be of rank one, M = C g^2 l l^T,
   which gives Lambda (up to its sign) and the constant C.

Then Lambda is written covariantly, through the velocity differences, and the checks of
:class:`SymmetricForm` prove conservation, the H-theorem, the steady states and the blocking
potentials symbolically from it.
"""
from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass, field

import sympy as sp

from derive.canonical import K1, K2, V1, V2, V4, Y, pair_couplings, resonance
from derive.fourier import FourierTerm
from derive.operator import Evidence
from derive.symbols import U, PrincipalValue, mu

_PI = sp.Symbol("pi_")
#: exact rational functions of k1, k2 (and the constants mu, pi) for the coefficients of the
#: line integrands: arithmetic in a fraction field is much faster than cancel() on expressions
FIELD = sp.polys.fields.field([K1, K2, mu, _PI], sp.QQ)[0]


def _to_field(expr: sp.Expr):
    return FIELD.from_expr(sp.sympify(expr).xreplace({sp.pi: _PI}))


def _from_field(elem) -> sp.Expr:
    return sp.factor(elem.as_expr().xreplace({_PI: sp.pi}))

C_LINE = -K1 / K2  #: v4 = v1 + c y on the resonance line (v2 = v1 + y)
KVEC = (K1 + K2, -K1, -K2)  #: the resonance vector k: k.v = (k1+k2) v1 - k1 v2 - k2 v4
VELS = (V1, V2, V4)
CLASSES = ("XX", "YY", "ZZ", "XY", "XZ", "YZ")
_F = sp.Function("F")

#: the relabellings of (v1, v2, v4) with the induced change of summed wavenumbers that keep
#: delta(k.v): the vector k is permuted with the velocities
RELABELLINGS = {
    "v2<->v4": ({V2: V4, V4: V2}, {K1: K2, K2: K1}),
    "v1<->v2": ({V1: V2, V2: V1}, {K1: -K1 - K2}),
    "v1<->v4": ({V1: V4, V4: V1}, {K2: -K1 - K2}),
}


def relabel(expr: sp.Expr, name: str) -> sp.Expr:
    """Apply one of :data:`RELABELLINGS` (velocities and wavenumbers at once)."""
    vmap, kmap = RELABELLINGS[name]
    return expr.xreplace({**vmap, **kmap})


def negate(expr: sp.Expr) -> sp.Expr:
    """k -> -k (U is even, delta(k.v) even)."""
    return expr.xreplace({K1: -K1, K2: -K2})


def symmetrise(cofactor: sp.Expr) -> sp.Expr:
    """Step 1: the average over {identity, swap, negation, both} of the cofactor of delta(k.v)."""
    sw = relabel(cofactor, "v2<->v4")
    return sp.expand((cofactor + sw + negate(cofactor) + negate(sw)) / 4)


# -- line integrands: {(a, b, d): {p: coefficient}} for F^(a)(v1) F^(b)(v2) F^(d)(v4) y^p ---------------
LineIntegrand = dict


def _df_key(factor) -> tuple[int, int] | None:
    """(position, derivative order) of a DF factor F^(n)(v), or None."""
    if isinstance(factor, sp.Derivative) and getattr(factor.expr, "func", None) == _F:
        return VELS.index(factor.expr.args[0]), factor.derivative_count
    if isinstance(factor, sp.core.function.AppliedUndef) and factor.func == _F:
        return VELS.index(factor.args[0]), 0
    return None


def on_line(cofactor: sp.Expr) -> LineIntegrand:
    """Step 2: a cofactor of delta(k.v) (DFs at v1, v2, v4 once each, principal values and powers
    of velocity differences) as a line integrand in y = v2 - v1."""
    out: dict = collections.defaultdict(lambda: collections.defaultdict(lambda: FIELD.zero))
    line = {V2: V1 + Y, V4: V1 + C_LINE * Y}
    for mono in sp.Add.make_args(sp.expand(cofactor)):
        key, rest = [None, None, None], sp.Integer(1)
        for f in sp.Mul.make_args(mono):
            base, e = f.as_base_exp()
            pos = _df_key(base)
            if pos is not None:
                if e != 1 or key[pos[0]] is not None:
                    raise ValueError(f"not trilinear in F(v1), F(v2), F(v4): {mono}")
                key[pos[0]] = pos[1]
            elif isinstance(base, PrincipalValue):
                rest *= base.args[0] ** (-base.args[1] * e)
            else:
                rest *= f
        if None in key:
            raise ValueError(f"not trilinear in F(v1), F(v2), F(v4): {mono}")
        rest = sp.expand(rest.subs(line))
        rest = rest.replace(lambda e: isinstance(e, sp.Pow) and e.base.is_Add and e.base.has(Y),
                            lambda e: sp.factor_terms(sp.expand(e.base)) ** e.exp)
        if rest.has(V1):
            raise ValueError(f"the cofactor depends on v1 beyond velocity differences: {rest}")
        for t in sp.Add.make_args(rest):
            p = sp.sympify(t.as_powers_dict().get(Y, 0))
            if not p.is_Integer or (t / Y**p).has(Y):
                raise ValueError(f"not a Laurent monomial in y: {t}")
            out[tuple(key)][int(p)] += _to_field(t / Y**p)
    return _clean(out)


def _clean(li) -> LineIntegrand:
    """Drop zero coefficients (field elements) and empty products."""
    res = {}
    for key, poly in li.items():
        terms = {p: c for p, c in poly.items() if c != 0}
        if terms:
            res[key] = terms
    return res


def normal_form(li: LineIntegrand) -> LineIntegrand:
    """Step 3: integrate by parts along the line until no derivative acts on F(v4)."""
    work: dict = collections.defaultdict(lambda: collections.defaultdict(lambda: FIELD.zero))
    for key, poly in li.items():
        for p, c in poly.items():
            work[key][p] += c
    inv_c = _to_field(1 / C_LINE)
    while True:
        pending = [k for k, v in work.items() if k[2] > 0 and any(c != 0 for c in v.values())]
        if not pending:
            break
        key = max(pending, key=lambda k: k[2])
        a, b, d = key
        poly = work.pop(key)
        up, same = work[(a, b + 1, d - 1)], work[(a, b, d - 1)]
        for p, c in poly.items():
            up[p] -= c * inv_c
            if p != 0:
                same[p - 1] -= p * c * inv_c
    return _clean(work)


def as_expressions(li: LineIntegrand) -> dict:
    """A line integrand with SymPy coefficients (for printing and inspection)."""
    return {key: {p: _from_field(c) for p, c in poly.items()} for key, poly in li.items()}


def target_integrand() -> LineIntegrand:
    """(k1 + k2) y^-4 (k . d/dv) F(v1) F(v2) F(v4) on the line: the shape to be matched."""
    out = {}
    for pos, kc in enumerate(KVEC):
        key = tuple(1 if i == pos else 0 for i in range(3))
        out[key] = {-4: _to_field((K1 + K2) * kc)}
    return out


def coupling_classes(cofactor: sp.Expr) -> dict[str, sp.Expr]:
    """The cofactor split by the product of pair couplings it carries (XX, XY, ...)."""
    u = (U(K1), U(K2), U(K1 + K2))
    powers = {(2, 2, 0): "XX", (2, 0, 2): "YY", (0, 2, 2): "ZZ", (2, 1, 1): "XY", (1, 2, 1): "XZ", (1, 1, 2): "YZ"}
    out = collections.defaultdict(lambda: sp.Integer(0))
    for mono in sp.Add.make_args(sp.expand(cofactor)):
        pd = mono.as_powers_dict()
        pw = tuple(int(pd.get(x, 0)) for x in u)
        if pw not in powers or any(a not in u for a in mono.atoms(U)):
            raise ValueError(f"monomial outside the span of the products of two pair couplings: {mono}")
        out[powers[pw]] += mono / sp.Mul(*[x**p for x, p in zip(u, pw)])
    return dict(out)


def ratio_to_target(nf: LineIntegrand, target_nf: LineIntegrand) -> tuple[sp.Expr | None, str]:
    """The common ratio nf / target_nf over every coefficient, or (None, why) when there is none."""
    if set(nf) != set(target_nf) or any(set(nf[k]) != set(target_nf[k]) for k in nf):
        return None, f"different terms: {sorted(nf)} vs {sorted(target_nf)}"
    ratios = {nf[k][p] / target_nf[k][p] for k in nf for p in nf[k]}
    if len(ratios) != 1:
        return None, f"{len(ratios)} different ratios (the ratio depends on y or on the DF product)"
    (r,) = ratios
    return _from_field(r), "one ratio, independent of y and of the DF product"


def _signed_square(expr: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """expr = s * g^2 with s free of k1, k2 (a constant) and g a rational function of k1, k2."""
    num, den = sp.fraction(sp.factor(expr))
    cn, fn = sp.factor_list(num, K1, K2)
    cd, fd = sp.factor_list(den, K1, K2)
    coeff, g = cn / cd, sp.Integer(1)
    for base, e in fn + [(b, -e) for b, e in fd]:
        if base.has(K1) or base.has(K2):
            if e % 2:
                raise ValueError(f"{expr} is not a constant times a square in k1, k2 (factor {base}^{e})")
            g *= base ** (e // 2)
        else:
            coeff *= base**e
    return coeff, g


def factor_rank_one(m: dict[str, sp.Expr]) -> tuple[sp.Expr, sp.Expr, sp.Matrix]:
    """Step 5: M = C (g l)(g l)^T, M the symmetric matrix of the quadratic form m_PQ in (X, Y, Z).
    Returns (C, Lambda~ = g l.(X, Y, Z), the 2x2 minors that had to vanish)."""
    names = "XYZ"
    M = sp.zeros(3, 3)
    for key, val in m.items():
        i, j = names.index(key[0]), names.index(key[1])
        M[i, j] = M[j, i] = val if i == j else val / 2
    piv = next((i for i in range(3) if sp.cancel(M[i, i]) != 0), None)
    if piv is None:
        raise ValueError("the quadratic form has no non-zero diagonal entry")
    lvec = sp.Matrix([sp.cancel(M[i, piv] / M[piv, piv]) for i in range(3)])
    minors = (M - M[piv, piv] * lvec * lvec.T).applyfunc(sp.cancel)
    if any(x != 0 for x in minors):
        raise ValueError(f"the quadratic form is not of rank one: remainder {minors}")
    const, g = _signed_square(M[piv, piv])
    pc = pair_couplings()
    lam = sp.factor(sp.cancel(g * sum(lvec[i] * pc[names[i]] for i in range(3))))
    return const, lam, minors


@dataclass
class SymmetricForm:
    """J(v1) = C sum int dv2 dv4 delta(k.v) (k1+k2) Lambda^2 (k.d/dv) F(v1) F(v2) F(v4), derived."""

    constant: sp.Expr  #: C (negative)
    coupling: sp.Expr  #: Lambda_{k1,k2}(v1, v2, v4), covariant (velocity differences)
    quadratic_form: dict  #: m_PQ(k1, k2): ratio of each coupling class to the target shape
    report: dict = field(default_factory=dict)  #: term counts per step, normal forms

    # -- the form itself ------------------------------------------------------------------
    def weight(self) -> sp.Expr:
        return self.coupling**2

    def cofactor(self) -> sp.Expr:
        """The cofactor of delta(k.v) in J(v1)."""
        return self.constant * (K1 + K2) * self.weight() * k_dot_grad(_F(V1) * _F(V2) * _F(V4))

    def as_term(self) -> FourierTerm:
        return FourierTerm(sp.DiracDelta(resonance()) * self.cofactor(), (K1, K2), (V2, V4), (K1, K2, K1 + K2))

    def coupling_at(self, couplings: dict, k1=K1, k2=K2) -> sp.Expr:
        """Lambda with numbers or symbols for U(k1), U(k2), U(k1+k2) (keys "U1", "U2", "U3")."""
        rep = {U(K1): couplings["U1"], U(K2): couplings["U2"], U(K1 + K2): couplings["U3"]}
        return sp.cancel(self.coupling.xreplace(rep).xreplace({K1: k1, K2: k2}))

    # -- checks -----------------------------------------------------------------------------
    def check_invariance(self) -> Evidence:
        """|Lambda|^2 is invariant under every relabelling of (v1, v2, v4) that keeps the
        resonance, on the resonance line."""
        w = self.weight()
        diffs = [sp.cancel(on_resonance(relabel(w, name) - w)) for name in RELABELLINGS]
        holds = all(d == 0 for d in diffs)
        return Evidence("weight_invariant", holds,
                        "Lambda^2(sigma k, sigma v) - Lambda^2(k, v) on delta(k.v), for sigma in "
                        f"{list(RELABELLINGS)}: " + ("all 0" if holds else "non-zero"), diffs)

    def check_conservation(self) -> dict[str, Evidence]:
        """Momentum and energy: the integrand of dP/dt (dE/dt), averaged over the relabellings
        v1 <-> v2 and v1 <-> v4, is proportional to k.(1,1,1) (to k.v) and vanishes."""
        out = {"mass": Evidence("mass", True, "dF/dt = -d/dv1 J(v1) is a divergence")}
        inv = self.check_invariance()
        body = (K1 + K2) * self.weight() * k_dot_grad(_F(V1) * _F(V2) * _F(V4))
        for name, psi in (("momentum", sp.Integer(1)), ("energy", V1)):
            # int dv1 J(v1) psi'(v1)... for psi = v (momentum): int J dv1; energy: int v1 J dv1
            total = sum(relabel(psi * body, n) if n else psi * body for n in (None, "v1<->v2", "v1<->v4"))
            residual = sp.cancel(on_resonance(total))
            out[name] = Evidence(name, residual == 0 and inv.holds,
                                 f"sum over the three relabellings of the {name} integrand on delta(k.v): "
                                 f"{residual} (weight invariant: {'yes' if inv.holds else 'NO'})", [residual])
        return out

    def check_h_theorem(self) -> Evidence:
        """dS/dt = -int J(v1) F'(v1)/F(v1) dv1, averaged over the relabellings, equals
        -(C/3) sum int delta(k.v) Lambda^2 F1 F2 F4 (k.g)^2 with g = F'/F: a sum of squares
        times -C > 0."""
        g = sp.symbols("g1 g2 g4", real=True)
        Fs = sp.symbols("F1 F2 F4", positive=True)
        sub = {}
        for v, gv, Fv in zip(VELS, g, Fs):
            sub[sp.Derivative(_F(v), v)] = gv * Fv
            sub[_F(v)] = Fv
        integrand = -self.cofactor() * sp.Derivative(_F(V1), V1) / _F(V1)
        total = sum(relabel(integrand, n) if n else integrand for n in (None, "v1<->v2", "v1<->v4")) / 3
        total = on_resonance(total.xreplace(sub))
        kg = sum(kc * gv for kc, gv in zip(KVEC, g))
        claimed = on_resonance(-self.constant / 3 * self.weight()) * Fs[0] * Fs[1] * Fs[2] * kg**2
        residual = sp.cancel(total - claimed)
        holds = residual == 0 and bool((-self.constant).is_positive) and self.check_invariance().holds
        return Evidence("h_theorem", holds,
                        f"symmetrised entropy production = -(C/3) Lambda^2 F1 F2 F4 (k.g)^2 with -C = "
                        f"{-self.constant} > 0: residual {residual}", [sp.factor(claimed)])

    def check_maxwellian(self) -> Evidence:
        """(k.d/dv) F1 F2 F4 = 0 on delta(k.v) for every shifted Maxwellian; conversely the
        entropy production vanishes only if k.g = 0 on every resonance, whose leading term on the
        line is -g''(v1) k1 (k1+k2) y^2 / (2 k2): g'' = 0, F a (shifted) Maxwellian."""
        u, T = sp.Symbol("u", real=True), sp.Symbol("T", positive=True)
        maxw = {_F(v): sp.exp(-(v - u) ** 2 / (2 * T)) for v in VELS}
        expr = k_dot_grad(_F(V1) * _F(V2) * _F(V4)).subs(maxw).doit()
        steady = sp.simplify(on_resonance(expr))
        gfun = sp.Function("g")
        kg = sum(kc * gfun(v) for kc, v in zip(KVEC, VELS))
        series = sp.series(on_resonance(kg).doit(), Y, 0, 3).removeO().doit()
        g2 = sp.Symbol("g''(v1)")
        series = sp.expand(series.replace(lambda e: isinstance(e, sp.Subs), lambda e: e.doit()))
        series = series.xreplace({sp.Derivative(gfun(V1), (V1, 2)): g2})
        lead = sp.factor(series.coeff(Y, 2))
        lower = [sp.simplify(series.coeff(Y, n)) for n in (0, 1)]
        ratio = sp.factor(lead / g2)
        nonzero = not ratio.has(g2) and all(b in (K1, K2, K1 + K2) or b.is_number
                                            for b in (f.as_base_exp()[0] for f in sp.Mul.make_args(ratio)))
        holds = steady == 0 and all(x == 0 for x in lower) and nonzero
        return Evidence("steady_states", holds,
                        f"(k.d/dv) F1F2F4 at a shifted Maxwellian on delta(k.v): {steady}; k.g on the line "
                        f"= {lead} y^2 + O(y^3) (orders y^0, y^1: {lower})", [steady, lead])

    def check_blocking(self, max_harmonic: int = 6, values=(0, 1, 2)) -> Evidence:
        """Which potentials make Lambda vanish for every (k1, k2) (then J = 0 for every F, and
        conversely the entropy production is positive for some F unless Lambda = 0):
        (i) equal couplings give Lambda = 0; (ii) a Dirac comb (U_k = u on the multiples of a,
        0 elsewhere) gives Lambda = 0 in each of its coupling patterns; (iii) conversely, with a
        the lowest harmonic: Lambda_{a, m a} = 0 and U_{m a} = U_a force U_{(m+1) a} = U_a, and
        a lowest non-multiple j with U_j != 0 gives Lambda_{j, -a} != 0; (iv) exhaustively over
        every potential with harmonics 1..max_harmonic taking ``values``: Lambda vanishes on
        all pairs iff the potential is a Dirac comb."""
        u, w = sp.Symbol("u", nonzero=True), sp.Symbol("w")
        a, m, j = sp.symbols("a m j", positive=True, integer=True)
        lam_equal = self.coupling_at({"U1": u, "U2": u, "U3": u})
        patterns = {}
        for pat in itertools.product((0, 1), repeat=3):
            val = self.coupling_at(dict(zip(("U1", "U2", "U3"), (u * p for p in pat))))
            patterns[pat] = sp.simplify(val) == 0
        comb_patterns_vanish = all(patterns[p] for p in patterns if sum(p) in (0, 1, 3))
        two_nonzero_survive = not any(patterns[p] for p in patterns if sum(p) == 2)
        step = sp.solve(sp.numer(sp.together(self.coupling_at({"U1": u, "U2": u, "U3": w}, a, m * a))), w)
        lowest = sp.factor(sp.numer(sp.together(self.coupling_at({"U1": u, "U2": w, "U3": 0}, j, -a))))
        exhaustive = self._exhaustive_blocking(max_harmonic, values)
        lowest_nonzero = set(sp.Mul.make_args(sp.factor(lowest))) <= {sp.Integer(-1), u, w}
        holds = (lam_equal == 0 and comb_patterns_vanish and two_nonzero_survive and step == [u]
                 and lowest_nonzero and exhaustive["agree"])
        statement = (f"Lambda at U(k1)=U(k2)=U(k1+k2): {lam_equal}; Dirac-comb coupling patterns (0, 1 or 3 "
                     f"non-zero): Lambda = 0: {'yes' if comb_patterns_vanish else 'NO'}; two non-zero: Lambda != 0: "
                     f"{'yes' if two_nonzero_survive else 'NO'}; Lambda_(a, m a) = 0 with U_a = U_(m a) = u gives "
                     f"U_((m+1) a) in {step}; numerator of Lambda_(j, -a) with U_j = u, U_a = w, U_(j-a) = 0: {lowest} "
                     f"(non-zero: {'yes' if lowest_nonzero else 'NO'}); exhaustive over {exhaustive['n']} potentials (harmonics 1..{max_harmonic}, "
                     f"values {tuple(values)}): {exhaustive['blocking']} block, all Dirac combs: "
                     f"{'yes' if exhaustive['agree'] else 'NO'}")
        return Evidence("dirac_comb_blocking", holds, statement, [lam_equal, lowest])

    def pair_laurent(self, k1, k2) -> dict[int, sp.Expr]:
        """The integrand of one pair (k1, k2) on its own line, int dv4 delta(k.v) -> 1/|k2|, as a
        Laurent polynomial in t = v2 - v1 with the DFs Taylor-expanded at v1 (symbols f0, f1, ...
        for F, F', ...): {power: coefficient}, powers up to t^0 (enough for the singular part)."""
        t = sp.Symbol("t", real=True)
        f = sp.symbols("f0:7", real=True)
        k1, k2 = sp.sympify(k1), sp.sympify(k2)
        c = -k1 / k2
        line = {V2: V1 + t, V4: V1 + c * t}
        # Lambda = Lambda~ / t^2 on the line (velocity-free numerator)
        lam_t = sp.cancel(self.coupling.xreplace({K1: k1, K2: k2}).subs(line) * t**2)
        if lam_t.has(t) or lam_t.has(V1):
            raise AssertionError(f"Lambda is not a velocity-free multiple of 1/t^2 on the line: {lam_t}")
        rep = {}
        for v, x in ((V1, 0), (V2, t), (V4, c * t)):
            for n in (0, 1):
                series = sum(f[n + m] * x**m / sp.factorial(m) for m in range(0, 6 - n))
                rep[sp.Derivative(_F(v), v) if n else _F(v)] = series
        kdf = k_dot_grad(_F(V1) * _F(V2) * _F(V4)).xreplace({K1: k1, K2: k2}).xreplace(rep)
        poly = sp.Poly(sp.expand(kdf), t)
        pref = self.constant * (k1 + k2) * lam_t**2 / abs(k2)
        return {n - 4: sp.factor(pref * cf) for (n,), cf in poly.terms() if n <= 4}

    def averaging_weights(self) -> tuple[dict, Evidence]:
        """The weights that make the fourth-order principal value an ordinary one.

        A fundamental resonance is the orbit of a pair (p, q), p, q > 0, under the relabellings:
        three couples {(p, q), (q, p)}, {(-p-q, q), (q, -p-q)}, {(p, -p-q), (-p-q, p)}, the two pairs
        of a couple being the two writings of one integral related by v2 <-> v4. Writing couple j
        as 2 [b_j I_P + (1 - b_j) I_P~] (weights summing to one) leaves the flux unchanged; the
        family's integrand, a function of t = v2 - v1, has no t^-4, t^-3 term, and its t^-2 term
        vanishes -- the numerator vanishes like t^3 and the principal value is ordinary -- iff the
        b_j satisfy one linear equation, solved here; each single couple can carry the average
        alone (the two others at b = 1/2). Returns ({couple: weight}, evidence)."""
        p, q = sp.symbols("p q", positive=True)
        couples = [((p, q), (q, p)), ((-p - q, q), (q, -p - q)), ((p, -p - q), (-p - q, p))]
        lau = {pair: self.pair_laurent(*pair) for cpl in couples for pair in cpl}
        no_high = all(lau[pr].get(n, 0) == 0 for pr in lau for n in (-4, -3) )
        b = sp.symbols("b1:4")
        total = sp.factor(sum(2 * (bj * lau[P].get(-2, 0) + (1 - bj) * lau[Pt].get(-2, 0))
                              for bj, (P, Pt) in zip(b, couples)))
        plain = sp.factor(total.subs({bj: sp.Rational(1, 2) for bj in b}))
        weights = {}
        for j, (P, Pt) in enumerate(couples):
            others = {b[i]: sp.Rational(1, 2) for i in range(3) if i != j}
            sol = sp.solve(total.subs(others), b[j])
            if len(sol) == 1:
                weights[(P, Pt)] = (sp.factor(sol[0]), sp.factor(1 - sol[0]))
        verified = {}
        for (P, Pt), (w, wt) in weights.items():
            sub = {bj: sp.Rational(1, 2) for bj in b}
            sub[b[[c[0] for c in couples].index(P)]] = w
            verified[(P, Pt)] = sp.simplify(total.subs(sub)) == 0
        holds = no_high and plain != 0 and bool(weights) and all(verified.values())
        pretty = "; ".join(f"{P}/{Pt}: ({w}, {wt})" for (P, Pt), (w, wt) in weights.items())
        return weights, Evidence(
            "averaging_weights", holds,
            f"t^-4, t^-3 terms absent: {'yes' if no_high else 'NO'}; t^-2 coefficient of the family without "
            f"averaging: {plain}; with couple weights b_j it is {total}; single-couple weights that cancel it "
            f"(verified by the series): {pretty}", [total])

    def single_harmonic(self, amplitude=None) -> tuple[sp.Expr, list]:
        """The symmetric form for one harmonic (HMF): the pairs with non-zero Lambda and the
        cofactor of each pair's own delta(k.v), summed."""
        amp = sp.Symbol("U1", positive=True) if amplitude is None else sp.sympify(amplitude)
        total, pairs = sp.Integer(0), []
        for k1 in range(-2, 3):
            for k2 in range(-2, 3):
                if 0 in (k1, k2, k1 + k2):
                    continue
                u = {k: (amp if abs(k) == 1 else 0) for k in (k1, k2, k1 + k2)}
                lam = self.coupling_at({"U1": u[k1], "U2": u[k2], "U3": u[k1 + k2]}, k1, k2)
                if lam == 0:
                    continue
                pairs.append(((k1, k2), sp.factor(lam)))
                total += sp.DiracDelta(resonance(k1, k2)) * self.cofactor().xreplace(
                    {K1: k1, K2: k2}).xreplace({U(sp.Integer(k)): u[k] for k in u}).subs(
                    {U(sp.Integer(abs(k))): u[k] for k in u})
        return total, pairs

    def _exhaustive_blocking(self, nmax: int, values) -> dict:
        f = sp.lambdify((K1, K2, sp.Symbol("U1"), sp.Symbol("U2"), sp.Symbol("U3")),
                        sp.numer(sp.together(self.coupling_at({"U1": sp.Symbol("U1"), "U2": sp.Symbol("U2"),
                                                               "U3": sp.Symbol("U3")}))), "math")
        blocking, agree, n = 0, True, 0
        ks = [k for k in range(-nmax, nmax + 1) if k]
        for vals in itertools.product(values, repeat=nmax):
            if not any(vals):
                continue
            n += 1
            Uk = {k: vals[abs(k) - 1] for k in ks}
            vanish = all(f(k1, k2, Uk[k1], Uk[k2], Uk.get(k1 + k2, 0)) == 0
                         for k1 in ks for k2 in ks if k1 + k2 and abs(k1 + k2) <= nmax)
            lowest = next(i + 1 for i, x in enumerate(vals) if x)
            comb = all((vals[i] == vals[lowest - 1]) if (i + 1) % lowest == 0 else vals[i] == 0 for i in range(nmax))
            blocking += vanish
            agree &= vanish == comb
        return {"n": n, "blocking": blocking, "agree": agree}


def k_dot_grad(expr: sp.Expr) -> sp.Expr:
    """(k . d/dv) expr = (k1+k2) d/dv1 - k1 d/dv2 - k2 d/dv4."""
    return sum(kc * sp.diff(expr, v) for kc, v in zip(KVEC, VELS))


def on_resonance(expr: sp.Expr) -> sp.Expr:
    """expr on the line delta(k.v) = 0: v2 = v1 + y, v4 = v1 + c y (DFs kept as functions)."""
    return expr.subs({V2: V1 + Y, V4: V1 + C_LINE * Y}, simultaneous=True)


def _covariant(lam_line: sp.Expr) -> sp.Expr:
    """Lambda = Lambda~ / y^2 on the line, Lambda~ free of velocities; since
    (v1 - v2)(v1 - v4) = c y^2 there, Lambda = c Lambda~ / ((v1 - v2)(v1 - v4)) writes it through
    velocity differences only. Checked to agree on the line."""
    lam = sp.factor(sp.cancel(C_LINE * lam_line)) / ((V1 - V2) * (V1 - V4))
    check = sp.cancel(on_resonance(lam) - lam_line / Y**2)
    if check != 0:
        raise AssertionError(f"covariant Lambda disagrees on the line: {check}")
    return lam


def symmetric_form(term: FourierTerm) -> SymmetricForm:
    """Steps 1-5 on the canonical term (:func:`derive.canonical.line_form`)."""
    deltas = term.body.atoms(sp.DiracDelta)
    if len(deltas) != 1:
        raise ValueError(f"expected a single resonance, got {deltas}")
    (delta,) = deltas
    if sp.expand(delta.args[0] ** 2 - resonance() ** 2) != 0:
        raise ValueError(f"expected delta((k1+k2) v1 - k1 v2 - k2 v4), got {delta}")
    cofactor = sp.expand(term.body / delta)
    if cofactor.has(sp.DiracDelta):
        raise ValueError("the cofactor still carries a Dirac delta")
    report: dict = {"canonical_monomials": len(sp.Add.make_args(cofactor))}
    sym = symmetrise(cofactor)
    report["symmetrised_monomials"] = len(sp.Add.make_args(sym))
    classes = coupling_classes(sym)
    report["class_monomials"] = {k: len(sp.Add.make_args(v)) for k, v in classes.items()}
    target = normal_form(target_integrand())
    report["target_normal_form"] = as_expressions(target)
    m, why = {}, {}
    for name in CLASSES:
        if name not in classes:
            m[name] = sp.Integer(0)
            continue
        nf = normal_form(on_line(classes[name]))
        report.setdefault("normal_forms", {})[name] = as_expressions(nf)
        r, why[name] = ratio_to_target(nf, target)
        if r is None:
            raise ValueError(f"coupling class {name} is not of the form (k1+k2) Lambda^2 (k.d/dv) F1F2F4: {why[name]}")
        m[name] = r
    report["ratios"] = why
    const, lam_tilde, _ = factor_rank_one(m)
    report["lambda_on_line"] = lam_tilde
    return SymmetricForm(const, _covariant(lam_tilde), m, report)
