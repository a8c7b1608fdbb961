"""Generate the notebooks of this folder from the cell sources below.

The notebooks are written as code here so that changes are reviewable as ordinary diffs; the
``.ipynb`` files are committed without outputs. Regenerate them after editing this file::

    python notebooks/build_notebooks.py

``tests/test_notebooks.py`` executes every notebook of this folder and checks that the committed
files match this script.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

__all__ = ["NOTEBOOKS", "build", "main"]

HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------------------------
# dso_thalamocortical.ipynb
# --------------------------------------------------------------------------------------------
DSO_THALAMOCORTICAL: list[tuple[str, str]] = [
    ("md", """\
# Does the classic DSO rule explain the thalamocortical measurements?

**Hypothesis.** Thalamocortical connectivity from the ventral posteromedial nucleus (VPM) to the
barrel cortex follows *dense structural overlap* (DSO) with its classic exponents: in every voxel
that a presynaptic neuron *i* and a postsynaptic neuron *j* share, the expected number of synapses
is

$$\\lambda_{ijk} = \\frac{\\mathrm{pre}_{ik}^{\\,\\theta_{pre}}\\;
\\mathrm{post}_{jk}^{\\,\\theta_{post}}}{\\mathrm{postAll}_k^{\\,\\theta_{postall}}},
\\qquad \\theta = (1, 1, 1),$$

where `pre` counts the boutons of *i*, `post` the target sites of *j* and `postAll` the target
sites of all neurons in voxel *k*. A pair is connected (at least one synapse) with probability
$1 - \\exp(-\\sum_k \\lambda_{ijk})$.

**Data.** Seven connection probabilities measured by paired recordings in vivo in the rat
(VPM → L4, L4 in the septum, L4sp, L4ss, L5IT, L5PT, L6; Bruno & Sakmann 2006, Constantinople &
Bruno 2013), the data Boelts et al. (2023) inferred DSO's exponents from.

**Questions.**
1. Is θ = (1, 1, 1) consistent with the measurements, given the experiments' sampling noise?
2. Which exponents θ are consistent with them (the posterior, by neural posterior estimation)?
3. Does the fitted rule reproduce every measurement (posterior predictive check)?
4. What does it predict for pairs nobody measured, above all VPM → L2/3 (L2PY, L3PY)?

This notebook is a *demonstration on a small configuration*: the `small` synthetic barrel-cortex
model (one column and its surrounding septum), a few thousand simulations and a small network, so
that it runs in well under a minute on two cores. The numbers it computes show how the method
works; a study uses the `column` model and 10⁵–10⁶ simulations
(`wiring run --config paper`)."""),
    ("code", """\
%matplotlib inline
import logging
import time
import warnings

import numpy as np
import torch
from IPython.display import Markdown, display
from matplotlib import pyplot as plt

from anatomy.describe import describe_model
from anatomy.generate import build_model
from anatomy.plot import plot_depth_profiles
from wiring.analysis import (
    posterior_predictive_check,
    predict_connectivity,
    predictive_p_value,
    summarize_posterior,
)
from wiring.inference import train_posterior
from wiring.measurements import load_measurement_set
from wiring.inference.priors import build_prior_spec
from wiring.rules.registry import rule_provenance
from wiring.simulation.simulator import Simulator

# Every random step below takes its own seed, so the notebook gives the same numbers each run.
SEED_MODEL, SEED_THETA, SEED_SIM, SEED_TRAIN, SEED_ANALYSIS = 0, 1, 2, 3, 4
N_SIMULATIONS = 3000  # a demo budget; the paper-sized study uses 10^6

# The networks here are small: one intra-op thread trains them as fast as two and cannot be
# slowed down by other processes competing for the cores.
torch.set_num_threads(1)
logging.basicConfig(level=logging.WARNING)
# Two warnings from third-party packages that say nothing about the results: nflows uses a
# deprecated torch function, and tqdm asks for ipywidgets (progress bars are off here anyway).
warnings.filterwarnings("ignore", message=r".*triangular_solve.*")
warnings.filterwarnings("ignore", message=r".*IProgress not found.*")
t_start = time.perf_counter()"""),
    ("md", """\
