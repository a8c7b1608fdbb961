"""The ``peters_neuron`` rule: neuron-level Peters' rule with an overlap threshold.

Neuron i connects to neuron j iff their axon and dendrite share at least θ voxels
(Boelts et al. 2023, Fig. 4). A connected pair gets one synapse per shared voxel
(``synapses = "deterministic"``); the expected count is ``inf`` for connected pairs and 0
otherwise, so the connection probability ``1 - exp(-lambda)`` is exactly 1 or 0.

A pair sharing no voxel never connects, even for θ <= 0: every θ <= 1 is the plain Peters' rule
"any overlap connects".

Plausible range
---------------
θ is a count of 50 µm voxels. A dendritic arbour spans a few hundred µm (tens of voxels across
a layer) and a local axon a few hundred µm to ~1 mm, so pairs that overlap at all typically
share from one to a few tens of voxels, and close pairs in the same column up to about a
hundred. The box [1, 50] therefore runs from Peters' rule (1) to a threshold that only the most
intertwined pairs pass. Thresholds are compared with ``>=``, so non-integer θ act like
``ceil(θ)``.
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
            high=50.0,
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
