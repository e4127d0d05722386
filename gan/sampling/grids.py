"""Sample grids during training: the fixed-noise grid, and one row per class for a conditional G."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torchvision.utils import save_image

from gan.core.drawing import to_grid
from gan.io.image_model import ImageModel
from gan.sampling.trackers import log_image
from gan.timing.clock import OnTheClock

log = logging.getLogger(__name__)


def step_of(trainer, model: ImageModel) -> int:
    """The x-axis of logged images: the model's own step (a GAN's G step), else the
    trainer's."""
    step = model.describe().get("step")
    return int(step) if step is not None else trainer.global_step


class SampleGrid(OnTheClock, L.Callback):
    """Grids of the model's draws for one fixed seed every `every_n_epochs` epochs and/or
    `every_n_steps` steps, plus one grid of real images at the start and a final grid at the end.

    Each grid goes to every tracker that takes images (`samples/...`, x-axis = G step) and to a
    PNG in `<run dir>/samples/`."""

    def __init__(self, every_n_epochs: int | None = 1, every_n_steps: int | None = None,
                 nrow: int = 8, n: int = 64, seed: int = 0):
        for name, value in (("every_n_epochs", every_n_epochs), ("every_n_steps", every_n_steps),
                            ("n", n)):
            if value is not None and value < 1:
                raise ValueError(f"callbacks.samples.{name} must be >= 1 or null, got {value}")
        self.every_n_epochs, self.every_n_steps, self.nrow = every_n_epochs, every_n_steps, nrow
        self.n, self.seed = n, seed
        self._last_logged_step = -1

    def _log(self, trainer, tag: str, images: torch.Tensor, filename: str) -> None:
        grid = to_grid(images, self.nrow)
        out = Path(trainer.default_root_dir) / "samples"
        out.mkdir(parents=True, exist_ok=True)
        save_image(grid, out / filename)
        if trainer.loggers:
            log_image(trainer, tag, grid, step_of(trainer, trainer.lightning_module))

    @rank_zero_only
    def _log_fixed(self, trainer, pl_module: ImageModel, filename: str) -> None:
        # The same seed every time (and across resumes): the same noise, every label in turn.
        self._last_logged_step = step_of(trainer, pl_module)
        labels = pl_module.spec.labels
        images = pl_module.draw(self.n, labels.cycled(self.n) if labels.conditional else None,
                                seed=self.seed)
        self._log(trainer, "samples/fixed_noise", images, filename)

    def _grid(self, trainer, pl_module, filename: str) -> None:
        with self.paused():  # a grid is not training: budget=time does not count it
            self._log_fixed(trainer, pl_module, filename)

    @rank_zero_only
    def on_train_start(self, trainer, pl_module):
        real = trainer.datamodule.train_images[: self.n]
        self._log(trainer, "samples/real", real.float() / 127.5 - 1, "real.png")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not self.every_n_steps:
            return
        step = step_of(trainer, pl_module)
        if self.every_n_steps and step % self.every_n_steps == 0 and step != self._last_logged_step:
            self._grid(trainer, pl_module, f"step{step:07d}.png")

    def on_train_epoch_end(self, trainer, pl_module):
        epoch = trainer.current_epoch + 1
        if self.every_n_epochs and epoch % self.every_n_epochs == 0:
            self._grid(trainer, pl_module, f"epoch{epoch:03d}.png")

    def on_train_end(self, trainer, pl_module):
        self._grid(trainer, pl_module, "final.png")


class ClassGrid(SampleGrid):
    """One row per class, one fixed noise vector per column, so a column shows what the label
    alone changes and a row how well one class covers its variations.

    Logged on SampleGrid's schedule (`every_n_epochs` / `every_n_steps`, and at the end) to
    the trackers as `samples/per_class` and to `<run dir>/samples/per_class_*.png`. A no-op when
    the model has no labels (its `spec`), so it can sit in the default callbacks."""

    def __init__(self, every_n_epochs: int | None = 1, every_n_steps: int | None = None,
                 n_per_class: int = 8, seed: int = 0):
        super().__init__(every_n_epochs, every_n_steps, nrow=n_per_class)
        if n_per_class < 1:
            raise ValueError(f"callbacks.per_class.n_per_class must be >= 1, got {n_per_class}")
        self.n_per_class, self.seed = n_per_class, seed

    def on_train_start(self, trainer, pl_module):
        pass  # SampleGrid already logs the real images

    @rank_zero_only
    def _log_fixed(self, trainer, pl_module: ImageModel, filename: str) -> None:
        labels = pl_module.spec.labels
        if not labels.conditional:
            return
        self._last_logged_step = step_of(trainer, pl_module)
        # The same columns every time (and across resumes): one seed per row draws the same
        # noise, so a column shows what the label alone changes.
        rows = [pl_module.draw(self.n_per_class, torch.full((self.n_per_class,), k),
                               seed=self.seed) for k in range(labels.k)]
        self._log(trainer, "samples/per_class", torch.cat(rows), f"per_class_{filename}")
