"""The ``dso`` rule: dense structural overlap with exponent parameters, evaluated in log space.

For a presynaptic neuron i, a postsynaptic neuron j and a voxel k they share, the expected
number of synapses is

.. math::

    \\mathrm{DSO}_{ijk}(\\theta) = \\frac{\\mathrm{pre}_{ik}^{\\theta_{pre}}\\,
    \\mathrm{post}_{jk}^{\\theta_{post}}}{\\mathrm{postAll}_{k}^{\\theta_{postAll}}}
    = \\exp(\\theta_{pre} \\log \\mathrm{pre}_{ik} + \\theta_{post} \\log \\mathrm{post}_{jk}
    - \\theta_{postAll} \\log \\mathrm{postAll}_k),

and a pair's synapse count is Poisson with mean :math:`\\lambda_{ij} = \\sum_k \\mathrm{DSO}_{ijk}`.
:math:`\\theta = (1, 1, 1)` is the classic dense structural overlap of the barrel-cortex model
(Udvary et al. 2022; Boelts et al. 2023).

No overlap, no synapse, for every θ
-----------------------------------
The rule is evaluated only on the rows of a :class:`wiring.pairs.PairTable`, and a row exists
only where *both* neurons are present (pre > 0 and post > 0). A pair that shares no voxel has no
rows, so its expected count is exactly 0 and it never connects, whatever θ is.

This differs from the research code published with Boelts et al. (2023), which encodes rows
without overlap with 1e-10 in place of the missing features and then zeroes the wrong rows:
there such a row contributes :math:`(10^{-10})^{\theta_{pre} + \theta_{post} -
\theta_{postAll}}`, which is large when :math:`\theta_{pre} + \theta_{post} <
\theta_{postAll}`, so pairs without overlap can connect in that part of parameter space.
Connection probabilities of this rule differ from that code there, by design.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from wiring._typing import FloatArray
from wiring.rules.base import Level, LogLinearForm, ParamSpec, SynapseModel, VoxelFactors

__all__ = ["DSO", "dso_factors"]


def dso_factors(theta: npt.ArrayLike) -> VoxelFactors:
    """Factors of the ``dso`` rate ``pre^a * post^b / postAll^c`` for ``theta = (a, b, c)``.

    A ``dso``-like rule implements :class:`~wiring.rules.base.SupportsFactors` as
    ``def factors(self, theta): return dso_factors(theta)``.

    Examples
    --------
    >>> f = dso_factors([1.0, 2.0, 1.0])
    >>> float(f.pre(np.array(2.0)) * f.post(np.array(3.0)) * f.voxel(np.array(12.0)))
    1.5
    """
    a, b, c = (float(v) for v in np.asarray(theta, dtype=np.float64).reshape(-1))

    def pre(x: FloatArray) -> FloatArray:
        return np.power(x, a)

    def post(x: FloatArray) -> FloatArray:
        return np.power(x, b)

    def voxel(x: FloatArray) -> FloatArray:
        return np.power(x, -c)

    return VoxelFactors(pre, post, voxel)


class DSO:
    """Dense structural overlap with exponents on pre, post and postAll (``dso``).

    Parameters are ``theta_pre``, ``theta_post`` and ``theta_postall``; θ = (1, 1, 1) is the
    a-priori rule. Exponents may be any real number; the plausible range [0, 2] is the
    box-uniform prior. Synapse counts per pair are Poisson.

    Examples
    --------
    >>> import numpy as np
    >>> feats = {"log_pre": np.log([2.0]), "log_post": np.log([3.0]),
    ...          "log_post_all": np.log([12.0])}
    >>> DSO().rate(feats, [np.array([[1.0]]), np.array([[1.0]]), np.array([[1.0]])]).round(3)
    array([[0.5]])
    """

    name: ClassVar[str] = "dso"
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
            doc="exponent on the target sites of all neurons in the voxel (normalization)",
        ),
    )
    level: ClassVar[Level] = "voxel"
    features: ClassVar[tuple[str, ...]] = ("log_pre", "log_post", "log_post_all")
    synapses: ClassVar[SynapseModel] = "poisson"

    def rate(self, features: Mapping[str, FloatArray], theta: Sequence[FloatArray]) -> FloatArray:
        """Expected synapses per shared-voxel row: ``exp(a·log_pre + b·log_post − c·log_post_all)``.

        Parameters
        ----------
        features
            ``log_pre``, ``log_post``, ``log_post_all``: arrays of shape (R,).
        theta
            ``(theta_pre, theta_post, theta_postall)``, each broadcastable against (R,),
            typically (B, 1).

        Returns
        -------
        FloatArray
            (B, R) non-negative expected synapse counts (overflow gives ``inf``).
        """
        a, b, c = theta
        with np.errstate(over="ignore"):
            return np.exp(
                a * features["log_pre"] + b * features["log_post"] - c * features["log_post_all"]
            )

    def factors(self, theta: FloatArray) -> VoxelFactors:
        """The rate as a product of pre, post and voxel factors, for one θ of shape (3,).

        Lets the connectome engine use one sparse product per block of neurons
        (:class:`wiring.rules.base.SupportsFactors`) instead of evaluating every pair-voxel row.
        """
        return dso_factors(theta)

    def log_linear(self, theta: FloatArray) -> LogLinearForm:
        """The log rate is linear in the features: ``a·log_pre + b·log_post − c·log_post_all``.

        Lets the simulator use its compiled kernel (:class:`wiring.rules.base.SupportsLogLinear`).
        """
        th = theta
        return (("log_pre", "log_post", "log_post_all"),
                np.stack([th[:, 0], th[:, 1], -th[:, 2]], axis=1), np.zeros(len(th)))
