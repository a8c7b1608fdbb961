"""Numeric checks of a wiring rule on toy pair tables, shared by the contract tests and the CLI.

Each ``check_*`` function raises :class:`~wiring.errors.RuleContractError` naming the rule, the
parameter vector and what went wrong. :func:`self_check` runs them all (``wiring rules check``).
Needs only numpy: importing this module does not import pytest or hypothesis.
"""

from __future__ import annotations

import json
import math

import numpy as np

from wiring._typing import FloatArray
from wiring.errors import RuleContractError
from wiring.pairs import PairTable, pair_rate, rule_features
from wiring.rules.base import ParamSpec, WiringRule, theta_columns
from wiring.rules.draw import draw_synapse_counts
from wiring.rules.registry import check_rule, get_rule, rule_from_identity, rule_identity
from wiring.testing.tables import make_pair_table, take_pairs

__all__ = [
    "SELF_CHECKS",
    "check_batch_consistency",
    "check_draws_deterministic",
    "check_identity_roundtrip",
    "check_no_overlap",
    "check_nonnegative",
    "check_pair_locality",
    "check_param_specs",
    "check_rate_pure",
    "check_rate_shapes",
    "plausible_thetas",
    "self_check",
]


def plausible_thetas(rule: WiringRule, n: int = 8, *, seed: int = 0) -> FloatArray:
    """(n + 3, d) parameter vectors: the defaults, both corners of the plausible box, and n
    uniform draws inside it."""
    lo = np.array([p.low for p in rule.params])
    hi = np.array([p.high for p in rule.params])
    default = np.array([p.default for p in rule.params])
    rand = np.random.default_rng(seed).uniform(lo, hi, size=(n, len(lo)))
    return np.vstack([default, lo, hi, rand])


def _fail(rule: WiringRule, what: str) -> RuleContractError:
    return RuleContractError(f"wiring rule {rule.name!r}: {what}")


def check_param_specs(rule: WiringRule) -> None:
    """Parameter specs are sane: unique identifier names, a description each, finite plausible
    range inside the domain with the default in it."""
    check_rule(rule)
    for p in rule.params:
        if not isinstance(p, ParamSpec):
            raise _fail(rule, f"params must be ParamSpec instances, got {p!r}")
        if not p.doc.strip():
            raise _fail(rule, f"parameter {p.name!r} has no doc: say what it means (and its unit)")
        if not (math.isfinite(p.low) and math.isfinite(p.high) and p.low < p.high):
            raise _fail(rule, f"parameter {p.name!r}: plausible range [{p.low}, {p.high}] is empty")
        if not (p.domain[0] <= p.low and p.high <= p.domain[1] and p.low <= p.default <= p.high):
            raise _fail(rule, f"parameter {p.name!r}: need domain ⊇ [low, high] ∋ default")


def _rows(rule: WiringRule, table: PairTable) -> int:
    return table.n_pairs if rule.level == "pair" else table.n_rows


def _raw_rate(rule: WiringRule, table: PairTable, theta: FloatArray) -> FloatArray:
    # only the declared features, read-only: a rule must declare what it reads (feature
    # extraction computes only those) and must not modify its inputs
    feats = {k: v for k, v in rule_features(rule, table).items() if k in rule.features}
    for arr in feats.values():
        arr.flags.writeable = False
    try:
        out = rule.rate(feats, theta_columns(theta))
    except ValueError as err:
        if "read-only" in str(err):
            raise _fail(rule, "rate() modified its input features; rules must be pure") from err
        raise
    return np.asarray(out, dtype=np.float64)


