"""Model files: checking a path can hold a model (no TensorFlow), and loading a ``.keras``/``.h5``
file in Keras's safe mode or wrapping a SavedModel folder as a one-layer Keras model.

Importing this module does not import TensorFlow; :func:`load_model` does.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ExportError
from .text import file_name, log

#: Files that hold a whole model (or, in a checkpoint folder, per-epoch weights).
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def check_model_path(path: os.PathLike | str) -> Path:
    """``path`` when it can hold a model (.keras/.h5 file, SavedModel folder), else ExportError."""
    path = Path(path)
    if not path.exists():
        raise ExportError(f"model {str(path)!r} does not exist")
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return path
        raise ExportError(f"{str(path)!r} is a folder without saved_model.pb; expected a .keras or "
                          f".h5 file or a SavedModel folder")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ExportError(f"model {path.name!r}: expected a .keras or .h5 file or a SavedModel "
                          f"folder")
    return path


def load_model(path: os.PathLike | str, *, safe_mode: bool = True, verbose: bool = True):
    """Load a ``.keras``/``.h5`` model or wrap a SavedModel folder.

    ``safe_mode=True`` (Keras's own safe mode) refuses Python code stored in the file (Lambda
    layers), because loading it would run that code; pass ``safe_mode=False`` only for files
    you trust.
    """
    import keras

    path = check_model_path(path)
    if path.is_dir():
        return _load_saved_model(path, verbose)
    try:
        return keras.models.load_model(path, safe_mode=safe_mode, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds for a bad file
        if safe_mode and "safe_mode" in str(exc):
            raise ExportError(_code_refused_message(path)) from None
        raise ExportError(f"cannot load model {path.name!r}: {exc}") from None


def _code_refused_message(path: Path) -> str:
    names = _lambda_layer_names(path)
    which = (f"layer{'s' if len(names) > 1 else ''} {', '.join(repr(n) for n in names)} "
             f"(Lambda)" if names else "a layer (Lambda)")
    return (f"cannot load model {path.name!r}: {which} holds Python code, which Keras's safe mode "
            f"refuses because loading it runs code stored in the file. If you trust the file: "
            f"nnvis-export --unsafe-load-code, or from Python "
            f"nnvis_export.load_model(path, safe_mode=False) and pass the model to export_model")


def _lambda_layer_names(path: Path) -> list[str]:
    """The Lambda layers named in a saved model's configuration (.keras or .h5); [] when the
    configuration cannot be read (the message then names no layer)."""
    import json
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read("config.json"))
        else:
            import h5py

            with h5py.File(path, "r") as file:
                raw = file.attrs.get("model_config")
                config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except Exception:  # noqa: BLE001 - only used to improve a message; Keras read the file
        return []
    names, stack = [], [config]
    while stack:  # iterative: a hostile file's nesting cannot exhaust the Python stack
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda" and isinstance(node.get("config"), dict):
                names.append(str(node["config"].get("name", "?")))
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return list(dict.fromkeys(names))


def _load_saved_model(path: Path, verbose: bool = True):
    """A SavedModel's serving function as a one-layer Keras model (its inner layers are opaque)."""
    import keras
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"cannot load SavedModel {path.name!r}: {exc}") from None
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    endpoint = "serving_default" if "serving_default" in signatures else \
        (next(iter(signatures)) if len(signatures) == 1 else None)
    if endpoint is None:
        raise ExportError(f"SavedModel {path.name!r} has no serving_default signature; export it "
                          f"from Keras with model.export() or save it as .keras")
    _, kwargs = signatures[endpoint].structured_input_signature
    if len(kwargs) != 1:
        raise ExportError(f"SavedModel {path.name!r} signature {endpoint!r} takes {len(kwargs)} "
                          f"inputs; nnvis format v1 records models with exactly one input")
    input_name, spec = next(iter(kwargs.items()))
    if spec.shape.rank is None or spec.shape.rank < 2:
        raise ExportError(f"SavedModel {path.name!r}: input {input_name!r} has shape {spec.shape}, "
                          f"expected a batch of samples")
    outputs = signatures[endpoint].structured_outputs
    if isinstance(outputs, dict) and len(outputs) != 1:
        raise ExportError(f"SavedModel {path.name!r} signature {endpoint!r} has {len(outputs)} "
                          f"outputs; only single-output SavedModels are supported")
    inputs = keras.Input(shape=tuple(spec.shape[1:]), dtype=spec.dtype.name, name=input_name)
    layer = keras.layers.TFSMLayer(str(path), call_endpoint=endpoint,
                                   name=file_name(path.name) + "_savedmodel")
    result = layer(inputs)
    if isinstance(result, dict):
        result = next(iter(result.values()))
    log(verbose, f"note: {path.name} is a SavedModel; its layers are not visible to Keras, so "
                 f"the export shows it as one {type(layer).__name__} layer (save the model as "
                 f".keras to see every layer)")
    return keras.Model(inputs, result, name=file_name(path.name))


#: A saved ``torch.export`` program; weight files PyTorch users often have instead.
TORCH_PROGRAM_SUFFIXES = (".pt2",)
TORCH_WEIGHT_SUFFIXES = (".pt", ".pth")


def is_torch_path(path: os.PathLike | str) -> bool:
    """Whether ``path`` names a PyTorch file (a .pt2 program, or a .pt/.pth weights file)."""
    return Path(path).suffix.lower() in TORCH_PROGRAM_SUFFIXES + TORCH_WEIGHT_SUFFIXES


def check_torch_program_path(path: os.PathLike | str) -> Path:
    """``path`` when it is a saved ``torch.export`` program (``.pt2``); a clear ExportError for a
    ``.pt``/``.pth`` file (a state dict or a pickled module: no graph, and loading pickles runs
    code). No torch needed."""
    path = Path(path)
    if path.suffix.lower() in TORCH_WEIGHT_SUFFIXES:
        raise ExportError(f"{path.name!r} is a PyTorch weights file (a state_dict or a pickled "
                          f"module) without a graph, and nnvis never unpickles; save the model "
                          f"with torch.export.save(torch.export.export(model, (x,)), 'model.pt2'), "
                          f"or export from Python with nnvis_export.export_torch(model, samples, "
                          f"out_dir)")
    if path.suffix.lower() not in TORCH_PROGRAM_SUFFIXES:
        raise ExportError(f"model {path.name!r}: expected a torch.export program (.pt2)")
    if not path.is_file():
        raise ExportError(f"model {str(path)!r} does not exist")
    return path
