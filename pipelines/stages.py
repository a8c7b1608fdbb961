"""The stage runner: anatomy → features → simulations → posterior → analysis and report.

A run directory is named after the configuration's science hash, so running the same
configuration again finds the same directory: finished stages are skipped, the simulation store
resumes chunk by chunk, and stages that were interrupted are redone from their start. Every
stage is deterministic for the run seed, so an interrupted and resumed run ends with exactly the
results of an uninterrupted one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anatomy.storeguard import store_lock
from pipelines.cluster import ClusterSession
from pipelines.config import RunConfig
from pipelines.preflight import preflight
from pipelines.runrecord import RunRecord
from pipelines.stage_support import _prior_spec, derive_seed, train_kwargs
from wiring.errors import StoreMismatchError

__all__ = ["STAGES", "RunResult", "derive_seed", "resolve_run_dir", "run_pipeline"]

log = logging.getLogger(__name__)

#: Stages in execution order.
STAGES: tuple[str, ...] = ("anatomy", "features", "simulate", "train", "analyze")

#: Stages that distribute work on the cluster; the others run in this process, and the batch
#: jobs of a cluster are released before them (and submitted again if a later stage needs them).
DISTRIBUTED_STAGES: frozenset[str] = frozenset({"features", "simulate"})


def resolve_run_dir(config: RunConfig, out: str | Path | None = None) -> Path:
    """``out`` if given, else ``<run.output>/<run.name>-<science hash>``."""
    if out is not None:
        return Path(out)
    return Path(config.run.output) / f"{config.run.name}-{config.science_hash()}"


@dataclass
class RunResult:
    """What a finished run produced: its directory, the record and the analysis summary."""

    run_dir: Path
    record: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def report_html(self) -> Path:
        """The self-contained HTML report."""
        return self.run_dir / "report" / "index.html"


@dataclass
class _Context:
    config: RunConfig
    run_dir: Path
    cache_dir: Path
    record: RunRecord
    cluster: ClusterSession
    progress: bool
    model: Any = None
    rule: Any = None
    measurements: Any = None
    simulator: Any = None
    store: Any = None
    posterior: Any = None
    comparison: Any = None

    @property
    def client(self) -> Any:
        """The cluster's client, started at its first use (None for threads)."""
        return self.cluster.lazy_client()


