"""Operators, grouped by what they act on: ``importing`` (File > Import, the example),
``network`` (a whole network: frame, re-bundle, unfold, remove), ``connections`` (selected
connection objects), ``playback`` (epoch animation), ``explain`` (trace a cell) and
``rendering`` (the scene's render preset). Operators are thin: each calls the ``Network``
handle or a plain function of ``blender/`` and reports one line."""

from __future__ import annotations

from . import connections, explain, importing, network, playback, rendering

CLASSES = (*importing.CLASSES, *connections.CLASSES, *network.CLASSES, *playback.CLASSES,
           *explain.CLASSES, *rendering.CLASSES)
