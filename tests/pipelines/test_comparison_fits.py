"""The rule comparison's fits give the same numbers in this process and on dask workers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

from pipelines.comparison_fits import ComparisonFits
from pipelines.config import RunConfig


def _ctx(tiny_model: Any, client: Any) -> Any:
    from wiring.measurements import load_measurement_set
    from wiring.rules.registry import get_rule
    from wiring.simulation.simulator import Simulator

    config = RunConfig.from_dict({
        "anatomy": {"preset": "tiny"},
        "inference": {"hidden_features": 8, "num_transforms": 1, "batch_size": 100,
                      "max_epochs": 3},
        "analysis": {"compare_rules": ["peters_synapse", "dso"],
                     "comparison_simulations": 200},
    })
    from pipelines.context import derive_seed
    from wiring.inference.priors import build_prior_spec

    mset = load_measurement_set("vpm-invivo")
    return SimpleNamespace(
        config=config, client=client, progress=False, measurements=mset, rule=get_rule("dso"),
        simulator=Simulator(tiny_model, "dso", mset),
        seed=lambda stage: derive_seed(config.run.seed, stage),
        prior_spec=lambda rule: build_prior_spec(rule, kind="uniform"))


def test_fits_are_the_same_in_process_and_on_workers(tiny_model: Any) -> None:
    from distributed import Client, LocalCluster

    here = ComparisonFits(_ctx(tiny_model, None))
    assert here.rules == ["peters_synapse"]  # the run's own rule is not compared with itself
    local = here.results()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        remote_fits = ComparisonFits(_ctx(tiny_model, client))
        remote_fits.start()
        remote = remote_fits.results()
    assert [f.rule for f in local] == [f.rule for f in remote] == ["peters_synapse"]
    a, b = local[0], remote[0]
    np.testing.assert_array_equal(a.theta, b.theta)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.posterior.manifest["training"]["validation_loss"] == (
        b.posterior.manifest["training"]["validation_loss"])
    x_o = a.simulator.x_o
    np.testing.assert_array_equal(a.posterior.sample(100, x_o, seed=3),
                                  b.posterior.sample(100, x_o, seed=3))


def test_no_comparison_when_none_is_asked(tiny_model: Any) -> None:
    ctx = _ctx(tiny_model, None)
    ctx.config = ctx.config.replace(analysis={"compare_rules": []})
    fits = ComparisonFits(ctx)
    assert not fits.wanted
    assert fits.results() == []
