"""Export a connectome as a SONATA circuit: a nodes file, an edges file and their type tables.

SONATA (Dai et al. 2020, https://github.com/AllenInstitute/sonata) stores a network as HDF5 node
and edge populations plus CSV type tables. :func:`export_sonata` writes, into one folder:

``nodes.h5``
    ``/nodes/<node_population>/``: ``node_type_id`` (= cell-type code), ``node_group_id`` (all
    0), ``node_group_index`` (0..N-1) and group ``0`` with ``x``, ``y``, ``z`` (µm; ``z`` is the
    depth below the pia), ``model_type`` (``point_neuron``; ``virtual`` for the thalamic
    barreloid neurons, which receive no synapses here), ``cell_type``, ``layer``, ``region``,
    ``column`` (strings), ``excitatory`` (uint8) and ``neuron_id`` (the model's external id).
    Node ids are the model's neuron indices: every neuron of the model is a node, selected or not.
``node_types.csv``
    Space-separated ``node_type_id pop_name`` (one row per cell type).
``edges.h5``
    ``/edges/<edge_population>/``: ``source_node_id`` and ``target_node_id`` (uint64, each with
    attribute ``node_population``), ``edge_type_id`` (all 0), ``edge_group_id`` (all 0),
    ``edge_group_index``, group ``0`` with ``nsyns`` (uint32 synapse count of the connection)
    and ``expected_synapses`` (float32, the rule's lambda); one edge per connected pair, sorted
    by target then source. ``indices/source_to_target`` and ``indices/target_to_source`` hold
    ``node_id_to_ranges`` and ``range_to_edge_id`` as the specification defines them.
``edge_types.csv``
    Space-separated ``edge_type_id rule theta``.
``circuit_config.json``
    A SONATA circuit configuration naming the four files (relative paths).

Both HDF5 files carry the root attributes ``magic`` (0x0A7A) and ``version`` (0, 1).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from anatomy.atomic import move_into_place
from anatomy.catalogue import CELL_TYPES, LAYERS, REGIONS
from anatomy.model import StructuralModel
from anatomy.storeguard import remove_leftovers, store_lock
from wiring.connectome.compute import Connectome
from wiring.connectome.store import ConnectomeStore
from wiring.connectome.summaries import check_same_anatomy
from wiring.errors import InvalidParameterError, OutputExistsError

__all__ = ["SONATA_FILES", "export_sonata"]

logger = logging.getLogger(__name__)

#: Files :func:`export_sonata` writes into its output folder.
SONATA_FILES: tuple[str, ...] = (
    "nodes.h5",
    "node_types.csv",
    "edges.h5",
    "edge_types.csv",
    "circuit_config.json",
)
_MAGIC = 0x0A7A


def export_sonata(
    conn: Connectome | ConnectomeStore,
    model: StructuralModel,
    out_dir: str | os.PathLike[str],
    *,
    node_population: str = "cortex",
    edge_population: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a connectome and its model's neurons as a SONATA circuit folder (see module docs).

    Parameters
    ----------
    conn
        The connectome (computed on ``model``), in memory or a lazily opened store
        (``open_connectome(path, lazy=True)``), which is exported a block at a time.
    model
        Its structural model (node positions and attributes).
    out_dir
        Folder to create; written atomically (temporary sibling, then rename).
    node_population
        Name of the node population holding every model neuron.
    edge_population
        Name of the edge population; default ``"<node_population>__<node_population>__chemical"``.
    overwrite
        Replace an existing SONATA folder written by this function.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    OutputExistsError
        ``out_dir`` exists (without ``overwrite``, or it is not an export of this function).
    StoreMismatchError
        The connectome was computed on another model.
    """
    import h5py

    out = Path(out_dir)
    edge_pop = edge_population or f"{node_population}__{node_population}__chemical"
    for name, value in (("node_population", node_population), ("edge_population", edge_pop)):
        if not value or "/" in value or not value.isprintable():
            raise InvalidParameterError(
                f"{name} = {value!r} is not a valid SONATA population name; use letters, "
                f"digits and underscores"
            )
    check_same_anatomy(conn, model, use="export it with the model it was computed from")
    _check_target(out, overwrite=overwrite)
    with store_lock(out, what="SONATA folder"):
        remove_leftovers(out)
        _check_target(out, overwrite=overwrite)
        _export(h5py, conn, model, out, node_population, edge_pop)
    logger.info("wrote SONATA circuit (%d nodes, %d edges) to %s", model.n_neurons,
                conn.n_connections, out)
    return out


