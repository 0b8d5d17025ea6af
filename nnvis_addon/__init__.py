"""nnvis add-on package. Blender-facing modules load in ``register``; ``nnvis_addon.core`` stays
importable without bpy (the exporter and plain-numpy tests use it)."""


def register():
    from . import registration
    registration.register()


def unregister():
    from . import registration
    registration.unregister()
