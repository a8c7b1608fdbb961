"""Every built-in rule's default prior lies inside the rule's domain.

Rules whose parameters have a bounded domain (probabilities, non-negative factors, counts) get
a Gaussian truncated to the plausible range; ``dso`` keeps the paper's untruncated
N((1, 1, 1), 0.05 I). Checked analytically (mass outside the domain, moments against scipy's
``truncnorm``), by sampling (the numpy keyed sampler and the torch distribution sbi uses; sample
moments within Monte-Carlo error) and through sbi's prior checks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from wiring.errors import InvalidParameterError
from wiring.inference import build_prior
from wiring.inference.priors import PriorSpec, build_prior_spec, check_prior_spec
from wiring.rules.registry import BUILTIN_RULES, get_rule

N = 200_000


def _domain_ok(spec: PriorSpec, rule: object, theta: np.ndarray) -> np.ndarray:
    ok = np.ones(len(theta), dtype=bool)
    for k, p in enumerate(rule.params):  # type: ignore[attr-defined]
        lo, hi = p.domain
        ok &= (theta[:, k] >= lo) & (theta[:, k] <= hi)
    return ok


def _check_moments(samples: np.ndarray, mean: np.ndarray, var: np.ndarray) -> None:
    """Sample mean and variance within 5 Monte-Carlo standard errors of the analytic ones."""
    n = len(samples)
    m = samples.mean(0)
    assert np.all(np.abs(m - mean) < 5 * np.sqrt(var / n)), (m, mean)
    centred = samples - samples.mean(0)
    mu4 = (centred**4).mean(0)
    v = samples.var(0, ddof=1)
    assert np.all(np.abs(v - var) < 5 * np.sqrt((mu4 - var**2) / n)), (v, var)


@pytest.mark.parametrize("name", sorted(BUILTIN_RULES))
def test_default_prior_has_no_mass_outside_the_domain(name: str) -> None:
    rule = get_rule(name)
    spec = build_prior_spec(rule)  # the documented default: kind="gaussian"
    check_prior_spec(spec, rule)
    # analytic
    for k, p in enumerate(rule.params):
        assert spec.mass_outside(k, *p.domain) == 0.0, (name, p.name)
    # sampled: numpy, keyed per row (what the simulation store draws) and with a Generator
    for theta in (spec.sample_rows(11, 0, N), spec.sample(N, np.random.default_rng(3))):
        assert _domain_ok(spec, rule, theta).all()
        if spec.truncated:
            assert np.all(theta >= np.array(spec.low)) and np.all(theta <= np.array(spec.high))
    # sampled: the torch distribution sbi trains with
    dist = build_prior(spec)
    torch.manual_seed(0)
    t = dist.sample((N,)).double().numpy()
    assert t.shape == (N, len(rule.params)) and _domain_ok(spec, rule, t).all()
    assert torch.isfinite(dist.log_prob(torch.as_tensor(t[:1000], dtype=torch.float32))).all()


@pytest.mark.parametrize("name", sorted(BUILTIN_RULES))
def test_default_prior_moments(name: str) -> None:
    rule = get_rule(name)
    spec = build_prior_spec(rule)
    mean, var = spec.moments()
    if spec.truncated:
        for k in range(spec.d):
            lo, hi = spec.low[k], spec.high[k]  # type: ignore[index]
            loc, sd = spec.loc[k], spec.scale[k]  # type: ignore[index]
            ref = stats.truncnorm((lo - loc) / sd, (hi - loc) / sd, loc=loc, scale=sd)
            assert mean[k] == pytest.approx(ref.mean(), rel=1e-9)
            assert var[k] == pytest.approx(ref.var(), rel=1e-9)
        dist = build_prior(spec)
        assert np.allclose(dist.mean.double().numpy(), mean, rtol=1e-5)
        assert np.allclose(dist.variance.double().numpy(), var, rtol=1e-4)
    _check_moments(spec.sample_rows(5, 0, N), mean, var)
    torch.manual_seed(1)
    _check_moments(build_prior(spec).sample((N,)).double().numpy(), mean, var)


def test_which_defaults_are_truncated() -> None:
    # dso keeps the published prior exactly (no truncation: its domain is unbounded), so its
    # stores and run hashes do not change; the three others are truncated to their ranges
    dso = build_prior_spec(get_rule("dso"))
    assert not dso.truncated and set(dso.to_dict()) == {"kind", "names", "loc", "scale"}
    expect = {
        "dso_linear": ((0.0, 0.0, 0.1), (2.0, 2.0, 2.0)),
        "peters_neuron": ((1.0,), (250.0,)),
        "peters_synapse": ((0.0,), (1.0,)),
    }
    for name, (low, high) in expect.items():
        spec = build_prior_spec(get_rule(name))
        assert spec.truncated and spec.low == low and spec.high == high, name
        # the untruncated Gaussian these used to be puts this much mass outside the domain
        plain = PriorSpec(kind="gaussian", names=spec.names, loc=spec.loc, scale=spec.scale)
        worst = max(plain.mass_outside(k, *p.domain) for k, p in enumerate(get_rule(name).params))
        assert worst > 0.02


def test_truncated_log_prob_is_a_normalized_density() -> None:
    spec = build_prior_spec(get_rule("peters_synapse"))
    dist = build_prior(spec)
    grid = torch.linspace(0.0, 1.0, 20_001, dtype=torch.float64)[:, None]
    dens = torch.exp(dist.log_prob(grid.float())).double()
    area = torch.trapezoid(dens, grid[:, 0])
    assert float(area) == pytest.approx(1.0, abs=1e-5)
    ref = stats.truncnorm(-4.0, 0.0, loc=1.0, scale=0.25).logpdf(0.7)
    assert float(dist.log_prob(torch.tensor([[0.7]]))) == pytest.approx(ref, abs=1e-5)
    outside = dist.log_prob(torch.tensor([[-0.01], [1.01]]))
    assert torch.all(torch.isinf(outside) & (outside < 0))


def test_keyed_sampling_and_the_torch_icdf_agree() -> None:
    spec = build_prior_spec(get_rule("dso_linear"))
    # keyed per row: any split into batches gives the same rows
    whole = spec.sample_rows(7, 0, 1000)
    parts = np.concatenate([spec.sample_rows(7, a, b) for a, b in ((0, 1), (1, 400), (400, 1000))])
    assert np.array_equal(whole, parts)
    # the same uniforms through the torch inverse CDF give the same values
    from wiring.rules.draw import keyed_uniforms

    u = keyed_uniforms(7, np.arange(1000)[:, None], np.arange(3)[None, :])
    base = build_prior(spec).base_dist
    t = base.icdf(torch.as_tensor(u, dtype=torch.float64)).double().numpy()
    assert np.allclose(t, whole, atol=1e-6)


def test_sbi_accepts_the_truncated_prior() -> None:
    from sbi.utils.user_input_checks import process_prior

    spec = build_prior_spec(get_rule("dso_linear"))
    prior, d, _ = process_prior(build_prior(spec))
    assert d == 3
    torch.manual_seed(0)
    s = prior.sample((1000,))
    assert s.shape == (1000, 3) and bool(prior.support.check(s).all())
    assert not bool(prior.support.check(torch.tensor([[-0.1, 1.0, 1.0]])).all())


def test_truncated_spec_round_trips_and_is_validated() -> None:
    spec = PriorSpec(kind="gaussian", names=("a", "b"), loc=(1.0, 0.0), scale=(0.5, 1.0),
                     low=(0.0, -math.inf), high=(2.0, math.inf))
    d = spec.to_dict()
    assert d["low"] == [0.0, None] and d["high"] == [2.0, None]
    assert PriorSpec.from_json(spec.to_json()) == spec
    assert PriorSpec.from_toml(spec.to_toml()) == spec
    assert "-inf" in spec.to_toml()
    # all sides open: a plain Gaussian
    plain = PriorSpec(kind="gaussian", names=("a",), loc=(1.0,), scale=(1.0,),
                      low=(None,), high=(None,))  # type: ignore[arg-type]
    assert not plain.truncated and plain == PriorSpec(kind="gaussian", names=("a",),
                                                      loc=(1.0,), scale=(1.0,))
    with pytest.raises(InvalidParameterError, match="need low < high"):
        PriorSpec(kind="gaussian", names=("a",), loc=(1.0,), scale=(1.0,), low=(2.0,),
                  high=(1.0,))
    with pytest.raises(InvalidParameterError, match="no mass between its truncation bounds"):
        PriorSpec(kind="gaussian", names=("a",), loc=(100.0,), scale=(0.1,), low=(0.0,),
                  high=(1.0,))
    with pytest.raises(InvalidParameterError, match="must not be NaN"):
        PriorSpec(kind="gaussian", names=("a",), loc=(1.0,), scale=(1.0,), low=(math.nan,),
                  high=(2.0,))


def test_truncated_analysis_helpers() -> None:
    from wiring.analysis._common import prior_box, prior_marginal_pdf, prior_sample

    spec = build_prior_spec(get_rule("peters_synapse"))
    lo, hi = prior_box(spec.to_dict(), 1)
    assert 0.0 <= lo[0] < hi[0] <= 1.0
    grid = np.linspace(-0.5, 1.5, 2001)
    pdf = prior_marginal_pdf(spec.to_dict(), 1, 0, grid)
    assert np.all(pdf[(grid < 0) | (grid > 1)] == 0)
    assert np.trapezoid(pdf, grid) == pytest.approx(1.0, abs=2e-3)
    s = prior_sample(spec.to_dict(), 10_000, 1, np.random.default_rng(0))
    assert np.all((s >= 0) & (s <= 1))


def test_run_hash_changes_with_the_truncation_only_where_it_applies() -> None:
    import hashlib
    import json

    from pipelines.config import RunConfig

    def old_hash(cfg: RunConfig) -> str:
        from anatomy.generate import GENERATOR_VERSION

        data = cfg.to_dict()
        data.pop("cluster")
        data["run"] = {"seed": data["run"]["seed"]}
        data["anatomy"]["generator_version"] = GENERATOR_VERSION  # generated anatomy
        if not data["measurements"]["select"]:  # configs from before measurements.select
            del data["measurements"]["select"]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]

    dso = RunConfig()
    assert dso.science_hash() == old_hash(dso)  # the default run keeps its directory
    uniform = RunConfig.from_dict({"rule": {"name": "peters_synapse", "prior": "uniform"}})
    assert uniform.science_hash() == old_hash(uniform)
    for name in ("dso_linear", "peters_neuron", "peters_synapse"):
        cfg = RunConfig.from_dict({"rule": {"name": name}})
        assert cfg.science_hash() != old_hash(cfg), name


def test_posterior_summary_uses_the_truncated_prior_std() -> None:
    from wiring.analysis.summary import summarize_posterior

    spec = build_prior_spec(get_rule("peters_synapse"))
    samples = spec.sample_rows(3, 0, 50_000)
    summary = summarize_posterior(samples, ["theta_p_synapse"], prior_spec=spec.to_dict())
    sd = math.sqrt(spec.moments()[1][0])
    assert summary.prior_std[0] == pytest.approx(sd, rel=1e-9)
    # prior samples have the prior's spread: contraction ~ 0 within Monte-Carlo error
    assert abs(summary.contraction[0]) < 0.03
