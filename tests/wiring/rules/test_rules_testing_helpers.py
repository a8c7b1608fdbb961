"""The public helpers of wiring.testing: toy tables, sub-tables, numpy-only self-check."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import pytest

from wiring._typing import FloatArray
from wiring.errors import RuleContractError
from wiring.rules.base import Level, ParamSpec, SynapseModel
from wiring.testing import make_pair_table, self_check, take_pairs
from wiring.testing.selfcheck import SELF_CHECKS


def test_make_pair_table_is_deterministic_and_plausible() -> None:
    a, b = make_pair_table(30, seed=4), make_pair_table(30, seed=4)
    np.testing.assert_array_equal(a.indptr, b.indptr)
    for k in a.rows:
        np.testing.assert_array_equal(a.rows[k], b.rows[k])
    assert np.all(a.rows["log_post_all"] >= a.rows["log_post"])
    assert np.all(a.rows["log_pre"] >= 0) and np.all(a.rows["log_post"] >= 0)
    assert (np.diff(a.indptr) == 0).sum() == 6
    assert len(set(zip(a.pre.tolist(), a.post.tolist(), strict=True))) == 30
    for p in range(a.n_pairs):  # distinct voxels within each pair
        v = a.voxel[a.indptr[p] : a.indptr[p + 1]]
        assert len(set(v.tolist())) == len(v)


def test_take_pairs_matches_loop() -> None:
    t = make_pair_table(25, seed=5)
    idx = np.array([7, 3, 3, 20, 0])
    sub = take_pairs(t, idx)
    rows = np.concatenate([np.arange(t.indptr[i], t.indptr[i + 1]) for i in idx])
    np.testing.assert_array_equal(sub.voxel, t.voxel[rows])
    np.testing.assert_array_equal(sub.rows["log_pre"], t.rows["log_pre"][rows])
    np.testing.assert_array_equal(sub.pair_features["n_shared"], t.pair_features["n_shared"][idx])
    assert take_pairs(t, np.array([], dtype=np.int64)).n_pairs == 0


def test_self_check_runs_every_check() -> None:
    assert self_check("dso") == list(SELF_CHECKS)


def test_self_check_catches_table_wide_normalization() -> None:
    class Normalized:
        name: ClassVar[str] = "normalized_rule"
        params: ClassVar[tuple[ParamSpec, ...]] = (
            ParamSpec(name="theta", default=1.0, low=0.5, high=2.0, doc="scale"),
        )
        level: ClassVar[Level] = "voxel"
        features: ClassVar[tuple[str, ...]] = ("log_pre",)
        synapses: ClassVar[SynapseModel] = "poisson"

        def rate(
            self, features: Mapping[str, FloatArray], theta: Sequence[FloatArray]
        ) -> FloatArray:
            x = np.exp(features["log_pre"])
            return np.asarray(theta[0] * x / max(x.sum(), 1.0), dtype=np.float64)

    with pytest.raises(RuleContractError, match="no normalization over the table"):
        self_check(Normalized, registered=False)


def test_wiring_testing_works_without_pytest_and_hypothesis() -> None:
    code = (
        "import sys; sys.modules['pytest'] = None; sys.modules['hypothesis'] = None\n"
        "import wiring.testing as wt\n"
        "assert wt.self_check('peters_synapse')\n"
        "try:\n    wt.RuleContractTests\nexcept ImportError:\n    pass\n"
        "else:\n    raise SystemExit('RuleContractTests imported without pytest')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
