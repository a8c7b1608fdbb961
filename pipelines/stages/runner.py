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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anatomy.storeguard import store_lock
from pipelines.cluster import ClusterSession
from pipelines.config import RunConfig
from pipelines.context import PipelineContext, derive_seed
from pipelines.preflight import preflight
from pipelines.runrecord import RunRecord
from pipelines.stages.analyze import run_analyze
from pipelines.stages.anatomy import run_anatomy
from pipelines.stages.features import run_features
from pipelines.stages.simulate import run_simulate
from pipelines.stages.train import run_train

__all__ = ["STAGES", "RunResult", "resolve_run_dir", "run_pipeline"]

log = logging.getLogger(__name__)

#: Stages in execution order.
STAGES: tuple[str, ...] = ("anatomy", "features", "simulate", "train", "analyze")

#: Stages that distribute work on the cluster; the others run in this process, and the batch
#: jobs of a cluster are released before them (and submitted again if a later stage needs them).
DISTRIBUTED_STAGES: frozenset[str] = frozenset({"features", "simulate"})

#: The function of each stage; each reads and extends the run's :class:`PipelineContext`.
_STAGE_FUNCS: dict[str, Callable[[PipelineContext], None]] = {
    "anatomy": run_anatomy,
    "features": run_features,
    "simulate": run_simulate,
    "train": run_train,
    "analyze": run_analyze,
}


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
            ctx = PipelineContext(
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


def _comparison_on_cluster(ctx: PipelineContext, stage: str) -> bool:
    """Whether a ``local`` cluster stays up for ``stage``: through training, where the rule
    comparison's fits are about to run on its workers, and through the analysis until they
    are collected. Batch-system jobs are always released (no idle allocation)."""
    if ctx.config.cluster.kind.strip() != "local" or stage not in ("train", "analyze"):
        return False
    if stage == "analyze":
        return ctx.comparison is not None and bool(ctx.comparison.submitted)
    cfg = ctx.config
    compared = [r for r in cfg.analysis.compare_rules if r != cfg.rule.name]
    return bool(compared) and cfg.analysis.comparison_simulations > 0 and not (
        ctx.record.is_done("analyze"))
