"""nnvis Blender extension root: the repository root is the extension root.

Blender imports this package (as ``bl_ext.<repo>.nnvis``); everything lives in ``nnvis_addon``.
Scripts need one import: ``from bl_ext.user_default.nnvis import Network`` (see
``nnvis_addon/blender/api.py``).
"""


def __getattr__(name):
    if name == "Network":  # loaded on first use: importing the package needs no bpy
        from .nnvis_addon.blender.api import Network
        return Network
    raise AttributeError(name)


def register():
    from .nnvis_addon import register as _register
    _register()


def unregister():
    from .nnvis_addon import unregister as _unregister
    _unregister()
