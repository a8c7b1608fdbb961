"""The batched simulator: simulated connection probabilities of measured populations for SBI.

For one parameter vector θ the simulator does what the experiments did. Each simulation has
one connectome: every (pre, post) pair of the model has its own uniform ``u`` in that
simulation, keyed by the simulation's stream and the two neurons, and is connected when its
expected synapse count ``λ = Σ_rows rate`` (voxel-level rules, summed over the voxels the two
neurons share) or ``λ = rate`` (pair-level rules) exceeds ``−log u``, i.e. with probability
``1 − exp(−λ)`` (the probability of at least one synapse when the counts per shared voxel are
Poisson; binomial per-voxel synapses give the same probability). Pairs that share no voxel have
``λ = 0`` and never connect (for pair-level rules too). Each measurement then tests ``n``
distinct pairs drawn uniformly from the eligible pairs of its population (``replace=True``:
with replacement) and returns the connected fraction. A pair tested by two measurements, or
twice, has the same outcome; measurements whose populations share pairs are correlated, and
``x · n`` is *not* Binomial(n, p̄(θ)): its variance also contains the spread of the connectome,
``(1/N²) Σ_i p_i (1 − p_i)`` over the ``N`` eligible pairs, which matters for small
populations. The mean is :meth:`Simulator.expected`: ``p̄(θ)``, the mean of ``1 − exp(−λ)``
over all eligible pairs, for measurements that sample all their pairs themselves.

Pooled measurements
-------------------
A measurement that ``includes`` others (e.g. all L4 pairs of a study, of which the L4sp and
L4ss pairs were reported separately too) tests the pairs its parts sampled in the same
simulation plus ``n − Σ n_parts`` further pairs drawn from its population without those
(``pooling=False`` ignores ``includes``). Its parts must lie in its population and, without
replacement, be disjoint.

Number of pairs
---------------
``n_pairs="experiment"`` (default) samples as many pairs as each experiment tested, so ``x``
carries the experiment's sampling noise; an integer samples that many for every measurement.
The research code of Boelts et al. (2023) draws 50 pre and 50 post indices independently and
uniformly with replacement from the population's pre and post neurons and tests the 50 pairs
(pre_s, post_s) of one connectome; since an independent uniform (pre, post) is a uniform pair of
the product set, ``n_pairs=50, replace=True, pooling=False`` has exactly that distribution for
every in vivo (product) population. For slice populations only pairs inside the slab are
eligible, so pairs are drawn from those.

Random streams
--------------
Simulation ``i`` of a run with seed ``s`` uses only its own counter-based random stream, keyed
by (``s``, ``i``), for the choice of pairs, and its connectome key derived from it for the
connections (see :mod:`wiring.simulation._kernels` for the exact construction), so
``simulate(theta, seed=s, start_index=i0)`` gives row ``k`` the same value whether it is
computed alone, in a batch of 1,000 or split over workers. ``simulator(theta, rng)`` (the form
``sbi`` and :mod:`wiring.simulation.store` call) draws one 63-bit seed from ``rng`` and simulates the
batch at indices ``0 .. B − 1``; :meth:`Simulator.to_sbi` keeps a running index instead, so its
output does not depend on how ``sbi`` batches the calls.

Invalid parameters
------------------
θ rows that are NaN or outside the rule's domain (and θ for which the rule returns a NaN rate)
give a row of NaN, are counted in :attr:`Simulator.n_invalid` and logged; they never raise.

Speed
-----
Rules whose log rate is linear in the row features (``dso``, ``dso_linear``,
``peters_synapse``, or any rule implementing :class:`SupportsLogLinear`) run in a compiled
single-threaded kernel that walks each sampled pair's contiguous rows and stops summing as soon
as the pair is known to be connected. Every other rule runs vectorized in numpy through its
``rate`` (gather the rows of all sampled pairs of all θ, per-row θ by index, segment sum). Both
paths consume the same random numbers and give the same ``x``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from anatomy.model import StructuralModel
from wiring._typing import BoolArray, FloatArray, IntArray
from wiring.errors import InvalidParameterError, MeasurementError, ShapeMismatchError
from wiring.pairs import PairTable, segment_sum
from wiring.rules.base import (
    PAIR_FEATURES,
    VOXEL_FEATURES,
    LogLinearForm,
    SupportsLogLinear,
    WiringRule,
    call_rate,
    check_rates,
    check_theta,
    in_domain,
    theta_columns,
)
from wiring.rules.registry import get_rule
from wiring.simulation import _kernels as kern
from wiring.simulation._simulator_support import SbiSimulator, features_of_model
from wiring.simulation.factored import FactoredFeatures
from wiring.simulation.features import FeatureBundle, measurement_set_hash
from wiring.simulation.nuisance import (
    NuisanceColumns,
    NuisanceSpec,
    log_factors,
    resolve_nuisance,
    shift_features,
    vpm_pair_flags,
)
from wiring.simulation.sampling import SamplingPlan

__all__ = ["LogLinearForm", "Simulator", "SupportsLogLinear", "log_linear_form"]

logger = logging.getLogger(__name__)

_GENERIC_ROWS = 1 << 22  # rows gathered per chunk on the generic path
_SAMPLE_COLUMNS = 1 << 20  # sampled pairs (rows × columns) held at once by simulate()
_EXPECTED_ROWS = 1 << 24  # B × R elements per chunk of expected() on the generic path


def log_linear_form(rule: WiringRule, theta: FloatArray) -> LogLinearForm | None:
    """The log-linear form of ``rule`` at (B, d) ``theta`` (in domain), or None if unknown."""
    if rule.level != "voxel":
        return None
    if not isinstance(rule, SupportsLogLinear):
        return None
    names, coef, off = rule.log_linear(theta)
    return tuple(names), np.asarray(coef, np.float64), np.asarray(off, np.float64)


class Simulator:
    """Simulated connection probability of each measurement of a set (see module docstring).

    Parameters
    ----------
    model_or_tables
        A :class:`~anatomy.model.StructuralModel` (pair features are extracted, and cached
        under ``cache_dir``), a :class:`~wiring.simulation.FeatureBundle`, a
        :class:`~wiring.simulation.FactoredFeatures`, or one :class:`~wiring.pairs.PairTable`
        per measurement (in set order).
    rule
        A wiring rule instance or registered name.
    mset
        The :class:`~wiring.measurements.MeasurementSet` (names, ``x_o``, pairs tested).
    n_pairs
        ``"experiment"``: as many pairs as each experiment tested; an int: that many for every
        measurement; a sequence: one count per measurement.
    slice_config
        :class:`~wiring.measurements.SliceConfig` for slice-protocol measurements.
    cache_dir
        Feature cache directory (see :func:`wiring.simulation.extract_feature_bundle`).
    representation
        For a model: ``"table"`` (one row per pair and shared voxel, cached), ``"factored"``
        (per-neuron voxel lists; rows computed for the sampled pairs only), or ``"auto"``:
        the table unless it would exceed ``max_table_bytes``.
    max_table_bytes
        Size limit of the table form for ``representation="auto"``.
    client, progress
        Passed to the feature extraction.
    replace
        ``False`` (default): the pairs of one measurement are distinct (sampled without
        replacement), as in a recording; ``True``: sampled with replacement, the protocol of the
        research code of Boelts et al. (2023).
    pooling
        ``True`` (default): a pooled measurement (``includes``) tests the pairs its parts
        sampled plus further pairs of its own population; ``False``: every measurement samples
        all its pairs itself (independently of the others, as the research code does).
    nuisance
        Anatomy nuisance parameters (names or a :class:`~wiring.simulation.nuisance.NuisanceSpec`)
        drawn for every simulation, keyed by (seed, simulation index), unless ``simulate`` gets
        explicit values; ``expected`` uses the nominal anatomy (ν = 0) unless given values.
    pre_is_vpm
        Whether each pair's presynaptic neuron is a VPM neuron (P,), for tables without a model.

    Raises
    ------
    MeasurementError
        A measurement has no eligible pair, or no usable pair count; without replacement, a
        measurement tests more pairs than its population has; a pooled measurement's parts are
        not inside its population, overlap, or tested more pairs than it.
    ShapeMismatchError
        The tables do not match the measurement set, or lack a feature the rule needs.

    Examples
    --------
    >>> from anatomy.generate import build_model
    >>> from wiring.measurements import load_measurement_set
    >>> vpm = load_measurement_set("vpm-invivo")
    >>> sim = Simulator(build_model("tiny"), "dso", vpm, progress=False)
    >>> x = sim.simulate(np.ones((100, 3)), seed=0)  # one row per theta, one column per measurement
    >>> x.shape == (100, len(vpm))
    True
    """

    def __init__(
        self,
        model_or_tables: StructuralModel | FeatureBundle | FactoredFeatures | Sequence[PairTable],
        rule: str | WiringRule,
        mset: Any,
        *,
        n_pairs: Literal["experiment"] | int | Sequence[int] = "experiment",
        slice_config: Any = None,
        cache_dir: str | os.PathLike[str] | None = None,
        representation: Literal["auto", "table", "factored"] = "auto",
        max_table_bytes: int = 2 * 2**30,
        client: Any = None,
        progress: bool = False,
        replace: bool = False,
        pooling: bool = True,
        nuisance: NuisanceSpec | Sequence[str] | None = None,
        pre_is_vpm: npt.ArrayLike | None = None,
    ) -> None:
        self.rule: WiringRule = get_rule(rule)
        if not isinstance(replace, bool | np.bool_) or not isinstance(pooling, bool | np.bool_):
            raise InvalidParameterError(
                f"replace and pooling must be True or False, got replace={replace!r}, "
                f"pooling={pooling!r}"
            )
        #: Whether each measurement samples its pairs with replacement (the research code's
        #: protocol) instead of without (a recording never tests a pair twice).
        self.replace = bool(replace)
        #: Whether pooled measurements (``includes``) test their parts' sampled pairs.
        self.pooling = bool(pooling)
        self.mset = mset
        names = tuple(str(n) for n in mset.names)
        source: FeatureBundle | FactoredFeatures
        if isinstance(model_or_tables, StructuralModel):
            source = features_of_model(
                model_or_tables, mset, slice_config=slice_config, cache_dir=cache_dir,
                representation=representation, max_table_bytes=max_table_bytes,
                client=client, progress=progress,
            )
        elif isinstance(model_or_tables, FeatureBundle | FactoredFeatures):
            source = model_or_tables
        else:
            source = FeatureBundle.from_tables(names, list(model_or_tables))
        if len(source.names) != len(names):
            raise ShapeMismatchError(
                f"{len(source.names)} pair tables for a measurement set of {len(names)} "
                f"measurements ({', '.join(names)}); give one table per measurement"
            )
        self.source = source
        self.names: tuple[str, ...] = names
        self.slice_config = slice_config
        self.n_pairs_spec = n_pairs
        self.n_sample: IntArray = self._sample_sizes(n_pairs)
        empty = [nm for nm, p in zip(names, source.n_pairs, strict=True) if p == 0]
        if empty:
            raise MeasurementError(
                f"measurement(s) {empty} have no eligible pair in this model; check their "
                f"selectors (and the slice configuration for slice protocols)"
            )
        self._pair_lo = np.ascontiguousarray(source.pair_offsets[:-1], dtype=np.int64)
        self._pair_n = np.ascontiguousarray(source.n_pairs, dtype=np.int64)
        self._pre = np.ascontiguousarray(source.pre, dtype=np.int64)
        self._post = np.ascontiguousarray(source.post, dtype=np.int64)
        #: The anatomy nuisance parameters every simulation draws (None: the nominal anatomy).
        self.nuisance: NuisanceSpec | None = NuisanceSpec.of(nuisance)
        model = model_or_tables if isinstance(model_or_tables, StructuralModel) else None
        self.pre_is_vpm = vpm_pair_flags(model, self._pre, pre_is_vpm, self.nuisance)
        self._vflag = np.zeros(len(self._pre)) if self.pre_is_vpm is None else self.pre_is_vpm
        self._plan = SamplingPlan.build(self)
        stats = [getattr(m, "statistic", "pairs") for m in getattr(mset, "measurements", ())]
        self._per_pre = np.array(
            [st == "per_pre" for st in stats] if len(stats) == len(names) else [False] * len(names),
            dtype=np.bool_)
        self._check_features()
        #: Number of θ rows answered with NaN so far (out of domain, NaN, or NaN rate).
        self.n_invalid = 0
        self._fast: bool | None = None
        self._form_names: tuple[str, ...] = ()

    @property
    def representation(self) -> str:
        """``"table"`` or ``"factored"``: the form of the pair features in use."""
        return "table" if isinstance(self.source, FeatureBundle) else "factored"

    # ---------------------------------------------------------------- setup
    def _sample_sizes(self, n_pairs: Any) -> IntArray:
        m = len(self.names)
        if isinstance(n_pairs, str):
            if n_pairs != "experiment":
                raise InvalidParameterError(
                    f"n_pairs must be 'experiment', a positive int or one int per measurement; "
                    f"got {n_pairs!r}"
                )
            counts = [getattr(meas, "n_pairs", None) for meas in self.mset.measurements]
            bad = [nm for nm, c in zip(self.names, counts, strict=True)
                   if not isinstance(c, int | np.integer) or c < 1]
            if bad:
                raise MeasurementError(
                    f"measurement(s) {bad} do not say how many pairs were tested; pass "
                    f"n_pairs=<int> (e.g. 50, as the paper's code) to sample a fixed number"
                )
            return np.asarray(counts, dtype=np.int64)
        if isinstance(n_pairs, int | np.integer):
            arr = np.full(m, int(n_pairs), dtype=np.int64)
        else:
            arr = np.asarray(n_pairs, dtype=np.int64)
            if arr.shape != (m,):
                raise ShapeMismatchError(
                    f"n_pairs has {arr.size} entries, expected one per measurement ({m})"
                )
        if np.any(arr < 1):
            raise InvalidParameterError(f"n_pairs must be positive, got {n_pairs!r}")
        return arr

    def _row_names(self) -> set[str]:
        if isinstance(self.source, FeatureBundle):
            return set(self.source.rows)
        return set(VOXEL_FEATURES)

    def _check_features(self) -> None:
        rule = self.rule
        have = set(PAIR_FEATURES) | (self._row_names() if rule.level == "voxel" else set())
        missing = [f for f in rule.features if f not in have]
        if missing:
            raise ShapeMismatchError(
                f"rule {rule.name!r} needs feature(s) {missing}; the pair tables have "
                f"{sorted(have)}"
            )

    def _use_fast(self) -> bool:
        """Decide (once) whether the compiled log-linear kernel reproduces ``rule.rate``."""
        if self._fast is not None:
            return self._fast
        self._fast = False
        rule = self.rule
        th = np.array([[p.default for p in rule.params],
                       [0.5 * (p.low + p.high) for p in rule.params],
                       [p.low + 0.9 * (p.high - p.low) for p in rule.params]])
        th = th[in_domain(rule, th)]
        form = log_linear_form(rule, th) if len(th) else None
        if form is None:
            return False
        names = form[0]
        if len(names) > 4 or any(n not in self._row_names() for n in names):
            return False
        # compare with rule.rate on the rows of a few pairs of every measurement
        picks = np.concatenate([
            lo + np.linspace(0, n - 1, min(n, 20)).astype(np.int64)
            for lo, n in zip(self._pair_lo, self._pair_n, strict=True)
        ])
        ptr, feats, _ = self._gather(picks)
        r = int(ptr[-1])
        want = np.broadcast_to(call_rate(rule, feats, theta_columns(th)), (len(th), r))
        coef, off = form[1], form[2]
        lin = off[:, None] + sum(
            (coef[:, k : k + 1] * feats[n][None, :] for k, n in enumerate(names)),
            np.zeros((len(th), r)),
        )
        with np.errstate(over="ignore"):
            got = np.exp(lin)
        if not np.allclose(got, want, rtol=1e-9, atol=0.0, equal_nan=True):
            logger.warning(
                "rule %r: its log-linear form does not reproduce rate(); using the generic "
                "(slower) simulator path", rule.name,
            )
            return False
        self._form_names = names
        self._fast = True
        return True

    def _form(self, th: FloatArray, nu: NuisanceColumns | None = None
              ) -> tuple[FloatArray, FloatArray, FloatArray, BoolArray]:
        """Kernel coefficients (B, K), offsets (B,), the extra offset of pairs with a VPM
        presynaptic neuron (B,) (the nuisance factor) and a mask of rows with NaN in them."""
        form = log_linear_form(self.rule, th)
        assert form is not None  # guaranteed by _use_fast
        names, coef, off = form
        voff = np.zeros(len(th))
        if nu is not None:
            shift_all, voff = log_factors(names, coef, nu)
            off = off + shift_all
        if isinstance(self.source, FactoredFeatures):
            full = np.zeros((len(th), 4))
            for k, n in enumerate(names):
                full[:, VOXEL_FEATURES.index(n)] = coef[:, k]
            coef = full
        bad = np.isnan(coef).any(axis=1) | np.isnan(off) | np.isnan(voff)
        coef = np.where(bad[:, None], 0.0, coef)
        off = np.where(bad, 0.0, off)
        voff = np.where(bad, 0.0, voff)
        return (np.ascontiguousarray(coef), np.ascontiguousarray(off),
                np.ascontiguousarray(voff), bad)

    def _table_args(self) -> tuple[Any, ...]:
        assert isinstance(self.source, FeatureBundle)
        rows = [np.asarray(self.source.rows[n]) for n in self._form_names]
        dummy = rows[0] if rows else np.zeros(0, dtype=np.float32)
        rows += [dummy] * (4 - len(rows))
        return (*rows, np.asarray(self.source.indptr, dtype=np.int64))

    def _factored_args(self) -> tuple[Any, ...]:
        f = self.source
        assert isinstance(f, FactoredFeatures)
        return (f.dense_log_pre, f.pre_row, f.post_row, f.post_ptr, f.post_voxel, f.post_log,
                f.post_log_post_all, f.voxel_depth_um)

    @property
    def _factored_kind(self) -> int:
        return int("depth_um" in self._form_names)

    # ---------------------------------------------------------------- properties
    @property
    def x_o(self) -> FloatArray:
        """Measured connection probabilities (m,)."""
        return np.asarray(self.mset.x_o, dtype=np.float64)

    @property
    def n_measurements(self) -> int:
        """Number of measurements m (columns of x)."""
        return len(self.names)

    @property
    def uses_compiled_kernel(self) -> bool:
        """Whether simulations run in the compiled log-linear kernel."""
        return self._use_fast()

    def provenance(self) -> dict[str, Any]:
        """JSON-native description of what the simulator computes (for stores and manifests)."""
        from wiring.rules.registry import rule_provenance

        spec = self.n_pairs_spec
        return {
            "rule": rule_provenance(self.rule),
            "measurement_set": str(getattr(self.mset, "name", "")),
            "measurement_set_hash": measurement_set_hash(self.mset),
            "measurements": list(self.names),
            "features_key": self.source.key,
            "n_pairs": spec if isinstance(spec, str) else [int(v) for v in self.n_sample],
            "sampling": self.protocol(),
            "random_streams": "splitmix64(seed, simulation index) v2: one connectome per "
                              "simulation, keyed by (pre, post)",
        }

    def protocol(self) -> dict[str, Any]:
        """JSON-native description of how the experiments are emulated: recorded in simulation
        stores, whose simulations must not be mixed with those of another protocol."""
        return {
            "version": 2,
            "connectome": "one per simulation",
            "replace": self.replace,
            "pooling": self.pooling,
            "pools": {self.names[m]: [self.names[q] for q in parts]
                      for m, parts in self._plan.parts.items()},
            "n_pairs": [int(v) for v in self.n_sample],
            **({} if self.nuisance is None else {"nuisance": self.nuisance.to_dict()}),
        }

    # ---------------------------------------------------------------- simulation
    def simulate(self, theta: npt.ArrayLike, *, seed: int, start_index: int = 0,
                 nuisance: Any = None) -> FloatArray:
        """Simulated x (B, m) for θ (B, d); row k uses the stream of index ``start_index + k``.

        Parameters
        ----------
        theta
            (B, d) or (d,) parameter vectors.
        seed
            Non-negative run seed.
        start_index
            Global simulation index of the first row.
        nuisance
            Nuisance values ν: (B, k) or (k,) in the order of :attr:`nuisance`, or a mapping
            name → value(s). None: drawn from :attr:`nuisance` (nominal anatomy without one).

        Returns
        -------
        FloatArray
            (B, m) float64 connected fractions; NaN rows for invalid θ.
        """
        th = check_theta(self.rule, theta)
        if int(seed) < 0 or int(start_index) < 0:
            raise InvalidParameterError(
                f"seed and start_index must be non-negative integers, got seed={seed!r}, "
                f"start_index={start_index!r}"
            )
        b = th.shape[0]
        valid = in_domain(self.rule, th)
        keys = kern.stream_keys(int(seed), int(start_index), b)
        nu = resolve_nuisance(self.nuisance, nuisance, int(seed), int(start_index), b,
                              self.pre_is_vpm)
        out = np.empty((b, self.n_measurements), dtype=np.float64)
        n_nan = 0
        fast = self._use_fast()
        step = max(1, _SAMPLE_COLUMNS // max(1, self._plan.n_columns))
        for a in range(0, b, step):
            sl = slice(a, min(a + step, b))
            pairs = self._sample(keys[sl])
            nu_sl = None if nu is None else {k: v[sl] for k, v in nu.items()}
            if fast:
                n_nan += self._simulate_fast(th[sl], valid[sl], keys[sl], pairs, out[sl], nu_sl)
            else:
                n_nan += self._simulate_generic(th[sl], valid[sl], keys[sl], pairs, out[sl],
                                                nu_sl)
        n_bad = int((~valid).sum()) + int(n_nan)
        if n_bad:
            self.n_invalid += n_bad
            logger.warning(
                "%d of %d parameter vectors are outside the domain of rule %r (or give NaN "
                "rates): their x rows are NaN (%d so far)", n_bad, b, self.rule.name,
                self.n_invalid,
            )
        return out

    def _sample(self, keys: Any) -> IntArray:
        """Sampled global pair indices (b, S) of the streams ``keys``."""
        plan = self._plan
        pairs = np.empty((len(keys), plan.n_columns), dtype=np.int64)
        kern.kernels("table", 0)["sample_pairs"](
            keys, self._pair_lo, self._pair_n, self.n_sample,
            plan.col_lo, plan.order, plan.edge_ptr, plan.edge_part, plan.edge_map_lo,
            plan.pool_map, self.replace, pairs,
        )
        return pairs

    def sampled_pairs(self, n: int, *, seed: int, start_index: int = 0
                      ) -> list[tuple[IntArray, IntArray]]:
        """The pairs simulations ``start_index .. start_index + n - 1`` test, per measurement.

        Returns
        -------
        list of (pre, post)
            One per measurement, in set order: model neuron indices, int64 (n, pairs tested).
            A pooled measurement's first columns are its parts' pairs, in ``includes`` order.
        """
        keys = kern.stream_keys(int(seed), int(start_index), int(n))
        pairs = self._sample(keys)
        lo = self._plan.col_lo
        return [(self._pre[pairs[:, lo[m]:lo[m + 1]]], self._post[pairs[:, lo[m]:lo[m + 1]]])
                for m in range(self.n_measurements)]

    def _simulate_fast(self, th: FloatArray, valid: BoolArray, keys: Any, pairs: IntArray,
                       out: FloatArray, nu: NuisanceColumns | None) -> int:
        b = th.shape[0]
        k = 4 if isinstance(self.source, FactoredFeatures) else len(self._form_names)
        coef, off, voff = np.zeros((b, k)), np.zeros(b), np.zeros(b)
        ok = valid.copy()
        if valid.any():
            c, o, v, bad = self._form(
                th[valid], None if nu is None else {n: col[valid] for n, col in nu.items()})
            coef[valid], off[valid], voff[valid] = c, o, v
            ok[np.flatnonzero(valid)[bad]] = False
        hit = np.zeros(pairs.shape, dtype=np.bool_)
        nan = np.zeros(b, dtype=np.bool_)
        plan = self._plan
        if isinstance(self.source, FeatureBundle):
            kern.kernels("table", k)["evaluate"](
                keys, self._pre, self._post, ok, coef, off, voff, self._vflag,
                *self._table_args(), pairs, plan.root, hit, nan)
        else:
            # pairs of the whole batch grouped by presynaptic neuron (cache reuse)
            kern.kernels("factored", self._factored_kind)["evaluate_sorted"](
                keys, self._pre, self._post, ok, coef, off, voff, self._vflag,
                *self._factored_args(), pairs, plan.root, self.source.dense_log_pre.shape[0],
                hit, nan)
        nan |= valid & ~ok
        return int(kern.kernels("table", 0)["tally"](
            valid, hit, nan, plan.root, plan.col_lo, self.n_sample, self._per_pre, pairs,
            self._pre, out))

    def _simulate_generic(self, th: FloatArray, valid: BoolArray, keys: Any, pairs: IntArray,
                          out: FloatArray, nu: NuisanceColumns | None) -> int:
        b, s_total = pairs.shape
        thr = np.empty(pairs.shape, dtype=np.float64)
        kern.kernels("table", 0)["thresholds"](keys, self._pre, self._post, pairs, thr)
        lam = np.zeros((b, s_total), dtype=np.float64)
        idx = np.flatnonzero(valid)
        step = max(1, _GENERIC_ROWS // max(1, 64 * s_total))
        for a in range(0, len(idx), step):
            sel = idx[a : a + step]
            lam[sel] = self._rates_of_pairs(
                th[sel], pairs[sel], None if nu is None else {n: c[sel] for n, c in nu.items()})
        hit = lam > thr
        nan = valid & np.isnan(lam).any(axis=1)
        plan = self._plan
        return int(kern.kernels("table", 0)["tally"](
            valid, hit, nan, plan.root, plan.col_lo, self.n_sample, self._per_pre, pairs,
            self._pre, out))

    def _gather(self, flat: IntArray) -> tuple[IntArray, dict[str, FloatArray], IntArray]:
        """Rows of the given global pairs: CSR pointer (n + 1,), float64 features (voxel
        features per row, pair features per pair) and the row count per pair."""
        src = self.source
        feats: dict[str, FloatArray]
        if self.rule.level == "pair" and isinstance(src, FeatureBundle):
            cnt = np.asarray(src.indptr[flat + 1], np.int64) - np.asarray(src.indptr[flat])
            ptr = np.concatenate([[0], np.cumsum(cnt)]).astype(np.int64)
            feats = {}
        elif self.rule.level == "pair":
            assert isinstance(src, FactoredFeatures)
            cnt = np.empty(len(flat), dtype=np.int64)
            kern.kernels("factored")["count_rows"](
                src.dense_log_pre, src.pre_row, src.post_row, src.post_ptr, src.post_voxel,
                np.ascontiguousarray(flat, np.int64), cnt)
            ptr = np.concatenate([[0], np.cumsum(cnt)]).astype(np.int64)
            feats = {}
        elif isinstance(src, FeatureBundle):
            lo = np.asarray(src.indptr[flat], np.int64)
            cnt = np.asarray(src.indptr[flat + 1], np.int64) - lo
            ptr = np.concatenate([[0], np.cumsum(cnt)]).astype(np.int64)
            rows = np.repeat(lo - ptr[:-1], cnt) + np.arange(int(ptr[-1]))
            feats = {k: np.asarray(v[rows], np.float64) for k, v in src.rows.items()}
        else:
            kf = kern.kernels("factored")
            args = (src.dense_log_pre, src.pre_row, src.post_row, src.post_ptr, src.post_voxel)
            cnt = np.empty(len(flat), dtype=np.int64)
            kf["count_rows"](*args, np.ascontiguousarray(flat, np.int64), cnt)
            ptr = np.concatenate([[0], np.cumsum(cnt)]).astype(np.int64)
            total = int(ptr[-1])
            vox = np.empty(total, np.int32)
            lp = np.empty(total, np.float32)
            lq = np.empty(total, np.float32)
            kf["gather_rows"](*args, src.post_log, np.ascontiguousarray(flat, np.int64), ptr,
                              vox, lp, lq)
            feats = {
                "log_pre": lp.astype(np.float64),
                "log_post": lq.astype(np.float64),
                "log_post_all": src.voxel_log_post_all[vox].astype(np.float64),
                "depth_um": src.voxel_depth_um[vox].astype(np.float64),
            }
        feats["n_shared"] = cnt.astype(np.float64)
        feats["soma_distance_um"] = np.asarray(src.soma_distance_um[flat], np.float64)
        return ptr, feats, cnt

    def _rates_of_pairs(self, th: FloatArray, pairs: IntArray,
                        nu: NuisanceColumns | None = None) -> FloatArray:
        """λ (b, S) of the given global pairs, θ row per pair row, via ``rule.rate`` (with the
        features shifted by the nuisance values ``nu``, one (b,) column per name)."""
        rule = self.rule
        b, s = pairs.shape
        flat = pairs.reshape(-1)
        owner = np.repeat(np.arange(b), s)
        ptr, feats, cnt = self._gather(flat)
        pair_feats = {k: feats.pop(k) for k in PAIR_FEATURES}
        if rule.level == "pair":
            cols = [th[owner, k] for k in range(th.shape[1])]
            lam = call_rate(rule, pair_feats, cols)
            lam = np.broadcast_to(lam, flat.shape).copy()
            lam[cnt == 0] = 0.0
            check_rates(rule, lam, lambda i: th[owner[i]], nan_outside_box=True)
            return lam.reshape(b, s)
        total = int(ptr[-1])
        for k in rule.features:
            if k in pair_feats:
                feats[k] = np.repeat(pair_feats[k], cnt)
        row_owner = np.repeat(owner, cnt)
        if nu is not None:
            shift_features(feats, nu, row_owner, np.repeat(self._vflag[flat], cnt) > 0)
        cols = [th[row_owner, k] for k in range(th.shape[1])]
        per_row = np.broadcast_to(call_rate(rule, feats, cols), (total,))
        check_rates(rule, per_row, lambda i: th[row_owner[i]], nan_outside_box=True)
        return segment_sum(per_row, ptr).reshape(b, s)

    def __call__(self, theta: npt.ArrayLike, rng: np.random.Generator | int | None = None
                 ) -> FloatArray:
        """Simulate a batch (the form ``sbi`` and :mod:`wiring.simulation.store` call).

        ``rng`` may be a Generator (one 63-bit seed is drawn from it), an int seed, or None
        (fresh OS entropy: not reproducible). Rows use simulation indices ``0 .. B - 1`` of that
        seed; use :meth:`simulate` for explicit indices.
        """
        if isinstance(rng, np.random.Generator):
            seed = int(rng.integers(0, 2**63 - 1))
        elif rng is None:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
        else:
            seed = int(rng)
        return self.simulate(np.asarray(theta, dtype=np.float64), seed=seed, start_index=0)

    # ---------------------------------------------------------------- exact mean
    def expected(self, theta: npt.ArrayLike, nuisance: Any = None) -> FloatArray:
        """Exact mean of x (B, m) under the sampling protocol, for the nominal anatomy or the
        anatomy changed by fixed ``nuisance`` values (as in :meth:`simulate`; not drawn).

        For a measurement that samples all its pairs itself this is the population mean
        :meth:`population_mean` (every eligible pair is equally likely to be tested, with or
        without replacement). A pooled measurement with parts q (``t = Σ n_q`` pairs) tests
        ``n − t`` further pairs drawn from the pairs the parts did not take, so its mean is
        ``(A + (n − t)/(P − t) · (S − A)) / n`` without replacement and
        ``(A + (n − t) · S/P) / n`` with, where ``A = Σ_q n_q · E[x_q]``, ``S`` the sum of
        ``1 − exp(−λ)`` over its ``P`` eligible pairs.

        For the ``per_pre`` statistic it is the mean over presynaptic neurons of the mean
        ``1 − exp(−λ)`` of each one's eligible pairs: exact when a measurement tests all its
        pairs (as the research code does for slice masks), the limit of large samples
        otherwise.

        NaN rows for θ outside the rule's domain (not counted in :attr:`n_invalid`).
        """
        mean = self.population_mean(theta, nuisance)
        if self._per_pre.any():
            mean[:, self._per_pre] = self._per_pre_mean(theta, nuisance)[:, self._per_pre]
        plan = self._plan
        if not plan.parts:
            return mean
        out = mean.copy()
        for m in plan.order:
            parts = plan.parts.get(int(m))
            if not parts:
                continue
            n = float(self.n_sample[m])
            p_all = float(self._pair_n[m])
            a: FloatArray = np.zeros(len(out))
            for q in parts:
                a = a + float(self.n_sample[q]) * out[:, q]
            t = float(sum(int(self.n_sample[q]) for q in parts))
            s_tot = mean[:, m] * p_all
            if self.replace:
                extra = (n - t) * mean[:, m]
            else:
                extra = (n - t) / (p_all - t) * (s_tot - a) if p_all > t else 0.0 * a
            out[:, m] = (a + extra) / n
        return out

    def _per_pre_mean(self, theta: npt.ArrayLike, nuisance: Any = None) -> FloatArray:
        """Mean over presynaptic neurons of each one's mean connection probability (B, m)."""
        th = check_theta(self.rule, theta)
        nu = self._fixed_nuisance(nuisance, th.shape[0])
        out = np.full((th.shape[0], self.n_measurements), np.nan)
        for m in np.flatnonzero(self._per_pre):
            lo, n = int(self._pair_lo[m]), int(self._pair_n[m])
            pairs = lo + np.arange(n)
            p = np.stack([-np.expm1(-self._lambda_of(
                th[k], pairs, None if nu is None else {n: c[k:k + 1] for n, c in nu.items()}))
                for k in range(th.shape[0])])
            pre = self._pre[lo:lo + n]
            uq, inv = np.unique(pre, return_inverse=True)
            cnt = np.bincount(inv, minlength=len(uq)).astype(np.float64)
            for k in range(th.shape[0]):
                out[k, m] = np.mean(np.bincount(inv, weights=p[k], minlength=len(uq)) / cnt)
        return out

    def _lambda_of(self, th: FloatArray, pairs: IntArray,
                   nu: NuisanceColumns | None = None) -> FloatArray:
        """λ of the given global pairs at one θ (NaN outside the domain)."""
        if not in_domain(self.rule, th[None, :])[0]:
            return np.full(len(pairs), np.nan)
        return np.asarray(self._rates_of_pairs(th[None, :], pairs[None, :], nu)[0], np.float64)

    def _fixed_nuisance(self, nuisance: Any, b: int) -> NuisanceColumns | None:
        """Explicit nuisance values as columns; None for the nominal anatomy (never drawn)."""
        return None if nuisance is None else resolve_nuisance(self.nuisance, nuisance, 0, 0, b,
                                                               self.pre_is_vpm)

    def population_mean(self, theta: npt.ArrayLike, nuisance: Any = None) -> FloatArray:
        """The mean of ``1 − exp(−λ)`` over every eligible pair of each measurement (B, m),
        for the nominal anatomy or fixed ``nuisance`` values.

        NaN rows for θ outside the rule's domain.
        """
        th = check_theta(self.rule, theta)
        nu = self._fixed_nuisance(nuisance, th.shape[0])
        b = th.shape[0]
        valid = in_domain(self.rule, th)
        out = np.full((b, self.n_measurements), np.nan)
        if not valid.any():
            return out
        tv = th[valid]
        nv = None if nu is None else {n: c[valid] for n, c in nu.items()}
        res = np.empty((len(tv), self.n_measurements))
        if self._use_fast():
            coef, off, voff, bad = self._form(tv, nv)
            if isinstance(self.source, FeatureBundle):
                kern.kernels("table", len(self._form_names))["expected"](
                    coef, off, voff, self._vflag, *self._table_args(), self._pair_lo,
                    self._pair_n, res)
            else:
                kern.kernels("factored", self._factored_kind)["expected"](
                    coef, off, voff, self._vflag, *self._factored_args(), self._pair_lo,
                    self._pair_n, res)
            res[bad] = np.nan
            out[valid] = res
            return out
        for m in range(self.n_measurements):
            pairs = self._pair_lo[m] + np.arange(self._pair_n[m])
            acc = np.zeros(len(tv))
            step = max(1, _EXPECTED_ROWS // 64)
            for a in range(0, len(pairs), step):
                chunk = pairs[a : a + step]
                lam = np.stack([self._rates_of_pairs(
                    t[None, :], chunk[None, :],
                    None if nv is None else {n: c[i:i + 1] for n, c in nv.items()})[0]
                    for i, t in enumerate(tv)])
                acc += (-np.expm1(-lam)).sum(axis=1)
            res[:, m] = acc / len(pairs)
        out[valid] = res
        return out

    # ---------------------------------------------------------------- sbi
    def to_sbi(self, seed: int = 0) -> Callable[[Any], Any]:
        """A callable ``theta_tensor (B, d) -> x_tensor (B, m)`` (float32) for ``sbi``.

        It keeps a running simulation index, so the k-th simulation of its lifetime is the same
        whatever batch sizes ``sbi`` uses. The index lives in the callable: with
        ``simulate_for_sbi(..., num_workers > 1)`` every worker would start at index 0 and
        reuse random streams, so parallelize with :mod:`wiring.simulation.store` (explicit indices)
        instead.
        """
        return SbiSimulator(self, int(seed))

    def __repr__(self) -> str:
        return (f"Simulator(rule={self.rule.name!r}, measurements={list(self.names)}, "
                f"n_pairs={[int(v) for v in self.n_sample]}, "
                f"representation={self.representation!r})")
