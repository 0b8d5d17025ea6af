"""A network owns exactly what its import made, known by reference (issue 16, items 1-6; the
staging part of issue 11): Outliner moves and links, append and link from a saved file,
duplicates, renames and hand deletions, in Blender's default startup scene (Cube, Camera,
Light). Real bpy, the installed extension.

The Outliner and the 3D viewport cannot be driven headless; the tests make the same changes
to the data those editors make (moving an object between collections is unlinking it from one
and linking it to the other; Shift+D is ``bpy.ops.object.duplicate``).
"""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from blender_utils import (
    STARTUP_OBJECTS,
    all_data,
    difference,
    evaluated_instances,
    import_file,
    installed_module,
    read_startup_scene,
)
from export_factory import make_export

STARTUP = STARTUP_OBJECTS


@pytest.fixture
def startup(installed):
    """Blender's default startup scene, as a user has it when they press File > Import."""
    scene = read_startup_scene()
    assert scene.camera == bpy.data.objects["Camera"]
    return scene


def api(name: str):
    return installed_module(f"nnvis_addon.blender.{name}")


def startup_intact(scene) -> None:
    collection = bpy.data.collections.get("Collection")
    assert collection is not None, "the user's collection was deleted"
    assert collection.name in scene.collection.children
    for name in STARTUP:
        obj = bpy.data.objects.get(name)
        assert obj is not None, f"the user's {name} was deleted"
        assert obj.name in scene.objects, f"the user's {name} left the scene"
        assert obj.users_collection, f"the user's {name} is in no collection (lost on save)"


def move_to_collection(obj, collection) -> None:
    """What M (Move to Collection) does: unlink from every collection, link to one."""
    for old in list(obj.users_collection):
        old.objects.unlink(obj)
    collection.objects.link(obj)


def select_only(objects, active=None) -> None:
    for obj in bpy.context.view_layer.objects:
        obj.select_set(False)
    for obj in objects:
        obj.select_set(True)
    bpy.context.view_layer.objects.active = active or (objects[0] if objects else None)


def world_box(obj):
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    matrix = np.array(evaluated.matrix_world)
    corners = np.array([tuple(c) for c in evaluated.bound_box]) @ matrix[:3, :3].T + matrix[:3, 3]
    return corners.min(axis=0), corners.max(axis=0)


def network_box(root):
    """The world box of every drawn cell of the network, from the evaluated instances."""
    points = []
    for layer in api("network").network_layers(root):
        positions, _ = evaluated_instances(layer)
        matrix = np.array(layer.matrix_world)
        points.append(positions @ matrix[:3, :3].T + matrix[:3, 3])
    points = np.concatenate(points)
    return points.min(axis=0), points.max(axis=0)


def overlap(a, b) -> bool:
    return bool(np.all(a[0] < b[1]) and np.all(a[1] > b[0]))


# -- item 1: Remove Network deletes exactly what the import made -------------------------------


@pytest.mark.parametrize("arrangement", ["move root", "link root", "move network collection",
                                         "user object in network collection", "move a layer",
                                         "unparent a layer"])
def test_remove_after_outliner_moves_deletes_only_the_network(startup, tiny, arrangement):
    before = all_data()
    root = import_file(tiny)
    user_collection = bpy.data.collections["Collection"]
    network_collection = root.users_collection[0]
    network_api = api("network")
    layer = network_api.network_layers(root)[1]
    if arrangement == "move root":
        move_to_collection(root, user_collection)
    elif arrangement == "link root":
        user_collection.objects.link(root)
    elif arrangement == "move network collection":
        startup.collection.children.unlink(network_collection)
        user_collection.children.link(network_collection)
    elif arrangement == "user object in network collection":
        move_to_collection(bpy.data.objects["Cube"], network_collection)
    elif arrangement == "move a layer":
        move_to_collection(layer, user_collection)
    elif arrangement == "unparent a layer":
        layer.parent = None
    made = {o.name for o in api("network").owned_objects(root)}
    assert len(made) > 5 and not made & set(STARTUP)

    lifecycle = api("lifecycle")
    lifecycle.remove_network(root)
    startup_intact(startup)
    assert not made & {o.name for o in bpy.data.objects}, "the network's own objects stayed"
    assert startup.camera == bpy.data.objects["Camera"], "the scene's camera came back"
    if arrangement == "user object in network collection":
        # The collection the user put their Cube in stays, holding only the Cube.
        assert [o.name for o in network_collection.objects] == ["Cube"]
        assert network_collection.name in startup.collection.children
        return
    assert all_data() == before, difference(before, all_data())


