"""Helpers of :class:`wiring.simulation.simulator.Simulator`: the pair features of a model in
the form that fits memory, and the ``sbi``-facing wrapper with a running simulation index."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from anatomy.model import StructuralModel
from wiring.errors import InvalidParameterError
from wiring.simulation.factored import FactoredFeatures, extract_factored
from wiring.simulation.feature_cache import extract_feature_bundle
from wiring.simulation.features import FeatureBundle, estimate_table, population_pairs

logger = logging.getLogger("wiring.simulation.simulator")


def features_of_model(
    model: StructuralModel, mset: Any, *, slice_config: Any, cache_dir: Any,
    representation: str, max_table_bytes: int, client: Any, progress: bool,
) -> FeatureBundle | FactoredFeatures:
    """The pair features of ``model``'s populations: the cached table form, or the factored
    form where the table would exceed ``max_table_bytes`` (``representation="auto"``)."""
    if representation not in ("auto", "table", "factored"):
        raise InvalidParameterError(
            f"representation must be 'auto', 'table' or 'factored', got {representation!r}"
        )
    pops = population_pairs(model, mset, slice_config)
    if representation == "auto":
        rows, nbytes = estimate_table(model, pops)
        representation = "table" if nbytes <= max_table_bytes else "factored"
        logger.info(
            "pair table would hold %d rows (%.2f GB; limit %.2f GB): using the %s form",
            int(rows.sum()), nbytes / 1e9, max_table_bytes / 1e9, representation,
        )
    if representation == "factored":
        return extract_factored(model, pops)
    return extract_feature_bundle(
        model, mset, slice_config=slice_config, cache_dir=cache_dir, client=client,
        progress=progress, max_bytes=None,
    )


class SbiSimulator:
    """``sbi``-facing wrapper of :class:`Simulator` with a running simulation index."""

    def __init__(self, simulator: Any, seed: int) -> None:
        self.simulator = simulator
        self.seed = seed
        self.next_index = 0

    def __call__(self, theta: Any) -> Any:
        import torch

        th = theta.detach().cpu().numpy() if isinstance(theta, torch.Tensor) else theta
        th = np.asarray(th, dtype=np.float64)
        x = self.simulator.simulate(th, seed=self.seed, start_index=self.next_index)
        self.next_index += len(np.atleast_2d(th))
        return torch.as_tensor(x, dtype=torch.float32)
