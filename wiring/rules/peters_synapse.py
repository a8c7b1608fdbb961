"""The ``peters_synapse`` rule: a synapse in every shared voxel with probability θ.

Wherever the axon of i and a dendrite of j share a voxel, a synapse forms there with
probability θ, independently across voxels (Boelts et al. 2023, Fig. 5); θ = 1 is Peters' rule
at the level of synapses (every contact is a synapse). Per shared-voxel row the rate is
``-log(1 - θ)`` (``inf`` at θ = 1), so a row holds a synapse with probability
``1 - exp(-rate) = θ`` (``synapses = "binomial"``), and a pair sharing n voxels connects with
probability ``1 - (1 - θ)^n``. A pair sharing no voxel has no rows and never connects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from wiring._typing import FloatArray
from wiring.rules.base import Level, LogLinearForm, ParamSpec, SynapseModel

__all__ = ["PetersSynapse"]


class PetersSynapse:
    """One synapse per shared voxel with probability θ (``peters_synapse``).

    Examples
    --------
    >>> import numpy as np
    >>> r = PetersSynapse().rate({"log_pre": np.zeros(2)}, [np.array([[0.5]])])
    >>> (1 - np.exp(-r)).tolist()
    [[0.5, 0.5]]
    """

    name: ClassVar[str] = "peters_synapse"
    params: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec(
            name="theta_p_synapse",
            default=1.0,
            low=0.0,
            high=1.0,
            domain=(0.0, 1.0),
            doc="probability of a synapse in each voxel the two neurons share (1 = Peters' rule)",
        ),
    )
    level: ClassVar[Level] = "voxel"
    features: ClassVar[tuple[str, ...]] = ("log_pre",)
    synapses: ClassVar[SynapseModel] = "binomial"

    def rate(self, features: Mapping[str, FloatArray], theta: Sequence[FloatArray]) -> FloatArray:
        """``-log(1 - θ)`` for every shared-voxel row.

        Parameters
        ----------
        features
            ``log_pre`` (R,): used only for the number of rows.
        theta
            ``(theta_p_synapse,)``, broadcastable against (R,), typically (B, 1).

        Returns
        -------
        FloatArray
            (B, R) rates; ``inf`` where θ = 1.
        """
        (p,) = theta
        with np.errstate(divide="ignore"):
            per_voxel = -np.log1p(-np.asarray(p, dtype=np.float64))
        return np.asarray(
            np.broadcast_to(per_voxel, np.broadcast_shapes(np.shape(p), features["log_pre"].shape)),
            dtype=np.float64,
        ).copy()

    def log_linear(self, theta: FloatArray) -> LogLinearForm:
        """The log rate is the constant ``log(−log(1 − θ))`` per row (no feature).

        Lets the simulator use its compiled kernel (:class:`wiring.rules.base.SupportsLogLinear`).
        """
        th = theta
        with np.errstate(divide="ignore"):
            off = np.log(-np.log1p(-th[:, 0]))
        return ((), np.zeros((len(th), 0)), off)
