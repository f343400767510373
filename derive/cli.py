"""``bbgky derive``: run the derivation engine from the command line."""
from __future__ import annotations

import sys
import time


def register(subparsers) -> None:
    p = subparsers.add_parser("derive", help="derive a kinetic equation from the BBGKY hierarchy",
                              description="Derive the collision operator at order mu^ORDER (0: Vlasov, "
                              "1: Landau, 2: three-body) and print a stage summary. Results are cached by content hash "
                              "in $BBGKY_CACHE_DIR (default ~/.cache/bbgky).")
    p.add_argument("--order", type=int, required=True, help="order in mu = 1/N (0: Vlasov, 1: Landau/Balescu-Lenard, "
                   "2: three-body, 1D hot limit)")
    p.add_argument("--dimension", type=int, default=1, help="dimension of the periodic box (1-3)")
    p.add_argument("--keep-collective", action="store_true", help="keep collective effects (Balescu-Lenard)")
    p.add_argument("--latex", metavar="FILE", help="write the derivation as LaTeX")
    p.add_argument("--json", metavar="FILE", help="write the derivation record as JSON (srepr of each stage)")
    p.add_argument("--no-cache", action="store_true", help="derive from scratch and do not write the cache")
    p.add_argument("--checks", action="store_true", help="run the operator's check_* methods and print evidence")
    p.add_argument("--form", choices=("canonical", "resonance"), default="canonical",
                   help="order 2: canonical (single resonance, well-posed; default) or resonance (products of "
                        "boundary values, the exact long-time flux)")
    p.set_defaults(func=run)


def run(args) -> int:
    from derive import cache
    from derive.pipeline import collision_operator

    options = {"order": args.order, "dimension": args.dimension, "collective": args.keep_collective}
    if args.form != "canonical":
        if args.order != 2:
            raise ValueError(f"--form {args.form} exists for --order 2 only")
        options["form"] = args.form
    start = time.perf_counter()
    op = None if (args.no_cache or args.latex or args.json) else cache.load(options)
    if op is None:
        def progress(stage):
            print(f"  ... {stage}", file=sys.stderr, flush=True)

        op = collision_operator(args.order, args.dimension, args.keep_collective, form=args.form, progress=progress)
        if not args.no_cache:
            path = cache.save(op, options)
            print(f"compiled; cached as {path}")
    else:
        print("fetched from cache")
    print(op.derivation.summary())
    print(f"operator: {op.name}  terms: {op.n_terms()}  content hash: {op.content_hash}  "
          f"wall time: {time.perf_counter() - start:.2f} s")
    import sympy as sp

    print(sp.sstr(op.canonical_expression()))
    if args.latex:
        with open(args.latex, "w") as fh:
            fh.write(op.derivation.as_latex())
        print(f"wrote {args.latex}")
    if args.json:
        op.derivation.save_json(args.json)
        print(f"wrote {args.json}")
    if args.checks and op.order == 1:
        if op.dimension == 1:
            print(op.check_vanishes_1d())
        for ev in op.check_conservation().values():
            print(ev)
        print(op.check_h_theorem())
    if args.checks and op.order == 2 and op.form == "canonical":
        from derive.canonical import coupling_form, single_harmonic, structure_evidence

        ev = structure_evidence(op)
        print(f"[{'holds' if ev.holds else 'FAILS'}] {ev.name}: {ev.statement}")
        _, ev = coupling_form(op)
        print(f"[{'holds' if ev.holds else 'FAILS'}] {ev.name}: {ev.statement}")
        hmf, pairs = single_harmonic(op)
        print(f"single harmonic (HMF, U_1 = U1): pairs (k1, k2) = {pairs}, {len(sp.Add.make_args(hmf))} monomials;"
              f" J(v1) = sum over the pairs of int dv2 dv4 of")
        print(f"  {hmf}")
        sym = op.symmetric
        print(f"symmetric form: J(v1) = sum_(k1,k2) int dv2 dv4 delta((k1+k2) v1 - k1 v2 - k2 v4) "
              f"(k1+k2) C Lambda^2 (k.d/dv) F(v1) F(v2) F(v4),  C = {sym.constant}")
        print(f"  Lambda_(k1,k2) = {sym.coupling}")
        for ev in [sym.check_invariance(), *op.check_conservation().values(), op.check_h_theorem(),
                   op.check_steady_states(), op.check_blocking(), op.check_averaging_weights()]:
            print(f"[{'holds' if ev.holds else 'FAILS'}] {ev.name}: {ev.statement}")
        hmf_sym, hmf_pairs = sym.single_harmonic()
        print("single harmonic, symmetric form: " + ", ".join(f"Lambda_{p} = {lam}" for p, lam in hmf_pairs))
    if args.checks and op.order == 2 and op.form == "resonance":
        from derive.canonical import two_body_evidence
        from derive.order2 import pinch_evidence

        U1, U2, U3 = sp.symbols("U1 U2 U3", real=True)
        for harmonics in ({1: U1}, {1: U1, 3: U3}, {1: U1, 2: U2}):
            ev = pinch_evidence(op, harmonics)
            print(f"[{'holds' if ev.holds else 'FAILS'}] {ev.name}: {ev.statement}")
        ev = two_body_evidence(op, {1: U1})
        print(f"[{'holds' if ev.holds else 'FAILS'}] {ev.name}: {ev.statement}")
    return 0
