"""Measurement sets defined by a structural model's data source (its source populations).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from difflib import get_close_matches
from typing import Any

import numpy as np

from anatomy.model import StructuralModel
from wiring.errors import MeasurementError
from wiring.measurements.io import DOI_PATTERN, FieldProblem, is_int
from wiring.measurements.selectors import Selector
from wiring.measurements.sets import (
    PROTOCOLS,
    Citation,
    Measurement,
    MeasurementSet,
    load_measurement_set,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ALL",
    "IMPORT_PROTOCOLS",
    "MODEL_SET",
    "clean_doi",
    "describe_import",
    "measurement_set_from_model",
    "resolve_measurement_set",
    "select_measurements",
    "set_from_model",
]

# -- measurement sets defined by a model's source populations -----------------------------

#: Protocol spellings accepted from imported sources, mapped to :data:`PROTOCOLS` values.
IMPORT_PROTOCOLS: dict[str, str] = {
    "invivo": "invivo",
    "in vivo": "invivo",
    "connection_probability_invivo": "invivo",
    "slice": "slice",
    "invitro": "slice",
    "in vitro": "slice",
    "connection_probability_invitro": "slice",
}


def clean_doi(doi: str) -> str:
    """``doi`` without a ``doi:`` or resolver-URL prefix (as source records often write it)."""
    doi = doi.strip()
    for prefix in ("https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "doi:", "DOI:"):
        if doi.startswith(prefix):
            doi = doi[len(prefix):].strip()
    return doi


def describe_import(a: Mapping[str, Any]) -> str:
    """E.g. ``"VPM -> L4ss (septum only)"`` from the source record's fields."""
    def side(layer: Any, kind: Any) -> str:
        if str(kind or "").upper() in ("EXC", "INH") and layer and layer != kind:
            return f"{layer} {kind}"  # e.g. "L4 EXC": the type alone does not say where
        return str(kind or layer or "")

    pre = side(a.get("pre_layer"), a.get("pre_type"))
    post = side(a.get("post_layer"), a.get("post_type"))
    if not pre and not post:
        return ""
    text = f"{pre or '?'} -> {post or '?'}"
    if str(a.get("only_septum", "")).lower() == "yes":
        text += " (septum only)"
    return text


ALL = "all"
"""``select`` value that picks every measurement population of a model."""
MODEL_SET = "model"
"""The set name that means "the measurement populations of the structural model"."""


