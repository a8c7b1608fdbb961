"""``wiring measurements list|show|export``: the measurement sets and what they contain.

- ``wiring measurements list [--json] [--model STORE]``: the built-in sets with their sizes (and
  the ``model`` set of an imported store).
- ``wiring measurements show NAME|PATH|model [--json] [--model STORE] [--select ID,...]
  [--n-pairs N]``: one row per measurement (id, pre, post, p, pairs, protocol, citation); with
  ``--model``, also the population sizes and eligible pairs in that structural model (slice
  emulation settable by flags). ``model`` is the measurement populations of the ``--model``
  store (an imported feature-table folder).
- ``wiring measurements export NAME|PATH|model --out FILE [--model STORE] [--select ID,...]
  [--overwrite]``: write a set as TOML or CSV (by the suffix), e.g. to start a custom set from
  a built-in one.

No science happens here: every command calls :mod:`wiring.measurements`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from pipelines.commands._argtypes import add_measurement_choice

__all__ = ["register"]

_MAX_SELECTOR_WIDTH = 40


def register(sub: Any) -> None:
    """Add ``wiring measurements`` and its sub-commands to the top-level sub-parsers."""
    p = sub.add_parser(
        "measurements",
        help="list, show and export measurement sets",
        description="List, show and export the paired-recording measurement sets.",
    )
    msub = p.add_subparsers(dest="measurements_command", metavar="SUBCOMMAND")
    p.set_defaults(handler=_usage(p))

    ls = msub.add_parser(
        "list", help="list the built-in measurement sets",
        description="List the measurement sets shipped with the package.",
    )
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.add_argument("--model", type=Path, default=None, metavar="STORE",
                    help="also list the 'model' set: the measurement populations of this store")
    ls.set_defaults(handler=_list)

    sh = msub.add_parser(
        "show", help="show the measurements of a set",
        description="Show the measurements of a built-in set or of a .toml/.csv file.",
    )
    sh.add_argument("set", metavar="NAME|PATH|model",
                    help="built-in set name, .toml/.csv file, or 'model' (the measurement "
                    "populations of the --model store)")
    sh.add_argument("--json", action="store_true", help="print JSON")
    sh.add_argument("--model", type=Path, default=None, metavar="STORE",
                    help="also give population sizes and eligible pairs in this model store")
    add_measurement_choice(sh, n_pairs_help="pairs tested for records that do not say how many "
                           "(the research code sampled 50)")
    sh.add_argument("--slice-thickness-um", type=float, default=300.0,
                    help="slab thickness for slice measurements (default 300)")
    sh.add_argument("--slice-max-distance-um", type=float, default=100.0,
                    help="max intersomatic distance for slice measurements (default 100; "
                    "inf for none)")
    sh.set_defaults(handler=_show)

    ex = msub.add_parser(
        "export", help="write a set as TOML or CSV",
        description="Write a measurement set to a .toml or .csv file (format by suffix).",
    )
    ex.add_argument("set", metavar="NAME|PATH|model",
                    help="built-in set name, .toml/.csv file, or 'model' (the measurement "
                    "populations of the --model store)")
    ex.add_argument("--out", type=Path, required=True, help="output file (.toml or .csv)")
    ex.add_argument("--model", type=Path, default=None, metavar="STORE",
                    help="the imported model store of the 'model' set")
    add_measurement_choice(ex, n_pairs_help="pairs tested for records that do not say how many "
                           "(the research code sampled 50)")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing file")
    ex.set_defaults(handler=_export)


def _usage(parser: argparse.ArgumentParser) -> Any:
    def handler(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return handler


def _cut(text: str, width: int = _MAX_SELECTOR_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[k]) for r in rows)) if rows else len(h)
              for k, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


def _list(args: argparse.Namespace) -> int:
    from wiring.measurements import list_measurement_sets, load_measurement_set

    info: list[dict[str, Any]] = []
    sets = [(name, load_measurement_set(name)) for name in list_measurement_sets()]
    if args.model is not None:
        sets.append(("model", _resolve(argparse.Namespace(
            set="model", model=args.model, select=None, n_pairs=None))))
    for name, mset in sets:
        info.append({
            "name": name,
            "n_measurements": len(mset),
            "protocols": sorted({m.protocol for m in mset}),
            "total_pairs": int(mset.n_pairs.sum()),
            "description": mset.description,
            "content_hash": mset.content_hash(),
        })
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    rows = [[d["name"], str(d["n_measurements"]), ",".join(d["protocols"]),
             str(d["total_pairs"]), d["description"]] for d in info]
    sys.stdout.write(_table(["name", "measurements", "protocol", "pairs", "description"], rows))
    return 0


def _open_model(args: argparse.Namespace) -> Any:
    if getattr(args, "_opened", None) is None:
        from anatomy.store import open_model

        args._opened = open_model(args.model)
    return args._opened


def _resolve(args: argparse.Namespace) -> Any:
    """The set named on the command line, restricted by ``--select``."""
    from wiring.measurements import MODEL_SET, resolve_measurement_set

    model = None
    if args.set == MODEL_SET:
        if args.model is None:
            from wiring.errors import MeasurementError

            raise MeasurementError(
                "measurement set 'model' means the measurement populations of an imported "
                "structural model; name its store with --model STORE"
            )
        model = _open_model(args)
    return resolve_measurement_set(args.set, model=model, select=args.select,
                                   default_n_pairs=args.n_pairs)


def _show(args: argparse.Namespace) -> int:
    from wiring.measurements import SliceConfig, populations

    mset = _resolve(args)
    pops = None
    if args.model is not None:
        cfg = SliceConfig(
            thickness_um=args.slice_thickness_um,
            max_distance_um=(math.inf if math.isinf(args.slice_max_distance_um)
                             else args.slice_max_distance_um),
        )
        pops = populations(_open_model(args), mset, slice_config=cfg)
    if args.json:
        out = mset.to_dict()
        out["content_hash"] = mset.content_hash()
        if pops is not None:
            out["model"] = str(args.model)
            out["populations"] = [
                {"id": p.measurement_id, "n_pre": int(p.pre.size), "n_post": int(p.post.size),
                 "n_eligible": p.n_eligible} for p in pops
            ]
        json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    header = ["id", "pre", "post", "p", "pairs", "protocol", "citation"]
    rows = [
        [m.id, _cut(str(m.pre)), _cut(str(m.post)), f"{m.probability:g}", str(m.n_pairs),
         m.protocol, str(m.citation)]
        for m in mset
    ]
    if pops is not None:
        header += ["n_pre", "n_post", "eligible"]
        for r, pop in zip(rows, pops, strict=True):
            r += [str(pop.pre.size), str(pop.post.size), str(pop.n_eligible)]
    title = f"{mset.name}: {len(mset)} measurements"
    if mset.description:
        title += f" - {mset.description}"
    note = ""
    if args.set == "model" and args.select is None:
        total = sum("probability" in p.attrs for p in _open_model(args).populations.values())
        if total > len(mset):
            note = (f"(the source's default experiment; the model has {total} measurement "
                    f"populations: --select all shows them)\n")
    sys.stdout.write(f"{title}\n{_table(header, rows)}{note}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from wiring.errors import MeasurementError

    out: Path = args.out
    suffix = out.suffix.lower()
    if suffix not in (".toml", ".csv"):
        raise MeasurementError(
            f"--out {str(out)!r}: unsupported suffix {out.suffix!r}; use .toml or .csv"
        )
    mset = _resolve(args)
    if suffix == ".toml":
        mset.to_toml(out, overwrite=args.overwrite)
    else:
        mset.to_csv(out, overwrite=args.overwrite)
    sys.stderr.write(f"wrote {len(mset)} measurements of {mset.name!r} to {out}\n")
    return 0
