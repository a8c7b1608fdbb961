"""Summaries of a connectome: connection probability by cell type or layer, synapse density by
depth. Public through :mod:`wiring.connectome`; see its module docstring for the conventions.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from anatomy.catalogue import CELL_TYPES, LAYERS, REGIONS
from anatomy.model import StructuralModel
from wiring._typing import FloatArray, IntArray
from wiring.errors import InvalidParameterError, StoreMismatchError

if TYPE_CHECKING:
    from wiring.connectome.compute import Connectome
    from wiring.connectome.store import ConnectomeStore

__all__ = ["DepthDensity", "TypeProbability", "synapse_density_by_depth",
           "type_probability_matrices", "type_probability_matrix"]


@dataclass(frozen=True, kw_only=True)
class TypeProbability:
    """Connection probabilities between groups of neurons (cell types or layers).

    Arrays have shape (n_pre_groups, n_post_groups). ``observed`` is the fraction of pairs with
    at least one synapse in this connectome, ``expected`` the mean of ``1 - exp(-lambda)`` (the
    probability the rule gives), ``mean_synapses`` the mean synapse count per pair; all are NaN
    where a group pair has no pairs.
    """

    by: str
    pre_labels: tuple[str, ...]
    post_labels: tuple[str, ...]
    n_pairs: IntArray
    n_connected: IntArray
    observed: FloatArray
    expected: FloatArray
    mean_synapses: FloatArray

    def to_dict(self) -> dict[str, Any]:
        """JSON-native form (NaN becomes None)."""

        def mat(a: npt.NDArray[Any]) -> list[list[Any]]:
            return [[None if isinstance(v, float) and np.isnan(v) else v for v in row]
                    for row in a.tolist()]

        return {
            "by": self.by,
            "pre_labels": list(self.pre_labels),
            "post_labels": list(self.post_labels),
            "n_pairs": mat(self.n_pairs),
            "n_connected": mat(self.n_connected),
            "observed": mat(self.observed),
            "expected": mat(self.expected),
            "mean_synapses": mat(self.mean_synapses),
        }

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The JSON text of :meth:`to_dict`; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str:
        """Long-format CSV (one row per group pair); also written to ``path`` when given."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["pre", "post", "n_pairs", "n_connected", "observed", "expected",
                    "mean_synapses"])
        for a, pl in enumerate(self.pre_labels):
            for b, ql in enumerate(self.post_labels):
                w.writerow([pl, ql, int(self.n_pairs[a, b]), int(self.n_connected[a, b]),
                            _fmt(self.observed[a, b]), _fmt(self.expected[a, b]),
                            _fmt(self.mean_synapses[a, b])])
        text = buf.getvalue()
        if path is not None:
            Path(path).write_text(text)
        return text


def _fmt(v: float) -> str:
    return "" if np.isnan(v) else repr(float(v))


def check_same_anatomy(
    conn: Connectome | ConnectomeStore, model: StructuralModel, *, use: str
) -> None:
    """Raise :class:`StoreMismatchError` unless ``conn`` was computed on ``model``.

    ``use`` ends the message with what to do instead (e.g. "pass the model it was computed
    from"). Shared by the summaries and the SONATA export.
    """
    h = model.attrs.get("content_hash")
    if h and conn.anatomy_hash and h != conn.anatomy_hash:
        raise StoreMismatchError(
            f"the connectome was computed on anatomy {conn.anatomy_hash[:12]}..., not on this "
            f"model ({str(h)[:12]}...); {use}"
        )
    top = int(max(conn.pre.max(initial=-1), conn.post.max(initial=-1)))
    if top >= model.n_neurons:
        raise StoreMismatchError(
            f"the connectome refers to neuron {top} but the model has {model.n_neurons} neurons"
        )


def _groups(model: StructuralModel, by: str) -> tuple[IntArray, tuple[str, ...]]:
    """Group code of every model neuron and the labels, in catalogue order."""
    if by == "cell_type":
        return model.neurons.cell_type.astype(np.int64), CELL_TYPES
    if by == "layer":
        layer = model.neurons.layer.astype(np.int64)
        region = model.neurons.region.astype(np.int64)
        # neurons outside the cortex (layer -1) are grouped by their region, e.g. barreloid
        code = np.where(layer >= 0, layer, len(LAYERS) + region)
        return code, LAYERS + REGIONS
    raise InvalidParameterError(f"by = {by!r} is not allowed; expected 'cell_type' or 'layer'")


def type_probability_matrix(
    conn: Connectome | ConnectomeStore,
    model: StructuralModel,
    *,
    by: Literal["cell_type", "layer"] = "cell_type",
) -> TypeProbability:
    """Connection probability between cell types (or layers) with the number of pairs behind it.

    ``conn`` may be a lazily opened store (``open_connectome(path, lazy=True)``), which is read
    a block of postsynaptic neurons at a time. Only groups present in the pre (rows) and post
    (columns) selections appear. Pairs of a neuron with itself are not counted unless the
    connectome includes autapses.

    Raises
    ------
    StoreMismatchError
        The connectome was computed on another model.
    """
    return type_probability_matrices(conn, model, by=(by,))[by]


