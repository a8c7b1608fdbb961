"""The ``peters_neuron`` rule: neuron-level Peters' rule with an overlap threshold.

Neuron i connects to neuron j iff their axon and dendrite share at least θ voxels
(Boelts et al. 2023, Fig. 4). A connected pair gets one synapse per shared voxel
(``synapses = "deterministic"``); the expected count is ``inf`` for connected pairs and 0
otherwise, so the connection probability ``1 - exp(-lambda)`` is exactly 1 or 0.

A pair sharing no voxel never connects, even for θ <= 0: every θ <= 1 is the plain Peters' rule
"any overlap connects".

Plausible range
---------------
θ is a count of shared 50 µm voxels. In the synthetic ``column`` model (seed 0; 400 random
presynaptic neurons against all postsynaptic ones) 86 % of all pairs share at least one voxel,
and those share a median of 50 voxels (10th / 90th / 99th percentiles 5 / 179 / 390; the
``small`` preset gives 5 / 170 / 358): dendrites and local axons span hundreds of µm, so
neurons in one column overlap in tens to hundreds of voxels. The box [1, 250] therefore runs
from Peters' rule (θ = 1: ~86 % of pairs connected) to a threshold that only about 5 % of pairs
pass, which brackets measured connection probabilities. Thresholds are compared with ``>=``, so
non-integer θ act like ``ceil(θ)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from wiring._typing import FloatArray
from wiring.rules.base import Level, ParamSpec, SynapseModel

__all__ = ["PetersNeuron"]


class PetersNeuron:
    """Connect a pair iff it shares at least θ voxels (``peters_neuron``).

    Examples
    --------
    >>> import numpy as np
    >>> PetersNeuron().rate({"n_shared": np.array([0.0, 2.0, 5.0])}, [np.array([[3.0]])])
    array([[ 0.,  0., inf]])
    """

    name: ClassVar[str] = "peters_neuron"
    params: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec(
            name="theta_min_shared",
            default=1.0,
            low=1.0,
            high=250.0,
            domain=(0.0, math.inf),
            unit="voxels",
            doc="minimum number of shared voxels for a connection (1 = Peters' rule)",
        ),
    )
    level: ClassVar[Level] = "pair"
    features: ClassVar[tuple[str, ...]] = ("n_shared",)
    synapses: ClassVar[SynapseModel] = "deterministic"

    def rate(self, features: Mapping[str, FloatArray], theta: Sequence[FloatArray]) -> FloatArray:
        """``inf`` for pairs with ``n_shared >= max(θ, 1)``, else 0.

        Parameters
        ----------
        features
            ``n_shared``: (P,) number of voxels each pair shares.
        theta
            ``(theta_min_shared,)``, broadcastable against (P,), typically (B, 1).

        Returns
        -------
        FloatArray
            (B, P) of 0 and ``inf``.
        """
        (threshold,) = theta
        n = features["n_shared"]
        connected = (n >= threshold) & (n >= 1)
        return np.where(connected, np.inf, 0.0)
