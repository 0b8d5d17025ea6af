"""The two ways nnvis writes Blender data in bulk: attributes from flat numpy arrays, and
drivers that Blender evaluates without Python.

* :func:`write_attribute` creates (or overwrites) a mesh or curves attribute with one
  ``foreach_set`` call: never a Python loop per cell or edge.
* :func:`add_driver` adds a driver made of single-property variables and a simple expression
  (arithmetic, min/max), which Blender evaluates itself, so a saved .blend plays and renders on a
  machine without nnvis (a render farm). It refuses an expression that would need Python.
"""

from __future__ import annotations

import numpy as np

_FOREACH_KEY = {"FLOAT_VECTOR": "vector", "FLOAT_COLOR": "color", "BYTE_COLOR": "color"}
_DTYPE = {"INT": np.int32, "BOOLEAN": bool}


def write_attribute(data, name: str, kind: str, domain: str, values) -> None:
    """Create or overwrite attribute ``name`` (``kind`` "FLOAT", "INT", "FLOAT_VECTOR", ...) on
    ``domain`` of a mesh or curves data-block from an array of any shape, in C order."""
    attribute = data.attributes.get(name)
    if attribute is None or attribute.data_type != kind or attribute.domain != domain:
        if attribute is not None:
            data.attributes.remove(attribute)
        attribute = data.attributes.new(name, kind, domain)
    flat = np.ascontiguousarray(values, dtype=_DTYPE.get(kind, np.float32)).reshape(-1)
    attribute.data.foreach_set(_FOREACH_KEY.get(kind, "value"), flat)


def add_driver(target, data_path: str, expression: str, variables: dict, index: int = -1):
    """A driver on ``target.data_path`` (element ``index`` of an array) computing ``expression``.

    ``variables`` maps a variable name to (id_type, id, data_path): a single property of that ID.
    id_type "SCENE" with id None reads the scene being evaluated through a context property, so
    the driver holds no pointer to a Scene (appending the network then does not append the scene
    it came from). Earlier variables of the driver are replaced.
    """
    fcurve = target.driver_add(data_path, index)
    driver = fcurve.driver
    driver.type = "SCRIPTED"
    for variable in list(driver.variables):
        driver.variables.remove(variable)
    for name, (id_type, id_data, path) in variables.items():
        variable = driver.variables.new()
        variable.name = name
        if id_type == "SCENE" and id_data is None:
            variable.type = "CONTEXT_PROP"
            variable.targets[0].context_property = "ACTIVE_SCENE"
        else:
            variable.type = "SINGLE_PROP"
            variable.targets[0].id_type = id_type
            variable.targets[0].id = id_data
        variable.targets[0].data_path = path
    driver.expression = expression
    if not driver.is_simple_expression:
        raise RuntimeError(f"driver expression needs Python: {expression!r}")
    return fcurve
