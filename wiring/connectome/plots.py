"""Figures of wiring results. matplotlib is imported inside each function.

Every function takes ``ax=None`` (a new figure is made) or an existing Axes to draw into, and
returns the :class:`matplotlib.figure.Figure`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from wiring.connectome.summaries import DepthDensity, TypeProbability

__all__ = ["plot_synapse_density", "plot_type_probability"]


def _figure_and_axes(ax: Any, size: tuple[float, float]) -> tuple[Figure, Any]:
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def plot_type_probability(
    tp: TypeProbability,
    *,
    which: Literal["observed", "expected"] = "observed",
    annotate: bool = True,
    ax: Any = None,
) -> Figure:
    """Heatmap of the connection probability between groups (rows: pre, columns: post).

    Parameters
    ----------
    tp
        From :func:`wiring.connectome.type_probability_matrix`.
    which
        ``observed`` (connected fraction in this connectome) or ``expected`` (the rule's
        probability, mean of ``1 - exp(-lambda)``).
    annotate
        Write each probability and, below it, the number of pairs into its cell.
    ax
        Axes to draw into; default a new figure.
    """
    if which not in ("observed", "expected"):
        raise ValueError(f"which = {which!r}; expected 'observed' or 'expected'")
    values = np.asarray(getattr(tp, which), dtype=np.float64)
    na, nb = values.shape
    fig, ax = _figure_and_axes(ax, (1.2 + 0.55 * nb, 1.0 + 0.45 * na))
    masked = np.ma.masked_invalid(values)
    im = ax.imshow(masked, cmap="viridis", vmin=0.0, vmax=max(float(np.nanmax(values))
                                                               if np.isfinite(values).any()
                                                               else 1.0, 1e-12),
                   aspect="auto", interpolation="nearest")
    ax.set_xticks(range(nb), tp.post_labels, rotation=60, ha="right")
    ax.set_yticks(range(na), tp.pre_labels)
    what = tp.by.replace("_", " ")
    ax.set_xlabel(f"postsynaptic {what}")
    ax.set_ylabel(f"presynaptic {what}")
    ax.set_title(f"connection probability ({which})")
    fig.colorbar(im, ax=ax, label="P(connected)")
    if annotate and na * nb <= 400:
        top = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
        for a in range(na):
            for b in range(nb):
                v = values[a, b]
                text = "–" if np.isnan(v) else f"{v:.2f}\n{int(tp.n_pairs[a, b])}"
                color = "black" if not np.isnan(v) and v > 0.6 * top else "white"
                ax.text(b, a, text, ha="center", va="center", fontsize=6, color=color)
    return fig


def plot_synapse_density(density: DepthDensity, *, ax: Any = None) -> Figure:
    """Expected synapse density (per mm³) against cortical depth, one line per cell type.

    Depth runs downwards from the pia, as in a cortical section; layer boundaries are marked.
    """
    from anatomy.catalogue import LAYER_BOUNDS_UM

    fig, ax = _figure_and_axes(ax, (4.5, 5.0))
    for name, row in zip(density.cell_types, density.density_per_mm3, strict=True):
        if np.nansum(row) > 0:
            ax.plot(row, density.depth_um, label=name, lw=1.2)
    for layer, (top, _) in LAYER_BOUNDS_UM.items():
        if top > 0:
            ax.axhline(top, color="0.8", lw=0.6, zorder=0)
        ax.text(1.0, top, f" {layer}", transform=ax.get_yaxis_transform(), fontsize=6,
                va="top", color="0.4")
    ax.invert_yaxis()
    ax.set_xlabel("expected synapses per mm³")
    ax.set_ylabel("depth below pia (µm)")
    ax.set_title("synapse density by postsynaptic cell type")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, frameon=False, loc="lower right")
    return fig
