"""Per-epoch checkpoints: finding and numbering them in a folder, loading each one's weights into
the model, and :func:`export_checkpoints`, the source that makes one export of them all.

Finding and numbering needs no TensorFlow, so the command line checks a checkpoint folder before
it spends seconds importing it; loading imports Keras and TensorFlow when it is first needed.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ExportError
from .models import MODEL_SUFFIXES, load_model
from .text import log


@dataclass(frozen=True)
class Checkpoint:
    epoch: int
    path: Path          # the file, or a TF checkpoint's prefix (without .index)
    kind: str           # "keras" (weights.h5/.keras/.h5) or "tf" (tf.train.Checkpoint)


_EPOCH_WORD = re.compile(r"epoch[_\-. ]?0*(\d+)", re.IGNORECASE)
_NUMBER = re.compile(r"\d+")


def _epoch_from_name(stem: str) -> int | None:
    match = _EPOCH_WORD.search(stem)
    if match:
        return int(match.group(1))
    numbers = _NUMBER.findall(stem)
    return int(numbers[0]) if numbers else None


def list_checkpoints(folder: os.PathLike | str) -> list[Checkpoint]:
    """Per-epoch weights in ``folder``, sorted by epoch.

    Keras weight files (``*.weights.h5``, ``*.keras``, ``*.h5``): the epoch is the number after
    "epoch" in the name, else the first number (``epoch_003.weights.h5``, ``weights.03.weights.h5``
    and ``weights.03-0.41.weights.h5`` are all epoch 3). TensorFlow checkpoints
    (``ckpt-N.index`` + data files): epoch N.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"checkpoint folder {str(folder)!r} does not exist or is not a folder")
    found: list[Checkpoint] = []
    for path in sorted(folder.iterdir()):
        name = path.name
        if not path.is_file():
            continue
        if name.endswith(".index"):
            prefix = path.with_suffix("")
            match = re.search(r"-(\d+)$", prefix.name)
            epoch = int(match.group(1)) if match else _epoch_from_name(prefix.name)
            kind = "tf"
            target = prefix
        elif name.endswith(".weights.h5") or name.endswith(MODEL_SUFFIXES):
            stem = name[:-len(".weights.h5")] if name.endswith(".weights.h5") else path.stem
            epoch = _epoch_from_name(stem)
            kind = "keras"
            target = path
        else:
            continue
        if epoch is None:
            raise ExportError(f"checkpoint {name!r} has no epoch number in its name "
                              f"(expected e.g. epoch_003.weights.h5 or ckpt-3.index)")
        found.append(Checkpoint(epoch, target, kind))
    if not found:
        raise ExportError(f"no checkpoints in {str(folder)!r} (expected *.weights.h5 files or "
                          f"TensorFlow ckpt-N.index files)")
    found.sort(key=lambda c: c.epoch)
    for a, b in zip(found, found[1:]):
        if a.epoch == b.epoch:
            raise ExportError(f"checkpoints {a.path.name!r} and {b.path.name!r} both are epoch "
                              f"{a.epoch}")
    return found


# --------------------------------------------------------------------------------------------
# Exporting: one epoch per checkpoint


def export_checkpoints(model, checkpoint_dir: os.PathLike | str, samples, out_dir: os.PathLike | str,
                       labels=None, name: str | None = None, activation_dtype: str = "float16", *,
                       metrics: Mapping[int, Mapping[str, float]] | None = None,
                       class_names: Sequence[str] | None = None,
                       sample_names: Sequence[str] | None = None, batch_size: int = 32,
                       verbose: bool = True, explain: bool | None = None) -> Path:
    """One export with an epoch per checkpoint in ``checkpoint_dir``.

    ``model``: a model file (.keras/.h5, or a SavedModel folder) or a ``keras.Model``; each
    checkpoint's weights are loaded into it in turn. ``metrics``: optional {epoch: {name: value}},
    e.g. from :func:`nnvis_export.read_metrics_log` (a CSVLogger file or a History JSON).
    ``explain``: class evidence maps per epoch, as for ``export_model``.
    """
    import keras

    from .session import ExportSession

    if not isinstance(model, keras.Model):
        model = load_model(model)
    checkpoints = list_checkpoints(checkpoint_dir)
    log(verbose, f"{len(checkpoints)} checkpoints: epochs "
                 f"{', '.join(str(c.epoch) for c in checkpoints)}")
    session = ExportSession(model, samples, out_dir, labels=labels, name=name,
                            activation_dtype=activation_dtype, class_names=class_names,
                            sample_names=sample_names, batch_size=batch_size, verbose=verbose,
                            explain=explain)
    try:
        for checkpoint in checkpoints:
            load_checkpoint(model, checkpoint)
            session.record(checkpoint.epoch, (metrics or {}).get(checkpoint.epoch))
    except BaseException:
        session.abort()
        raise
    return session.finish()


# --------------------------------------------------------------------------------------------
# Loading one checkpoint's weights into the model


def load_checkpoint(model, checkpoint: Checkpoint) -> None:
    """Load ``checkpoint``'s weights into ``model``; one ExportError line when they do not fit."""
    if checkpoint.kind == "tf":
        _restore_tf_checkpoint(model, checkpoint)
        return
    with _keras_warnings_held_back():
        try:
            model.load_weights(str(checkpoint.path))
        except Exception as exc:  # noqa: BLE001 - Keras raises ValueError, KeyError, OSError...
            raise _checkpoint_error(model, checkpoint, exc) from None


