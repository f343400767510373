"""SymPy printers for generated kernels: NumPy, JAX and CUDA C (CuPy ElementwiseKernel).

Subclassed where SymPy's printers are missing a rule or print something we do not want in a
kernel; the generated text is never edited after printing.

* ``KernelNumPyPrinter`` / ``KernelJaxPrinter``: ``Abs`` as ``numpy.abs`` / ``jax.numpy.abs``
  (SymPy prints the builtin ``abs``), a stand-alone negative integer power as ``1/x**n``
  (SymPy prints ``x**(-2.0)``), floats with all 17 significant digits, ``I`` as ``1j``; ``strict`` so that a node without a rule is
  an error, not a silent ``# Not supported`` comment.
* ``KernelCudaPrinter``: double-precision C for CUDA/NVRTC. Every number is a double literal
  (``2.0``, ``1.0/3.0``, floats with 17 significant digits), small integer powers are
  products (``(x*x)``), ``Abs`` is always ``fabs`` (SymPy prints the int ``abs`` for integer
  symbols, but wavevectors arrive as doubles), ``pi`` is ``M_PI`` (defined by :data:`CUDA_PREAMBLE` when the compiler
  does not define it, as NVRTC does not). Complex numbers are refused: the code generator
  splits complex cofactors into real and imaginary parts before printing.

The printers only see frozen expressions (see :func:`derive.codegen.freeze`): plain symbols
standing for arrays, numbers, ``pi``, ``I``, ``+``, ``*``, powers, ``Abs``, ``sign``, ``exp``.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.c import C99CodePrinter
from sympy.printing.numpy import JaxPrinter, NumPyPrinter
from sympy.printing.precedence import PRECEDENCE

#: defines M_PI for compilers (NVRTC) whose math header does not
CUDA_PREAMBLE = "#ifndef M_PI\n#define M_PI 3.14159265358979323846\n#endif\n"


class _ArrayPrinterMixin:
    """Rules shared by the NumPy-like printers (``self._module`` is 'numpy' or 'jax.numpy')."""

    def _print_Abs(self, expr):
        return f"{self._module}.abs({self._print(expr.args[0])})"

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.as_base_exp()
        if exp.is_Integer and exp < 0:
            if exp == -1:
                return "1/" + self.parenthesize(base, PRECEDENCE["Pow"])
            return "1/" + self.parenthesize(sp.Pow(base, -exp), PRECEDENCE["Mul"])
        return super()._print_Pow(expr, rational=rational)


    def _print_Float(self, expr):
        return repr(float(expr))


class KernelNumPyPrinter(_ArrayPrinterMixin, NumPyPrinter):
    printmethod = "_kernelnumpycode"

    def __init__(self, settings=None):
        super().__init__({"strict": True, **(settings or {})})


class KernelJaxPrinter(_ArrayPrinterMixin, JaxPrinter):
    """jax.numpy calls only, no Python control flow on values: jit- and vmap-compatible."""

    printmethod = "_kerneljaxcode"

    def __init__(self, settings=None):
        super().__init__({"strict": True, **(settings or {})})


class KernelCudaPrinter(C99CodePrinter):
    """Double-precision CUDA C expressions for CuPy ElementwiseKernel bodies."""

    printmethod = "_kernelcudacode"

    def __init__(self, settings=None):
        super().__init__({"strict": True, **(settings or {})})

    def _print_Integer(self, expr):
        return f"{int(expr)}.0"

    def _print_Rational(self, expr):
        return f"{int(expr.p)}.0/{int(expr.q)}.0"

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Pi(self, expr):
        return "M_PI"

    def _print_Pow(self, expr):
        base, exp = expr.as_base_exp()
        if exp.is_Integer and 2 <= exp <= 4:
            factor = self.parenthesize(base, PRECEDENCE["Mul"])
            return "(" + "*".join([factor] * int(exp)) + ")"
        if exp == -1:
            return "1.0/" + self.parenthesize(base, PRECEDENCE["Mul"])
        if exp.is_Integer and -4 <= exp <= -2:
            return "1.0/" + self._print_Pow(sp.Pow(base, -exp))
        return super()._print_Pow(expr)

    def _print_Abs(self, expr):
        # C99CodePrinter prints abs() (int) for integer symbols; every kernel value is a double
        return f"fabs({self._print(expr.args[0])})"

    def _print_sign(self, expr):
        arg = self._print(expr.args[0])
        return f"((double)(({arg}) > 0.0) - (double)(({arg}) < 0.0))"

    def _print_ImaginaryUnit(self, expr):
        raise ValueError("KernelCudaPrinter prints real expressions only: split complex cofactors "
                         "into real and imaginary parts first (derive.codegen does)")
