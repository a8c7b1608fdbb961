"""Shared task inputs that survive the loss of any dask worker, and the store-visibility check.

``client.scatter`` puts data on workers *only*: when every worker holding a scattered object
dies (a cancelled batch job, a job at its walltime, a node failure), the object is gone and
every task that needs it fails with "lost scattered data, which can't be recovered". Large
inputs shared by many tasks (the simulator, the structural model, the connectome engine's
inputs) are instead the result of a small task, :func:`share`: the scheduler keeps the task, so
a lost result is recomputed on a surviving or replacement worker. Each worker fetches the
object once from a peer and keeps it while tasks need it, so the cost per task stays one
dependency lookup.
"""

from __future__ import annotations

import os
import socket
import uuid
import warnings
from typing import Any

from wiring.errors import StoreNotVisibleError

__all__ = ["require_visible", "share"]

def _identity(obj: Any) -> Any:
    return obj


def share(client: Any, obj: Any, name: str) -> Any:
    """A future of ``obj`` that the scheduler can recompute after any worker loss.

    Use it instead of ``client.scatter(obj, broadcast=True)`` for inputs many tasks share. The
    object travels as the argument of a task, serialized the way dask serializes every task
    (classes by reference, those of ``__main__`` by value), and the scheduler keeps that task:
    one serialized copy in the scheduler's process, which lives beside the client, in the
    submitting process, for local and batch-system clusters.
    """
    with warnings.catch_warnings():
        # the object travels in the task graph on purpose: that is what makes it recomputable
        warnings.filterwarnings("ignore", message=r".*[Ll]arge (graph|object)")
        return client.submit(_identity, obj, key=f"{name}-{uuid.uuid4().hex}", pure=False)


def require_visible(path: str | os.PathLike[str], what: str = "store") -> None:
    """Raise :class:`StoreNotVisibleError` unless ``path`` exists where this task runs.

    Called at the start of tasks that write to a store: on a cluster without a filesystem shared
    with the submitting machine the error names the worker's host instead of failing deep in
    zarr.
    """
    if not os.path.exists(path):
        raise StoreNotVisibleError(
            f"the {what} {os.fspath(path)} does not exist on worker host "
            f"{socket.gethostname()}: stores must be on a filesystem shared by the submitting "
            f"machine and every worker (set run.output or --out to such a path)"
        )
