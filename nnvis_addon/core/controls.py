"""The network controls: one table, from which everything else is derived.

A network control is a custom property of the network's root (so it animates, shows the
keyframe dot and undoes). From :data:`NETWORK_CONTROLS` come the root's properties and their
UI ranges (``blender/scene.py``), the drivers that carry each control into the layer and
connection modifiers or into the (sample, epoch, step) their materials show, the panel rows
(``panels.py``) and the import options' defaults (``ImportOptions`` and the import operator).
To add a control: add a row here, and the input it drives to the node group
(``geometry_nodes/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import names

# The keys of the network controls (custom properties of the root).
SAMPLE = "nnvis_sample"
EPOCH = "nnvis_epoch"
STEP_EPOCHS = "nnvis_step_epochs"
LAYER_SPACING = "nnvis_layer_spacing"
CELL_SIZE = "nnvis_cell_size"
NORMALIZE_GLOBALLY = "nnvis_normalize_globally"
EDGE_THRESHOLD = "nnvis_edge_threshold"
BUNDLE_STRENGTH = "nnvis_bundle_strength"
TRACE_STRENGTH = names.TRACE_STRENGTH  # also the property the materials read on each object
GRADCAM = names.GRADCAM_STRENGTH       # also the property the overlaid units' material reads
GRADCAM_OF_LABEL = names.GRADCAM_OF_LABEL  # (these two keep their names from before saliency)
EVIDENCE_MAP = names.EVIDENCE_MAP


@dataclass(frozen=True)
class NetworkControl:
    key: str                          # custom property on the root
    label: str                        # panel and operator label
    default: Any                      # also the import option's default
    description: str
    min: float | None = None
    max: float | None = None          # None: no limit, or set from the export (sample, epoch)
    layer_input: str | None = None    # the "NNVis Layer" input it drives, if any
    connection_input: str | None = None  # the "NNVis Connections" input it drives, if any
    # Its index in the (sample, epoch, step) that layers and connections show: a custom property
    # of theirs the materials read (geometry_nodes/atlas_nodes.py SHOWN_PROPERTY), if any.
    shown_index: int | None = None
    section: str = "network"          # panel section: "network", "edges" or "explain"
    # What its whole values 0, 1, ... mean, for a control that picks one of a few things (the
    # panel names the nearest beside the label); fractions blend between them.
    choices: tuple[str, ...] = ()


NETWORK_CONTROLS: tuple[NetworkControl, ...] = (
    NetworkControl(SAMPLE, "Sample", 0, "Input sample shown by every layer", min=0,
                   layer_input="Sample", shown_index=0),
    NetworkControl(EPOCH, "Epoch", 0.0, "Recorded epoch index; fractions interpolate",
                   min=0.0, shown_index=1),
    NetworkControl(STEP_EPOCHS, "Step Epochs", False,
                   "Hold each recorded epoch instead of interpolating", shown_index=2),
    NetworkControl(LAYER_SPACING, "Layer Spacing", 3.0,
                   "Distance between consecutive layers", min=0.0),
    NetworkControl(CELL_SIZE, "Cell Size", 0.1, "Distance between neighbouring cells",
                   min=0.001, layer_input="Cell Size"),
    NetworkControl(NORMALIZE_GLOBALLY, "Global Colour Range", False,
                   "Colour every layer by the network-wide range",
                   layer_input="Normalize Globally"),
    NetworkControl(EDGE_THRESHOLD, "Edge Threshold", 0.0,
                   "Hide connections weaker than this fraction of the strongest one in their "
                   "layer pair", min=0.0, max=1.0, connection_input="Threshold",
                   section="edges"),
    NetworkControl(BUNDLE_STRENGTH, "Bundling Strength", 1.0,
                   "Bundling strength used by Re-bundle (0: straight)", min=0.0, max=5.0,
                   section="edges"),
    NetworkControl(TRACE_STRENGTH, "Trace", 0.0,
                   "How strongly a traced cell's field and contributing paths are highlighted and "
                   "the rest dimmed (0: not at all); keyframe it to fade the trace in and out",
                   min=0.0, max=1.0, section="explain"),
    NetworkControl(GRADCAM, "Class Evidence", 0.0,
                   "How strongly the class evidence map (Evidence Map: Grad-CAM or saliency) "
                   "covers the input picture, and Grad-CAM the last convolution (0: not at all); "
                   "it plays with the epochs; keyframe it to fade it in",
                   min=0.0, max=1.0, section="explain"),
    NetworkControl(EVIDENCE_MAP, "Evidence Map", 0.0,
                   "Which map the input picture shows: 0 Grad-CAM, 1 saliency (input gradients); "
                   "fractions blend. The last convolution's Grad-CAM fades out towards 1; a model "
                   "without Grad-CAM shows saliency whatever this says",
                   min=0.0, max=1.0, section="explain", choices=("Grad-CAM", "Saliency")),
    NetworkControl(GRADCAM_OF_LABEL, "Evidence of True Label", False,
                   "Show the evidence for each sample's true label instead of the predicted "
                   "class (when the export recorded labels)", section="explain"),
)

CONTROLS_BY_KEY = {control.key: control for control in NETWORK_CONTROLS}


def default(key: str):
    """The default value of a network control (and of the import option that sets it)."""
    return CONTROLS_BY_KEY[key].default


def layer_drivers() -> dict[str, str]:
    """Control key -> the layer modifier input it drives."""
    return {c.key: c.layer_input for c in NETWORK_CONTROLS if c.layer_input}


def connection_drivers() -> dict[str, str]:
    """Control key -> the connection modifier input it drives."""
    return {c.key: c.connection_input for c in NETWORK_CONTROLS if c.connection_input}


def shown_drivers() -> dict[str, int]:
    """Control key -> its index in the shown (sample, epoch, step) of layers and connections."""
    return {c.key: c.shown_index for c in NETWORK_CONTROLS if c.shown_index is not None}


def choice_label(key: str, value) -> str:
    """A control's label, with the choice its value is nearest to when it picks between a few
    (``"Evidence Map: Saliency"``)."""
    control = CONTROLS_BY_KEY[key]
    if not control.choices:
        return control.label
    index = min(max(round(float(value)), 0), len(control.choices) - 1)
    return f"{control.label}: {control.choices[index]}"


def panel_rows(section: str) -> list[tuple[str, str]]:
    """(key, label) of the controls the panel shows in ``section``."""
    return [(c.key, c.label) for c in NETWORK_CONTROLS if c.section == section]
