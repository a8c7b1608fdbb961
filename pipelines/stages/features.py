"""The ``features`` stage: the rule, the measurement set and the simulator built on them.

The simulator extracts (or loads from the shared feature cache) the population pair features of
every measurement; this is the stage's expensive part, and it is redone on every invocation
because the simulator is an in-memory object (the cache makes the redo a load).
"""

from __future__ import annotations

from pipelines.context import PipelineContext

__all__ = ["run_features"]


def run_features(ctx: PipelineContext) -> None:
    """Set ``ctx.rule``, ``ctx.measurements`` and ``ctx.simulator`` from the configuration."""
    from wiring.measurements import SliceConfig, resolve_measurement_set
    from wiring.rules.registry import get_rule
    from wiring.simulation.simulator import Simulator

    cfg = ctx.config
    t0 = ctx.start("features")
    ctx.rule = get_rule(cfg.rule.name)
    ctx.measurements = resolve_measurement_set(
        cfg.measurements.set,
        model=ctx.model,
        select=cfg.measurements.select or None,
        default_n_pairs=cfg.measurements.n_pairs or None,
    )
    ctx.simulator = Simulator(
        ctx.model,
        ctx.rule,
        ctx.measurements,
        n_pairs=cfg.measurements.n_pairs or "experiment",
        replace=cfg.simulation.replace,
        pooling=cfg.simulation.pooling,
        slice_config=SliceConfig(
            thickness_um=cfg.measurements.slice_thickness_um,
            max_distance_um=cfg.measurements.slice_max_distance_um,
        ),
        cache_dir=ctx.cache_dir / "features",
        client=ctx.client,
        progress=ctx.progress,
    )
    if t0 is None:
        return
    ctx.record.set_hash("measurements", ctx.measurements.content_hash())
    ctx.record.finish(
        "features",
        t0,
        measurements=list(ctx.measurements.names),
        representation=ctx.simulator.representation,
    )
