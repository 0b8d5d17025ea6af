"""The nnvis add-on: reads an export and builds, drives and removes a network's scene in Blender.

Three layers, imports flowing downward only: the operators, panel and registration here (thin:
each calls one plain function or ``blender.api.Network`` method), ``blender/`` (the scene:
building, network lookup and ownership, connections, staging, playback, removal) and ``core/``
(numpy only, no bpy: the export format, folding, layout, wiring, edge bundling, the names and
the controls table). Blender-facing modules load in ``register``, so ``nnvis_addon.core`` stays
importable without bpy (the exporter and the plain-numpy tests use it). The node groups and
materials are built by the sibling package ``geometry_nodes``. docs/architecture.md has the
data flow and a map of where each concept lives."""


def register():
    from . import registration
    registration.register()


def unregister():
    from . import registration
    registration.unregister()