def test_remove_operator_with_root_in_user_collection(startup, tiny):
    root = import_file(tiny)
    move_to_collection(root, bpy.data.collections["Collection"])
    select_only([root])
    assert bpy.ops.nnvis.remove_network() == {"FINISHED"}
    startup_intact(startup)
    assert not any(o.get("nnvis_root") for o in bpy.data.objects)


# -- item 2: append and link bring only the network ----------------------------------------------


@pytest.fixture
def saved_network(startup, tiny, tmp_path):
    root = import_file(tiny)
    api("playback").animate_epochs(root, frames_per_epoch=2, hold_frames=1)
    path = tmp_path / "with_network.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    return path, root.users_collection[0].name


def load_collection(path, name: str, link: bool) -> bpy.types.Collection:
    with bpy.data.libraries.load(str(path), link=link) as (source, target):
        assert name in source.collections
        target.collections = [name]
    collection = target.collections[0]
    bpy.context.scene.collection.children.link(collection)
    return collection


def test_append_brings_only_the_network(saved_network, installed):
    path, collection_name = saved_network
    bpy.ops.wm.read_homefile(use_empty=True)
    before = all_data()
    collection = load_collection(path, collection_name, link=False)
    assert len(bpy.data.scenes) == 1, "appending the network appended its source scene"
    assert not set(STARTUP) & {o.name for o in bpy.data.objects}
    network_api = api("network")
    roots = network_api.iter_networks(bpy.context.scene)
    assert len(roots) == 1 and roots[0].name in collection.objects
    root = roots[0]
    assert network_api.problems(root) == []
    assert api("playback").find_counter(root) is not None
    positions, _ = evaluated_instances(network_api.network_layers(root)[1])
    assert len(positions) > 0
    api("lifecycle").remove_network(root)
    after = all_data()
    # Appending leaves the library it read from (and the labels' font); the rest is gone again.
    assert difference(before, after).keys() <= {"fonts", "libraries"}, difference(before, after)


def test_linked_network_is_refused_with_a_clear_message(saved_network, installed):
    path, collection_name = saved_network
    bpy.ops.wm.read_homefile(use_empty=True)
    load_collection(path, collection_name, link=True)
    assert len(bpy.data.scenes) == 1
    root = next(o for o in bpy.data.objects if o.get("nnvis_network"))
    assert root.library is not None
    network_api = api("network")
    with pytest.raises(network_api.NetworkError, match="is linked from .*does not edit linked"):
        api("lifecycle").remove_network(root)
    with pytest.raises(network_api.NetworkError, match="linked"):
        api("scene").set_control(root, "nnvis_epoch", 0.0)
    with pytest.raises(RuntimeError, match="Nothing removed: .*linked"):
        bpy.ops.nnvis.remove_network(network=root.name)


# -- item 3: the camera by reference --------------------------------------------------------------


def test_camera_found_after_rename_move_and_long_names(startup, tmp_path):
    long_name = "a_model_with_a_very_long_name_" + "x" * 60  # past 63 bytes: ID names are cut
    path = make_export(tmp_path / "long", name=long_name).path
    root = import_file(path)
    network_api = api("network")
    camera = network_api.network_camera(root)
    assert camera is not None and camera.type == "CAMERA"
    camera.name = "Fotoapparat"
    move_to_collection(camera, bpy.data.collections["Collection"])
    assert network_api.network_camera(root) == camera
    startup.camera = bpy.data.objects["Camera"]
    assert api("scene").frame_network(root, startup) == camera
    assert startup.camera == camera
    counter = api("playback").ensure_counter(root, startup)
    assert counter.parent == camera, "the epoch counter rides on the network's own camera"
    # Removing the network takes its renamed, moved camera and leaves the user's collection.
    api("lifecycle").remove_network(root)
    assert "Fotoapparat" not in bpy.data.objects
    startup_intact(startup)


