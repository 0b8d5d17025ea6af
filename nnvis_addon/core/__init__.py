"""The bpy-free core of nnvis: everything that can be decided without Blender, in numpy.

The export format (reader, writer, schema), folding layers into units, the layout plan (cell
grids, columns, places, value ranges, blocks, pictures, labels), which layer pairs connect and
their edges from the weights, edge bundling, where a new network goes in a scene, and the two
tables the Blender side derives from: the names nnvis writes into a .blend (``names.py``) and
the network controls (``controls.py``). Nothing here imports bpy or ``nnvis_addon.blender``, so
the exporter and the plain-numpy tests import it anywhere, and every rule here is tested without
Blender.
"""
