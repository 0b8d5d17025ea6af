"""nnvis Blender extension root: the repository root is the extension root.

Blender imports this package (as ``bl_ext.<repo>.nnvis``); everything lives in ``nnvis_addon``.
"""


def register():
    from .nnvis_addon import register as _register
    _register()


def unregister():
    from .nnvis_addon import unregister as _unregister
    _unregister()
