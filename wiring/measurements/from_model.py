"""Measurement sets defined by a structural model's data source (its source populations).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from anatomy.model import StructuralModel
from wiring.errors import MeasurementError
from wiring.measurements.io import DOI_PATTERN, FieldProblem, is_int
from wiring.measurements.selectors import Selector
from wiring.measurements.sets import PROTOCOLS, Citation, Measurement, MeasurementSet

logger = logging.getLogger(__name__)

__all__ = [
    "IMPORT_PROTOCOLS",
    "clean_doi",
    "describe_import",
    "measurement_set_from_model",
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
    pre = a.get("pre_type") or a.get("pre_layer")
    post = a.get("post_type") or a.get("post_layer")
    if not pre and not post:
        return ""
    text = f"{pre or '?'} -> {post or '?'}"
    if str(a.get("only_septum", "")).lower() == "yes":
        text += " (septum only)"
    return text


def set_from_model(
    model: StructuralModel, *, name: str | None, default_n_pairs: int | None
) -> MeasurementSet:
    """See :func:`wiring.measurements.measurement_set_from_model`."""

    if not model.populations:
        raise MeasurementError(
            "the model has no source-defined populations (model.populations is empty); "
            "only imported models (e.g. anatomy.io.consbi) define measurement populations"
        )
    ids = np.asarray(model.neurons.ids, dtype=np.int64)
    out: list[Measurement] = []
    for pname, pop in model.populations.items():
        a = dict(pop.attrs)
        if "probability" not in a:
            logger.info("population %r has no 'probability' attribute: not a measurement", pname)
            continue
        where = f"model population {pname!r}"
        n = a.get("n_pairs")
        if n is None or (is_int(n) and int(n) <= 0):
            if default_n_pairs is None:
                raise MeasurementError(
                    f"{where}: attrs['n_pairs'] = {n!r} (pairs tested unknown); pass "
                    "default_n_pairs=... (the research code sampled 50 pairs)"
                )
            n = default_n_pairs
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
        try:
            if pop.pre.size == 0 or pop.post.size == 0:
                raise FieldProblem(where, "pre" if pop.pre.size == 0 else "post", "is empty")
            m = Measurement(
                id=str(pname),
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
    if not out:
        raise MeasurementError(
            "none of the model's populations carries measurement attributes ('probability')"
        )
    label = name or str(model.attrs.get("name") or "imported")
    return MeasurementSet(
        name=label,
        measurements=tuple(out),
        source=f"model:{model.attrs.get('source', model.attrs.get('content_hash', ''))}",
    )

# -- measurement sets defined by a model's data source --------------------------------------

def measurement_set_from_model(
    model: StructuralModel,
    *,
    name: str | None = None,
    default_n_pairs: int | None = None,
) -> MeasurementSet:
    """The measurements defined by a model's source populations (e.g. an imported folder).

    Every population of ``model.populations`` whose ``attrs`` hold a ``probability`` becomes a
    measurement named after the population, in the populations' order, with selectors listing
    the external ids of its pre and post neurons and ``eligibility="all"`` (the data source
    already defines the pairs; no slice emulation). Populations without ``probability`` are
    skipped (logged). Expected ``attrs`` keys: ``probability`` (in [0, 1]), ``n_pairs``,
    ``protocol`` (``invivo``/``slice``; ``invitro`` is read as ``slice``), ``species``,
    ``authors``, ``year``, ``doi``, ``title`` (optional ``journal``, ``description``; without
    a description one is made from ``pre_type``/``post_type``/``only_septum``). A missing
    ``species`` reads as ``"unknown"``; DOI prefixes (``doi:``, ``https://doi.org/``) are removed.

    Parameters
    ----------
    model
        A model with ``populations``.
    name
        Set name (default ``model.attrs["name"]`` or ``"imported"``).
    default_n_pairs
        Pairs tested for populations whose ``n_pairs`` is missing or not positive (the source
        format marks unknown counts with -1); without it such populations are an error.

    Raises
    ------
    MeasurementError
        No usable population, or a bad / missing attribute (naming population and key).
    """
    return set_from_model(model, name=name, default_n_pairs=default_n_pairs)
