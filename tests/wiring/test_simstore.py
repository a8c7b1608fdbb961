"""Tests of the simulation store: determinism, resume after SIGKILL or failure, bad input."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import distributed
import numpy as np
import pytest

from wiring.errors import OutputExistsError, ShapeMismatchError, StoreMismatchError
from wiring.inference.priors import PriorSpec
from wiring.simulation.store import (
    SimulationStore,
    StoreFormatError,
    chunk_rngs,
    simulate_chunk_rows,
    simulate_to_store,
)

HERE = Path(__file__).resolve()
W = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.2, 0.0, 1.0], [1.0, 1.0, 1.0]])
MEASUREMENTS = ["m0", "m1", "m2", "m3"]
PRIOR = PriorSpec(kind="gaussian", names=("a", "b", "c"), loc=(1.0, 1.0, 1.0),
                  scale=(0.05**0.5,) * 3)


def fake_simulator(theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cheap stand-in for the wiring simulator: sigmoid of a linear map plus noise."""
    x = 1.0 / (1.0 + np.exp(-(theta @ W.T - 1.5))) + 0.02 * rng.standard_normal((len(theta), 4))
    x[theta[:, 0] < 0.3] = np.nan  # "out of domain" rows, as the real simulator returns
    return np.asarray(x, dtype=np.float64)


