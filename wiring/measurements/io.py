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

from wiring.errors import FieldProblem, MeasurementError, OutputExistsError, SelectionError

logger = logging.getLogger("wiring.measurements")

if TYPE_CHECKING:
    from wiring.measurements.selectors import Selector

__all__ = [
    "DOI_PATTERN",
    "MEASUREMENT_FIELDS",
    "OPTIONAL_FIELDS",
    "REQUIRED_FIELDS",
    "SCHEMA_VERSION",
    "FieldProblem",
    "RawRecord",
    "RawSet",
    "convert_text",
    "is_int",
    "is_real",
    "read_csv",
    "read_toml",
    "selector_of",
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
    "pre": "presynaptic population: selector text or table (see wiring.measurements.selectors)",
    "post": "postsynaptic population: selector text or table",
    "probability": "measured connection probability, a number in [0, 1] (optional with connected)",
    "n_pairs": "number of pairs tested, an integer > 0",
    "connected": "number of tested pairs found connected, an integer in 0..n_pairs (optional)",
    "protocol": "'invivo' or 'slice'",
    "species": "e.g. 'rat'",
    "authors": "author list, e.g. 'Bruno RM, Sakmann B'",
    "year": "publication year, an integer",
    "doi": "DOI without prefix, e.g. '10.1126/science.1124593' (may be empty)",
    "title": "article title (optional)",
    "journal": "journal, volume and pages (optional)",
    "description": "free text (optional)",
    "eligibility": "'protocol' (default: slice emulation for slice data) or 'all' pairs",
    "includes": "ids of measurements whose tested pairs are among this one's (optional)",
    "statistic": "'pairs' (default: connected fraction) or 'per_pre' (mean over pre neurons)",
    "source_population": "model population whose listed pairs are eligible ('listed')",
}
#: Fields every record must give.
REQUIRED_FIELDS: tuple[str, ...] = (
    "id", "pre", "post", "n_pairs", "protocol", "species", "authors", "year", "doi",
)
#: Fields of which a record must give at least one.
ONE_OF_FIELDS: tuple[str, ...] = ("probability", "connected")
#: Optional fields and their defaults.
OPTIONAL_FIELDS: dict[str, str] = {
    "title": "",
    "journal": "",
    "description": "",
    "eligibility": "protocol",
    "statistic": "pairs",
    "source_population": "",
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
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
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
    if name == "includes":
        return [p.strip() for p in text.split(",") if p.strip()]
    if name in ("n_pairs", "year", "connected"):
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
    from wiring.measurements.selectors import Selector, parse_selector

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
