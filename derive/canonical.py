"""Canonical (well-posed) form of the order-mu^2 flux: one three-body resonance per term.

The resonance form (:func:`derive.order2.three_body_operator` before this stage) is

    J(v1) = sum_{q, p} int dv2 dv4  C(v1, v2, v4) * prod_j (x_j - i0)^(-n_j),

with the prefactor of every monomial purely imaginary and three linear forms x_j per product:
two two-body forms (v1 - v2, v2 - v4, v1 - v4 up to wavenumbers) and one three-body form
x_3 = a1 v1 + a2 v2 + a4 v4 (a1 + a2 + a4 = 0). Sokhotski-Plemelj,
(x - i0)^-n = P(1/x^n) + i pi (-1)^(n-1)/(n-1)! delta^(n-1)(x), and the imaginary prefactor
leave in the real flux only (i) the terms with one delta, on one of the three lines, times
the principal values of the other two forms, and (ii) products of three deltas, concentrated
at the point v2 = v4 = v1 where all the lines meet.

This module keeps the three-body line (``line_form``), which is what the canonical operator
is made of:

1. ``three_body_part``: the one-delta terms on the three-body line,
   i pi (-1)^(n-1)/(n-1)! delta^(n-1)(x_3) C prod_{j != 3} x_j^(-n_j);
2. the delta's derivatives moved onto the cofactor (integration by parts across the line,
   with x_3 as the transverse variable: int dv4 delta^(m)(x_3) Phi = int dv4 delta(x_3)
   (-1)^m d^m Phi / d x_3^m at fixed v2);
3. on the line every two-body form is a multiple of y = v2 - v1, so the cofactor is
   sum_m g_m(y) y^-m with smooth g_m; the product of principal values at one point is the
   Hadamard finite part of y^-m, and FP int g y^-m dy = 1/(m-1)! P int g^(m-1)(y) / y dy
   (integration by parts, no boundary terms): what remains is an ordinary principal value
   P(1/(v2 - v1)) times a smooth function, plus a smooth function. This is the
   well-posed form; it needs no averaging weights because the finite part is invariant under
   the relabellings that the averaging of the published form mixes (y -> c y);
4. wavenumbers relabelled (a unimodular change of the two summed wavenumbers) so that every
   term carries the single resonance delta((k1 + k2) v1 - k1 v2 - k2 v4), and all terms
   merged into one body.

What is dropped, and the evidence that it may be: the one-delta terms on the two-body lines
sum to exactly zero for every potential whose harmonics contain no a + b = c
(:func:`two_body_line_parts`, tested symbolically for HMF and odd harmonics); the
three-delta point terms and the finite-part prescription are checked numerically: the line
form reproduces the eps -> 0 limit of the full two-dimensional resonance form (tests and
``numerics.kinetic.flux(..., method="plane")``). For potentials with a + b = c the two-body
line v1 = v2 carries products of boundary values from opposite sides (pinches, see
:func:`derive.order2.pinch_evidence`), which the canonical form -- like the published
operator -- does not contain.
"""
from __future__ import annotations

import collections

import sympy as sp

from derive.fourier import FourierTerm
from derive.symbols import PrincipalValue, Resonance

V1, V2, V4 = (sp.Symbol(f"v{i}", real=True) for i in (1, 2, 4))
Y = sp.Symbol("y", real=True)  # v2 - v1 along the resonance line
X = sp.Symbol("x_res", real=True)  # the transverse variable (the resonance argument)
K1, K2 = sp.Symbol("k1", integer=True), sp.Symbol("k2", integer=True)

_DF_CLASSES: dict[int, type] = {}


def _df(k: int) -> type:
    """F^(k) as a function of one argument whose derivative is F^(k+1) (chain rule at any argument)."""
    if k not in _DF_CLASSES:
        _DF_CLASSES[k] = type(f"Fd{k}", (sp.Function,), {"fdiff": lambda self, argindex=1, k=k: _df(k + 1)(self.args[0])})
    return _DF_CLASSES[k]


