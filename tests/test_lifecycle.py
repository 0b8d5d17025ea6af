"""A network's life in a Blender session: imported twice, removed (operator and script API),
and the extension disabled and enabled again. Real bpy 5.0.1, the installed extension.

Undo cannot be exercised headless (there is no undo stack without a window), so it is not here.
"""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from blender_utils import (
    EXTENSION_MODULE,
    all_data,
    difference,
    evaluated_instances,
    import_file,
    installed_module,
    installed_scene_module,
)


def orphans() -> set[tuple[str, str]]:
    """Data-blocks nothing uses (that a save would drop)."""
    return {(type(block).__name__, block.name) for block in bpy.data.user_map()
            if block.users == 0 and not block.use_fake_user}


def scene_api():
    return installed_scene_module()


def lifecycle_api():
    return installed_module("nnvis_addon.blender.lifecycle")


@pytest.fixture
def empty(installed):
    bpy.ops.wm.read_homefile(use_empty=True)
    for group in list(bpy.data.node_groups):
        bpy.data.node_groups.remove(group)
    return bpy.context.scene


def network_blocks(root) -> dict[str, set[str]]:
    """Names of the objects, object data and collection one network is made of."""
    objects = {root.name} | {child.name for child in root.children_recursive}
    collection = root.users_collection[0]
    objects |= {obj.name for obj in collection.objects}
    data = {bpy.data.objects[name].data.name for name in objects
            if bpy.data.objects[name].data is not None}
    return {"objects": objects, "data": data, "collection": {collection.name}}


def network_materials(root) -> set:
    """The network's own materials: its layers' cell materials (and those while maps merge),
    its connections' material, its answer's."""
    compat = installed_module("nnvis_addon.blender.compat")
    network = installed_module("nnvis_addon.blender.network")
    found = {compat.get_modifier_input(obj.modifiers["NNVis Layer"], material)
             for obj in network.network_layers(root)
             for material in ("Cell Material", "Summary Material")} - {None}
    found |= {compat.get_modifier_input(obj.modifiers["NNVis Connections"], "Material")
              for obj in network.network_connections(root)}
    found |= {slot.material for obj in network.listed_parts(root, "answer")
              for slot in obj.material_slots if slot.material.name.startswith("NNVis Answer")}
    return found


def assert_cells_evaluate(root):
    layers = scene_api().network_layers(root)
    assert layers
    for obj in layers:
        positions, attributes = evaluated_instances(obj)
        cells = int(np.prod(obj["nnvis_output_shape"]))
        assert len(positions) == cells, obj.name
        assert len(attributes["activation"]) == cells, obj.name


def activation_of(root, layer_index=1):
    _, attributes = evaluated_instances(scene_api().network_layers(root)[layer_index])
    return attributes["activation"]


# -- importing the same file twice ---------------------------------------------------------------


def test_same_file_twice_gives_two_independent_networks(empty, example_export):
    first = import_file(example_export)
    second = import_file(example_export)
    assert first != second and first.name != second.name
    assert first["nnvis_model"] == second["nnvis_model"] == "digits_cnn"
    a, b = network_blocks(first), network_blocks(second)
    for key in a:
        assert not a[key] & b[key], f"{key} shared between the two networks: {a[key] & b[key]}"
    assert first.users_collection[0] != second.users_collection[0]
    for root in (first, second):
        assert_cells_evaluate(root)
        own = {obj.name for obj in root.children_recursive} | {root.name}
        for obj in root.children:
            for fcurve in obj.animation_data.drivers if obj.animation_data else ():
                for variable in fcurve.driver.variables:  # the root, or a layer before it
                    for target in variable.targets:
                        assert target.id is None or target.id.name in own, \
                            (obj.name, fcurve.data_path)
        compat = installed_module("nnvis_addon.blender.compat")
        connections = installed_module("nnvis_addon.blender.connections")
        links = connections.network_connections(root)
        assert links
        for obj in links:
            modifier = obj.modifiers[connections.MODIFIER_NAME]
            for end in ("Source", "Target"):
                assert compat.get_modifier_input(modifier, end).name in own, (obj.name, end)

    # The controls of one network leave the other alone.
    before_first, before_second = activation_of(first), activation_of(second)
    scene_api().set_control(first, "nnvis_sample", 3)
    assert not np.array_equal(activation_of(first), before_first)
    np.testing.assert_array_equal(activation_of(second), before_second)


# -- Remove Network ------------------------------------------------------------------------------


