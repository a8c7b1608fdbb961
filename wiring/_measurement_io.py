"""Reading and writing measurement sets: TOML/CSV files and a model's source populations.

The value types and their checks live in :mod:`wiring.measurements`; this module knows the
layout of the files, turns raw records into validated objects and re-raises every problem with
where it came from (file, row, field; or model population and attribute). It imports
:mod:`wiring.measurements` lazily, inside functions, because that module imports this one.

TOML layout::

    schema_version = 1
    name = "vpm-invivo"                 # optional, defaults to the file stem
    description = "..."                 # optional
    [[measurement]]                     # one table per measurement, in order
    id = "L4"
    pre = "VPM;column=C2;region=barreloid"     # selector text, or an inline table
    post = { cell_types = ["L4PY", "L4sp", "L4ss"], regions = ["column"] }
    probability = 0.43
    n_pairs = 40
    ...                                 # the remaining fields of MEASUREMENT_FIELDS

CSV layout: a header row naming columns from :data:`MEASUREMENT_FIELDS` (any order; the required
ones must be present), then one row per measurement; ``pre``/``post`` hold selector text (quote
it: it contains commas). Empty cells of optional columns take the default.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import tempfile
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wiring.errors import MeasurementError, OutputExistsError, SelectionError

logger = logging.getLogger("wiring.measurements")

if TYPE_CHECKING:
    from anatomy.model import StructuralModel
    from wiring.measurements import Measurement, MeasurementSet
    from wiring.selectors import Selector

__all__ = [
    "ALL",
    "DOI_PATTERN",
    "IMPORT_PROTOCOLS",
    "MEASUREMENT_FIELDS",
    "MODEL_SET",
    "OPTIONAL_FIELDS",
    "REQUIRED_FIELDS",
    "SCHEMA_VERSION",
    "FieldProblem",
    "RawRecord",
    "RawSet",
    "clean_doi",
    "convert_text",
    "describe_import",
    "is_int",
    "is_real",
    "measurement_from_values",
    "read_csv",
    "read_toml",
    "resolve_measurement_set",
    "select_measurements",
    "selector_of",
    "set_from_model",
    "set_from_raw",
    "surname",
    "write_csv",
    "write_text_atomic",
    "write_toml",
]

#: Version of the TOML layout written by :func:`write_toml`.
SCHEMA_VERSION = 1

#: Every field of a measurement record, in file order, with a one-line meaning.
MEASUREMENT_FIELDS: dict[str, str] = {
    "id": "unique identifier within the set (no whitespace)",
    "pre": "presynaptic population: selector text or table (see wiring.selectors)",
    "post": "postsynaptic population: selector text or table",
    "probability": "measured connection probability, a number in [0, 1]",
    "n_pairs": "number of pairs tested, an integer > 0",
    "protocol": "'invivo' or 'slice'",
    "species": "e.g. 'rat'",
    "authors": "author list, e.g. 'Bruno RM, Sakmann B'",
    "year": "publication year, an integer",
    "doi": "DOI without prefix, e.g. '10.1126/science.1124593' (may be empty)",
    "title": "article title (optional)",
    "journal": "journal, volume and pages (optional)",
    "description": "free text (optional)",
    "eligibility": "'protocol' (default: slice emulation for slice data) or 'all' pairs",
}
#: Fields every record must give.
REQUIRED_FIELDS: tuple[str, ...] = (
    "id", "pre", "post", "probability", "n_pairs", "protocol", "species", "authors", "year", "doi",
)
#: Optional fields and their defaults.
OPTIONAL_FIELDS: dict[str, str] = {
    "title": "",
    "journal": "",
    "description": "",
    "eligibility": "protocol",
}
_TOP_KEYS = ("schema_version", "name", "description", "measurement")


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One measurement record as read: values (typed for TOML, text for CSV) and its location."""

    values: dict[str, Any]
    where: str  # e.g. "row 3 (line 4)" or "[[measurement]] 3"
    textual: bool  # True when every value is a string to be parsed (CSV)


@dataclass(frozen=True, slots=True)
class RawSet:
    """A measurement-set file as read: metadata and raw records."""

    path: Path
    name: str
    description: str
    records: list[RawRecord]


def _err(path: Path, message: str) -> MeasurementError:
    return MeasurementError(f"{path}: {message}")


