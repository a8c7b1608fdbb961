"""The ``train`` stage: the neural posterior estimate trained on the run's simulations.

The posterior is saved to ``<run>/posterior`` (torch state dict plus JSON manifest) with the
content hash of the store it was trained on; a resumed run reuses it only when that hash still
matches the store.
"""

from __future__ import annotations

from typing import Any

from pipelines.context import PipelineContext, train_kwargs

__all__ = ["run_train"]


def run_train(ctx: PipelineContext) -> None:
    """Set ``ctx.posterior``: trained on ``ctx.store``, or reloaded when already trained on it."""
    from wiring.inference import load_posterior, save_posterior, train_from_store

    cfg = ctx.config
    path = ctx.run_dir / "posterior"
    store_hash = ctx.store.content_hash()
    if not ctx.record.is_done("analyze"):
        # the compared rules' fits need no posterior of this run: start them on the idle
        # workers of a local cluster now, so that they train while this process trains
        from pipelines.comparison_fits import ComparisonFits

        ctx.comparison = ComparisonFits(ctx)
        ctx.comparison.start()
    if ctx.record.is_done("train") and path.exists():
        ctx.posterior = load_posterior(path)
        if ctx.posterior.manifest.get("store_hash") == store_hash:
            return
    t0 = ctx.record.start("train")
    ctx.posterior = train_from_store(
        ctx.store, seed=ctx.seed("train"), progress=ctx.progress, **train_kwargs(cfg.inference))
    save_posterior(ctx.posterior, path, overwrite=True)
    ctx.record.set_hash("posterior", str(ctx.posterior.manifest.get("weights_sha256", "")))
    training = ctx.posterior.manifest.get("training", {})
    ctx.record.finish("train", t0, **{k: v for k, v in training.items() if _is_scalar(v)})


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None

