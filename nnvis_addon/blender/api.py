"""``Network``: one handle on an imported network for scripts (and for nnvis's own operators).

    from bl_ext.user_default.nnvis import Network
    network = Network.import_file("my_export/model.nnvis.json", sample=2, map_layout="linear")
    network.set(epoch=3.5, edge_threshold=0.3)      # any network control, without "nnvis_"
    network.collapse("conv2", summary="max")         # a layer by its name in the export
    network.show("input", False)
    network.rebundle(strength=1.5)
    network.animate_epochs(frames_per_epoch=24, hold_frames=12)
    network.trace("conv2", channel=3, row=2, col=5)  # its receptive field and contributing paths
    network.trace(class_index=7, fade_frames=24)      # why the output says 7, faded in
    network.clear_trace()
    network.show_operation("conv1", channel=3, row=4)  # the kernel sliding along row 4
    network.frame()
    network.remove()

Every method is a thin call into the plain functions of ``blender/`` (scene building, network
lookup, staging, connections, playback, lifecycle); the handle only holds the root object.
"""

from __future__ import annotations

import os
from dataclasses import fields, replace

import bpy

from ..core import controls, names
from ..core.bundling import BundlingParams
from ..core.operation import Operation
from . import blocks, compat, connections, lifecycle, network, playback, scene, staging
from . import operation as operating
from . import trace as tracing

SUMMARIES = {"stack": 0, "max": 1, "mean": 2}


