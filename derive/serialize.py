"""Safe JSON encoding of SymPy expressions (no eval, no pickle).

An expression becomes a nested list ["ClassName", arg, ...]; leaves are numbers and symbols
with their assumptions. Decoding only instantiates whitelisted classes: SymPy's core and
function classes, undefined functions (by name) and the toolkit's own functions.
"""
from __future__ import annotations

import sympy as sp
from sympy.core.function import AppliedUndef

from derive.symbols import CUSTOM_CLASSES

_ASSUMPTIONS = ("real", "positive", "integer")


def encode(expr) -> object:
    expr = sp.sympify(expr)
    if isinstance(expr, sp.Integer):
        return ["Integer", int(expr)]
    if isinstance(expr, sp.Rational):
        return ["Rational", int(expr.p), int(expr.q)]
    if isinstance(expr, sp.Float):
        return ["Float", str(expr)]
    if isinstance(expr, sp.Symbol):
        return ["Symbol", expr.name, {a: True for a in _ASSUMPTIONS if expr.assumptions0.get(a)}]
    if expr is sp.I:
        return ["I"]
    if expr is sp.pi:
        return ["pi"]
    if expr is sp.oo:
        return ["oo"]
    if expr is sp.S.NegativeInfinity:
        return ["-oo"]
    if isinstance(expr, AppliedUndef):
        return ["Undef", expr.func.__name__, [encode(a) for a in expr.args]]
    if isinstance(expr, sp.Derivative):
        return ["Derivative", encode(expr.expr), [[encode(v), int(n)] for v, n in expr.variable_count]]
    if isinstance(expr, sp.Tuple):
        return ["Tuple", [encode(a) for a in expr.args]]
    name = type(expr).__name__
    if name not in _CLASSES:
        raise TypeError(f"cannot encode SymPy node {name!r}: not in the whitelist")
    return [name, [encode(a) for a in expr.args]]


_CLASSES = {
    "Add": sp.Add, "Mul": sp.Mul, "Pow": sp.Pow, "Abs": sp.Abs, "DiracDelta": sp.DiracDelta,
    "Integral": sp.Integral, "Sum": sp.Sum, "Eq": sp.Eq, "exp": sp.exp, "sign": sp.sign,
    "Heaviside": sp.Heaviside, "re": sp.re, "im": sp.im,
    **CUSTOM_CLASSES,
}


def decode(obj):
    tag = obj[0]
    if tag == "Integer":
        return sp.Integer(obj[1])
    if tag == "Rational":
        return sp.Rational(obj[1], obj[2])
    if tag == "Float":
        return sp.Float(obj[1])
    if tag == "Symbol":
        return sp.Symbol(obj[1], **obj[2])
    if tag == "I":
        return sp.I
    if tag == "pi":
        return sp.pi
    if tag == "oo":
        return sp.oo
    if tag == "-oo":
        return -sp.oo
    if tag == "Undef":
        return sp.Function(obj[1])(*[decode(a) for a in obj[2]])
    if tag == "Derivative":
        return sp.Derivative(decode(obj[1]), *[(decode(v), n) for v, n in obj[2]])
    if tag == "Tuple":
        return sp.Tuple(*[decode(a) for a in obj[1]])
    if tag not in _CLASSES:
        raise ValueError(f"refusing to decode unknown node {tag!r}")
    return _CLASSES[tag](*[decode(a) for a in obj[1]])


def register(cls) -> None:
    """Whitelist a toolkit function class defined outside :mod:`derive.symbols` (for example
    :class:`derive.collective.Dielectric`), so operators holding it can be cached as JSON."""
    _CLASSES[cls.__name__] = cls
