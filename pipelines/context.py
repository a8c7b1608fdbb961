"""The pipeline context: what one run's stages hand to each other, as a typed object.

The runner (:mod:`pipelines.stages.runner`) makes one :class:`PipelineContext` per run and passes
it through the stages in order; each stage reads what the earlier ones left and sets its own
products (the anatomy stage sets :attr:`~PipelineContext.model`, the features stage the rule, the
measurement set and the simulator, the simulate stage the store, the train stage the posterior).
Reading a product before the stage that makes it has run is a programming error and raises
:class:`RuntimeError` naming that stage, rather than an ``AttributeError`` on ``None`` later.

The module also holds what several stages share: the per-stage seeds derived from the run seed
and the run's prior. It imports no stage module, so every stage module can import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from pipelines.cluster import ClusterSession
from pipelines.config import RunConfig
from pipelines.runrecord import RunRecord

if TYPE_CHECKING:
    from anatomy.model import StructuralModel
    from wiring.inference.npe import Posterior
    from wiring.inference.priors import PriorSpec
    from wiring.measurements.sets import MeasurementSet
    from wiring.rules.base import WiringRule
    from wiring.simulation.simulator import Simulator
    from wiring.simulation.store import SimulationStore

__all__ = ["PipelineContext", "derive_seed", "train_kwargs"]

_T = TypeVar("_T")

#: Spawn keys of the per-stage seeds derived from the run seed.
_SEED_KEYS: dict[str, int] = {
    "simulate": 1,
    "train": 2,
    "analyze": 3,
    "compare": 4,
    "sensitivity": 5,
}


def derive_seed(run_seed: int, stage: str) -> int:
    """A 63-bit seed for ``stage`` derived from the run seed (independent streams per stage).

    >>> derive_seed(0, "simulate") == derive_seed(0, "simulate") != derive_seed(0, "train")
    True
    >>> 0 <= derive_seed(0, "simulate") < 2**63
    True
    """
    ss = np.random.SeedSequence(run_seed, spawn_key=(_SEED_KEYS[stage],))
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def _made_by(value: _T | None, what: str, stage: str) -> _T:
    if value is None:
        raise RuntimeError(f"no {what} yet: the {stage!r} stage has not run in this context")
    return value


@dataclass
class PipelineContext:
    """One run's configuration, directories, record and cluster, and the stages' products.

    The products are properties: reading one before its stage ran raises :class:`RuntimeError`.
    """

    config: RunConfig
    run_dir: Path
    cache_dir: Path
    record: RunRecord
    #: The configured cluster, started when a stage first uses :attr:`client`; the runner
    #: releases it before the stages that do not distribute work.
    cluster: ClusterSession
    progress: bool = True
    #: The rule comparison's fits (:class:`pipelines.comparison_fits.ComparisonFits`), started
    #: by the train stage on a local cluster and collected by the analysis.
    comparison: Any = None
    _model: StructuralModel | None = field(default=None, init=False, repr=False)
    _rule: WiringRule | None = field(default=None, init=False, repr=False)
    _measurements: MeasurementSet | None = field(default=None, init=False, repr=False)
    _simulator: Simulator | None = field(default=None, init=False, repr=False)
    _store: SimulationStore | None = field(default=None, init=False, repr=False)
    _posterior: Posterior | None = field(default=None, init=False, repr=False)

    @property
    def client(self) -> Any:
        """The cluster's client, started at its first use (``None`` runs on local threads)."""
        return self.cluster.lazy_client()

    # -- products ------------------------------------------------------------------------------
    @property
    def model(self) -> StructuralModel:
        """The anatomy (set by the ``anatomy`` stage)."""
        return _made_by(self._model, "anatomy model", "anatomy")

    @model.setter
    def model(self, value: StructuralModel) -> None:
        self._model = value

    @property
    def rule(self) -> WiringRule:
        """The run's wiring rule (set by the ``features`` stage)."""
        return _made_by(self._rule, "wiring rule", "features")

    @rule.setter
    def rule(self, value: WiringRule) -> None:
        self._rule = value

    @property
    def measurements(self) -> MeasurementSet:
        """The measurement set the run fits (set by the ``features`` stage)."""
        return _made_by(self._measurements, "measurement set", "features")

    @measurements.setter
    def measurements(self, value: MeasurementSet) -> None:
        self._measurements = value

    @property
    def simulator(self) -> Simulator:
        """The simulator of the rule on the measurements (set by the ``features`` stage)."""
        return _made_by(self._simulator, "simulator", "features")

    @simulator.setter
    def simulator(self, value: Simulator) -> None:
        self._simulator = value

    @property
    def store(self) -> SimulationStore:
        """The complete simulation store (set by the ``simulate`` stage)."""
        return _made_by(self._store, "simulation store", "simulate")

    @store.setter
    def store(self, value: SimulationStore) -> None:
        self._store = value

    @property
    def posterior(self) -> Posterior:
        """The trained posterior (set by the ``train`` stage)."""
        return _made_by(self._posterior, "posterior", "train")

    @posterior.setter
    def posterior(self, value: Posterior) -> None:
        self._posterior = value

    # -- shared helpers ------------------------------------------------------------------------
    def seed(self, stage: str) -> int:
        """The seed of ``stage`` derived from the run seed (see :func:`derive_seed`)."""
        return derive_seed(self.config.run.seed, stage)

    def start(self, stage: str) -> float | None:
        """Mark ``stage`` started and return its start time, or None when an earlier invocation
        finished it (the stage then only reloads its results and leaves the record alone)."""
        if self.record.is_done(stage):
            return None
        return self.record.start(stage)

    def prior_spec(self, rule: WiringRule | None = None) -> PriorSpec:
        """The prior of the run's rule from the configuration; box-uniform for a compared rule."""
        from pipelines.preflight import configured_prior
        from wiring.inference.priors import build_prior_spec

        rule = self.rule if rule is None else rule
        if rule is not self.rule:
            # compared rules get the box-uniform prior over their plausible ranges: a Gaussian
            # around the a-priori value may put mass outside their domain (e.g. probabilities)
            return build_prior_spec(rule, kind="uniform")
        spec: PriorSpec = configured_prior(self.config, rule)
        return spec


def train_kwargs(inference: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`wiring.inference.train_posterior` from ``[inference]``
    (everything but the seed and the progress bar): the run's posterior and the rule
    comparison's fits train the same way."""
    inf = inference
    return {
        "estimator": inf.estimator, "hidden_features": inf.hidden_features,
        "num_transforms": inf.num_transforms, "batch_size": inf.batch_size,
        "learning_rate": inf.learning_rate, "validation_fraction": inf.validation_fraction,
        "stop_after_epochs": inf.stop_after_epochs, "max_epochs": inf.max_epochs,
        "lr_schedule": inf.lr_schedule, "lr_decay": inf.lr_decay,
        "lr_patience": inf.lr_patience, "min_learning_rate": inf.min_learning_rate,
        "num_threads": inf.threads, "device": inf.device,
    }