def _is_df(node) -> bool:
    return isinstance(node, sp.Function) and type(node).__name__.startswith("Fd") and type(node) in _DF_CLASSES.values()


def to_df(expr: sp.Expr) -> sp.Expr:
    """F(w) and its derivatives -> Fd<k>(w)."""
    expr = expr.replace(lambda a: isinstance(a, sp.Derivative) and getattr(a.expr, "func", None).__name__ == "F",
                        lambda a: _df(a.derivative_count)(a.expr.args[0]))
    return expr.replace(lambda a: isinstance(a, sp.core.function.AppliedUndef) and a.func.__name__ == "F",
                        lambda a: _df(0)(a.args[0]))


def from_df(expr: sp.Expr, at: dict) -> sp.Expr:
    """Fd<k>(v1 + c y) -> the k-th derivative of F at the velocity ``at[c]`` (c = 0, 1, ...)."""
    F = sp.Function("F")

    def back(node):
        k = int(type(node).__name__[2:])
        shift = sp.expand(node.args[0] - V1)
        c = sp.simplify(shift / Y) if shift != 0 else sp.Integer(0)
        if c.has(Y) or c not in at:
            raise ValueError(f"DF argument {node.args[0]} is not v1 + c y with c in {list(at)}")
        v = at[c]
        return sp.Derivative(F(v), (v, k)) if k else F(v)

    return expr.replace(_is_df, back)


def _involves(form: sp.Expr) -> tuple[bool, bool, bool]:
    return tuple(sp.expand(form).coeff(v) != 0 for v in (V1, V2, V4))


def three_body_part(terms: list[FourierTerm]) -> list[FourierTerm]:
    """Step 1: the one-delta terms on the three-body line, as FourierTerms whose body carries
    DiracDelta(x_3, m) and the other resonances as plain powers x_j^(-n_j)."""
    out = []
    for term in terms:
        if tuple(term.integrals) != (V2, V4):
            raise ValueError(f"expected integrals (v2, v4), got {term.integrals}")
        body = 0
        for mono in sp.Add.make_args(sp.expand(term.body)):
            factors = sp.Mul.make_args(mono)
            res = [f for f in factors if isinstance(f, Resonance)]
            if any(isinstance(f, sp.Pow) and isinstance(f.base, Resonance) for f in factors):
                raise ValueError("merge resonances at one argument first (combine_resonances)")
            three = [r for r in res if all(_involves(r.args[0]))]
            if not three:
                continue
            if len(three) > 1:
                raise ValueError(f"two three-body resonances in one product: {three}")
            (r3,) = three
            x3, n = sp.expand(r3.args[0]), int(r3.args[1])
            cof = mono / sp.Mul(*res)
            if sp.expand(cof / sp.I).has(sp.I):
                raise ValueError(f"prefactor not purely imaginary: {cof}")
            others = sp.Mul(*[r.args[0] ** (-r.args[1]) for r in res if r is not r3])
            delta = sp.DiracDelta(x3, n - 1) if n > 1 else sp.DiracDelta(x3)
            body += sp.I * sp.pi * (-1) ** (n - 1) / sp.factorial(n - 1) * cof * others * delta
        body = sp.expand(body)
        if body != 0:
            out.append(FourierTerm(body, term.sums, term.integrals))
    return out


def _line_parametrisation(x3: sp.Expr):
    """v4 on the line x3 = x (x the transverse variable) and the coefficient c with v4 = v1 + c y at x = 0."""
    a4 = x3.coeff(V4)
    v4_of_x = sp.expand((X - (x3 - a4 * V4)) / a4)
    c = sp.simplify(sp.expand(v4_of_x.subs({X: 0, V2: V1 + Y}) - V1) / Y)
    return v4_of_x, c


