"""Class evidence for every recorded sample and epoch (format 1.1 ``explanations``), from a Keras
model with ``tf.GradientTape``:

* **Grad-CAM** (Selvaraju et al.) of the last convolution: the class score's gradient with
  respect to the convolution's maps, averaged over each map, weighs the maps; the map is
  ``ReLU(sum_k alpha_k * A_k)`` over the convolution's positions, (S, *spatial);
* **saliency** (plain input gradient, Simonyan et al.): ``max over channels |d score / d input|``,
  (S, *input spatial).

Each for the class the model predicts at the epoch and, when every sample has a label, for the
true label. The class score is the pre-softmax logit when the model ends in a softmax or sigmoid
(a Dense layer's own activation or an Activation/Softmax layer): Grad-CAM differentiates the
logit, whose gradient a saturated softmax does not flatten; otherwise the output as it is.
``explain.score`` in the export says which. A one-unit (sigmoid) output's evidence for class 0
is that of minus its score.

PyTorch and ONNX sources hook into the same format through ``writing.EpochWriter``
(``explain`` and ``write_epoch(..., explanations=...)``); this module is the Keras one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from .activations import refused_scope_name
from .graph import GraphLayer, layer_config, model_output, output_layer_name
from .text import log

#: Layer types whose output Grad-CAM can explain (the last one in the graph is used).
CONVOLUTION_TYPES = frozenset({"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D",
                               "SeparableConv1D", "SeparableConv2D", "Conv1DTranspose",
                               "Conv2DTranspose", "Conv3DTranspose"})
SQUASHING = ("softmax", "sigmoid")


def last_convolution(graph: Sequence[GraphLayer], output: str | None = None) -> GraphLayer | None:
    """The last convolution in graph order whose output is maps and that ``output`` (a layer
    name, default the last layer) depends on; None when there is none."""
    by_name = {g.name: g for g in graph}
    upstream, stack = set(), [output or graph[-1].name]
    while stack:
        name = stack.pop()
        if name not in upstream:
            upstream.add(name)
            stack.extend(by_name[name].inbound)
    found = [g for g in graph if g.type in CONVOLUTION_TYPES and len(g.tensor.shape) >= 3
             and g.name in upstream]
    return found[-1] if found else None


@dataclass
class _Score:
    """Where the class score comes from: a tensor of the graph and what turns it into scores."""

    tensor: Any
    head: Any            # callable: the tensor's value -> (S, classes) scores
    kind: str            # "logit" or "output"


def class_score(model, graph: Sequence[GraphLayer]) -> _Score:
    """The pre-squashing logits when the model ends in a softmax/sigmoid, else its output."""
    by_name = {g.name: g for g in graph}
    out = by_name[output_layer_name(model)]
    activation = layer_config(out.layer).get("activation")
    single = len(out.inbound) == 1
    if out.type == "Dense" and activation in SQUASHING and single:
        layer = out.layer

        def dense_logits(inputs):
            logits = keras.ops.matmul(inputs, layer.kernel)
            return logits + layer.bias if layer.bias is not None else logits

        return _Score(by_name[out.inbound[0]].tensor, dense_logits, "logit")
    if single and (out.type == "Softmax" or out.type == "Activation" and activation in SQUASHING):
        return _Score(by_name[out.inbound[0]].tensor, lambda logits: logits, "logit")
    return _Score(out.tensor, lambda scores: scores, "output")


class ClassEvidence:
    """Computes the class evidence maps of a Keras model for samples, at its current weights."""

    def __init__(self, model, graph: Sequence[GraphLayer], verbose: bool = True):
        self.convolution = last_convolution(graph, output_layer_name(model))
        self.score = class_score(model, graph)
        outputs = [self.score.tensor]
        if self.convolution is not None:
            outputs.insert(0, self.convolution.tensor)
        self.model = keras.Model(graph[0].tensor, outputs, name="nnvis_class_evidence")
        self._class_count = int(model_output(model).shape[-1])
        self.verbose = verbose
        # Compiled, so the convolutions' unused weight gradients are pruned: TensorFlow 2.21's
        # oneDNN kernel for them corrupts memory on some CPUs when run eagerly.
        import tensorflow as tf
        self._graph_gradients = tf.function(self._gradients, reduce_retracing=True)

    @property
    def description(self) -> dict[str, str]:
        """The export's ``explain`` field."""
        found = {"score": self.score.kind}
        if self.convolution is not None:
            found["gradcam_layer"] = self.convolution.name
        return found

    def compute(self, samples: np.ndarray, predicted: Sequence[int],
                labels: Sequence[int | None], batch_size: int = 32) -> dict[str, np.ndarray]:
        """{kind: (S, *spatial) float32} for the ``predicted`` classes and, when every sample
        has a label the output can score, for the ``labels``."""
        targets = {"predicted": np.asarray(predicted, np.int64)}
        if labels and all(label is not None for label in labels):
            targets["label"] = np.asarray(labels, np.int64)
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, samples.shape[0], batch_size):
            stop = start + batch_size
            chosen = {name: classes[start:stop] for name, classes in targets.items()}
            for kind, array in self._batch(samples[start:stop], chosen).items():
                parts.setdefault(kind, []).append(array)
        return {kind: np.concatenate(arrays) for kind, arrays in parts.items()}

    def _batch(self, samples: np.ndarray, targets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        names = [name for name, classes in targets.items()
                 if _scorable(classes, self._class_count)]
        if not names:
            return {}
        inputs = tf.convert_to_tensor(samples)
        classes = tf.constant(np.stack([targets[name] for name in names]))
        try:
            maps, gradients = self._graph_gradients(inputs, classes)
        except ValueError as exc:  # a layer name TensorFlow refuses in a compiled graph
            if refused_scope_name(exc) is None:
                raise
            maps, gradients = self._gradients(inputs, classes)
        found = {}
        for name, (map_gradient, input_gradient) in zip(names, gradients):
            if maps is not None:
                found[f"gradcam_{name}"] = grad_cam(maps.numpy(), map_gradient.numpy())
            found[f"saliency_{name}"] = saliency(input_gradient.numpy())
        return found

    def _gradients(self, inputs, classes):
        """The maps and, per row of ``classes``, the gradients of the classes' scores with
        respect to the maps and the inputs. Only the inputs are watched: no weight gradients."""
        import tensorflow as tf

        with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
            tape.watch(inputs)
            outputs = self.model(inputs, training=False)
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            maps = outputs[0] if self.convolution is not None else None
            scores = self.score.head(outputs[-1])
            chosen = [_class_scores(scores, classes[row]) for row in range(classes.shape[0])]
        gradients = [(tape.gradient(score, maps) if maps is not None else None,
                      tape.gradient(score, inputs)) for score in chosen]
        del tape
        return maps, gradients


def _scorable(classes: np.ndarray, count: int) -> bool:
    return bool(np.all((classes >= 0) & (classes < max(count, 2))))


def _class_scores(scores, classes):
    """Sum over the batch of each sample's score for its class (samples stay independent)."""
    import tensorflow as tf

    if int(scores.shape[-1]) == 1:
        sign = tf.where(classes == 1, 1.0, -1.0)
        return tf.reduce_sum(scores[:, 0] * tf.cast(sign, scores.dtype))
    return tf.reduce_sum(tf.gather(scores, classes, axis=1, batch_dims=1))


def grad_cam(maps: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """ReLU of the maps weighed by their gradients' spatial means: (S, spatial...) float32."""
    spatial = tuple(range(1, maps.ndim - 1))
    alpha = gradients.mean(axis=spatial, keepdims=True)
    return np.maximum((alpha * maps).sum(axis=-1), 0.0).astype(np.float32)


def saliency(gradients: np.ndarray) -> np.ndarray:
    """max over channels of |gradient|: (S, spatial...) float32 (a vector input: |gradient|)."""
    magnitude = np.abs(gradients)
    if magnitude.ndim > 2:
        magnitude = magnitude.max(axis=-1)
    return magnitude.astype(np.float32)


def make_class_evidence(model, graph: Sequence[GraphLayer], explain: bool | None,
                        verbose: bool) -> ClassEvidence | None:
    """The evidence computer for an export: ``explain`` None means on for models with a
    convolution and a vector output, False off; True asks for it (a note when it cannot)."""
    if explain is False:
        return None
    if explain is None and last_convolution(graph, output_layer_name(model)) is None:
        return None
    if len(model_output(model).shape) != 2:
        if explain:
            log(verbose, "note: the model's output is not a vector of class scores; "
                         "no class evidence maps")
        return None
    return ClassEvidence(model, graph, verbose)
