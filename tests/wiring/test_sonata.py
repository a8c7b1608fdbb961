"""SONATA export, read back with libsonata (an independent reader)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import libsonata
import numpy as np
import pytest

from wiring.connectome import compute_connectome
from wiring.connectome.dso import dso_factors
from wiring.connectome.sonata import SONATA_FILES, export_sonata
from wiring.errors import OutputExistsError, StoreMismatchError
from wiring.rules.dso import DSO


class FactorDSO(DSO):
    def factors(self, theta):
        return dso_factors(theta)


@pytest.fixture(scope="module")
def conn(tiny_model: Any) -> Any:
    return compute_connectome(tiny_model, FactorDSO(), (1.0, 1.0, 1.0), seed=11, post="exc")


def test_export_reads_back_with_libsonata(conn, tiny_model, tmp_path: Path) -> None:
    out = export_sonata(conn, tiny_model, tmp_path / "circuit")
    assert sorted(p.name for p in out.iterdir()) == sorted(SONATA_FILES)
    assert [p.name for p in tmp_path.iterdir()] == ["circuit"]

    nodes = libsonata.NodeStorage(str(out / "nodes.h5")).open_population("cortex")
    assert nodes.size == tiny_model.n_neurons
    sel = nodes.select_all()
    np.testing.assert_allclose(nodes.get_attribute("x", sel), tiny_model.neurons.soma_um[:, 0])
    np.testing.assert_allclose(nodes.get_attribute("z", sel), tiny_model.neurons.soma_um[:, 2])
    assert list(nodes.get_attribute("cell_type", sel)) == list(
        tiny_model.neurons.cell_type_names)
    vpm = np.asarray(nodes.get_attribute("model_type", sel)) == "virtual"
    np.testing.assert_array_equal(vpm, tiny_model.neurons.cell_type_names == "VPM")

    edges = libsonata.EdgeStorage(str(out / "edges.h5")).open_population(
        "cortex__cortex__chemical")
    assert edges.source == "cortex" and edges.target == "cortex"
    assert edges.size == conn.n_connections
    all_e = edges.select_all()
    src = np.asarray(edges.source_nodes(all_e))
    tgt = np.asarray(edges.target_nodes(all_e))
    nsyns = np.asarray(edges.get_attribute("nsyns", all_e))
    # every edge and its synapse count, against the connectome
    dense = conn.synapses.toarray()
    expect = {(int(conn.pre[i]), int(conn.post[j])): int(dense[i, j])
              for i, j in zip(*np.nonzero(dense), strict=True)}
    got = {(int(s), int(t)): int(n) for s, t, n in zip(src, tgt, nsyns, strict=True)}
    assert got == expect
    assert nsyns.sum() == conn.n_synapses
    lam = np.asarray(edges.get_attribute("expected_synapses", all_e))
    pos_pre = np.searchsorted(conn.pre, src)
    pos_post = np.searchsorted(conn.post, tgt)
    np.testing.assert_allclose(lam, conn.expected.toarray()[pos_pre, pos_post])
    # the spec's indices: efferent and afferent edges of a few nodes
    for node in (int(conn.pre[0]), int(conn.post[3]), int(conn.post[-1])):
        eff = np.asarray(edges.efferent_edges(node).flatten())
        np.testing.assert_array_equal(np.sort(eff), np.flatnonzero(src == node))
        aff = np.asarray(edges.afferent_edges(node).flatten())
        np.testing.assert_array_equal(np.sort(aff), np.flatnonzero(tgt == node))
    cfg = libsonata.CircuitConfig.from_file(str(out / "circuit_config.json"))
    assert "cortex" in cfg.node_populations
    assert "cortex__cortex__chemical" in cfg.edge_populations


def test_export_refuses_existing_and_foreign(conn, tiny_model, small_model, tmp_path: Path) -> None:
    out = export_sonata(conn, tiny_model, tmp_path / "c", node_population="barrel")
    stamp = (out / "edges.h5").stat().st_mtime_ns
    with pytest.raises(OutputExistsError, match="overwrite"):
        export_sonata(conn, tiny_model, out)
    assert (out / "edges.h5").stat().st_mtime_ns == stamp
    export_sonata(conn, tiny_model, out, overwrite=True, node_population="barrel")
    other = tmp_path / "mine"
    other.mkdir()
    with pytest.raises(OutputExistsError, match="not a SONATA export"):
        export_sonata(conn, tiny_model, other, overwrite=True)
    with pytest.raises(StoreMismatchError, match="anatomy"):
        export_sonata(conn, small_model, tmp_path / "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "mine"]


def test_export_from_a_lazy_store_equals_the_in_memory_export(conn, tiny_model, tmp_path: Path) -> None:
    """Exported a block at a time from the store: the same edges, counts and lambdas."""
    import h5py

    from wiring.connectome import open_connectome, write_connectome

    store = open_connectome(write_connectome(conn, tmp_path / "c.zarr"), lazy=True)
    store.block_entries = 500  # many small blocks
    assert len(list(store.iter_blocks())) > 5
    a = export_sonata(conn, tiny_model, tmp_path / "mem")
    b = export_sonata(store, tiny_model, tmp_path / "lazy")
    with h5py.File(a / "edges.h5") as fa, h5py.File(b / "edges.h5") as fb:
        names: list[str] = []
        fa.visit(names.append)
        for name in names:
            if isinstance(fa[name], h5py.Dataset):
                np.testing.assert_array_equal(fa[name][...], fb[name][...], err_msg=name)