def run_pipeline(
    config: RunConfig,
    *,
    out: str | Path | None = None,
    progress: bool = True,
    stop_after: str | None = None,
) -> RunResult:
    """Run (or resume) the whole pipeline for ``config``; returns the run's result.

    ``stop_after`` ends the run after the named stage (for debugging and tests).
    """
    if stop_after is not None and stop_after not in STAGES:
        from pipelines.config import ConfigError

        raise ConfigError(f"unknown stage {stop_after!r}; stages are {', '.join(STAGES)}")
    run_dir = resolve_run_dir(config, out)
    _check_run_dir(run_dir)
    # runs share reusable anatomy stores and feature tables in a cache beside them
    cache_dir = Path(config.run.cache) if config.run.cache else run_dir.parent / "cache"
    # the whole configuration is checked before anything is written or computed
    preflight(config, run_dir, cache_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    # one process per run directory: a second `wiring run` of it is refused, naming the first
    with store_lock(run_dir, what="run directory"):
        run_dir.mkdir(exist_ok=True)
        record = _run_stages(config, run_dir, cache_dir, progress=progress,
                             stop_after=stop_after)
    summary_path = run_dir / "report" / "summary.json"
    summary: dict[str, Any] = {}
    if summary_path.exists():
        import json

        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    return RunResult(run_dir=run_dir, record=record, summary=summary)


def _check_run_dir(run_dir: Path) -> None:
    """Refuse an existing folder that is neither empty nor a run directory of this package."""
    if not (run_dir.exists() or run_dir.is_symlink()):
        return
    if run_dir.is_dir() and not run_dir.is_symlink():
        if (run_dir / "config.toml").is_file() or not any(run_dir.iterdir()):
            return
    from pipelines.config import ConfigError

    raise ConfigError(
        f"{run_dir} exists and is not a run directory of this package (no config.toml); "
        f"refusing to write into it: choose another --out"
    )


def _run_stages(config: RunConfig, run_dir: Path, cache_dir: Path, *, progress: bool,
                stop_after: str | None) -> dict[str, Any]:
    """Run the stages in order; returns the final contents of ``run.json``."""
    _write_config(run_dir, config)
    record = RunRecord.open(run_dir, config_hash=config.science_hash(), seed=config.run.seed)
    abandoned = record.mark_abandoned()  # we hold the lock: their process is gone
    if abandoned:
        log.info("%s: resuming after stage(s) %s were interrupted", run_dir, ", ".join(abandoned))
    for stage in ("simulate", "train", "analyze", "compare"):
        record.set_seed(stage, derive_seed(config.run.seed, stage))
    try:
        with ClusterSession(config.cluster) as cluster:
            ctx = _Context(
                config=config,
                run_dir=run_dir,
                cache_dir=cache_dir,
                record=record,
                cluster=cluster,
                progress=progress,
            )
            for stage in STAGES:
                if stage not in DISTRIBUTED_STAGES and not _comparison_on_cluster(ctx, stage):
                    cluster.release()  # no batch job stays allocated through local stages
                _STAGE_FUNCS[stage](ctx)
                if stage == stop_after:
                    break
    except BaseException as err:
        # run.json tells what happened: the stage that was running failed (a kill -9 cannot
        # be recorded; the next run marks its stage interrupted, see mark_abandoned)
        failed = record.fail_running(err)
        if failed:
            log.debug("stage(s) %s of %s failed: %s", failed, run_dir, err)
        raise
    return record.data


def _write_config(run_dir: Path, config: RunConfig) -> None:
    """Write the resolved config; refuse a run directory made by another configuration."""
    from pipelines.config import ConfigError, load_config

    path = run_dir / "config.toml"
    text = config.to_toml()
    if path.exists():
        if path.read_text(encoding="utf-8") == text:
            return
        try:
            previous = load_config(path).science_hash()
        except ConfigError:
            previous = "unreadable"
        if previous != config.science_hash():
            raise ConfigError(
                f"run directory {run_dir} holds a run of another configuration (science hash "
                f"{previous}, this one {config.science_hash()}); choose another --out or remove "
                f"that directory"
            )
    tmp = path.with_name(".config.toml.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# -- stages ----------------------------------------------------------------------------------
def _stage_anatomy(ctx: _Context) -> None:
    from anatomy.errors import StoreValidationError
    from anatomy.generate import build_model
    from anatomy.store import open_model, write_model

    cfg = ctx.config.anatomy
    t0 = _start(ctx, "anatomy")
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


def _stage_features(ctx: _Context) -> None:
    from wiring.measurements import SliceConfig, resolve_measurement_set
    from wiring.rules.registry import get_rule
    from wiring.simulation.simulator import Simulator

    cfg = ctx.config
    t0 = _start(ctx, "features")
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


def _stage_simulate(ctx: _Context) -> None:
    from wiring.rules.registry import rule_provenance
    from wiring.simulation.store import SimulationStore, simulate_to_store

    cfg = ctx.config
    t0 = _start(ctx, "simulate")
    store = SimulationStore.open_or_create(
        ctx.run_dir / "simulations.zarr",
        n=cfg.simulation.n,
        chunk_size=cfg.simulation.chunk_size,
        prior_spec=_prior_spec(ctx),
        rule_info=rule_provenance(ctx.rule),
        measurement_names=list(ctx.simulator.names),
        measurement_hash=ctx.measurements.content_hash(),
        anatomy_hash=str(ctx.model.attrs.get("content_hash", "")),
        seed=derive_seed(cfg.run.seed, "simulate"),
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


def _comparison_on_cluster(ctx: _Context, stage: str) -> bool:
    """Whether a ``local`` cluster stays up for ``stage``: through training, where the rule
    comparison's fits are about to run on its workers, and through the analysis until they
    are collected. Batch-system jobs are always released (main rule: no idle allocation)."""
    if ctx.config.cluster.kind.strip() != "local" or stage not in ("train", "analyze"):
        return False
    if stage == "analyze":
        return ctx.comparison is not None and bool(ctx.comparison.submitted)
    cfg = ctx.config
    compared = [r for r in cfg.analysis.compare_rules if r != cfg.rule.name]
    return bool(compared) and cfg.analysis.comparison_simulations > 0 and not (
        ctx.record.is_done("analyze"))


def _stage_train(ctx: _Context) -> None:
    from wiring.inference import load_posterior, save_posterior, train_from_store

    cfg = ctx.config
    path = ctx.run_dir / "posterior"
    store_hash = ctx.store.content_hash()
    if not ctx.record.is_done("analyze"):
        # the compared rules' fits need no posterior of this run: start them on the idle
        # dask workers now, so that they train while this process trains the run's posterior
        from pipelines.comparison_fits import ComparisonFits

        ctx.comparison = ComparisonFits(ctx)
        ctx.comparison.start()
    if ctx.record.is_done("train") and path.exists():
        ctx.posterior = load_posterior(path)
        if ctx.posterior.manifest.get("store_hash") == store_hash:
            return
    t0 = ctx.record.start("train")
    ctx.posterior = train_from_store(
        ctx.store,
        seed=derive_seed(cfg.run.seed, "train"),
        progress=ctx.progress,
        **train_kwargs(cfg.inference),
    )
    save_posterior(ctx.posterior, path, overwrite=True)
    ctx.record.set_hash("posterior", str(ctx.posterior.manifest.get("weights_sha256", "")))
    training = ctx.posterior.manifest.get("training", {})
    ctx.record.finish("train", t0, **{k: v for k, v in training.items() if _is_scalar(v)})


def _start(ctx: _Context, stage: str) -> float | None:
    """Mark ``stage`` started and return its start time, or None when an earlier invocation
    finished it (the stage then only reloads its results and leaves the record alone)."""
    if ctx.record.is_done(stage):
        return None
    return ctx.record.start(stage)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _stage_analyze(ctx: _Context) -> None:
    from pipelines.analysis_stage import run_analysis

    report = ctx.run_dir / "report"
    if ctx.record.is_done("analyze") and (report / "index.html").exists():
        return
    t0 = ctx.record.start("analyze")
    timings = run_analysis(ctx, report, seed=derive_seed(ctx.config.run.seed, "analyze"))
    ctx.record.finish("analyze", t0, parts=timings)


_STAGE_FUNCS = {
    "anatomy": _stage_anatomy,
    "features": _stage_features,
    "simulate": _stage_simulate,
    "train": _stage_train,
    "analyze": _stage_analyze,
}
