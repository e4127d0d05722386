"""The metrics of the sampling generator during training (`val/*`), its `curve.csv` rows, and
the final `metrics.json`."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from gan.core.guard import ADVICE, garbage_reason, host_number
from gan.data.registry import DATASETS
from gan.io.artefacts import METRICS, append_curve_row, protocol, update_status, write_metrics
from gan.io.image_model import ImageModel
from gan.io.usage import UsageError
from gan.metrics import extractors
from gan.timing.clock import OnTheClock

log = logging.getLogger(__name__)


def image_model(pl_module) -> ImageModel:
    """The model a consumer scores or draws: anything that keeps the ImageModel contract."""
    if not isinstance(pl_module, ImageModel):
        raise TypeError(f"{type(pl_module).__name__} does not keep the ImageModel contract "
                        f"(spec, draw, describe: gan/io/image_model.py)")
    return pl_module


class Metrics(OnTheClock, L.Callback):
    """Feature metrics (gan/metrics/scores.py) of the model's draws during training.

    Every `every_n_epochs` epochs, `n` samples are scored against `n` held-out real images and
    logged under `val/` (so `ModelCheckpoint(monitor="val/fid")` can keep the best). At the end,
    `n_final` samples are scored and written to `<run dir>/metrics.json` (None: the data's
    protocol n, `final_n`: 10,000; Stacked MNIST the papers' 26,000). The features are the
    `extractor`'s (`metrics.extractor=`, gan/metrics/extractors.py); without one, metrics.json
    holds the pixel statistics and names the absent scores with why."""

    def __init__(self, dataset: str | None, every_n_epochs: int | None = 1, n: int = 2000,
                 n_final: int | None = None, root: str | None = None, seed: int = 0,
                 every_n_images: int | None = None, max_fid: float | None = None,
                 min_classes_covered: float | None = None, extractor: str | None = "auto"):
        for name, value in (("every_n_epochs", every_n_epochs),
                            ("every_n_images", every_n_images)):
            if value is not None and value < 1:
                raise ValueError(f"callbacks.metrics.{name} must be >= 1 or null, got {value}")
        # Final samples past these (guard.max_fid, guard.min_classes_covered) mark the run
        # `diverged` in status.json, with the reason; training is not stopped for them.
        self.max_fid, self.min_classes_covered = max_fid, min_classes_covered
        self.dataset, self.root, self.seed = dataset, root, seed
        self.every_n_epochs, self.every_n_images = every_n_epochs, every_n_images
        if n_final is None:
            n_final = getattr(DATASETS.get(dataset), "final_n", 10_000)
        self.n, self.n_final = n, n_final
        self.extractor_choice = extractor
        from gan.data.registry import primary_of

        self.primary = primary_of(dataset)  # the data module's own, once setup sees it
        # resolved in setup, against the data and the model (`auto`: the data's)
        self.extractor = extractors.resolve(extractor, None) if extractor != "auto" else None
        self._absent: dict[str, str] = {}
        self._skipped = ""  # why the last scoring failed (a ValueError's message)
        self._real = None  # real images for the pixel statistics (no extractor)
        self._final: dict[str, float] = {}
        self._images_bucket = 0
        self.enabled = True  # every run writes metrics.json: feature scores or pixel statistics

    def setup(self, trainer, pl_module, stage):
        """Which features, before any work: a model the extractor cannot read is refused in
        one line naming both shapes; data without a held-out reference scores pixels only."""
        from gan.data.registry import DATASETS

        spec = image_model(pl_module).spec
        datamodule = trainer.datamodule
        self.primary = (getattr(datamodule, "primary_metric", self.primary[0]),
                        getattr(datamodule, "primary_better", self.primary[1]))
        name = extractors.resolve(self.extractor_choice, getattr(datamodule, "extractor", None))
        if name is not None:
            extractors.check_fits(name, spec)
            if self.dataset not in DATASETS:
                self._absent = extractors.absent(name, spec, f"data={self.dataset} has no "
                                                 f"held-out reference split to compare with")
                name = None
        else:
            self._absent = extractors.absent(self.extractor_choice, spec)
        self.extractor = name
        limit = getattr(DATASETS.get(self.dataset), "reference_size", None)
        if name is not None and limit is not None and max(self.n, self.n_final) > limit:
            key = "n_final" if self.n_final > limit else "n"
            raise UsageError(f"callbacks.metrics.{key}={max(self.n, self.n_final)} exceeds the "
                             f"{limit:,} held-out images of data={self.dataset}: the metrics "
                             f"compare n samples with n real ones; use at most {limit}")
        if self.primary[0] != "fid" and self.max_fid is not None:
            # FID is not this data's score, and its units differ (Stacked MNIST's 384-d
            # per-channel features): guard.max_fid would call a fine run garbage
            log.info("guard.max_fid off: data=%s is scored by %s", self.dataset, self.primary[0])
            self.max_fid = None
        if name is None:
            self._real = getattr(datamodule, "train_images", None)
            log.info("metrics: pixel statistics only (%s)", next(iter(self._absent.values())))

    def _score(self, pl_module, n: int, final: bool = False) -> dict[str, float]:
        from gan.metrics.scores import compute_metrics

        model = image_model(pl_module)
        labels = model.spec.labels
        # A class-conditional model is scored on the labels it was asked for, too; clusters
        # are not classes, so the model draws them at their own frequencies.
        asked = labels.cycled(n) if labels.kind == "classes" else None
        fakes = model.draw(n, asked, seed=self.seed)
        try:
            if self.extractor is None:
                real = self._real
                if real is None and getattr(pl_module, "trainer", None) is not None:
                    real = getattr(pl_module.trainer.datamodule, "train_images", None)
                if real is not None:
                    real = real[:n].cpu()
                return extractors.pixel_stats(fakes, real)
            return compute_metrics(fakes, self.dataset, n=n, root=self.root,
                                   seed=self.seed, labels=asked, extractor=self.extractor,
                                   memorisation=final)
        except ValueError as err:  # NaN samples: the loss check owns divergence, not metrics
            log.warning("metrics skipped at step %s: %s", model.describe().get("step"), err)
            self._skipped = str(err)
            return {}

    def _evaluate(self, trainer, pl_module) -> None:
        with self.paused():  # evaluation is not training: budget=time does not count it
            self._evaluate_now(trainer, pl_module)

    def _evaluate_now(self, trainer, pl_module) -> None:
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
        from gan.timing.clock import progress

        append_curve_row(trainer.default_root_dir, {
            **progress(trainer, pl_module, self.clock), "n": n,
            **{f"val/{k}": float(v) for k, v in values.items()}})

    def on_train_start(self, trainer, pl_module):
        if self.every_n_images:  # a resume goes on counting from the images already seen
            from gan.timing.clock import images_seen

            self._images_bucket = images_seen(trainer, pl_module) // self.every_n_images

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not (self.enabled and self.every_n_images):
            return
        from gan.timing.clock import images_seen

        bucket = images_seen(trainer, pl_module) // self.every_n_images
        if bucket > self._images_bucket:
            self._images_bucket = bucket
            self._evaluate(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        epoch = trainer.current_epoch + 1
        if not (self.enabled and self.every_n_epochs and epoch % self.every_n_epochs == 0):
            return
        self._evaluate(trainer, pl_module)

    @property
    def final(self) -> dict[str, float]:
        """The final metrics (`val/<name>`) once training ended; {} before, or when metrics are
        off. What `gan.runs.wiring.objective` returns to a sweeper."""
        return dict(self._final)

    def on_train_end(self, trainer, pl_module):
        if not self.enabled or not trainer.is_global_zero:
            return
        with self.paused():
            self._final_metrics(trainer, pl_module)

    def _final_metrics(self, trainer, pl_module) -> None:
        self._final = {f"val/{k}": float(v)
                       for k, v in self._score(pl_module, self.n_final, final=True).items()}
        reason = garbage_reason(self._final, self.max_fid, self.min_classes_covered)
        if not self._final and self._skipped:  # say why, not a guess
            reason = f"final samples could not be scored: {self._skipped}"
        if reason is not None:
            log.warning("run marked diverged: %s; %s", reason, ADVICE)
            update_status(trainer.default_root_dir, status="diverged", reason=reason)
        if not self._final:
            return
        model = image_model(pl_module)
        about = model.describe()
        digest = extractors.digest(self.extractor) if self.extractor else None
        stamp = protocol(self.dataset, digest, self.n_final, "test",
                         about.get("draws_with", about.get("family", "model")), self.seed,
                         about.get("sampler"))
        stamp["extractor_name"] = self.extractor
        stamp["primary"], stamp["primary_better"] = self.primary  # what gan.report ranks by
        stamp["spec"] = model.spec.to_dict()
        if self.extractor:
            stamp["feature_dim"] = int(extractors.load(self.extractor).num_features)
        context = {"absent": self._absent} if self._absent else {}
        write_metrics(Path(trainer.default_root_dir) / METRICS, self._final, stamp,
                      dataset=self.dataset, g_step=about.get("step"), model=about, **context)
        self._curve_row(trainer, pl_module, {k[4:]: v for k, v in self._final.items()},
                        self.n_final)
        log.info("final metrics (n=%d vs test split): %s", self.n_final,
                 ", ".join(f"{k}={v:.4g}" for k, v in self._final.items()))
