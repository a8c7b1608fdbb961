"""Neuron selectors: which neurons of a structural model a measurement's population contains.

A :class:`Selector` is a value (cell types, layers, regions, columns, external ids, excitatory
flag; every criterion optional, all criteria AND-combined). It has a one-line text form for the
command line and for CSV files, parsed by :func:`parse_selector`, and a JSON/TOML-native dict form
(:meth:`Selector.to_dict` / :meth:`Selector.from_dict`). :func:`select` evaluates a selector on a
:class:`~anatomy.model.StructuralModel` and returns sorted neuron indices.

Text syntax
-----------
Clauses are separated by ``;``; each clause is ``key=value[,value...]`` or a bare list of cell
types / group aliases (shorthand for ``cell_type=...``). ``*`` (or ``all``) selects every neuron.

=========================================  ====================================================
key (synonyms)                             values
=========================================  ====================================================
``cell_type`` (``cell_types``, ``type``,   cell types of :data:`anatomy.catalogue.CELL_TYPES`
``types``)                                 or the group aliases below
``layer`` (``layers``)                     layers of :data:`anatomy.catalogue.LAYERS` or the
                                           layer groups below
``region`` (``regions``)                   ``column``, ``septum``, ``barreloid``
``column`` (``columns``)                   column labels of the model (``C2``, ...)
``id`` (``ids``)                           external neuron ids (integers)
``excitatory``                             ``true`` or ``false`` (VPM counts as excitatory)
=========================================  ====================================================

Names are matched case-insensitively and stored in their catalogue spelling.

Cell-type group aliases (:data:`CELL_TYPE_GROUPS`):

=========  =============================================================
alias      cell types
=========  =============================================================
``L23exc``  L2PY, L3PY (``L2/3exc`` is accepted too)
``L4exc``   L4PY, L4sp, L4ss
``L5exc``   L5IT, L5PT
``L6exc``   L6CC, L6INV, L6CT
``exc``     every excitatory *cortical* type, L2PY ... L6CT (no VPM)
``inh``     INH
=========  =============================================================

Layer groups (:data:`LAYER_GROUPS`): ``L23`` (``L2/3``) = L2, L3; ``L5`` = L5A, L5B;
``L6`` = L6A, L6B.

Examples
--------
>>> s = parse_selector("L4exc;region=septum")
>>> s.cell_types, s.regions
(('L4PY', 'L4sp', 'L4ss'), ('septum',))
>>> str(s)
'cell_type=L4exc;region=septum'
>>> parse_selector(str(s)) == s
True
>>> Selector.from_dict(s.to_dict()) == s
True
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any

import numpy as np

from anatomy.catalogue import CELL_TYPES, EXCITATORY_TYPES, LAYERS, REGIONS
from anatomy.model import StructuralModel
from wiring._typing import BoolArray, IntArray
from wiring.errors import SelectionError

__all__ = [
    "CELL_TYPE_GROUPS",
    "LAYER_GROUPS",
    "SELECTOR_KEYS",
    "Selector",
    "parse_selector",
    "select",
    "selection_mask",
]

logger = logging.getLogger(__name__)

#: Cell-type group aliases usable wherever a cell type is expected (see the module docstring).
CELL_TYPE_GROUPS: dict[str, tuple[str, ...]] = {
    "L23exc": ("L2PY", "L3PY"),
    "L2/3exc": ("L2PY", "L3PY"),
    "L4exc": ("L4PY", "L4sp", "L4ss"),
    "L5exc": ("L5IT", "L5PT"),
    "L6exc": ("L6CC", "L6INV", "L6CT"),
    "exc": ("L2PY", "L3PY", "L4PY", "L4sp", "L4ss", "L5IT", "L5PT", "L6CC", "L6INV", "L6CT"),
    "inh": ("INH",),
}
#: Aliases printed by ``str(selector)`` when a selector's cell types equal a group exactly.
_CANONICAL_GROUPS: tuple[str, ...] = ("L23exc", "L4exc", "L5exc", "L6exc", "exc", "inh")

#: Layer group aliases usable wherever a layer is expected.
LAYER_GROUPS: dict[str, tuple[str, ...]] = {
    "L23": ("L2", "L3"),
    "L2/3": ("L2", "L3"),
    "L5": ("L5A", "L5B"),
    "L6": ("L6A", "L6B"),
}

#: Accepted keys (text form and dict form) and the field each one sets.
SELECTOR_KEYS: dict[str, str] = {
    "cell_type": "cell_types",
    "cell_types": "cell_types",
    "type": "cell_types",
    "types": "cell_types",
    "layer": "layers",
    "layers": "layers",
    "region": "regions",
    "regions": "regions",
    "column": "columns",
    "columns": "columns",
    "id": "ids",
    "ids": "ids",
    "excitatory": "excitatory",
}

_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")


def _suggest(name: str, choices: Iterable[str]) -> str:
    hint = get_close_matches(name, list(choices), n=1, cutoff=0.5)
    if not hint:
        lowered = {c.lower(): c for c in choices}
        hint = [lowered[h] for h in get_close_matches(name.lower(), list(lowered), n=1)]
    return f" Did you mean {hint[0]!r}?" if hint else ""


def _resolve(
    names: Iterable[str],
    vocabulary: Sequence[str],
    groups: Mapping[str, tuple[str, ...]],
    *,
    kind: str,
) -> tuple[str, ...]:
    """Canonical, de-duplicated names in vocabulary order; groups expanded; case-insensitive."""
    lookup: dict[str, tuple[str, ...]] = {v.lower(): (v,) for v in vocabulary}
    lookup.update({g.lower(): members for g, members in groups.items()})
    chosen: set[str] = set()
    for raw in names:
        if not isinstance(raw, str):
            raise SelectionError(
                f"{kind} names must be strings, got {raw!r} ({type(raw).__name__}); "
                f"write it as a string, e.g. {str(raw)!r}"
            )
        name = raw.strip()
        if name.lower() not in lookup:
            known = ", ".join(vocabulary)
            extra = f" (groups: {', '.join(groups)})" if groups else ""
            raise SelectionError(
                f"unknown {kind} {name!r}; known {kind}s are {known}{extra}."
                + _suggest(name, [*vocabulary, *groups])
            )
        chosen.update(lookup[name.lower()])
    return tuple(v for v in vocabulary if v in chosen)


def _as_names(value: Any, field: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise SelectionError(
            f"Selector.{field} must be a tuple of names, got the string {value!r}; "
            f"write ({value!r},) or use parse_selector()"
        )
    if not isinstance(value, Iterable):
        raise SelectionError(
            f"Selector.{field} must be a tuple of names or None, got {value!r}"
        )
    names = tuple(value)
    if not names:
        raise SelectionError(
            f"Selector.{field} is empty, which would select nothing; use None to allow any"
        )
    for n in names:
        if not isinstance(n, str) or not n.strip():
            raise SelectionError(
                f"Selector.{field} must hold non-empty strings, got {n!r} in {names!r}"
            )
    return names


@dataclass(frozen=True, slots=True, kw_only=True)
class Selector:
    """A set of neurons described by their attributes; ``None`` means "any".

    Parameters
    ----------
    cell_types
        Cell-type names (or group aliases such as ``"L4exc"``, expanded on construction).
    layers
        Layer names (or ``"L5"``, ``"L6"``, ``"L23"``, expanded on construction).
    regions
        Region names: ``"column"``, ``"septum"``, ``"barreloid"``.
    columns
        Column labels, checked against the model in :func:`select` (e.g. ``"C2"``).
    ids
        External neuron ids (``model.neurons.ids``).
    excitatory
        ``True``/``False`` to keep only excitatory (VPM included) / inhibitory neurons.

    Notes
    -----
    All given criteria must hold (AND). Names are canonicalised on construction: catalogue
    spelling, duplicates removed, catalogue order (columns sorted, ids sorted), so two selectors
    that select the same neurons by the same criteria compare equal and serialise identically.

    Raises
    ------
    SelectionError
        Unknown cell type, layer or region (with a suggestion); an empty tuple; a bad id.
    """

    cell_types: tuple[str, ...] | None = None
    layers: tuple[str, ...] | None = None
    regions: tuple[str, ...] | None = None
    columns: tuple[str, ...] | None = None
    ids: tuple[int, ...] | None = None
    excitatory: bool | None = None

    def __post_init__(self) -> None:
        ct = _as_names(self.cell_types, "cell_types")
        if ct is not None:
            ct = _resolve(ct, CELL_TYPES, CELL_TYPE_GROUPS, kind="cell type")
        ly = _as_names(self.layers, "layers")
        if ly is not None:
            ly = _resolve(ly, LAYERS, LAYER_GROUPS, kind="layer")
        rg = _as_names(self.regions, "regions")
        if rg is not None:
            rg = _resolve(rg, REGIONS, {}, kind="region")
        co = _as_names(self.columns, "columns")
        if co is not None:
            co = tuple(sorted({c.strip() for c in co}))
        ids: tuple[int, ...] | None = None
        if self.ids is not None:
            ids = _as_ids(self.ids)
        if self.excitatory is not None and not isinstance(self.excitatory, (bool, np.bool_)):
            raise SelectionError(
                f"Selector.excitatory must be True, False or None, got {self.excitatory!r}"
            )
        exc = None if self.excitatory is None else bool(self.excitatory)
        object.__setattr__(self, "cell_types", ct)
        object.__setattr__(self, "layers", ly)
        object.__setattr__(self, "regions", rg)
        object.__setattr__(self, "columns", co)
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "excitatory", exc)

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML-native dict of the criteria that are set (field names as keys).

        Examples
        --------
        >>> Selector(cell_types=("VPM",), columns=("C2",)).to_dict()
        {'cell_types': ['VPM'], 'columns': ['C2']}
        """
        out: dict[str, Any] = {}
        for name in ("cell_types", "layers", "regions", "columns", "ids"):
            value = getattr(self, name)
            if value is not None:
                out[name] = list(value)
        if self.excitatory is not None:
            out["excitatory"] = self.excitatory
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Selector:
        """Inverse of :meth:`to_dict`; also accepts the key synonyms of the text form.

        Values may be a list or a single value (a string may also be a comma-separated list).

        Raises
        ------
        SelectionError
            Unknown key, a key given twice (e.g. ``type`` and ``cell_type``), wrong value type.
        """
        if not isinstance(data, Mapping):
            raise SelectionError(
                f"a selector must be a table/dict or a selector string, got {data!r}"
            )
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            field = _field_of(str(key))
            if field in kwargs:
                raise SelectionError(f"selector sets {field!r} twice (key {key!r}); give it once")
            if field == "excitatory":
                kwargs[field] = _as_bool(value)
            elif field == "ids":
                if isinstance(value, str):
                    value = _split(value, key=str(key))
                kwargs[field] = value if isinstance(value, (list, tuple)) else (value,)
            else:
                if isinstance(value, str):
                    value = _split(value, key=str(key))
                elif not isinstance(value, (list, tuple)):
                    raise SelectionError(
                        f"selector key {key!r} needs a name or a list of names, got {value!r}"
                    )
                kwargs[field] = tuple(value)
        return cls(**kwargs)

    def __str__(self) -> str:
        """The text form, parseable by :func:`parse_selector` (``"*"`` selects every neuron)."""
        parts: list[str] = []
        if self.cell_types is not None:
            parts.append("cell_type=" + _group_text(self.cell_types))
        if self.layers is not None:
            parts.append("layer=" + ",".join(self.layers))
        if self.regions is not None:
            parts.append("region=" + ",".join(self.regions))
        if self.columns is not None:
            parts.append("column=" + ",".join(self.columns))
        if self.ids is not None:
            parts.append("id=" + ",".join(str(i) for i in self.ids))
        if self.excitatory is not None:
            parts.append("excitatory=" + ("true" if self.excitatory else "false"))
        if not parts:
            return "*"
        if len(parts) == 1 and self.cell_types is not None:
            return parts[0].removeprefix("cell_type=")
        return ";".join(parts)

    @property
    def is_any(self) -> bool:
        """Whether no criterion is set (the selector selects every neuron)."""
        return self.to_dict() == {}


