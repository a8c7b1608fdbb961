"""Tests of priors, NPE training and posterior files (round trip, known answer, bad input)."""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import pytest
import torch

from wiring.errors import (
    InvalidParameterError,
    OutputExistsError,
    PosteriorMismatchError,
    ShapeMismatchError,
)
from wiring.inference import (
    Posterior,
    PosteriorFileError,
    TrainingDataError,
    build_prior,
    load_posterior,
    save_posterior,
    train_from_store,
    train_posterior,
)
from wiring.inference.priors import PriorSpec, build_prior_spec, check_prior_spec
from wiring.rules.base import ParamSpec, WiringRule
from wiring.simulation.store import SimulationStore, simulate_to_store

NAMES = ("theta_pre", "theta_post", "theta_postall")
PARAMS = [ParamSpec(name=n, default=1.0, low=0.0, high=2.0) for n in NAMES]
MEASUREMENTS = ["p0", "p1", "p2", "p3", "p4"]
# A linear-Gaussian toy simulator: x = A θ + noise, with A well conditioned.
A = np.array([[1.0, 0.3, -0.2], [0.2, 1.0, 0.4], [-0.3, 0.2, 1.0], [0.5, 0.5, 0.5],
              [1.0, -1.0, 0.0]])
NOISE = 0.05
FAST: dict[str, Any] = dict(hidden_features=24, num_transforms=2, num_bins=6, progress=False, num_threads=1)


class DSOToy:
    """Stand-in for the DSO rule: three parameters named like the paper's."""

    name: ClassVar[str] = "dso"
    params: ClassVar[tuple[ParamSpec, ...]] = tuple(PARAMS)


def linear_simulator(theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(theta @ A.T + NOISE * rng.standard_normal((len(theta), len(A))))


@pytest.fixture(scope="module")
def paper_prior() -> PriorSpec:
    # the prior needs only the rule's name and parameters: a partial stand-in will do
    return build_prior_spec(cast(WiringRule, DSOToy()), "gaussian")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, paper_prior: PriorSpec) -> SimulationStore:
    s = SimulationStore.create(
        tmp_path_factory.mktemp("sims") / "sims.zarr", n=3000, chunk_size=1000,
        prior_spec=paper_prior, rule_info={"name": "dso", "distribution": "wiring-sbi",
                                           "version": "0.1.0"},
        measurement_names=MEASUREMENTS, measurement_hash="mh", anatomy_hash="ah", seed=11,
        streams="chunk",  # linear_simulator takes a generator
    )
    return simulate_to_store(s, linear_simulator, progress=False)


@pytest.fixture(scope="module")
def posterior(store: SimulationStore) -> Posterior:
    return train_from_store(store, max_epochs=60, stop_after_epochs=8, seed=3, **FAST)


