"""Every numeric assumption of the synthetic barrel-cortex generator, with its source, as data.

The generator (:mod:`anatomy.generate`) reads its numbers from here and nowhere else, and
:func:`render_markdown` turns the same data into the tables of ``docs/anatomy-model.md``, so the
documentation cannot drift from the code.

Three kinds of entries:

* :data:`SCALARS` - single numbers (:class:`Parameter`): geometry, densities, the ``post_all``
  depth profile.
* :data:`LAYER_COMPOSITION` - neurons per layer of one barrel column (Meyer et al. 2010) and the
  split of each layer into cell types (:class:`LayerComposition`).
* :data:`DENDRITES` and :data:`AXONS` - per cell type, the mean number of postsynaptic target
  sites (spines) or presynaptic boutons per neuron and their spatial layout as a mixture of
  compartments (:class:`ArborSpec`, :class:`Compartment`).

Citations are abbreviated in :data:`REFERENCES`. Values marked "model choice" are not measured
quantities; they are chosen within the published ranges to reproduce the published profiles the
tests check, and say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from anatomy.catalogue import LAYER_BOUNDS_UM

__all__ = [
    "AXONS",
    "CORTEX_BOTTOM_UM",
    "DENDRITES",
    "LAYER_COMPOSITION",
    "REFERENCES",
    "SCALARS",
    "ArborSpec",
    "Compartment",
    "LayerComposition",
    "Parameter",
    "render_markdown",
    "scalar",
]

#: Depth of the white-matter border (bottom of L6B), µm below the pia.
CORTEX_BOTTOM_UM: float = LAYER_BOUNDS_UM["L6B"][1]

#: Abbreviated citations used in the ``source`` fields.
REFERENCES: Mapping[str, str] = MappingProxyType({
    "Meyer2010": (
        "Meyer HS, Wimmer VC, Oberlaender M, de Kock CPJ, Sakmann B, Helmstaedter M (2010). "
        "Number and laminar distribution of neurons in a thalamocortical projection column of "
        "rat vibrissal cortex. Cereb Cortex 20:2277-2286. doi:10.1093/cercor/bhq067"
    ),
    "Meyer2011": (
        "Meyer HS, Schwarz D, Wimmer VC, et al. (2011). Inhibitory interneurons in a cortical "
        "column form hot zones of inhibition in layers 2 and 5A. PNAS 108:16807-16812. "
        "doi:10.1073/pnas.1113648108"
    ),
    "Meyer2013": (
        "Meyer HS, Egger R, Guest JM, Foerster R, Reissl S, Oberlaender M (2013). Cellular "
        "organization of cortical barrel columns is whisker-specific. PNAS 110:19113-19118. "
        "doi:10.1073/pnas.1312691110"
    ),
    "Wimmer2010": (
        "Wimmer VC, Bruno RM, de Kock CPJ, Kuner T, Sakmann B (2010). Dimensions of a "
        "projection column and architecture of VPM and POm axons in rat vibrissal cortex. "
        "Cereb Cortex 20:2265-2276. doi:10.1093/cercor/bhq068"
    ),
    "Oberlaender2012": (
        "Oberlaender M, de Kock CPJ, Bruno RM, et al. (2012). Cell type-specific "
        "three-dimensional structure of thalamocortical circuits in a column of rat vibrissal "
        "cortex. Cereb Cortex 22:2375-2391. doi:10.1093/cercor/bhr317"
    ),
    "Narayanan2015": (
        "Narayanan RT, Egger R, Johnson AS, et al. (2015). Beyond columnar organization: cell "
        "type- and target layer-specific principles of horizontal axon projection patterns in "
        "rat vibrissal cortex. Cereb Cortex 25:4450-4468. doi:10.1093/cercor/bhv053"
    ),
    "Narayanan2017": (
        "Narayanan RT, Udvary D, Oberlaender M (2017). Cell type-specific structural "
        "organization of the six layers in rat barrel cortex. Front Neuroanat 11:91. "
        "doi:10.3389/fnana.2017.00091"
    ),
    "Udvary2022": (
        "Udvary D, Harth P, Macke JH, Hege H-C, de Kock CPJ, Sakmann B, Oberlaender M (2022). "
        "The impact of neuronal structure on cortical network architecture. Cell Rep "
        "39:110677. doi:10.1016/j.celrep.2022.110677"
    ),
    "Feldmeyer2012": (
        "Feldmeyer D (2012). Excitatory neuronal connectivity in the barrel cortex. Front "
        "Neuroanat 6:24. doi:10.3389/fnana.2012.00024"
    ),
    "DeFelipe2002": (
        "DeFelipe J, Alonso-Nanclares L, Arellano JI (2002). Microstructure of the neocortex: "
        "comparative aspects. J Neurocytol 31:299-316. doi:10.1023/A:1024130211265"
    ),
})


@dataclass(frozen=True, slots=True, kw_only=True)
class Parameter:
    """One documented number.

    Parameters
    ----------
    name : str
        Identifier used by the generator (``snake_case``).
    value : float
        The number, in ``unit``.
    unit : str
        Unit (``"µm"``, ``"neurons"``, ``"1"`` for fractions, ...).
    source : str
        Key(s) into :data:`REFERENCES`, or ``"model choice"``.
    note : str
        What the number means and why it has this value.
    """

    name: str
    value: float
    unit: str
    source: str
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerComposition:
    """Neurons of one layer of one barrel column and their split into cell types.

    ``type_fractions`` maps cell-type names to fractions of the layer's neurons (summing to 1,
    inhibitory ``INH`` included).
    """

    layer: str
    n_neurons: int
    type_fractions: Mapping[str, float]
    source: str
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Compartment:
    """One spatial component of an arbor, as a density of boutons or target sites.

    Tangentially the density is a 2-D Gaussian of standard deviation ``sigma_xy_um`` around the
    arbor's center (the soma, or for VPM axons the barrel position). Along the depth axis it is
    either a Gaussian (``kind="gauss"``) centred at ``center_um`` (``None``: the soma depth)
    with standard deviation ``sigma_z_um``, or uniform (``kind="uniform"``) between ``lo_um``
    and ``hi_um`` (``None``: the soma depth). Depths are reflected into ``confine_um`` (upper,
    lower), so arbors never cross the pia and e.g. spiny-stellate dendrites stay in L4.
    """

    name: str
    fraction: float
    sigma_xy_um: float
    kind: Literal["gauss", "uniform"] = "gauss"
    sigma_z_um: float = 0.0
    center_um: float | None = None
    lo_um: float | None = None
    hi_um: float | None = None
    confine_um: tuple[float, float] = (0.0, CORTEX_BOTTOM_UM)


@dataclass(frozen=True, slots=True, kw_only=True)
class ArborSpec:
    """Dendrite (target sites) or axon (boutons) of one cell type.

    ``mean_count`` is the mean number of sites per neuron before clipping at the grid border,
    drawn per neuron from a log-normal distribution with coefficient of variation ``cv``.
    Sites are placed in segments (a short piece of branch that lies in one voxel) carrying
    ``1 + Poisson(sites_per_segment - 1)`` sites each, so counts per voxel are clustered like
    those of a voxelized reconstruction rather than Poisson.
    """

    cell_type: str
    mean_count: float
    cv: float
    compartments: tuple[Compartment, ...]
    source: str
    note: str = ""
    sites_per_segment: float = 1.0


def _layer(name: str) -> tuple[float, float]:
    return LAYER_BOUNDS_UM[name]


# --------------------------------------------------------------------------------------------
# scalars
# --------------------------------------------------------------------------------------------
SCALARS: tuple[Parameter, ...] = (
    Parameter(
        name="voxel_um", value=50.0, unit="µm", source="Udvary2022",
        note="Edge length of the cubic voxels of the dense structural model.",
    ),
    Parameter(
        name="grid_depth_um", value=2000.0, unit="µm", source="model choice",
        note="Depth covered by the grid: the whole cortex (pia to 1973 µm) plus the top of the "
        "white matter, so every layer lies inside.",
    ),
    Parameter(
        name="column_diameter_um", value=380.0, unit="µm", source="Meyer2010; Wimmer2010",
        note="Diameter of the (circular) C2 column footprint; published C2 barrel diameters lie "
        "between 300 and 400 µm. With 19,109 neurons over 1973 µm this gives a mean density of "
        "about 85,000 neurons per mm^3.",
    ),
    Parameter(
        name="column_pitch_um", value=450.0, unit="µm", source="Wimmer2010; model choice",
        note="Centre-to-centre distance of neighbouring barrel columns in the `field` preset "
        "(barrel diameter plus a septum of about 70 µm).",
    ),
    Parameter(
        name="septum_width_um", value=100.0, unit="µm", source="model choice",
        note="Width of the septal ring modelled around each column (septa between barrels are "
        "about 50-150 µm wide); neurons whose soma lies in it have region `septum`.",
    ),
    Parameter(
        name="septum_listed_fraction", value=0.3, unit="1", source="model choice",
        note="Fraction of the septal neurons listed individually, relative to the column's "
        "per-layer density (the cell-type mix is the column's). The target sites of the "
        "unlisted ones are part of the post_all background.",
    ),
    Parameter(
        name="vpm_per_barreloid", value=275.0, unit="neurons", source="Meyer2013; Meyer2010",
        note="Thalamocortical VPM neurons in the C2 barreloid (published 250-300).",
    ),
    Parameter(
        name="vpm_soma_depth_um", value=5000.0, unit="µm", source="model choice",
        note="Nominal depth of VPM somata below the pia (the thalamus lies several mm below the "
        "cortex, outside the grid; only their cortical axons are in the model).",
    ),
    Parameter(
        name="vpm_offset_sigma_um", value=60.0, unit="µm", source="Oberlaender2012; model choice",
        note="Standard deviation of the tangential offset of a VPM axon's centre from its "
        "barrel's centre (topographic scatter within the barrel).",
    ),
    Parameter(
        name="vpm_boutons_per_axon", value=36000.0, unit="boutons",
        source="Udvary2022 (calibration target `vpm-bouton-depth`)",
        note="Mean boutons of one VPM axon in the cortex: the dense model's VPM bouton profile "
        "holds 218,128 boutons for 14 VPM neurons (15,580 each). Boutons that fall outside "
        "the grid are dropped.",
    ),
    Parameter(
        name="vpm_axon_sigma_xy_um", value=280.0, unit="µm",
        source="Oberlaender2012; calibrated to `L4-septum/L4`",
        note="Tangential standard deviation of a VPM axon's boutons in L3/L4 around its "
        "centre. VPM axons branch beyond their barrel into the septa; the value is set so "
        "that septal L4 cells are innervated nearly as often as barrel cells, as in the dense "
        "model (ratio 0.89).",
    ),
    Parameter(
        name="vpm_axon_deep_sigma_xy_um", value=325.0, unit="µm",
        source="Oberlaender2012; model choice",
        note="Tangential standard deviation of the infragranular (L5B/L6A) and sparse VPM "
        "boutons, wider than in L4 (Oberlaender2012: the infragranular VPM collaterals spread "
        "beyond the column).",
    ),
    Parameter(
        name="dendrite_sites_per_segment", value=40.0, unit="sites", source="Narayanan2017; "
        "calibrated to the dense model's shared voxels per pair",
        note="Mean target sites per dendritic segment, the piece of branch that crosses one "
        "50 µm voxel: about 40 µm of spiny dendrite at about 1 spine per µm (Narayanan2017), "
        "placed as one unit in one voxel. With it, VPM-cortex pairs share about 10-50 voxels, "
        "as in the dense model (14-37); with 8 they shared 140-470.",
    ),
    Parameter(
        name="axon_boutons_per_segment", value=15.0, unit="boutons", source="Oberlaender2012; "
        "Narayanan2015; calibrated to the dense model's shared voxels per pair",
        note="Mean boutons per axonal segment, the piece of branch that crosses one 50 µm "
        "voxel: about 60 µm of axon at about 0.25 boutons per µm, placed as one unit in one "
        "voxel (so a VPM axon occupies about 1,600 voxels with about 16 boutons each).",
    ),
)


def scalar(name: str) -> float:
    """Value of the scalar parameter ``name`` (see :data:`SCALARS`).

    Examples
    --------
    >>> scalar("voxel_um")
    50.0
    """
    for p in SCALARS:
        if p.name == name:
            return p.value
    raise KeyError(f"no generator parameter {name!r}; known: {', '.join(p.name for p in SCALARS)}")


_DEND_SEG = scalar("dendrite_sites_per_segment")
_AX_SEG = scalar("axon_boutons_per_segment")
_VPM_XY = scalar("vpm_axon_sigma_xy_um")
_VPM_XY_DEEP = scalar("vpm_axon_deep_sigma_xy_um")

# --------------------------------------------------------------------------------------------
# neurons per layer and cell-type split
# --------------------------------------------------------------------------------------------
_COMP_SOURCE = "Meyer2010 (counts); Meyer2011 (inhibitory fractions); Narayanan2017 (types)"

LAYER_COMPOSITION: tuple[LayerComposition, ...] = (
    LayerComposition(
        layer="L1", n_neurons=63, type_fractions={"INH": 1.0}, source=_COMP_SOURCE,
        note="Layer 1 neurons are GABAergic.",
    ),
    LayerComposition(
        layer="L2", n_neurons=2039, type_fractions={"L2PY": 0.84, "INH": 0.16},
        source=_COMP_SOURCE, note="Inhibitory 'hot zone' of L2 (Meyer2011).",
    ),
    LayerComposition(
        layer="L3", n_neurons=3735, type_fractions={"L3PY": 0.90, "INH": 0.10},
        source=_COMP_SOURCE,
    ),
    LayerComposition(
        layer="L4", n_neurons=4447,
        type_fractions={"L4ss": 0.51, "L4sp": 0.27, "L4PY": 0.14, "INH": 0.08},
        source=_COMP_SOURCE,
        note="Spiny stellates dominate the barrel; star pyramids and pyramids the rest.",
    ),
    LayerComposition(
        layer="L5A", n_neurons=1737, type_fractions={"L5IT": 0.76, "L5PT": 0.07, "INH": 0.17},
        source=_COMP_SOURCE,
        note="Slender-tufted (intratelencephalic) cells; inhibitory hot zone of L5A (Meyer2011).",
    ),
    LayerComposition(
        layer="L5B", n_neurons=2235, type_fractions={"L5PT": 0.50, "L5IT": 0.38, "INH": 0.12},
        source=_COMP_SOURCE, note="Thick-tufted (pyramidal-tract) cells are about half of L5B.",
    ),
    LayerComposition(
        layer="L6A", n_neurons=3786,
        type_fractions={"L6CT": 0.51, "L6CC": 0.32, "L6INV": 0.09, "INH": 0.08},
        source=_COMP_SOURCE,
        note="Corticothalamic cells dominate L6A; corticocortical and inverted cells the rest.",
    ),
    LayerComposition(
        layer="L6B", n_neurons=1066,
        type_fractions={"L6INV": 0.45, "L6CC": 0.27, "L6CT": 0.19, "INH": 0.09},
        source=_COMP_SOURCE,
    ),
)

# --------------------------------------------------------------------------------------------
# dendrites: postsynaptic target sites
# --------------------------------------------------------------------------------------------
_L4 = _layer("L4")
_DEND_SOURCE = "Narayanan2017; Udvary2022 (spine counts); model choice (shapes)"

DENDRITES: Mapping[str, ArborSpec] = MappingProxyType({
    "L2PY": ArborSpec(
        sites_per_segment=_DEND_SEG, cell_type="L2PY", mean_count=6500.0, cv=0.2, source=_DEND_SOURCE,
        note="Basal dendrites around the soma; apical/oblique dendrites and tuft up to the pia.",
        compartments=(
            Compartment(name="basal", fraction=0.55, sigma_xy_um=90.0, sigma_z_um=60.0),
            Compartment(name="apical", fraction=0.45, sigma_xy_um=80.0, kind="uniform",
                        lo_um=10.0, hi_um=None),
        ),
    ),
    "L3PY": ArborSpec(
        sites_per_segment=_DEND_SEG, cell_type="L3PY", mean_count=7500.0, cv=0.2, source=_DEND_SOURCE,
        note="Basal dendrites in L3, apical trunk and obliques through L2, tuft in L1.",
        compartments=(
            Compartment(name="basal", fraction=0.55, sigma_xy_um=100.0, sigma_z_um=55.0),
            Compartment(name="apical", fraction=0.30, sigma_xy_um=45.0, kind="uniform",
                        lo_um=120.0, hi_um=None),
            Compartment(name="tuft", fraction=0.15, sigma_xy_um=110.0, kind="uniform",
                        lo_um=10.0, hi_um=200.0),
        ),
    ),
    "L4PY": ArborSpec(
        sites_per_segment=_DEND_SEG, cell_type="L4PY", mean_count=5500.0, cv=0.2, source=_DEND_SOURCE,
        note="Basal dendrites in L4, a thin apical dendrite with a small tuft in L1.",
        compartments=(
            Compartment(name="basal", fraction=0.60, sigma_xy_um=80.0, sigma_z_um=55.0),
            Compartment(name="apical", fraction=0.28, sigma_xy_um=35.0, kind="uniform",
                        lo_um=120.0, hi_um=None),
            Compartment(name="tuft", fraction=0.12, sigma_xy_um=90.0, kind="uniform",
                        lo_um=10.0, hi_um=180.0),
        ),
    ),
    "L4sp": ArborSpec(
        sites_per_segment=_DEND_SEG, cell_type="L4sp", mean_count=4500.0, cv=0.2, source=_DEND_SOURCE,
        note="Star pyramids: basal dendrites in L4, an apical dendrite without tuft into L2/3.",
        compartments=(
            Compartment(name="basal", fraction=0.70, sigma_xy_um=75.0, sigma_z_um=50.0,
                        confine_um=(_L4[0] - 60.0, _L4[1])),
            Compartment(name="apical", fraction=0.30, sigma_xy_um=35.0, kind="uniform",
                        lo_um=300.0, hi_um=None),
        ),
    ),
    "L4ss": ArborSpec(
        sites_per_segment=_DEND_SEG, cell_type="L4ss", mean_count=3500.0, cv=0.2, source=_DEND_SOURCE,
        note="Spiny stellates: dendrites confined to L4 (and to their barrel).",
        compartments=(
            Compartment(name="basal", fraction=1.0, sigma_xy_um=65.0, sigma_z_um=55.0,
                        confine_um=_L4),
        ),
    ),
    "L5IT": ArborSpec(
        sites_per_segment=_DEND_SEG, cell_type="L5IT", mean_count=9000.0, cv=0.2, source=_DEND_SOURCE,
        note="Slender-tufted: basal dendrites in L5, apical dendrite with obliques in L5A and "
        "L2/3 and a slender tuft in L1/L2; like L5PT, no target sites on the trunk in L4.",
        compartments=(
            Compartment(name="basal", fraction=0.55, sigma_xy_um=110.0, sigma_z_um=80.0),
            Compartment(name="apical_L5A", fraction=0.18, sigma_xy_um=40.0, kind="uniform",
                        lo_um=_layer("L5A")[0], hi_um=None),
            Compartment(name="obliques_L23", fraction=0.12, sigma_xy_um=50.0, kind="uniform",
                        lo_um=150.0, hi_um=_layer("L3")[1]),
            Compartment(name="tuft", fraction=0.15, sigma_xy_um=90.0, kind="uniform",
                        lo_um=10.0, hi_um=250.0),
        ),
    ),
    "L5PT": ArborSpec(
        sites_per_segment=_DEND_SEG, cell_type="L5PT", mean_count=24000.0, cv=0.15, source=_DEND_SOURCE,
        note="Thick-tufted: about 24,000 spines; basal dendrites in L5B/L6A, apical trunk with "
        "obliques in L5A and L2/3, a wide tuft in L1/L2. The trunk crosses L4 with few spines "
        "and no obliques (Oberlaender2012), so no target sites are placed there; the tuft "
        "holds over a quarter of the spines.",
        compartments=(
            Compartment(name="basal", fraction=0.40, sigma_xy_um=130.0, sigma_z_um=100.0),
            Compartment(name="apical_L5A", fraction=0.16, sigma_xy_um=50.0, kind="uniform",
                        lo_um=_layer("L5A")[0], hi_um=None),
            Compartment(name="obliques_L23", fraction=0.16, sigma_xy_um=60.0, kind="uniform",
                        lo_um=200.0, hi_um=_layer("L3")[1]),
            Compartment(name="tuft", fraction=0.28, sigma_xy_um=150.0, kind="uniform",
                        lo_um=10.0, hi_um=300.0),
        ),
    ),
    "L6CC": ArborSpec(
        sites_per_segment=_DEND_SEG, cell_type="L6CC", mean_count=6000.0, cv=0.2, source=_DEND_SOURCE,
        note="Corticocortical: basal dendrites in L6, a short apical dendrite into L5.",
        compartments=(
            Compartment(name="basal", fraction=0.65, sigma_xy_um=110.0, sigma_z_um=80.0),
            Compartment(name="apical", fraction=0.35, sigma_xy_um=40.0, kind="uniform",
                        lo_um=950.0, hi_um=None),
        ),
    ),
    "L6INV": ArborSpec(
        sites_per_segment=_DEND_SEG, cell_type="L6INV", mean_count=5000.0, cv=0.2, source=_DEND_SOURCE,
        note="Inverted: basal dendrites around the soma, the main dendrite towards the white "
        "matter.",
        compartments=(
            Compartment(name="basal", fraction=0.70, sigma_xy_um=100.0, sigma_z_um=80.0),
            Compartment(name="inverted", fraction=0.30, sigma_xy_um=40.0, kind="uniform",
                        lo_um=None, hi_um=CORTEX_BOTTOM_UM),
        ),
    ),
    "L6CT": ArborSpec(
        sites_per_segment=_DEND_SEG, cell_type="L6CT", mean_count=5500.0, cv=0.2, source=_DEND_SOURCE,
        note="Corticothalamic: basal dendrites in L6A, an upright apical dendrite into L5A/L4.",
        compartments=(
            Compartment(name="basal", fraction=0.65, sigma_xy_um=90.0, sigma_z_um=75.0),
            Compartment(name="apical", fraction=0.35, sigma_xy_um=35.0, kind="uniform",
                        lo_um=800.0, hi_um=None),
        ),
    ),
    "INH": ArborSpec(
        sites_per_segment=_DEND_SEG, cell_type="INH", mean_count=3500.0, cv=0.3, source=_DEND_SOURCE,
        note="Interneurons: shaft synapses on local, roughly spherical dendrites.",
        compartments=(
            Compartment(name="dendrite", fraction=1.0, sigma_xy_um=90.0, sigma_z_um=90.0),
        ),
    ),
})

# --------------------------------------------------------------------------------------------
# axons: presynaptic boutons inside the modelled volume
# --------------------------------------------------------------------------------------------
_AX_SOURCE = "Narayanan2015; Feldmeyer2012; model choice (bouton counts and shapes)"
_AX_CONFINE = (0.0, 1.0e6)  # reflected at the pia only; below the grid boutons are dropped

DENDRITES_AND_AXONS_NOTE = (
    "Bouton counts are the boutons inside the barrel-column neighbourhood (the local axon); "
    "long-range axon leaving the grid is not modelled."
)

AXONS: Mapping[str, ArborSpec] = MappingProxyType({
    "L2PY": ArborSpec(
        sites_per_segment=_AX_SEG, cell_type="L2PY", mean_count=8000.0, cv=0.3, source=_AX_SOURCE,
        note="Dense local axon in L2/3, a translaminar projection to L5, wide horizontal "
        "collaterals in L2/3.",
        compartments=(
            Compartment(name="local", fraction=0.50, sigma_xy_um=170.0, sigma_z_um=110.0,
                        confine_um=_AX_CONFINE),
            Compartment(name="to_L5", fraction=0.30, sigma_xy_um=200.0, sigma_z_um=130.0,
                        center_um=1100.0, confine_um=_AX_CONFINE),
            Compartment(name="horizontal", fraction=0.20, sigma_xy_um=350.0, sigma_z_um=100.0,
                        confine_um=_AX_CONFINE),
        ),
    ),
    "L3PY": ArborSpec(
        sites_per_segment=_AX_SEG, cell_type="L3PY", mean_count=9000.0, cv=0.3, source=_AX_SOURCE,
        note="Like L2PY with a stronger projection to L5.",
        compartments=(
            Compartment(name="local", fraction=0.45, sigma_xy_um=170.0, sigma_z_um=110.0,
                        confine_um=_AX_CONFINE),
            Compartment(name="to_L5", fraction=0.37, sigma_xy_um=200.0, sigma_z_um=130.0,
                        center_um=1100.0, confine_um=_AX_CONFINE),
            Compartment(name="horizontal", fraction=0.18, sigma_xy_um=350.0, sigma_z_um=100.0,
                        confine_um=_AX_CONFINE),
        ),
    ),
    "L4PY": ArborSpec(
        sites_per_segment=_AX_SEG, cell_type="L4PY", mean_count=6000.0, cv=0.3, source=_AX_SOURCE,
        note="Local L4, columnar projection to L2/3 and to L5A.",
        compartments=(
            Compartment(name="local", fraction=0.40, sigma_xy_um=110.0, sigma_z_um=80.0,
                        confine_um=_AX_CONFINE),
            Compartment(name="to_L23", fraction=0.35, sigma_xy_um=110.0, sigma_z_um=120.0,
                        center_um=420.0, confine_um=_AX_CONFINE),
            Compartment(name="to_L5", fraction=0.25, sigma_xy_um=150.0, sigma_z_um=120.0,
                        center_um=1000.0, confine_um=_AX_CONFINE),
        ),
    ),
    "L4sp": ArborSpec(
        sites_per_segment=_AX_SEG, cell_type="L4sp", mean_count=5500.0, cv=0.3, source=_AX_SOURCE,
        note="Local L4 and a columnar projection to L2/3.",
        compartments=(
            Compartment(name="local", fraction=0.45, sigma_xy_um=100.0, sigma_z_um=75.0,
                        confine_um=_AX_CONFINE),
            Compartment(name="to_L23", fraction=0.45, sigma_xy_um=100.0, sigma_z_um=120.0,
                        center_um=420.0, confine_um=_AX_CONFINE),
            Compartment(name="to_L5", fraction=0.10, sigma_xy_um=130.0, sigma_z_um=100.0,
                        center_um=980.0, confine_um=_AX_CONFINE),
        ),
    ),
    "L4ss": ArborSpec(
        sites_per_segment=_AX_SEG, cell_type="L4ss", mean_count=5000.0, cv=0.3, source=_AX_SOURCE,
        note="Local axon within the barrel and a narrow columnar projection to L2/3.",
        compartments=(
            Compartment(name="local", fraction=0.50, sigma_xy_um=90.0, sigma_z_um=70.0,
                        confine_um=_AX_CONFINE),
            Compartment(name="to_L23", fraction=0.50, sigma_xy_um=90.0, sigma_z_um=120.0,
                        center_um=420.0, confine_um=_AX_CONFINE),
        ),
    ),
    "L5IT": ArborSpec(
        sites_per_segment=_AX_SEG, cell_type="L5IT", mean_count=9000.0, cv=0.3, source=_AX_SOURCE,
        note="Local L5 axon, a projection to L2/3 and wide horizontal collaterals.",
        compartments=(
            Compartment(name="local", fraction=0.50, sigma_xy_um=220.0, sigma_z_um=140.0,
                        confine_um=_AX_CONFINE),
            Compartment(name="to_L23", fraction=0.30, sigma_xy_um=220.0, sigma_z_um=130.0,
                        center_um=350.0, confine_um=_AX_CONFINE),
            Compartment(name="horizontal", fraction=0.20, sigma_xy_um=380.0, sigma_z_um=140.0,
                        confine_um=_AX_CONFINE),
        ),
    ),
    "L5PT": ArborSpec(
        sites_per_segment=_AX_SEG, cell_type="L5PT", mean_count=5000.0, cv=0.3, source=_AX_SOURCE,
        note="Sparse local collaterals in L5/L6 and a few in L2/3; the main axon leaves the "
        "cortex.",
        compartments=(
            Compartment(name="local", fraction=0.85, sigma_xy_um=200.0, sigma_z_um=170.0,
                        confine_um=_AX_CONFINE),
            Compartment(name="to_L23", fraction=0.15, sigma_xy_um=180.0, sigma_z_um=110.0,
                        center_um=320.0, confine_um=_AX_CONFINE),
        ),
    ),
    "L6CC": ArborSpec(
        sites_per_segment=_AX_SEG, cell_type="L6CC", mean_count=7000.0, cv=0.3, source=_AX_SOURCE,
        note="Wide horizontal axon in L6 and a projection to L5.",
        compartments=(
            Compartment(name="horizontal", fraction=0.60, sigma_xy_um=320.0, sigma_z_um=120.0,
                        confine_um=_AX_CONFINE),
            Compartment(name="to_L5", fraction=0.40, sigma_xy_um=250.0, sigma_z_um=140.0,
                        center_um=1150.0, confine_um=_AX_CONFINE),
        ),
    ),
    "L6INV": ArborSpec(
        sites_per_segment=_AX_SEG, cell_type="L6INV", mean_count=5000.0, cv=0.3, source=_AX_SOURCE,
        note="Local axon in L6 with a projection to L5.",
        compartments=(
            Compartment(name="local", fraction=0.80, sigma_xy_um=200.0, sigma_z_um=140.0,
                        confine_um=_AX_CONFINE),
            Compartment(name="to_L5", fraction=0.20, sigma_xy_um=200.0, sigma_z_um=130.0,
                        center_um=1150.0, confine_um=_AX_CONFINE),
        ),
    ),
    "L6CT": ArborSpec(
        sites_per_segment=_AX_SEG, cell_type="L6CT", mean_count=4000.0, cv=0.3, source=_AX_SOURCE,
        note="Local L6 collaterals and a narrow columnar projection to L4 (the main axon goes "
        "to the thalamus).",
        compartments=(
            Compartment(name="local", fraction=0.50, sigma_xy_um=100.0, sigma_z_um=100.0,
                        confine_um=_AX_CONFINE),
            Compartment(name="to_L4", fraction=0.50, sigma_xy_um=90.0, sigma_z_um=100.0,
                        center_um=700.0, confine_um=_AX_CONFINE),
        ),
    ),
    "INH": ArborSpec(
        sites_per_segment=_AX_SEG, cell_type="INH", mean_count=6000.0, cv=0.35, source=_AX_SOURCE,
        note="Dense local axon around the soma plus a vertically elongated (translaminar) part.",
        compartments=(
            Compartment(name="local", fraction=0.80, sigma_xy_um=110.0, sigma_z_um=100.0,
                        confine_um=_AX_CONFINE),
            Compartment(name="vertical", fraction=0.20, sigma_xy_um=80.0, sigma_z_um=300.0,
                        confine_um=_AX_CONFINE),
        ),
    ),
    "VPM": ArborSpec(
        sites_per_segment=_AX_SEG, cell_type="VPM", mean_count=scalar("vpm_boutons_per_axon"),
        cv=0.3, source="Udvary2022 (depth profile and bouton count); Oberlaender2012; "
        "Wimmer2010; calibrated (tangential spread)",
        note="Thalamocortical axon, depth profile fitted to the VPM bouton profile of the dense "
        "model (least squares on its 50 µm bins, calibration target `vpm-bouton-depth`): a core "
        "in deep L4 (760 µm), a broad upper flank through L4 into L3 (620 µm), a second peak at "
        "the L5B/L6A border (1290 µm) and a sparse part from L3 to the white matter, leaving a "
        "trough in L5A. Tangential spread `vpm_axon_sigma_xy_um` (calibrated to the septal "
        "innervation); the deep peak spreads wider.",
        compartments=(
            Compartment(name="L4_core", fraction=0.31, sigma_xy_um=_VPM_XY, sigma_z_um=95.0,
                        center_um=760.0, confine_um=_AX_CONFINE),
            Compartment(name="L4_L3_flank", fraction=0.36, sigma_xy_um=_VPM_XY,
                        sigma_z_um=145.0, center_um=620.0, confine_um=_AX_CONFINE),
            Compartment(name="L5B_L6A", fraction=0.22, sigma_xy_um=_VPM_XY_DEEP,
                        sigma_z_um=175.0, center_um=1290.0, confine_um=_AX_CONFINE),
            Compartment(name="sparse", fraction=0.11, sigma_xy_um=_VPM_XY_DEEP, kind="uniform",
                        lo_um=270.0, hi_um=1975.0, confine_um=_AX_CONFINE),
        ),
    ),
})


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------
def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 or float(v).is_integer() else f"{v:g}"


def _depth_text(c: Compartment) -> str:
    if c.kind == "gauss":
        center = "soma" if c.center_um is None else f"{c.center_um:g} µm"
        return f"Gaussian at {center}, σ {c.sigma_z_um:g} µm"
    lo = "soma" if c.lo_um is None else f"{c.lo_um:g} µm"
    hi = "soma" if c.hi_um is None else f"{c.hi_um:g} µm"
    return f"uniform {lo} to {hi}"


def _arbor_table(specs: Mapping[str, ArborSpec], what: str) -> list[str]:
    lines = [
        f"| cell type | mean {what} / neuron | CV | compartment | fraction | σ tangential (µm) "
        "| depth profile | confined to (µm) | source |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for spec in specs.values():
        for i, c in enumerate(spec.compartments):
            head = (
                f"{spec.cell_type} | {_fmt(spec.mean_count)} | {spec.cv:g}" if i == 0 else " | |"
            )
            confine = "pia" if c.confine_um[1] > 1e5 else f"{c.confine_um[0]:g}-{c.confine_um[1]:g}"
            src = spec.source if i == 0 else ""
            lines.append(
                f"| {head} | {c.name} | {c.fraction:g} | {c.sigma_xy_um:g} | {_depth_text(c)} "
                f"| {confine} | {src} |"
            )
    lines.append("")
    lines.extend(f"- **{s.cell_type}**: {s.note}" for s in specs.values() if s.note)
    return lines


def render_markdown() -> str:
    """The parameter tables as Markdown (the generated part of ``docs/anatomy-model.md``).

    Examples
    --------
    >>> "19,109" in render_markdown()
    True
    """
    total = sum(c.n_neurons for c in LAYER_COMPOSITION)
    out: list[str] = ["### Scalars", "", "| name | value | unit | source | note |",
                      "| --- | --- | --- | --- | --- |"]
    out += [f"| `{p.name}` | {_fmt(p.value)} | {p.unit} | {p.source} | {p.note} |"
            for p in SCALARS]
    out += ["", f"### Neurons per layer of one column ({total:,} in total) and cell types", "",
            "| layer | depth (µm) | neurons | cell types (fraction of the layer) | source | note |",
            "| --- | --- | --- | --- | --- | --- |"]
    for c in LAYER_COMPOSITION:
        lo, hi = LAYER_BOUNDS_UM[c.layer]
        split = ", ".join(f"{t} {f:g}" for t, f in c.type_fractions.items())
        out.append(f"| {c.layer} | {lo:g}-{hi:g} | {c.n_neurons:,} | {split} | {c.source} "
                   f"| {c.note} |")
    n_inh = sum(c.n_neurons * c.type_fractions.get("INH", 0.0) for c in LAYER_COMPOSITION)
    out += ["", f"The per-layer counts sum to {total:,}; the published total is 19,109 (the "
            "difference is the rounding of the published per-layer means). Inhibitory fraction "
            f"overall: {n_inh / total:.3f}.", "",
            "### Dendrites (postsynaptic target sites)", ""]
    out += _arbor_table(DENDRITES, "target sites")
    out += ["", "### Axons (presynaptic boutons)", "", DENDRITES_AND_AXONS_NOTE, ""]
    out += _arbor_table(AXONS, "boutons")
    out += ["", "### References", ""]
    out += [f"- **{k}**: {v}" for k, v in REFERENCES.items()]
    return "\n".join(out) + "\n"
