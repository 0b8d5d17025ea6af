"""Folding: layers that only reshape what they are given become part of a neighbouring unit.

A teacher reads ``conv1 + BN + ReLU`` as one step; drawing BatchNormalization, the activation
and Dropout as three more copies of the same maps only buries the picture. Two kinds of fold:

* a **shape-keeping** layer (normalisation, activation, dropout and other inference-time
  identities) folds into the layer it follows, when that layer feeds nothing else: the unit keeps
  the first layer's name and weights and shows the output of the last folded layer;
* a **Flatten** folds into the Dense layer it feeds (``Flatten + fc1``): the unit draws the
  Dense layer's neurons and its connections come from the maps before the Flatten, aggregated
  per channel, instead of a square of thousands of cells that hides everything behind it; a
  zero padding likewise folds into the convolution or pooling it feeds (``pad + conv1``).

:func:`fold_export` returns a new :class:`NetworkExport` of units (no array is copied); every
step after it (layout, wiring, building) works on units as it did on layers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .export_format import Epoch, Layer, NetworkExport

# Layers that return their input's shape and, at inference, transform values cell by cell (or
# not at all). Merges (Add, Concatenate) keep shapes too but join branches: they stay units.
SHAPE_KEEPING_TYPES = frozenset({
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization",
    "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "AlphaDropout",
    "GaussianDropout", "GaussianNoise", "ActivityRegularization", "Identity",
})

# Layers that only prepare the next layer's input: they fold in front of it.
PADDING_TYPES = frozenset({"ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D"})
PADDED_TYPES = frozenset({"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D",
                          "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D"})

SHORT_NAMES = {
    "BatchNormalization": "BN", "LayerNormalization": "LN", "GroupNormalization": "GN",
    "UnitNormalization": "Norm", "LeakyReLU": "LeakyReLU", "Softmax": "softmax",
    "SpatialDropout1D": "Dropout", "SpatialDropout2D": "Dropout", "SpatialDropout3D": "Dropout",
    "AlphaDropout": "Dropout", "GaussianDropout": "Dropout", "GaussianNoise": "Noise",
    "ActivityRegularization": "Reg", "Identity": "Identity", "Flatten": "Flatten",
    "ZeroPadding1D": "pad", "ZeroPadding2D": "pad", "ZeroPadding3D": "pad",
}


@dataclass(frozen=True)
class Fold:
    """One drawn unit made of several layers."""

    unit: str                  # the layer whose name, weights and place the unit keeps
    before: tuple[str, ...]    # layers folded in front of it (a Flatten)
    after: tuple[str, ...]     # layers folded behind it; the unit shows the last one's output

    @property
    def shown(self) -> str:
        """The layer whose output the unit shows."""
        return self.after[-1] if self.after else self.unit


def short_name(layer: Layer) -> str:
    """How a folded layer reads in a unit's label: BN, ReLU, softmax, Dropout..."""
    if layer.type == "Activation":
        return str(layer.config.get("activation", "activation"))
    return SHORT_NAMES.get(layer.type, layer.type)


def _consumers(layers: list[Layer]) -> dict[str, list[str]]:
    consumers: dict[str, list[str]] = {layer.name: [] for layer in layers}
    for layer in layers:
        for name in layer.inbound:
            consumers[name].append(layer.name)
    return consumers


def _folds_into_previous(layer: Layer, previous: Layer, consumers) -> bool:
    return (layer.type in SHAPE_KEEPING_TYPES and len(layer.inbound) == 1
            and tuple(layer.output_shape) == tuple(previous.output_shape)
            and previous.type != "InputLayer" and consumers[previous.name] == [layer.name])


