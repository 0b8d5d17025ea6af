"""Small, valid nnvis exports for tests, written with ``ExportWriter`` (no TensorFlow).

    from export_factory import make_export, cnn_layers
    built = make_export(tmp_path, samples=3, epochs=2)
    net = read_export(built.path)

``make_export`` returns a :class:`BuiltExport` holding the document path and every array it wrote
(already cast to the stored dtype), so a test can compare what it reads with what went in.
``cnn_layers`` gives the default chain Input(6,6,1) -> Conv2D(4, 3x3 valid) -> MaxPooling2D(2)
-> Flatten -> Dense(5); ``dense_layers`` and ``LayerDef`` build others.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # when run as a script (python tests/hostile_corpus.py)
    sys.path.insert(0, str(_ROOT))

from nnvis_addon.core.export_format import DOCUMENT_SUFFIX, ExportWriter  # noqa: E402

GENERATOR = "nnvis tests/export_factory.py"


@dataclass
class LayerDef:
    """One layer of a test model; ``inbound=None`` means "the layer before it"."""

    name: str
    type: str
    output_shape: tuple[int, ...]
    weights: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    inbound: list[str] | None = None


def cnn_layers(input_shape: Sequence[int] = (6, 6, 1), filters: int = 4, kernel: int = 3,
               pool: int = 2, units: int = 5) -> list[LayerDef]:
    """Input -> Conv2D(filters, kernel x kernel, valid) -> MaxPooling2D(pool) -> Flatten -> Dense."""
    h, w, c = input_shape
    ch, cw = h - kernel + 1, w - kernel + 1
    ph, pw = ch // pool, cw // pool
    if min(ch, cw, ph, pw) < 1:
        raise ValueError(f"input {input_shape} too small for kernel {kernel} and pool {pool}")
    flat = ph * pw * filters
    return [
        LayerDef("input", "InputLayer", (h, w, c), inbound=[]),
        LayerDef("conv", "Conv2D", (ch, cw, filters),
                 weights=[("kernel", (kernel, kernel, c, filters)), ("bias", (filters,))],
                 config={"filters": filters, "kernel_size": [kernel, kernel],
                         "activation": "relu"}),
        LayerDef("pool", "MaxPooling2D", (ph, pw, filters), config={"pool_size": [pool, pool]}),
        LayerDef("flatten", "Flatten", (flat,)),
        LayerDef("dense", "Dense", (units,), weights=[("kernel", (flat, units)), ("bias", (units,))],
                 config={"units": units, "activation": "softmax"}),
    ]


def dense_layers(input_size: int, units: Sequence[int]) -> list[LayerDef]:
    """Input(input_size) -> Dense(u) for each u in ``units``."""
    layers = [LayerDef("input", "InputLayer", (input_size,), inbound=[])]
    previous = input_size
    for index, u in enumerate(units):
        layers.append(LayerDef(f"dense_{index}", "Dense", (u,),
                               weights=[("kernel", (previous, u)), ("bias", (u,))],
                               config={"units": u}))
        previous = u
    return layers


@dataclass
class BuiltExport:
    path: Path                      # the structure document, for read_export
    folder: Path
    name: str
    layers: list[LayerDef]
    input_shape: tuple[int, ...]
    inputs: list[np.ndarray]                     # per sample
    scores: list[np.ndarray]                     # per sample
    labels: list[int]
    epoch_numbers: list[int]
    weights: list[dict[str, list[np.ndarray]]]   # per epoch: layer -> [arrays]
    activations: list[dict[str, np.ndarray]]     # per epoch: layer -> (S, *output_shape)
    dtypes: dict[str, str]

    @property
    def sidecar(self) -> Path:
        return self.folder / f"{self.name}.bin"

    def document(self) -> dict:
        return load_document(self.path)


def random_values(rng: np.random.Generator, shape: Sequence[int], dtype: str,
                  extreme: bool = False) -> np.ndarray:
    """Random values of ``dtype``; ``extreme`` mixes in the dtype's limits, -0.0, subnormals."""
    shape = tuple(shape)
    kind = np.dtype(dtype).kind
    if kind == "f":
        values = rng.standard_normal(shape).astype(dtype)
        if extreme and values.size:
            info = np.finfo(dtype)
            specials = np.array([info.max, info.min, info.tiny, -0.0, info.smallest_subnormal, 1.0],
                                dtype=dtype)
            flat = values.reshape(-1)
            picks = rng.random(flat.size) < 0.3
            flat[picks] = rng.choice(specials, size=int(picks.sum()))
        return values
    info = np.iinfo(dtype)
    if extreme:
        values = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
        flat = values.reshape(-1)
        if flat.size:
            flat[0] = info.max
            flat[-1] = info.min
        return values
    return rng.integers(max(info.min, -100), min(info.max, 100), size=shape, dtype=dtype,
                        endpoint=True)


