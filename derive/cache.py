"""Content-hash cache of derived operators (JSON, no pickle).

The key hashes the derivation options together with the source of every module of the
engine, so editing the engine invalidates the cache. The directory is ``$BBGKY_CACHE_DIR`` or
``~/.cache/bbgky``. Only the final operator (flux terms) and the stage summary are stored;
a cached operator's Derivation carries the stage names, term counts and timings of the run
that produced it, without the intermediate objects.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from derive.derivation import Derivation, Stage
from derive.fourier import FourierTerm
from derive.operator import Operator
from derive.serialize import decode, encode


def cache_dir() -> Path:
    return Path(os.environ.get("BBGKY_CACHE_DIR", Path.home() / ".cache" / "bbgky"))


def engine_fingerprint() -> str:
    h = hashlib.sha256()
    here = Path(__file__).parent
    for path in sorted(here.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cache_key(options: dict) -> str:
    payload = json.dumps({"options": options, "engine": engine_fingerprint()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def save(op: Operator, options: dict) -> Path:
    path = cache_dir() / f"operator-{cache_key(options)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "options": options,
        "order": op.order, "dimension": op.dimension, "collective": op.collective,
        "assumptions": op.assumptions,
        "flux": [[{"body": encode(t.body), "sums": [encode(s) for s in t.sums],
                   "integrals": [encode(v) for v in t.integrals], "nonzero": [encode(x) for x in t.nonzero]}
                  for t in comp] for comp in op.flux],
        "form": op.form,
        "equation": encode(op.equation) if op.equation is not None else None,
        "stages": [{"name": s.name, "description": s.description, "n_terms": s.n_terms, "seconds": s.seconds}
                   for s in op.derivation.stages],
        "content_hash": op.content_hash,
    }
    if op.symmetric is not None:
        sym = op.symmetric
        data["symmetric"] = {"constant": encode(sym.constant), "coupling": encode(sym.coupling),
                             "quadratic_form": {k: encode(v) for k, v in sym.quadratic_form.items()}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
    return path


def load(options: dict) -> Operator | None:
    path = cache_dir() / f"operator-{cache_key(options)}.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    flux = [[FourierTerm(decode(t["body"]), tuple(decode(s) for s in t["sums"]),
                         tuple(decode(v) for v in t["integrals"]), tuple(decode(x) for x in t.get("nonzero", [])))
             for t in comp] for comp in data["flux"]]
    d = Derivation(data["options"], [Stage(s["name"], s["description"], None, s["n_terms"], s["seconds"])
                                     for s in data["stages"]], from_cache=True)
    op = Operator(data["order"], data["dimension"], data["collective"], data["assumptions"], flux, d,
                  equation=decode(data["equation"]) if data["equation"] is not None else None,
                  form=data.get("form", "canonical"))
    if data.get("symmetric"):
        from derive.symmetric import SymmetricForm

        sym = data["symmetric"]
        op.symmetric = SymmetricForm(decode(sym["constant"]), decode(sym["coupling"]),
                                     {k: decode(v) for k, v in sym["quadratic_form"].items()}, {"from_cache": True})
    if op.content_hash != data["content_hash"]:
        raise ValueError(f"cache file {path} is corrupt: content hash mismatch (delete it)")
    return op