# -- item 4 (and issue 11): the scene camera -------------------------------------------------------


def test_import_takes_the_scene_camera_and_removal_gives_it_back(startup, tiny):
    first = import_file(tiny)
    network_api = api("network")
    assert startup.camera == network_api.network_camera(first)
    second = import_file(tiny)
    assert startup.camera == network_api.network_camera(second)
    api("lifecycle").remove_network(second)
    assert startup.camera == network_api.network_camera(first), "back to the earlier network's"
    api("lifecycle").remove_network(first)
    assert startup.camera == bpy.data.objects["Camera"], "back to the user's camera"
    assert startup.world is not None and not startup.world.get("nnvis_world")
    assert "nnvis_camera_history" not in startup


def test_frame_network_then_remove_gives_the_camera_back(startup, tiny):
    root = import_file(tiny, use_network_camera=False)
    assert startup.camera == bpy.data.objects["Camera"], "option off: the user's camera stays"
    select_only([root])
    assert bpy.ops.nnvis.frame_network() == {"FINISHED"}
    assert startup.camera == api("network").network_camera(root)
    assert bpy.ops.nnvis.remove_network() == {"FINISHED"}
    assert startup.camera == bpy.data.objects["Camera"]


def test_removing_an_earlier_network_keeps_the_current_camera(startup, tiny):
    first = import_file(tiny)
    second = import_file(tiny)
    network_api = api("network")
    second_camera = network_api.network_camera(second)
    api("lifecycle").remove_network(first)
    assert startup.camera == second_camera
    api("lifecycle").remove_network(second)
    assert startup.camera == bpy.data.objects["Camera"]


def test_new_networks_overlap_neither_the_cube_nor_each_other(startup, tiny):
    cube = world_box(bpy.data.objects["Cube"])
    first = import_file(tiny)
    first_box = network_box(first)
    assert not overlap(first_box, cube), (first_box, cube)
    second = import_file(tiny)
    second_box = network_box(second)
    assert not overlap(second_box, cube)
    assert not overlap(second_box, first_box), (second_box, first_box)
    assert tuple(bpy.data.objects["Cube"].location) == (0.0, 0.0, 0.0), "the user's Cube moved"
    # Each camera is framed on its own network: its centre projects near the frame's centre.
    from bpy_extras.object_utils import world_to_camera_view
    for root, box in ((first, first_box), (second, second_box)):
        camera = api("network").network_camera(root)
        bpy.context.view_layer.update()
        from mathutils import Vector
        centre = world_to_camera_view(startup, camera, Vector((box[0] + box[1]) / 2))
        assert abs(centre.x - 0.5) < 0.2 and abs(centre.y - 0.5) < 0.2, (root.name, centre)


def test_import_into_an_empty_scene_stays_at_the_origin(installed, tiny):
    bpy.ops.wm.read_homefile(use_empty=True)
    root = import_file(tiny)
    assert tuple(root.location) == (0.0, 0.0, 0.0)


# -- item 5: an incomplete network ------------------------------------------------------------------


def curve_positions(obj) -> np.ndarray:
    values = np.zeros(len(obj.data.points) * 3, np.float32)
    obj.data.attributes["position"].data.foreach_get("vector", values)
    return values


