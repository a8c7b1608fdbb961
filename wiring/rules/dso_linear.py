"""The ``dso_linear`` rule: dense structural overlap with multiplicative parameters.

.. math::

    \\lambda_{ijk}(\\theta) = \\frac{\\theta_{pre}\\,\\mathrm{pre}_{ik} \\cdot
    \\theta_{post}\\,\\mathrm{post}_{jk}}{\\theta_{postAll}\\,\\mathrm{postAll}_k}

θ = (1, 1, 1) is the classic dense structural overlap, like :mod:`wiring.rules.dso`. Only the
combination :math:`\\theta_{pre}\\theta_{post}/\\theta_{postAll}` enters the rates, so the three
parameters are not separately identifiable: a posterior over them is a ridge along that
product. The rule is kept for comparison with the exponent form. As for ``dso``, rows exist only
where both neurons are present, so pairs without overlap never connect.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from wiring._typing import FloatArray
from wiring.rules.base import Level, LogLinearForm, ParamSpec, SynapseModel, VoxelFactors

__all__ = ["DSOLinear", "dso_linear_factors"]

#: θ_postAll divides: its domain starts at the smallest positive normal float, not at 0.
_TINY = sys.float_info.min


def dso_linear_factors(theta: npt.ArrayLike) -> VoxelFactors:
    """Factors of the ``dso_linear`` rate ``(a·pre) · (b·post) / (c·postAll)``, ``theta = (a, b, c)``.

    Examples
    --------
    >>> f = dso_linear_factors([2.0, 1.0, 4.0])
    >>> float(f.pre(np.array(2.0)) * f.post(np.array(3.0)) * f.voxel(np.array(12.0)))
    0.25
    """
    a, b, c = (float(v) for v in np.asarray(theta, dtype=np.float64).reshape(-1))

    def pre(x: FloatArray) -> FloatArray:
        return a * x

    def post(x: FloatArray) -> FloatArray:
        return b * x

    def voxel(x: FloatArray) -> FloatArray:
        return 1.0 / (c * x)

    return VoxelFactors(pre, post, voxel)


class DSOLinear:
    """Dense structural overlap scaled by multiplicative factors (``dso_linear``).

    ``theta_pre`` and ``theta_post`` scale bouton and target-site counts (domain [0, inf)),
    ``theta_postall`` scales the normalization (domain > 0). Synapse counts are Poisson.

    Examples
    --------
    >>> import numpy as np
    >>> feats = {"log_pre": np.log([2.0]), "log_post": np.log([3.0]),
    ...          "log_post_all": np.log([12.0])}
    >>> th = [np.array([[2.0]]), np.array([[1.0]]), np.array([[4.0]])]
    >>> DSOLinear().rate(feats, th).round(4)
    array([[0.25]])
    """

    name: ClassVar[str] = "dso_linear"
    params: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec(
            name="theta_pre",
            default=1.0,
            low=0.0,
            high=2.0,
            domain=(0.0, math.inf),
            doc="factor on the presynaptic bouton count in the voxel",
        ),
        ParamSpec(
            name="theta_post",
            default=1.0,
            low=0.0,
            high=2.0,
            domain=(0.0, math.inf),
            doc="factor on the postsynaptic target-site count in the voxel",
        ),
        ParamSpec(
            name="theta_postall",
            default=1.0,
            low=0.1,
            high=2.0,
            domain=(_TINY, math.inf),
            doc="factor on the target sites of all neurons in the voxel (normalization)",
        ),
    )
    level: ClassVar[Level] = "voxel"
    features: ClassVar[tuple[str, ...]] = ("log_pre", "log_post", "log_post_all")
    synapses: ClassVar[SynapseModel] = "poisson"

    def rate(self, features: Mapping[str, FloatArray], theta: Sequence[FloatArray]) -> FloatArray:
        """Expected synapses per shared-voxel row: ``a·pre · b·post / (c·postAll)``.

        Parameters
        ----------
        features
            ``log_pre``, ``log_post``, ``log_post_all``: arrays of shape (R,).
        theta
            ``(theta_pre, theta_post, theta_postall)``, each broadcastable against (R,).

        Returns
        -------
        FloatArray
            (B, R) non-negative expected synapse counts.
        """
        a, b, c = theta
        dso = np.exp(features["log_pre"] + features["log_post"] - features["log_post_all"])
        with np.errstate(over="ignore"):
            return np.asarray((a * b / c) * dso, dtype=np.float64)

    def factors(self, theta: FloatArray) -> VoxelFactors:
        """The rate as a product of pre, post and voxel factors, for one θ of shape (3,).

        Lets the connectome engine use one sparse product per block of neurons
        (:class:`wiring.rules.base.SupportsFactors`) instead of evaluating every pair-voxel row.
        """
        return dso_linear_factors(theta)

    def log_linear(self, theta: FloatArray) -> LogLinearForm:
        """The log rate is linear in the features, with offset ``log a + log b − log c``.

        Lets the simulator use its compiled kernel (:class:`wiring.rules.base.SupportsLogLinear`).
        """
        th = theta
        with np.errstate(divide="ignore"):
            off = np.log(th[:, 0]) + np.log(th[:, 1]) - np.log(th[:, 2])
        return (("log_pre", "log_post", "log_post_all"), np.ones((len(th), 3)) * [1.0, 1.0, -1.0],
                off)
