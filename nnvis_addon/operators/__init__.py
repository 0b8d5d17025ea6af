"""Operators, grouped by what they act on: ``importing`` (File > Import, the example),
``network`` (a whole network: frame, re-bundle, unfold, remove), ``connections`` (selected
connection objects), ``playback`` (epoch animation) and ``explain`` (trace a cell).
Operators are thin: each calls the ``Network`` handle or a plain function of ``blender/`` and
reports one line."""

from __future__ import annotations

from . import connections, explain, importing, network, playback

CLASSES = (*importing.CLASSES, *connections.CLASSES, *network.CLASSES, *playback.CLASSES,
           *explain.CLASSES)
