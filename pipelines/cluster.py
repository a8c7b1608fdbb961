"""Dask clients from a run config: local processes, threads, a scheduler address or a batch system.

One code path from laptop to cluster. Results never depend on the choice: every task derives its
random stream from (run seed, chunk index), never from the worker that runs it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from pipelines.config import ClusterConfig, ConfigError

__all__ = ["BATCH_SYSTEMS", "connect", "make_jobqueue_cluster"]

log = logging.getLogger(__name__)

#: Batch systems supported through dask-jobqueue, by ``cluster.kind``.
BATCH_SYSTEMS: dict[str, str] = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
}


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def make_jobqueue_cluster(cfg: ClusterConfig) -> Any:
    """A dask-jobqueue cluster object for ``cfg.kind`` (not yet scaled: no job is submitted).

    ``cluster.job_script()`` renders the batch script, so configurations can be checked on a
    machine without the batch system.
    """
    import dask_jobqueue

    cls = getattr(dask_jobqueue, BATCH_SYSTEMS[cfg.kind])
    kwargs: dict[str, Any] = {
        "cores": cfg.cores,
        "processes": cfg.processes,
        "memory": cfg.memory,
        "walltime": cfg.walltime,
        "job_extra_directives": list(cfg.job_extra_directives),
    }
    if cfg.queue:
        kwargs["queue"] = cfg.queue
    if cfg.account:
        kwargs["account"] = cfg.account
    if cfg.local_directory:
        kwargs["local_directory"] = cfg.local_directory
    return cls(**kwargs)


@contextlib.contextmanager
def connect(cfg: ClusterConfig) -> Iterator[Any | None]:
    """Yield a ``distributed.Client`` for the configured cluster (``None`` for ``threads``).

    ``threads`` runs tasks in dask's threaded scheduler inside this process; ``local`` starts a
    ``LocalCluster`` of single-threaded worker processes; any other value that is not a batch
    system is taken as the address of a running scheduler (``tcp://host:8786``).
    """
    kind = cfg.kind.strip()
    if kind == "threads":
        yield None
        return
    from distributed import Client, LocalCluster

    if kind == "local":
        n = cfg.workers or _default_workers()
        log.info("starting a local dask cluster with %d worker process(es)", n)
        with (
            LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.CRITICAL,  # shutdown chatter is not the user's concern
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    if kind in BATCH_SYSTEMS:
        cluster = make_jobqueue_cluster(cfg)
        try:
            cluster.scale(jobs=cfg.jobs)
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    if "://" not in kind and ":" not in kind:
        raise ConfigError(
            f"cluster.kind {kind!r} is not one of local, threads, "
            f"{', '.join(BATCH_SYSTEMS)}, nor a scheduler address like tcp://host:8786"
        )
    log.info("connecting to the dask scheduler at %s", kind)
    with Client(kind) as client:
        yield client
