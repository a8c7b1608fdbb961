"""Paired-recording measurements, measurement sets, and experiment emulation (slices).

A :class:`Measurement` is data: the pre- and postsynaptic populations as
:class:`~wiring.measurements.selectors.Selector` values, the measured connection probability, the number of
pairs tested, the protocol (``"invivo"`` or ``"slice"``), the species and the :class:`Citation`.
A :class:`MeasurementSet` is an ordered, validated collection of them; its order is the order of
the simulator's ``x`` and of ``x_o``. Sets load from TOML or CSV (:func:`load_measurement_set`,
file layouts in :mod:`wiring.measurements.io`), and two literature sets ship with the package:

``vpm-invivo``
    The seven in vivo measurements Boelts et al. 2023 inferred from: VPM neurons of the C2
    barreloid to L4 (column and septum), L4sp, L4ss, L5IT, L5PT and L6 excitatory cells, as
    counts (17 of 40 pairs connected, ...). Every postsynaptic population lies in the C2 column
    region, except ``L4-septum`` (the septum around C2). L4 pools the L4sp and L4ss pairs
    (``includes``; inferred from the counts).
``rat-invitro``
    Seven intracortical paired recordings in rat slices, all within the C2 column region.

:func:`population` turns a measurement into the neurons and the eligible (pre, post) pairs of a
model: in vivo, every pre × post pair; in a slice (:class:`SliceConfig`), only pairs whose somata
both lie in one slab at a patchable depth and are close enough (and their arbors are cut at the
slab surfaces by the feature extraction). Autapses (i == j) are never eligible.

Examples
--------
>>> mset = load_measurement_set("vpm-invivo")
>>> mset.names
('L4', 'L4-septum', 'L4sp', 'L4ss', 'L5IT', 'L5PT', 'L6')
>>> [f"{m.connected}/{m.n_pairs}" for m in mset]
['17/40', '6/14', '10/24', '7/11', '3/18', '4/9', '1/11']
>>> mset["L4"].includes
('L4sp', 'L4ss')
>>> str(mset["L4-septum"].post)
'cell_type=L4exc;region=septum;column=C2'
"""

from __future__ import annotations

import dataclasses
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
    ONE_OF_FIELDS,
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
    "pooling_order",
    "set_from_raw",
]

logger = logging.getLogger(__name__)