def integrate_by_parts(term: FourierTerm) -> list[tuple[sp.Expr, sp.Expr]]:
    """Step 2: for each delta^(m)(x3) of ``term``, the cofactor of delta(x3) after moving the m
    derivatives onto it, as a function of y = v2 - v1 on the line (DFs as Fd<k>). Returns
    [(x3, integrand)]."""
    groups: dict = collections.defaultdict(lambda: 0)
    for mono in sp.Add.make_args(term.body):
        deltas = [f for f in sp.Mul.make_args(mono) if isinstance(f, sp.DiracDelta)]
        (d,) = deltas
        m = int(d.args[1]) if len(d.args) > 1 else 0
        groups[(sp.expand(d.args[0]), m)] += mono / d
    out: dict = collections.defaultdict(lambda: 0)
    for (x3, m), phi in groups.items():
        v4_of_x, c = _line_parametrisation(x3)
        phi = to_df(phi).subs(V4, v4_of_x)
        val = (-1) ** m * sp.diff(phi, X, m) if m else phi
        out[x3] += _pull_y(val.subs(X, 0).subs(V2, V1 + Y))
    return [(x3, sp.expand(v)) for x3, v in out.items()]


def _pull_y(expr: sp.Expr) -> sp.Expr:
    """(c y)^n -> c^n y^n for the powers of linear forms that vanish on the line at y = 0."""
    return expr.replace(lambda a: isinstance(a, sp.Pow) and a.base.is_Add and a.base.has(Y),
                        lambda a: sp.factor_terms(sp.expand(a.base)) ** a.exp)


def finite_part(integrand: sp.Expr) -> tuple[sp.Expr, sp.Expr, dict]:
    """Step 3: FP int integrand dy = P int (A + B / y) dy with A, B smooth.

    ``integrand`` is a sum of g(y) * y^e (e an integer, g free of explicit powers of y).
    Returns (A, B, powers) with powers the map e -> number of monomials.
    """
    groups: dict = collections.defaultdict(lambda: 0)
    for t in sp.Add.make_args(sp.expand(integrand)):
        t = _pull_y(t)
        if any(isinstance(a, sp.Pow) and a.base != Y and a.base.has(Y) for a in sp.Mul.make_args(t)):
            raise ValueError(f"cannot separate the powers of y in {t}")
        e = sp.sympify(t.as_powers_dict().get(Y, 0))
        if not e.is_Integer:
            raise ValueError(f"non-integer power of y in {t}")
        groups[int(e)] += t * Y ** (-e)
    A, B = 0, 0
    for e, g in groups.items():
        if e >= 0:
            A += g * Y ** e
        else:
            m = -e
            B += sp.diff(g, Y, m - 1) / sp.factorial(m - 1)
    return sp.expand(A), sp.expand(B), {e: len(sp.Add.make_args(g)) for e, g in sorted(groups.items())}


def relabel_wavenumbers(x3: sp.Expr, sums: tuple) -> dict:
    """Step 4: the unimodular change of summed wavenumbers that makes x3 = +-((k1+k2) v1 - k1 v2 - k2 v4)."""
    if len(sums) != 2:
        raise ValueError(f"expected two summed wavenumbers, got {sums}")
    a2, a4 = x3.coeff(V2), x3.coeff(V4)
    s1, s2 = sums
    mat = sp.Matrix([[a2.coeff(s1), a2.coeff(s2)], [a4.coeff(s1), a4.coeff(s2)]])
    if mat.det() not in (1, -1):
        raise ValueError(f"the resonance {x3} is not a unimodular image of (k1, k2) (det {mat.det()})")
    # -k1 = a2, -k2 = a4
    sol = mat.solve(sp.Matrix([-K1, -K2]))
    return {s1: sp.expand(sol[0]), s2: sp.expand(sol[1])}


def resonance(k1=K1, k2=K2) -> sp.Expr:
    """The single three-body resonance argument (k1 + k2) v1 - k1 v2 - k2 v4."""
    return (k1 + k2) * V1 - k1 * V2 - k2 * V4


