"""The ``anatomy`` stage: build (or reuse) the run's anatomy and load it.

A preset anatomy is built once into the shared cache
(``<cache>/anatomy/<preset>-seed<seed>-v<generator version>.zarr``) and reused by every run of
that preset, seed and generator version; a configured path is opened as it is. A resumed
run checks that the anatomy it used has not changed since.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipelines.context import PipelineContext
from wiring.errors import StoreMismatchError

__all__ = ["run_anatomy"]

log = logging.getLogger(__name__)


def run_anatomy(ctx: PipelineContext) -> None:
    """Set ``ctx.model``: the configured anatomy, built into the cache on first use."""
    from anatomy.errors import StoreValidationError
    from anatomy.generate import build_model
    from anatomy.store import open_model, write_model

    cfg = ctx.config.anatomy
    t0 = ctx.start("anatomy")
    if cfg.path:
        path = Path(cfg.path)
        built = False
    else:
        from anatomy.generate import GENERATOR_VERSION

        # the generator version is part of the name: a cached store of an earlier calibration
        # is never reused
        path = (ctx.cache_dir / "anatomy"
                / f"{cfg.preset}-seed{cfg.seed}-v{GENERATOR_VERSION}.zarr")
        built = not path.exists()
        if not built:
            try:
                open_model(path, validate=False)
            except StoreValidationError as err:
                # a cached store changed or damaged since it was written is never reused under
                # its recorded content hash; the cache is ours, so it is rebuilt from its recipe
                log.warning("the cached anatomy cannot be used (%s); rebuilding it", err)
                built = True
        if built:
            log.info("building the %r anatomy (seed %d) into %s", cfg.preset, cfg.seed, path)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_model(build_model(cfg.preset, seed=cfg.seed, progress=ctx.progress), path,
                        overwrite=path.exists())
    ctx.model = open_model(path)
    ctx.model.pre.load()
    ctx.model.post.load()
    content_hash = str(ctx.model.attrs.get("content_hash", ""))
    if t0 is not None:
        ctx.record.set_hash("anatomy", content_hash)
        ctx.record.finish("anatomy", t0, path=str(path), built=built, neurons=ctx.model.n_neurons)
    elif ctx.record.data["hashes"].get("anatomy") != content_hash:
        raise StoreMismatchError(
            f"the anatomy at {path} changed since this run used it (content hash "
            f"{content_hash[:12]} != {str(ctx.record.data['hashes'].get('anatomy'))[:12]}); start "
            f"a new run directory"
        )
