"""Figures of the posterior analysis (object-oriented matplotlib, no pyplot state).

Every function returns a new :class:`matplotlib.figure.Figure`; nothing is shown or saved here
(:func:`wiring.report.write_report` saves them). matplotlib is imported inside the functions so
importing :mod:`wiring.analysis` stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from wiring._typing import BoolArray, FloatArray
from wiring.analysis._common import prior_box, prior_kind, prior_marginal_pdf

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "plot_connectivity_heatmap",
    "plot_coverage",
    "plot_pairplot",
    "plot_predictive_check",
    "plot_rule_comparison",
    "plot_sbc_ranks",
]

_POST = "C0"
_REF = "C3"
_PRIOR = "0.55"


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def plot_pairplot(
    samples: FloatArray,
    param_names: Sequence[str],
    *,
    prior_spec: Any,
    reference: FloatArray | None = None,
    intervals: FloatArray | None = None,
    labels: Sequence[str] | None = None,
    partial: FloatArray | None = None,
    conditional: FloatArray | None = None,
    bins: int = 40,
) -> Figure:
    """Corner plot: marginal histograms on the diagonal, pairwise 2-D densities below it.

    The prior is drawn in grey (marginal density on the diagonal; its central 95 % box, or the
    whole box of a uniform prior, dashed below the diagonal), the reference (the rule's a-priori
    parameters) in red (vertical lines and stars), and the posterior's 95 % intervals shaded on
    the diagonal. Panels above the diagonal show the pairwise correlation coefficient and, when
    given (d, d), sbi's conditional correlation (``conditional``) and the partial correlation
    from the sample precision matrix (``partial``), both given the other parameters.
    """
    n, d = samples.shape
    names = list(labels) if labels is not None else list(param_names)
    lo_p, hi_p = prior_box(prior_spec, d)
    q_lo, q_hi = np.quantile(samples, [0.001, 0.999], axis=0)
    span = np.maximum(q_hi - q_lo, 1e-12)
    lims = np.stack([q_lo - 0.15 * span, q_hi + 0.15 * span], axis=1)
    if reference is not None:
        lims[:, 0] = np.minimum(lims[:, 0], reference - 0.05 * span)
        lims[:, 1] = np.maximum(lims[:, 1], reference + 0.05 * span)
    corr = np.atleast_2d(np.corrcoef(samples, rowvar=False)) if d > 1 else np.ones((1, 1))
    fig = _new_figure(2.3 * d + 0.6, 2.3 * d + 0.4)
    axes = fig.subplots(d, d, squeeze=False)
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            if j > i:
                ax.set_axis_off()
                if d > 1:
                    text = f"r = {corr[i, j]:+.2f}"
                    if conditional is not None:
                        text += f"\nconditional r = {conditional[i, j]:+.2f}"
                    if partial is not None and d > 2:
                        text += f"\npartial r = {partial[i, j]:+.2f}"
                    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes,
                            fontsize=11)
                continue
            if i == j:
                grid = np.linspace(lims[i, 0], lims[i, 1], 200)
                ax.hist(samples[:, i], bins=bins, range=tuple(lims[i]), density=True,
                        color=_POST, alpha=0.6, label="posterior")
                ax.plot(grid, prior_marginal_pdf(prior_spec, d, i, grid), color=_PRIOR,
                        lw=1.5, label="prior")
                if intervals is not None:
                    ax.axvspan(intervals[i, 0], intervals[i, 1], color=_POST, alpha=0.12,
                               label="95 % interval")
                if reference is not None:
                    ax.axvline(reference[i], color=_REF, lw=1.5, label="a-priori rule")
                ax.set_xlim(*lims[i])
                ax.set_yticks([])
                if i == 0:
                    ax.legend(fontsize=7, loc="upper right", frameon=False)
            else:
                h, xe, ye = np.histogram2d(samples[:, j], samples[:, i], bins=bins,
                                           range=[tuple(lims[j]), tuple(lims[i])], density=True)
                ax.pcolormesh(xe, ye, h.T, cmap="Blues", shading="flat", rasterized=True)
                _draw_prior_region(ax, prior_spec, d, j, i, lo_p, hi_p)
                if reference is not None:
                    ax.plot(reference[j], reference[i], marker="*", color=_REF, ms=11,
                            mec="white", mew=0.6, ls="none")
                ax.set_xlim(*lims[j])
                ax.set_ylim(*lims[i])
            if i == d - 1:
                ax.set_xlabel(names[j])
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(names[i])
            elif j != i:
                ax.set_yticklabels([])
    fig.suptitle(f"Posterior ({n} samples); prior in grey, a-priori rule in red")
    return fig


def _draw_prior_region(ax: Any, prior_spec: Any, d: int, j: int, i: int,
                       lo: FloatArray, hi: FloatArray) -> None:
    from matplotlib.patches import Ellipse, Rectangle

    if prior_kind(prior_spec) == "uniform":
        ax.add_patch(Rectangle((lo[j], lo[i]), hi[j] - lo[j], hi[i] - lo[i], fill=False,
                               ec=_PRIOR, ls="--", lw=1.2))
        return
    # independent Gaussian: the 95 % region of the 2-D marginal is an axis-aligned ellipse with
    # semi-axes sqrt(chi2_2(0.95)) * sigma = 2.448 * sigma; lo/hi are loc -/+ 1.96 sigma
    sig = (hi - lo) / (2 * 1.959964)
    r = 2.447747
    ax.add_patch(Ellipse(((lo[j] + hi[j]) / 2, (lo[i] + hi[i]) / 2), 2 * r * sig[j],
                         2 * r * sig[i], fill=False, ec=_PRIOR, ls="--", lw=1.2))


def plot_predictive_check(
    names: Sequence[str],
    x_pred: FloatArray,
    x_o: FloatArray,
    p_values: FloatArray,
    *,
    title: str = "Posterior predictive check",
) -> Figure:
    """One violin per measurement: the posterior predictive distribution of the connection
    probability, the measured value as a red bar, the 95 % predictive interval as whiskers."""
    m = len(names)
    fig = _new_figure(max(5.0, 0.9 * m + 2.0), 4.2)
    ax = fig.add_subplot()
    pos = np.arange(m)
    cols = [x_pred[np.isfinite(x_pred[:, k]), k] for k in range(m)]
    usable = [k for k in range(m) if len(cols[k]) > 1 and np.ptp(cols[k]) > 0]
    if usable:
        parts = ax.violinplot([cols[k] for k in usable], positions=pos[usable], widths=0.8,
                              showextrema=False)
        bodies: Any = parts["bodies"]
        for body in bodies:
            body.set_facecolor(_POST)
            body.set_alpha(0.45)
    for k in range(m):
        if len(cols[k]):
            lo, med, hi = np.quantile(cols[k], [0.025, 0.5, 0.975])
            ax.vlines(pos[k], lo, hi, color=_POST, lw=1.5)
            ax.plot(pos[k], med, "o", color=_POST, ms=4)
    ax.hlines(x_o, pos - 0.35, pos + 0.35, color=_REF, lw=2.5, label="measured")
    for k in range(m):
        ax.annotate(f"p={p_values[k]:.2g}", (pos[k], 1.0), xycoords=("data", "axes fraction"),
                    ha="center", va="bottom", fontsize=7)
    ax.set_xticks(pos, list(names), rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("connection probability")
    ax.set_xlabel("measurement")
    ax.set_title(title, pad=14)
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    return fig


def plot_sbc_ranks(ranks: FloatArray, n_posterior_samples: int,
                   param_names: Sequence[str], *, n_bins: int = 20) -> Figure:
    """Histogram of SBC ranks per parameter with the 99 % band of a uniform histogram."""
    from scipy.stats import binom

    n, d = ranks.shape
    fig = _new_figure(2.8 * d + 0.4, 2.8)
    axes = fig.subplots(1, d, squeeze=False)[0]
    p = 1.0 / n_bins
    lo, hi = binom.ppf([0.005, 0.995], n, p)
    edges = np.linspace(0, n_posterior_samples, n_bins + 1)
    for k, ax in enumerate(axes):
        ax.axhspan(lo, hi, color=_PRIOR, alpha=0.3, label="99 % band (uniform)")
        ax.axhline(n * p, color=_PRIOR, lw=1)
        ax.hist(ranks[:, k], bins=edges, color=_POST, alpha=0.75, label="ranks")
        ax.set_xlabel(f"rank of {param_names[k]}")
        ax.set_xlim(0, n_posterior_samples)
        if k == 0:
            ax.set_ylabel("count")
            ax.legend(fontsize=7, frameon=False)
    fig.suptitle(f"Simulation-based calibration ({n} runs)")
    return fig


def plot_coverage(
    levels: FloatArray,
    coverage: FloatArray,
    param_names: Sequence[str],
    *,
    tarp_alpha: FloatArray | None = None,
    tarp_ecp: FloatArray | None = None,
    n_runs: int | None = None,
) -> Figure:
    """Expected coverage of central credible intervals per parameter (from the SBC ranks) and
    the joint TARP coverage, against the nominal level (diagonal = calibrated)."""
    fig = _new_figure(4.6, 4.2)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="k", lw=1, ls="--", label="calibrated")
    if n_runs:
        se = np.sqrt(levels * (1 - levels) / n_runs)
        ax.fill_between(levels, levels - 2.58 * se, levels + 2.58 * se, color=_PRIOR,
                        alpha=0.3, label="99 % band")
    for k, name in enumerate(param_names):
        ax.plot(levels, coverage[:, k], lw=1.5, label=name)
    if tarp_alpha is not None and tarp_ecp is not None:
        ax.plot(tarp_alpha, tarp_ecp, color="k", lw=1.5, label="joint (TARP)")
    ax.set_xlabel("credibility level")
    ax.set_ylabel("expected coverage")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    ax.set_title("Expected coverage")
    return fig


def plot_connectivity_heatmap(
    pre_types: Sequence[str],
    post_types: Sequence[str],
    median: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    covered: BoolArray,
) -> Figure:
    """Heatmap of predicted connection probabilities (posterior median) per pre × post cell
    type, annotated with the 95 % credible interval; measured pairs are outlined in red."""
    from matplotlib.patches import Rectangle

    n_pre, n_post = median.shape
    fig = _new_figure(1.0 * n_post + 2.5, 0.62 * n_pre + 1.8)
    ax = fig.add_subplot()
    masked = np.ma.masked_invalid(median)
    im = ax.imshow(masked, cmap="viridis", aspect="auto", vmin=0.0,
                   vmax=max(float(np.nanmax(median)) if np.isfinite(median).any() else 1.0, 1e-6))
    for a in range(n_pre):
        for b in range(n_post):
            if not np.isfinite(median[a, b]):
                ax.text(b, a, "n/a", ha="center", va="center", fontsize=6, color="0.5")
                continue
            dark = median[a, b] < 0.6 * float(np.nanmax(median))
            ax.text(b, a, f"{median[a, b]:.2f}\n[{lo[a, b]:.2f}, {hi[a, b]:.2f}]", ha="center",
                    va="center", fontsize=5.5, color="w" if dark else "k")
            if covered[a, b]:
                ax.add_patch(Rectangle((b - 0.5, a - 0.5), 1, 1, fill=False, ec=_REF, lw=2))
    ax.set_xticks(range(n_post), list(post_types), rotation=45, ha="right")
    ax.set_yticks(range(n_pre), list(pre_types))
    ax.set_xlabel("postsynaptic cell type")
    ax.set_ylabel("presynaptic cell type")
    ax.set_title("Predicted connection probability (median, 95 % CI); red: measured")
    fig.colorbar(im, ax=ax, label="connection probability")
    return fig


def plot_rule_comparison(
    rules: Sequence[str],
    measurements: Sequence[str],
    in_sample_p: FloatArray,
    held_out_p: FloatArray,
    held_out_z: FloatArray,
    *,
    ruled_out: Mapping[str, bool],
    alpha: float,
    reliable: BoolArray | None = None,
    a_priori_p: FloatArray | None = None,
    voxel_um: float | None = None,
) -> Figure:
    """Per rule and measurement: posterior predictive and held-out p-values (log scale), the
    p-values at the rule's a-priori parameters (triangles, when given) and the standardized
    held-out error; rules the data rule out are marked in the legend, held-out values flagged
    unreliable (too few effective samples) are drawn faint. The title names the voxel size."""
    n_r, m = in_sample_p.shape
    fig = _new_figure(max(9.0, 1.1 * m + 5.0), 6.0)
    ax_p, ax_z = fig.subplots(2, 1, sharex=True)
    width = 0.8 / max(n_r, 1)
    pos = np.arange(m)
    for r, rule in enumerate(rules):
        off = (r - (n_r - 1) / 2) * width
        label = f"{rule} (ruled out)" if ruled_out.get(rule, False) else rule
        ax_p.scatter(pos + off, np.clip(in_sample_p[r], 1e-6, 1), marker="o",
                     color=f"C{r}", label=f"{label}: posterior predictive")
        ok = np.ones(m, dtype=bool) if reliable is None else np.asarray(reliable[r], dtype=bool)
        ax_p.scatter((pos + off)[ok], np.clip(held_out_p[r][ok], 1e-6, 1), marker="x",
                     color=f"C{r}", label=f"{label}: held out")
        if not ok.all():
            ax_p.scatter((pos + off)[~ok], np.clip(held_out_p[r][~ok], 1e-6, 1), marker="x",
                         color=f"C{r}", alpha=0.25, label=f"{label}: held out (unreliable)")
        if a_priori_p is not None and np.isfinite(a_priori_p[r]).any():
            ax_p.scatter(pos + off, np.clip(a_priori_p[r], 1e-6, 1), marker="^",
                         facecolors="none", edgecolors=f"C{r}",
                         label=f"{rule}: at its a-priori parameters")
        ax_z.bar(pos + off, np.nan_to_num(held_out_z[r]), width=width, color=f"C{r}", alpha=0.8,
                 label=label)
    ax_p.axhline(alpha, color=_REF, ls="--", lw=1, label=f"rule-out level p = {alpha:.2g}")
    ax_p.set_yscale("log")
    ax_p.set_ylabel("predictive p-value")
    ax_p.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax_p.set_title("Rule comparison" + (f" ({voxel_um:g} µm voxels)" if voxel_um else ""))
    ax_z.axhline(0, color="k", lw=0.8)
    for z in (-2, 2):
        ax_z.axhline(z, color=_PRIOR, ls=":", lw=1)
    ax_z.set_ylabel("held-out error (z)")
    ax_z.set_xticks(pos, list(measurements), rotation=30, ha="right", fontsize=8)
    ax_z.set_xlabel("measurement")
    return fig