def line_form(terms: list[FourierTerm]) -> tuple[FourierTerm, dict]:
    """Steps 1-4: the canonical, well-posed flux as one FourierTerm,

        J(v1) = sum_{k1, k2, k1+k2 != 0} int dv2 dv4 delta((k1+k2) v1 - k1 v2 - k2 v4)
                                           [A + B P(1/(v2 - v1))],

    (at k1 + k2 = 0 or k1 = 0 the resonance is two-body: those points belong to the two-body
    lines, see :func:`two_body_line_parts`),

    A and B smooth (DFs at v1, v2, v4, couplings U(k1), U(k2), U(k1+k2)), and a report
    (term counts per step, the powers of y met, the derivative orders of F)."""
    report: dict = {"three_body_terms": 0, "powers_of_y": collections.Counter(), "max_df_order": 0}
    parts = three_body_part(terms)
    report["three_body_terms"] = sum(len(sp.Add.make_args(t.body)) for t in parts)
    total_A, total_B = 0, 0
    for term in parts:
        for x3, integrand in integrate_by_parts(term):
            mapping = relabel_wavenumbers(x3, term.sums)
            integrand = integrand.xreplace(mapping)
            A, B, powers = finite_part(integrand)
            report["powers_of_y"].update({e: n for e, n in powers.items()})
            total_A += A
            total_B += B
    _, c = _line_parametrisation(sp.expand(resonance()))
    at = {sp.Integer(0): V1, sp.Integer(1): V2, c: V4}
    A = sp.expand(from_df(sp.expand(total_A), at).subs(Y, V2 - V1))
    B = sp.expand(from_df(sp.expand(total_B), at).subs(Y, V2 - V1))
    if A.has(sp.I) or B.has(sp.I):
        raise AssertionError("the canonical flux is not real")
    report["max_df_order"] = max([int(d.derivative_count) for d in (A + B).atoms(sp.Derivative)] + [0])
    report["powers_of_y"] = dict(sorted(report["powers_of_y"].items()))
    body = sp.DiracDelta(resonance()) * (A + B * PrincipalValue(V2 - V1, 1))
    return FourierTerm(sp.expand(body), (K1, K2), (V2, V4), (K1, K2, K1 + K2)), report


def two_body_line_parts(special: sp.Expr) -> dict[str, sp.Expr]:
    """For a specialised integrand (numeric wavenumbers, from :func:`derive.order2.specialise`,
    integrated velocities v2, v3): the one-delta contributions on each two-body line, as
    integrands in y = (free velocity) - v1 after the delta is integrated. Same-side
    resonances at one line are merged; opposite sides (pinches) raise ValueError.

    Returns {"two(v1,v2)": ..., "two(v2,v3)": ..., "two(v1,v3)": ...}; each is exactly 0 when the
    dropped two-body lines do not contribute."""
    v3 = sp.Symbol("v3", real=True)
    vel = (V1, V2, v3)
    out = {"two(v1,v2)": sp.Integer(0), "two(v2,v3)": sp.Integer(0), "two(v1,v3)": sp.Integer(0)}

    def primitive(form):
        cs = [form.coeff(v) for v in vel]
        g = sp.gcd_list([abs(q) for q in cs if q != 0])
        s = 1 if next(q for q in cs if q != 0) > 0 else -1
        return sp.expand(form * s / g), s * g

    for mono in sp.Add.make_args(sp.expand(special)):
        res = [f for f in sp.Mul.make_args(mono) if isinstance(f, Resonance)]
        cof = mono / sp.Mul(*res)
        byline: dict = collections.defaultdict(list)
        for r in res:
            prim, scale = primitive(sp.expand(r.args[0]))
            byline[prim].append((scale, int(r.args[1])))
        factors = []
        for prim, lst in byline.items():
            if len({s > 0 for s, _ in lst}) > 1:
                raise ValueError(f"pinch (opposite-side resonances) on the line {prim} = 0")
            n = sum(k for _, k in lst)
            factors.append((prim, sp.Mul(*[s ** k for s, k in lst]), n, 1 if lst[0][0] > 0 else -1))
        for j, (prim, scale, n, side) in enumerate(factors):
            a = [prim.coeff(v) for v in vel]
            if all(q != 0 for q in a):
                continue
            key = "two(" + ",".join(str(v) for v, q in zip(vel, a) if q != 0) + ")"
            body = cof * sp.I * sp.pi * side * (-1) ** (n - 1) / sp.factorial(n - 1) / scale
            body *= sp.Mul(*[1 / (sc * p ** k) for i, (p, sc, k, _) in enumerate(factors) if i != j])
            elim, free = (v3, V2) if a[2] != 0 else (V2, v3)
            sol = sp.solve(sp.Eq(prim, X), elim)[0]
            b = to_df(body).subs(elim, sol)
            m = n - 1
            val = (-1) ** m * sp.diff(b, X, m).subs(X, 0) / abs(a[vel.index(elim)])
            out[key] += sp.expand(_pull_y(val.subs(free, V1 + Y)))
    return {k: sp.expand(v) for k, v in out.items()}


