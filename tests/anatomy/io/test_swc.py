"""SWC import: exact cable length per voxel, conservation, placement, and malformed input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anatomy.errors import FormatError
from anatomy.grid import VoxelGrid
from anatomy.io.swc import Densities, import_swc, voxelize_segments

# soma at origin; axon straight down the SWC -y axis (deeper), dendrite along +x
SWC = """# a toy neuron
1 1 0 0 0 5 -1
2 2 0 -10 0 1 1
3 2 0 -130 0 1 2
4 3 10 0 0 1 1
5 3 60 0 0 1 4
"""


def write_neuron(tmp_path: Path, text: str = SWC, name: str = "n.swc") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def write_manifest(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "manifest.csv"
    path.write_text("id,swc,cell_type,x,y,depth,region\n" + "".join(r + "\n" for r in rows))
    return path


def test_lengths_per_voxel_and_densities(tmp_path: Path) -> None:
    write_neuron(tmp_path)
    manifest = write_manifest(tmp_path, ["5,n.swc,L4ss,25,25,700,column"])
    grid = VoxelGrid(origin_um=(0.0, 0.0, 650.0), spacing_um=50.0, shape=(3, 1, 5))
    dens = {"L4ss": Densities(0.5, 2.0)}
    model = import_swc(manifest, grid=grid, densities=dens)
    pre = model.pre.load().toarray()[0]
    post = model.post.load().toarray()[0]
    # axon from depth 710 to 830: voxels iz=1 (700-750): 40 µm, iz=2: 50 µm, iz=3: 30 µm
    expect_pre = np.zeros(grid.n_voxels)
    for iz, length in ((1, 40.0), (2, 50.0), (3, 30.0)):
        expect_pre[grid.voxel_id([[0, 0, iz]])[0]] = 0.5 * length
    np.testing.assert_allclose(pre, expect_pre, rtol=1e-6)
    # dendrite from x=35 to 85 at depth 700 (on a face: assigned to the deeper voxel iz=1)
    assert post.sum() == pytest.approx(2.0 * 50.0, rel=1e-6)
    assert post[grid.voxel_id([[0, 0, 1]])[0]] == pytest.approx(2.0 * 15.0, rel=1e-6)
    assert post[grid.voxel_id([[1, 0, 1]])[0]] == pytest.approx(2.0 * 35.0, rel=1e-6)
    assert model.neurons.ids.tolist() == [5]
    assert model.neurons.layer[0] == 3  # L4
    np.testing.assert_allclose(model.post_all, post.astype(np.float32))


def test_default_grid_contains_all_cable(tmp_path: Path) -> None:
    write_neuron(tmp_path)
    manifest = write_manifest(
        tmp_path, ["1,n.swc,L4ss,0,0,700,column", "2,n.swc,L5PT,130,-40,1200,column"]
    )
    model = import_swc(manifest, densities={"L4ss": Densities(1, 1), "L5PT": Densities(1, 1)})
    assert model.attrs["cable_outside_grid_um"] == 0.0
    np.testing.assert_allclose(model.pre.load().sum(axis=1), [120.0, 120.0], rtol=1e-6)
    np.testing.assert_allclose(model.post.load().sum(axis=1), [50.0, 50.0], rtol=1e-6)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(*[st.floats(-200, 200)] * 6), min_size=1, max_size=20),
    st.floats(5.0, 80.0),
)
def test_voxelized_length_is_conserved(segments: list[tuple[float, ...]], spacing: float) -> None:
    seg = np.array(segments)
    grid = VoxelGrid(origin_um=(-400.0, -400.0, -400.0), spacing_um=spacing,
                     shape=(int(800 / spacing) + 2,) * 3)
    _, length, outside = voxelize_segments(seg[:, :3], seg[:, 3:], grid)
    total = np.linalg.norm(seg[:, 3:] - seg[:, :3], axis=1).sum()
    assert outside == 0.0
    assert length.sum() == pytest.approx(total, rel=1e-9, abs=1e-9)
    assert np.all(length > 0)


def test_cable_outside_a_given_grid_is_reported(tmp_path: Path) -> None:
    write_neuron(tmp_path)
    manifest = write_manifest(tmp_path, ["1,n.swc,L4ss,25,25,700,column"])
    grid = VoxelGrid(origin_um=(0.0, 0.0, 650.0), spacing_um=50.0, shape=(1, 1, 2))
    model = import_swc(manifest, grid=grid, densities={"L4ss": Densities(1, 1)})
    assert model.attrs["cable_outside_grid_um"] == pytest.approx(80.0 + 35.0)


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        ("id,swc,cell_type,x,y", "1,n.swc,L4ss,0,0", r"line 1: missing column\(s\) depth"),
        ("id,swc,cell_type,x,y,depth", "a,n.swc,L4ss,0,0,1", "line 2: id 'a' is not an integer"),
        ("id,swc,cell_type,x,y,depth", "1,n.swc,L4xx,0,0,1", "line 2: unknown cell type 'L4xx'"),
        ("id,swc,cell_type,x,y,depth", "1,n.swc,L4ss,0,zero,1", "line 2: y 'zero' is not a number"),
        ("id,swc,cell_type,x,y,depth", "1,missing.swc,L4ss,0,0,1", "SWC file .* not found"),
    ],
)
def test_manifest_errors(tmp_path: Path, header: str, row: str, message: str) -> None:
    write_neuron(tmp_path)
    path = tmp_path / "manifest.csv"
    path.write_text(f"{header}\n{row}\n")
    with pytest.raises(FormatError, match=message):
        import_swc(path)


def test_duplicate_ids(tmp_path: Path) -> None:
    write_neuron(tmp_path)
    manifest = write_manifest(tmp_path, ["1,n.swc,L4ss,0,0,700,column", "1,n.swc,L4ss,0,0,700,column"])
    with pytest.raises(FormatError, match="line 3: duplicate id 1"):
        import_swc(manifest)


def test_malformed_swc_names_file_and_line(tmp_path: Path) -> None:
    write_neuron(tmp_path, "1 1 0 0 0 5 -1\n2 2 0 x 10 1 1\n", name="bad.swc")
    manifest = write_manifest(tmp_path, ["1,bad.swc,L4ss,0,0,700,column"])
    with pytest.raises(FormatError, match=r"bad\.swc.*:2.*Unable to parse this line"):
        import_swc(manifest)


def test_swc_missing_parent(tmp_path: Path) -> None:
    write_neuron(tmp_path, "1 1 0 0 0 5 -1\n2 2 0 0 10 1 7\n", name="bad.swc")
    manifest = write_manifest(tmp_path, ["1,bad.swc,L4ss,0,0,700,column"])
    with pytest.raises(FormatError, match="non-existant parent ID: 7"):
        import_swc(manifest)


@pytest.mark.parametrize(
    ("text", "line", "chain"),
    [
        # two dendrite samples that are each other's parent (detached from the soma)
        (SWC.replace("4 3 10 0 0 1 1", "4 3 10 0 0 1 5"), 5, "4 -> 5 -> 4"),
        # a sample that is its own parent
        (SWC.replace("3 2 0 -130 0 1 2", "3 2 0 -130 0 1 3"), 4, "3 -> 3"),
        # a loop of three below a valid root
        ("1 1 0 0 0 5 -1\n2 3 10 0 0 1 4\n3 3 20 0 0 1 2\n4 3 30 0 0 1 3\n", 2,
         "2 -> 4 -> 3 -> 2"),
    ],
)
def test_cycle_is_an_error_naming_file_and_line(tmp_path: Path, text: str, line: int,
                                                chain: str) -> None:
    write_neuron(tmp_path, text, name="loop.swc")
    manifest = write_manifest(tmp_path, ["1,loop.swc,L4ss,0,0,700,column"])
    with pytest.raises(FormatError, match=rf"loop\.swc, line {line}: .*cycle of parents") as err:
        import_swc(manifest)
    assert chain in str(err.value) and "\n" not in str(err.value)


def test_the_same_tree_without_the_cycle_imports(tmp_path: Path) -> None:
    write_neuron(tmp_path)
    manifest = write_manifest(tmp_path, ["1,n.swc,L4ss,0,0,700,column"])
    assert import_swc(manifest).n_neurons == 1


def test_far_sample_is_refused_before_voxelizing(tmp_path: Path) -> None:
    import time

    far = SWC.replace("3 2 0 -130 0 1 2", "3 2 0 -1e9 0 1 2")
    write_neuron(tmp_path, far, name="far.swc")
    manifest = write_manifest(tmp_path, ["1,far.swc,L4ss,0,0,700,column"])
    t0 = time.perf_counter()
    with pytest.raises(FormatError, match=r"far\.swc, line 4: a sample lies 1e\+09 µm") as err:
        import_swc(manifest)
    assert time.perf_counter() - t0 < 10
    assert "limit of 20,000,000" in str(err.value) and "max_voxels" in str(err.value)
    # the limit is configurable: a tight one refuses an ordinary neuron, a loose one accepts
    write_neuron(tmp_path)
    ok = write_manifest(tmp_path, ["1,n.swc,L4ss,0,0,700,column"])
    with pytest.raises(FormatError, match="limit of 2"):
        import_swc(ok, max_voxels=2)
    assert import_swc(ok, max_voxels=1000).n_neurons == 1
    # with a given grid, cable crossing too many voxels is refused too
    grid = VoxelGrid(origin_um=(-100.0, -100.0, 0.0), spacing_um=50.0, shape=(4, 4, 40))
    manifest = write_manifest(tmp_path, ["1,far.swc,L4ss,0,0,700,column"])
    with pytest.raises(FormatError, match="voxel crossings"):
        import_swc(manifest, grid=grid, max_voxels=10**6)
