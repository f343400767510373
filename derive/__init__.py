"""Symbolic layer: SymPy only, no arrays.

Rebuilds the BBGKY hierarchy, its cluster expansion and truncation in powers of mu = 1/N, and
derives collision operators stage by stage; see :func:`derive.collision_operator`.
"""

from derive.pipeline import collision_operator  # noqa: E402,F401
from derive.operator import Operator, Evidence  # noqa: E402,F401
from derive.derivation import Derivation  # noqa: E402,F401

__all__ = ["collision_operator", "Operator", "Evidence", "Derivation"]
