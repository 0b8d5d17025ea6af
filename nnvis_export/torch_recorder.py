"""The PyTorch training-time source: :class:`TorchEpochRecorder` for a plain training loop
(``record(epoch, metrics)`` after each epoch, epoch 0 before training), and, when the
``lightning`` package imports, :class:`LightningRecorder`, a Lightning callback doing the same
from ``fit``.

Every ``record`` leaves a complete export on disk (``export_path``), so a crash or a stop
mid-training loses nothing. One export session lasts the whole training: a record writes only
its own epoch (into a sidecar segment of its own, ``<name>.<k>.bin``) and the structure
document, so recording stays linear in the number of epochs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import ExportError
from .torch_source import TorchExportSession
from .writing import check_activation_dtype


class TorchEpochRecorder:
    """Records a module's weights and activations for ``samples`` into one export, epoch by
    epoch::

        recorder = TorchEpochRecorder(model, x_test[:4], "exports/", labels=y_test[:4])
        recorder.record(0)                                # before training
        for epoch in range(1, 11):
            train_one_epoch(model)
            recorder.record(epoch, {"loss": loss, "accuracy": accuracy})
        recorder.finish()                                 # optional: one sidecar file

    ``samples``: an array or tensor (S, C, H, W) in the module's own layout. The module is
    switched to eval mode (no gradients) for each record and back to its mode afterwards.
    Epoch numbers must increase. Options as for :func:`~nnvis_export.torch_source.export_torch`.
    """

    def __init__(self, module, samples, out_dir: os.PathLike | str, labels=None,
                 class_names: Sequence[str] | None = None, *, name: str | None = None,
                 activation_dtype: str = "float16", sample_names: Sequence[str] | None = None,
                 batch_size: int = 32, verbose: bool = True):
        check_activation_dtype(activation_dtype)
        self.module = module
        self.samples = samples
        self.out_dir = Path(out_dir)
        self.options = dict(labels=labels, class_names=class_names, name=name,
                            activation_dtype=activation_dtype, sample_names=sample_names,
                            batch_size=batch_size, verbose=verbose)
        self.export_path: Path | None = None
        self.epochs: list[int] = []
        self._session: TorchExportSession | None = None

    def record(self, epoch: int, metrics: Mapping | None = None) -> Path:
        """Record the module as it is now as epoch ``epoch`` (with its ``metrics``, numbers by
        name); returns the export's path."""
        epoch = int(epoch)
        if self.epochs and epoch <= self.epochs[-1]:
            raise ExportError(f"epoch {epoch} recorded after epoch {self.epochs[-1]}: epoch "
                              f"numbers must increase")
        if self._session is None:  # the first record, or the one after a failed record
            self._session = TorchExportSession(self.module, self.samples, self.out_dir,
                                               continue_from=self.export_path, stacklevel=3,
                                               **self.options)
        try:
            self._session.record(epoch, metrics)
            self.export_path = self._session.publish()
        except BaseException:  # the session removed its partial files; the export
            self._session = None  # published before stays as it was
            raise
        self.epochs.append(epoch)
        return self.export_path

    def finish(self) -> Path:
        """Join the export's sidecar segments into one (``<name>.bin``) once training is over:
        a tidy export of two files. Optional (every record's export is complete already); a
        later ``record`` starts a new session that copies the epochs recorded so far."""
        if self._session is None:
            if self.export_path is None:
                raise ExportError("nothing to finish: no epoch was recorded")
            return self.export_path
        session, self._session = self._session, None
        self.export_path = session.finish()
        return self.export_path


class LightningHooks:
    """What the Lightning callback does, on any trainer with ``current_epoch`` and
    ``callback_metrics``: record epoch 0 when ``fit`` starts from scratch, epoch ``e + 1``
    with the logged metrics after training epoch ``e``, and join the sidecar segments when
    ``fit`` ends."""

    def __init__(self, samples, out_dir: os.PathLike | str, labels=None,
                 class_names: Sequence[str] | None = None, **options):
        self.samples = samples
        self.out_dir = out_dir
        self.labels = labels
        self.class_names = class_names
        self.options = options
        self.recorder: TorchEpochRecorder | None = None

    @property
    def export_path(self) -> Path | None:
        return self.recorder.export_path if self.recorder is not None else None

    def on_fit_start(self, trainer, pl_module) -> None:
        if self.recorder is None or self.recorder.module is not pl_module:
            self.recorder = TorchEpochRecorder(pl_module, self.samples, self.out_dir,
                                               self.labels, self.class_names, **self.options)
        if not self.recorder.epochs or self.recorder.epochs[-1] < trainer.current_epoch:
            self.recorder.record(trainer.current_epoch)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        metrics = {str(k): float(v) for k, v in dict(trainer.callback_metrics).items()
                   if getattr(v, "numel", lambda: 1)() == 1}
        assert self.recorder is not None, "on_fit_start was not called"
        self.recorder.record(trainer.current_epoch + 1, metrics)

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.recorder is not None and self.recorder.epochs:
            self.recorder.finish()


def _lightning_callback_base():
    """Lightning's Callback class (``lightning`` or the older ``pytorch_lightning``), or None."""
    try:
        from lightning.pytorch import Callback
    except ImportError:
        try:
            from pytorch_lightning import Callback
        except ImportError:
            return None
    return Callback


_Callback = _lightning_callback_base()
if _Callback is not None:  # pragma: no cover - lightning is not a dependency of nnvis

    class LightningRecorder(LightningHooks, _Callback):  # type: ignore[valid-type,misc]
        """A Lightning callback: ``Trainer(callbacks=[LightningRecorder(x[:4], "exports/")])``
        records epoch 0 when ``fit`` starts and every training epoch after it."""

        def __init__(self, samples, out_dir, labels=None, class_names=None, **options):
            _Callback.__init__(self)
            LightningHooks.__init__(self, samples, out_dir, labels, class_names, **options)