def _group_text(cell_types: tuple[str, ...]) -> str:
    for alias in _CANONICAL_GROUPS:
        if set(CELL_TYPE_GROUPS[alias]) == set(cell_types):
            return alias
    return ",".join(cell_types)


def _as_ids(value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise SelectionError(f"Selector.ids must be a sequence of integers, got {value!r}")
    out: list[int] = []
    for v in value:
        if isinstance(v, (bool, np.bool_)):
            raise SelectionError(f"neuron ids must be integers, got {v!r}")
        if isinstance(v, (int, np.integer)):
            out.append(int(v))
            continue
        if isinstance(v, str):
            try:
                out.append(int(v.strip()))
                continue
            except ValueError:
                pass
        raise SelectionError(f"neuron ids must be integers, got {v!r}")
    if not out:
        raise SelectionError("Selector.ids is empty, which would select nothing; use None for any")
    return tuple(sorted(set(out)))


def _as_bool(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in (*_TRUE, *_FALSE):
        return value.strip().lower() in _TRUE
    raise SelectionError(f"excitatory must be true or false, got {value!r}")


def _field_of(key: str) -> str:
    k = key.strip().lower()
    if k not in SELECTOR_KEYS:
        raise SelectionError(
            f"unknown selector key {key.strip()!r}; known keys are "
            f"{', '.join(SELECTOR_KEYS)}.{_suggest(k, SELECTOR_KEYS)}"
        )
    return SELECTOR_KEYS[k]


def _split(value: str, *, key: str) -> list[str]:
    items = [v.strip() for v in value.split(",")]
    if not value.strip() or any(not v for v in items):
        raise SelectionError(
            f"empty value in selector clause {key}={value!r}; give comma-separated names"
        )
    return items


def parse_selector(text: str) -> Selector:
    """Parse the text form of a selector (see the module docstring for the syntax).

    Parameters
    ----------
    text
        E.g. ``"VPM;column=C2;region=barreloid"``, ``"L4ss,L4sp"``,
        ``"cell_type=L4PY,L4sp,L4ss;region=septum"``, ``"excitatory=false"`` or ``"*"``.

    Returns
    -------
    Selector

    Raises
    ------
    SelectionError
        Empty text, unknown key or name (with a suggestion), a key given twice.

    Examples
    --------
    >>> parse_selector("VPM;column=C2").to_dict()
    {'cell_types': ['VPM'], 'columns': ['C2']}
    >>> parse_selector("excitatory=false") == Selector(excitatory=False)
    True
    """
    if not isinstance(text, str):
        raise SelectionError(f"a selector must be a string, got {text!r}")
    stripped = text.strip()
    if stripped in ("*", "all"):
        return Selector()
    if not stripped:
        raise SelectionError(
            "empty selector; give e.g. 'VPM', 'L4exc;region=septum' or '*' for every neuron"
        )
    data: dict[str, Any] = {}
    for clause in stripped.split(";"):
        clause = clause.strip()
        if not clause:
            raise SelectionError(f"empty clause in selector {text!r} (two ';' in a row?)")
        key, sep, value = clause.partition("=")
        if not sep:
            key, value = "cell_type", clause
        field = _field_of(key)
        if field in data:
            raise SelectionError(
                f"selector {text!r} sets {field!r} twice; give each key once, "
                "with comma-separated values"
            )
        data[field] = value if field == "excitatory" else _split(value, key=key.strip())
    try:
        return Selector.from_dict(data)
    except SelectionError as err:
        raise SelectionError(f"in selector {text!r}: {err}") from None


def selection_mask(model: StructuralModel, selector: Selector) -> BoolArray:
    """Boolean mask (N,) of the neurons of ``model`` that ``selector`` selects (may be all False).

    Raises
    ------
    SelectionError
        A column label the model does not have, or an id no neuron of the model has.
    """
    return _criteria(model, selector)[0]


def _criteria(model: StructuralModel, selector: Selector) -> tuple[BoolArray, list[str]]:
    """Combined mask and a per-criterion "criterion matches k" summary for error messages."""
    neurons = model.neurons
    n = len(neurons)
    mask = np.ones(n, dtype=np.bool_)
    notes: list[str] = []

    def apply(label: str, m: BoolArray) -> None:
        nonlocal mask
        mask &= m
        notes.append(f"{label} matches {int(m.sum())}")

    if selector.cell_types is not None:
        codes = [CELL_TYPES.index(c) for c in selector.cell_types]
        apply("cell_type=" + ",".join(selector.cell_types), np.isin(neurons.cell_type, codes))
    if selector.layers is not None:
        codes = [LAYERS.index(c) for c in selector.layers]
        apply("layer=" + ",".join(selector.layers), np.isin(neurons.layer, codes))
    if selector.regions is not None:
        codes = [REGIONS.index(c) for c in selector.regions]
        apply("region=" + ",".join(selector.regions), np.isin(neurons.region, codes))
    if selector.columns is not None:
        names = tuple(neurons.column_names)
        bad = [c for c in selector.columns if c not in names]
        if bad:
            raise SelectionError(
                f"unknown column {bad[0]!r} in selector {str(selector)!r}; the model has "
                f"columns {', '.join(names) or '(none)'}.{_suggest(bad[0], names)}"
            )
        codes = [names.index(c) for c in selector.columns]
        apply("column=" + ",".join(selector.columns), np.isin(neurons.column, codes))
    if selector.ids is not None:
        wanted = np.asarray(selector.ids, dtype=np.int64)
        model_ids = np.asarray(neurons.ids, dtype=np.int64)
        unknown = wanted[~np.isin(wanted, model_ids)]
        if unknown.size:
            shown = ", ".join(str(int(i)) for i in unknown[:10])
            more = f" and {unknown.size - 10} more" if unknown.size > 10 else ""
            raise SelectionError(
                f"selector {_short(selector)!r} names {unknown.size} neuron id(s) the model does "
                f"not have: {shown}{more}; ids run over model.neurons.ids "
                f"({n} neurons, {int(model_ids.min()) if n else 0}..{int(model_ids.max()) if n else 0})"
            )
        apply(f"id ({len(wanted)} given)", np.isin(model_ids, wanted))
    if selector.excitatory is not None:
        exc_codes = [CELL_TYPES.index(c) for c in CELL_TYPES if c in EXCITATORY_TYPES]
        is_exc = np.isin(neurons.cell_type, exc_codes)
        apply(
            "excitatory=" + ("true" if selector.excitatory else "false"),
            is_exc if selector.excitatory else ~is_exc,
        )
    return mask, notes


def _short(selector: Selector) -> str:
    text = str(selector)
    return text if len(text) <= 120 else text[:117] + "..."


def _model_label(model: StructuralModel) -> str:
    attrs = model.attrs
    for key in ("name", "preset", "source"):
        value = attrs.get(key)
        if isinstance(value, str) and value:
            return f"{key} {value!r}"
    return "(unnamed)"


def select(model: StructuralModel, selector: Selector | str) -> IntArray:
    """Sorted indices (int64) of the neurons of ``model`` that ``selector`` selects.

    Parameters
    ----------
    model
        The structural model.
    selector
        A :class:`Selector` or its text form.

    Returns
    -------
    IntArray
        Sorted model neuron indices (not external ids), shape (n,), n >= 1.

    Raises
    ------
    SelectionError
        Unknown names or ids (listing the valid ones, with a suggestion), or an empty selection
        (the message gives the model's neuron counts by cell type and what each criterion
        matched on its own).
    """
    if isinstance(selector, str):
        selector = parse_selector(selector)
    if not isinstance(selector, Selector):
        raise SelectionError(f"expected a Selector or selector text, got {selector!r}")
    mask, notes = _criteria(model, selector)
    idx = np.flatnonzero(mask).astype(np.int64)
    if idx.size == 0:
        n = len(model.neurons)
        counts = np.bincount(np.asarray(model.neurons.cell_type, np.int64), minlength=len(CELL_TYPES))
        by_type = ", ".join(f"{t} {int(c)}" for t, c in zip(CELL_TYPES, counts, strict=True) if c)
        raise SelectionError(
            f"selector {_short(selector)!r} selects no neuron in model {_model_label(model)} "
            f"({n} neurons; counts by type: {by_type or 'none'}); "
            f"separately: {'; '.join(notes)}. Loosen the selector or use another model"
        )
    logger.debug("selector %s selects %d neurons", selector, idx.size)
    return idx