def _restore_tf_checkpoint(model, checkpoint: Checkpoint) -> None:
    import tensorflow as tf

    prefix = checkpoint.path
    try:
        saved_shapes = dict(tf.train.list_variables(str(prefix)))
    except Exception as exc:  # noqa: BLE001 - tf raises many kinds for a broken checkpoint
        raise ExportError(f"cannot read TensorFlow checkpoint {prefix.name!r}: "
                          f"{_first_line(exc)}") from None
    roots = list(dict.fromkeys(n.split("/")[0] for n in saved_shapes if "/" in n
                               and not n.startswith(("_CHECKPOINTABLE_OBJECT_GRAPH",
                                                     "save_counter"))))
    roots.sort(key=lambda r: (r not in ("model", "net", "network"), r))
    for root in roots:
        # A checkpoint of another architecture is found before restoring: a failed restore
        # stays referenced by the model and logs every unrestored value when it is deleted.
        for path, variable in _checkpoint_variables(tf, root, model):
            saved = saved_shapes.get(f"{path}/.ATTRIBUTES/VARIABLE_VALUE")
            if saved is not None and tuple(saved) != tuple(variable.shape):
                raise _shape_mismatch(model, checkpoint, str(variable.path),
                                      tuple(variable.shape), tuple(saved))
        try:
            status = tf.train.Checkpoint(**{root: model}).read(str(prefix))
        except Exception as exc:  # noqa: BLE001 - tf raises many kinds for a broken checkpoint
            raise _checkpoint_error(model, checkpoint, exc) from None
        try:
            status.assert_existing_objects_matched()
        except AssertionError:
            status.expect_partial()
            continue
        status.expect_partial()  # the optimizer's slots may be in there too
        return
    raise ExportError(f"TensorFlow checkpoint {prefix.name!r} does not hold this model's weights "
                      f"(tried tf.train.Checkpoint keys {roots})")


def _checkpoint_variables(tf, root: str, model) -> list[tuple[str, Any]]:
    """(checkpoint key, variable) of every model variable, keyed as ``tf.train.Checkpoint(
    **{root: model})`` writes them (``model/_operations/1/_kernel``)."""
    import keras

    checkpoint = tf.train.Checkpoint(**{root: model})  # the view holds only a weak reference
    view = tf.train.TrackableView(checkpoint)
    found, seen, queue = [], set(), [(checkpoint, "")]
    for node, path in queue:  # breadth first: the model's layers in order, as the message wants
        for name, child in view.children(node).items():
            if id(child) in seen:
                continue
            seen.add(id(child))
            child_path = f"{path}/{name}" if path else name
            if isinstance(child, (keras.Variable, tf.Variable)):
                found.append((child_path, child))
            else:
                queue.append((child, child_path))
    return found


@contextlib.contextmanager
def _keras_warnings_held_back():
    """Hold back Keras's warnings while a checkpoint loads: on a mismatch they are several
    "Skipping ..." lines that bury the one line :func:`_checkpoint_error` makes of the error.
    The warnings of a load that succeeds are shown as usual."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename,
                               warning.lineno)


# --------------------------------------------------------------------------------------------
# One line for a checkpoint that does not fit


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# Keras: "... variable.shape=(144, 32), Received: value.shape=(144, 16). Target variable:
# <Variable path=dense1/kernel, ..." (the rest of that message prints the variable's values)
_KERAS_SHAPE_MISMATCH = re.compile(r"variable\.shape=(\([^)]*\)), Received: value\.shape="
                                   r"(\([^)]*\))\. Target variable: <Variable path=([^,>\s]+)")


def _first_line(exc: BaseException) -> str:
    text = _ANSI_ESCAPE.sub("", str(exc))
    return next((line.strip() for line in text.splitlines() if line.strip()),
                type(exc).__name__)


def _checkpoint_error(model, checkpoint: Checkpoint, exc: BaseException) -> ExportError:
    """One line for a checkpoint that does not load: for Keras's shape mismatch (a checkpoint of
    another architecture; its message goes on to print the variable's values) the layer, the
    weight and both shapes, else the error's first line."""
    match = _KERAS_SHAPE_MISMATCH.search(_ANSI_ESCAPE.sub("", str(exc)))
    if match is None:
        return ExportError(f"cannot load checkpoint {checkpoint.path.name!r} into model "
                           f"{model.name!r}: {_first_line(exc)}")
    model_shape, saved_shape, variable = match.groups()
    return _shape_mismatch(model, checkpoint, variable, model_shape, saved_shape)


def _shape_mismatch(model, checkpoint: Checkpoint, variable_path: str, model_shape,
                    saved_shape) -> ExportError:
    layer, weight = _variable_owner(model, variable_path)
    return ExportError(f"checkpoint {checkpoint.path.name!r} does not fit model {model.name!r}: "
                       f"layer {layer!r} {weight} has shape {_tuple_text(model_shape)} in the "
                       f"model but {_tuple_text(saved_shape)} in the checkpoint (saved from "
                       f"another architecture?)")


def _tuple_text(shape) -> str:
    """A shape as Python writes a tuple, whether it came as a tuple or as Keras's text."""
    return shape if isinstance(shape, str) else str(tuple(int(d) for d in shape))


def _variable_owner(model, variable_path: str) -> tuple[str, str]:
    """The model's layer holding the variable at ``variable_path`` and the weight's name there
    (as the export names it)."""
    from .graph import weight_names

    for layer in model.layers:
        variables = list(layer.weights)
        for variable, name in zip(variables, weight_names(layer, variables)):
            if str(getattr(variable, "path", "")).split(":")[0] == variable_path:
                return layer.name, name
    layer, _, weight = variable_path.rpartition("/")
    return layer or variable_path, weight