def _export(h5py: Any, conn: Any, model: Any, out: Path, node_population: str,
            edge_pop: str) -> None:
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        _write_nodes(h5py, tmp / "nodes.h5", model, node_population)
        _write_edges(h5py, tmp / "edges.h5", conn, model.n_neurons, node_population, edge_pop)
        lines = ["node_type_id pop_name"] + [f"{k} {name}" for k, name in enumerate(CELL_TYPES)]
        (tmp / "node_types.csv").write_text("\n".join(lines) + "\n")
        theta = ",".join(repr(float(v)) for v in conn.theta)
        (tmp / "edge_types.csv").write_text(
            f"edge_type_id rule theta\n0 {conn.rule.get('name', 'unknown')} {theta}\n"
        )
        config = {
            "manifest": {"$BASE_DIR": "."},
            "networks": {
                "nodes": [{"nodes_file": "$BASE_DIR/nodes.h5",
                           "node_types_file": "$BASE_DIR/node_types.csv",
                           "populations": {node_population: {"type": "point_neuron"}}}],
                "edges": [{"edges_file": "$BASE_DIR/edges.h5",
                           "edge_types_file": "$BASE_DIR/edge_types.csv",
                           "populations": {edge_pop: {"type": "chemical"}}}],
            },
            "components": {},
            "wiring_sbi": {
                "rule": dict(conn.rule),
                "theta": [float(v) for v in conn.theta],
                "seed": int(conn.seed),
                "anatomy_hash": conn.anatomy_hash,
            },
        }
        (tmp / "circuit_config.json").write_text(json.dumps(config, indent=2) + "\n")
        move_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_target(out: Path, *, overwrite: bool) -> None:
    if not out.exists():
        if not out.parent.is_dir():
            raise FileNotFoundError(f"output folder {out.parent} does not exist; create it first")
        return
    if not overwrite:
        raise OutputExistsError(
            f"{out} exists; choose another SONATA folder or pass overwrite=True (--overwrite)"
        )
    if not (out / "circuit_config.json").is_file() or not (out / "edges.h5").is_file():
        raise OutputExistsError(
            f"{out} exists and is not a SONATA export of this package; refusing to replace it "
            f"even with overwrite: remove it yourself or choose another folder"
        )


def _root_attrs(f: Any) -> None:
    f.attrs["magic"] = np.uint32(_MAGIC)
    f.attrs["version"] = np.array([0, 1], dtype=np.uint32)


def _strings(h5py: Any, group: Any, name: str, values: npt.NDArray[Any]) -> None:
    group.create_dataset(name, data=np.asarray(values, dtype=object),
                         dtype=h5py.string_dtype(encoding="utf-8"))


def _write_nodes(h5py: Any, path: Path, model: StructuralModel, pop: str) -> None:
    nrn = model.neurons
    n = len(nrn)
    with h5py.File(path, "w") as f:
        _root_attrs(f)
        g = f.create_group(f"nodes/{pop}")
        g.create_dataset("node_type_id", data=nrn.cell_type.astype(np.int64))
        g.create_dataset("node_group_id", data=np.zeros(n, dtype=np.uint32))
        g.create_dataset("node_group_index", data=np.arange(n, dtype=np.uint64))
        g0 = g.create_group("0")
        soma = np.asarray(nrn.soma_um, dtype=np.float64)
        for k, axis in enumerate("xyz"):
            g0.create_dataset(axis, data=soma[:, k])
        vpm = np.asarray(nrn.region) == REGIONS.index("barreloid")
        _strings(h5py, g0, "model_type", np.where(vpm, "virtual", "point_neuron"))
        _strings(h5py, g0, "cell_type", np.asarray(CELL_TYPES)[nrn.cell_type])
        layer = np.asarray(nrn.layer, dtype=np.int64)
        _strings(h5py, g0, "layer", np.where(layer >= 0, np.asarray(LAYERS)[np.maximum(layer, 0)],
                                             "none"))
        _strings(h5py, g0, "region", np.asarray(REGIONS)[nrn.region])
        col = np.asarray(nrn.column, dtype=np.int64)
        names = np.asarray([*list(nrn.column_names), "none"])
        _strings(h5py, g0, "column", names[np.where(col >= 0, col, len(nrn.column_names))])
        exc = np.asarray([name != "INH" for name in CELL_TYPES])[nrn.cell_type]
        g0.create_dataset("excitatory", data=exc.astype(np.uint8))
        g0.create_dataset("neuron_id", data=np.asarray(nrn.ids, dtype=np.int64))