Protocol = Literal["invivo", "slice"]
Eligibility = Literal["protocol", "all", "listed"]
Statistic = Literal["pairs", "per_pre"]
#: Recording protocols a measurement can have.
PROTOCOLS: tuple[str, ...] = ("invivo", "slice")
_ELIGIBILITY: tuple[str, ...] = ("protocol", "all", "listed")
#: What a measurement reports of its tested pairs.
STATISTICS: tuple[str, ...] = ("pairs", "per_pre")
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
        """Short form, e.g. ``"Bruno & Sakmann 2006"`` or ``"Feldmeyer et al. 1999"``.

        Authors may be written surname first with initials (``"Bruno RM, Sakmann B"``) or given
        names first (``"Randy M Bruno, Bert Sakmann"``, as imported metadata does).
        """
        parts = [p.strip() for p in re.split(r",|;| & | and ", self.authors) if p.strip()]
        surnames = [mio.surname(p) for p in parts]
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
        May be left out when ``connected`` is given: it is then ``connected / n_pairs``.
    n_pairs
        Number of pairs tested (> 0); the simulator samples this many pairs by default.
    connected
        Number of tested pairs found connected (k), when the publication gives it. Then the
        observed value is exactly ``k / n_pairs`` (on the lattice of values the simulator can
        produce); a ``probability`` given as well must agree with it to the percent.
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
        see :func:`measurement_set_from_model`); ``"listed"``: the pairs the model's source
        population ``source_population`` lists (e.g. each presynaptic neuron's candidates in
        a slice mask of the research code's feature tables).
    statistic
        ``"pairs"`` (default): the connected fraction of the tested pairs; ``"per_pre"``: the
        mean, over the presynaptic neurons among the tested pairs, of the fraction of each
        one's tested pairs that are connected (the research code's statistic for slice masks).
    source_population
        Name of the model population (``model.populations``) whose listed pairs are eligible,
        for ``eligibility="listed"``.
    includes
        Ids of other measurements of the same set whose tested pairs are part of this one's
        (a pooled recording: e.g. all L4 pairs of a study, of which the L4sp and L4ss pairs are
        reported separately too). The simulator then tests the parts' sampled pairs plus
        ``n_pairs - Σ n_parts`` further pairs of this population (see
        :class:`wiring.simulation.simulator.Simulator`).

    Raises
    ------
    MeasurementError
        A field has the wrong type or value; the message names the field.
    """

    id: str
    pre: Selector
    post: Selector
    n_pairs: int
    protocol: Protocol
    species: str
    citation: Citation
    probability: float = math.nan
    connected: int | None = None
    description: str = ""
    eligibility: Eligibility = "protocol"
    includes: tuple[str, ...] = ()
    statistic: Statistic = "pairs"
    source_population: str = ""

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
        n = self.n_pairs
        if not is_int(n):
            raise FieldProblem(
                owner, "n_pairs", f"must be a positive integer, got {n!r} ({type(n).__name__})"
            )
        if int(n) <= 0:
            raise FieldProblem(
                owner, "n_pairs", f"{n!r} is not positive; give the number of pairs tested (>= 1)"
            )
        n = int(n)
        object.__setattr__(self, "n_pairs", n)
        k = self.connected
        if k is not None:
            if not is_int(k):
                raise FieldProblem(
                    owner, "connected",
                    f"must be a whole number of connected pairs, got {k!r} ({type(k).__name__})",
                )
            if not 0 <= int(k) <= n:
                raise FieldProblem(
                    owner, "connected",
                    f"{k!r} connected pairs is outside 0..{n} (n_pairs = {n})",
                )
            object.__setattr__(self, "connected", int(k))
        p = self.probability
        if not is_real(p):
            raise FieldProblem(
                owner, "probability", f"must be a number in [0, 1], got {p!r} ({type(p).__name__})"
            )
        if math.isnan(float(p)):
            if k is None:
                raise FieldProblem(
                    owner, "probability",
                    f"{p!r} is outside [0, 1] or missing; give the measured probability or the "
                    "number of pairs found connected ('connected')",
                )
            p = int(k) / n
        if not (math.isfinite(float(p)) and 0.0 <= float(p) <= 1.0):
            raise FieldProblem(
                owner, "probability",
                f"{p!r} is outside [0, 1]; give a fraction (e.g. 0.43), not a percentage",
            )
        if k is not None and abs(float(p) - int(k) / n) > 0.005 + 1e-9:
            raise FieldProblem(
                owner, "probability",
                f"{p!r} disagrees with connected / n_pairs = {k}/{n} = {int(k) / n:.4f} "
                "(they must agree to the percent)",
            )
        object.__setattr__(
            self, "probability", float(p) if k is None else int(k) / n
        )
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
        if self.statistic not in STATISTICS:
            raise FieldProblem(
                owner, "statistic",
                f"{self.statistic!r} is not a statistic; use {', '.join(map(repr, STATISTICS))}",
            )
        _check_str(owner, "source_population", self.source_population, empty_ok=True)
        if self.eligibility == "listed" and not self.source_population:
            raise FieldProblem(
                owner, "source_population",
                "is missing: eligibility 'listed' takes the pairs of a model population; name it",
            )
        inc = self.includes
        if isinstance(inc, str) or not isinstance(inc, (list, tuple)) or not all(
            isinstance(i, str) and _ID_PATTERN.match(i) for i in inc
        ):
            raise FieldProblem(
                owner, "includes",
                f"must be a list of measurement ids, got {inc!r}",
            )
        if self.id in inc:
            raise FieldProblem(owner, "includes", "a measurement cannot include itself")
        if len(set(inc)) != len(inc):
            raise FieldProblem(owner, "includes", f"{list(inc)!r} names a measurement twice")
        object.__setattr__(self, "includes", tuple(inc))
        if inc and self.statistic != "pairs":
            raise FieldProblem(
                owner, "includes",
                f"a pooled measurement reports the connected fraction of its pairs; statistic "
                f"{self.statistic!r} cannot pool",
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-native dict (selectors as dicts, the citation nested)."""
        return {
            "id": self.id,
            "pre": self.pre.to_dict(),
            "post": self.post.to_dict(),
            "probability": self.probability,
            "n_pairs": self.n_pairs,
            "connected": self.connected,
            "protocol": self.protocol,
            "species": self.species,
            "citation": self.citation.to_dict(),
            "description": self.description,
            "eligibility": self.eligibility,
            "includes": list(self.includes),
            "statistic": self.statistic,
            "source_population": self.source_population,
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
            **({} if self.connected is None else {"connected": self.connected}),
            "protocol": self.protocol,
            "species": self.species,
            **self.citation.to_dict(),
            "description": self.description,
        }
        if self.eligibility != "protocol":
            rec["eligibility"] = self.eligibility
        if self.includes:
            rec["includes"] = list(self.includes)
        if self.statistic != "pairs":
            rec["statistic"] = self.statistic
        if self.source_population:
            rec["source_population"] = self.source_population
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
        pooling_order(ms, set_name=self.name)

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
        """A new set with the given measurements, in the order given (e.g. for held-out data).

        A pooled measurement whose parts are left out keeps only the parts that remain in
        ``includes`` (without its parts it draws all its pairs itself).
        """
        keep = set(ids)
        chosen = []
        for i in ids:
            m = self[i]
            if any(p not in keep for p in m.includes):
                m = dataclasses.replace(m, includes=tuple(p for p in m.includes if p in keep))
            chosen.append(m)
        return MeasurementSet(
            name=name or f"{self.name}[{','.join(ids)}]",
            measurements=tuple(chosen),
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


def pooling_order(
    measurements: tuple[Measurement, ...] | list[Measurement], *, set_name: str = ""
) -> list[int]:
    """Positions of ``measurements`` in an order where every pooled measurement comes after
    its parts (``includes``); checks that the parts exist, that there is no cycle and that the
    parts' pairs tested do not exceed the pooled measurement's.

    Raises
    ------
    MeasurementError
        Naming the pooled measurement (record) and the problem.
    """
    where = f"measurement set {set_name!r}: " if set_name else ""
    pos = {m.id: k for k, m in enumerate(measurements)}
    for m in measurements:
        for part in m.includes:
            if part not in pos:
                hint = get_close_matches(part, list(pos), n=1)
                raise MeasurementError(
                    f"{where}measurement {m.id!r}, field 'includes': unknown measurement "
                    f"{part!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                )
        total = sum(measurements[pos[p]].n_pairs for p in m.includes)
        if total > m.n_pairs:
            raise MeasurementError(
                f"{where}measurement {m.id!r}, field 'includes': its parts tested {total} "
                f"pairs, more than its own n_pairs = {m.n_pairs}"
            )
    order: list[int] = []
    state = [0] * len(measurements)  # 0 new, 1 on the path, 2 done

    def visit(k: int, path: list[str]) -> None:
        if state[k] == 2:
            return
        mid = measurements[k].id
        if state[k] == 1:
            cycle = " -> ".join([*path[path.index(mid):], mid])
            raise MeasurementError(
                f"{where}measurement {mid!r}, field 'includes': pooled measurements form a "
                f"cycle ({cycle})"
            )
        state[k] = 1
        for part in measurements[k].includes:
            visit(pos[part], [*path, mid])
        state[k] = 2
        order.append(k)

    for k in range(len(measurements)):
        visit(k, [])
    return order


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
    given = {k: x for k, x in values.items() if (x is not None and not (textual and x == ""))
             or k in REQUIRED_FIELDS}
    if not any(k in given for k in ONE_OF_FIELDS):
        raise FieldProblem(
            "record", "probability",
            "is missing; give the measured probability or the number of pairs found connected "
            "('connected')",
        )
    v = {**OPTIONAL_FIELDS, **given}
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
        probability=v.get("probability", math.nan),
        connected=v.get("connected"),
        n_pairs=v["n_pairs"],
        protocol=v["protocol"],
        species=v["species"],
        citation=citation,
        description=v["description"],
        eligibility=v["eligibility"],
        includes=tuple(v["includes"]) if isinstance(v.get("includes"), list) else v.get(
            "includes", ()),
        statistic=v["statistic"],
        source_population=v["source_population"],
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
    try:
        return MeasurementSet(
            name=raw.name, measurements=tuple(measurements), source=source,
            description=raw.description,
        )
    except MeasurementError as err:
        raise MeasurementError(f"{raw.path}: {err}") from None
