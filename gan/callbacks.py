"""Callbacks that watch training: sample grids, throughput and metrics."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torchvision.utils import save_image

from gan.files import write_json
from gan.guard import ADVICE, garbage_reason
from gan.sampling import cycled_labels, draw, is_conditional, to_grid
from gan.status import update_status

log = logging.getLogger(__name__)


class SampleGrid(L.Callback):
    """Grids of the module's fixed noise every `every_n_epochs` epochs and/or `every_n_steps`
    G steps, plus one grid of real images at the start and a final grid at the end.

    Each grid goes to TensorBoard (`samples/...`, x-axis = G step) and to a PNG in
    `<run dir>/samples/`."""

    def __init__(self, every_n_epochs: int | None = 1, every_n_steps: int | None = None,
                 nrow: int = 8):
        for name, value in (("every_n_epochs", every_n_epochs), ("every_n_steps", every_n_steps)):
            if value is not None and value < 1:
                raise ValueError(f"callbacks.samples.{name} must be >= 1 or null, got {value}")
        self.every_n_epochs, self.every_n_steps, self.nrow = every_n_epochs, every_n_steps, nrow
        self._last_logged_step = -1

    def _log(self, trainer, tag: str, images: torch.Tensor, filename: str) -> None:
        grid = to_grid(images, self.nrow)
        out = Path(trainer.default_root_dir) / "samples"
        out.mkdir(parents=True, exist_ok=True)
        save_image(grid, out / filename)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(tag, grid, trainer.lightning_module.g_step)

    @rank_zero_only
    def _log_fixed(self, trainer, pl_module, filename: str) -> None:
        self._last_logged_step = pl_module.g_step
        images = pl_module.sample(pl_module.fixed_z, pl_module.fixed_labels)
        self._log(trainer, "samples/fixed_noise", images, filename)

    @rank_zero_only
    def on_train_start(self, trainer, pl_module):
        real = trainer.datamodule.train_images[: len(pl_module.fixed_z)]
        self._log(trainer, "samples/real", real.float() / 127.5 - 1, "real.png")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = pl_module.g_step
        if self.every_n_steps and step % self.every_n_steps == 0 and step != self._last_logged_step:
            self._log_fixed(trainer, pl_module, f"step{step:07d}.png")

    def on_train_epoch_end(self, trainer, pl_module):
        epoch = trainer.current_epoch + 1
        if self.every_n_epochs and epoch % self.every_n_epochs == 0:
            self._log_fixed(trainer, pl_module, f"epoch{epoch:03d}.png")

    def on_train_end(self, trainer, pl_module):
        self._log_fixed(trainer, pl_module, "final.png")


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
        if not trainer._logger_connector.should_update_logs:
            return
        now = time.perf_counter()
        self.rate = self._images * trainer.world_size / max(now - self._start, 1e-9)
        pl_module.log("train/img_per_s", self.rate, prog_bar=True)
        self._start, self._images = now, 0


class Metrics(L.Callback):
    """Classifier-feature metrics (gan/metrics.py) of the sampling generator during training.

    Every `every_n_epochs` epochs, `n` samples are scored against `n` held-out real images and
    logged under `val/` (so `ModelCheckpoint(monitor="val/fid")` can keep the best). At the end,
    `n_final` samples are scored and written to `<run dir>/metrics.json`. Off (with one log line)
    for datasets without a metric classifier, e.g. data=fake or data=folder."""

    def __init__(self, dataset: str | None, every_n_epochs: int | None = 1, n: int = 2000,
                 n_final: int = 10_000, root: str | None = None, seed: int = 0,
                 every_n_images: int | None = None, max_fid: float | None = None,
                 min_classes_covered: float | None = None):
        from gan.classifier import DATASETS

        for name, value in (("every_n_epochs", every_n_epochs),
                            ("every_n_images", every_n_images)):
            if value is not None and value < 1:
                raise ValueError(f"callbacks.metrics.{name} must be >= 1 or null, got {value}")
        # Final samples past these (guard.max_fid, guard.min_classes_covered) mark the run
        # `diverged` in status.json, with the reason; training is not stopped for them.
        self.max_fid, self.min_classes_covered = max_fid, min_classes_covered
        self.enabled = dataset in DATASETS
        self.dataset, self.root, self.seed = dataset, root, seed
        self.every_n_epochs, self.every_n_images = every_n_epochs, every_n_images
        self.n, self.n_final = n, n_final
        self.final: dict[str, float] = {}
        self._images_bucket = 0
        if not self.enabled:
            log.info("metrics off: no metric classifier for data=%s (have: %s)", dataset,
                     ", ".join(DATASETS))

    def _score(self, pl_module, n: int) -> dict[str, float]:
        from gan.metrics import compute_metrics

        labels = cycled_labels(n, pl_module.hparams.num_classes).to(pl_module.device)
        fakes = draw(pl_module.sample, n, pl_module.latent_dim, labels, self.seed)
        # A conditional G is scored on the labels it was asked for, too.
        asked = labels if is_conditional(pl_module.generator) else None
        try:
            return compute_metrics(fakes, self.dataset, n=n, root=self.root,
                                   seed=self.seed, labels=asked)
        except ValueError as err:  # NaN samples: the loss check owns divergence, not metrics
            log.warning("metrics skipped at G step %d: %s", pl_module.g_step, err)
            return {}

    def _evaluate(self, trainer, pl_module) -> None:
        values = self._score(pl_module, self.n)
        # Same value on every rank (same seed, same weights), so no reduction is needed.
        pl_module.log_dict({f"val/{k}": float(v) for k, v in values.items()}, sync_dist=False)
        self._curve_row(trainer, pl_module, values, self.n)

    @rank_zero_only
    def _curve_row(self, trainer, pl_module, values: dict, n: int) -> None:
        """One row of `<run dir>/curve.csv` per evaluation: where the run stands, then every
        metric (gan.report draws FID against wall time and images seen from it)."""
        from gan.budget import progress

        row = {**progress(trainer, pl_module), "n": n,
               **{f"val/{k}": float(v) for k, v in values.items()}}
        path = Path(trainer.default_root_dir) / "curve.csv"
        fields = None
        if path.is_file() and path.stat().st_size:
            with path.open(newline="") as f:
                fields = next(csv.reader(f))
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields or list(row), extrasaction="ignore")
            if fields is None:
                writer.writeheader()
            writer.writerow(row)

    def on_train_start(self, trainer, pl_module):
        if self.every_n_images:  # a resume goes on counting from the images already seen
            from gan.budget import images_seen

            self._images_bucket = images_seen(trainer, pl_module) // self.every_n_images

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not (self.enabled and self.every_n_images):
            return
        from gan.budget import images_seen

        bucket = images_seen(trainer, pl_module) // self.every_n_images
        if bucket > self._images_bucket:
            self._images_bucket = bucket
            self._evaluate(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        epoch = trainer.current_epoch + 1
        if not (self.enabled and self.every_n_epochs and epoch % self.every_n_epochs == 0):
            return
        self._evaluate(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        if not self.enabled or not trainer.is_global_zero:
            return
        self.final = {f"val/{k}": float(v) for k, v in self._score(pl_module, self.n_final).items()}
        reason = garbage_reason(self.final, self.max_fid, self.min_classes_covered)
        if reason is not None:
            log.warning("run marked diverged: %s; %s", reason, ADVICE)
            update_status(trainer.default_root_dir, status="diverged", reason=reason)
        if not self.final:
            return
        report = {"dataset": self.dataset, "n": self.n_final, "reference": "test split",
                  "g_step": pl_module.g_step, "metrics": self.final}
        path = Path(trainer.default_root_dir) / "metrics.json"
        write_json(path, report)
        self._curve_row(trainer, pl_module, {k[4:]: v for k, v in self.final.items()}, self.n_final)
        log.info("final metrics (n=%d vs test split): %s", self.n_final,
                 ", ".join(f"{k}={v:.4g}" for k, v in self.final.items()))
