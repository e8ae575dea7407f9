"""Run the project's benchmarks: each module in benchmarks/ with ``run(out_dir) -> dict``.

Writes ``reports/bench/<module>.json`` and prints a one-line summary per benchmark.
``python -m benchmarks.run [NAME ...]`` runs only the named ones.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from pathlib import Path

import benchmarks

OUT = Path(__file__).resolve().parents[1] / "reports" / "bench"


def main(argv: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    names = [m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name not in ("run",)
             and not m.name.startswith("_")]
    if argv:
        unknown = set(argv) - set(names)
        if unknown:
            print(f"bench: unknown benchmark(s) {sorted(unknown)}; known: {sorted(names)}", file=sys.stderr)
            return 2
        names = [n for n in names if n in argv]
    for name in sorted(names):
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"bench: {name} ...", flush=True)
        result = module.run(OUT)
        (OUT / f"{name}.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        print(f"bench: {name}: {json.dumps(result, sort_keys=True)[:400]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
