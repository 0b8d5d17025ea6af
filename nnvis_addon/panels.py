"""The View3D > Sidebar > NNVis panel."""

from __future__ import annotations

CLASSES: tuple = ()


def register_properties() -> None:
    pass


def unregister_properties() -> None:
    pass