def structure_evidence(op) -> "Evidence":
    """What the canonical operator is made of, checked on its expression: one term, the single
    resonance delta((k1+k2) v1 - k1 v2 - k2 v4), principal values only of 1/(v1 - v2) at first
    order, couplings only U(k1), U(k2), U(k1+k2), a real body, sums excluding k1, k2, k1+k2 = 0."""
    from derive.operator import Evidence
    from derive.symbols import U

    if op.order != 2 or op.form != "canonical":
        raise ValueError("structure_evidence applies to the canonical order-2 operator")
    (term,) = op.flux[0]
    body = term.body
    deltas = {d for d in body.atoms(sp.DiracDelta)}
    pvs = {p for p in body.atoms(PrincipalValue)}
    couplings = {u for u in body.atoms(U)}
    target = sp.expand(resonance())
    single = len(deltas) == 1 and len(next(iter(deltas)).args) == 1 and \
        sp.expand(next(iter(deltas)).args[0] ** 2 - target**2) == 0
    facts = {
        "single resonance": single,
        "principal value P(1/(v1 - v2)) only": all(p.args[1] == 1 and sp.expand(p.args[0] ** 2 - (V1 - V2) ** 2) == 0
                                                   for p in pvs),
        "couplings U(k1), U(k2), U(k1+k2) only": couplings <= {U(K1), U(K2), U(K1 + K2)},
        "real": not body.has(sp.I),
        "sums exclude k1, k2, k1 + k2 = 0": set(term.nonzero) == {K1, K2, K1 + K2},
    }
    return Evidence("canonical_structure", all(facts.values()),
                    "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in facts.items()),
                    [sp.DiracDelta(resonance()), *sorted(couplings, key=sp.default_sort_key)])


def two_body_evidence(resonance_op, harmonics: dict) -> "Evidence":
    """The one-delta contributions of the resonance form on the two-body lines (v1 = v2,
    v2 = v4, v1 = v4, including the degenerate pairs k1 + k2 = 0, k1 = 0), summed over the
    wavevectors of the finite potential ``harmonics``: exactly zero when the canonical form
    (three-body line only) is complete. Raises ValueError for potentials with pinches."""
    from derive.operator import Evidence
    from derive.order2 import specialise
    from derive.symbols import mu

    if resonance_op.order != 2 or resonance_op.form != "resonance":
        raise ValueError("two_body_evidence needs the resonance form: collision_operator(2, form='resonance')")
    special = specialise(resonance_op.flux[0], harmonics).subs(mu, 1)
    parts = two_body_line_parts(special)
    holds = all(v == 0 for v in parts.values())
    return Evidence("two_body_lines_vanish", holds,
                    f"for U = {harmonics}: the one-delta terms on the two-body lines sum to "
                    + ("exactly 0 on every line" if holds else "a non-zero remainder"), list(parts.values()))