def type_probability_matrices(
    conn: Connectome | ConnectomeStore,
    model: StructuralModel,
    *,
    by: Sequence[Literal["cell_type", "layer"]] = ("cell_type", "layer"),
) -> dict[str, TypeProbability]:
    """:func:`type_probability_matrix` for several groupings in one pass over the connectome."""
    check_same_anatomy(conn, model, use="pass the model it was computed from")
    autapse_pairs = (
        (np.zeros(0, np.int64), np.zeros(0, np.int64)) if conn.attrs.get("autapses", False)
        else np.intersect1d(conn.pre, conn.post, return_indices=True)[1:]
    )
    # all groupings in one compiled pass per block: group codes stacked, sums padded
    gp_all = np.zeros((len(by), len(conn.pre)), dtype=np.int64)
    gq_all = np.zeros((len(by), len(conn.post)), dtype=np.int64)
    groupings = []
    for k, name in enumerate(by):
        code, labels = _groups(model, name)
        pre_groups, gp_all[k] = np.unique(code[conn.pre], return_inverse=True)
        post_groups, gq_all[k] = np.unique(code[conn.post], return_inverse=True)
        na, nb = len(pre_groups), len(post_groups)
        n_pairs = np.outer(np.bincount(gp_all[k], minlength=na),
                           np.bincount(gq_all[k], minlength=nb))
        ip, iq = autapse_pairs
        np.subtract.at(n_pairs, (gp_all[k][ip], gq_all[k][iq]), 1)
        groupings.append((name, labels, pre_groups, post_groups, n_pairs))
    na_max = max((len(g[2]) for g in groupings), default=1)
    nb_max = max((len(g[3]) for g in groupings), default=1)
    # per grouping: connected pairs, synapses, expected connected pairs
    acc = np.zeros((len(by), 3, na_max, nb_max))
    kernel = _group_sums_kernel()
    for blk in conn.iter_blocks():  # a connectome store is read a block at a time
        syn, lam = blk.synapses, blk.expected
        kernel(syn.indptr, syn.indices, syn.data, blk.start, gp_all, gq_all, acc, True)
        kernel(lam.indptr, lam.indices, lam.data, blk.start, gp_all, gq_all, acc, False)
    out: dict[str, TypeProbability] = {}
    for k, (name, labels, pre_groups, post_groups, n_pairs) in enumerate(groupings):
        sums = acc[k, :, : len(pre_groups), : len(post_groups)]
        n_conn = sums[0].round().astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            denom = np.where(n_pairs > 0, n_pairs, np.nan)
            out[name] = TypeProbability(
                by=name,
                pre_labels=tuple(labels[int(g)] for g in pre_groups),
                post_labels=tuple(labels[int(g)] for g in post_groups),
                n_pairs=n_pairs.astype(np.int64),
                n_connected=n_conn,
                observed=n_conn / denom,
                expected=sums[2] / denom,
                mean_synapses=sums[1] / denom,
            )
    return out


_KERNEL: dict[str, Any] = {}


def _group_sums_kernel() -> Any:
    """Compiled pass over a CSC block adding its entries to (pre group, post group) sums.

    ``gp`` (G, n_pre) and ``gq`` (G, n_post) hold the group codes of G groupings; ``sums``
    (G, 3, na, nb). Synapse blocks add 1 and the count to ``sums[g, 0]`` and ``sums[g, 1]``;
    expected blocks add ``1 - exp(-lambda)`` (computed once per entry) to ``sums[g, 2]``. One
    pass, no temporaries of the block's size.
    """
    if "sums" not in _KERNEL:
        import numba

        @numba.njit(nogil=True, cache=False)
        def sums_kernel(
            indptr: Any, indices: Any, data: Any, start: int, gp: Any, gq: Any, sums: Any,
            synapses: bool,
        ) -> None:  # pragma: no cover - compiled
            n_g = gp.shape[0]
            for c in range(len(indptr) - 1):
                j = start + c
                for e in range(indptr[c], indptr[c + 1]):
                    i = indices[e]
                    if synapses:
                        v = float(data[e])
                        for g in range(n_g):
                            sums[g, 0, gp[g, i], gq[g, j]] += 1.0
                            sums[g, 1, gp[g, i], gq[g, j]] += v
                    else:
                        p = -np.expm1(-float(data[e]))
                        for g in range(n_g):
                            sums[g, 2, gp[g, i], gq[g, j]] += p

        _KERNEL["sums"] = sums_kernel
    return _KERNEL["sums"]


@dataclass(frozen=True, kw_only=True)
class DepthDensity:
    """Expected synapse density by cortical depth, per postsynaptic cell type.

    ``density_per_mm3`` (n_types, n_bins) is the expected number of synapses onto neurons of a
    type in the voxels of a depth bin divided by the bins' volume; ``expected_synapses`` the
    undivided sums; ``depth_um`` (n_bins,) the bin centers below the pia.
    """

    cell_types: tuple[str, ...]
    depth_um: FloatArray
    density_per_mm3: FloatArray
    expected_synapses: FloatArray


def synapse_density_by_depth(
    conn: Connectome | ConnectomeStore, *, cell_types: Sequence[str] | None = None
) -> DepthDensity:
    """Expected synapse density per depth bin for each postsynaptic cell type of the selection.

    The profile is computed with the connectome (see the module docstring); bins without voxels
    give NaN.
    """
    names = tuple(conn.attrs.get("cell_types", CELL_TYPES))
    wanted = tuple(cell_types) if cell_types is not None else tuple(
        conn.attrs.get("post_cell_types", names)
    )
    unknown = [c for c in wanted if c not in names]
    if unknown:
        raise InvalidParameterError(
            f"unknown cell type(s) {unknown}; known cell types are {', '.join(names)}"
        )
    rows = [names.index(c) for c in wanted]
    syn = conn.depth_profile[rows]
    vol_mm3 = conn.voxels_per_bin * conn.voxel_volume_um3 * 1e-9
    with np.errstate(invalid="ignore", divide="ignore"):
        density = syn / np.where(vol_mm3 > 0, vol_mm3, np.nan)
    edges = conn.depth_edges_um
    return DepthDensity(
        cell_types=wanted,
        depth_um=0.5 * (edges[:-1] + edges[1:]),
        density_per_mm3=density,
        expected_synapses=syn,
    )
