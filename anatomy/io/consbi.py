"""Import (and export) the DSO feature-table folder format of the research code of Boelts et al. 2023.

The format (see ``docs/formats/feature-tables.md``) lists one row per (pre neuron, post neuron,
shared voxel) in two whitespace-separated tables, one of integers and one of floats, plus one mask
file per measurement naming the rows of its population. Importing it gives a
:class:`~anatomy.model.StructuralModel` whose ``pre``/``post``/``post_all`` reproduce every row
exactly, and whose ``populations`` are the masks' populations (every unique pre id × every unique
post id of the mask rows, pairs without shared voxels included).

The folder holds no voxel coordinates: voxels are renumbered ``0..V-1`` along a (V, 1, 1) grid in
increasing order of their original ids (the range is kept in ``attrs``), with the depth column as
``voxel_depth_um``. Soma positions are unknown (NaN); neurons without a cell-type code are taken
as VPM (counted in ``attrs['untyped_neurons_as_vpm']``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from anatomy.catalogue import CELL_TYPES, LAYERS, REGIONS
from anatomy.errors import FormatError
from anatomy.grid import VoxelGrid
from anatomy.hashing import content_hash
from anatomy.model import NeuronPopulation, Neurons, StructuralModel, VoxelMajorCounts

__all__ = [
    "CONSBI_CELL_TYPES",
    "DEFAULT_EXPERIMENT",
    "ImportedTables",
    "first_author_surname",
    "import_feature_tables",
    "measurement_labels",
    "read_feature_tables",
    "write_feature_tables",
]

log = logging.getLogger(__name__)

#: Post cell-type codes of the format (column 6), mapped to this package's cell types.
#: The format splits corticocortical L6 cells by sublayer (L6ACC, L6BCC); both are L6CC here.
CONSBI_CELL_TYPES: dict[int, str] = {
    0: "L2PY", 1: "L3PY", 2: "L4PY", 3: "L4sp", 4: "L4ss", 5: "L5IT", 6: "L5PT",
    7: "L6CC", 8: "L6CC", 9: "L6CT", 10: "INH", 11: "VPM",
}
_CODE_OF_TYPE: dict[str, int] = {"L6INV": 8, **{v: k for k, v in CONSBI_CELL_TYPES.items()}}
_CODE_OF_TYPE["L6CC"] = 7
#: Layer of each cell type where the type implies it (others: unknown, -1).
_LAYER_OF_TYPE: dict[str, str] = {
    "L2PY": "L2", "L3PY": "L3", "L4PY": "L4", "L4sp": "L4", "L4ss": "L4",
}
#: The experiment spec whose ``constraints`` list the paper's seven in vivo measurements.
DEFAULT_EXPERIMENT = "default_rule_invivo"
_N_INT, _N_FLOAT = 7, 4
_CHUNK_ROWS = 2_000_000


@dataclass(frozen=True, slots=True)
class ImportedTables:
    """The raw rows of a feature-table folder, validated, with their file names."""

    ints: npt.NDArray[np.int64]
    floats: npt.NDArray[np.float64]
    masks: dict[str, npt.NDArray[np.int64]]
    empirical: dict[str, dict[str, Any]]
    feature_set: str
    experiments: dict[str, list[str]]
    int_path: Path
    float_path: Path


def _read_table(path: Path, *, dtype: Any, ncols: int) -> npt.NDArray[Any]:
    """Read a headerless whitespace-separated table in chunks; errors name the file and line."""
    if not path.is_file():
        raise FormatError(f"{path}: file not found (expected by the feature-table format)")
    parts: list[npt.NDArray[Any]] = []
    first_line = 1
    with path.open("r", encoding="utf-8") as fh:
        while True:
            try:
                block = np.loadtxt(fh, dtype=dtype, ndmin=2, max_rows=_CHUNK_ROWS)
            except ValueError as err:
                raise FormatError(f"{path}: {_loadtxt_message(str(err), first_line)}") from err
            if block.size == 0:
                break
            if block.shape[1] != ncols:
                raise FormatError(
                    f"{path}, line {first_line}: {block.shape[1]} columns, expected {ncols}"
                )
            parts.append(block)
            first_line += len(block)
            if len(block) < _CHUNK_ROWS:
                break
    if not parts:
        return np.zeros((0, ncols), dtype=dtype)
    return np.concatenate(parts)


def _loadtxt_message(msg: str, first_line: int) -> str:
    """Rewrite numpy's 'at row N' (0-based within the chunk) into a 1-based file line number."""
    m = re.search(r"at row (\d+)", msg)
    if m:
        # numpy counts rows from 1 in column-count errors and from 0 in conversion errors
        one_based = "number of columns" in msg
        line = first_line + int(m.group(1)) - (1 if one_based else 0)
        msg = msg[: m.start()] + f"at line {line}" + msg[m.end() :]
        return f"line {line}: {msg}"
    return msg


