"""The ``simulate`` stage: the training simulations, written chunk by chunk to a resumable store.

``<run>/simulations.zarr`` records the prior, the rule, the measurements, the anatomy and the
seed; opening it again with the same values resumes it where it stopped, and a complete store is
reused as it is.
"""

from __future__ import annotations

from pipelines.context import PipelineContext

__all__ = ["run_simulate"]


def run_simulate(ctx: PipelineContext) -> None:
    """Set ``ctx.store``: the run's complete simulation store (created, resumed or reused)."""
    from wiring.rules.registry import rule_provenance
    from wiring.simulation.store import SimulationStore, simulate_to_store

    cfg = ctx.config
    t0 = ctx.start("simulate")
    store = SimulationStore.open_or_create(
        ctx.run_dir / "simulations.zarr",
        n=cfg.simulation.n,
        chunk_size=cfg.simulation.chunk_size,
        prior_spec=ctx.prior_spec(),
        rule_info=rule_provenance(ctx.rule),
        measurement_names=list(ctx.simulator.names),
        measurement_hash=ctx.measurements.content_hash(),
        anatomy_hash=str(ctx.model.attrs.get("content_hash", "")),
        seed=ctx.seed("simulate"),
        protocol=ctx.simulator.protocol(),
    )
    # finished chunks are verified first: a missing or damaged one is redone, never trained on
    if t0 is None and store.is_complete and not store.verify(repair=True):
        ctx.store = store
        return
    t0 = t0 if t0 is not None else ctx.record.start("simulate")
    ctx.store = simulate_to_store(store, ctx.simulator, client=ctx.client, progress=ctx.progress)
    ctx.record.set_hash("simulations", ctx.store.content_hash())
    ctx.record.finish("simulate", t0, n=cfg.simulation.n)
