"""Operators, grouped by what they act on: ``importing`` (File > Import, the example),
``network`` (a whole network: frame, re-bundle, unfold, remove), ``connections`` (selected
connection objects) and ``playback`` (epoch animation). Operators are thin: each calls the
``Network`` handle or a plain function of ``blender/`` and reports one line."""

from __future__ import annotations

from . import connections, importing, network, playback

CLASSES = (*importing.CLASSES, *connections.CLASSES, *network.CLASSES, *playback.CLASSES)