def _read_experiments(folder: Path) -> dict[str, list[str]]:
    """Measurement IDs (``constraints``) of every experiment spec, by ``identifier``."""
    spec = folder / "inference_experiments_local.json"
    if not spec.is_file():
        return {}
    try:
        entries = json.loads(spec.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FormatError(f"{spec}, line {err.lineno}: invalid JSON: {err.msg}") from err
    out: dict[str, list[str]] = {}
    if not isinstance(entries, list):
        raise FormatError(f"{spec}: expected a list of experiment specs")
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict) or "identifier" not in entry:
            raise FormatError(f"{spec}: experiment spec {k} has no 'identifier'")
        constraints = entry.get("constraints", [])
        if not isinstance(constraints, list) or not all(isinstance(c, str) for c in constraints):
            raise FormatError(
                f"{spec}: experiment {entry['identifier']!r}: 'constraints' must be a list of "
                f"measurement IDs"
            )
        out[str(entry["identifier"])] = list(constraints)
    return out


def _find_feature_set(folder: Path, feature_set: str | None) -> str:
    if feature_set:
        return feature_set
    spec = folder / "inference_experiments_local.json"
    if spec.is_file():
        try:
            entries = json.loads(spec.read_text(encoding="utf-8"))
            for entry in entries:
                if entry.get("identifier") == "default_rule_invivo":
                    return str(entry["feature-set"])
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError) as err:
            raise FormatError(f"{spec}: not a list of experiment specs: {err}") from err
    candidates = sorted(
        p.name.removeprefix("features_").removesuffix("_int.tsv")
        for p in (folder / "features").glob("features_*_int.tsv")
    )
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise FormatError(f"{folder}: no features/features_<set>_int.tsv file found")
    raise FormatError(
        f"{folder}: several feature sets ({', '.join(candidates)}); pass feature_set= "
        f"(or --feature-set) to choose one"
    )


def _read_empirical(folder: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("empirical_data*.json")):
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise FormatError(f"{path}, line {err.lineno}: invalid JSON: {err.msg}") from err
        if not isinstance(records, list):
            raise FormatError(f"{path}: expected a list of measurement records")
        for i, rec in enumerate(records):
            if not isinstance(rec, dict) or "ID" not in rec:
                raise FormatError(f"{path}: record {i} has no 'ID' field")
            out[str(rec["ID"])] = rec
    return out