def _unknown_field(path: Path, where: str, key: str) -> MeasurementError:
    hint = get_close_matches(key, list(MEASUREMENT_FIELDS), n=1)
    suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
    return _err(
        path,
        f"{where}: unknown field {key!r}; known fields are {', '.join(MEASUREMENT_FIELDS)}."
        + suggestion,
    )


def read_toml(path: Path) -> RawSet:
    """Read a measurement-set TOML file into raw records (no field validation yet)."""
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise _err(path, f"not valid TOML: {err}") from err
    except UnicodeDecodeError as err:
        raise _err(path, f"not UTF-8 text: {err}") from err
    for key in doc:
        if key not in _TOP_KEYS:
            hint = get_close_matches(key, _TOP_KEYS, n=1)
            suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
            raise _err(
                path,
                f"unknown top-level key {key!r}; allowed are {', '.join(_TOP_KEYS)}.{suggestion}",
            )
    version = doc.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise _err(
            path,
            f"schema_version = {version!r} is not supported; this version reads "
            f"{SCHEMA_VERSION}. Upgrade the package or rewrite the file",
        )
    name = doc.get("name", path.stem)
    description = doc.get("description", "")
    for key, value in (("name", name), ("description", description)):
        if not isinstance(value, str):
            raise _err(path, f"top-level {key!r} must be a string, got {value!r}")
    items = doc.get("measurement")
    if items is None:
        raise _err(path, "no [[measurement]] tables; a set needs at least one measurement")
    if not isinstance(items, list) or not all(isinstance(t, dict) for t in items):
        raise _err(path, "'measurement' must be an array of tables written as [[measurement]]")
    records: list[RawRecord] = []
    for k, table in enumerate(items, start=1):
        where = f"[[measurement]] {k}"
        if isinstance(table.get("id"), str):
            where += f" (id {table['id']!r})"
        for key in table:
            if key not in MEASUREMENT_FIELDS:
                raise _unknown_field(path, where, key)
        records.append(RawRecord(dict(table), where, textual=False))
    return RawSet(path, name, description, records)


def read_csv(path: Path) -> RawSet:
    """Read a measurement-set CSV file (header row, one row per measurement)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise _err(path, f"not UTF-8 text: {err}") from err
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise _err(path, "empty file; expected a header row naming the columns") from None
    except csv.Error as err:
        raise _err(path, f"line 1: malformed CSV: {err}") from err
    header = [h.strip() for h in header]
    for col in header:
        if col not in MEASUREMENT_FIELDS:
            raise _unknown_field(path, "line 1 (header)", col)
    seen: set[str] = set()
    for col in header:
        if col in seen:
            raise _err(path, f"line 1 (header): column {col!r} appears twice")
        seen.add(col)
    missing = [f for f in REQUIRED_FIELDS if f not in header]
    if missing:
        raise _err(
            path,
            f"line 1 (header): missing required column(s) {', '.join(map(repr, missing))}; "
            f"required are {', '.join(REQUIRED_FIELDS)}",
        )
    records: list[RawRecord] = []
    row = 0
    try:
        for cells in reader:
            line = reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue
            row += 1
            where = f"row {row} (line {line})"
            if len(cells) != len(header):
                raise _err(
                    path,
                    f"{where}: {len(cells)} cells but the header has {len(header)} columns "
                    "(quote selector text: it contains commas)",
                )
            values = {
                col: cell.strip()
                for col, cell in zip(header, cells, strict=True)
                if cell.strip() or col in REQUIRED_FIELDS
            }
            records.append(RawRecord(values, where, textual=True))
    except csv.Error as err:
        raise _err(path, f"line {reader.line_num}: malformed CSV: {err}") from err
    if not records:
        raise _err(path, "no measurement rows after the header")
    return RawSet(path, path.stem, "", records)


# -- writing ---------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write non-finite float {value!r} to TOML")
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are a subset of TOML basic-string escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) to TOML")


def _toml_key(key: str) -> str:
    if key and all(c.isalnum() or c in "_-" for c in key) and key.isascii():
        return key
    return json.dumps(key)


def write_text_atomic(path: Path, text: str, *, overwrite: bool) -> Path:
    """Write ``text`` to ``path`` via a temporary file and rename; refuse an existing path."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{path} already exists; choose another path or pass overwrite=True (--overwrite)"
        )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_toml(
    path: Path,
    *,
    name: str,
    description: str,
    records: Sequence[Mapping[str, Any]],
    overwrite: bool = False,
) -> Path:
    """Write records (field -> JSON-native value) as a measurement-set TOML file."""
    lines = [
        f"schema_version = {SCHEMA_VERSION}",
        f"name = {_toml_value(name)}",
    ]
    if description:
        lines.append(f"description = {_toml_value(description)}")
    for rec in records:
        lines += ["", "[[measurement]]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in rec.items()]
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)  # never write a file we cannot read back
    return write_text_atomic(path, text, overwrite=overwrite)


