"""Structural-model store throughput: write and read MB/s on the ``column`` model.

Sizes are the raw (uncompressed) bytes of ``pre`` and ``post`` (indptr, indices, data), so MB/s
compare with memory and disk bandwidth. Figures:

- ``write_model`` end to end (content hash, arrays, completion marker, validation of the new
  store, rename) and the array writes alone;
- reading ``pre`` and ``post`` into memory (wall clock and per CPU second, which is robust to
  other load on the machine), a validated ``open_model``, and a dask read of all voxel blocks.

``--quick`` uses the ``small`` preset.
"""

from __future__ import annotations

import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._figure import Figure, peak_rss_mb

__all__ = ["run"]


def _raw_mb(model: object) -> float:
    total = 0
    for cname in ("pre", "post"):
        counts = getattr(model, cname)
        total += counts.indptr.shape[0] * 8 + counts.indices.shape[0] * 4 + counts.data.shape[0] * 4
    return total / 1e6


def _disk_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run(quick: bool) -> list[Figure]:
    """Measure store throughput (see module docstring)."""
    import dask

    from anatomy import store
    from anatomy.generate import build_model

    preset = "small" if quick else "column"
    model = build_model(preset, seed=0)
    # the source in memory, so the write measures the store, not the generator
    model.pre.load()
    model.post.load()
    raw = _raw_mb(model)
    nnz = model.pre.nnz + model.post.nnz
    note = f"{preset}: {model.n_neurons} neurons, {model.n_voxels} voxels"
    figs = [Figure("entries in pre + post", float(nnz), "count", note=note),
            Figure("raw size of pre + post", raw, "MB")]
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    try:
        path = tmp / "model.zarr"
        t = time.perf_counter()
        store.write_model(model, path)
        t_write = time.perf_counter() - t
        disk = _disk_mb(path)
        figs.append(Figure("stored size", disk, "MB", note=f"compression {raw / disk:.1f}x"))
        figs.append(Figure("write_model end to end", raw / t_write, "MB/s",
                           note="hash + write + validate + rename"))

        attrs = {"content_hash": "0" * 64}
        t = time.perf_counter()
        store._write_group(model, tmp / "arrays.zarr", attrs=attrs,
                           chunk_voxels=store.voxel_blocks(model)[0][1])
        figs.append(Figure("write arrays only", raw / (time.perf_counter() - t), "MB/s"))

        def read() -> tuple[float, float]:
            t, c = time.perf_counter(), _cpu()
            m = store.open_model(path, validate=False)
            pre, post = m.pre.load(), m.post.load()
            assert pre.nnz + post.nnz == nnz
            return time.perf_counter() - t, _cpu() - c

        best = min(read() for _ in range(2 if quick else 3))
        figs.append(Figure("read pre + post into memory", raw / best[0], "MB/s",
                           target=">= 200", note="open_model(validate=False) + load(); best of runs"))
        figs.append(Figure("read per CPU second", raw / best[1], "MB/cpu-s",
                           note="independent of other load"))

        t = time.perf_counter()
        m = store.open_model(path, validate=True)
        figs.append(Figure("open_model validated", raw / (time.perf_counter() - t), "MB/s",
                           note="streams every voxel block"))

        t = time.perf_counter()
        blocks = dask.compute(*store.to_dask(m.pre), *store.to_dask(m.post), scheduler="threads")
        t_dask = time.perf_counter() - t
        assert sum(int(b.nnz) for b in blocks) == nnz
        figs.append(Figure("dask read of all voxel blocks", raw / t_dask, "MB/s",
                           note=f"{len(blocks)} tasks, threads"))
        sizes = np.array([b.nnz for b in blocks[: len(store.voxel_blocks(m))]])
        figs.append(Figure("entries per voxel block (median)", float(np.median(sizes)), "count"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figs.append(Figure("peak memory", peak_rss_mb(), "MB"))
    return figs