def read_feature_tables(folder: str | Path, *, feature_set: str | None = None) -> ImportedTables:
    """Read and validate the rows, masks and measurement records of a feature-table folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FormatError(f"{folder}: not a directory (expected a feature-table folder)")
    fset = _find_feature_set(folder, feature_set)
    int_path = folder / "features" / f"features_{fset}_int.tsv"
    float_path = folder / "features" / f"features_{fset}_float.tsv"
    ints = _read_table(int_path, dtype=np.int64, ncols=_N_INT)
    floats = _read_table(float_path, dtype=np.float64, ncols=_N_FLOAT)
    if len(ints) != len(floats):
        raise FormatError(
            f"{float_path}: {len(floats)} rows, but {int_path.name} has {len(ints)}; the two "
            f"tables must describe the same rows in the same order"
        )
    _check_rows(ints, floats, int_path, float_path)
    masks: dict[str, npt.NDArray[np.int64]] = {}
    prefix = f"mask_{fset}_"
    for path in sorted((folder / "masks").glob(f"{prefix}*.txt")):
        mid = path.name.removeprefix(prefix).removesuffix(".txt")
        rows = _read_table(path, dtype=np.int64, ncols=1)[:, 0]
        bad = (rows < 0) | (rows >= len(ints))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise FormatError(
                f"{path}, line {i + 1}: row index {int(rows[i])} points past the feature table "
                f"({len(ints)} rows, valid indices 0..{len(ints) - 1})"
            )
        masks[mid] = rows
    return ImportedTables(
        ints=ints,
        floats=floats,
        masks=masks,
        empirical=_read_empirical(folder),
        feature_set=fset,
        experiments=_read_experiments(folder),
        int_path=int_path,
        float_path=float_path,
    )


def _check_rows(
    ints: npt.NDArray[np.int64], floats: npt.NDArray[np.float64], int_path: Path, float_path: Path
) -> None:
    if not np.all(np.isfinite(floats[:, :3])):
        i = int(np.flatnonzero(~np.all(np.isfinite(floats[:, :3]), axis=1))[0])
        raise FormatError(f"{float_path}, line {i + 1}: pre, post and postAll must be finite")
    neg = np.any(floats[:, :3] < 0, axis=1)
    if neg.any():
        i = int(np.flatnonzero(neg)[0])
        raise FormatError(
            f"{float_path}, line {i + 1}: negative count {floats[i, :3].tolist()}; pre, post and "
            f"postAll must be >= 0"
        )
    bad_code = ~np.isin(ints[:, 6], list(CONSBI_CELL_TYPES))
    if bad_code.any():
        i = int(np.flatnonzero(bad_code)[0])
        raise FormatError(
            f"{int_path}, line {i + 1}: post cell-type code {int(ints[i, 6])} is unknown; "
            f"valid codes are 0..11"
        )
    bad_voxel = ints[:, 3] < -1
    if bad_voxel.any():
        i = int(np.flatnonzero(bad_voxel)[0])
        raise FormatError(f"{int_path}, line {i + 1}: voxel id {int(ints[i, 3])} (must be >= -1)")
    overlap = ints[:, 3] >= 0
    zero = overlap & ((floats[:, 0] <= 0) | (floats[:, 1] <= 0))
    if zero.any():
        i = int(np.flatnonzero(zero)[0])
        raise FormatError(
            f"{float_path}, line {i + 1}: a row with a voxel (id {int(ints[i, 3])}) must have "
            f"pre > 0 and post > 0, got {floats[i, :2].tolist()}"
        )


def _unique_consistent(
    keys: npt.NDArray[np.int64], values: npt.NDArray[Any], *, what: str, path: Path,
    rows: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
    """Unique keys and their value; raise if one key has several values."""
    order = np.lexsort((values, keys))
    k, v = keys[order], values[order]
    first = np.ones(len(k), dtype=bool)
    first[1:] = k[1:] != k[:-1]
    changed = np.zeros(len(k), dtype=bool)
    changed[1:] = (k[1:] == k[:-1]) & (v[1:] != v[:-1])
    if changed.any():
        j = int(np.flatnonzero(changed)[0])
        line = int(rows[order[j]]) + 1
        raise FormatError(
            f"{path}, line {line}: {what} differs between rows ({v[j - 1]!r} vs {v[j]!r}); it "
            f"must be the same in every row that repeats it"
        )
    return k[first], v[first]


def import_feature_tables(
    folder: str | Path, *, feature_set: str | None = None
) -> StructuralModel:
    """Import a feature-table folder as a structural model with its measurement populations."""
    t = read_feature_tables(folder, feature_set=feature_set)
    ints, floats = t.ints, t.floats
    line = np.arange(len(ints), dtype=np.int64)
    pre_id, post_id, voxel = ints[:, 1], ints[:, 2], ints[:, 3]

    # neurons: union of pre and post ids; types from column 6 (post) and 5 (pre, inferred)
    ids = np.unique(np.concatenate([pre_id, post_id]))
    n = len(ids)
    type_code = np.full(n, -1, dtype=np.int64)
    uq_post, post_code = _unique_consistent(
        post_id, ints[:, 6], what="post cell-type code of a post neuron", path=t.int_path,
        rows=line,
    )
    type_code[np.searchsorted(ids, uq_post)] = post_code
    valid_pre = np.isin(ints[:, 5], list(CONSBI_CELL_TYPES))
    if valid_pre.any():
        uq_pre, pre_code = _unique_consistent(
            pre_id[valid_pre], ints[valid_pre, 5], what="pre cell-type code of a pre neuron",
            path=t.int_path, rows=line[valid_pre],
        )
        idx = np.searchsorted(ids, uq_pre)
        unset = type_code[idx] < 0
        type_code[idx[unset]] = pre_code[unset]
    # presynaptic neurons without a type code default to VPM (the format's in vivo populations
    # are thalamocortical); recorded in attrs so users can see it
    untyped = type_code < 0
    type_code[untyped] = 11
    cell_type = np.array(
        [CELL_TYPES.index(CONSBI_CELL_TYPES[int(c)]) for c in type_code], dtype=np.int8
    )
    layer = np.array(
        [
            LAYERS.index(_LAYER_OF_TYPE[CONSBI_CELL_TYPES[int(c)]])
            if CONSBI_CELL_TYPES[int(c)] in _LAYER_OF_TYPE
            else -1
            for c in type_code
        ],
        dtype=np.int8,
    )
    region = np.where(
        cell_type == CELL_TYPES.index("VPM"), REGIONS.index("barreloid"), REGIONS.index("column")
    ).astype(np.int8)
    neurons = Neurons(
        cell_type=cell_type,
        layer=layer,
        region=region,
        column=np.full(n, -1, dtype=np.int16),
        soma_um=np.full((n, 3), np.nan, dtype=np.float32),
        ids=ids.astype(np.int64),
        column_names=("C2",),
    )

    # voxels: renumber the ids >= 0 in increasing order
    has_voxel = voxel >= 0
    vox_ids = np.unique(voxel[has_voxel])
    v = max(len(vox_ids), 1)
    vk = np.searchsorted(vox_ids, voxel[has_voxel])
    rows_v = line[has_voxel]
    _, depth = _unique_consistent(
        vk, floats[has_voxel, 3], what="voxel depth", path=t.float_path, rows=rows_v
    )
    _, post_all_k = _unique_consistent(
        vk, floats[has_voxel, 2], what="postAll of a voxel", path=t.float_path, rows=rows_v
    )
    i_pre = np.searchsorted(ids, pre_id[has_voxel])
    i_post = np.searchsorted(ids, post_id[has_voxel])
    pre = _counts(i_pre, vk, floats[has_voxel, 0], n, v, what="pre boutons of a (pre, voxel)",
                  path=t.float_path, rows=rows_v)
    post = _counts(i_post, vk, floats[has_voxel, 1], n, v,
                   what="post target sites of a (post, voxel)", path=t.float_path, rows=rows_v)
    post_all = np.zeros(v, dtype=np.float32)
    post_all[: len(post_all_k)] = post_all_k
    col_sum = np.asarray(post.sum(axis=0)).ravel()
    short = col_sum > post_all.astype(np.float64) * (1 + 1e-6) + 1e-6
    if short.any():
        k = int(np.flatnonzero(short)[0])
        raise FormatError(
            f"{t.float_path}: postAll of voxel id {int(vox_ids[k])} is {float(post_all[k])}, less "
            f"than the sum of post over its post neurons ({float(col_sum[k])})"
        )
    voxel_depth = np.zeros(v, dtype=np.float64)
    voxel_depth[: len(depth)] = depth

    order = _population_order(t)
    labels = measurement_labels(
        [(mid, t.empirical.get(mid, {})) for mid in order],
        preferred=t.experiments.get(DEFAULT_EXPERIMENT, ()),
    )
    populations = {
        mid: _population(
            mid, t.masks[mid], ids, pre_id, post_id, ints, t.empirical.get(mid, {}),
            label=labels[mid],
        )
        for mid in order
    }
    attrs: dict[str, Any] = {
        "source": "consbi-feature-tables",
        "feature_set": t.feature_set,
        "experiments": t.experiments,
        "default_measurements": [
            mid for mid in t.experiments.get(DEFAULT_EXPERIMENT, []) if mid in t.masks
        ],
        "rows": len(ints),
        "untyped_neurons_as_vpm": int(untyped.sum()),
        "original_voxel_ids_min": int(vox_ids.min()) if len(vox_ids) else 0,
        "original_voxel_ids_max": int(vox_ids.max()) if len(vox_ids) else 0,
    }
    model = StructuralModel(
        grid=VoxelGrid(origin_um=(0.0, 0.0, 0.0), spacing_um=50.0, shape=(v, 1, 1)),
        neurons=neurons,
        pre=VoxelMajorCounts.from_scipy(pre, name="pre"),
        post=VoxelMajorCounts.from_scipy(post, name="post"),
        post_all=post_all,
        attrs=attrs,
        voxel_depth_um=voxel_depth,
        populations=populations,
    )
    attrs["content_hash"] = content_hash(model)
    log.info(
        "imported %d rows: %d neurons, %d voxels, %d populations", len(ints), n, v,
        len(populations),
    )
    return model


def _population_order(t: ImportedTables) -> list[str]:
    """Mask IDs in reading order: the default experiment's constraints (the paper's order of
    x), then the measurement records in the order of the metadata file, then masks without a
    record (by ID)."""
    order: list[str] = []
    seen: set[str] = set()
    for mid in (*t.experiments.get(DEFAULT_EXPERIMENT, ()), *t.empirical, *sorted(t.masks)):
        if mid in t.masks and mid not in seen:
            order.append(mid)
            seen.add(mid)
    return order


def first_author_surname(authors: str) -> str:
    """Surname of the first author of a list written given names first, as the format's
    metadata does (``"Randy M Bruno, Bert Sakmann"`` -> ``"Bruno"``): its last word."""
    first = authors.split(",")[0].split(";")[0].strip()
    return first.split()[-1] if first.split() else ""


_GENERIC_TYPES = ("", "EXC", "ALL")


def _side(layer: Any, ctype: Any) -> str:
    """Readable name of one side of a measurement: the cell type when the record names one,
    else the layer (``EXC`` is implied; inhibitory populations get ``INH``)."""
    layer_s, type_s = str(layer or "").strip(), str(ctype or "").strip()
    if type_s.upper() in _GENERIC_TYPES:
        return layer_s or "?"
    if type_s.upper() == "INH":
        return f"{layer_s}INH"
    return type_s


def _base_label(mid: str, record: Mapping[str, Any]) -> str:
    if not record or not (record.get("post_type") or record.get("post_layer")):
        return mid
    pre = _side(record.get("pre_layer"), record.get("pre_type"))
    post = _side(record.get("post_layer"), record.get("post_type"))
    label = post if pre == "VPM" else f"{pre}-{post}"
    if str(record.get("only_septum", "")).strip().lower() == "yes":
        label += "SEP"
    return re.sub(r"\s+", "_", label)


def measurement_labels(
    entries: Sequence[tuple[str, Mapping[str, Any]]], *, preferred: Sequence[str] = ()
) -> dict[str, str]:
    """Readable, unique labels for measurement IDs from their metadata records.

    The label names the postsynaptic population for thalamocortical (VPM) measurements and
    ``PRE-POST`` otherwise, by cell type where the record gives one and by layer for
    excitatory populations (``L4``, ``L4sp``, ``L5IT``, ``L23-L23``), with ``SEP`` appended
    for septum-only measurements (``L4SEP``), as the research code labels its seven in vivo
    measurements. When several records share a label, the one listed in ``preferred`` (the
    default experiment) keeps it and the others get ``_<first author><year>`` (and a counter
    if that is still ambiguous). IDs without a record keep their ID.

    Examples
    --------
    >>> rec = {"pre_layer": "VPM", "pre_type": "VPM", "post_layer": "L4", "post_type": "EXC",
    ...        "only_septum": "yes", "authors": "Randy M Bruno, Bert Sakmann", "year": "2006"}
    >>> measurement_labels([("a", rec)])
    {'a': 'L4SEP'}
    """
    base = {mid: _base_label(mid, rec) for mid, rec in entries}
    records = dict(entries)
    pref = set(preferred)
    groups: dict[str, list[str]] = {}
    for mid, _ in entries:
        groups.setdefault(base[mid], []).append(mid)
    labels: dict[str, str] = {}
    for label, mids in groups.items():
        keep = [m for m in mids if m in pref][:1] if len(mids) > 1 else mids
        for mid in mids:
            if mid in keep:
                labels[mid] = label
                continue
            rec = records[mid]
            who = re.sub(r"\W+", "", first_author_surname(str(rec.get("authors") or "")))
            labels[mid] = f"{label}_{who}{rec.get('year') or ''}" if who else f"{label}_{mid}"
    taken: dict[str, int] = {}
    for mid, _ in entries:  # still ambiguous (same study, same populations): number them
        lab = labels[mid]
        taken[lab] = taken.get(lab, 0) + 1
        if taken[lab] > 1:
            labels[mid] = f"{lab}_{taken[lab]}"
    return labels


def _counts(
    neuron: npt.NDArray[np.int64], voxel: npt.NDArray[np.int64], value: npt.NDArray[np.float64],
    n: int, v: int, *, what: str, path: Path, rows: npt.NDArray[np.int64],
) -> sp.csc_array:
    key = neuron * v + voxel
    uq, val = _unique_consistent(key, value, what=what, path=path, rows=rows)
    return sp.csc_array(
        (val.astype(np.float32), (uq // v, uq % v)), shape=(n, v), dtype=np.float32
    )


def _population(
    mid: str,
    rows: npt.NDArray[np.int64],
    ids: npt.NDArray[np.int64],
    pre_id: npt.NDArray[np.int64],
    post_id: npt.NDArray[np.int64],
    ints: npt.NDArray[np.int64],
    record: Mapping[str, Any],
    *,
    label: str,
) -> NeuronPopulation:
    pre = np.searchsorted(ids, np.unique(pre_id[rows])).astype(np.int64)
    post = np.searchsorted(ids, np.unique(post_id[rows])).astype(np.int64)
    flags = np.unique(ints[rows, 0])
    invivo = bool(len(flags) and np.all(flags == 0))
    attrs: dict[str, Any] = {
        "protocol": "invivo" if invivo else "slice", "mask_rows": len(rows), "label": label,
        "source_id": mid,
    }
    if record:
        cp = record.get("cp_empirical")
        if cp is not None:
            attrs["probability"] = float(cp) / 100.0
        samples = record.get("samples")
        if samples is not None and int(samples) > 0:
            attrs["n_pairs"] = int(samples)
        kind = str(record.get("type", ""))
        if kind:
            attrs["protocol"] = "invivo" if kind.endswith("invivo") else "slice"
        for key, out in (
            ("species", "species"), ("authors", "authors"), ("year", "year"), ("DOI", "doi"),
            ("title", "title"), ("journal", "journal"), ("pre_type", "pre_type"),
            ("post_type", "post_type"), ("pre_layer", "pre_layer"), ("post_layer", "post_layer"),
            ("only_septum", "only_septum"), ("area", "area"),
        ):
            if key in record and record[key] is not None:
                val = record[key]
                attrs[out] = val if isinstance(val, str | int | float | bool) else str(val)
    pair_pre: npt.NDArray[np.int64] | None = None
    pair_post: npt.NDArray[np.int64] | None = None
    if attrs["protocol"] != "invivo":
        # a slice mask lists each presynaptic neuron's candidates: keep the listed pairs when
        # they are not every pre x post pair (the research code averages over them per pre)
        pair_key = np.unique(np.searchsorted(ids, pre_id[rows]) * len(ids)
                             + np.searchsorted(ids, post_id[rows])).astype(np.int64)
        if len(pair_key) < len(pre) * len(post):
            pair_pre, pair_post = pair_key // len(ids), pair_key % len(ids)
    return NeuronPopulation(pre=pre, post=post, attrs=attrs, pair_pre=pair_pre,
                            pair_post=pair_post)


def write_feature_tables(
    model: StructuralModel,
    folder: str | Path,
    *,
    populations: Mapping[str, NeuronPopulation] | None = None,
    feature_set: str = "set-3",
    records: Sequence[Mapping[str, Any]] = (),
    experiments: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Export ``model`` and populations to the feature-table format (e.g. for the research code).

    Each population's rows are every (pre, post, shared voxel) of its pre × post product, plus
    one ``-1`` row for each pair that shares no voxel. ``records`` are written as
    ``empirical_data_export.json``; ``experiments`` (identifier -> measurement IDs, e.g.
    ``{"default_rule_invivo": [...]}``) as ``inference_experiments_local.json`` naming
    ``feature_set``. The folder must not exist.
    """
    folder = Path(folder)
    if folder.exists():
        from anatomy.errors import StoreExistsError

        raise StoreExistsError(f"{folder} exists; choose a new folder for the export")
    pops = dict(model.populations if populations is None else populations)
    (folder / "features").mkdir(parents=True)
    (folder / "masks").mkdir()
    pre_m = model.pre.load().tocsr()
    post_m = model.post.load().tocsr()
    depth = model.depth_um()
    post_all = np.asarray(model.post_all, dtype=np.float64)
    codes = np.array([_CODE_OF_TYPE[CELL_TYPES[int(c)]] for c in model.neurons.cell_type])
    layer_code = np.where(depth >= 855.0, 1, np.where(depth >= 576.0, 2, 0))
    ids = model.neurons.ids
    offset = 0
    with (
        (folder / "features" / f"features_{feature_set}_int.tsv").open("w") as fi,
        (folder / "features" / f"features_{feature_set}_float.tsv").open("w") as ff,
    ):
        for mid, pop in pops.items():
            protocol = 0 if pop.attrs.get("protocol", "invivo") == "invivo" else 1
            int_rows: list[npt.NDArray[np.int64]] = []
            float_rows: list[npt.NDArray[np.float64]] = []
            listed = pop.pair_pre is not None and pop.pair_post is not None
            for i in pop.pre:
                ai = pre_m.indices[pre_m.indptr[i] : pre_m.indptr[i + 1]]
                ad = pre_m.data[pre_m.indptr[i] : pre_m.indptr[i + 1]]
                posts = (np.asarray(pop.post_of(i)) if listed else pop.post)
                for j in posts:
                    bi = post_m.indices[post_m.indptr[j] : post_m.indptr[j + 1]]
                    bd = post_m.data[post_m.indptr[j] : post_m.indptr[j + 1]]
                    shared, ia, ib = np.intersect1d(ai, bi, assume_unique=True,
                                                    return_indices=True)
                    if len(shared) == 0:
                        int_rows.append(np.array([[protocol, ids[i], ids[j], -1, -1, codes[i],
                                                   codes[j]]]))
                        float_rows.append(np.array([[0.0, 0.0, 0.0, -1.0]]))
                        continue
                    k = len(shared)
                    int_rows.append(np.column_stack([
                        np.full(k, protocol), np.full(k, ids[i]), np.full(k, ids[j]), shared,
                        layer_code[shared], np.full(k, codes[i]), np.full(k, codes[j]),
                    ]))
                    float_rows.append(
                        np.column_stack([ad[ia], bd[ib], post_all[shared], depth[shared]])
                    )
            block_i = np.concatenate(int_rows) if int_rows else np.zeros((0, 7), np.int64)
            block_f = np.concatenate(float_rows) if float_rows else np.zeros((0, 4))
            np.savetxt(fi, block_i, fmt="%d", delimiter="\t")
            np.savetxt(ff, block_f, fmt="%.9g", delimiter="\t")
            np.savetxt(
                folder / "masks" / f"mask_{feature_set}_{mid}.txt",
                np.arange(offset, offset + len(block_i)),
                fmt="%d",
            )
            offset += len(block_i)
    (folder / "empirical_data_export.json").write_text(
        json.dumps(list(records), indent=1), encoding="utf-8"
    )
    if experiments is not None:
        specs = [
            {"identifier": ident, "feature-set": feature_set, "constraints": list(ids)}
            for ident, ids in experiments.items()
        ]
        (folder / "inference_experiments_local.json").write_text(
            json.dumps(specs, indent=1), encoding="utf-8"
        )
    return folder