class StallOnCall:
    """The fake simulator that, on its ``k``-th call, writes ``sentinel`` and then waits to be
    killed: the parent kills on the sentinel, so the kill lands after exactly ``k - 1`` finished
    chunks however slow either process runs."""

    def __init__(self, k: int, sentinel: str) -> None:
        self.k, self.sentinel, self.calls = k, sentinel, 0

    def __call__(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.calls += 1
        if self.calls == self.k:
            Path(self.sentinel).write_text("stalled", encoding="utf-8")
            time.sleep(600)  # killed long before; only a parent that never kills waits this out
        return fake_simulator(theta, rng)


class FailOnChunk:
    """Picklable simulator that raises on its ``k``-th call."""

    def __init__(self, k: int) -> None:
        self.k, self.calls = k, 0

    def __call__(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.calls += 1
        if self.calls == self.k:
            raise RuntimeError("simulated worker failure")
        return fake_simulator(theta, rng)


def config(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = dict(
        n=1050, chunk_size=100, prior_spec=PRIOR,
        rule_info={"name": "toy", "distribution": "wiring-sbi", "version": "0.1.0"},
        measurement_names=MEASUREMENTS, measurement_hash="mhash", anatomy_hash="ahash", seed=7,
        streams="chunk",  # the plain callables below take a generator (row streams: see end)
    )
    cfg.update(over)
    return cfg


def make(path: Path, **over: Any) -> SimulationStore:
    return SimulationStore.create(path, **config(**over))


def arrays(store: SimulationStore) -> tuple[np.ndarray, np.ndarray]:
    return store.load(only_done=False)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> SimulationStore:
    """An uninterrupted serial run."""
    store = make(tmp_path_factory.mktemp("ref") / "ref.zarr")
    return simulate_to_store(store, fake_simulator, progress=False)


def assert_same(a: SimulationStore, b: SimulationStore) -> None:
    ta, xa = arrays(a)
    tb, xb = arrays(b)
    assert ta.tobytes() == tb.tobytes()
    assert np.array_equal(xa, xb, equal_nan=True)
    assert a.is_complete and b.is_complete
    assert a.content_hash() == b.content_hash()


def test_layout_and_attrs(reference: SimulationStore) -> None:
    s = SimulationStore.open(reference.path)
    assert (s.n, s.chunk_size, s.n_chunks, s.seed) == (1050, 100, 11, 7)
    assert s.param_names == ("a", "b", "c") and s.measurement_names == tuple(MEASUREMENTS)
    assert s.prior_spec == PRIOR and s.rule_info["name"] == "toy"
    assert s.anatomy_hash == "ahash" and s.measurement_hash == "mhash"
    theta, x = s.load()
    assert theta.shape == (1050, 3) and x.shape == (1050, 4)
    assert np.isfinite(theta).all()
    # Rows with theta_a < 0.3 are NaN by construction; everything else finite.
    assert np.array_equal(np.isnan(x).any(axis=1), theta[:, 0] < 0.3)
    assert s.chunk_bounds(10) == (1000, 1050)


def test_chunk_content_is_defined_by_seed_and_index(reference: SimulationStore) -> None:
    theta, x = reference.load()
    t5, x5 = simulate_chunk_rows(PRIOR, fake_simulator, seed=7, index=5, size=100,
                                 n_measurements=4)
    assert np.array_equal(theta[500:600], t5) and np.array_equal(x[500:600], x5, equal_nan=True)
    rt, _ = chunk_rngs(7, 5)
    assert np.array_equal(PRIOR.sample(100, rt), t5)
    # Different chunks and seeds give different streams.
    assert not np.allclose(theta[:100], theta[100:200])


def test_prior_draws_match_the_prior(reference: SimulationStore) -> None:
    theta, _ = reference.load()
    # mean 1, std sqrt(0.05): standard error of the mean = 0.2236 / sqrt(1050) = 0.0069
    assert np.all(np.abs(theta.mean(0) - 1.0) < 5 * 0.0069)
    assert np.all(np.abs(theta.std(0) - 0.05**0.5) < 0.02)


@pytest.mark.parametrize("workers", [1, 2])
def test_dask_workers_give_identical_content(
    tmp_path: Path, reference: SimulationStore, workers: int
) -> None:
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        store = simulate_to_store(make(tmp_path / "s.zarr"), fake_simulator, client=client,
                                  progress=False)
    assert_same(store, reference)


def test_resume_after_failure(tmp_path: Path, reference: SimulationStore) -> None:
    store = make(tmp_path / "s.zarr")
    with pytest.raises(RuntimeError, match="simulated worker failure"):
        simulate_to_store(store, FailOnChunk(4), progress=False)
    status = store.chunk_status()
    assert status.tolist() == [1, 1, 1] + [0] * 8
    assert store.n_done == 300
    theta, _ = store.load()
    assert len(theta) == 300  # only finished chunks are read
    sim = FailOnChunk(10**9)
    simulate_to_store(store, sim, progress=False)
    assert sim.calls == 8  # exactly the unfinished chunks were redone
    assert_same(store, reference)


def test_resume_after_sigkill(tmp_path: Path, reference: SimulationStore) -> None:
    path = tmp_path / "s.zarr"
    sentinel = tmp_path / "stalled"
    make(path)
    script = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("t", {str(HERE)!r})
        t = importlib.util.module_from_spec(spec); spec.loader.exec_module(t)
        from wiring.simulation.store import simulate_to_store
        simulate_to_store({str(path)!r}, t.StallOnCall(4, {str(sentinel)!r}), progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not sentinel.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else "child exited"
            assert time.monotonic() < deadline, "the child never reached its fourth chunk"
            time.sleep(0.02)
    finally:
        proc.kill()  # SIGKILL: no cleanup runs in the child
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    store = SimulationStore.open(path)
    n_before = int(store.chunk_status().sum())
    assert n_before == 3  # chunks 0-2 finished, the fourth was running
    # Finished chunks hold exactly the reference rows.
    ref_t, ref_x = arrays(reference)
    mask = store.done_mask()
    t, x = store.load()
    assert np.array_equal(t, ref_t[mask]) and np.array_equal(x, ref_x[mask], equal_nan=True)
    sim = FailOnChunk(10**9)
    simulate_to_store(store, sim, progress=False)
    assert sim.calls == 11 - n_before
    assert_same(store, reference)
    assert not list(tmp_path.glob(".*tmp*"))


def test_rerun_of_complete_store_is_noop(reference: SimulationStore) -> None:
    sim = FailOnChunk(1)  # would raise if called
    simulate_to_store(reference.path, sim, progress=False)
    assert sim.calls == 0


def test_progress_counts_simulations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = make(tmp_path / "s.zarr", n=300)
    simulate_to_store(store, fake_simulator, progress=True)
    err = capsys.readouterr().err
    assert "300/300" in err and "sim/s" in err


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("anatomy_hash", "other-anatomy"),
        ("rule_info", {"name": "dso", "distribution": "wiring-sbi", "version": "0.1.0"}),
        ("measurement_hash", "other"),
        ("measurement_names", ["m0", "m1", "m2", "zz"]),
        ("n", 2000),
        ("chunk_size", 50),
        ("seed", 8),
        ("streams", "row"),
        ("prior_spec", PriorSpec(kind="uniform", names=("a", "b", "c"), low=(0, 0, 0),
                                 high=(2, 2, 2))),
    ],
)
def test_mismatching_store_is_refused(reference: SimulationStore, field: str, value: Any) -> None:
    before = reference.content_hash()
    with pytest.raises(StoreMismatchError) as info:
        SimulationStore.open_or_create(reference.path, **config(**{field: value}))
    msg = str(info.value)
    key = {"rule_info": "rule", "prior_spec": "prior", "measurement_names": "measurement_names"}
    assert key.get(field, field) in msg and "--overwrite" in msg
    assert SimulationStore.open(reference.path).content_hash() == before


def test_open_or_create_resumes_matching_store(reference: SimulationStore) -> None:
    store = SimulationStore.open_or_create(reference.path, **config())
    assert store.is_complete


def test_create_refuses_existing_path(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    store = simulate_to_store(make(path, n=200), fake_simulator, progress=False)
    before = store.content_hash()
    with pytest.raises(OutputExistsError, match="overwrite"):
        make(path, n=200)
    assert SimulationStore.open(path).content_hash() == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(OutputExistsError, match="not a simulation store"):
        make(other, overwrite=True)
    assert (other / "keep.txt").exists()
    fresh = make(path, n=200, overwrite=True)
    assert fresh.n_done == 0


def test_open_rejects_non_stores(tmp_path: Path, tiny_store: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no simulation store"):
        SimulationStore.open(tmp_path / "missing.zarr")
    with pytest.raises(StoreFormatError, match="not a simulation store"):
        SimulationStore.open(tiny_store)


def test_simulator_with_wrong_output_shape(tmp_path: Path) -> None:
    store = make(tmp_path / "s.zarr", n=200)
    with pytest.raises(ShapeMismatchError, match=r"expected \(100, 4\)"):
        simulate_to_store(store, lambda th, rng: np.zeros((len(th), 3)), progress=False)
    assert store.n_done == 0


@pytest.mark.parametrize(
    ("over", "match"),
    [({"n": 0}, "n must be"), ({"chunk_size": -1}, "chunk_size"), ({"seed": -3}, "seed"),
     ({"measurement_names": []}, "measurement names"), ({"streams": "voxel"}, "streams")],
)
def test_bad_configuration(tmp_path: Path, over: dict[str, Any], match: str) -> None:
    from wiring.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match=match):
        make(tmp_path / "s.zarr", **over)
    assert not (tmp_path / "s.zarr").exists()


# -- row-keyed streams: content independent of the chunk size ----------------------------------
class IndexedFake:
    """The fake simulator with per-row streams keyed by (seed, row index)."""

    def simulate(self, theta: Any, *, seed: int, start_index: int = 0) -> np.ndarray:
        rows = []
        for k, th in enumerate(np.atleast_2d(theta)):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(start_index + k,)))
            rows.append(fake_simulator(th[None, :], rng)[0])
        return np.array(rows)


@pytest.mark.parametrize("chunk_size", [37, 1050])
def test_row_streams_make_content_independent_of_chunk_size(tmp_path: Path, chunk_size: int) -> None:
    ref = simulate_to_store(make(tmp_path / "a.zarr", chunk_size=100, streams="row"),
                            IndexedFake(), progress=False)
    other = simulate_to_store(make(tmp_path / "b.zarr", chunk_size=chunk_size, streams="row"),
                              IndexedFake(), progress=False)
    assert ref.streams == other.streams == "row"
    ta, xa = arrays(ref)
    tb, xb = arrays(other)
    assert ta.tobytes() == tb.tobytes()
    assert np.array_equal(xa, xb, equal_nan=True)


def test_row_streams_are_the_default_and_need_an_indexed_simulator(tmp_path: Path) -> None:
    from wiring.errors import InvalidParameterError

    cfg = config()
    cfg.pop("streams")
    store = SimulationStore.create(tmp_path / "s.zarr", **cfg)
    assert store.streams == "row"
    with pytest.raises(InvalidParameterError, match="streams='chunk'"):
        simulate_to_store(store, fake_simulator, progress=False)
    assert store.n_done == 0


def test_store_without_streams_attribute_is_chunk_keyed(tmp_path: Path, reference: SimulationStore) -> None:
    """Stores written before the attribute existed keep resuming with their own streams."""
    import shutil

    import zarr

    path = tmp_path / "old.zarr"
    shutil.copytree(reference.path, path)
    group = zarr.open_group(str(path), mode="r+")
    attrs = dict(group.attrs)
    attrs.pop("streams")
    attrs["schema_version"] = 1  # stores without the attribute are of schema version 1,
    group["chunk_seed"].attrs.clear()  # which had no sealed configuration either
    group.attrs.clear()
    group.attrs.update(attrs)
    store = SimulationStore.open_or_create(path, **config())
    assert store.streams == "chunk"
    assert_same(store, reference)


def test_prior_rows_are_keyed_and_follow_the_prior() -> None:
    rows = PRIOR.sample_rows(11, 0, 20_000)
    np.testing.assert_array_equal(np.vstack([PRIOR.sample_rows(11, 0, 7),
                                             PRIOR.sample_rows(11, 7, 20_000)]), rows)
    # mean 1, sd 0.2236: standard error 0.2236 / sqrt(20000) = 0.0016
    assert np.all(np.abs(rows.mean(0) - 1.0) < 5 * 0.0016)
    assert np.all(np.abs(rows.std(0) - 0.05**0.5) < 5 * 0.05**0.5 / np.sqrt(2 * 20_000))
    assert abs(np.atleast_2d(np.corrcoef(rows.T))[0, 1]) < 5 / np.sqrt(20_000)  # parameters independent
    box = PriorSpec(kind="uniform", names=("a", "b"), low=(0.0, 1.0), high=(2.0, 1.5))
    u = box.sample_rows(3, 0, 20_000)
    assert u.min(0).tolist() >= [0.0, 1.0] and u.max(0).tolist() <= [2.0, 1.5]
    assert np.all(np.abs(u.mean(0) - [1.0, 1.25]) < 5 * np.array([2.0, 0.5]) / np.sqrt(12 * 20_000))


def test_real_simulator_store_does_not_depend_on_chunk_size(tmp_path: Path, tiny_model) -> None:
    from wiring.inference.priors import build_prior_spec
    from wiring.measurements import load_measurement_set
    from wiring.rules.registry import get_rule
    from wiring.simulation.simulator import Simulator

    rule = get_rule("dso")
    mset = load_measurement_set("vpm-invivo")
    sim = Simulator(tiny_model, rule, mset)
    cfg = config(n=120, prior_spec=build_prior_spec(rule), measurement_names=list(sim.names))
    cfg.pop("streams")
    stores = [simulate_to_store(SimulationStore.create(tmp_path / f"{c}.zarr",
                                                       **{**cfg, "chunk_size": c}),
                                sim, progress=False) for c in (50, 64)]
    (ta, xa), (tb, xb) = arrays(stores[0]), arrays(stores[1])
    assert ta.tobytes() == tb.tobytes()
    assert np.array_equal(xa, xb, equal_nan=True)


def test_store_records_the_protocol_and_refuses_another(tmp_path: Path, tiny_model) -> None:
    import zarr

    from wiring.inference.priors import build_prior_spec
    from wiring.measurements import load_measurement_set
    from wiring.rules.registry import get_rule
    from wiring.simulation.simulator import Simulator

    rule = get_rule("dso")
    mset = load_measurement_set("vpm-invivo")
    sim = Simulator(tiny_model, rule, mset)
    cfg = config(n=60, chunk_size=30, prior_spec=build_prior_spec(rule),
                 measurement_names=list(sim.names))
    cfg.pop("streams")
    # created without a protocol: the first simulator records its own
    store = SimulationStore.create(tmp_path / "a.zarr", **cfg)
    store = simulate_to_store(store, sim, progress=False)
    assert store.attrs["protocol"] == sim.protocol()
    assert sim.protocol()["replace"] is False and sim.protocol()["pools"] == {
        "L4": ["L4sp", "L4ss"]}
    # a simulator with another protocol is refused, naming what differs
    other = Simulator(tiny_model, rule, mset, replace=True)
    message = (f"simulation store {str(store.path)!r} was simulated with replace false; this "
               f"run asks for true; simulations of two sampling protocols cannot be mixed: "
               f"write a new store (another --out), or pass --overwrite to start this one over")
    with pytest.raises(StoreMismatchError) as err:
        simulate_to_store(store, other, progress=False)
    assert str(err.value) == message
    with pytest.raises(StoreMismatchError) as err:
        SimulationStore.open_or_create(store.path, **{**cfg, "protocol": other.protocol()})
    assert str(err.value) == message
    SimulationStore.open_or_create(store.path, **{**cfg, "protocol": sim.protocol()})
    # a store of the older simulator (no recorded protocol, chunks done) is refused
    group = zarr.open_group(str(store.path), mode="r+")
    attrs = dict(group.attrs)
    attrs.pop("protocol")
    attrs["schema_version"] = 1  # older stores had neither a protocol nor a sealed configuration
    group["chunk_seed"].attrs.clear()
    group.attrs.clear()
    group.attrs.update(attrs)
    with pytest.raises(StoreMismatchError, match="without a recorded sampling protocol"):
        SimulationStore.open_or_create(store.path, **{**cfg, "protocol": sim.protocol()})
    with pytest.raises(StoreMismatchError, match="fresh connection for every sampled pair"):
        simulate_to_store(SimulationStore.open(store.path), sim, progress=False)
