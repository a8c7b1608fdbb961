"""The pipeline's stages, one module each, and the runner that chains them.

=====================  =============================================================
module                 what it does
=====================  =============================================================
``runner``             :func:`run_pipeline`: the run directory, the record, the cluster,
                       and the stages in order, skipping finished ones
``anatomy``            builds (or reuses) and loads the anatomy
``features``           the rule, the measurement set and the simulator
``simulate``           the training simulations in a resumable store
``train``              the neural posterior estimate
``analyze``            the standard analysis, the rule comparison and the report
=====================  =============================================================

Every stage is a function of the run's :class:`~pipelines.context.PipelineContext`.
"""

from __future__ import annotations

from pipelines.context import derive_seed
from pipelines.stages.runner import STAGES, RunResult, resolve_run_dir, run_pipeline

__all__ = ["STAGES", "RunResult", "derive_seed", "resolve_run_dir", "run_pipeline"]