class Network:
    """An imported network, known by its root object."""

    def __init__(self, root: bpy.types.Object):
        if not network.is_root(root):
            raise network.NetworkError(f"{getattr(root, 'name', root)!r} is not the root of an "
                                       "nnvis network")
        self.root = root

    # -- finding and making networks --------------------------------------------------------

    @classmethod
    def import_file(cls, path: str | os.PathLike, *, scene_: bpy.types.Scene | None = None,
                    progress=None, **options) -> Network:
        """Import an export (``*.nnvis.json`` or its folder). ``options`` are the fields of
        ``scene.ImportOptions`` (sample, epoch, layer_spacing, map_layout, cell_size, normalize,
        stage, use_network_camera, place_beside)."""
        known = {f.name for f in fields(scene.ImportOptions)} - {"connections"}
        unknown = set(options) - known
        if unknown:
            raise TypeError(f"unknown import option(s) {sorted(unknown)}; known: {sorted(known)}")
        import_options = replace(scene.ImportOptions(), **options)
        return cls(scene.import_network(path, import_options, scene=scene_, progress=progress))

    @classmethod
    def of(cls, obj: bpy.types.Object | None) -> Network | None:
        """The network ``obj`` belongs to (its root, a layer, a connection, its camera...)."""
        root = network.network_of(obj)
        return cls(root) if root is not None else None

    @classmethod
    def active(cls, context=None) -> Network | None:
        """The network the UI acts on (see ``network.active_network``)."""
        root = network.active_network(context or bpy.context)
        return cls(root) if root is not None else None

    @classmethod
    def all(cls, scene_: bpy.types.Scene | None = None) -> list[Network]:
        return [cls(root) for root in network.iter_networks(scene_)]

    # -- what it is made of -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return network.display_name(self.root)

    @property
    def layers(self) -> list[bpy.types.Object]:
        return network.network_layers(self.root)

    @property
    def connections(self) -> list[bpy.types.Object]:
        return network.network_connections(self.root)

    @property
    def labels(self) -> list[bpy.types.Object]:
        """The units' label objects (static text, see ``labels.py``), in layer order."""
        return network.network_labels(self.root)

    @property
    def camera(self) -> bpy.types.Object | None:
        return network.network_camera(self.root)

    def layer(self, name: str) -> bpy.types.Object:
        """A layer object by the layer's name in the export (not the object's name)."""
        for obj in self.layers:
            if obj.get(scene.LAYER_MARKER) == name:
                return obj
        names = [obj.get(scene.LAYER_MARKER) for obj in self.layers]
        raise KeyError(f"network {self.name!r} has no layer {name!r} (layers: {names})")

    def problems(self) -> list[str]:
        return network.problems(self.root)

    # -- controls -------------------------------------------------------------------------------

    def set(self, **values) -> None:
        """Set network controls by their short name: ``set(epoch=2.5, sample=1)``."""
        for short, value in values.items():
            key = f"nnvis_{short}"
            if key not in controls.CONTROLS_BY_KEY:
                shorts = sorted(k.removeprefix("nnvis_") for k in controls.CONTROLS_BY_KEY)
                raise KeyError(f"no network control {short!r} (controls: {shorts})")
            scene.set_control(self.root, key, value)

    def get(self, short: str):
        return self.root[f"nnvis_{short}"]

    def _layer(self, layer) -> bpy.types.Object:
        return self.layer(layer) if isinstance(layer, str) else layer

    def set_layer(self, layer, **inputs) -> None:
        """Set layer controls (modifier inputs) by name with spaces as underscores:
        ``set_layer("conv1", grid_layout=0.0, channel_gap=0.5)``."""
        obj = self._layer(layer)
        for key, value in inputs.items():
            scene.set_layer_control(obj, key.replace("_", " ").title(), value)

    def collapse(self, layer, amount: float = 1.0, summary: str = "max") -> None:
        """Collapse a layer's maps (0..1) into a stack, their max map or their mean map."""
        if summary not in SUMMARIES:
            raise ValueError(f"summary must be one of {sorted(SUMMARIES)}, got {summary!r}")
        obj = self._layer(layer)
        scene.set_layer_control(obj, "Collapse Summary", SUMMARIES[summary])
        scene.set_layer_control(obj, "Collapse", float(amount))

    def show(self, layer, visible: bool = True) -> None:
        scene.set_layer_visible(self._layer(layer), visible)

    # -- blocks and folding -----------------------------------------------------------------------

    @property
    def blocks(self) -> list[str]:
        """Names of the network's blocks (residual blocks, name-scoped groups...)."""
        return list(blocks.network_blocks(self.root))

    def collapse_block(self, block: str, amount: float = 1.0) -> None:
        """Collapse a block into its output unit (1) or expand it (0); fractions animate."""
        blocks.set_block_collapsed(self.root, block, amount)

    def expand_block(self, block: str) -> None:
        blocks.set_block_collapsed(self.root, block, 0.0)

    def unfold(self, unit: str) -> Network:
        """Draw the layers folded into ``unit`` (e.g. its BN and ReLU) as units of their own.
        The network is imported again in place (see :meth:`reimport`); returns the new one."""
        obj = self.layer(unit)
        if not obj.get(names.FOLDED):
            raise ValueError(f"unit {unit!r} of network {self.name!r} has nothing folded into it")
        kept = set(self.root[names.IMPORT_OPTIONS].get("unfold") or ())
        return self.reimport(unfold=frozenset(kept | {unit}))

    def reimport(self, **changes) -> Network:
        """Import the network's export again, in place, with some import options changed
        (``fold``, ``unfold``, ``blocks``, ``map_layout``...): the new network takes the old one's
        place, network controls, block states, epoch animation and counter, and the scene's
        camera if the old one had it; then the old one is removed. Returns the new network."""
        network.require_whole(self.root)
        old = self.root
        record = dict(old.get(names.IMPORT_OPTIONS) or {})
        record.update(changes)
        record["place_beside"] = False
        scene_ = next((s for s in bpy.data.scenes if s.objects.get(old.name) == old),
                      bpy.context.scene)
        had_camera = self.camera is not None and scene_.camera == self.camera
        record["use_network_camera"] = had_camera
        options = scene.ImportOptions.from_record(record)
        new = Network(scene.import_network(old[names.SOURCE_PATH], options, scene=scene_))
        new.root.matrix_world = old.matrix_world.copy()
        for control in controls.NETWORK_CONTROLS:
            if control.key in old.keys():
                new.root[control.key] = old[control.key]
        states = {name: owner[names.BLOCK_COLLAPSED]
                  for name, owner in blocks.network_blocks(old).items()}
        for name, owner in blocks.network_blocks(new.root).items():
            if name in states:
                owner[names.BLOCK_COLLAPSED] = states[name]
        action = old.animation_data.action if old.animation_data else None
        if action is not None:
            compat.assign_action(new.root, action)
        if playback.find_counter(old) is not None:
            playback.ensure_counter(new.root, scene_)
        self.remove()
        self.root = new.root
        if had_camera:
            staging.frame_network(new.root, scene_)
        return new

    # -- actions ----------------------------------------------------------------------------------

    def rebundle(self, strength: float | None = None, bundle: bool = True, progress=None,
                 **params) -> int:
        """Re-bundle every connection for the current layout; returns how many. ``strength``
        defaults to the network's Bundling Strength; ``params`` are ``BundlingParams`` fields;
        ``progress(done, total)`` is called after each layer pair."""
        network.require_whole(self.root)
        if strength is None:
            strength = float(self.root.get(controls.BUNDLE_STRENGTH,
                                           controls.default(controls.BUNDLE_STRENGTH)))
        bundling = BundlingParams(strength=strength, **params)
        targets = self.connections
        for done, obj in enumerate(targets, 1):
            connections.rebundle(obj, bundling, bundle=bundle and strength > 0)
            if progress is not None:
                progress(done, len(targets))
        return len(targets)

    def animate_epochs(self, **timing) -> tuple[int, int]:
        """Keyframe the epoch through every recorded epoch (see ``playback.animate_epochs``)."""
        return playback.animate_epochs(self.root, **timing)

    def trace(self, layer=None, channel: int | None = None, row: int | None = None,
              col: int | None = None, neuron: int | None = None, class_index: int | None = None,
              *, sample: int | None = None, epoch: int | None = None, top: int = 3,
              fade_frames: int | None = None,
              scene_: bpy.types.Scene | None = None) -> tracing.TraceSummary:
        """Trace a cell (``channel``, ``row``, ``col``), a neuron, a whole map (``channel``
        alone) of ``layer`` (a name or a layer object), or ``class_index`` of the output layer:
        its receptive field and the paths that contribute most (the ``top`` units per layer,
        by |a x w|) are highlighted, the rest dimmed. ``sample`` and ``epoch`` (index) default
        to the shown ones. ``fade_frames``: keyframe the trace strength from 0 at the current
        frame to 1 that many frames later (else it is set to 1 if it was 0)."""
        if class_index is not None:
            layer, neuron = self.layers[-1], class_index
        if layer is None:
            raise ValueError("trace what? give a layer (and a cell or neuron) or a class_index")
        name = layer if isinstance(layer, str) else layer.get(names.LAYER_MARKER)
        self.layer(name)  # a clear error for a layer the network does not have
        summary = tracing.trace(self.root, name, channel=channel, row=row, col=col,
                                neuron=neuron, sample=sample, epoch_index=epoch, top=top)
        if fade_frames:
            frame = (scene_ or bpy.context.scene).frame_current
            for at, value in ((frame, 0.0), (frame + int(fade_frames), 1.0)):
                self.root[controls.TRACE_STRENGTH] = value
                self.root.keyframe_insert(f'["{controls.TRACE_STRENGTH}"]', frame=at)
        return summary

    def clear_trace(self) -> None:
        """Remove the trace (strength 0, no trace attributes); keyframes on the strength stay."""
        tracing.clear_trace(self.root)

    def show_operation(self, layer, channel: int, row: int = 0, col: int = 0, *,
                       sample: int | None = None, epoch: int | None = None,
                       input_channel: int | None = None, frame_start: int | None = None,
                       frames_per_step: int = 6) -> Operation:
        """A close-up of output cell (``row``, ``col``, ``channel``) of ``layer`` (a Conv2D,
        pooling or Dense unit; for Dense, ``channel`` is the neuron): the input patch, the
        kernel, the products and the result, stepping along the row (one step every
        ``frames_per_step`` frames from ``frame_start``, default the current frame), for the
        shown sample and epoch (or the given ones). A conv step shows ``input_channel``
        (default: the one contributing most). See ``blender/operation.py``."""
        name = layer if isinstance(layer, str) else layer.get(names.LAYER_MARKER)
        self.layer(name)  # a clear error for a layer the network does not have
        return operating.show_operation(self.root, name, channel=channel, row=row, col=col,
                                        sample=sample, epoch_index=epoch,
                                        input_channel=input_channel, frame_start=frame_start,
                                        frames_per_step=frames_per_step)

    def clear_operation(self) -> None:
        """Remove the operation close-up."""
        operating.clear_operation(self.root)

    def frame(self, scene_: bpy.types.Scene | None = None) -> bpy.types.Object:
        """Re-aim the network's camera at its current layout and render through it."""
        return staging.frame_network(self.root, scene_)

    def remove(self) -> None:
        """Remove the network: exactly what its import made (see ``lifecycle.remove_network``)."""
        lifecycle.remove_network(self.root)

    def __repr__(self) -> str:
        return f"<nnvis Network {self.name!r} ({len(self.layers)} layers)>"

    def __eq__(self, other) -> bool:
        return isinstance(other, Network) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root.as_pointer())
