"""The training-time source: :class:`EpochRecorder`, a Keras callback that records the network
before training and after every epoch into one export (an :class:`ExportSession`), and keeps
adding to it across several ``fit`` calls."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from .errors import ExportWarning
from .session import ExportSession, check_activation_dtype


class EpochRecorder(keras.callbacks.Callback):
    """Records the network before training and after every epoch into one export.

    ``samples``: the inputs to record (S, *input_shape), e.g. a few test images.
    ``labels``: their classes (or one-hot rows), optional. The export lands in ``out_dir`` as
    ``<name>.nnvis.json`` + ``<name>.bin`` (``name`` defaults to the model's name); its path is
    ``export_path``. Arrays are written after each epoch, not kept in memory, and every epoch
    leaves a complete export (each later epoch in a sidecar segment of its own,
    ``<name>.<k>.bin``), so a fit that stops or crashes keeps what it recorded; at the end of
    ``fit`` the segments are joined into ``<name>.bin``.

    Epoch numbers are the ones Keras passes: the network before ``fit``'s first epoch ``e`` is
    epoch ``e`` (0, or ``initial_epoch``), after Keras's epoch ``e`` it is epoch ``e + 1``.
    Another ``fit`` with the same recorder adds to the same export: ``fit(initial_epoch=k)``
    continues after the ``k`` epochs recorded; a ``fit`` that starts again at epoch 0 is numbered
    on after the last recorded epoch, with a warning.
    """

    def __init__(self, samples, out_dir: os.PathLike | str, labels=None, name: str | None = None,
                 activation_dtype: str = "float16", *, class_names: Sequence[str] | None = None,
                 sample_names: Sequence[str] | None = None, batch_size: int = 32,
                 verbose: bool = True, explain: bool | None = None):
        super().__init__()
        check_activation_dtype(activation_dtype)
        self.samples = np.asarray(samples)
        self.out_dir = Path(out_dir)
        self.labels = labels
        self.name = name
        self.activation_dtype = activation_dtype
        self.class_names = class_names
        self.sample_names = sample_names
        self.batch_size = batch_size
        self.verbose = verbose
        self.explain = explain
        self.export_path: Path | None = None
        self._session: ExportSession | None = None
        self._fit_started = False   # the current fit has not run its first epoch yet
        self._epoch_shift = 0       # added to Keras's numbers when a fit restarted at 0

    def on_train_begin(self, logs=None):
        if self._session is not None:  # a fit that raised never reached on_train_end
            self._session.abort()
        self._session = ExportSession(
            self.model, self.samples, self.out_dir, labels=self.labels, name=self.name,
            activation_dtype=self.activation_dtype, class_names=self.class_names,
            sample_names=self.sample_names, batch_size=self.batch_size, verbose=self.verbose,
            continue_from=self.export_path, explain=self.explain)
        self._fit_started = True
        self._epoch_shift = 0

    def on_epoch_begin(self, epoch, logs=None):
        if not self._fit_started or self._session is None:
            return
        self._fit_started = False
        last = self._session.last_epoch
        if last is None or epoch > last:
            self._record(epoch)  # the network before this fit trains it
        elif epoch < last:
            self._epoch_shift = last - epoch
            warnings.warn(f"fit() started at epoch {epoch} but this recorder already has epochs "
                          f"up to {last}: recording this fit's epochs as {last + 1}, "
                          f"{last + 2}, ... (pass initial_epoch={last} to fit to number them "
                          f"yourself)", ExportWarning, stacklevel=2)
        # epoch == last: the network is where the earlier fit left it, which is recorded

    def on_epoch_end(self, epoch, logs=None):
        if self._session is not None:
            self._record(epoch + 1 + self._epoch_shift, logs)

    def _record(self, epoch: int, logs=None) -> None:
        """Record an epoch and leave a complete export on disk (``export_path``), so a fit
        that stops or crashes keeps every epoch recorded before."""
        assert self._session is not None
        self._session.record(epoch, logs)
        self.export_path = self._session.publish()

    def on_train_end(self, logs=None):
        if self._session is None:
            return
        session, self._session = self._session, None
        if session.new_epochs == 0 and session.last_epoch is not None:
            session.abort()  # fit ran no epoch: the earlier export stays as it is
            return
        if session.new_epochs == 0:
            session.record(0)  # fit ran no epoch and nothing was recorded: the network as it is
        self.export_path = session.finish()
