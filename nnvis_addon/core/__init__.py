"""bpy-free core of nnvis: export format, layout maths, connections and edge bundling (numpy only)."""