def _unit_folding_before(layer: Layer, by_name: dict[str, Layer], unit_of: dict[str, str],
                         consumers) -> str | None:
    """The unit that folds in front of ``layer`` because it only prepares its input: a Flatten
    of maps (with whatever folded behind it) feeding only a Dense, or a zero padding feeding
    only a convolution or pooling; else None."""
    if len(layer.inbound) != 1 or consumers[layer.inbound[0]] != [layer.name]:
        return None
    unit = unit_of.get(layer.inbound[0], layer.inbound[0])
    before = by_name[unit]
    if len(before.inbound) != 1:
        return None
    if layer.type == "Dense" and before.type == "Flatten" \
            and len(by_name[before.inbound[0]].output_shape) >= 2:
        return unit
    if before.type in PADDING_TYPES and layer.type in PADDED_TYPES:
        return unit
    return None


def find_folds(layers: list[Layer], keep: frozenset[str] = frozenset()) -> list[Fold]:
    """The units of ``layers`` (in topological order), one :class:`Fold` each. ``keep`` names
    units to unfold: nothing folds into them, and what would have is drawn on its own."""
    by_name = {layer.name: layer for layer in layers}
    consumers = _consumers(layers)
    unit_of: dict[str, str] = {}     # folded layer -> the unit it joined
    after: dict[str, list[str]] = {}
    before: dict[str, tuple[str, ...]] = {}
    order: list[str] = []
    unfolded = set(keep)             # the kept units and the layers that stay out of them
    for layer in layers:
        source = by_name[layer.inbound[0]] if len(layer.inbound) == 1 else None
        if source is not None and _folds_into_previous(layer, source, consumers):
            unit = unit_of.get(source.name, source.name)
            if unit not in unfolded:
                unit_of[layer.name] = unit
                after[unit].append(layer.name)
                continue
            unfolded.add(layer.name)
        preparing = _unit_folding_before(layer, by_name, unit_of, consumers)
        if preparing is not None and not {layer.name, preparing} & unfolded:
            order.remove(preparing)
            before[layer.name] = (*before.pop(preparing, ()), preparing, *after.pop(preparing))
            for name in before[layer.name]:
                unit_of[name] = layer.name
        order.append(layer.name)
        after[layer.name] = []
    return [Fold(name, before.get(name, ()), tuple(after[name])) for name in order]


def unit_label(fold: Fold, by_name: dict[str, Layer]) -> str:
    """``conv1 + BN + ReLU``, ``Flatten + fc1``, ``pad + conv1``; a lone layer is its name."""
    parts = [short_name(by_name[name]) for name in fold.before] + [fold.unit]
    parts += [short_name(by_name[name]) for name in fold.after]
    return " + ".join(parts)


def fold_export(export: NetworkExport, keep: frozenset[str] = frozenset()) -> NetworkExport:
    """The export as units: folded layers leave the layer list, each unit shows its last folded
    layer's activations, and inbound names point at units. Arrays are shared, not copied."""
    folds = find_folds(export.layers, keep)
    if all(not f.before and not f.after for f in folds):
        return export
    by_name = {layer.name: layer for layer in export.layers}
    unit_of = {name: f.unit for f in folds for name in (*f.before, f.unit, *f.after)}
    units = []
    for fold in folds:
        layer = by_name[fold.unit]
        inbound = layer.inbound
        if fold.before:  # the Dense takes the maps the Flatten was given
            inbound = by_name[fold.before[0]].inbound
        units.append(replace(
            layer, inbound=tuple(unit_of[name] for name in inbound),
            output_shape=by_name[fold.shown].output_shape,
            folded=fold.before + fold.after,
            unit_label=unit_label(fold, by_name) if fold.before or fold.after else None))
    epochs = [_unit_epoch(epoch, folds) for epoch in export.epochs]
    return replace(export, layers=units, epochs=epochs)


def _unit_epoch(epoch: Epoch, folds: list[Fold]) -> Epoch:
    """The epoch with each unit's activations (its last folded layer's); weights stay keyed by
    layer name, which each unit keeps."""
    activations = {f.unit: epoch.activations[f.shown] for f in folds
                   if f.shown in epoch.activations}
    return replace(epoch, activations=activations)