@pytest.fixture(scope="module")
def saved(posterior: Posterior, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_posterior(posterior, tmp_path_factory.mktemp("post") / "posterior")


# -- priors -----------------------------------------------------------------------------------
def test_paper_prior_for_dso(paper_prior: PriorSpec) -> None:
    # N((1,1,1), 0.05 I): 0.05 is the variance.
    assert paper_prior.loc == (1.0, 1.0, 1.0)
    assert paper_prior.scale == pytest.approx((math.sqrt(0.05),) * 3)
    dist = build_prior(paper_prior)
    assert torch.allclose(dist.covariance_matrix, 0.05 * torch.eye(3))


def test_prior_round_trips(paper_prior: PriorSpec) -> None:
    uni = build_prior_spec(PARAMS, "uniform")
    for spec in (paper_prior, uni):
        assert PriorSpec.from_json(spec.to_json()) == spec
        assert PriorSpec.from_toml(spec.to_toml()) == spec
        assert PriorSpec.from_toml("[prior]\n" + spec.to_toml()) == spec
    box = build_prior(uni)
    assert float(box.log_prob(torch.ones(3))) == pytest.approx(-3 * math.log(2.0))
    assert float(box.log_prob(torch.tensor([3.0, 1.0, 1.0]))) == -math.inf


def test_prior_sampling_is_seeded(paper_prior: PriorSpec) -> None:
    a = paper_prior.sample(5, np.random.default_rng(1))
    b = paper_prior.sample(5, np.random.default_rng(1))
    assert np.array_equal(a, b) and a.shape == (5, 3)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"kind": "beta"}, InvalidParameterError, "not supported"),
        ({"kind": "uniform", "low": [0, 0], "high": [2, 2, 2]}, ShapeMismatchError,
         "2 value"),
        ({"kind": "uniform", "low": [1.5, 0, 0], "high": [2, 2, 2]}, InvalidParameterError,
         "zero mass to the rule's a-priori value 1.0"),
        ({"kind": "gaussian", "scale": [0.1, -1.0, 0.1]}, InvalidParameterError, "must be > 0"),
        ({"kind": "uniform", "low": [2, 0, 0], "high": [1, 2, 2]}, InvalidParameterError,
         "low < high"),
    ],
)
def test_bad_prior_specs(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        build_prior_spec(PARAMS, **kwargs)


def test_prior_outside_the_domain() -> None:
    params = [ParamSpec(name="c", default=1.0, low=0.5, high=2.0, domain=(0.0, math.inf))]
    with pytest.raises(InvalidParameterError, match=r"outside the parameter's domain \[0.0, inf\]"):
        build_prior_spec(params, "uniform", low=[-1.0], high=[2.0])
    # an explicitly untruncated Gaussian with mass outside the domain is refused ...
    with pytest.raises(InvalidParameterError, match="of its mass outside"):
        build_prior_spec(params, "gaussian", scale=[1.0], low=[-math.inf], high=[math.inf])
    # ... while by default a bounded parameter's Gaussian is truncated to its plausible range
    spec = build_prior_spec(params, "gaussian", scale=[1.0])
    assert spec.truncated and spec.low == (0.5,) and spec.high == (2.0,)
    assert spec.mass_outside(0, 0.0, math.inf) == 0.0
    assert build_prior_spec(params, "gaussian", scale=[0.25]).scale == (0.25,)


def test_prior_for_wrong_number_of_parameters(paper_prior: PriorSpec) -> None:
    with pytest.raises(ShapeMismatchError, match=r"has 3 parameter.*has 2"):
        check_prior_spec(paper_prior, PARAMS[:2])
    renamed = PriorSpec(kind="gaussian", names=("a", "b", "c"), loc=(1, 1, 1), scale=(1, 1, 1))
    with pytest.raises(InvalidParameterError, match="rule's parameter names"):
        check_prior_spec(renamed, PARAMS)
    with pytest.raises(InvalidParameterError, match="unknown prior key"):
        PriorSpec.from_dict({**paper_prior.to_dict(), "sigma": [1, 1, 1]})


# -- training and the posterior ---------------------------------------------------------------
def test_known_answer(posterior: Posterior, paper_prior: PriorSpec) -> None:
    rng = np.random.default_rng(2024)
    prior_sd = math.sqrt(0.05)
    for theta_star in (np.array([1.0, 1.0, 1.0]), np.array([1.2, 0.85, 1.1])):
        x_o = linear_simulator(theta_star[None, :], rng)[0]
        samples = posterior.sample(4000, x_o, seed=5)
        lo, hi = np.quantile(samples, [0.025, 0.975], axis=0)
        assert np.all((lo <= theta_star) & (theta_star <= hi)), (lo, hi, theta_star)
        # The exact posterior sd is ~0.04 here; the prior's is 0.224.
        assert np.all(samples.std(0) < 0.5 * prior_sd)
        # Log-probability is higher at θ* than far out in the prior's tail.
        lp = posterior.log_prob(np.stack([theta_star, theta_star + 0.6]), x_o)
        assert lp[0] > lp[1]


def test_amortized_over_x_o(posterior: Posterior) -> None:
    a = posterior.sample(500, A @ np.array([0.8, 1.0, 1.0]), seed=0).mean(0)
    b = posterior.sample(500, A @ np.array([1.2, 1.0, 1.0]), seed=0).mean(0)
    assert a[0] < 0.95 < 1.05 < b[0]


def test_manifest_and_seeded_sampling(posterior: Posterior, store: SimulationStore) -> None:
    m = posterior.manifest
    assert m["rule"]["name"] == "dso" and m["param_names"] == list(NAMES)
    assert m["measurement_names"] == MEASUREMENTS and m["anatomy_hash"] == "ah"
    assert m["store_hash"] == store.content_hash()
    assert m["estimator"]["estimator"] == "nsf" and m["estimator"]["x_dim"] == 5
    assert m["training"]["n_train"] + m["training"]["n_validation"] == 3000
    assert len(m["training"]["validation_loss"]) == m["training"]["epochs"]
    assert "sbi" in m["versions"] and "torch" in m["versions"]
    x_o = A @ np.ones(3)
    state = torch.get_rng_state()
    s1 = posterior.sample(100, x_o, seed=9)
    assert torch.equal(state, torch.get_rng_state())  # global state untouched
    assert np.array_equal(s1, posterior.sample(100, x_o, seed=9))
    assert not np.array_equal(s1, posterior.sample(100, x_o, seed=10))


def test_training_is_seeded(store: SimulationStore) -> None:
    theta, x = store.load()
    kw: dict[str, Any] = dict(FAST, max_epochs=2, metadata={"measurement_names": MEASUREMENTS})
    a = train_posterior(theta[:500], x[:500], store.prior_spec, seed=1, **kw)
    b = train_posterior(theta[:500], x[:500], store.prior_spec, seed=1, **kw)
    x_o = A @ np.ones(3)
    assert np.array_equal(a.sample(50, x_o, seed=0), b.sample(50, x_o, seed=0))


def test_nan_rows_are_dropped_with_a_logged_count(
    store: SimulationStore, caplog: pytest.LogCaptureFixture
) -> None:
    theta, x = store.load()
    x = x[:400].copy()
    x[::4] = np.nan
    with caplog.at_level("INFO", logger="wiring.inference.npe"):
        post = train_posterior(theta[:400], x, store.prior_spec, max_epochs=1, **FAST)
    assert "dropping 100 of 400 simulations" in caplog.text
    assert post.manifest["training"]["n_dropped_invalid"] == 100


def test_round_trip_in_a_fresh_process(posterior: Posterior, saved: Path) -> None:
    x_o = A @ np.array([1.1, 0.9, 1.0])
    theta = posterior.sample(20, x_o, seed=4)
    expected_lp = posterior.log_prob(theta, x_o)
    expected_samples = posterior.sample(200, x_o, seed=123)
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from wiring.inference import load_posterior
        p = load_posterior({str(saved)!r}, measurement_names={MEASUREMENTS!r})
        x_o = np.array({x_o.tolist()!r}); theta = np.array({theta.tolist()!r})
        json.dump({{"lp": p.log_prob(theta, x_o).tolist(),
                    "s": p.sample(200, x_o, seed=123).tolist()}}, sys.stdout)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=300)
    got = json.loads(out.stdout)
    assert np.array_equal(np.array(got["lp"]), expected_lp)
    assert np.array_equal(np.array(got["s"]), expected_samples)
    assert load_posterior(saved).manifest == posterior.manifest


