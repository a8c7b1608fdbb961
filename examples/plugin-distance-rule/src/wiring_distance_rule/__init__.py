"""Example wiring-rule plugin: dense structural overlap damped by intersomatic distance.

The rule ``dso_distance`` multiplies the exponent form of the dense structural overlap (the
built-in ``dso``) by ``exp(-d / theta_length)``, where d is the distance between the two
somata (µm):

    rate_ijk = pre_ik^a · post_jk^b / postAll_k^c · exp(-d_ij / theta_length)

It is a voxel-level rule that also reads the pair feature ``soma_distance_um``: pair features
listed in ``features`` are repeated onto each of the pair's shared-voxel rows. As for every
voxel-level rule, a pair that shares no voxel has no rows and never connects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt

from wiring.rules.base import ParamSpec

__all__ = ["DSODistance"]
__version__ = "0.1.0"


class DSODistance:
    """Dense structural overlap times ``exp(-soma distance / theta_length)`` (``dso_distance``)."""

    name: ClassVar[str] = "dso_distance"
    params: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec(
            name="theta_pre",
            default=1.0,
            low=0.0,
            high=2.0,
            doc="exponent on the presynaptic bouton count in the voxel",
        ),
        ParamSpec(
            name="theta_post",
            default=1.0,
            low=0.0,
            high=2.0,
            doc="exponent on the postsynaptic target-site count in the voxel",
        ),
        ParamSpec(
            name="theta_postall",
            default=1.0,
            low=0.0,
            high=2.0,
            doc="exponent on the target sites of all neurons in the voxel",
        ),
        ParamSpec(
            name="theta_length",
            default=300.0,
            low=50.0,
            high=2000.0,
            domain=(1.0, math.inf),
            unit="um",
            doc="length constant of the decay with intersomatic distance",
        ),
    )
    level: ClassVar[Literal["voxel", "pair"]] = "voxel"
    features: ClassVar[tuple[str, ...]] = (
        "log_pre",
        "log_post",
        "log_post_all",
        "soma_distance_um",
    )
    synapses: ClassVar[Literal["poisson", "binomial", "deterministic"]] = "poisson"

    def rate(
        self,
        features: Mapping[str, npt.NDArray[np.float64]],
        theta: Sequence[npt.NDArray[np.float64]],
    ) -> npt.NDArray[np.float64]:
        """Expected synapses per shared-voxel row, shape (B, R)."""
        a, b, c, length = theta
        log_rate = (
            a * features["log_pre"]
            + b * features["log_post"]
            - c * features["log_post_all"]
            - features["soma_distance_um"] / length
        )
        with np.errstate(over="ignore"):
            return np.exp(log_rate)
