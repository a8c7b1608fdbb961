"""Run the benchmarks and print a table: ``python -m benchmarks [NAME ...] [--quick] [--json F]``."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks._figure import Figure


def _available() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )


def main(argv: list[str] | None = None) -> int:
    names = _available()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {names})")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for smoke runs")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(names)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; available: {names}")
    rows: list[tuple[str, Figure]] = []
    for name in args.names or names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        t0 = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        for fig in module.run(quick=args.quick):
            rows.append((name, fig))
        print(f"  {name} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    header = ("benchmark", "figure", "value", "unit", "target", "note")
    table = [header] + [
        (b, f.name, f"{f.value:.4g}", f.unit, f.target, f.note) for b, f in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    if args.json:
        args.json.write_text(json.dumps([{"benchmark": b, **asdict(f)} for b, f in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
