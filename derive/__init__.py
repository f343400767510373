"""Symbolic layer: SymPy only, no arrays.

Rebuilds the BBGKY hierarchy, its cluster expansion and truncation in powers of mu = 1/N, and
derives collision operators stage by stage; see :func:`derive.collision_operator`.
"""
