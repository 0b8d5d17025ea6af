"""The Blender side of nnvis: the plain functions that write, find, drive and remove scene data.

``scene.py`` builds a network from an export (layers, drivers from the controls table, labels)
inside an all-or-nothing ``transaction``; ``connections.py`` writes the bundled connection
curves; ``network.py`` records what an import made and finds networks, layers and cameras by
reference, never by name; ``staging.py`` places the network, its camera, light and world;
``playback.py`` keys epochs and adds the counter; ``lifecycle.py`` removes a network;
``writers.py`` is the one way to write attributes (``foreach_set``) and drivers (simple
expressions only); ``compat.py`` hides the APIs that moved between Blender 4.2 and 5.x;
``api.py`` is the ``Network`` handle that scripts and the operators use. Importing this package
itself needs no bpy; its modules do.
"""