#: the three pair couplings of a fundamental resonance: products of two of U(k1), U(k2), U(k1+k2)
def pair_couplings():
    from derive.symbols import U

    u1, u2, u3 = U(K1), U(K2), U(K1 + K2)
    return {"X": u1 * u2, "Y": u1 * u3, "Z": u2 * u3}


def coupling_form(op) -> tuple[dict, "Evidence"]:
    """The canonical flux as a quadratic form in the three pair couplings
    X = U(k1) U(k2), Y = U(k1) U(k1+k2), Z = U(k2) U(k1+k2):

        body = sum_{P <= Q} P Q * C_PQ(v1, v2, v4; k1, k2),

    the shape of the published coupling |Lambda|^2 with Lambda linear in X, Y, Z (a three-body
    interaction through two successive pair interactions). Returns ({"XX": C, "XY": C, ...},
    evidence). The evidence holds when every monomial of the body is of degree 4 in U(k1), U(k2),
    U(k1+k2) and lies in the span of the products of two pair couplings (it then names the
    products that occur); it is the symbolic part of the coupling check -- that C is a
    non-negative square once integrated is what the numerical H-theorem checks test."""
    from derive.operator import Evidence
    from derive.symbols import U

    if op.order != 2 or op.form != "canonical":
        raise ValueError("coupling_form applies to the canonical order-2 operator")
    (term,) = op.flux[0]
    u = (U(K1), U(K2), U(K1 + K2))
    products = {"XX": (2, 2, 0), "YY": (2, 0, 2), "ZZ": (0, 2, 2), "XY": (2, 1, 1), "XZ": (1, 2, 1), "YZ": (1, 1, 2)}
    by_powers = {v: k for k, v in products.items()}
    out: dict = collections.defaultdict(lambda: sp.Integer(0))
    stray = []
    for mono in sp.Add.make_args(sp.expand(term.body)):
        pd = mono.as_powers_dict()
        powers = tuple(int(pd.get(x, 0)) for x in u)
        other = [a for a in mono.atoms(U) if a not in u]
        if other or powers not in by_powers:
            stray.append(mono)
            continue
        out[by_powers[powers]] += mono / sp.Mul(*[x**p for x, p in zip(u, powers)])
    present = sorted(k for k, v in out.items() if v != 0)
    holds = not stray
    statement = (f"every monomial is a product of two pair couplings X = U(k1)U(k2), Y = U(k1)U(k1+k2), "
                 f"Z = U(k2)U(k1+k2): {'yes' if holds else f'NO ({len(stray)} monomials outside the span)'}; "
                 f"products present: {', '.join(present)} "
                 f"({', '.join(str(len(sp.Add.make_args(out[k]))) for k in present)} monomials)")
    return dict(out), Evidence("coupling_quadratic_in_pair_couplings", holds, statement,
                               [sp.Symbol(k) for k in present])


def single_harmonic(op, amplitude=None) -> tuple[sp.Expr, list]:
    """The canonical flux specialised to one harmonic (the HMF: U_1 = ``amplitude``, default the
    symbol U1; every other U_k = 0), with the wavenumber sums carried out: the pairs (k1, k2)
    whose couplings do not all vanish are listed and their integrands summed, each with its
    own resonance delta((k1+k2) v1 - k1 v2 - k2 v4). Returns (expression, pairs)."""
    from derive.symbols import U

    if op.order != 2 or op.form != "canonical":
        raise ValueError("single_harmonic applies to the canonical order-2 operator")
    amp = sp.Symbol("U1", positive=True) if amplitude is None else sp.sympify(amplitude)
    (term,) = op.flux[0]
    pairs, total = [], sp.Integer(0)
    for k1 in range(-2, 3):
        for k2 in range(-2, 3):
            if 0 in (k1, k2, k1 + k2):
                continue
            body = term.body.xreplace({K1: k1, K2: k2})
            body = body.replace(lambda a: isinstance(a, U), lambda a: amp if abs(int(a.args[0])) == 1 else sp.Integer(0))
            body = sp.expand(body)
            if body != 0:
                pairs.append((k1, k2))
                total += body
    return total, pairs
