"""The rule comparison's fits, trained on the dask workers while the run's own posterior trains.

The rule comparison needs one posterior per compared rule, each trained on its own
simulations. None of them depends on the run's posterior, so the runner starts them as soon as
the features are known (before the train stage) on the dask workers, which sit idle while the
run's posterior trains in this process: on a 2-core machine they cost almost no extra wall
time. Every compared simulator reads the run's own pair features, so nothing is extracted
twice. The large inputs every fit shares (the pair features, the measurement set, and the
protocol with its per-pair VPM flags: 8 bytes per eligible pair, 36 MiB for the paper's
4.7 million pairs) travel to the workers once, as recomputable shared tasks
(:func:`wiring._dask.share`), never inside each fit's task: a fit's own task holds only its
rule name, prior, seed and training settings. The fits are seeded exactly as before (one seed per compared
rule, derived from the run seed), train on one torch thread each, and come back as plain
tensors (a state dict, the manifest, θ and x): the numbers do not depend on where they ran.
Only a ``local`` cluster is used this way (it holds no batch allocation; batch-system jobs are
released before training); with other cluster kinds, or when the analysis resumes after a
restart, the same fits run in this process during the analysis.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["ComparisonFits", "fit_compared_rule"]

log = logging.getLogger(__name__)


def fit_compared_rule(source: Any, rule_name: str, mset: Any, protocol: dict[str, Any],
                      prior: dict[str, Any], n_sims: int, seed: int,
                      kwargs: dict[str, Any]) -> dict[str, Any]:
    """Simulate ``n_sims`` prior draws of ``rule_name`` and train its posterior; runs anywhere.

    Returns the trained network's state dict (CPU tensors), its manifest and the training
    simulations, which :meth:`ComparisonFits.results` turns back into a ``RuleFit``.
    """
    from wiring.analysis import fit_rule
    from wiring.inference.priors import PriorSpec
    from wiring.rules.registry import get_rule
    from wiring.simulation.simulator import Simulator

    rule = get_rule(rule_name)
    sim = Simulator(source, rule, mset, **protocol)
    fit = fit_rule(rule, sim, PriorSpec.from_dict(prior), n_sims, seed, **kwargs)
    net = fit.posterior.net  # type: ignore[attr-defined]
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    return {"state": state, "manifest": fit.posterior.manifest,  # type: ignore[attr-defined]
            "theta": fit.theta, "x": fit.x}


class ComparisonFits:
    """The fits of the compared rules of a run: started early, collected by the analysis."""

    def __init__(self, ctx: Any) -> None:
        from pipelines.context import train_kwargs
        from wiring.rules.registry import get_rule

        cfg = ctx.config
        self._ctx = ctx
        self.rules = [r for r in cfg.analysis.compare_rules if r != cfg.rule.name]
        base_seed = ctx.seed("compare")
        self._jobs = []
        for k, name in enumerate(self.rules):
            prior = ctx.prior_spec(get_rule(name)).to_dict()
            seed = int((base_seed + 7919 * (k + 1)) % 2**62)
            self._jobs.append((name, prior, seed))
        self._kwargs = train_kwargs(cfg.inference)
        self._futures: list[Any] | None = None
        self._shared: list[Any] = []

    @property
    def wanted(self) -> bool:
        """Whether the configuration asks for a rule comparison."""
        return bool(self.rules) and self._ctx.config.analysis.comparison_simulations > 0

    def _args(self, inputs: tuple[Any, Any, Any], name: str, prior: dict[str, Any], seed: int,
              progress: bool) -> tuple[Any, ...]:
        source, mset, protocol = inputs
        return (source, name, mset, protocol, prior,
                self._ctx.config.analysis.comparison_simulations, seed,
                {**self._kwargs, "progress": progress})

    @property
    def protocol(self) -> dict[str, Any]:
        """How the run's simulator emulates the experiments (every compared rule does the same)."""
        sim = self._ctx.simulator
        return {"n_pairs": sim.n_pairs_spec, "replace": sim.replace, "pooling": sim.pooling,
                "slice_config": sim.slice_config, "nuisance": sim.nuisance,
                "pre_is_vpm": sim.pre_is_vpm}

    @property
    def submitted(self) -> bool:
        """Whether fits run on the cluster (the cluster must stay up until they are collected)."""
        return self._futures is not None

    def start(self) -> None:
        """Submit the fits to the dask workers (no-op without a distributed client)."""
        ctx = self._ctx
        # only a local cluster is used: it holds no batch allocation, and its workers are idle
        # through training; batch jobs are released before training, so fits run here later
        if (not self.wanted or self._futures is not None
                or ctx.config.cluster.kind.strip() != "local"):
            return
        client = ctx.client
        if client is None:
            return
        log.info("fitting %s for the rule comparison on the dask workers",
                 ", ".join(self.rules))
        from wiring._dask import share

        # the inputs every fit shares go to the workers once, as recomputable task results
        # (not scattered data: losing a worker cannot lose them), so each fit's own task is a
        # few kilobytes; passed by value, they would travel in every fit's graph
        self._shared = [share(client, ctx.simulator.source, "comparison-features"),
                        share(client, ctx.measurements, "comparison-measurements"),
                        share(client, self.protocol, "comparison-protocol")]
        inputs = (self._shared[0], self._shared[1], self._shared[2])
        self._futures = [
            client.submit(fit_compared_rule, *self._args(inputs, name, prior, seed, False),
                          key=f"compare-fit-{name}-{seed}", pure=False)
            for name, prior, seed in self._jobs
        ]

    def results(self) -> list[Any]:
        """One ``RuleFit`` per compared rule (waits for the workers, or fits here)."""
        from wiring.analysis import RuleFit
        from wiring.inference import posterior_from_state
        from wiring.simulation.simulator import Simulator

        ctx = self._ctx
        if self._futures is not None:
            try:
                done = ctx.client.gather(self._futures)
            finally:
                ctx.client.cancel(self._shared)  # the workers may drop the shared inputs
        else:
            done = []
            inputs = (ctx.simulator.source, ctx.measurements, self.protocol)
            for name, prior, seed in self._jobs:
                log.info("fitting %s for the rule comparison", name)
                done.append(fit_compared_rule(*self._args(inputs, name, prior, seed,
                                                          ctx.progress)))
        fits = []
        for (name, _prior, seed), res in zip(self._jobs, done, strict=True):
            posterior = posterior_from_state(res["manifest"], res["state"])
            simulator = Simulator(ctx.simulator.source, name, ctx.measurements,
                                  **self.protocol)
            tr = posterior.manifest.get("training", {})
            log.info("rule comparison: %s trained in %d epochs (%.1f s; stopped: %s)", name,
                     tr.get("epochs", 0), tr.get("wall_s", 0.0), tr.get("stop_message", "?"))
            fits.append(RuleFit(rule=name, posterior=posterior, simulator=simulator,
                                prior_spec=posterior.prior_spec, theta=res["theta"],
                                x=res["x"], seed=seed, train_kwargs=dict(self._kwargs)))
        return fits
