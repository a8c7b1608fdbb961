"""``wiring connectome``: apply a wiring rule to a structural model and write the connectome.

``wiring connectome --anatomy PATH_OR_PRESET --rule NAME --theta 1,1,1 --seed N --out PATH
[--pre SELECTOR] [--post SELECTOR] [--sonata DIR] [--workers K] [--block-size N]
[--cluster KIND_OR_ADDRESS] [--cluster-config TOML] [--overwrite]``

Writes

- ``PATH``: the connectome store, computed block by block straight into the store
  (:func:`wiring.connectome.compute_connectome_to_store`: the connectome never has to fit in
  memory);
- ``<PATH without .zarr>_summary/`` next to it: ``probability_cell_type.{json,csv,png}`` and
  ``probability_layer.{json,csv,png}`` (connection probability between cell types / layers
  with the number of pairs behind each entry) and ``synapse_density.{csv,png}`` (expected
  synapse density by depth per postsynaptic cell type);
- with ``--sonata DIR``: a SONATA circuit folder (:func:`wiring.connectome.sonata.export_sonata`).

``wiring connectome info PATH [--verify] [--json]`` describes a written store: what it holds
(rule, θ, seed, anatomy hash, selectors, counts) and whether its attributes are sealed. Opening
checks the metadata, ``indptr`` and the seal of the attributes (an edited attribute is refused,
exit 1, one line naming it); ``--verify`` also reads every block of both matrices (each chunk's
checksum and every row index), so a damaged chunk is found now rather than halfway through a
summary or an export.

Every argument is checked (θ, rule, selectors, anatomy, existing outputs) before the computation
starts. Outputs are written to temporary siblings and renamed into place; the summaries and the
SONATA export are read from the finished temporary store a block at a time, and the store is
renamed before the summary folder, so a failed run leaves no store, and no summary folder, that
looks complete.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from pipelines.commands._argtypes import anatomy_parent, non_negative_int, positive_int, rule_parent
from pipelines.commands._cluster import add_cluster_arguments, cluster_config

__all__ = ["describe_store", "register", "summary_dir"]

log = logging.getLogger(__name__)


class _ConnectomeParser(argparse.ArgumentParser):
    """``wiring connectome``'s parser; ``wiring connectome info ...`` goes to :attr:`info`.

    The compute form's options (``--anatomy``, ``--rule``, ...) are required and shared with
    other commands through parent parsers, so ``info`` cannot be an argparse sub-command of it
    (argparse would still demand them); the first word selects the parser instead.
    """

    info: argparse.ArgumentParser

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        words = list(sys.argv[1:] if args is None else args)
        if words[:1] == ["info"]:
            return self.info.parse_known_args(words[1:], namespace)
        return super().parse_known_args(words, namespace)


def register(sub: Any) -> None:
    """Add ``wiring connectome`` (and ``wiring connectome info``) to the top-level sub-parsers."""
    p = sub.add_parser(
        "connectome",
        parents=[anatomy_parent(), rule_parent()],
        help="compute a connectome: synapse counts of every neuron pair for one theta",
        description="Apply a wiring rule with parameters theta to a structural model: expected "
        "and drawn synapse counts of every (pre, post) pair, connection-probability matrices, "
        "synapse density by depth, and optionally a SONATA export. `wiring connectome info "
        "PATH [--verify] [--json]` describes a written connectome store.",
        usage="%(prog)s --anatomy PATH_OR_PRESET --rule RULE --theta THETA --seed SEED --out OUT "
        "[options]\n       %(prog)s info PATH [--verify] [--json]",
    )
    p.__class__ = _ConnectomeParser  # 'info' first: see _ConnectomeParser
    i = argparse.ArgumentParser(
        prog=f"{p.prog} info",
        description="Describe a connectome store: rule, theta, seed, anatomy hash, selectors, "
        "counts, and whether its attributes are sealed. Opening refuses a store whose "
        "attributes were edited after it was written.",
    )
    i.add_argument("path", type=Path, help="connectome store")
    i.add_argument("--verify", action="store_true",
                   help="also read every block of both matrices (checksums and row indices)")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(handler=_info)
    p.info = i
    p.add_argument("--theta", required=True, help="comma-separated parameters, e.g. 1,1,1")
    p.add_argument("--seed", type=non_negative_int, required=True,
                   help="seed of the synapse draws")
    p.add_argument("--out", type=Path, required=True, help="output store (e.g. connectome.zarr)")
    p.add_argument("--pre", default=None, metavar="SELECTOR",
                   help="presynaptic neurons, e.g. 'VPM' or 'cell_type=L4ss;region=column' "
                   "(default: all)")
    p.add_argument("--post", default=None, metavar="SELECTOR",
                   help="postsynaptic neurons (default: all)")
    p.add_argument("--sonata", type=Path, default=None, metavar="DIR",
                   help="also export a SONATA circuit into this folder")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="dask worker threads (with --cluster local: worker processes)")
    add_cluster_arguments(p, default="threads in this process")
    p.add_argument("--block-size", type=positive_int, default=None,
                   help="postsynaptic neurons per task (default: balanced by work)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(handler=_run)


def summary_dir(out: Path) -> Path:
    """The summary folder written next to the store ``out``."""
    stem = out.name[: -len(".zarr")] if out.name.endswith(".zarr") else out.name
    return out.parent / f"{stem}_summary"


def _parse_theta(text: str) -> list[float]:
    from wiring.errors import InvalidParameterError

    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidParameterError(
            f"--theta {text!r} is not a comma-separated list of numbers, e.g. 1,1,1"
        ) from None


def _check_outputs(paths: list[Path], overwrite: bool) -> None:
    from wiring.errors import OutputExistsError

    for path in paths:
        if (path.exists() or path.is_symlink()) and not overwrite:
            raise OutputExistsError(
                f"{path} already exists; choose another --out/--sonata or pass --overwrite"
            )
        if not path.parent.is_dir():
            raise FileNotFoundError(f"output folder {path.parent} does not exist; create it first")


def _open_anatomy(text: str, seed: int) -> Any:
    path = Path(text)
    if path.exists():
        from anatomy.store import open_model

        return open_model(path)
    from anatomy.catalogue import code_of
    from anatomy.generate import PRESETS, build_model

    try:
        code_of(text, tuple(PRESETS), kind="preset")
    except Exception as err:
        from anatomy.errors import UnknownNameError

        raise UnknownNameError(
            f"--anatomy {text!r} is neither an existing store nor a preset; {err}"
        ) from None
    return build_model(text, seed=seed)


def _run(args: argparse.Namespace) -> int:
    from anatomy.storeguard import remove_leftovers, store_lock
    from wiring.measurements.selectors import parse_selector
    from wiring.rules.base import check_theta_in_domain
    from wiring.rules.registry import get_rule

    # everything that can be checked without the model, first
    rule = get_rule(args.rule)
    theta = check_theta_in_domain(rule, _parse_theta(args.theta))[0]
    pre = parse_selector(args.pre) if args.pre is not None else None
    post = parse_selector(args.post) if args.post is not None else None
    out: Path = args.out
    summary = summary_dir(out)
    outputs = [out, summary] + ([args.sonata] if args.sonata is not None else [])
    _check_outputs(outputs, args.overwrite)
    if summary.exists() and not (summary / "probability_cell_type.json").is_file():
        from wiring.errors import OutputExistsError

        raise OutputExistsError(
            f"{summary} exists and is not a connectome summary; remove it or choose another --out"
        )
    if args.overwrite:  # what would be refused at write time is refused before the work
        from wiring.connectome.compute import _check_target as check_store
        from wiring.connectome.sonata import _check_target as check_sonata

        check_store(out, overwrite=True)
        if args.sonata is not None:
            check_sonata(args.sonata, overwrite=True)
    model = _open_anatomy(args.anatomy, args.anatomy_seed)
    with contextlib.ExitStack() as locks:  # one writer per output for the whole command
        for path in outputs:
            locks.enter_context(store_lock(path, what="output"))
            remove_leftovers(path)
        return _write_outputs(args, model, rule, theta, pre, post, out, summary)


def _write_outputs(args: argparse.Namespace, model: Any, rule: Any, theta: Any, pre: Any,
                   post: Any, out: Path, summary: Path) -> int:
    from anatomy.atomic import move_into_place
    from wiring.connectome import open_connectome

    # the connectome streams block by block into a temporary store, is summarized and exported
    # from it a block at a time, and is renamed into place last
    tmp_store = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp = summary.parent / f".{summary.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        _compute(model, rule, theta, tmp_store, pre, post, args)
        conn = open_connectome(tmp_store, lazy=True)
        conn.progress = bool(args.progress)  # summaries and export read it block by block
        tmp.mkdir()
        _write_summary(conn, model, tmp)
        if args.sonata is not None:
            from wiring.connectome.sonata import export_sonata

            export_sonata(conn, model, args.sonata, overwrite=args.overwrite)
        counts = (conn.n_pre, conn.n_post, conn.n_connections, conn.n_synapses)
        move_into_place(tmp_store, out)
        log.info("wrote connectome to %s", out)
        move_into_place(tmp, summary)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(tmp_store, ignore_errors=True)
    n_pre, n_post, n_connections, n_synapses = counts
    sys.stdout.write(
        f"connectome of {n_pre} pre x {n_post} post neurons: "
        f"{n_connections} connections, {n_synapses} synapses "
        f"(rule {conn.rule['name']}, theta {','.join(f'{v:g}' for v in conn.theta)}, "
        f"seed {conn.seed}); wrote {out} and {summary}"
        + (f" and {args.sonata}" if args.sonata is not None else "")
        + "\n"
    )
    return 0


def _compute(model: Any, rule: Any, theta: Any, store: Path, pre: Any, post: Any,
             args: argparse.Namespace) -> None:
    """The connectome into ``store``: on dask threads, or on the ``--cluster`` (released as soon
    as the blocks are done: the summaries and the export run here)."""
    from wiring.connectome import compute_connectome_to_store

    kind = args.cluster or "threads"
    if kind == "threads":
        compute_connectome_to_store(
            model, rule, theta, store, seed=args.seed, pre=pre, post=post,
            block_size=args.block_size, workers=args.workers, progress=args.progress,
            announce=False,
        )
        return
    from pipelines.cluster import connect

    cfg = cluster_config(args, kind=kind, workers=args.workers if kind == "local" else 0)
    with connect(cfg) as client:
        assert client is not None  # only "threads" yields None
        # blocks are planned for the threads connected now (results do not depend on it)
        threads = max(1, sum(client.nthreads().values()))
        compute_connectome_to_store(
            model, rule, theta, store, seed=args.seed, pre=pre, post=post,
            block_size=args.block_size, workers=threads, client=client, progress=args.progress,
            announce=False,
        )


def describe_store(store: Any, *, verify: bool = False) -> dict[str, Any]:
    """What ``wiring connectome info`` prints (JSON-native); ``verify`` reads every block."""
    from wiring._json import json_native

    known = ("pre_selector", "post_selector", "synapse_model", "autapses")
    out: dict[str, Any] = {
        "path": str(store.path),
        "rule": dict(store.rule),
        "theta": [float(v) for v in store.theta],
        "seed": store.seed,
        "anatomy_hash": store.anatomy_hash,
        **{k: store.attrs[k] for k in known if k in store.attrs},
        "n_pre": store.n_pre,
        "n_post": store.n_post,
        "n_pairs_sharing_a_voxel": store.n_pairs,
        "n_connections": store.n_connections,
        "attributes_sealed": store.sealed,
    }
    if verify:
        n_blocks = n_synapses = 0
        for block in store.iter_blocks():
            n_blocks += 1
            n_synapses += int(block.synapses.data.sum(dtype="int64"))
        out["n_synapses"] = n_synapses
        out["verified"] = f"every chunk of both matrices read ({n_blocks} blocks)"
    return dict(json_native(out))


def _info(args: argparse.Namespace) -> int:
    import json

    from wiring.connectome import open_connectome

    store = open_connectome(args.path, lazy=True)
    summary = describe_store(store, verify=args.verify)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for key, value in summary.items():
        if key == "attributes_sealed":
            value = ("yes (checked on opening)" if value else
                     "no (written before attributes were sealed; edits cannot be detected)")
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        sys.stdout.write(f"{key}: {value}\n")
    return 0


def _write_summary(conn: Any, model: Any, folder: Path) -> None:
    import numpy as np

    from wiring.connectome import synapse_density_by_depth, type_probability_matrices
    from wiring.connectome.plots import plot_synapse_density, plot_type_probability

    for by, tp in type_probability_matrices(conn, model, by=("cell_type", "layer")).items():
        tp.to_json(folder / f"probability_{by}.json")
        tp.to_csv(folder / f"probability_{by}.csv")
        plot_type_probability(tp).savefig(folder / f"probability_{by}.png", dpi=120)
    dens = synapse_density_by_depth(conn)
    rows = ["depth_um," + ",".join(dens.cell_types)]
    for k, depth in enumerate(dens.depth_um):
        vals = ",".join("" if np.isnan(v) else repr(float(v)) for v in dens.density_per_mm3[:, k])
        rows.append(f"{depth!r},{vals}")
    (folder / "synapse_density.csv").write_text("\n".join(rows) + "\n")
    plot_synapse_density(dens).savefig(folder / "synapse_density.png", dpi=120)