def write_csv(
    path: Path, records: Sequence[Mapping[str, Any]], *, overwrite: bool = False
) -> Path:
    """Write records (field -> str/int/float) as a measurement-set CSV file."""
    columns = [f for f in MEASUREMENT_FIELDS if any(f in r for r in records)]
    rows: Iterator[list[str]] = (
        [_csv_cell(r.get(c, "")) for c in columns] for r in records
    )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return write_text_atomic(path, buf.getvalue(), overwrite=overwrite)


def _csv_cell(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


# -- records -> validated objects (imports wiring.measurements lazily: it imports us) -------

#: A DOI without prefix: ``10.<registrant>/<suffix>``.
DOI_PATTERN = re.compile(r"^10\.\d{4,9}/\S+$")


_INITIALS = re.compile(r"^[A-Z\u00c0-\u00de]{1,3}\.?$")


def surname(author: str) -> str:
    """Surname of one author written either way: ``"Bruno RM"`` (surname, then initials) or
    ``"Randy M Bruno"`` (given names first: the last word)."""
    words = author.split()
    if len(words) > 1 and _INITIALS.match(words[-1]):
        return " ".join(words[:-1])
    return words[-1]


class FieldProblem(MeasurementError):
    """A bad value of one field; loaders re-raise it with the file and row."""

    def __init__(self, owner: str, field_name: str, detail: str) -> None:
        super().__init__(f"{owner}, field {field_name!r}: {detail}")
        self.field_name = field_name
        self.detail = detail


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (Python or numpy), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or numpy), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def convert_text(name: str, text: str) -> Any:
    """Parse a CSV cell of a numeric field; raises FieldProblem on bad text."""
    if name == "probability":
        try:
            return float(text)
        except ValueError:
            raise FieldProblem("record", name, f"{text!r} is not a number") from None
    if name in ("n_pairs", "year"):
        try:
            return int(text)
        except ValueError:
            pass
        try:
            value = float(text)
        except ValueError:
            raise FieldProblem("record", name, f"{text!r} is not an integer") from None
        raise FieldProblem("record", name, f"{value!r} is not an integer")
    return text


def selector_of(name: str, value: Any) -> Selector:
    """The selector of a ``pre``/``post`` value (text or table); raises FieldProblem."""
    from wiring.selectors import Selector, parse_selector

    try:
        if isinstance(value, str):
            return parse_selector(value)
        if isinstance(value, Mapping):
            return Selector.from_dict(value)
    except SelectionError as err:
        raise FieldProblem("record", name, str(err)) from None
    raise FieldProblem(
        "record", name, f"must be selector text or a table, got {value!r} ({type(value).__name__})"
    )


def measurement_from_values(values: Mapping[str, Any], *, textual: bool) -> Measurement:
    """A validated Measurement from one record; raises FieldProblem naming the field."""
    from wiring.measurements import Citation, Measurement

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
    from wiring.measurements import MeasurementSet

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
    from wiring.measurements import PROTOCOLS, Citation, Measurement, MeasurementSet
    from wiring.selectors import Selector

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
                eligibility="all",
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
    from wiring.measurements import load_measurement_set

    if isinstance(name_or_path, str) and name_or_path == MODEL_SET:
        if model is None:
            raise MeasurementError(
                "measurement set 'model' means the measurement populations of an imported "
                "structural model; name its store (--anatomy / --model STORE)"
            )
        return set_from_model(model, name=None, default_n_pairs=default_n_pairs, select=select)
    return select_measurements(load_measurement_set(name_or_path), select)
