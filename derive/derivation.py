"""The record of a derivation: every stage's output, term count and time.

Printable as plain text and LaTeX; saved as JSON (``srepr`` of every SymPy object, plus the
safe tree encoding of :mod:`derive.serialize` for the final operator). No pickle.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import sympy as sp


@dataclass
class Stage:
    name: str
    description: str
    output: Any
    n_terms: int
    seconds: float
    sympy_view: list = field(default_factory=list)  # SymPy objects showing the stage's result

    def summary(self) -> str:
        return f"{self.name:<28s} {self.n_terms:>6d} terms {self.seconds:8.2f} s  {self.description}"


@dataclass
class Derivation:
    """Ordered stages of one derivation, with the options that produced it."""

    options: dict
    stages: list[Stage] = field(default_factory=list)
    from_cache: bool = False

    def run(self, name: str, description: str, fn: Callable[[], Any], count: Callable[[Any], int],
            view: Callable[[Any], list] | None = None, progress=None) -> Any:
        if progress is not None:
            progress(name)
        start = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - start
        self.stages.append(Stage(name, description, out, int(count(out)), elapsed, view(out) if view else []))
        return out

    def __getitem__(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage named {name!r}; stages: {[s.name for s in self.stages]}")

    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def summary(self) -> str:
        head = f"Derivation {self.options}" + ("  [loaded from cache]" if self.from_cache else "")
        total = sum(s.seconds for s in self.stages)
        lines = [head] + ["  " + s.summary() for s in self.stages] + [f"  {'total':<28s} {'':>12s} {total:8.2f} s"]
        return "\n".join(lines)

    def as_text(self) -> str:
        parts = [self.summary(), ""]
        for stage in self.stages:
            parts.append(f"== {stage.name}: {stage.description}")
            for obj in stage.sympy_view:
                parts.append("   " + sp.sstr(obj))
            parts.append("")
        return "\n".join(parts)

    def as_latex(self) -> str:
        parts = [r"\section*{Derivation}", r"\begin{itemize}"]
        for stage in self.stages:
            parts.append(r"\item \textbf{%s} (%d terms, %.2f s): %s" % (
                stage.name.replace("_", r"\_"), stage.n_terms, stage.seconds, stage.description))
            for obj in stage.sympy_view:
                parts.append(r"\begin{dmath*}" + sp.latex(obj) + r"\end{dmath*}")
        parts.append(r"\end{itemize}")
        return "\n".join(parts)

    def to_json_dict(self) -> dict:
        return {
            "options": self.options,
            "stages": [
                {"name": s.name, "description": s.description, "n_terms": s.n_terms, "seconds": s.seconds,
                 "srepr": [sp.srepr(o) for o in s.sympy_view]}
                for s in self.stages
            ],
        }

    def save_json(self, path) -> None:
        with open(path, "w") as fh:
            json.dump(self.to_json_dict(), fh, indent=1)
