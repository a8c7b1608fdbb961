"""Paired-recording measurements, measurement sets, and experiment emulation (slices).

A :class:`Measurement` is data: the pre- and postsynaptic populations as
:class:`~wiring.measurements.selectors.Selector` values, the measured connection probability, the number of
pairs tested, the protocol (``"invivo"`` or ``"slice"``), the species and the :class:`Citation`.
A :class:`MeasurementSet` is an ordered, validated collection of them; its order is the order of
the simulator's ``x`` and of ``x_o``. Sets load from TOML or CSV (:func:`load_measurement_set`,
file layouts in :mod:`wiring.measurements.io`), and two literature sets ship with the package:

``vpm-invivo``
    The seven in vivo measurements Boelts et al. 2023 inferred from: VPM neurons of the C2
    barreloid to L4 (column and septum), L4sp, L4ss, L5IT, L5PT and L6 excitatory cells. Every
    postsynaptic population lies in the C2 column region, except ``L4-septum`` (septum region).
``rat-invitro``
    Seven intracortical paired recordings in rat slices, all within the C2 column region.

:func:`population` turns a measurement into the neurons and the eligible (pre, post) pairs of a
model: in vivo, every pre × post pair; in a slice (:class:`SliceConfig`), only pairs whose somata
both lie in one slab and are close enough. Autapses (i == j) are never eligible.

Examples
--------
>>> mset = load_measurement_set("vpm-invivo")
>>> mset.names
('L4', 'L4-septum', 'L4sp', 'L4ss', 'L5IT', 'L5PT', 'L6')
>>> mset.x_o.tolist()
[0.43, 0.43, 0.42, 0.64, 0.17, 0.44, 0.09]
>>> str(mset["L4-septum"].post)
'cell_type=L4exc;region=septum'
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Literal

import numpy as np

from wiring._typing import IntArray
from wiring.errors import MeasurementError
from wiring.measurements import io as mio
from wiring.measurements.io import (
    DOI_PATTERN,
    MEASUREMENT_FIELDS,
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    FieldProblem,
    RawSet,
    convert_text,
    is_int,
    is_real,
    selector_of,
)
from wiring.measurements.selectors import Selector

__all__ = [
    "PROTOCOLS",
    "Citation",
    "Measurement",
    "MeasurementSet",
    "list_measurement_sets",
    "load_measurement_set",
    "measurement_from_values",
    "set_from_raw",
]

logger = logging.getLogger(__name__)

Protocol = Literal["invivo", "slice"]
Eligibility = Literal["protocol", "all"]
#: Recording protocols a measurement can have.
PROTOCOLS: tuple[str, ...] = ("invivo", "slice")
_ELIGIBILITY: tuple[str, ...] = ("protocol", "all")
#: Built-in sets listed first, in this order; any other ``*.toml`` in the data folder follows.
_BUILTIN_ORDER: tuple[str, ...] = ("vpm-invivo", "rat-invitro")
_ID_PATTERN = re.compile(r"^\S+$")


def _check_str(owner: str, name: str, value: Any, *, empty_ok: bool) -> str:
    if not isinstance(value, str):
        raise FieldProblem(
            owner, name, f"must be a string, got {value!r} ({type(value).__name__})"
        )
    if not empty_ok and not value.strip():
        raise FieldProblem(owner, name, "must not be empty")
    return value


@dataclass(frozen=True, slots=True)
class Citation:
    """Where a measurement was published.

    Parameters
    ----------
    authors
        Author list, e.g. ``"Bruno RM, Sakmann B"`` (surname first, comma-separated).
    year
        Publication year.
    doi
        DOI without a ``doi:`` or URL prefix (``""`` if unknown).
    title, journal
        Optional article title and journal reference.
    """

    authors: str
    year: int
    doi: str
    title: str = ""
    journal: str = ""

    def __post_init__(self) -> None:
        owner = "citation"
        _check_str(owner, "authors", self.authors, empty_ok=False)
        if not is_int(self.year) or not 1600 <= int(self.year) <= 2200:
            raise FieldProblem(
                owner, "year", f"must be an integer year such as 2006, got {self.year!r}"
            )
        object.__setattr__(self, "year", int(self.year))
        doi = _check_str(owner, "doi", self.doi, empty_ok=True)
        if doi and not DOI_PATTERN.match(doi):
            raise FieldProblem(
                owner,
                "doi",
                f"{doi!r} is not a DOI; write it as '10.<registrant>/<suffix>' without a "
                "'doi:' or 'https://doi.org/' prefix, or leave it empty",
            )
        _check_str(owner, "title", self.title, empty_ok=True)
        _check_str(owner, "journal", self.journal, empty_ok=True)

    @property
    def short(self) -> str:
        """Short form, e.g. ``"Bruno & Sakmann 2006"`` or ``"Feldmeyer et al. 1999"``."""
        parts = [p.strip() for p in re.split(r",|;| & | and ", self.authors) if p.strip()]
        surnames = [p.split()[0] for p in parts]
        if len(surnames) == 1:
            who = surnames[0]
        elif len(surnames) == 2:
            who = f"{surnames[0]} & {surnames[1]}"
        else:
            who = f"{surnames[0]} et al."
        return f"{who} {self.year}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-native dict of all fields."""
        return {
            "authors": self.authors,
            "year": self.year,
            "doi": self.doi,
            "title": self.title,
            "journal": self.journal,
        }

    def __str__(self) -> str:
        return self.short + (f", doi:{self.doi}" if self.doi else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class Measurement:
    """One measured connection probability between two populations.

    Parameters
    ----------
    id
        Identifier, unique within its set, without whitespace (names the simulator's ``x``
        column).
    pre, post
        Pre- and postsynaptic populations.
    probability
        Measured connection probability in [0, 1] (fraction of tested pairs found connected).
    n_pairs
        Number of pairs tested (> 0); the simulator samples this many pairs by default.
    protocol
        ``"invivo"`` (every pre × post pair is eligible) or ``"slice"`` (pairs are restricted by
        :class:`SliceConfig`).
    species
        E.g. ``"rat"``.
    citation
        The publication.
    description
        Free text.
    eligibility
        ``"protocol"`` (default): eligible pairs follow the protocol; ``"all"``: every
        pre × post pair is eligible whatever the protocol (populations defined by a data source,
        see :func:`measurement_set_from_model`).

    Raises
    ------
    MeasurementError
        A field has the wrong type or value; the message names the field.
    """

    id: str
    pre: Selector
    post: Selector
    probability: float
    n_pairs: int
    protocol: Protocol
    species: str
    citation: Citation
    description: str = ""
    eligibility: Eligibility = "protocol"

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID_PATTERN.match(self.id):
            raise FieldProblem(
                "measurement", "id", f"must be a non-empty string without spaces, got {self.id!r}"
            )
        owner = f"measurement {self.id!r}"
        for side in ("pre", "post"):
            if not isinstance(getattr(self, side), Selector):
                raise FieldProblem(
                    owner, side, f"must be a Selector, got {getattr(self, side)!r}; "
                    "use wiring.measurements.selectors.parse_selector()"
                )
        p = self.probability
        if not is_real(p):
            raise FieldProblem(
                owner, "probability", f"must be a number in [0, 1], got {p!r} ({type(p).__name__})"
            )
        if not (math.isfinite(float(p)) and 0.0 <= float(p) <= 1.0):
            raise FieldProblem(
                owner, "probability",
                f"{p!r} is outside [0, 1]; give a fraction (e.g. 0.43), not a percentage",
            )
        object.__setattr__(self, "probability", float(p))
        n = self.n_pairs
        if not is_int(n):
            raise FieldProblem(
                owner, "n_pairs", f"must be a positive integer, got {n!r} ({type(n).__name__})"
            )
        if int(n) <= 0:
            raise FieldProblem(
                owner, "n_pairs", f"{n!r} is not positive; give the number of pairs tested (>= 1)"
            )
        object.__setattr__(self, "n_pairs", int(n))
        if self.protocol not in PROTOCOLS:
            raise FieldProblem(
                owner, "protocol",
                f"{self.protocol!r} is not a protocol; allowed are {', '.join(map(repr, PROTOCOLS))}",
            )
        _check_str(owner, "species", self.species, empty_ok=False)
        if not isinstance(self.citation, Citation):
            raise FieldProblem(owner, "citation", f"must be a Citation, got {self.citation!r}")
        _check_str(owner, "description", self.description, empty_ok=True)
        if self.eligibility not in _ELIGIBILITY:
            raise FieldProblem(
                owner, "eligibility",
                f"{self.eligibility!r} is not allowed; use {', '.join(map(repr, _ELIGIBILITY))}",
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-native dict (selectors as dicts, the citation nested)."""
        return {
            "id": self.id,
            "pre": self.pre.to_dict(),
            "post": self.post.to_dict(),
            "probability": self.probability,
            "n_pairs": self.n_pairs,
            "protocol": self.protocol,
            "species": self.species,
            "citation": self.citation.to_dict(),
            "description": self.description,
            "eligibility": self.eligibility,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        """Inverse of :meth:`to_dict`; also accepts the flat file record (citation fields inline)."""
        flat = dict(data)
        cit = flat.pop("citation", None)
        if isinstance(cit, Mapping):
            flat.update(cit)
        return measurement_from_values(flat, textual=False)

    def to_record(self) -> dict[str, Any]:
        """Flat record of the file formats (selectors as text, citation fields inline)."""
        rec: dict[str, Any] = {
            "id": self.id,
            "pre": str(self.pre),
            "post": str(self.post),
            "probability": self.probability,
            "n_pairs": self.n_pairs,
            "protocol": self.protocol,
            "species": self.species,
            **self.citation.to_dict(),
            "description": self.description,
        }
        if self.eligibility != "protocol":
            rec["eligibility"] = self.eligibility
        return {k: v for k, v in rec.items() if v != "" or k in mio.REQUIRED_FIELDS}


@dataclass(frozen=True, slots=True, kw_only=True)
class MeasurementSet:
    """An ordered set of measurements with unique ids; its order is the order of ``x``.

    Parameters
    ----------
    name
        Short name (e.g. ``"vpm-invivo"``).
    measurements
        The measurements, in order (at least one).
    source
        Where the set came from (``"builtin:vpm-invivo"``, a file path, ``"model:..."``).
    description
        Free text.
    """

    name: str
    measurements: tuple[Measurement, ...]
    source: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        ms = tuple(self.measurements)
        if not ms:
            raise MeasurementError(f"measurement set {self.name!r} is empty; give at least one")
        seen: dict[str, int] = {}
        for k, m in enumerate(ms, start=1):
            if not isinstance(m, Measurement):
                raise MeasurementError(
                    f"measurement set {self.name!r}: item {k} is {m!r}, not a Measurement"
                )
            if m.id in seen:
                raise MeasurementError(
                    f"measurement set {self.name!r}: duplicate id {m.id!r} (items {seen[m.id]} "
                    f"and {k}); ids must be unique"
                )
            seen[m.id] = k
        object.__setattr__(self, "measurements", ms)

    # -- sequence-like access ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.measurements)

    def __iter__(self) -> Iterator[Measurement]:
        return iter(self.measurements)

    def __getitem__(self, key: int | str) -> Measurement:
        if isinstance(key, str):
            for m in self.measurements:
                if m.id == key:
                    return m
            hint = get_close_matches(key, self.names, n=1)
            raise MeasurementError(
                f"no measurement {key!r} in set {self.name!r}; ids are {', '.join(self.names)}."
                + (f" Did you mean {hint[0]!r}?" if hint else "")
            )
        return self.measurements[key]

    @property
    def names(self) -> tuple[str, ...]:
        """Measurement ids in order (the names of ``x``'s columns)."""
        return tuple(m.id for m in self.measurements)

    @property
    def x_o(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Observed connection probabilities, float64 shape (m,)."""
        return np.array([m.probability for m in self.measurements], dtype=np.float64)

    @property
    def n_pairs(self) -> IntArray:
        """Pairs tested per measurement, int64 shape (m,)."""
        return np.array([m.n_pairs for m in self.measurements], dtype=np.int64)

    def subset(self, ids: list[str] | tuple[str, ...], *, name: str | None = None) -> MeasurementSet:
        """A new set with the given measurements, in the order given (e.g. for held-out data)."""
        return MeasurementSet(
            name=name or f"{self.name}[{','.join(ids)}]",
            measurements=tuple(self[i] for i in ids),
            source=self.source,
            description=self.description,
        )

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-native dict: name, source, description and every measurement's dict."""
        return {
            "name": self.name,
            "source": self.source,
            "description": self.description,
            "measurements": [m.to_dict() for m in self.measurements],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MeasurementSet:
        """Inverse of :meth:`to_dict` (e.g. a set recorded in a run's JSON manifest).

        Raises
        ------
        MeasurementError
            A missing key or an invalid measurement (naming its position and field).
        """
        if not isinstance(data, Mapping) or "measurements" not in data:
            raise MeasurementError(
                "a measurement-set dict needs 'name' and 'measurements' (see MeasurementSet.to_dict)"
            )
        items = data["measurements"]
        if not isinstance(items, (list, tuple)):
            raise MeasurementError("'measurements' must be a list of measurement dicts")
        out = []
        for k, item in enumerate(items, start=1):
            if not isinstance(item, Mapping):
                raise MeasurementError(f"measurements[{k}] is {item!r}, not a dict")
            try:
                out.append(Measurement.from_dict(item))
            except FieldProblem as err:
                raise MeasurementError(
                    f"measurements[{k}], field {err.field_name!r}: {err.detail}"
                ) from None
        return cls(
            name=str(data.get("name", "")), measurements=tuple(out),
            source=str(data.get("source", "")), description=str(data.get("description", "")),
        )

    def content_hash(self) -> str:
        """sha256 hex of the canonical JSON of the measurements (in order).

        ``name``, ``source`` and ``description`` are not included, so the same data loaded from
        a built-in, a TOML file or a CSV file hash equal; any change of a value, selector or the
        order changes the hash.
        """
        payload = json.dumps(
            [m.to_dict() for m in self.measurements],
            sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def to_toml(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the set as TOML (refuses an existing file unless ``overwrite``)."""
        return mio.write_toml(
            Path(path), name=self.name, description=self.description,
            records=[m.to_record() for m in self.measurements], overwrite=overwrite,
        )

    def to_csv(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the set as CSV (refuses an existing file unless ``overwrite``)."""
        return mio.write_csv(
            Path(path), [m.to_record() for m in self.measurements], overwrite=overwrite
        )

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> MeasurementSet:
        """Read and validate a TOML measurement set; errors name the file, table and field."""
        return set_from_raw(mio.read_toml(_existing(path)), source=str(path))

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> MeasurementSet:
        """Read and validate a CSV measurement set; errors name the file, row/line and field.

        Columns: a header row with the fields of
        :data:`wiring.measurements.io.MEASUREMENT_FIELDS` (``id, pre, post, probability,
        n_pairs, protocol, species, authors, year, doi`` required; ``title, journal,
        description, eligibility`` optional). The set is named after the file stem.
        """
        return set_from_raw(mio.read_csv(_existing(path)), source=str(path))


def _existing(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.is_file():
        raise MeasurementError(
            f"measurement set file {str(p)!r} does not exist or is not a file"
        )
    return p


# -- built-in and named sets -----------------------------------------------------------------


def _builtin_files() -> dict[str, importlib.resources.abc.Traversable]:
    folder = importlib.resources.files("wiring") / "data" / "measurements"
    found = {
        f.name.removesuffix(".toml"): f
        for f in folder.iterdir()
        if f.is_file() and f.name.endswith(".toml")
    }
    order = [n for n in _BUILTIN_ORDER if n in found] + sorted(set(found) - set(_BUILTIN_ORDER))
    return {n: found[n] for n in order}


def list_measurement_sets() -> list[str]:
    """Names of the measurement sets shipped with the package (``vpm-invivo`` first)."""
    return list(_builtin_files())


def load_measurement_set(
    name_or_path: str | os.PathLike[str] | MeasurementSet,
) -> MeasurementSet:
    """A built-in set by name, or a set read from a ``.toml`` / ``.csv`` file.

    Parameters
    ----------
    name_or_path
        ``"vpm-invivo"``, ``"rat-invitro"`` (see :func:`list_measurement_sets`), a path, or a
        :class:`MeasurementSet` (returned unchanged).

    Raises
    ------
    MeasurementError
        Unknown name (listing the built-ins), missing file, unsupported suffix, or invalid
        content (naming the file, row and field).
    """
    if isinstance(name_or_path, MeasurementSet):
        return name_or_path
    builtins = _builtin_files()
    text = os.fspath(name_or_path)
    if isinstance(name_or_path, str) and text in builtins:
        with importlib.resources.as_file(builtins[text]) as path:
            raw = mio.read_toml(path)
        return set_from_raw(raw, source=f"builtin:{text}")
    path = Path(text)
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return MeasurementSet.from_toml(path)
    if suffix == ".csv":
        return MeasurementSet.from_csv(path)
    if path.exists():
        raise MeasurementError(
            f"cannot read measurement set {text!r}: unsupported file type {path.suffix!r}; "
            "use a .toml or .csv file"
        )
    hint = get_close_matches(text, list(builtins), n=1)
    raise MeasurementError(
        f"unknown measurement set {text!r}; built-in sets are {', '.join(builtins)}, or give "
        "the path of a .toml or .csv file." + (f" Did you mean {hint[0]!r}?" if hint else "")
    )


# -- records -> validated objects ------------------------------------------------------------


def measurement_from_values(values: Mapping[str, Any], *, textual: bool) -> Measurement:
    """A validated Measurement from one record; raises FieldProblem naming the field."""

    for key in values:
        if key not in MEASUREMENT_FIELDS:
            hint = get_close_matches(str(key), list(MEASUREMENT_FIELDS), n=1)
            raise FieldProblem(
                "record", str(key),
                f"unknown field; known fields are {', '.join(MEASUREMENT_FIELDS)}."
                + (f" Did you mean {hint[0]!r}?" if hint else ""),
            )
    for key in REQUIRED_FIELDS:
        if key not in values or (textual and values[key] == "" and key != "doi"):
            raise FieldProblem("record", key, f"is missing ({MEASUREMENT_FIELDS[key]})")
    v = {**OPTIONAL_FIELDS, **values}
    if textual:
        v = {k: convert_text(k, x) for k, x in v.items()}
    citation = Citation(
        authors=v["authors"], year=v["year"], doi=v["doi"], title=v["title"],
        journal=v["journal"],
    )
    return Measurement(
        id=v["id"],
        pre=selector_of("pre", v["pre"]),
        post=selector_of("post", v["post"]),
        probability=v["probability"],
        n_pairs=v["n_pairs"],
        protocol=v["protocol"],
        species=v["species"],
        citation=citation,
        description=v["description"],
        eligibility=v["eligibility"],
    )


def set_from_raw(raw: RawSet, *, source: str) -> MeasurementSet:
    """Validated MeasurementSet from a file's raw records; errors name file, row and field."""

    measurements: list[Measurement] = []
    first_row: dict[str, str] = {}
    for rec in raw.records:
        try:
            m = measurement_from_values(rec.values, textual=rec.textual)
        except FieldProblem as err:
            raise MeasurementError(
                f"{raw.path}: {rec.where}, field {err.field_name!r}: {err.detail}"
            ) from None
        if m.id in first_row:
            raise MeasurementError(
                f"{raw.path}: {rec.where}, field 'id': duplicate id {m.id!r} (first in "
                f"{first_row[m.id]}); ids must be unique within a set"
            )
        first_row[m.id] = rec.where
        measurements.append(m)
    return MeasurementSet(
        name=raw.name, measurements=tuple(measurements), source=source,
        description=raw.description,
    )