def _model_entries(model: StructuralModel) -> list[tuple[str, str, dict[str, Any]]]:
    """(population name, label, attrs) of every population that is a measurement."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    for pname, pop in model.populations.items():
        a = dict(pop.attrs)
        if "probability" not in a:
            logger.info("population %r has no 'probability' attribute: not a measurement", pname)
            continue
        label = a.get("label")
        out.append((str(pname), str(label) if label else str(pname), a))
    return out


def _pick(
    entries: list[tuple[str, str, dict[str, Any]]], select: Sequence[str] | None,
    model: StructuralModel,
) -> list[tuple[str, str, dict[str, Any]]]:
    """The entries ``select`` names (by label or population name), in its order."""
    if select is None:
        default = [str(v) for v in model.attrs.get("default_measurements") or ()]
        by_name = {e[0]: e for e in entries}
        chosen = [by_name[n] for n in default if n in by_name]
        if chosen:
            logger.info(
                "model measurements: the source's default experiment (%s); select=['all'] "
                "for all %d", ", ".join(e[1] for e in chosen), len(entries),
            )
            return chosen
        return entries
    names = list(select)
    if names == [ALL] and not any(ALL in (e[0], e[1]) for e in entries):
        return entries
    lookup: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for e in entries:
        lookup.setdefault(e[1], e)
        lookup.setdefault(e[0], e)
    return [
        lookup[n] if n in lookup else _unknown_selected(n, [e[1] for e in entries], "the model")
        for n in _unique_selection(names)
    ]


def _unique_selection(names: Sequence[str]) -> list[str]:
    if not names:
        raise MeasurementError("select is empty; name at least one measurement (or 'all')")
    seen: set[str] = set()
    for n in names:
        if not isinstance(n, str) or not n.strip():
            raise MeasurementError(f"select: {n!r} is not a measurement id or label")
        if n in seen:
            raise MeasurementError(f"select names measurement {n!r} twice")
        seen.add(n)
    return list(names)


def _unknown_selected(name: str, known: Sequence[str], where: str) -> Any:
    hint = get_close_matches(name, list(known), n=1)
    shown = ", ".join(known[:20]) + (f", ... ({len(known)} in all)" if len(known) > 20 else "")
    raise MeasurementError(
        f"select names unknown measurement {name!r}: {where} has {shown}."
        + (f" Did you mean {hint[0]!r}?" if hint else "")
    )


def select_measurements(mset: MeasurementSet, select: Sequence[str] | None) -> MeasurementSet:
    """The measurements of ``mset`` named by ``select`` (ids), in that order; all if None."""
    if select is None or (list(select) == [ALL] and ALL not in mset.names):
        return mset
    names = _unique_selection(list(select))
    for n in names:
        if n not in mset.names:
            _unknown_selected(n, list(mset.names), f"set {mset.name!r}")
    return mset.subset(names, name=mset.name)


def set_from_model(
    model: StructuralModel,
    *,
    name: str | None,
    default_n_pairs: int | None,
    select: Sequence[str] | None = None,
) -> MeasurementSet:
    """See :func:`wiring.measurements.measurement_set_from_model`."""

    if not model.populations:
        raise MeasurementError(
            "the model has no source-defined populations (model.populations is empty); "
            "only imported models (e.g. anatomy.io.consbi) define measurement populations"
        )
    entries = _model_entries(model)
    if not entries:
        raise MeasurementError(
            "none of the model's populations carries measurement attributes ('probability')"
        )
    ids = np.asarray(model.neurons.ids, dtype=np.int64)
    out: list[Measurement] = []
    for pname, label, a in _pick(entries, select, model):
        pop = model.populations[pname]
        where = f"model population {pname!r}" + (f" ({label})" if label != pname else "")
        n = a.get("n_pairs")
        assumed = False
        if n is None or (is_int(n) and int(n) <= 0):
            if default_n_pairs is None:
                raise MeasurementError(
                    f"{where}: pairs tested unknown (attrs['n_pairs'] = {n!r}); set the pairs "
                    "to sample ([measurements] n_pairs, --n-pairs or default_n_pairs=...; the "
                    "research code sampled 50)"
                )
            n, assumed = default_n_pairs, True
        proto = IMPORT_PROTOCOLS.get(str(a.get("protocol", "")).strip().lower())
        if proto is None:
            raise MeasurementError(
                f"{where}: attrs['protocol'] = {a.get('protocol')!r} is not a protocol; "
                f"allowed are {', '.join(map(repr, PROTOCOLS))}"
            )
        for key in ("authors", "year"):
            if key not in a:
                raise MeasurementError(
                    f"{where}: attrs lack {key!r}, needed for the citation of a measurement"
                )
        year = a["year"]
        if isinstance(year, str) and year.strip().isdigit():
            year = int(year.strip())
        elif isinstance(year, float) and year.is_integer():
            year = int(year)
        doi = clean_doi(str(a.get("doi") or ""))
        if doi and not DOI_PATTERN.match(doi):
            logger.warning("%s: DOI %r is not a DOI; recorded in the description", where, doi)
            a["description"] = f"{a.get('description') or ''} (source DOI field: {doi})".strip()
            doi = ""
        description = a.get("description") or describe_import(a)
        notes = [f"source ID {pname}"] if label != pname else []
        if assumed:
            notes.append(f"pairs tested unknown in the source; {n} assumed")
        if notes:
            description = f"{description} ({'; '.join(notes)})".strip()
        try:
            if pop.pre.size == 0 or pop.post.size == 0:
                raise FieldProblem(where, "pre" if pop.pre.size == 0 else "post", "is empty")
            m = Measurement(
                id=label,
                pre=Selector(ids=tuple(int(i) for i in ids[pop.pre])),
                post=Selector(ids=tuple(int(i) for i in ids[pop.post])),
                probability=a["probability"],
                n_pairs=n,
                protocol=proto,  # type: ignore[arg-type]
                species=a.get("species") or "unknown",
                citation=Citation(
                    authors=a["authors"], year=year, doi=doi,
                    title=a.get("title") or "", journal=a.get("journal") or "",
                ),
                description=description,
                # a slice mask: the research code averages, over presynaptic neurons, the
                # connected fraction of each one's listed candidates
                eligibility="listed" if pop.pair_pre is not None else "all",
                source_population=str(pname) if pop.pair_pre is not None else "",
                statistic="per_pre" if proto == "slice" else "pairs",
            )
        except FieldProblem as err:
            raise MeasurementError(
                f"{where}, attrs[{err.field_name!r}]: {err.detail}"
            ) from None
        out.append(m)
    label = name or str(model.attrs.get("name") or "imported")
    return MeasurementSet(
        name=label,
        measurements=tuple(out),
        source=f"model:{model.attrs.get('source', model.attrs.get('content_hash', ''))}",
    )

# -- measurement sets defined by a model's data source --------------------------------------



def resolve_measurement_set(
    name_or_path: str | os.PathLike[str] | MeasurementSet,
    *,
    model: StructuralModel | None = None,
    select: Sequence[str] | None = None,
    default_n_pairs: int | None = None,
) -> MeasurementSet:
    """The measurement set every command means by a name: ``"model"`` (the populations of
    ``model``, see :func:`wiring.measurements.measurement_set_from_model`), a built-in name or
    a file (see :func:`wiring.measurements.load_measurement_set`), restricted to ``select``
    (ids or labels, in that order; ``["all"]`` or None: every one, or for a model its default
    experiment).

    Raises
    ------
    MeasurementError
        ``"model"`` without a model, an unknown set, or ``select`` naming no measurement.
    """
    if isinstance(name_or_path, str) and name_or_path == MODEL_SET:
        if model is None:
            raise MeasurementError(
                "measurement set 'model' means the measurement populations of an imported "
                "structural model; name its store (--anatomy / --model STORE)"
            )
        return set_from_model(model, name=None, default_n_pairs=default_n_pairs, select=select)
    return select_measurements(load_measurement_set(name_or_path), select)


# -- measurement sets defined by a model's data source --------------------------------------

def measurement_set_from_model(
    model: StructuralModel,
    *,
    name: str | None = None,
    default_n_pairs: int | None = None,
    select: Sequence[str] | None = None,
) -> MeasurementSet:
    """The measurements defined by a model's source populations (e.g. an imported folder).

    Every population whose ``attrs`` hold a ``probability`` is a measurement over its pre ×
    post pairs (selectors of external ids, ``eligibility="all"``: the source defines the
    pairs), named by ``attrs["label"]`` (readable labels such as ``L4``, ``L4SEP`` that the
    feature-table importer derives from the folder's metadata) or else the population name
    (the source ID, also recorded in the description). ``attrs`` keys: ``probability``,
    ``n_pairs``, ``protocol`` (``invivo``/``slice``/``invitro``), ``species`` (default
    ``"unknown"``), ``authors``, ``year``, ``doi`` (prefixes removed), ``title``, optional
    ``journal``, ``description`` (default: made from ``pre_type``/``post_type``/
    ``only_septum``).

    Parameters
    ----------
    model
        A model with ``populations``.
    name
        Set name (default ``model.attrs["name"]`` or ``"imported"``).
    default_n_pairs
        Pairs tested for populations whose ``n_pairs`` is missing or not positive (the source
        format marks unknown counts with -1); without it such populations are an error.
    select
        Labels or source IDs to keep, in the order of ``x``; ``["all"]``: every one. Default:
        the source's default experiment when the model records one
        (``attrs["default_measurements"]``: the research code's seven in vivo measurements, in
        the paper's order), else every measurement population in the model's order.

    Raises
    ------
    MeasurementError
        No usable population, a ``select`` entry naming none, or a bad / missing attribute of
        a selected population (naming population and key).
    """
    return set_from_model(
        model, name=name, default_n_pairs=default_n_pairs, select=select
    )
