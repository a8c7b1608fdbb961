"""Paired-recording measurements, measurement sets, and experiment emulation (slices).

A :class:`Measurement` is data: the pre- and postsynaptic populations as
:class:`~wiring.selectors.Selector` values, the measured connection probability, the number of
pairs tested, the protocol (``"invivo"`` or ``"slice"``), the species and the :class:`Citation`.
A :class:`MeasurementSet` is an ordered, validated collection of them; its order is the order of
the simulator's ``x`` and of ``x_o``. Sets load from TOML or CSV (:func:`load_measurement_set`,
file layouts in :mod:`wiring._measurement_io`), and two literature sets ship with the package:

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Literal

import numpy as np

from anatomy.model import StructuralModel
from wiring import _measurement_io as mio
from wiring._measurement_io import DOI_PATTERN, FieldProblem, is_int, is_real
from wiring._typing import IntArray
from wiring.errors import MeasurementError, SelectionError
from wiring.selectors import Selector, select

__all__ = [
    "MODEL_SET",
    "PROTOCOLS",
    "Citation",
    "Measurement",
    "MeasurementSet",
    "Population",
    "SliceConfig",
    "list_measurement_sets",
    "load_measurement_set",
    "measurement_set_from_model",
    "population",
    "populations",
    "resolve_measurement_set",
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
#: The set name that means "the measurement populations of the structural model".
MODEL_SET = mio.MODEL_SET


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
                    "use wiring.selectors.parse_selector()"
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
        return mio.measurement_from_values(flat, textual=False)

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
        return mio.set_from_raw(mio.read_toml(_existing(path)), source=str(path))

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> MeasurementSet:
        """Read and validate a CSV measurement set; errors name the file, row/line and field.

        Columns: a header row with the fields of
        :data:`wiring._measurement_io.MEASUREMENT_FIELDS` (``id, pre, post, probability,
        n_pairs, protocol, species, authors, year, doi`` required; ``title, journal,
        description, eligibility`` optional). The set is named after the file stem.
        """
        return mio.set_from_raw(mio.read_csv(_existing(path)), source=str(path))


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
        return mio.set_from_raw(raw, source=f"builtin:{text}")
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


# -- populations and experiment emulation ----------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SliceConfig:
    """How an in vitro slice restricts the pairs of a slice measurement.

    The slab is cut perpendicular to the pia: its normal is the tangential ``axis`` (``"x"`` or
    ``"y"`` of ``soma_um``), it is ``thickness_um`` thick and centred at ``center_um``, or, by
    default, at the median soma coordinate along ``axis`` of the population's neurons (pre ∪
    post) - a fixed slab through the middle of the recorded population, as when a slice is cut
    through the barrel of interest. A pair (i, j) is eligible when both somata lie in the slab
    (``|coord - center| <= thickness_um / 2``), their intersomatic distance is at most
    ``max_distance_um`` (``math.inf`` for no limit) and i != j. ``distance="euclidean"``
    (default) measures the 3-d distance; ``"lateral"`` only the tangential (x, y) offset, as
    for vertically aligned interlaminar pairs (e.g. L4 -> L2/3).
    """

    thickness_um: float = 300.0
    max_distance_um: float = 100.0
    axis: Literal["x", "y"] = "x"
    center_um: float | None = None
    distance: Literal["euclidean", "lateral"] = "euclidean"

    def __post_init__(self) -> None:
        t = self.thickness_um
        if not is_real(t) or not (math.isfinite(float(t)) and float(t) > 0):
            raise MeasurementError(
                f"SliceConfig.thickness_um must be a positive number of µm, got {t!r}"
            )
        d = self.max_distance_um
        if not is_real(d) or math.isnan(float(d)) or float(d) <= 0:
            raise MeasurementError(
                f"SliceConfig.max_distance_um must be > 0 (math.inf for no limit), got {d!r}"
            )
        if self.axis not in ("x", "y"):
            raise MeasurementError(
                f"SliceConfig.axis must be 'x' or 'y' (the slab normal, tangential to the pia), "
                f"got {self.axis!r}"
            )
        c = self.center_um
        if c is not None and (not is_real(c) or not math.isfinite(float(c))):
            raise MeasurementError(f"SliceConfig.center_um must be a finite number or None, got {c!r}")
        if self.distance not in ("euclidean", "lateral"):
            raise MeasurementError(
                f"SliceConfig.distance must be 'euclidean' or 'lateral', got {self.distance!r}"
            )
        object.__setattr__(self, "thickness_um", float(t))
        object.__setattr__(self, "max_distance_um", float(d))

    def to_dict(self) -> dict[str, Any]:
        """JSON-native dict (``max_distance_um`` may be ``inf``: written as ``None``)."""
        return {
            "thickness_um": self.thickness_um,
            "max_distance_um": None if math.isinf(self.max_distance_um) else self.max_distance_um,
            "axis": self.axis,
            "center_um": self.center_um,
            "distance": self.distance,
        }


def _readonly(a: IntArray) -> IntArray:
    a = np.ascontiguousarray(a, dtype=np.int64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Population:
    """The neurons and eligible pairs of one measurement in one model.

    Attributes
    ----------
    measurement_id
        The measurement's id.
    pre, post
        Sorted model neuron indices the selectors select, int64.
    pair_pre, pair_post
        Every eligible pair (i, j), i != j, int64 of equal length, in row-major order (by
        ``pre`` position, then ``post`` position). In vivo: the full product pre × post.
    """

    measurement_id: str
    pre: IntArray
    post: IntArray
    pair_pre: IntArray
    pair_post: IntArray

    def __post_init__(self) -> None:
        for name in ("pre", "post", "pair_pre", "pair_post"):
            object.__setattr__(self, name, _readonly(getattr(self, name)))
        if self.pair_pre.shape != self.pair_post.shape or self.pair_pre.ndim != 1:
            raise MeasurementError(
                f"population {self.measurement_id!r}: pair_pre {self.pair_pre.shape} and "
                f"pair_post {self.pair_post.shape} must be 1-d of equal length"
            )

    @property
    def n_eligible(self) -> int:
        """Number of eligible pairs."""
        return int(self.pair_pre.size)

    def pairs(self) -> tuple[IntArray, IntArray]:
        """``(pair_pre, pair_post)``: the eligible pairs as model neuron indices."""
        return self.pair_pre, self.pair_post


def _product_pairs(pre: IntArray, post: IntArray) -> tuple[IntArray, IntArray]:
    pp = np.repeat(pre, post.size)
    qq = np.tile(post, pre.size)
    keep = pp != qq
    return pp[keep], qq[keep]


def _slice_pairs(
    model: StructuralModel, pre: IntArray, post: IntArray, cfg: SliceConfig
) -> tuple[IntArray, IntArray, float]:
    from scipy.spatial import cKDTree

    pos = np.asarray(model.neurons.soma_um, dtype=np.float64)
    a = 0 if cfg.axis == "x" else 1
    if cfg.center_um is None:
        center = float(np.median(pos[np.union1d(pre, post), a]))
    else:
        center = float(cfg.center_um)
    half = cfg.thickness_um / 2.0
    in_slab = np.abs(pos[:, a] - center) <= half
    pre_s, post_s = pre[in_slab[pre]], post[in_slab[post]]
    if math.isinf(cfg.max_distance_um) or pre_s.size == 0 or post_s.size == 0:
        pp, qq = _product_pairs(pre_s, post_s)
        return pp, qq, center
    dims = 3 if cfg.distance == "euclidean" else 2
    # All (a, b) within the distance, zero distances included, as a structured array (i, j, v).
    close = cKDTree(pos[pre_s, :dims]).sparse_distance_matrix(
        cKDTree(pos[post_s, :dims]), cfg.max_distance_um, output_type="ndarray"
    )
    # Row-major order (by pre, then post) via one sort of the flat pair key.
    key = np.sort(np.asarray(close["i"], np.int64) * post_s.size + np.asarray(close["j"], np.int64))
    pp = pre_s[key // post_s.size]
    qq = post_s[key % post_s.size]
    keep = pp != qq
    return pp[keep], qq[keep], center


def population(
    model: StructuralModel, measurement: Measurement, *, slice_config: SliceConfig | None = None
) -> Population:
    """The neurons and eligible pairs of ``measurement`` in ``model``.

    Parameters
    ----------
    model
        The structural model.
    measurement
        The measurement.
    slice_config
        Slice emulation for ``"slice"`` measurements (``None``: ``SliceConfig()``, a 300 µm slab
        and 100 µm intersomatic distance). Ignored for in vivo measurements and for
        ``eligibility="all"``.

    Raises
    ------
    SelectionError
        A selector is invalid for the model, selects nobody, or no pair is eligible.
    """
    try:
        pre = select(model, measurement.pre)
        post = select(model, measurement.post)
    except SelectionError as err:
        raise SelectionError(f"measurement {measurement.id!r}: {err}") from None
    if measurement.protocol == "slice" and measurement.eligibility == "protocol":
        cfg = slice_config if slice_config is not None else SliceConfig()
        pp, qq, center = _slice_pairs(model, pre, post, cfg)
        if pp.size == 0:
            raise SelectionError(
                f"measurement {measurement.id!r}: no eligible pair in the slice "
                f"({pre.size} pre and {post.size} post neurons; slab {cfg.thickness_um:g} µm "
                f"along {cfg.axis} centred at {center:.1f} µm, max {cfg.distance} distance "
                f"{cfg.max_distance_um:g} µm); use a thicker slab or a larger max_distance_um"
            )
    else:
        pp, qq = _product_pairs(pre, post)
        if pp.size == 0:
            raise SelectionError(
                f"measurement {measurement.id!r}: no eligible pair: pre and post are the same "
                "single neuron (autapses are never eligible)"
            )
    logger.debug(
        "population %s: %d pre, %d post, %d eligible pairs",
        measurement.id, pre.size, post.size, pp.size,
    )
    return Population(
        measurement_id=measurement.id, pre=pre, post=post, pair_pre=pp, pair_post=qq
    )


def populations(
    model: StructuralModel,
    mset: MeasurementSet,
    *,
    slice_config: SliceConfig | None = None,
) -> list[Population]:
    """:func:`population` of every measurement of the set ``mset``, in order."""
    return [population(model, m, slice_config=slice_config) for m in mset]


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
    return mio.set_from_model(
        model, name=name, default_n_pairs=default_n_pairs, select=select
    )


#: See :func:`wiring._measurement_io.resolve_measurement_set`.
resolve_measurement_set = mio.resolve_measurement_set
