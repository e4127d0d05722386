"""Checkpoint writes that a killed run cannot leave half-written, nor a diverged one poisoned."""

from __future__ import annotations

import logging

from lightning.pytorch.plugins.io import TorchCheckpointIO

from gan.files import atomic_write
from gan.guard import all_finite

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch.save, through a temporary file and an atomic rename, so a run killed
    mid-write keeps its previous `last.ckpt` intact. A checkpoint whose weights or optimizer
    state hold NaN/inf is not written at all: the last good file stays."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        if not all_finite(checkpoint):
            log.warning("not writing %s: the weights or optimizer state are not finite; the "
                        "previous checkpoint stays", path)
            return
        atomic_write(path, lambda tmp: super(AtomicCheckpointIO, self).save_checkpoint(
            checkpoint, tmp, storage_options))
