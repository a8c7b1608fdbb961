"""``wiring anatomy build|import|info|calibrate``: build, import and describe structural-model stores.

- ``wiring anatomy build --preset NAME --seed N --out PATH [--no-progress] [--overwrite]``
  generates a synthetic barrel-cortex model (:func:`anatomy.generate.build_model`) and writes it
  atomically.
- ``wiring anatomy import consbi FOLDER --out PATH`` and ``wiring anatomy import swc ... --out
  PATH`` convert external data (:mod:`anatomy.io`) into a store.
- ``wiring anatomy info PATH [--json] [--plot FILE]`` validates a store and summarizes it.
- ``wiring anatomy calibrate PATH [--json] [--plot FILE]`` checks a store against the
  calibration targets (:func:`wiring.anatomy_calibration.calibration_report`).

No science happens here: every command calls :mod:`anatomy`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.commands._argtypes import (
    add_progress_option,
    non_negative_int,
    positive_int,
    show_progress,
)
from pipelines.commands._locking import holding_output_lock

__all__ = ["register", "summarize_model"]


def register(sub: Any) -> None:
    """Add ``wiring anatomy`` and its sub-commands to the top-level sub-parsers."""
    p = sub.add_parser(
        "anatomy",
        help="build, import and describe structural models",
        description="Build, import and describe voxelized structural models (zarr stores).",
    )
    asub = p.add_subparsers(dest="anatomy_command", metavar="SUBCOMMAND")

    b = asub.add_parser(
        "build",
        help="generate a synthetic barrel-cortex model",
        description="Generate a synthetic rat barrel-cortex model and write it as a zarr store.",
    )
    b.add_argument("--preset", required=True, help="tiny, small, column or field")
    b.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    b.add_argument("--out", type=Path, required=True, help="output store (e.g. model.zarr)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing store")
    b.add_argument("--chunk-voxels", type=positive_int, default=None,
                   help="voxels per stored block (default: about 4 Mi entries per block)")
    add_progress_option(b, what="the progress bar")
    # bars are on by default, as in every long-running command; the former opt-in is
    # still accepted (and changes nothing)
    b.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)
    b.set_defaults(handler=holding_output_lock(_build, what="structural-model store",
                                                make_parent=True))

    i = asub.add_parser(
        "info",
        help="validate and summarize a store",
        description="Validate a structural-model store and print a summary.",
    )
    i.add_argument("path", type=Path, help="store to describe")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    i.add_argument("--plot", type=Path, default=None, metavar="FILE",
                   help="also draw depth profiles into this image file (png, pdf, svg)")
    i.add_argument("--overwrite", action="store_true", help="replace an existing --plot file")
    i.add_argument("--verify", action="store_true",
                   help="also recompute the content hash from the arrays and compare it with "
                   "the recorded one (reads everything once)")
    i.set_defaults(handler=_info)

    c = asub.add_parser(
        "calibrate",
        help="check a store against the calibration targets (the dense barrel-cortex model)",
        description="Compare a structural model with the calibration targets: VPM bouton depth "
        "fractions, neurons per layer, post_all by layer and the DSO connection probabilities "
        "of the dense model for the in vivo VPM measurements at theta = (1, 1, 1). Exit status "
        "0 when every applicable target passes, 1 (with a one-line message) when some fail.",
    )
    c.add_argument("path", type=Path, help="store to check")
    c.add_argument("--json", action="store_true", help="print the results as JSON")
    c.add_argument("--plot", type=Path, default=None, metavar="FILE",
                   help="draw the VPM bouton depth profile against the dense model's")
    c.add_argument("--overwrite", action="store_true", help="replace an existing --plot file")
    c.set_defaults(handler=_calibrate)

    imp = asub.add_parser(
        "import",
        help="import external data into a store",
        description="Import a structural model from an external format.",
    )
    isub = imp.add_subparsers(dest="import_format", metavar="FORMAT")
    c = isub.add_parser(
        "consbi",
        help="DSO feature tables (features/, masks/, empirical_data_*.json)",
        description="Import the DSO feature-table folder format into a structural model with "
        "its measurement populations.",
    )
    c.add_argument("folder", type=Path, help="folder with features/ and masks/")
    c.add_argument("--feature-set", default=None, help="feature set name (default: the only one)")
    c.add_argument("--out", type=Path, required=True, help="output store")
    c.add_argument("--overwrite", action="store_true", help="replace an existing store")
    c.set_defaults(handler=holding_output_lock(_import_consbi, what="structural-model store",
                                                make_parent=True))
    s = isub.add_parser(
        "swc",
        help="SWC morphologies placed at soma positions",
        description="Voxelize SWC morphologies placed at their soma positions. The manifest is "
        "a CSV file with the header id,swc,cell_type,x,y,depth (optional region,column); swc "
        "paths are relative to it.",
    )
    s.add_argument("manifest", type=Path, help="manifest CSV listing the SWC files")
    s.add_argument("--spacing-um", type=float, default=50.0, help="voxel size (default 50)")
    s.add_argument("--background-targets-per-voxel", type=float, default=0.0,
                   help="target sites of unreconstructed neurons added to post_all (default 0)")
    s.add_argument("--depth-axis", choices=("-y", "y", "-z", "z"), default="-y",
                   help="SWC axis pointing into the cortex, e.g. --depth-axis=-y (default)")
    s.add_argument("--max-voxels", type=positive_int, default=None, metavar="N",
                   help="refuse a grid of more voxels than this (default 20,000,000): a stray "
                   "far-away sample would otherwise build an enormous grid")
    s.add_argument("--out", type=Path, required=True, help="output store")
    s.add_argument("--overwrite", action="store_true", help="replace an existing store")
    s.set_defaults(handler=holding_output_lock(_import_swc, what="structural-model store",
                                                make_parent=True))

    # a bare `wiring anatomy` or `wiring anatomy import` prints its own help (usage error)
    p.set_defaults(handler=_usage(p))
    imp.set_defaults(handler=_usage(imp))


def _load(module: str, name: str) -> Any:
    """``module.name``, imported lazily; a module missing from this installation is a user error."""
    import importlib

    from anatomy.errors import AnatomyError

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise
        raise AnatomyError(
            f"{module} is not available in this installation, so this command cannot run; "
            "install the complete wiring-sbi package"
        ) from err
    return getattr(mod, name)


def _usage(parser: argparse.ArgumentParser) -> Any:
    def handler(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return handler


def _refuse_existing(path: Path, overwrite: bool, *, store: bool = True) -> None:
    """Fail before any expensive work when the output exists, or when ``--overwrite`` would
    replace a directory that is not a structural-model store (write_model checks again)."""
    from anatomy.errors import StoreExistsError

    if not (path.exists() or path.is_symlink()):
        return
    if not overwrite:
        raise StoreExistsError(
            f"{path} already exists; choose another --out or pass --overwrite to replace it"
        )
    if store:
        from anatomy.store import is_anatomy_store
        from anatomy.storeguard import refuse_foreign

        if not is_anatomy_store(path):
            raise refuse_foreign(path, "a structural-model store")


def _write(model: Any, args: argparse.Namespace, what: str) -> int:
    from anatomy.store import write_model

    path = write_model(model, args.out, overwrite=args.overwrite,
                       chunk_voxels=getattr(args, "chunk_voxels", None))
    from anatomy.store import open_model

    stored = open_model(path, validate=False)
    sys.stdout.write(
        f"wrote {what} ({stored.n_neurons} neurons, {stored.n_voxels} voxels, "
        f"hash {str(stored.attrs.get('content_hash', ''))[:12]}) to {path}\n"
    )
    return 0


def _build(args: argparse.Namespace) -> int:
    from anatomy.catalogue import code_of

    presets = _load("anatomy.generate", "PRESETS")
    build_model = _load("anatomy.generate", "build_model")
    code_of(args.preset, tuple(presets), kind="preset")  # unknown name: error with suggestion
    _refuse_existing(args.out, args.overwrite)
    model = build_model(args.preset, seed=args.seed, progress=show_progress(args))
    return _write(model, args, f"the {args.preset!r} model (seed {args.seed})")


def _import_consbi(args: argparse.Namespace) -> int:
    import_feature_tables = _load("anatomy.io.consbi", "import_feature_tables")
    _refuse_existing(args.out, args.overwrite)
    model = import_feature_tables(args.folder, feature_set=args.feature_set)
    return _write(model, args, f"the feature tables of {args.folder}")


def _import_swc(args: argparse.Namespace) -> int:
    import_swc = _load("anatomy.io.swc", "import_swc")
    _refuse_existing(args.out, args.overwrite)
    limit = {} if args.max_voxels is None else {"max_voxels": args.max_voxels}
    model = import_swc(
        args.manifest,
        **limit,
        spacing_um=args.spacing_um,
        background_targets_per_voxel=args.background_targets_per_voxel,
        depth_axis=args.depth_axis,
    )
    return _write(model, args, f"the SWC morphologies of {args.manifest}")


def summarize_model(model: Any) -> dict[str, Any]:
    """JSON-native summary of a model (``anatomy.describe.describe_model`` when available).

    The fallback summary holds neurons per cell type, layer and region, voxels, entries of
    ``pre``/``post``, ``post_all`` statistics and the content hash.
    """
    import importlib

    try:
        describe = importlib.import_module("anatomy.describe")
    except ModuleNotFoundError as err:
        if err.name != "anatomy.describe":
            raise
    else:
        return dict(describe.describe_model(model))
    import numpy as np

    from anatomy.catalogue import CELL_TYPES, LAYERS, REGIONS

    neurons = model.neurons

    def tally(codes: Any, names: tuple[str, ...], none: str) -> dict[str, int]:
        values, counts = np.unique(np.asarray(codes), return_counts=True)
        return {(names[c] if c >= 0 else none): int(k) for c, k in zip(values, counts, strict=True)}

    post_all = np.asarray(model.post_all, dtype=np.float64)
    inside = post_all[post_all > 0]
    return {
        "content_hash": model.attrs.get("content_hash"),
        "attrs": dict(model.attrs),
        "grid": model.grid.to_dict(),
        "n_neurons": model.n_neurons,
        "n_voxels": model.n_voxels,
        "neurons_per_cell_type": tally(neurons.cell_type, CELL_TYPES, "none"),
        "neurons_per_layer": tally(neurons.layer, LAYERS, "outside cortex"),
        "neurons_per_region": tally(neurons.region, REGIONS, "none"),
        "column_names": list(neurons.column_names),
        "nnz": {"pre": model.pre.nnz, "post": model.post.nnz},
        "post_all": {
            "total": float(post_all.sum()),
            "nonzero_voxels": int(inside.size),
            "mean_nonzero": float(inside.mean()) if inside.size else 0.0,
            "max": float(post_all.max()) if post_all.size else 0.0,
        },
        "populations": sorted(model.populations),
    }


def _render(value: Any, indent: int = 0) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(v, Mapping) and v:
                lines.append(f"{pad}{k}:")
                lines += _render(v, indent + 1)
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
    else:
        lines.append(f"{pad}{_scalar(value)}")
    return lines


def _scalar(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list | tuple):
        return ", ".join(_scalar(x) for x in v) if v else "-"
    if isinstance(v, Mapping):
        return "-"
    return str(v)


def _check_plot_target(path: Path, overwrite: bool) -> None:
    from matplotlib.figure import Figure

    from anatomy.errors import AnatomyError

    _refuse_existing(path, overwrite, store=False)
    formats = Figure().canvas.get_supported_filetypes()
    suffix = path.suffix.lstrip(".").lower()
    if suffix not in formats:
        raise AnatomyError(
            f"cannot draw a plot into {path}: unknown image format {suffix!r}; use one of "
            f"{', '.join(sorted(formats))}"
        )
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the folder of --plot {path} does not exist; create it first")


def _verify(model: Any, path: Path) -> None:
    """Recompute the content hash and refuse a store whose arrays no longer match it."""
    from anatomy.errors import StoreValidationError
    from anatomy.store import content_hash

    recorded = model.attrs.get("content_hash")
    actual = content_hash(model)
    if recorded != actual:
        raise StoreValidationError(
            f"{path}: the arrays hash to {actual[:12]}, but the store records content hash "
            f"{str(recorded)[:12]}: its content was changed after it was written; rebuild it"
        )


def _info(args: argparse.Namespace) -> int:
    from anatomy.store import open_model

    if args.plot is not None:
        _check_plot_target(args.plot, args.overwrite)
    model = open_model(args.path, validate=True)
    if args.verify:
        _verify(model, args.path)
    summary = summarize_model(model)
    summary = {"path": str(args.path), "content_hash": model.attrs.get("content_hash"), **summary}
    if args.verify:
        summary["content_hash_verified"] = True
    if args.json:
        json.dump(summary, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("\n".join(_render(summary)) + "\n")
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plot_depth_profiles = _load("anatomy.plot", "plot_depth_profiles")
        fig = plot_depth_profiles(model)
        try:
            fig.savefig(args.plot, dpi=120)
        finally:
            plt.close(fig)
        sys.stderr.write(f"depth profiles written to {args.plot}\n")
    return 0


def _fmt_value(kind: str, v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.0f}" if kind in ("neuron_count", "post_all") else f"{v:.3f}"


def _calibrate(args: argparse.Namespace) -> int:
    from anatomy.store import open_model

    if args.plot is not None:
        _check_plot_target(args.plot, args.overwrite)
    model = open_model(args.path, validate=True)
    report = _load("wiring.anatomy_calibration", "calibration_report")(model)
    if args.json:
        json.dump({"path": str(args.path), **report}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        lines = [f"calibration of {args.path} (generator version "
                 f"{model.attrs.get('generator_version', '-')})",
                 f"{'target':<24} {'real':>10} {'model':>10} {'tolerance':>10}  result  source"]
        for r in report["results"]:
            tol = (f"±{r['tolerance']:.0%}" if r["relative"] else f"±{r['tolerance']:.3g}")
            res = {True: "pass", False: "FAIL", None: "n/a"}[r["passed"]]
            src = r["source"] if len(r["source"]) <= 60 else r["source"][:57] + "..."
            lines.append(f"{r['id']:<24} {_fmt_value(r['kind'], r['value']):>10} "
                         f"{_fmt_value(r['kind'], r['model_value']):>10} {tol:>10}  {res:<6}  "
                         f"{src}" + (f" ({r['reason']})" if r["reason"] else ""))
        lines.append(f"{report['n_passed']} passed, {report['n_failed']} failed, "
                     f"{report['n_not_applicable']} not applicable")
        sys.stdout.write("\n".join(lines) + "\n")
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = _load("anatomy.plot", "plot_bouton_calibration")(model)
        try:
            fig.savefig(args.plot, dpi=120)
        finally:
            plt.close(fig)
        sys.stderr.write(f"VPM bouton profile written to {args.plot}\n")
    if report["n_failed"]:
        failed = [r["id"] for r in report["results"] if r["passed"] is False]
        sys.stderr.write(f"wiring: error: {report['n_failed']} calibration target(s) failed: "
                         f"{', '.join(failed)}\n")
        return 1
    return 0
