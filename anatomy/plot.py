"""Depth profiles of a structural model, so a person can see at a glance that it is plausible.

matplotlib is imported inside the function, so importing :mod:`anatomy` stays light.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anatomy.catalogue import CELL_TYPES, LAYER_BOUNDS_UM, LAYERS
from anatomy.describe import depth_profile, type_voxel_sums
from anatomy.model import StructuralModel

__all__ = ["plot_bouton_calibration", "plot_depth_profiles"]

_BIN_UM = 50.0


def _layer_lines(ax: Any) -> None:
    """Mark layer boundaries (horizontal lines) and label the layers at the right edge."""
    for name in LAYERS:
        lo, hi = LAYER_BOUNDS_UM[name]
        ax.axhline(hi, color="0.6", lw=0.6, ls="--", zorder=0)
        ax.text(1.0, (lo + hi) / 2, f" {name}", transform=ax.get_yaxis_transform(),
                va="center", ha="left", fontsize=7, color="0.4")
    ax.axhline(0.0, color="0.6", lw=0.6, ls="--", zorder=0)


def plot_depth_profiles(model: StructuralModel) -> Any:
    """Draw somata, VPM boutons and target sites by cortical depth, per cell type.

    Three panels sharing the depth axis (µm below the pia, downwards), each with the layer
    boundaries marked: "Somata" (cortical neurons per 50 µm bin, stacked by cell type, with the
    count per layer in the legend), "VPM boutons" (boutons of all VPM neurons per 50 µm bin)
    and "Target sites" (postsynaptic target sites per bin for each cell type, and ``post_all``,
    the total including unlisted neurons, as a dashed line).

    Parameters
    ----------
    model : StructuralModel

    Returns
    -------
    matplotlib.figure.Figure
        With three axes titled "Somata", "VPM boutons" and "Target sites".
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 6.5), layout="constrained")
    ax_soma, ax_vpm, ax_post = fig.subplots(1, 3, sharey=True)
    from matplotlib import colormaps

    palette = colormaps["tab20"]
    colors = {name: palette(i / 20) for i, name in enumerate(CELL_TYPES)}
    nrn = model.neurons
    ct = np.asarray(nrn.cell_type, np.int64)
    cortical = np.asarray(nrn.layer) >= 0
    depth = np.asarray(nrn.depth_um, np.float64)
    top = max(float(np.max(model.depth_um())) + _BIN_UM / 2, LAYER_BOUNDS_UM["L6B"][1])
    edges = np.arange(0.0, top + _BIN_UM, _BIN_UM)
    centers = edges[:-1] + _BIN_UM / 2

    left = np.zeros(len(centers))
    for code, name in enumerate(CELL_TYPES):
        sel = cortical & (ct == code)
        if not sel.any():
            continue
        h, _ = np.histogram(depth[sel], bins=edges)
        ax_soma.barh(centers, h, height=_BIN_UM * 0.9, left=left, color=colors[name],
                     label=f"{name} ({int(sel.sum()):,})")
        left += h
    per_layer = ", ".join(
        f"{name} {int((np.asarray(nrn.layer) == i).sum()):,}" for i, name in enumerate(LAYERS)
    )
    ax_soma.set_title("Somata")
    ax_soma.set_xlabel("neurons per 50 µm")
    ax_soma.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
    ax_soma.legend(fontsize=7, loc="lower right", title="cell type (n)", title_fontsize=7)
    ax_soma.annotate(per_layer, (0.0, -0.11), xycoords="axes fraction", fontsize=6, va="top")

    pre_types = type_voxel_sums(model, "pre")
    _, vpm = depth_profile(model, pre_types[CELL_TYPES.index("VPM")], bin_um=_BIN_UM)
    n_vpm = int((ct == CELL_TYPES.index("VPM")).sum())
    ax_vpm.plot(vpm[: len(centers)], centers, color=colors["VPM"], lw=2,
                label=f"VPM ({n_vpm} neurons)")
    ax_vpm.fill_betweenx(centers, 0, vpm[: len(centers)], color=colors["VPM"], alpha=0.2)
    ax_vpm.set_title("VPM boutons")
    ax_vpm.set_xlabel("boutons per 50 µm")
    ax_vpm.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
    ax_vpm.legend(fontsize=7, loc="lower right")

    post_types = type_voxel_sums(model, "post")
    for code, name in enumerate(CELL_TYPES):
        if post_types[code].sum() <= 0:
            continue
        _, prof = depth_profile(model, post_types[code], bin_um=_BIN_UM)
        prof = np.where(prof > 0, prof, np.nan)  # log axis: leave empty bins blank
        ax_post.plot(prof[: len(centers)], centers, color=colors[name], lw=1.2, label=name)
    _, total = depth_profile(model, np.asarray(model.post_all), bin_um=_BIN_UM)
    ax_post.plot(total[: len(centers)], centers, color="k", ls="--", lw=1.5,
                 label="post_all (all neurons)")
    ax_post.set_xscale("log")
    ax_post.set_title("Target sites")
    ax_post.set_xlabel("target sites per 50 µm slab")
    ax_post.legend(fontsize=7, loc="lower right", ncol=2)

    for ax in (ax_soma, ax_vpm, ax_post):
        _layer_lines(ax)
    ax_soma.set_xlim(left=0)
    ax_vpm.set_xlim(left=0)
    ax_soma.set_ylim(top, 0)
    ax_soma.set_ylabel("depth below pia (µm)")
    preset = model.attrs.get("preset", model.attrs.get("source", "model"))
    fig.suptitle(f"Depth profiles: {preset} ({model.n_neurons:,} neurons, "
                 f"{model.n_voxels:,} voxels)")
    return fig


def plot_bouton_calibration(model: StructuralModel) -> Any:
    """The model's VPM bouton depth profile against the dense model's (fractions per 50 µm).

    The reference is the shipped calibration profile (:mod:`anatomy.calibration`); the layer
    boundaries of the target's layer groups are drawn as horizontal lines.
    """
    from matplotlib.figure import Figure

    from anatomy.calibration import (
        BOUTON_LAYER_GROUPS,
        bouton_depth_profile,
        read_profile_csv,
        targets_path,
    )

    depth, weight = read_profile_csv(targets_path("vpm-boutons-by-depth.csv"))
    prof = bouton_depth_profile(model)
    g = model.grid
    starts = g.origin_um[2] + np.arange(g.shape[2]) * g.spacing_um
    fig = Figure(figsize=(4.5, 6.0))
    ax = fig.add_subplot()
    ax.plot(weight / weight.sum(), depth + 25.0, "k-", lw=2, label="dense model (Udvary 2022)")
    if prof.sum() > 0:
        ax.plot(prof / prof.sum(), starts + g.spacing_um / 2, "o-", color="C1", ms=3,
                label=f"this model ({model.attrs.get('preset', 'store')})")
    for lo, _hi in BOUTON_LAYER_GROUPS.values():
        ax.axhline(lo, color="0.8", lw=0.8)
    for name, (lo, hi) in BOUTON_LAYER_GROUPS.items():
        ax.text(0.98, (lo + hi) / 2, name, transform=ax.get_yaxis_transform(), ha="right",
                va="center", color="0.4", fontsize=8)
    ax.set_ylim(2000, 0)
    top = max(float(weight.max() / weight.sum()),
              float(prof.max() / prof.sum()) if prof.sum() > 0 else 0.0)
    ax.set_xlim(0.0, 1.3 * top)  # room for the layer labels at the right
    ax.set_xlabel("fraction of VPM boutons per 50 µm")
    ax.set_ylabel("depth below pia (µm)")
    ax.set_title("VPM bouton depth profile")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
