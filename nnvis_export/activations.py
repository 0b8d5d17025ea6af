"""Every layer's activations for the samples: one multi-output Keras model over the model's own
graph and weights, one ``predict`` call per epoch, and the eager fallback for layer names that
TensorFlow refuses in a compiled graph."""

from __future__ import annotations

import re

import keras
import numpy as np

from .errors import ExportError
from .graph import GraphLayer, model_output
from .text import file_name, log

_REFUSED_SCOPE = re.compile(r"'(.*?)' is not a valid (?:root )?scope name")


class ActivationProbe:
    """A ``keras.Model`` from the model's input to every layer's output, sharing its weights.

    The activations are cast to ``dtype`` inside the model (TensorFlow's cast is multi-threaded
    and halves what comes back for float16); the model's first output also comes back as float32
    for the predictions.

    TensorFlow refuses layer names outside ASCII letters, digits and ``_ . - / >`` (``'conv 1'``,
    ``'faltung_ä'``) as name scopes of a compiled graph, so such a model cannot ``predict``; it
    still runs eagerly, and the probe falls back to that (:attr:`eager`).
    """

    def __init__(self, model, graph: list[GraphLayer], dtype: str = "float32",
                 verbose: bool = True):
        self.graph = graph
        self.dtype = dtype
        self.verbose = verbose
        self.eager = False
        self.computed = [g for g in graph if not g.is_input]
        if not self.computed:
            raise ExportError(f"model {model.name!r} has no layers besides its input")
        outputs = [g.tensor if str(g.tensor.dtype) == dtype else keras.ops.cast(g.tensor, dtype)
                   for g in self.computed]
        outputs.append(keras.ops.cast(model_output(model), "float32"))
        # The probe's own name is the graph's root scope: kept to characters TensorFlow allows.
        self.model = keras.Model(inputs=graph[0].tensor, outputs=outputs,
                                 name=f"nnvis_activations_{file_name(model.name)}")

    def run(self, samples: np.ndarray, batch_size: int = 32
            ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Every non-input layer's activations for ``samples``, shape (S, *output_shape), and
        the model's (first) output as float32: one call over all samples."""
        outputs = None
        if not self.eager:
            try:
                outputs = self._predict(samples, batch_size)
            except ValueError as exc:
                refused = refused_scope_name(exc)
                if refused is None:
                    raise
                self.eager = True
                log(self.verbose, f"note: layer {refused!r} has a name TensorFlow refuses in a "
                                  f"compiled graph (only ASCII letters, digits and _ . - / > "
                                  f"are allowed); computing the activations eagerly instead")
        if outputs is None:
            outputs = self._call_eagerly(samples, batch_size)
        activations = {g.name: out for g, out in zip(self.computed, outputs)}
        return activations, outputs[-1]

    def _predict(self, samples: np.ndarray, batch_size: int) -> list[np.ndarray]:
        if samples.shape[0] <= batch_size:
            outputs = self.model.predict_on_batch(samples)
        else:
            outputs = self.model.predict(samples, batch_size=batch_size, verbose=0)
        return [np.asarray(out) for out in outputs]

    def _call_eagerly(self, samples: np.ndarray, batch_size: int) -> list[np.ndarray]:
        batches = []
        for start in range(0, samples.shape[0], batch_size):
            outputs = self.model(samples[start:start + batch_size], training=False)
            batches.append([keras.ops.convert_to_numpy(out) for out in outputs])
        return [np.concatenate(parts) for parts in zip(*batches)]


def refused_scope_name(exc: BaseException) -> str | None:
    """The layer name in TensorFlow's "'<name>' is not a valid scope name" error, else None."""
    match = _REFUSED_SCOPE.search(str(exc))
    return match.group(1) if match else None