def make_export(folder: Path | str, *, name: str = "tiny", layers: list[LayerDef] | None = None,
                input_shape: Sequence[int] | None = None, samples: int = 2, epochs: int = 2,
                epoch_numbers: Sequence[int] | None = None, input_dtype: str = "float32",
                weight_dtype: str = "float32", activation_dtype: str = "float16",
                score_dtype: str = "float32", seed: int = 0, extreme: bool = False,
                class_names: list[str] | None = None,
                mutate_values: Callable[[str, np.ndarray], np.ndarray] | None = None) -> BuiltExport:
    """Write a valid export into ``folder`` and return what went into it.

    ``mutate_values(what, array)`` may replace any array before it is written (``what`` is e.g.
    ``"input/0"``, ``"weights/1/conv/kernel"``, ``"activations/0/pool"``, ``"scores/1"``); it is
    how tests plant NaN/Inf values.
    """
    folder = Path(folder)
    layers = cnn_layers() if layers is None else layers
    input_shape = tuple(input_shape or layers[0].output_shape)
    rng = np.random.default_rng(seed)
    writer = ExportWriter(folder, name)
    mutate = mutate_values or (lambda what, array: array)
    units = layers[-1].output_shape[-1]

    def add(what: str, array: np.ndarray, dtype: str) -> tuple[int, np.ndarray]:
        array = np.ascontiguousarray(mutate(what, array), dtype=np.dtype(dtype).newbyteorder("<"))
        return writer.add_array(array, dtype=dtype), array

    sample_specs, inputs, scores, labels = [], [], [], []
    for s in range(samples):
        ref, array = add(f"input/{s}", random_values(rng, input_shape, input_dtype, extreme),
                         input_dtype)
        inputs.append(array)
        score_ref, score = add(f"scores/{s}", random_values(rng, (units,), score_dtype, extreme),
                               score_dtype)
        scores.append(score)
        label = int(rng.integers(0, units))
        labels.append(label)
        sample_specs.append({"name": f"sample {s}", "input": ref, "label": label,
                             "prediction": {"class": int(rng.integers(0, units)), "scores": score_ref}})

    numbers = list(epoch_numbers) if epoch_numbers is not None else list(range(1, epochs + 1))
    epoch_specs, all_weights, all_activations = [], [], []
    for e, number in enumerate(numbers):
        weight_refs, weights = {}, {}
        activation_refs, activations = {}, {}
        for layer in layers:
            if layer.weights:
                refs, arrays = [], []
                for weight_name, shape in layer.weights:
                    ref, array = add(f"weights/{e}/{layer.name}/{weight_name}",
                                     random_values(rng, shape, weight_dtype, extreme), weight_dtype)
                    refs.append(ref)
                    arrays.append(array)
                weight_refs[layer.name] = refs
                weights[layer.name] = arrays
            ref, array = add(f"activations/{e}/{layer.name}",
                             random_values(rng, (samples, *layer.output_shape), activation_dtype,
                                           extreme), activation_dtype)
            activation_refs[layer.name] = ref
            activations[layer.name] = array
        epoch_specs.append({
            "epoch": int(number),
            "metrics": {"loss": round(1.0 / (e + 1), 6), "accuracy": min(1.0, 0.2 * (e + 1))},
            "predictions": [int(rng.integers(0, units)) for _ in range(samples)],
            "weights": weight_refs,
            "activations": activation_refs,
        })
        all_weights.append(weights)
        all_activations.append(activations)

    layer_specs = []
    previous = None
    for layer in layers:
        spec: dict[str, Any] = {
            "name": layer.name, "type": layer.type, "output_shape": list(layer.output_shape),
            "inbound": list(layer.inbound) if layer.inbound is not None else
            ([previous] if previous else []),
        }
        if layer.config:
            spec["config"] = layer.config
        if layer.weights:
            spec["weights"] = [{"name": n, "shape": list(shape)} for n, shape in layer.weights]
            spec["params"] = sum(math.prod(shape) for _, shape in layer.weights)
        layer_specs.append(spec)
        previous = layer.name

    model: dict[str, Any] = {"name": name, "frameworks": {"numpy": np.__version__},
                             "input_shape": list(input_shape)}
    if class_names is not None:
        model["class_names"] = class_names
    path = writer.publish(model=model, layers=layer_specs, samples=sample_specs, epochs=epoch_specs,
                         generator=GENERATOR)
    return BuiltExport(path=path, folder=folder, name=name, layers=layers, input_shape=input_shape,
                       inputs=inputs, scores=scores, labels=labels, epoch_numbers=numbers,
                       weights=all_weights, activations=all_activations,
                       dtypes={"input": input_dtype, "weights": weight_dtype,
                               "activations": activation_dtype, "scores": score_dtype})


def load_document(path: Path | str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_document(path: Path | str, document: Any) -> Path:
    """Write ``document`` as JSON (no validation: tests use it to plant bad values)."""
    path = Path(path)
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path


def document_path(folder: Path | str, name: str = "tiny") -> Path:
    return Path(folder) / f"{name}{DOCUMENT_SUFFIX}"


def sample_photos(height: int, width: int) -> list[np.ndarray]:
    """scikit-learn's two sample photographs (china.jpg, flower.jpg), resized to ``height`` x
    ``width`` with Pillow: float32 (H, W, 3) arrays of 0..255 pixel values."""
    from PIL import Image
    from sklearn.datasets import load_sample_images
    return [np.asarray(Image.fromarray(image).resize((width, height), Image.LANCZOS), np.float32)
            for image in load_sample_images().images]


def photo_export(folder: Path | str, *, height: int = 24, width: int = 36, filters: int = 4,
                 name: str = "photo", scale: Callable[[np.ndarray], np.ndarray] | None = None,
                 **options) -> BuiltExport:
    """A CNN export (``cnn_layers`` on an H x W x 3 input) whose two samples are the sample
    photos (china, flower), as 0..255 values or ``scale(photo)``; the input layer's activations
    are the same pictures, as the format says. ``options`` go to :func:`make_export`."""
    photos = [(scale or (lambda p: p))(p) for p in sample_photos(height, width)]

    def put_photos(what: str, array: np.ndarray) -> np.ndarray:
        if what.startswith("input/"):
            return photos[int(what.split("/")[1])]
        if what.startswith("activations/") and what.endswith("/input"):
            return np.stack(photos)
        return array

    return make_export(folder, name=name, layers=cnn_layers((height, width, 3), filters=filters),
                       samples=len(photos), mutate_values=put_photos,
                       activation_dtype="float32", **options)
