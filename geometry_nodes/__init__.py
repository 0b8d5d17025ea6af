"""Node-tree builders: every geometry-nodes group and shader material nnvis creates, as Python.

Each module builds one group ("NNVis Layer", "NNVis Connections", "NNVis Epoch Counter", the
colour legend) or the materials, with ``builder.TreeBuilder``: an ``INPUTS`` table for the
group's interface, ``ensure_*()`` that reuses a group built by the current ``VERSION`` (older ones
are rebuilt), and a ``build_*()`` cut into ``section(...)`` frames and ending in ``arrange()``, so
the tree reads left to right in Blender's node editor. Everything that changes per frame
(sample, epoch, layout, collapse, thresholds) is a group input, evaluated by Blender without
Python: a saved .blend plays and renders on a machine without nnvis.
"""