def test_deleted_layer_gives_one_line_errors_and_changes_nothing(startup, tiny):
    root = import_file(tiny)
    network_api = api("network")
    layers = network_api.network_layers(root)
    links = network_api.network_connections(root)
    shapes = {obj.name: curve_positions(obj) for obj in links}
    deleted_name = layers[1]["nnvis_layer"]
    bpy.data.objects.remove(layers[1])

    with pytest.raises(network_api.NetworkError, match=f"incomplete: the layer object.*{deleted_name}"):
        api("connections").rebundle(links[-1], api("connections").BundlingParams())
    select_only([root])
    with pytest.raises(RuntimeError, match="Nothing re-bundled: network 'tiny' is incomplete") as error:
        bpy.ops.nnvis.rebundle_network()
    assert "Traceback" not in str(error.value) and "AttributeError" not in str(error.value)
    select_only(links)
    with pytest.raises(RuntimeError, match="Nothing re-bundled: .*incomplete"):
        bpy.ops.object.nnvis_rebundle()
    select_only([root])
    with pytest.raises(RuntimeError, match="incomplete"):
        bpy.ops.nnvis.frame_network()
    with pytest.raises(RuntimeError, match="incomplete"):
        bpy.ops.nnvis.animate_epochs()
    for obj in links:
        assert np.array_equal(curve_positions(obj), shapes[obj.name]), obj.name
    # Removing it still works, and takes exactly the rest.
    assert bpy.ops.nnvis.remove_network() == {"FINISHED"}
    startup_intact(startup)
    assert not any(o.get("nnvis_root") for o in bpy.data.objects)


# -- item 6: duplicates -----------------------------------------------------------------------------


def test_duplicating_a_whole_network_gives_an_independent_copy(startup, tiny):
    root = import_file(tiny)
    network_api = api("network")
    api("playback").ensure_counter(root, startup)
    originals = network_api.owned_objects(root)
    select_only(originals, active=root)
    assert bpy.ops.object.duplicate() == {"FINISHED"}
    copies = [o for o in bpy.data.objects if o.get("nnvis_network") and o != root]
    assert len(copies) == 1
    copy = copies[0]
    assert network_api.problems(copy) == []
    copy_parts = network_api.owned_objects(copy)
    assert len(copy_parts) == len(originals)
    assert not {o.as_pointer() for o in copy_parts} & {o.as_pointer() for o in originals}
    camera = network_api.network_camera(copy)
    assert camera is not None and camera != network_api.network_camera(root)
    counter = api("playback").find_counter(copy)
    assert counter is not None and counter.parent == camera
    # The copy's controls drive the copy only.
    layer, copy_layer = network_api.network_layers(root)[1], network_api.network_layers(copy)[1]
    _, before = evaluated_instances(layer)
    api("scene").set_control(copy, "nnvis_sample", 1)
    _, original_after = evaluated_instances(layer)
    _, copy_after = evaluated_instances(copy_layer)
    assert np.array_equal(before["activation"], original_after["activation"])
    assert not np.array_equal(before["activation"], copy_after["activation"])
    # Removing the copy leaves the original whole.
    api("lifecycle").remove_network(copy)
    assert network_api.problems(root) == []
    assert all(o.name in bpy.data.objects for o in originals)


def test_a_partial_copy_is_not_a_working_network(startup, tiny):
    root = import_file(tiny)
    network_api = api("network")
    layer = network_api.network_layers(root)[1]
    select_only([root, layer], active=root)
    assert bpy.ops.object.duplicate() == {"FINISHED"}
    root_copy = next(o for o in bpy.data.objects if o.get("nnvis_network") and o != root)
    layer_copy = next(o for o in bpy.data.objects
                      if o.get("nnvis_layer") == layer["nnvis_layer"] and o != layer)
    assert network_api.network_of(layer) == root and network_api.problems(root) == []
    problem, = network_api.problems(root_copy)
    assert "partial copy of network 'tiny'" in problem
    select_only([layer_copy])
    with pytest.raises(RuntimeError, match="partial copy"):
        bpy.ops.nnvis.animate_epochs()
    with pytest.raises(network_api.NetworkError, match="partial copy"):
        api("scene").frame_network(root_copy)
    # Removing the copy takes the two copied objects and nothing of the original.
    originals = network_api.owned_objects(root)
    api("lifecycle").remove_network(root_copy)
    assert not [o for o in bpy.data.objects if o.get("nnvis_network") and o != root]
    assert all(o.name in bpy.data.objects for o in originals)
    assert network_api.problems(root) == []
    startup_intact(startup)
