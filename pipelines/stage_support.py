"""What the stage runner and the analysis stage share: per-stage seeds and the run's prior.

Kept apart from :mod:`pipelines.stages` so that :mod:`pipelines.analysis_stage` does not import
the runner that imports it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["derive_seed", "train_kwargs"]

#: Spawn keys of the per-stage seeds derived from the run seed.
_SEED_KEYS: dict[str, int] = {
    "simulate": 1,
    "train": 2,
    "analyze": 3,
    "compare": 4,
}


def derive_seed(run_seed: int, stage: str) -> int:
    """A 63-bit seed for ``stage`` derived from the run seed (independent streams per stage)."""
    ss = np.random.SeedSequence(run_seed, spawn_key=(_SEED_KEYS[stage],))
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def _prior_spec(ctx: Any, rule: Any = None) -> Any:
    """The prior of the run's rule from the configuration; box-uniform for a compared rule."""
    from pipelines.preflight import configured_prior
    from wiring.inference.priors import build_prior_spec

    rule = ctx.rule if rule is None else rule
    if rule is not ctx.rule:
        # compared rules get the box-uniform prior over their plausible ranges: a Gaussian
        # around the a-priori value may put mass outside their domain (e.g. probabilities)
        return build_prior_spec(rule, kind="uniform")
    return configured_prior(ctx.config, rule)


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
