"""``--cluster`` and ``--cluster-config`` of the commands that distribute work outside ``wiring run``."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

__all__ = ["add_cluster_arguments", "cluster_config"]


def add_cluster_arguments(p: argparse.ArgumentParser, *, default: str) -> None:
    """Add ``--cluster KIND_OR_ADDRESS`` and ``--cluster-config FILE`` to ``p``."""
    p.add_argument("--cluster", default=None, metavar="KIND_OR_ADDRESS",
                   help="threads, local, slurm/pbs/sge/lsf, or a scheduler address "
                   f"(default: {default})")
    p.add_argument("--cluster-config", default=None, metavar="TOML",
                   help="a run configuration (file or built-in name, e.g. slurm) whose "
                   "[cluster] section sets the jobs: queue, account, cores, memory, walltime, "
                   "lifetime, jobs, minimum_jobs, maximum_jobs, start_timeout")


def cluster_config(args: argparse.Namespace, *, kind: str, workers: int = 0) -> Any:
    """The :class:`~pipelines.config.ClusterConfig` of ``--cluster-config`` (or the defaults),
    with ``kind`` and, when > 0, ``workers`` set."""
    from pipelines.config import ClusterConfig, load_config

    base = load_config(args.cluster_config).cluster if args.cluster_config else ClusterConfig()
    changes: dict[str, Any] = {"kind": kind}
    if workers > 0:
        changes["workers"] = workers
    return dataclasses.replace(base, **changes)
