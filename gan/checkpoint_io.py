"""Checkpoint writes that a killed run cannot leave half-written."""

from __future__ import annotations

from lightning.pytorch.plugins.io import TorchCheckpointIO

from gan.files import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch.save, through a temporary file and an atomic rename, so a run killed
    mid-write keeps its previous `last.ckpt` intact."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        atomic_write(path, lambda tmp: super(AtomicCheckpointIO, self).save_checkpoint(
            checkpoint, tmp, storage_options))
