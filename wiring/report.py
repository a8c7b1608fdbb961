"""The run report: every figure as PNG, the numbers as ``summary.json`` (and one CSV per table),
and one self-contained ``index.html`` that shows them with the run's configuration.

The HTML page needs no network and no other file: images are embedded as base64 ``data:`` URIs
and the style sheet is inline, so the page can be mailed or archived on its own.

A section is anything with ``title``, ``to_dict()``, ``figures()`` (file stem -> matplotlib
Figure) and optionally ``table()`` (list of row dicts) — every result of
:mod:`wiring.analysis` — or an explicit :class:`ReportSection`.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from anatomy.atomic import move_into_place
from anatomy.storeguard import refuse_foreign, remove_leftovers, store_lock
from wiring.analysis._common import jsonable
from wiring.errors import InvalidParameterError, OutputExistsError

__all__ = [
    "REPORT_FORMAT",
    "ReportSection",
    "as_section",
    "check_report_target",
    "is_report_dir",
    "write_report",
]

logger = logging.getLogger(__name__)

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
#: The ``format`` entry of ``summary.json``: marks a directory this package may replace.
REPORT_FORMAT = "wiring-sbi report"
_VERSIONED = ("wiring-sbi", "numpy", "scipy", "torch", "sbi", "matplotlib", "zarr")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;
  color:#1b1f24;background:#fafafa}
header{background:#1f3b57;color:#fff;padding:1.2em 2em}
header h1{margin:0 0 .2em 0;font-size:1.5em}
header p{margin:0;opacity:.85}
main{max-width:1100px;margin:0 auto;padding:1em 2em 3em}
nav a{margin-right:1em}
section{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:1em 1.5em;
  margin:1.2em 0}
h2{border-bottom:1px solid #e1e4e8;padding-bottom:.3em}
figure{margin:1em 0;text-align:center}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#57606a}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0;display:block;overflow-x:auto}
th,td{border:1px solid #d0d7de;padding:.25em .6em;text-align:right;white-space:nowrap}
th{background:#f3f5f7}
td.s,th.s{text-align:left}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;font-size:.9em}
dt{font-weight:600}
dd{margin:0}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.8em;border-radius:4px}
.pass{color:#1a7f37;font-weight:700}.fail{color:#cf222e;font-weight:700}
"""


@dataclass(frozen=True, kw_only=True)
class ReportSection:
    """One section of the report.

    ``key`` names the files (``<key>_<figure>.png``, ``<key>.csv``) and the entry in
    ``summary.json``; ``summary`` must be JSON-native; ``figures`` maps file stems to
    matplotlib Figures; ``table`` rows become a CSV file and an HTML table.
    """

    key: str
    title: str
    summary: Mapping[str, Any] = field(default_factory=dict)
    figures: Mapping[str, Any] = field(default_factory=dict)
    table: Sequence[Mapping[str, Any]] | None = None
    text: str = ""

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise InvalidParameterError(
                f"report section key {self.key!r} must be letters, digits, '_' or '-' (it names "
                f"files), e.g. 'posterior'"
            )
        for stem in self.figures:
            if not _KEY.match(stem):
                raise InvalidParameterError(
                    f"figure name {stem!r} in section {self.key!r} must be letters, digits, '_' "
                    f"or '-'"
                )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "section"


def as_section(result: Any, *, key: str | None = None, text: str = "") -> ReportSection:
    """A :class:`ReportSection` from an analysis result (``title``, ``to_dict()``,
    ``figures()``, optional ``table()``); a ReportSection is returned unchanged."""
    if isinstance(result, ReportSection):
        return result
    missing = [a for a in ("title", "to_dict", "figures") if not hasattr(result, a)]
    if missing:
        raise InvalidParameterError(
            f"cannot put a {type(result).__name__} in the report: it lacks {missing}; pass an "
            f"analysis result or a wiring.report.ReportSection"
        )
    title = str(result.title)
    table = result.table() if hasattr(result, "table") else None
    return ReportSection(key=key or _slug(title), title=title, summary=result.to_dict(),
                         figures=dict(result.figures()), table=table, text=text)


