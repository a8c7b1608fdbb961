"""A worker process that dies mid-task is replaced, dask retries the chunk, and the simulation
store ends identical to an undisturbed run; also when the dead worker was the only one holding
the shared simulator (it is recomputed, not lost as scattered data would be)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.cluster import connect
from pipelines.config import ClusterConfig
from wiring.inference.priors import PriorSpec
from wiring.simulation.store import SimulationStore, simulate_to_store

PRIOR = PriorSpec(kind="gaussian", names=("a", "b"), loc=(1.0, 1.0), scale=(0.2, 0.2))


def simulate(theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cheap deterministic-given-rng simulator with 3 outputs."""
    return np.column_stack([theta.sum(1), theta[:, 0] * theta[:, 1], rng.random(len(theta))])


class DieOnce:
    """Kills the worker process running it the first time it sees ``chunk_marker`` absent."""

    def __init__(self, marker: str, victim_call: int) -> None:
        self.marker = marker
        self.victim_call = victim_call
        self.calls = 0

    def __call__(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.calls += 1
        if self.calls == self.victim_call and not os.path.exists(self.marker):
            with open(self.marker, "w") as fh:
                fh.write(str(os.getpid()))
            os._exit(17)  # the worker process dies without cleanup, mid-chunk
        return simulate(theta, rng)


def _create(path: Path) -> SimulationStore:
    return SimulationStore.create(
        path,
        n=600,
        chunk_size=50,
        prior_spec=PRIOR,
        rule_info={"name": "toy", "distribution": "wiring-sbi", "version": "0"},
        measurement_names=["x0", "x1", "x2"],
        measurement_hash="m",
        anatomy_hash="a",
        seed=11,
        streams="chunk",  # the toy simulators take a generator
    )


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_killed_worker_is_retried_and_results_unchanged(tmp_path: Path, workers: int) -> None:
    import cloudpickle

    reference = simulate_to_store(_create(tmp_path / "ref.zarr"), simulate, progress=False)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        marker = tmp_path / "killed.pid"
        with connect(ClusterConfig(kind="local", workers=workers)) as client:
            store = simulate_to_store(
                _create(tmp_path / "killed.zarr"),
                DieOnce(str(marker), victim_call=2),
                client=client,
                progress=False,
            )
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert marker.exists(), "no worker was killed: the test did not exercise a failure"
    t_ref, x_ref = reference.load()
    t, x = store.load()
    assert store.is_complete
    assert t.tobytes() == t_ref.tobytes()
    assert x.tobytes() == x_ref.tobytes()
