"""The report directory: PNG files, summary.json, CSV tables and one self-contained HTML page."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wiring.errors import InvalidParameterError, OutputExistsError
from wiring.report import ReportSection, as_section, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.links: list[str] = []
        self.scripts = 0
        self.ids: list[str] = []
        self.text: list[str] = []
        self._in_config = False
        self.config_text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if tag == "link":
            self.links.append(a.get("href") or "")
        if tag == "script":
            self.scripts += 1
        if "id" in a:
            self.ids.append(str(a["id"]))
        self._in_config = tag == "pre" and a.get("id") == "config"

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._in_config = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_config:
            self.config_text += data


def _figure(title: str) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.plot(np.arange(5), np.arange(5) ** 2)
    ax.set_title(title)
    return fig


class _Result:
    title = "Fake analysis"

    def to_dict(self) -> dict[str, Any]:
        return {"passed": True, "value": np.float64(0.25), "n": np.int64(3)}

    def figures(self) -> dict[str, Any]:
        return {"main": _figure("main"), "extra": _figure("extra")}

    def table(self) -> list[dict[str, Any]]:
        return [{"name": "a", "x": 1.5}, {"name": "b<&>", "x": None}]


CONFIG = {"rule": "dso", "seed": 7, "prior": {"kind": "gaussian", "scale": [0.2, 0.2, 0.2]},
          "out": "runs/r1"}


def _write(tmp_path: Path, **kw: Any) -> Path:
    sections = [_Result(), ReportSection(key="notes", title="Notes", summary={"k": "v"},
                                         figures={"plot": _figure("notes")}, text="Some text.")]
    return write_report(tmp_path / "report", config=CONFIG, sections=sections, **kw)


def test_report_structure(tmp_path: Path) -> None:
    index = _write(tmp_path)
    out = index.parent
    assert index == out / "index.html"
    assert sorted(p.name for p in out.iterdir()) == [
        "fake_analysis.csv", "fake_analysis_extra.png", "fake_analysis_main.png", "index.html",
        "notes_plot.png", "summary.json",
    ]
    for png in out.glob("*.png"):
        assert png.read_bytes().startswith(PNG_MAGIC)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"] == CONFIG
    assert summary["sections"]["fake_analysis"] == {
        "title": "Fake analysis", "passed": True, "value": 0.25, "n": 3}
    assert summary["figures"]["notes"] == ["notes_plot.png"]
    assert summary["tables"] == {"fake_analysis": "fake_analysis.csv"}
    assert {"numpy", "matplotlib", "sbi"} <= set(summary["versions"])
    assert (out / "fake_analysis.csv").read_text() == "name,x\na,1.5\nb<&>,\n"
    # nothing else was written next to the report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_html_is_self_contained(tmp_path: Path) -> None:
    index = _write(tmp_path)
    page = _Page()
    page.feed(index.read_text(encoding="utf-8"))
    assert len(page.imgs) == 3
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    assert page.links == [] and page.scripts == 0  # no external style sheets or scripts
    html_text = index.read_text(encoding="utf-8")
    assert "http://" not in html_text and "https://" not in html_text
    assert {"fake_analysis", "notes", "configuration", "config"} <= set(page.ids)
    assert json.loads(page.config_text) == CONFIG  # the configuration, shown verbatim
    text = " ".join(page.text)
    assert "Fake analysis" in text and "Some text." in text and "b<&>" in text


def test_refuses_existing_output(tmp_path: Path) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        _write(tmp_path)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temporary left over
    # a folder this package did not write is never replaced, not even with overwrite
    with pytest.raises(OutputExistsError, match="not a report directory written by this package"):
        _write(tmp_path, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    (out / "keep.txt").unlink()
    _write(tmp_path)
    first = (out / "summary.json").read_text()
    assert json.loads(first)["format"] == "wiring-sbi report"
    _write(tmp_path, overwrite=True)  # its own report is replaced
    assert (out / "index.html").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_empty_existing_directory_is_used(tmp_path: Path) -> None:
    (tmp_path / "report").mkdir()
    assert _write(tmp_path).exists()


def test_bad_sections(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="duplicate keys"):
        write_report(tmp_path / "r", config={}, sections=[_Result(), _Result()])
    with pytest.raises(InvalidParameterError, match="lacks"):
        write_report(tmp_path / "r", config={}, sections=[object()])
    with pytest.raises(InvalidParameterError, match="must be letters"):
        ReportSection(key="../evil", title="x")
    assert not (tmp_path / "r").exists()


def test_analysis_results_are_sections(tmp_path: Path) -> None:
    from wiring.analysis import summarize_posterior
    from wiring.inference.priors import PriorSpec

    prior = PriorSpec(kind="uniform", names=("a", "b"), low=(0.0, 0.0), high=(2.0, 2.0))
    s = np.random.default_rng(0).normal(1.0, 0.1, size=(500, 2))
    res = summarize_posterior(s, ("a", "b"), prior_spec=prior, reference=[1.0, 1.0])
    sec = as_section(res)
    assert sec.key == "posterior" and set(sec.figures) == {"pairplot"}
    index = write_report(tmp_path / "r", config={"x": 1}, sections=[res])
    summary = json.loads((index.parent / "summary.json").read_text())
    assert summary["sections"]["posterior"]["reference_in_hpd"] is True
    assert (index.parent / "posterior_pairplot.png").exists()
