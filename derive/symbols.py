"""Symbols and special functions shared by every stage of the derivation.

Conventions (README, "Conventions"): mu = M/N = 1/N is the mass per particle, the pair
potential is U(theta) = -sum_k U_k exp(i k.theta) with U_{-k} = U_k, so the force exerted on
particle i by particle j is F_ij = -grad_{theta_i} U(theta_i - theta_j)
= sum_k (i k U_k) exp(i k.(theta_i - theta_j)).
"""
from __future__ import annotations

import sympy as sp

#: mass per particle, the small parameter of the expansion (mu = 1/N)
mu = sp.Symbol("mu", positive=True)
#: number of particles
N = sp.Symbol("N", positive=True, integer=True)
#: time
t = sp.Symbol("t", real=True)


def velocity(label: int, dimension: int) -> tuple[sp.Symbol, ...]:
    """Components of the velocity of particle ``label`` (v1 in 1D, (v1_1, v1_2) in 2D, ...)."""
    if dimension == 1:
        return (sp.Symbol(f"v{label}", real=True),)
    return tuple(sp.Symbol(f"v{label}_{c + 1}", real=True) for c in range(dimension))


def angle(label: int, dimension: int) -> tuple[sp.Symbol, ...]:
    if dimension == 1:
        return (sp.Symbol(f"theta{label}", real=True),)
    return tuple(sp.Symbol(f"theta{label}_{c + 1}", real=True) for c in range(dimension))


class U(sp.Function):
    """Fourier coefficient U_k of the pair potential (arguments: the wavevector components).

    Even: U(-k) = U(k), applied automatically so that equal couplings compare equal.
    """

    is_real = True

    @classmethod
    def eval(cls, *k):
        if len(k) == 1 and k[0].is_zero:
            return None
        # canonical sign: flip when the first non-zero component "looks negative"
        for comp in k:
            if comp.is_zero:
                continue
            if comp.could_extract_minus_sign():
                return cls(*[-c for c in k])
            break
        return None

    def _latex(self, printer, exp=None):
        inner = ",".join(printer._print(a) for a in self.args)
        out = r"U_{%s}" % inner
        return out if exp is None else r"%s^{%s}" % (out, exp)


class Resonance(sp.Function):
    """The distribution 1/(x - i0)^n: Resonance(x, n), n >= 1 an integer.

    It is what the long-time limit of phase mixing produces:
    lim_{t->oo} int_0^t ds exp(-i x s) = pi delta(x) - i P(1/x) = -i Resonance(x, 1).
    Derivatives act by the chain rule, d/dx (x - i0)^-n = -n (x - i0)^-(n+1), which is how
    velocity derivatives are applied only after the time integrals (PHYSICS.md section 3, step 9).
    Sokhotski-Plemelj splits it (:func:`split_resonance`) into
    P(1/x^n) + i pi (-1)^(n-1)/(n-1)! delta^(n-1)(x).
    """

    is_commutative = True

    @classmethod
    def eval(cls, x, n):
        if not (n.is_Integer and n >= 1):
            raise ValueError(f"Resonance order n must be an integer >= 1, got {n}")
        return None

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        x, n = self.args
        return -n * Resonance(x, n + 1)

    def _latex(self, printer, exp=None):
        x, n = self.args
        base = r"\left(%s - i0\right)" % printer._print(x)
        return r"\frac{1}{%s}" % base if n == 1 else r"\frac{1}{%s^{%s}}" % (base, printer._print(n))


class ResonancePlus(sp.Function):
    """The distribution 1/(x + i0)^n (boundary value from the other half-plane):
    Resonance(-x, n) = (-1)^n ResonancePlus(x, n). A product of Resonance(y, .) and
    ResonancePlus(y, .) at the same argument is a pinch (not a distribution)."""

    is_commutative = True

    @classmethod
    def eval(cls, x, n):
        if not (n.is_Integer and n >= 1):
            raise ValueError(f"ResonancePlus order n must be an integer >= 1, got {n}")
        return None

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        x, n = self.args
        return -n * ResonancePlus(x, n + 1)


class PrincipalValue(sp.Function):
    """The distribution P(1/x^n) (Cauchy principal value for n = 1, Hadamard finite part above)."""

    is_commutative = True
    is_real = True

    @classmethod
    def eval(cls, x, n):
        if not (n.is_Integer and n >= 1):
            raise ValueError(f"PrincipalValue order n must be an integer >= 1, got {n}")
        if x.could_extract_minus_sign():
            return (-1) ** n * cls(-x, n)
        return None

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        x, n = self.args
        return -n * PrincipalValue(x, n + 1)

    def _latex(self, printer, exp=None):
        x, n = self.args
        return r"\mathcal{P}\frac{1}{%s}" % (
            printer._print(x) if n == 1 else "(%s)^{%s}" % (printer._print(x), printer._print(n))
        )


def combine_resonances(expr: sp.Expr) -> sp.Expr:
    """(x - i0)^-n (x - i0)^-m = (x - i0)^-(n+m): merge resonances with identical arguments in
    every product (boundary values from the same half-plane multiply without ambiguity)."""

    def merge(term):
        factors = sp.Mul.make_args(term)
        orders: dict = {}
        rest = []
        for f in factors:
            base, e = f.as_base_exp()
            if isinstance(base, Resonance) and e.is_Integer and e > 0:
                orders[base.args[0]] = orders.get(base.args[0], 0) + int(base.args[1]) * int(e)
            else:
                rest.append(f)
        return sp.Mul(*rest, *[Resonance(x, n) for x, n in orders.items()])

    expr = sp.expand(expr)
    return sp.Add(*[merge(t) for t in sp.Add.make_args(expr)])


def split_resonance(expr: sp.Expr) -> sp.Expr:
    """Replace every Resonance(x, n) by P(1/x^n) + i pi (-1)^(n-1)/(n-1)! delta^(n-1)(x)."""

    def _split(x, n):
        n_int = int(n)
        delta = sp.DiracDelta(x) if n_int == 1 else sp.DiracDelta(x, n_int - 1)
        return PrincipalValue(x, n) + sp.I * sp.pi * (-1) ** (n_int - 1) / sp.factorial(n_int - 1) * delta

    return expr.replace(Resonance, _split)


#: names the JSON (de)serialiser may rebuild besides SymPy's own classes
CUSTOM_CLASSES = {"U": U, "Resonance": Resonance, "ResonancePlus": ResonancePlus, "PrincipalValue": PrincipalValue}
