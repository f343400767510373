"""The ``bbgky`` command line.

Each area of the toolkit owns its subcommands: a module listed in ``SUBCOMMAND_MODULES``
exposes ``register(subparsers)``, which adds its parsers and sets ``func`` on them. Modules are
imported lazily so that, e.g., ``bbgky nbody`` never imports SymPy.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: modules providing ``register(subparsers)``; order = order in ``bbgky --help``
SUBCOMMAND_MODULES = [
    "numerics.nbody.cli",  # nbody, resume, measure
    "derive.cli",  # derive
    "derive.codegen",  # regenerate (the generated kernels in numerics/generated)
    "numerics.kinetic_cli",  # flux, verify (the derived 1/N^2 operator, evaluated)
    "numerics.demo",  # demo (the README's main job)
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bbgky",
        description="Derive kinetic equations of 1D long-range N-body systems from the BBGKY "
        "hierarchy, evaluate them, and check them against N-body ensembles.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that area is not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        # user-facing errors: one clear line, no traceback (set BBGKY_DEBUG=1 for it)
        import os

        if os.environ.get("BBGKY_DEBUG"):
            raise
        print(f"bbgky {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
