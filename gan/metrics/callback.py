"""The metrics of the sampling generator during training (`val/*`), its `curve.csv` rows, and
the final `metrics.json`."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from gan.core.drawing import cycled_labels, draw, is_conditional
from gan.core.guard import ADVICE, garbage_reason, host_number
from gan.io.artefacts import update_status
from gan.io.files import write_json

log = logging.getLogger(__name__)


class Metrics(L.Callback):
    """Classifier-feature metrics (gan/metrics/scores.py) of the sampling generator during training.

    Every `every_n_epochs` epochs, `n` samples are scored against `n` held-out real images and
    logged under `val/` (so `ModelCheckpoint(monitor="val/fid")` can keep the best). At the end,
    `n_final` samples are scored and written to `<run dir>/metrics.json`. Off (with one log line)
    for datasets without a metric classifier, e.g. data=fake or data=folder."""

    def __init__(self, dataset: str | None, every_n_epochs: int | None = 1, n: int = 2000,
                 n_final: int = 10_000, root: str | None = None, seed: int = 0,
                 every_n_images: int | None = None, max_fid: float | None = None,
                 min_classes_covered: float | None = None):
        from gan.data.registry import DATASETS

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
        from gan.metrics.scores import compute_metrics

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
        # Rank 0 scores and broadcasts: the samples are drawn and scored once, not once per
        # rank, and every rank logs (and ModelCheckpoint monitors) rank 0's numbers, whatever
        # its own BatchNorm statistics. Host tensors: a Python number would be copied to the
        # device (gan.core.guard).
        values = self._score(pl_module, self.n) if trainer.is_global_zero else None
        values = trainer.strategy.broadcast(values, src=0)  # as is on one device
        pl_module.log_dict({f"val/{k}": host_number(v) for k, v in values.items()},
                           sync_dist=False)
        self._curve_row(trainer, pl_module, values, self.n)

    @rank_zero_only
    def _curve_row(self, trainer, pl_module, values: dict, n: int) -> None:
        """One row of `<run dir>/curve.csv` per evaluation: where the run stands, then every
        metric (gan.report draws FID against wall time and images seen from it)."""
        from gan.core.progress import progress

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
            from gan.core.progress import images_seen

            self._images_bucket = images_seen(trainer, pl_module) // self.every_n_images

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not (self.enabled and self.every_n_images):
            return
        from gan.core.progress import images_seen

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