@pytest.mark.parametrize("estimator", ["maf", "mdn"])
def test_other_estimators_round_trip(store: SimulationStore, tmp_path: Path,
                                     estimator: str) -> None:
    post = train_from_store(store, estimator=estimator, max_epochs=1, **FAST)
    path = save_posterior(post, tmp_path / estimator)
    x_o = A @ np.ones(3)
    th = post.sample(10, x_o, seed=1)
    assert np.array_equal(load_posterior(path).log_prob(th, x_o), post.log_prob(th, x_o))


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("x_o", "error", "match"),
    [
        ([0.1, 0.2, 0.3], ShapeMismatchError, r"5 measurement\(s\).*expected shape \(5,\)"),
        ([0.1, np.nan, 0.3, 0.4, 0.5], InvalidParameterError, "p1=nan"),
        ([0.1, 0.2, 0.3, np.inf, 0.5], InvalidParameterError, "p3=inf"),
    ],
)
def test_bad_x_o(posterior: Posterior, x_o: list[float], error: type[Exception],
                 match: str) -> None:
    with pytest.raises(error, match=match):
        posterior.sample(10, x_o, seed=0)
    with pytest.raises(error, match=match):
        posterior.log_prob(np.ones(3), x_o)


def test_bad_theta_for_log_prob(posterior: Posterior) -> None:
    with pytest.raises(ShapeMismatchError, match="d = 3"):
        posterior.log_prob(np.ones((2, 4)), A @ np.ones(3))


