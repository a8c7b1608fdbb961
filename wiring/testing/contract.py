"""``RuleContractTests``: the public pytest suite every wiring rule must pass.

Subclass it in a test module and name the rule::

    from wiring.testing import RuleContractTests

    class TestMyRule(RuleContractTests):
        rule = "my_rule"          # a registered name, a rule class or an instance

and run ``pytest``. Set ``registered = False`` for a rule that is not installed through the
``wiring.rules`` entry-point group (then the registry round-trip is skipped).

The suite checks: the :class:`~wiring.rules.base.WiringRule` contract (``check_rule``); sane
parameter specs; rate shapes (B, R) / (B, P) for batches of θ; non-negative rates for θ in
the plausible range (also as a hypothesis property on random tables); that pairs without a
shared voxel never connect; purity, batch consistency and pair locality of ``rate``;
determinism of synapse draws for a seed; the JSON round-trip of the rule's identity.
Requires pytest and hypothesis.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
from hypothesis import given, settings

from wiring._typing import FloatArray
from wiring.pairs import PairTable, pair_rate, rule_features
from wiring.rules.base import (
    SupportsFactors,
    SupportsLogLinear,
    WiringRule,
    in_domain,
    theta_columns,
)
from wiring.rules.registry import check_rule, get_rule
from wiring.testing import selfcheck
from wiring.testing.strategies import pair_tables
from wiring.testing.tables import make_pair_table

__all__ = [
    "RuleContractTests",
    "capability_mismatches",
]


class RuleContractTests:
    """Base class of the contract tests; subclasses set ``rule``.

    Attributes
    ----------
    rule
        The rule under test: a registered name, a class or an instance.
    registered
        Whether the rule is installed under its name (enables the registry round-trip).
    n_theta
        Number of random parameter vectors drawn from the plausible box (plus the defaults
        and both corners).
    seed
        Seed of the toy tables and the parameter draws.
    """

    rule: ClassVar[Any] = None
    registered: ClassVar[bool] = True
    n_theta: ClassVar[int] = 8
    seed: ClassVar[int] = 0

    @pytest.fixture
    def rule_instance(self) -> WiringRule:
        """The rule under test, loaded (and contract-checked) through :func:`get_rule`."""
        if self.rule is None:
            pytest.fail(f"{type(self).__name__} must set `rule = ...` (a name, class or instance)")
        return get_rule(self.rule)

    @pytest.fixture
    def table(self) -> PairTable:
        """A toy pair table with realistic features and some pairs without overlap."""
        return make_pair_table(40, seed=self.seed)

    @pytest.fixture
    def thetas(self, rule_instance: WiringRule) -> FloatArray:
        """Defaults, both corners of the plausible box, and ``n_theta`` draws inside it."""
        return selfcheck.plausible_thetas(rule_instance, self.n_theta, seed=self.seed)

    def test_declared_capabilities_match_rate(
        self, rule_instance: WiringRule, table: PairTable, thetas: FloatArray
    ) -> None:
        """Each capability the rule declares (log-linear form, voxel factors) reproduces ``rate``."""
        problems = capability_mismatches(rule_instance, table, thetas)
        assert not problems, "; ".join(problems)

    def test_contract(self, rule_instance: WiringRule) -> None:
        check_rule(rule_instance)
        check_rule(type(rule_instance))

    def test_param_specs_sane(self, rule_instance: WiringRule) -> None:
        selfcheck.check_param_specs(rule_instance)

    def test_rate_shapes(
        self, rule_instance: WiringRule, table: PairTable, thetas: FloatArray
    ) -> None:
        selfcheck.check_rate_shapes(rule_instance, table, thetas)

    def test_rates_nonnegative(
        self, rule_instance: WiringRule, table: PairTable, thetas: FloatArray
    ) -> None:
        selfcheck.check_nonnegative(rule_instance, table, thetas)

    def test_no_overlap_never_connects(
        self, rule_instance: WiringRule, table: PairTable, thetas: FloatArray
    ) -> None:
        selfcheck.check_no_overlap(rule_instance, table, thetas)

    def test_rate_is_pure(
        self, rule_instance: WiringRule, table: PairTable, thetas: FloatArray
    ) -> None:
        selfcheck.check_rate_pure(rule_instance, table, thetas)

    def test_batch_consistency(
        self, rule_instance: WiringRule, table: PairTable, thetas: FloatArray
    ) -> None:
        selfcheck.check_batch_consistency(rule_instance, table, thetas)

    def test_pair_locality(
        self, rule_instance: WiringRule, table: PairTable, thetas: FloatArray
    ) -> None:
        selfcheck.check_pair_locality(rule_instance, table, thetas)

    def test_draws_deterministic(
        self, rule_instance: WiringRule, table: PairTable, thetas: FloatArray
    ) -> None:
        selfcheck.check_draws_deterministic(rule_instance, table, thetas)

    def test_identity_json_roundtrip(self, rule_instance: WiringRule) -> None:
        selfcheck.check_identity_roundtrip(rule_instance, registered=self.registered)

    def test_empty_table(self, rule_instance: WiringRule, thetas: FloatArray) -> None:
        empty = make_pair_table(0)
        lam = pair_rate(rule_instance, empty, thetas)
        assert lam.shape == (len(thetas), 0)

    def test_property_nonnegative_and_no_overlap(self, rule_instance: WiringRule) -> None:
        thetas = selfcheck.plausible_thetas(rule_instance, 2, seed=self.seed)

        # built per call: one hypothesis test per rule, not one shared by every subclass
        @settings(max_examples=25, deadline=None, derandomize=True, database=None)
        @given(table=pair_tables())
        def holds(table: PairTable) -> None:
            with np.errstate(all="ignore"):
                lam = pair_rate(rule_instance, table, thetas)
            assert lam.shape == (len(thetas), table.n_pairs)
            assert not np.isnan(lam).any(), "rates must never be NaN in the plausible range"
            assert (lam >= 0).all(), "rates must be non-negative"
            assert (lam[:, np.diff(table.indptr) == 0] == 0).all(), "no overlap must mean rate 0"

        holds()


def capability_mismatches(rule: WiringRule, table: PairTable, thetas: FloatArray) -> list[str]:
    """What a rule's declared capabilities get wrong against its ``rate`` on ``table``.

    :class:`~wiring.rules.base.SupportsLogLinear`: ``exp(offset + Σ_k coef_k · feature_k)`` per
    row; :class:`~wiring.rules.base.SupportsFactors`: ``pre(pre) · post(post) · voxel(postAll)``
    of the row's counts. Both must equal ``rate`` to a relative 1e-9 for every θ in the domain.
    Capabilities apply to voxel-level rules only; a pair-level rule declaring one is reported.
    """
    declared = [
        name
        for name, proto in (("log_linear", SupportsLogLinear), ("factors", SupportsFactors))
        if isinstance(rule, proto)
    ]
    if not declared:
        return []
    if rule.level != "voxel":
        return [f"{', '.join(declared)} declared by a pair-level rule (voxel-level rules only)"]
    th = np.asarray(thetas, dtype=np.float64)
    th = th[in_domain(rule, th)]
    feats = rule_features(rule, table)
    want = np.broadcast_to(
        np.asarray(rule.rate(feats, theta_columns(th)), np.float64), (len(th), len(table.voxel))
    )
    problems = []
    if isinstance(rule, SupportsLogLinear):
        names, coef, off = rule.log_linear(th)
        lin = np.asarray(off, np.float64)[:, None] + sum(
            (np.asarray(coef, np.float64)[:, k : k + 1] * feats[n][None, :] for k, n in enumerate(names)),
            np.zeros(want.shape),
        )
        with np.errstate(over="ignore"):
            got = np.exp(lin)
        if not np.allclose(got, want, rtol=1e-9, atol=0.0, equal_nan=True):
            problems.append("log_linear(theta) does not reproduce rate()")
    if isinstance(rule, SupportsFactors):
        counts = [np.exp(feats[n]) for n in ("log_pre", "log_post", "log_post_all")]
        for b, theta in enumerate(th):
            f = rule.factors(theta)
            with np.errstate(over="ignore", divide="ignore"):
                got = f.pre(counts[0]) * f.post(counts[1]) * f.voxel(counts[2])
            if not np.allclose(got, want[b], rtol=1e-9, atol=0.0, equal_nan=True):
                problems.append(f"factors(theta) does not reproduce rate() at theta={theta.tolist()}")
                break
    return problems