def _index(
    node_of_edge: npt.NDArray[Any], n_nodes: int
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """SONATA index of edges by one node column: ``node_id_to_ranges``, ``range_to_edge_id``.

    A range is a maximal run of consecutive edge ids with the same node; ranges are grouped by
    node (in edge order within a node), and ``node_id_to_ranges[n]`` is the half-open interval
    of node n's ranges (empty for nodes without edges). A compiled counting sort: two passes,
    no temporaries of the number of edges.
    """
    if "index" not in _KERNELS:
        import numba

        @numba.njit(nogil=True, cache=False)
        def index_kernel(nodes: Any, n: int) -> Any:  # pragma: no cover - compiled
            e = nodes.shape[0]
            per_node = np.zeros(n + 1, dtype=np.int64)
            for k in range(e):
                if k == 0 or nodes[k] != nodes[k - 1]:
                    per_node[nodes[k] + 1] += 1
            for i in range(n):
                per_node[i + 1] += per_node[i]
            node_to_ranges = np.empty((n, 2), dtype=np.uint64)
            for i in range(n):
                node_to_ranges[i, 0] = per_node[i]
                node_to_ranges[i, 1] = per_node[i + 1]
            range_to_edge = np.empty((per_node[n], 2), dtype=np.uint64)
            fill = per_node[:n].copy()
            k = 0
            while k < e:
                node = nodes[k]
                first = k
                while k < e and nodes[k] == node:
                    k += 1
                range_to_edge[fill[node], 0] = first
                range_to_edge[fill[node], 1] = k
                fill[node] += 1
            return node_to_ranges, range_to_edge

        _KERNELS["index"] = index_kernel
    ranges, edges = _KERNELS["index"](node_of_edge, int(n_nodes))
    return np.asarray(ranges, dtype=np.uint64), np.asarray(edges, dtype=np.uint64)


_KERNELS: dict[str, Any] = {}


def _write_edges(
    h5py: Any, path: Path, conn: Connectome | ConnectomeStore, n_nodes: int, node_pop: str,
    edge_pop: str,
) -> None:
    """Edges in CSC order (sorted by target, then source), written a block of targets at a time.

    Besides the file's datasets, memory holds the source and target node of every edge (4 bytes
    each while node ids fit) for the two indices, and one block of the connectome.
    """
    e = conn.n_connections
    node_dtype = np.uint32 if n_nodes < 2**32 else np.uint64
    source = np.empty(e, dtype=node_dtype)
    target = np.empty(e, dtype=node_dtype)
    with h5py.File(path, "w") as f:
        _root_attrs(f)
        g = f.create_group(f"edges/{edge_pop}")
        src = g.create_dataset("source_node_id", shape=(e,), dtype=np.uint64)
        src.attrs["node_population"] = node_pop
        tgt = g.create_dataset("target_node_id", shape=(e,), dtype=np.uint64)
        tgt.attrs["node_population"] = node_pop
        g.create_dataset("edge_type_id", shape=(e,), dtype=np.int64, fillvalue=0)
        g.create_dataset("edge_group_id", shape=(e,), dtype=np.uint32, fillvalue=0)
        group_index = g.create_dataset("edge_group_index", shape=(e,), dtype=np.uint64)
        g0 = g.create_group("0")
        nsyns = g0.create_dataset("nsyns", shape=(e,), dtype=np.uint32)
        expected = g0.create_dataset("expected_synapses", shape=(e,), dtype=np.float32)
        pos = 0
        for blk in conn.iter_blocks():
            syn, lam = blk.synapses, blk.expected
            syn.sort_indices()
            lam.sort_indices()
            k = syn.nnz
            col = np.repeat(np.arange(syn.shape[1], dtype=np.int64), np.diff(syn.indptr))
            source[pos : pos + k] = conn.pre[syn.indices]
            target[pos : pos + k] = conn.post[blk.start + col]
            src[pos : pos + k] = source[pos : pos + k]
            tgt[pos : pos + k] = target[pos : pos + k]
            group_index[pos : pos + k] = np.arange(pos, pos + k, dtype=np.uint64)
            nsyns[pos : pos + k] = syn.data.astype(np.uint32)
            # expected count of every connected pair: its position among the block's lambdas
            lam_col = np.repeat(np.arange(lam.shape[1], dtype=np.int64), np.diff(lam.indptr))
            lam_key = lam_col * conn.n_pre + lam.indices
            del lam_col
            at = np.searchsorted(lam_key, col * conn.n_pre + syn.indices)
            expected[pos : pos + k] = np.asarray(lam.data, dtype=np.float32)[at]
            pos += k
        for name, nodes in (("source_to_target", source), ("target_to_source", target)):
            ranges, edges = _index(nodes, n_nodes)
            ig = g.create_group(f"indices/{name}")
            ig.create_dataset("node_id_to_ranges", data=ranges)
            ig.create_dataset("range_to_edge_id", data=edges)
            del ranges, edges