def test_remove_network_operator_then_function_restores_bpy_data(empty, tiny):
    before = all_data()
    orphans_before = orphans()
    first = import_file(tiny)
    second = import_file(tiny)
    first_blocks = network_blocks(first)
    first_materials = {("materials", m.name) for m in network_materials(first)}
    second_root_name = second.name
    second_camera = next(o for o in second.users_collection[0].objects if o.get("nnvis_camera"))
    shared = {("node_groups", g.name) for g in bpy.data.node_groups} | \
             {("materials", m.name) for m in bpy.data.materials} | \
             {("worlds", w.name) for w in bpy.data.worlds}
    assert empty.camera == second_camera, "the latest import's camera is the scene's"

    # The operator removes the network of the active object, here one of its layers.
    layer = scene_api().network_layers(first)[2]
    for obj in bpy.context.view_layer.objects.selected:
        obj.select_set(False)
    bpy.context.view_layer.objects.active = layer
    assert bpy.ops.nnvis.remove_network() == {"FINISHED"}

    assert not first_blocks["objects"] & {o.name for o in bpy.data.objects}
    assert not first_blocks["data"] & ({m.name for m in bpy.data.meshes} |
                                       {c.name for c in bpy.data.hair_curves} |
                                       {c.name for c in bpy.data.cameras} |
                                       {light.name for light in bpy.data.lights})
    assert not first_blocks["collection"] & {c.name for c in bpy.data.collections}
    # The other network still uses the shared groups, materials and world: they stay; the
    # first network's own materials (they read its value atlas) and atlas images go.
    still = {("node_groups", g.name) for g in bpy.data.node_groups} | \
            {("materials", m.name) for m in bpy.data.materials} | \
            {("worlds", w.name) for w in bpy.data.worlds}
    assert first_materials and still == shared - first_materials
    assert orphans() == orphans_before, orphans() - orphans_before
    second = bpy.data.objects[second_root_name]
    assert_cells_evaluate(second)
    assert empty.camera == second_camera, "the remaining network keeps the scene camera"
    assert empty.world is not None and empty.world.get("nnvis_world")

    # The script API removes the last one: bpy.data is as it was before the first import.
    lifecycle_api().remove_network(second)
    assert all_data() == before, difference(before, all_data())
    assert orphans() == orphans_before
    assert empty.world is None and empty.camera is None


def test_remove_keeps_what_the_user_still_uses(empty, tiny):
    """A user's object with the network's material, and a keyframed control (an action)."""
    root = import_file(tiny)
    scene_api().set_control(root, "nnvis_epoch", 0.0)
    root.keyframe_insert('["nnvis_epoch"]', frame=1)
    root["nnvis_epoch"] = 1.0
    root.keyframe_insert('["nnvis_epoch"]', frame=20)
    action = root.animation_data.action
    assert action is not None
    action_name = action.name

    mesh = bpy.data.meshes.new("user mesh")
    user = bpy.data.objects.new("user object", mesh)
    empty.collection.objects.link(user)
    material = next(m for m in network_materials(root) if m.name.startswith("NNVis Activation"))
    material_name = material.name
    mesh.materials.append(material)

    lifecycle_api().remove_network(root)
    assert action_name not in bpy.data.actions, "the network's action is an orphan"
    assert "user object" in bpy.data.objects and "user mesh" in bpy.data.meshes
    assert bpy.data.materials.get(material_name) == material, "still used by the user"
    assert "NNVis Layer" not in bpy.data.node_groups
    assert "NNVis Connections" not in bpy.data.node_groups
    assert "NNVis Label" not in bpy.data.materials
    assert orphans() == set(), orphans()


def test_remove_network_refuses_what_is_not_a_network(empty, tiny):
    with pytest.raises(RuntimeError, match="poll"):
        bpy.ops.nnvis.remove_network()  # no network at all
    root = import_file(tiny)
    with pytest.raises(RuntimeError, match="Nothing removed"):
        bpy.ops.nnvis.remove_network(network="no such object")
    with pytest.raises(ValueError, match="not an nnvis network"):
        lifecycle_api().remove_network(scene_api().network_layers(root)[0])
    assert root.name in bpy.data.objects
    assert bpy.ops.nnvis.remove_network(network=root.name) == {"FINISHED"}
    assert not scene_api().iter_networks()