## 1. The structural model

The structural model says, for every 50 µm voxel, how many presynaptic boutons (`pre`) and
postsynaptic target sites (`post`) each neuron has there, plus `postAll`, the target sites of all
neurons in the voxel. Here it is the `small` preset of the synthetic barrel-cortex generator: a
single column (C2) with its septum and 40 VPM neurons of the C2 barreloid, built in seconds.

The figure shows the model along cortical depth: somata per cell type (left), VPM boutons
(middle: a peak in L4 with a broad flank into L2/3, a trough in L5A and a second, smaller peak
at the L5B/L6A border, calibrated to the dense model of Udvary et al. 2022) and
target sites per cell type (right). DSO predicts connections wherever the VPM boutons of the
middle panel meet a cell type's target sites of the right panel."""),
    ("code", """\
model = build_model("small", seed=SEED_MODEL)
info = describe_model(model)
print(f"{info['n_neurons']} neurons ({info['neurons_per_cell_type']['VPM']} VPM), "
      f"{info['n_voxels']} voxels, content hash {model.attrs['content_hash'][:12]}")
print("neurons per cell type:", info["neurons_per_cell_type"])
display(plot_depth_profiles(model))"""),
    ("md", """\
## 2. The measurements

`vpm-invivo` ships with the package. Each measurement is data: its pre- and postsynaptic
populations (selectors on cell type, region and column), the measured connection probability,
the number of pairs the experiment tested, and the citation. The number of tested pairs matters:
with 9–40 pairs per experiment the measured fractions carry a binomial standard error of
about 0.08–0.17, and the simulator reproduces exactly that noise by testing as many pairs."""),
    ("code", """\
mset = load_measurement_set("vpm-invivo")
rows = ["| id | pre | post | measured | pairs tested | source |", "|---|---|---|---|---|---|"]
for m in mset.measurements:
    rows.append(f"| {m.id} | `{m.pre}` | `{m.post}` | {m.probability:.2f} | {m.n_pairs} | "
                f"{m.citation.authors} {m.citation.year} |")
display(Markdown("\\n".join(rows)))"""),
    ("md", """\
## 3. Question 1: is θ = (1, 1, 1) consistent with the data?

The `Simulator` precomputes, once, every eligible (VPM, target) pair of each measured population
and the voxels the two neurons share. For a parameter vector θ it then either

* computes the **expected** statistic exactly (`sim.expected(theta)`: the mean over all eligible
  pairs of the connection probability), or
* **simulates** the experiment (`sim.simulate(theta, seed=...)`): draw as many pairs as the
  experiment tested, decide for each whether it is connected, and return the connected fraction.

Simulating the experiment many times at θ = (1, 1, 1) gives the distribution of the values the
experiments *would* have measured if the classic rule were true, including their sampling noise;
the two-sided predictive p-value asks how surprising each measured value is under it."""),
    ("code", """\
sim = Simulator(model, "dso", mset)
print(sim)
theta_classic = np.array([1.0, 1.0, 1.0])
expected_classic = sim.expected(theta_classic)[0]
x_classic = sim.simulate(np.tile(theta_classic, (2000, 1)), seed=SEED_SIM)
p_classic = predictive_p_value(x_classic, sim.x_o)
lo_c, hi_c = np.quantile(x_classic, [0.025, 0.975], axis=0)

rows = ["| measurement | measured | expected at (1,1,1) | 95 % of simulated experiments | p |",
        "|---|---|---|---|---|"]
for k, name in enumerate(sim.names):
    rows.append(f"| {name} | {sim.x_o[k]:.2f} | {expected_classic[k]:.3f} | "
                f"[{lo_c[k]:.2f}, {hi_c[k]:.2f}] | {p_classic[k]:.3f} |")
display(Markdown("\\n".join(rows)))

fig, ax = plt.subplots(figsize=(7, 3.2))
pos = np.arange(len(sim.names))
ax.violinplot(x_classic, positions=pos, showextrema=False)
ax.plot(pos, expected_classic, "_", color="C0", markersize=18, label="expected at θ = (1, 1, 1)")
ax.plot(pos, sim.x_o, "o", color="C3", label="measured")
ax.set_xticks(pos, sim.names)
ax.set_ylabel("connection probability")
ax.set_title("Simulated experiments under the classic rule (violins) vs. the measurements")
ax.legend(loc="upper right", fontsize=8)
plt.show()
n_surprising = int((p_classic < 0.05).sum())
print(f"{n_surprising} of {len(sim.names)} measurements have p < 0.05 under θ = (1, 1, 1)")"""),
    ("md", """\
The violins are the spread of what each experiment would measure under the classic rule; a red
dot far outside its violin is a measurement the classic rule does not explain. The p-values are
per measurement and not corrected for testing seven of them; section 4 asks the joint question.

## 4. Question 2: which θ are consistent with the data?

We put the prior of Boelts et al. (2023) on the exponents: independent Gaussians centred on the
classic values, N(1, 0.05) (variance 0.05), draw θ from it, simulate the seven experiments for
each draw, and train a neural posterior estimator (a small neural spline flow) on the (θ, x)
pairs. The trained network is *amortized*: it returns p(θ | x) for any x without retraining, and
we condition it on the measured values x_o."""),
    ("code", """\
prior = build_prior_spec(sim.rule)  # Gaussian, loc = (1, 1, 1), scale = sqrt(0.05)
print(prior)
theta_train = prior.sample(N_SIMULATIONS, np.random.default_rng(SEED_THETA))
t0 = time.perf_counter()
x_train = sim.simulate(theta_train, seed=SEED_SIM)
print(f"{N_SIMULATIONS} simulations in {time.perf_counter() - t0:.1f} s "
      f"({sim.n_invalid} invalid)")

t0 = time.perf_counter()
posterior = train_posterior(
    theta_train, x_train, prior,
    estimator="nsf", hidden_features=32, num_transforms=2,
    batch_size=300, learning_rate=1e-3, max_epochs=40, stop_after_epochs=8,
    seed=SEED_TRAIN, progress=False,
    metadata={"rule": rule_provenance(sim.rule), "measurement_names": list(sim.names)},
)
training = posterior.manifest["training"]
print(f"trained in {time.perf_counter() - t0:.1f} s: {training['epochs']} epochs, "
      f"best validation loss {training['best_validation_loss']:.3f}"
      f"{'' if training['converged'] else ' (epoch cap reached)'}")"""),
    ("md", """\
### The posterior

`summarize_posterior` gives means, 95 % central credible intervals, correlations and the
*contraction* of each parameter (1 − posterior variance / prior variance: 0 means the data taught
us nothing about it, 1 that they determine it). It also places the classic rule in the joint
posterior: `reference_hpd_level` is the posterior mass of the region *denser* than θ = (1, 1, 1);
the classic rule lies inside the 95 % highest-density region when it is at most 0.95.

In the pairplot, the diagonal shows each exponent's marginal (grey: the prior; shaded: the 95 %
interval), the panels below it the pairwise joint densities, and the red lines and stars mark
θ = (1, 1, 1). A narrow ridge between two panels' axes means the data constrain a combination of
the two exponents rather than each one separately. The panels above the diagonal give, for each
pair, the correlation given the third exponent twice: the *conditional* correlation as the paper
reports it (sbi's `conditional_corrcoeff`, from the posterior density) and the *partial*
correlation (from the samples' precision matrix; the two agree for a Gaussian posterior)."""),
    ("code", """\
samples = posterior.sample(4000, sim.x_o, seed=SEED_ANALYSIS)
summary = summarize_posterior(
    samples, posterior.param_names, prior_spec=prior, reference=theta_classic,
    log_prob=lambda th: posterior.log_prob(th, sim.x_o),
)
rows = ["| parameter | mean | 95 % interval | contraction | 1 inside the interval |",
        "|---|---|---|---|---|"]
for r in summary.table():
    rows.append(f"| {r['parameter']} | {r['mean']:.2f} | [{r['ci_low']:.2f}, {r['ci_high']:.2f}] "
                f"| {r['contraction']:.2f} | {r['reference_in_ci']} |")
display(Markdown("\\n".join(rows)))
print(f"posterior mass denser than θ = (1, 1, 1): {summary.reference_hpd_level:.3f} "
      f"-> inside the 95 % HPD region: {summary.reference_in_hpd}")
print("conditional correlations (sbi's conditional_corrcoeff, given the third exponent):")
print(np.round(summary.conditional_correlation, 2))
print("partial correlations (sample precision matrix):")
print(np.round(summary.partial_correlation, 2))
display(summary.figure)"""),
    ("md", """\
Each exponent's own interval may contain 1 while the *joint* point (1, 1, 1) is still
implausible: the intervals are marginal, and the measurements mostly pin down a combination of
the exponents (the overall connection probability), which the classic point can miss even when
each coordinate looks fine on its own. The HPD level answers the joint question.

## 5. Question 3: does the fitted rule reproduce every measurement?

The posterior predictive check draws θ from the posterior, re-simulates the seven experiments and
compares the spread of the simulated values (violins) with the measured values (red). Posterior
predictive p-values are conservative (the posterior has already seen the data), so they are
*calibrated* against replicate data sets drawn from the prior predictive (Hjort et al. 2006);
a small calibrated p flags a measurement the rule cannot fit together with the others."""),
    ("code", """\
check = posterior_predictive_check(
    posterior, sim, sim.x_o, n_samples=1000, seed=SEED_ANALYSIS,
    n_calibration=40, n_calibration_samples=100,
)
rows = ["| measurement | measured | predictive mean | 95 % predictive interval | calibrated p |",
        "|---|---|---|---|---|"]
for r in check.table():
    rows.append(f"| {r['measurement']} | {r['measured']:.2f} | {r['predictive_mean']:.2f} | "
                f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}] | {r['p_value_calibrated']:.2f} |")
display(Markdown("\\n".join(rows)))
display(check.figure)"""),
    ("md", """\
## 6. Question 4: what does the fitted rule predict for VPM → L2/3?

Nobody measured VPM → L2/3 in vivo in these experiments, but the rule, once fitted, predicts it:
for each posterior sample θ, `predict_connectivity` computes the expected connection probability
of every VPM → cell-type pair of the model (the mean of 1 − exp(−λ) over up to 1,000 randomly
chosen pairs per cell-type pair, all regions), which gives a posterior distribution, summarized
by its median and 95 % credible interval. The heatmap outlines the type pairs contained in a
measured population in red; all others are predictions. For comparison the same numbers are
computed at the classic θ = (1, 1, 1)."""),
    ("code", """\
pred = predict_connectivity(posterior, model, sim.rule, sim.x_o, pre_types=["VPM"],
                            n_samples=200, max_pairs=1000, measurement_set=mset,
                            seed=SEED_ANALYSIS)
pred_classic = predict_connectivity(None, model, sim.rule, None, pre_types=["VPM"],
                                    theta=theta_classic[None, :], max_pairs=1000,
                                    seed=SEED_ANALYSIS, plot=False)
classic = {r["post_type"]: r["median"] for r in pred_classic.table()}
rows = ["| VPM → | posterior median | 95 % credible interval | at θ = (1,1,1) | measured in |",
        "|---|---|---|---|---|"]
for r in pred.table():
    name = f"**{r['post_type']}**" if r["post_type"] in ("L2PY", "L3PY") else r["post_type"]
    rows.append(f"| {name} | {r['median']:.3f} | [{r['ci_low']:.3f}, {r['ci_high']:.3f}] | "
                f"{classic[r['post_type']]:.3f} | {r['measurements'] or '(prediction)'} |")
display(Markdown("\\n".join(rows)))
display(pred.figure)"""),
    ("md", """\
## 7. Conclusions

The cell below states the answers from the numbers this notebook just computed. Read them as a
demonstration of the workflow: with a synthetic `small` model, 3,000 simulations and a network
trained for a few seconds, the posterior is only approximately calibrated, and the anatomy is not
the real barrel cortex. The same analysis on the real structural model (imported with
`wiring anatomy import`) with a paper-sized simulation budget is what supports scientific claims;
`wiring run` runs it end to end, including calibration checks (SBC, expected coverage) that this
notebook skips for time."""),
    ("code", """\
lines = []
lines.append(
    f"* **Classic rule, fixed θ = (1, 1, 1):** {n_surprising} of {len(sim.names)} measurements "
    f"fall outside what the simulated experiments typically give (p < 0.05); the expected "
    f"probabilities range from {expected_classic.min():.2f} to {expected_classic.max():.2f} "
    f"against measured {sim.x_o.min():.2f} to {sim.x_o.max():.2f}.")
where = "inside" if summary.reference_in_hpd else "outside"
lines.append(
    f"* **Posterior:** θ = (1, 1, 1) lies {where} the 95 % highest-density region "
    f"(HPD level {summary.reference_hpd_level:.2f}). Posterior means: "
    + ", ".join(f"{n} = {m:.2f} [{lo:.2f}, {hi:.2f}]" for n, m, (lo, hi)
                in zip(summary.param_names, summary.mean, summary.interval)) + ".")
best = summary.param_names[int(np.argmax(summary.contraction))]
lines.append(f"* The measurements constrain **{best}** most (contraction "
             f"{summary.contraction.max():.2f}); contractions near 0 mean a parameter is "
             f"left at its prior by these seven numbers.")
misfit = [n for n, p in zip(check.names, check.p_value_calibrated) if p < 0.05]
lines.append(
    "* **Predictive check:** " + (
        "every measurement is reproduced (calibrated p ≥ 0.05)." if not misfit else
        f"the fitted rule does not reproduce {', '.join(misfit)} (calibrated p < 0.05) together "
        f"with the others: a hint that DSO alone, or this anatomy, misses something about "
        f"{'that population' if len(misfit) == 1 else 'those populations'}."))
for t in ("L2PY", "L3PY"):
    a, i = pred.post_types.index(t), pred.pre_types.index("VPM")
    lines.append(
        f"* **Prediction VPM → {t}:** {pred.median[i, a]:.3f} "
        f"[{pred.ci_low[i, a]:.3f}, {pred.ci_high[i, a]:.3f}] (95 % credible interval; "
        f"{classic[t]:.3f} at θ = (1, 1, 1)), compared with "
        f"{pred.median[i, pred.post_types.index('L4ss')]:.3f} for VPM → L4ss.")
display(Markdown("\\n".join(lines)))
print(f"notebook ran in {time.perf_counter() - t_start:.0f} s")"""),
    ("md", """\
**How to read the L2/3 prediction.** DSO connects VPM to a cell type only where VPM boutons
and that type's target sites overlap. VPM axons put few boutons above L4 (middle panel of the
first figure), so in this model the rule can connect L2/3 pyramids only through the sparse
supragranular boutons and wherever their dendrites reach the dense VPM arbors; the table above
says how much lower than VPM → L4 that makes the predicted probabilities.
The credible interval is the uncertainty the seven measurements leave about the exponents,
propagated through the anatomy; it does not include the uncertainty of the anatomy itself.

**Next steps.** Train on the `column` model with 10⁵ or more simulations (`wiring run`), check
calibration (`wiring.analysis.calibration`), and compare DSO with alternative rules
(`wiring.analysis.compare_rules`, e.g. Peters' rule) on the same measurements."""),
]

#: Notebook file name -> cells ((kind, source) with kind "md" or "code").
NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "dso_thalamocortical.ipynb": DSO_THALAMOCORTICAL,
}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """A notebook (nbformat 4, no outputs) with the given cells and a python3 kernel spec."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for k, (kind, source) in enumerate(cells):
        cell = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        cell["id"] = f"cell-{k:02d}"  # stable ids keep regenerated files byte-identical
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(cells: list[tuple[str, str]]) -> str:
    """The ``.ipynb`` text of a notebook built from ``cells``."""
    return str(nbformat.writes(build(cells))) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write every notebook; with ``--check``, only report whether the files are up to date."""
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = HERE / name
        text = render(cells)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python notebooks/build_notebooks.py")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
