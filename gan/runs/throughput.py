"""Training images per second, on the progress bar and in TensorBoard."""

from __future__ import annotations

import logging
import time

import lightning as L

from gan.core.guard import host_number
from gan.core.stepping import log_boundary

log = logging.getLogger(__name__)


class Throughput(L.Callback):
    """Training images per second on the progress bar and in TensorBoard (`train/img_per_s`),
    over the batches since the last logged value. It logs only on the steps when the logger
    writes (every `trainer.log_every_n_steps`, the test LearningRateMonitor uses too): each
    `self.log` passes through Lightning's result collection (in a cProfile of `experiment=seed`
    the training step's ~10 calls per step took 19 % of the step). The first batch of each
    epoch (warm-up, and the pause between epochs) is not counted."""

    def __init__(self):
        self._start = None
        self._images = 0
        self.rate = None

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._start is None:
            self._start, self._images = time.perf_counter(), 0
            return
        self._images += len(batch[0])
        if not log_boundary(trainer):
            return
        now = time.perf_counter()
        self.rate = self._images * trainer.world_size / max(now - self._start, 1e-9)
        # a host tensor: a Python number would go to the device and back (gan.core.guard)
        pl_module.log("train/img_per_s", host_number(self.rate), prog_bar=True)
        self._start, self._images = now, 0
