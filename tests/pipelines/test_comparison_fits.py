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


def test_large_inputs_travel_once_as_shared_tasks_not_in_the_fits_graph(tiny_model: Any) -> None:
    """The per-pair VPM flags of the protocol (8 bytes per eligible pair: 36 MiB at paper
    scale), the measurement set and the features reach the workers as shared task results; the
    fits' own graphs stay small, so dask's "Sending large graph" warning never fires."""
    import warnings

    import dask
    from distributed import Client, Future, LocalCluster

    from pipelines.comparison_fits import fit_compared_rule
    from wiring._dask import _identity

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        submitted: list[tuple[Any, tuple[Any, ...]]] = []

        class Recording:
            """The client, recording what is submitted."""

            def __getattr__(self, name: str) -> Any:
                return getattr(client, name)

            def submit(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
                submitted.append((fn, args))
                return client.submit(fn, *args, **kwargs)

        ctx = _ctx(tiny_model, Recording())
        fits = ComparisonFits(ctx)
        flags = fits.protocol["pre_is_vpm"]
        assert flags is not None and flags.nbytes >= 8 * 1000  # one float per eligible pair
        # dask warns above this size: the flags alone exceed it, a fit's own task does not
        limit = flags.nbytes // 2
        assert limit > 3000
        with dask.config.set({"distributed.admin.large-graph-warning-threshold": f"{limit}B"}):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fits.start()
                results = fits.results()
            # the check is sensitive: the protocol passed by value does warn
            with pytest.warns(UserWarning, match="Sending large graph"):
                client.submit(dict, fits.protocol, pure=False).result()
    assert not [w for w in caught if "large graph" in str(w.message)], [
        str(w.message) for w in caught]
    assert [f.rule for f in results] == ["peters_synapse"]
    (fit_args,) = [args for fn, args in submitted if fn is fit_compared_rule]
    source, name, mset, protocol = fit_args[:4]
    assert name == "peters_synapse"
    assert all(isinstance(a, Future) for a in (source, mset, protocol))
    shared = [args[0] for fn, args in submitted if fn is _identity]
    assert shared[0] is ctx.simulator.source and shared[1] is ctx.measurements
    assert shared[2]["pre_is_vpm"] is not None
    assert (shared[2]["pre_is_vpm"] == flags).all()
