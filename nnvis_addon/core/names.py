"""The names nnvis writes into a .blend file: one home for each, so a rename is one edit.

Custom properties on objects and scenes (``nnvis_*`` keys), the names of nnvis's modifiers and
node groups, and the markers that say what an object is. Pure strings, importable without bpy.
"""

from __future__ import annotations

# -- what an object is (custom-property markers) ----------------------------------------------
ROOT_MARKER = "nnvis_network"        # on a network's root empty
LAYER_MARKER = "nnvis_layer"         # on a layer object; value: the layer's name in the export
CONNECTION_MARKER = "nnvis_connection"
CAMERA_MARKER = "nnvis_camera"       # on the camera an import staged
COUNTER_MARKER = "nnvis_counter"     # on the epoch counter
LEGEND_MARKER = "nnvis_legend"       # on the colour legend
LABEL_MARKER = "nnvis_label"         # on a unit's label object; value: its layer's name
WORLD_MARKER = "nnvis_world"         # on the "NNVis World"

# -- ownership: what an import made, recorded when it made it ----------------------------------
ROOT_LINK = "nnvis_root"             # on every object a network owns: pointer to its root
PARTS = "nnvis_parts"                # on the root: pointers to everything the import made
PART_COLLECTION = "collection"       # PARTS keys: the network's collection,
PART_CAMERA = "camera"               # its staged camera, key light and epoch counter,
PART_LIGHT = "light"
PART_COUNTER = "counter"
PART_LEGEND = "legend"               # its colour legend
PART_LAYERS = "layers"               # its layer objects (in layer order)
PART_CONNECTIONS = "connections"     # its connection objects (in build order)
PART_LABELS = "labels"               # and its label objects (in layer order)
PART_ANSWER = "answer"               # the answer's bars and class names (blender/answer.py)
PART_OPERATION = "operation"         # a close-up of one operation (blender/operation.py)
OPERATION_MARKER = "nnvis_operation"  # on a close-up's objects: their role; on the close-up:
#                                      what it shows (layer, channel, row, col, sample, ...)
EXTRA_PARTS = (PART_ANSWER, PART_OPERATION)  # lists of objects added to a network after import

# -- what a scene had before nnvis changed it (restored by Remove Network) ---------------------
SCENE_CAMERA_HISTORY = "nnvis_camera_history"  # scene: cameras replaced by a network's, in order
REPLACED_WORLD = "nnvis_replaced_world"        # NNVis World: the world the scene had before

# -- facts about a network, on its root --------------------------------------------------------
MODEL_NAME = "nnvis_model"
SOURCE_PATH = "nnvis_source"
EPOCH_NUMBERS = "nnvis_epoch_numbers"
GLOBAL_RANGE = "nnvis_global_range"
WARNINGS = "nnvis_warnings"
PLAYBACK = "nnvis_playback"
IMPORT_OPTIONS = "nnvis_import_options"  # the options it was imported with (for re-import)

# -- facts about a layer, on its object ---------------------------------------------------------
LAYER_TYPE = "nnvis_layer_type"
LAYER_INDEX = "nnvis_layer_index"
OUTPUT_SHAPE = "nnvis_output_shape"
DISPLAY_STRIDE = "nnvis_display_stride"
FOLDED = "nnvis_folded"              # the layers folded into a unit, comma-separated
BLOCK = "nnvis_block"                # an unknown layer type drawn as one block (a box)
BLOCK_NAME = "nnvis_block_name"      # the block (core/blocks.py) a unit belongs to
BLOCK_MEMBERS = "nnvis_block_members"  # on a block's output unit: the block's units
ATLAS_MARKER = "nnvis_atlas"                # on a network's value atlas images
LAYER_COLLAPSE = "nnvis_collapse"          # on a layer: its Collapse control, 0..1, animatable
BLOCK_COLLAPSED = "nnvis_block_collapsed"  # on a block's output unit: 0..1, animatable

# -- facts about a unit's label, on its object -----------------------------------------------
LABEL_OF = "nnvis_label_of"          # pointer to the layer object it labels
LABEL_UNPLACED = "nnvis_label_unplaced"  # 1 while nnvis has no place for it (no room, unit hidden)
LABEL_SHOWN = "nnvis_show_label"     # the user's switch (the panel's "Show Label")
LABEL_LIFT = "nnvis_label_lift"      # how far above its layer's top it stands

# -- facts about a connection, on its object ---------------------------------------------------
SOURCE_LAYER = "nnvis_source_layer"
TARGET_LAYER = "nnvis_target_layer"
LINK_KIND = "nnvis_link_kind"
EDGE_RANKING = "nnvis_edge_ranking"
SKIPPED_COLUMNS = "nnvis_skipped_columns"
SKIP_ROUTE = "nnvis_skip_route"
TURN_BULGE = "nnvis_turn_bulge"  # a link between two rows of a folded network: its U's reach

# -- the answer beside the output unit (blender/answer.py) -------------------------------------
ANSWER_MARKER = "nnvis_answer"       # on the answer's bars object and its class-name texts

# -- the epoch counter -------------------------------------------------------------------------
COUNTER_METRICS = "nnvis_counter_metrics"

# -- the NNVis panel's scene properties ----------------------------------------------------------
PANEL_NETWORK = "nnvis_network"        # the network the panel shows (a scene PointerProperty)
PANEL_LAYER_INDEX = "nnvis_layer_index"  # the layer picked in its list

# -- an object's visibility flags (what hiding a layer sets; connections and labels follow) ----
VISIBILITY_FLAGS = ("hide_viewport", "hide_render")

# -- modifiers ----------------------------------------------------------------------------------
LAYER_MODIFIER = "NNVis Layer"
CONNECTION_MODIFIER = "NNVis Connections"
COUNTER_MODIFIER = "NNVis Epoch Counter"
LEGEND_MODIFIER = "NNVis Colour Legend"

# -- the name of the collection an import makes -------------------------------------------------
COLLECTION_PREFIX = "NNVis "

# -- Explain a prediction: a traced cell (blender/trace.py, core/trace.py) ---------------------
TRACE_ATTRIBUTE = "nnvis_trace"      # per cell (layer meshes, point) and per edge (connection
                                     # curves, curve domain): 0 dimmed .. 1 highlighted
TRACE_STRENGTH = "nnvis_trace_strength"  # on every layer and connection object: how strongly
                                     # the materials show the trace, driven by the root's control
TRACE_RECORD = "nnvis_traced"        # on the root: what is traced (unit, selection, sample...)

# -- Explain a prediction: the class evidence overlay (Grad-CAM, saliency; core/evidence.py) ---
GRADCAM_STRENGTH = "nnvis_gradcam"   # root control and, on the units showing the overlay, the
                                     # property the cell material mixes it by (driven by it);
                                     # named before saliency came: the strength of either map
GRADCAM_OF_LABEL = "nnvis_gradcam_of_label"  # the same: 1 shows the true label's map
EVIDENCE_MAP = "nnvis_evidence_map"  # the same: which map, 0 Grad-CAM .. 1 saliency