def check_rate_shapes(rule: WiringRule, table: PairTable, thetas: FloatArray) -> None:
    """``rate`` broadcasts to (B, R) (voxel) or (B, P) (pair) and ``pair_rate`` gives (B, P)."""
    for batch in (thetas, thetas[:1]):
        b, n = batch.shape[0], _rows(rule, table)
        out = _raw_rate(rule, table, batch)
        try:
            shape = np.broadcast_shapes(out.shape, (b, n))
        except ValueError:
            shape = None
        if out.ndim > 2 or shape != (b, n):
            raise _fail(
                rule,
                f"rate() returned shape {out.shape} for {b} parameter vector(s) and {n} "
                f"{'pairs' if rule.level == 'pair' else 'rows'}; expected ({b}, {n}) or "
                f"broadcastable to it",
            )
        lam = pair_rate(rule, table, batch)
        if lam.shape != (b, table.n_pairs):
            raise _fail(rule, f"pair_rate gave shape {lam.shape}, expected ({b}, {table.n_pairs})")


def check_nonnegative(rule: WiringRule, table: PairTable, thetas: FloatArray) -> None:
    """Rates are non-negative and never NaN (``inf`` allowed) for θ in the plausible box."""
    with np.errstate(all="ignore"):
        raw = _raw_rate(rule, table, thetas)
        lam = pair_rate(rule, table, thetas)
    for what, arr in (("rate()", raw), ("pair_rate", lam)):
        bad = np.isnan(arr) | (arr < 0)
        if bad.any():
            b = int(np.argwhere(bad)[0][0]) if arr.ndim == 2 else 0
            raise _fail(
                rule,
                f"{what} gave a negative or NaN value at theta {thetas[b].tolist()}; rates must "
                f"be >= 0 (inf allowed) everywhere in the plausible range",
            )


def check_no_overlap(rule: WiringRule, table: PairTable, thetas: FloatArray) -> None:
    """Pairs sharing no voxel have rate 0 and get no synapse, for every θ."""
    empty = np.diff(table.indptr) == 0
    if not empty.any():
        raise _fail(rule, "the check table must contain pairs without shared voxels")
    lam = pair_rate(rule, table, thetas)
    if np.any(lam[:, empty] != 0):
        b = int(np.argwhere(lam[:, empty] != 0)[0][0])
        raise _fail(
            rule,
            f"pairs that share no voxel get expected count {lam[b, empty].max()!r} at theta "
            f"{thetas[b].tolist()}; a pair without overlap must never connect",
        )
    for b in range(min(3, len(thetas))):
        counts = draw_synapse_counts(rule, table, thetas[b], key=b)
        if np.any(counts[empty] != 0):
            raise _fail(rule, f"a pair without overlap got synapses at theta {thetas[b].tolist()}")


def check_rate_pure(rule: WiringRule, table: PairTable, thetas: FloatArray) -> None:
    """``rate`` leaves its inputs alone and gives the same result twice."""
    with np.errstate(all="ignore"):
        first = _raw_rate(rule, table, thetas)
        second = _raw_rate(rule, table, thetas)
    if not np.array_equal(first, second, equal_nan=True):
        raise _fail(rule, "rate() gave different results for the same input; rules must be pure")


def check_batch_consistency(rule: WiringRule, table: PairTable, thetas: FloatArray) -> None:
    """Evaluating a batch of θ equals evaluating each θ alone."""
    with np.errstate(all="ignore"):
        batch = pair_rate(rule, table, thetas)
        single = np.vstack([pair_rate(rule, table, t) for t in thetas])
    if not np.allclose(batch, single, rtol=1e-12, atol=0.0, equal_nan=True):
        b = int(np.argwhere(~np.isclose(batch, single, rtol=1e-12, atol=0.0))[0][0])
        raise _fail(
            rule,
            f"the rate of theta {thetas[b].tolist()} changes when it is evaluated in a batch; "
            f"rate() must treat each row of theta independently",
        )