def test_load_with_other_rule_or_measurements(saved: Path) -> None:
    class Other:
        name = "peters_neuron"
        params = (ParamSpec(name="p", default=1.0, low=0.0, high=2.0),)

    with pytest.raises(PosteriorMismatchError, match="trained for rule 'dso', not 'peters_neuron'"):
        load_posterior(saved, rule=Other())
    with pytest.raises(PosteriorMismatchError, match=r"missing \['q9'\], unexpected \['p4'\]"):
        load_posterior(saved, measurement_names=[*MEASUREMENTS[:4], "q9"])
    assert load_posterior(saved, rule=DSOToy()).param_names == NAMES


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "pwned"))


def test_tampered_weights_cannot_run_code(saved: Path, tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "tampered"
    shutil.copytree(saved, bad)
    marker = tmp_path / "payload-ran"
    (bad / "weights.pt").write_bytes(pickle.dumps({"w": _Payload(marker)}))
    with pytest.raises(PosteriorFileError, match="checksum"):
        load_posterior(bad)
    # Even with the checksum forged the payload is refused, not executed.
    torch.save({"w": _Payload(marker)}, bad / "weights.pt")
    import hashlib

    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["weights_sha256"] = hashlib.sha256((bad / "weights.pt").read_bytes()).hexdigest()
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PosteriorFileError, match="refused without running it"):
        load_posterior(bad)
    assert not marker.exists()


def test_corrupt_posterior_dirs(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_posterior(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PosteriorFileError, match=r"manifest\.json"):
        load_posterior(tmp_path / "empty")


def test_save_refuses_to_overwrite(posterior: Posterior, saved: Path, tmp_path: Path) -> None:
    before = (saved / "weights.pt").read_bytes()
    with pytest.raises(OutputExistsError, match="overwrite"):
        save_posterior(posterior, saved)
    assert (saved / "weights.pt").read_bytes() == before
    other = tmp_path / "data"
    other.mkdir()
    (other / "keep.csv").write_text("1")
    with pytest.raises(OutputExistsError, match="not a posterior directory"):
        save_posterior(posterior, other, overwrite=True)
    assert (other / "keep.csv").exists()
    save_posterior(posterior, saved, overwrite=True)


def test_empty_and_all_nan_training_data(tmp_path: Path, paper_prior: PriorSpec) -> None:
    s = SimulationStore.create(
        tmp_path / "s.zarr", n=200, chunk_size=100, prior_spec=paper_prior,
        rule_info={"name": "dso"}, measurement_names=MEASUREMENTS, measurement_hash="mh",
        anatomy_hash="ah", seed=0, streams="chunk",
    )
    with pytest.raises(TrainingDataError, match="no finished simulations"):
        train_from_store(s, **FAST)
    simulate_to_store(s, lambda th, rng: np.full((len(th), 5), np.nan), progress=False)
    with pytest.raises(TrainingDataError, match="only 0 of 200 simulations have finite x"):
        train_from_store(s, **FAST)
    with pytest.raises(ShapeMismatchError, match=r"expected \(n, 3\)"):
        train_posterior(np.zeros((10, 2)), np.zeros((10, 5)), paper_prior, **FAST)
    with pytest.raises(InvalidParameterError, match="estimator 'flow'"):
        train_posterior(np.ones((20, 3)), np.ones((20, 5)), paper_prior, estimator="flow",
                        **FAST)


@pytest.mark.slow
def test_known_answer_default_settings(store: SimulationStore) -> None:
    """Default NSF settings (5 transforms, 50 hidden units) recover θ* as well."""
    post = train_from_store(store, progress=False, num_threads=1)
    theta_star = np.array([1.1, 0.9, 1.05])
    x_o = linear_simulator(theta_star[None, :], np.random.default_rng(0))[0]
    s = post.sample(4000, x_o, seed=1)
    lo, hi = np.quantile(s, [0.025, 0.975], axis=0)
    assert np.all((lo <= theta_star) & (theta_star <= hi))
    assert np.all(s.std(0) < 0.5 * math.sqrt(0.05))
