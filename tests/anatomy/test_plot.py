"""Tests of the depth-profile figure."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from anatomy.catalogue import LAYER_BOUNDS_UM
from anatomy.model import StructuralModel
from anatomy.plot import plot_depth_profiles


def test_plot_depth_profiles_axes(tiny_model: StructuralModel, tmp_path: object) -> None:
    fig = plot_depth_profiles(tiny_model)
    assert isinstance(fig, Figure)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["Somata", "VPM boutons", "Target sites"]
    assert "depth" in axes[0].get_ylabel()
    bottom, top = axes[0].get_ylim()
    assert top == 0 and bottom >= LAYER_BOUNDS_UM["L6B"][1]  # depth grows downwards
    boundaries = {hi for _, hi in LAYER_BOUNDS_UM.values()}
    for ax in axes:
        ys = {float(np.asarray(line.get_ydata())[0]) for line in ax.get_lines()
              if len(np.unique(line.get_ydata())) == 1}
        assert boundaries <= ys, ax.get_title()  # layer boundaries are marked
    labels = axes[2].get_legend_handles_labels()[1]
    assert "L5PT" in labels and "L4ss" in labels and any("post_all" in lb for lb in labels)
    assert any("VPM" in lb for lb in axes[1].get_legend_handles_labels()[1])
    # the VPM curve carries all VPM boutons
    vpm_line = axes[1].get_lines()[0]
    assert np.nansum(vpm_line.get_xdata()) > 0
    fig.savefig(tmp_path / "depth.png")  # type: ignore[operator]