def test_failed_import_beside_a_network_keeps_its_shared_data(empty, tiny, tmp_path):
    root = import_file(tiny)
    bad = tmp_path / "bad.nnvis.json"
    bad.write_text("{")
    before = all_data()
    with pytest.raises(RuntimeError):
        bpy.ops.import_scene.nnvis(filepath=str(bad))
    assert all_data() == before
    assert_cells_evaluate(root)


# -- register / unregister -------------------------------------------------------------------


def registered_leftovers() -> list[str]:
    leftovers = [name for name in dir(bpy.types) if "nnvis" in name.lower()]
    leftovers += [f"bpy.ops.{group}.{name}" for group in ("import_scene", "nnvis", "object")
                  for name in dir(getattr(bpy.ops, group)) if "nnvis" in f"{group}.{name}"]
    for menu in ("TOPBAR_MT_file_import", "VIEW3D_MT_object", "VIEW3D_MT_add"):
        draw_funcs = getattr(getattr(bpy.types, menu).draw, "_draw_funcs", [])
        leftovers += [f"{menu}: {f.__module__}" for f in draw_funcs
                      if "nnvis" in getattr(f, "__module__", "")]
    for type_name in ("Scene", "Object", "WindowManager", "ViewLayer"):
        properties = getattr(bpy.types, type_name).bl_rna.properties.keys()
        leftovers += [f"{type_name}.{p}" for p in properties if p.startswith("nnvis")]
    for name in dir(bpy.app.handlers):
        handlers = getattr(bpy.app.handlers, name)
        if isinstance(handlers, list):
            leftovers += [f"handlers.{name}: {h.__module__}" for h in handlers
                          if "nnvis" in getattr(h, "__module__", "")]
    keyconfig = bpy.context.window_manager.keyconfigs.addon
    if keyconfig is not None:
        leftovers += [f"keymap {km.name}: {item.idname}" for km in keyconfig.keymaps
                      for item in km.keymap_items if "nnvis" in item.idname]
    return leftovers


def handler_counts() -> dict[str, int]:
    return {name: len(getattr(bpy.app.handlers, name)) for name in dir(bpy.app.handlers)
            if isinstance(getattr(bpy.app.handlers, name), list)}


def test_disable_enable_cycles_leave_nothing_and_import_still_works(installed, tiny):
    import addon_utils
    enabled_handlers = handler_counts()
    registered = registered_leftovers()
    # The check sees what the extension registers (so an empty list below means something).
    assert "IMPORT_SCENE_OT_nnvis" in registered and "bpy.ops.nnvis.remove_network" in registered
    assert any(item.startswith("TOPBAR_MT_file_import") for item in registered)
    disabled_handlers = None
    try:
        for cycle in range(3):
            addon_utils.disable(EXTENSION_MODULE, default_set=True)
            assert registered_leftovers() == [], f"cycle {cycle}"
            if disabled_handlers is None:
                disabled_handlers = handler_counts()
            assert handler_counts() == disabled_handlers, f"cycle {cycle}"
            addon_utils.enable(EXTENSION_MODULE, default_set=True)
            assert hasattr(bpy.types, "IMPORT_SCENE_OT_nnvis")
            assert handler_counts() == enabled_handlers, f"handlers doubled after cycle {cycle}"
    finally:
        if not hasattr(bpy.types, "IMPORT_SCENE_OT_nnvis"):
            addon_utils.enable(EXTENSION_MODULE, default_set=True)
    bpy.ops.wm.read_homefile(use_empty=True)
    before = all_data()
    root = import_file(tiny)
    assert_cells_evaluate(root)
    assert bpy.ops.nnvis.remove_network(network=root.name) == {"FINISHED"}
    assert all_data() == before, difference(before, all_data())


def test_remove_an_animated_network_with_its_epoch_counter(empty, tiny):
    """Epoch playback adds keyframes (an action) and a counter object parented to the camera."""
    before = all_data()
    orphans_before = orphans()
    root = import_file(tiny)
    playback = installed_module("nnvis_addon.blender.playback")
    playback.animate_epochs(root, frames_per_epoch=4, hold_frames=2)
    counter = playback.find_counter(root)
    assert counter is not None and root.animation_data.action is not None
    counter_name = counter.name
    # Picking the counter picks its network.
    for obj in bpy.context.view_layer.objects.selected:
        obj.select_set(False)
    bpy.context.view_layer.objects.active = counter
    assert bpy.ops.nnvis.remove_network() == {"FINISHED"}
    assert counter_name not in bpy.data.objects
    assert all_data() == before, difference(before, all_data())
    assert orphans() == orphans_before
