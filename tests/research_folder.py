"""A feature-table folder shaped like the research code's (Boelts et al. 2023), built from a
synthetic model: 89 measurement masks (nine in vivo VPM measurements, seven of them listed by
the ``default_rule_invivo`` experiment in the paper's order, and 80 slice measurements), a
metadata file with the research code's fields (authors written given names first, unknown
sample counts as -1, records in alphabetical rather than the paper's order) and the experiment
spec. Tests import it with ``make_research_folder(model, folder)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from anatomy.catalogue import CELL_TYPES
from anatomy.io.consbi import write_feature_tables
from anatomy.model import NeuronPopulation, StructuralModel

#: The seven measurements of the paper, in the order of its x: (ID, label, pre/post fields,
#: only_septum, percent, samples, authors, year). IDs are those of the research data.
PAPER = [
    ("897f7fba-714c-4e2e-9f9c-552e3815fb34", "L4", "L4", "EXC", "no", 43, 40, "BS"),
    ("8bbcab58-cd1e-48ac-b7ef-583e8a077a9f", "L4SEP", "L4", "EXC", "yes", 43, 14, "BS"),
    ("7d6ff52f-0810-4ff8-8bad-e41173c5d2ff", "L4sp", "L4", "L4sp", "no", 42, 24, "BS"),
    ("1c32cfac-828a-46ce-acaa-8de786e6c22f", "L4ss", "L4", "L4ss", "no", 64, 11, "BS"),
    ("1d0687e0-bb9e-4cb1-9ed5-fcc00cd29c4d", "L5IT", "L5", "L5IT", "no", 17, 18, "CB"),
    ("fe21fc12-9bda-45c9-857a-385b418a1116", "L5PT", "L5", "L5PT", "no", 44, 9, "CB"),
    ("2eab5e02-e8da-485e-8989-41554deae0c1", "L6", "L6", "EXC", "no", 9, 11, "CB"),
]
#: Two more in vivo measurements of the same populations (not in the default experiment).
EXTRA_INVIVO = [
    ("26c35afe-9111-484a-9aec-23d3ba375d07", "L4_Bruno2002", "L4", "EXC", "no", 37, 62, "BSi"),
    ("aed2ce3e-a500-4fee-b1da-bb090236339b", "L4SEP_Bruno2002", "L4", "EXC", "yes", 38, 21,
     "BSi"),
]
PAPER_LABELS = [p[1] for p in PAPER]
_AUTHORS = {
    "BS": ("Randy M Bruno, Bert Sakmann", "2006", "10.1126/science.1124593"),
    "CB": ("Christine M Constantinople, Randy M Bruno", "2013", "10.1126/science.1236425"),
    "BSi": ("Randy M Bruno, Daniel J Simons", "2002", "10.1523/JNEUROSCI.22-24-10966.2002"),
}
#: Post cell types of the vpm-invivo populations the in vivo masks are drawn from.
_POST_TYPES = {
    "L4": ("L4PY", "L4sp", "L4ss"), "L4SEP": ("L4PY", "L4sp", "L4ss"), "L4sp": ("L4sp",),
    "L4ss": ("L4ss",), "L5IT": ("L5IT",), "L5PT": ("L5PT",), "L6": ("L6CC", "L6INV", "L6CT"),
}
_SLICE_TYPES = ("L2PY", "L3PY", "L4PY", "L4sp", "L4ss", "L5IT", "L5PT", "L6CC", "L6CT", "INH")
_LAYER = {"L2PY": "L23", "L3PY": "L23", "L4PY": "L4", "L4sp": "L4", "L4ss": "L4",
          "L5IT": "L5", "L5PT": "L5", "L6CC": "L6", "L6CT": "L6", "INH": "L4"}
N_SLICE = 80


def _uuid(rng: np.random.Generator) -> str:
    h = "".join(f"{v:02x}" for v in rng.integers(0, 256, 16))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _record(mid: str, kind: str, pre: tuple[str, str], post: tuple[str, str], septum: str,
            cp: int, samples: int, authors: str, year: str, doi: str) -> dict[str, Any]:
    return {
        "ID": mid, "type": f"connection_probability_{kind}", "authors": authors,
        "title": "A study", "journal": "J Test. 2000", "year": year, "DOI": doi, "PMID": "1",
        "pre_layer": pre[0], "pre_type": pre[1], "post_layer": post[0], "post_type": post[1],
        "only_septum": septum, "cp_empirical": cp, "species": "rat", "area": "barrel",
        "samples": samples,
    }


def make_research_folder(model: StructuralModel, folder: Path, *, seed: int = 0) -> Path:
    """Write the 89-mask folder for ``model`` (e.g. the ``tiny`` preset) into ``folder``."""
    rng = np.random.default_rng(seed)
    types = np.array([CELL_TYPES[c] for c in model.neurons.cell_type])
    vpm = np.flatnonzero(types == "VPM")
    pops: dict[str, NeuronPopulation] = {}
    records: list[dict[str, Any]] = []
    for mid, label, layer, ptype, septum, cp, samples, who in PAPER + EXTRA_INVIVO:
        base = label.split("_")[0]
        post = np.flatnonzero(np.isin(types, _POST_TYPES[base]))
        post = np.sort(rng.choice(post, size=min(12, post.size), replace=False))
        pre = np.sort(rng.choice(vpm, size=min(6, vpm.size), replace=False))
        pops[mid] = NeuronPopulation(pre=pre, post=post, attrs={"protocol": "invivo"})
        authors, year, doi = _AUTHORS[who]
        records.append(_record(mid, "invivo", ("VPM", "VPM"), (layer, ptype), septum, cp,
                               samples, authors, year, doi))
    for k in range(N_SLICE):
        mid = _uuid(rng)
        a, b = rng.choice(_SLICE_TYPES, size=2)
        pre_n = np.flatnonzero(types == a)
        post_n = np.flatnonzero(types == b)
        pre = np.sort(rng.choice(pre_n, size=min(3, pre_n.size), replace=False))
        post = np.sort(rng.choice(post_n, size=min(4, post_n.size), replace=False))
        pops[mid] = NeuronPopulation(pre=pre, post=post, attrs={"protocol": "slice"})
        samples = -1 if k % 5 == 0 else int(rng.integers(20, 200))
        pre_f = (_LAYER[a], "EXC" if k % 2 and a != "INH" else a)
        post_f = (_LAYER[b], "EXC" if k % 2 and b != "INH" else b)
        records.append(_record(
            mid, "invitro", pre_f, post_f, "no", int(rng.integers(0, 30)), samples,
            f"Author{k} A Person, Second Author", str(1995 + k % 20), ""))
    records.sort(key=lambda r: (r["authors"], r["post_type"]))  # not the paper's order
    return write_feature_tables(
        model, folder, populations=pops, records=records,
        experiments={"default_rule_invivo": [p[0] for p in PAPER]},
    )
