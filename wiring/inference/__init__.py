"""Inference: priors over a rule's parameters and neural posterior estimation (sbi NPE).

sbi and torch are imported only inside the functions that need them, so importing this package stays cheap.
"""

from __future__ import annotations

from wiring.inference.npe import (
    ESTIMATORS,
    MANIFEST_VERSION,
    SEAL_KEY,
    Posterior,
    PosteriorFileError,
    TrainingDataError,
    build_prior,
    is_posterior_dir,
    load_posterior,
    posterior_from_state,
    resolve_device,
    save_posterior,
    train_from_store,
    train_posterior,
)
from wiring.inference.priors import (
    GAUSSIAN_DOMAIN_TOLERANCE,
    PAPER_GAUSSIAN_VARIANCE,
    PRIOR_KINDS,
    PriorSpec,
    build_prior_spec,
    check_prior_spec,
)

__all__ = [
    "ESTIMATORS",
    "GAUSSIAN_DOMAIN_TOLERANCE",
    "MANIFEST_VERSION",
    "PAPER_GAUSSIAN_VARIANCE",
    "PRIOR_KINDS",
    "SEAL_KEY",
    "Posterior",
    "PosteriorFileError",
    "PriorSpec",
    "TrainingDataError",
    "build_prior",
    "build_prior_spec",
    "check_prior_spec",
    "is_posterior_dir",
    "load_posterior",
    "posterior_from_state",
    "resolve_device",
    "save_posterior",
    "train_from_store",
    "train_posterior",
]