def check_pair_locality(rule: WiringRule, table: PairTable, thetas: FloatArray) -> None:
    """A pair's rate depends only on its own rows and features: evaluating a shuffled subset of
    the pairs gives the same rates (so results cannot depend on how pairs are split into
    blocks or tables)."""
    idx = np.random.default_rng(0).permutation(table.n_pairs)[: max(1, table.n_pairs // 2)]
    with np.errstate(all="ignore"):
        full = pair_rate(rule, table, thetas)[:, idx]
        part = pair_rate(rule, take_pairs(table, idx), thetas)
    if not np.allclose(full, part, rtol=1e-12, atol=0.0, equal_nan=True):
        raise _fail(
            rule,
            "the rate of a pair changes when other pairs are evaluated with it; rate() must "
            "not combine rows of different pairs (no normalization over the table)",
        )


def check_draws_deterministic(rule: WiringRule, table: PairTable, thetas: FloatArray) -> None:
    """Synapse draws are int64 (P,), non-negative, zero where the rate is 0, and identical for
    the same seed or key."""
    for theta in thetas[:2]:
        lam = pair_rate(rule, table, theta)[0]
        for how in ("rng", "key"):
            draws = [
                draw_synapse_counts(rule, table, theta, rng=123)
                if how == "rng"
                else draw_synapse_counts(rule, table, theta, key=123)
                for _ in range(2)
            ]
            a, b = draws
            if a.dtype != np.int64 or a.shape != (table.n_pairs,):
                raise _fail(rule, f"synapse counts have {a.dtype} {a.shape}, expected int64 (P,)")
            if not np.array_equal(a, b):
                raise _fail(rule, f"synapse draws differ for the same {how}")
            if np.any(a < 0) or np.any(a[lam == 0] != 0):
                raise _fail(rule, "synapse counts must be >= 0 and 0 where the rate is 0")


def check_identity_roundtrip(rule: WiringRule, *, registered: bool = True) -> None:
    """The rule's identity (name + params) survives JSON; if ``registered``, it resolves to the
    same rule class through the registry."""
    ident = rule_identity(rule)
    back = json.loads(json.dumps(ident, allow_nan=False))
    if back != ident or [ParamSpec.from_dict(d) for d in back["params"]] != list(rule.params):
        raise _fail(rule, "its identity does not survive a JSON round-trip")
    if registered:
        again = rule_from_identity(back)
        if type(again) is not type(rule):
            raise _fail(
                rule,
                f"the registry resolves its name to {type(again).__qualname__}, not "
                f"{type(rule).__qualname__}",
            )


#: The numeric checks :func:`self_check` runs, in order.
SELF_CHECKS = (
    "param_specs",
    "rate_shapes",
    "nonnegative",
    "no_overlap",
    "rate_pure",
    "batch_consistency",
    "pair_locality",
    "draws_deterministic",
    "identity_roundtrip",
)


def self_check(
    rule: str | type[WiringRule] | WiringRule, *, seed: int = 0, registered: bool = True
) -> list[str]:
    """Run the contract check and every numeric check on a toy table; the names of the checks
    passed (all of :data:`SELF_CHECKS`).

    Raises
    ------
    RuleContractError
        At the first failing check.

    Examples
    --------
    >>> self_check("dso") == list(SELF_CHECKS)
    True
    """
    inst = get_rule(rule)
    table = make_pair_table(40, seed=seed)
    thetas = plausible_thetas(inst, 8, seed=seed)
    steps = {
        "param_specs": lambda: check_param_specs(inst),
        "rate_shapes": lambda: check_rate_shapes(inst, table, thetas),
        "nonnegative": lambda: check_nonnegative(inst, table, thetas),
        "no_overlap": lambda: check_no_overlap(inst, table, thetas),
        "rate_pure": lambda: check_rate_pure(inst, table, thetas),
        "batch_consistency": lambda: check_batch_consistency(inst, table, thetas),
        "pair_locality": lambda: check_pair_locality(inst, table, thetas),
        "draws_deterministic": lambda: check_draws_deterministic(inst, table, thetas),
        "identity_roundtrip": lambda: check_identity_roundtrip(inst, registered=registered),
    }
    passed: list[str] = []
    for name in SELF_CHECKS:
        try:
            steps[name]()
        except RuleContractError:
            raise
        except Exception as err:
            hint = (
                f"; rate() may read only the features it declares ({list(inst.features)})"
                if isinstance(err, KeyError)
                else ""
            )
            raise _fail(inst, f"check {name!r} raised {type(err).__name__}: {err}{hint}") from err
        passed.append(name)
    return passed