def _versions() -> dict[str, str]:
    out = {}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _png_bytes(fig: Any, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if v is None:
        return "–"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


def _html_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    head = "".join(f'<th class="s">{html.escape(str(c))}</th>' for c in cols)
    body = []
    for row in rows:
        cells = []
        for c in cols:
            v = row.get(c)
            cls = "" if isinstance(v, (int, float)) and not isinstance(v, bool) else ' class="s"'
            cells.append(f"<td{cls}>{html.escape(_fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html_facts(summary: Mapping[str, Any]) -> str:
    items = []
    for k, v in summary.items():
        if isinstance(v, (dict, list)) and not (
            isinstance(v, list) and v and not isinstance(v[0], (dict, list))
        ):
            continue
        text = html.escape(_fmt(v))
        if k == "passed" and isinstance(v, bool):
            text = f'<span class="{"pass" if v else "fail"}">{text}</span>'
        elif k == "verdict" and v in ("passed", "FAILED"):
            text = f'<span class="{"pass" if v == "passed" else "fail"}">{text}</span>'
        items.append(f"<dt>{html.escape(str(k))}</dt><dd>{text}</dd>")
    return f"<dl>{''.join(items)}</dl>" if items else ""


def _render_html(title: str, config: Mapping[str, Any], sections: Sequence[ReportSection],
                 images: Mapping[str, Mapping[str, bytes]], created: str,
                 versions: Mapping[str, str]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{html.escape(title)}</h1><p>created {html.escape(created)}</p></header>",
        "<main><nav>",
        *(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections),
        '<a href="#configuration">Configuration</a></nav>',
    ]
    for s in sections:
        parts.append(f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2>')
        if s.text:
            parts.append(f"<p>{html.escape(s.text)}</p>")
        parts.append(_html_facts(s.summary))
        for stem, png in images[s.key].items():
            uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            parts.append(f'<figure><img src="{uri}" alt="{html.escape(s.title)}: '
                         f'{html.escape(stem)}"><figcaption>{html.escape(s.key)}_'
                         f'{html.escape(stem)}.png</figcaption></figure>')
        if s.table:
            parts.append(_html_table(s.table))
        parts.append("</section>")
    cfg = json.dumps(jsonable(config), indent=2, sort_keys=True)
    ver = json.dumps(dict(versions), indent=2)
    parts += [
        '<section id="configuration"><h2>Configuration</h2>',
        f'<pre id="config">{html.escape(cfg)}</pre>',
        f"<h3>Versions</h3><pre>{html.escape(ver)}</pre></section>",
        "</main></body></html>",
    ]
    return "\n".join(parts)


def write_report(
    out_dir: str | os.PathLike[str],
    *,
    config: Mapping[str, Any],
    sections: Sequence[Any],
    title: str = "Wiring-rule inference report",
    overwrite: bool = False,
    dpi: int = 110,
) -> Path:
    """Write the report directory: ``<key>_<figure>.png``, ``<key>.csv``, ``summary.json`` and
    ``index.html``.

    Parameters
    ----------
    out_dir
        The report directory; must not exist (or be empty) unless ``overwrite``.
    config
        The run's configuration (JSON-native after numpy conversion); shown on the page and
        stored in ``summary.json``.
    sections
        Analysis results or :class:`ReportSection` objects, in page order.
    title
        Page title.
    overwrite
        Replace an existing directory (the old one is removed only after the new one is
        complete).
    dpi
        Resolution of the PNG files.

    Returns
    -------
    Path
        ``out_dir/index.html``.

    Raises
    ------
    OutputExistsError
        ``out_dir`` exists, is not empty, and ``overwrite`` is False; or it is not a report
        directory written by this package (never replaced).
    StoreLockedError
        Another process is writing ``out_dir``.
    InvalidParameterError
        Duplicate section keys, or a section that is not a report section.
    """
    out = Path(out_dir)
    check_report_target(out, overwrite=overwrite)
    secs = [as_section(s) for s in sections]
    keys = [s.key for s in secs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise InvalidParameterError(
            f"report sections have duplicate keys {dup}; give each section a distinct key"
        )
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    versions = _versions()
    images = {s.key: {stem: _png_bytes(fig, dpi) for stem, fig in s.figures.items()}
              for s in secs}
    summary = {
        "format": REPORT_FORMAT,
        "title": title,
        "created": created,
        "versions": versions,
        "config": jsonable(config),
        "sections": {s.key: {"title": s.title, **jsonable(s.summary)} for s in secs},
        "figures": {s.key: [f"{s.key}_{stem}.png" for stem in s.figures] for s in secs},
        "tables": {s.key: f"{s.key}.csv" for s in secs if s.table},
    }
    page = _render_html(title, config, secs, images, created, versions)

    out.parent.mkdir(parents=True, exist_ok=True)
    with store_lock(out, what="report directory"):
        remove_leftovers(out)
        check_report_target(out, overwrite=overwrite)
        tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            for s in secs:
                for stem, png in images[s.key].items():
                    (tmp / f"{s.key}_{stem}.png").write_bytes(png)
                if s.table:
                    _write_csv(tmp / f"{s.key}.csv", s.table)
            (tmp / "summary.json").write_text(
                json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")
            (tmp / "index.html").write_text(page, encoding="utf-8")
            move_into_place(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    logger.info("report written to %s", out / "index.html")
    return out / "index.html"


def is_report_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a report directory written by :func:`write_report` (its
    ``summary.json`` carries :data:`REPORT_FORMAT`; reports written before the marker existed
    are recognised by their ``summary.json`` sections and ``index.html``)."""
    p = Path(path)
    if p.is_symlink() or not p.is_dir():
        return False
    try:
        summary = json.loads((p / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(summary, dict):
        return False
    if summary.get("format") == REPORT_FORMAT:
        return True
    legacy = {"title", "created", "sections", "figures", "tables"}
    return "format" not in summary and legacy <= set(summary) and (p / "index.html").is_file()


def check_report_target(out: Path, *, overwrite: bool) -> None:
    """Refuse an existing, non-empty ``out`` unless ``overwrite`` and it is a report directory.

    Raises
    ------
    OutputExistsError
        ``out`` exists and is not empty without ``overwrite``, or it is not a report directory
        written by this package (never replaced, whatever ``overwrite`` says).
    """
    if not (out.exists() or out.is_symlink()):
        return
    if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        return
    if not overwrite:
        raise OutputExistsError(
            f"report directory {str(out)!r} already exists; choose another --out or pass "
            f"--overwrite to replace it"
        )
    if not is_report_dir(out):
        raise refuse_foreign(out, "a report directory", OutputExistsError)


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    cols: list[str] = []
    for row in rows:
        cols += [c for c in row if c not in cols]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in cols})
