"""The pipeline context: typed products that name the stage that makes them, per-stage seeds,
the run's prior, and the old import paths of the stage package."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cluster import ClusterSession
from pipelines.config import ClusterConfig, RunConfig
from pipelines.context import PipelineContext, derive_seed
from pipelines.runrecord import RunRecord


@pytest.fixture
def ctx(tmp_path: Path) -> PipelineContext:
    config = RunConfig()
    record = RunRecord.open(tmp_path, config_hash=config.science_hash(), seed=config.run.seed)
    return PipelineContext(config=config, run_dir=tmp_path, cache_dir=tmp_path / "cache",
                           record=record, cluster=ClusterSession(config.cluster))


@pytest.mark.parametrize(
    ("product", "stage"),
    [("model", "anatomy"), ("rule", "features"), ("measurements", "features"),
     ("simulator", "features"), ("store", "simulate"), ("posterior", "train")],
)
def test_a_product_read_before_its_stage_names_the_stage(
    ctx: PipelineContext, product: str, stage: str
) -> None:
    with pytest.raises(RuntimeError, match=f"the '{stage}' stage has not run"):
        getattr(ctx, product)


def test_products_are_kept_and_the_prior_follows_the_config(ctx: PipelineContext) -> None:
    from wiring.rules.registry import get_rule

    rule = get_rule("dso")
    ctx.rule = rule
    assert ctx.rule is rule
    spec = ctx.prior_spec()
    assert spec.kind == ctx.config.rule.prior
    assert spec.names == tuple(p.name for p in rule.params)
    # a compared rule gets the box-uniform prior over its plausible ranges
    other = get_rule("dso_linear")
    compared = ctx.prior_spec(other)
    assert compared.kind == "uniform"
    assert compared.low == tuple(p.low for p in other.params)


def test_stage_seeds_are_derived_from_the_run_seed(ctx: PipelineContext) -> None:
    seeds = {stage: ctx.seed(stage) for stage in ("simulate", "train", "analyze", "compare")}
    assert len(set(seeds.values())) == 4
    assert seeds["simulate"] == derive_seed(ctx.config.run.seed, "simulate")
    with pytest.raises(KeyError):
        ctx.seed("nonsense")


def test_start_marks_a_stage_once(ctx: PipelineContext) -> None:
    t0 = ctx.start("anatomy")
    assert t0 is not None
    ctx.record.finish("anatomy", t0)
    assert ctx.start("anatomy") is None  # finished by an earlier invocation


def test_the_cluster_starts_only_when_a_stage_uses_the_client(ctx: PipelineContext) -> None:
    assert ctx.config.cluster.kind == "local"
    assert ctx.client is not None  # a stand-in: nothing started yet
    assert not ctx.cluster.active and ctx.cluster.starts == 0
    ctx.cluster = ClusterSession(ClusterConfig(kind="threads"))
    assert ctx.client is None  # threads run in this process, without a client


def test_stage_package_keeps_its_import_paths() -> None:
    import pipelines.stages as stages
    from pipelines.stages.runner import run_pipeline

    assert stages.run_pipeline is run_pipeline
    assert stages.derive_seed is derive_seed
    assert stages.STAGES == ("anatomy", "features", "simulate", "train", "analyze")
    assert set(stages.__all__) == {"STAGES", "RunResult", "derive_seed", "resolve_run_dir",
                                   "run_pipeline"}
