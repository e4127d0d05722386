"""The metrics of the sampling generator during training (`val/*`), its `curve.csv` rows, and
the final `metrics.json`."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from gan.core.drawing import is_conditional, sampling_labels
from gan.core.guard import ADVICE, garbage_reason, host_number
from gan.core.posthoc import Plain
from gan.core.progress import paused
from gan.io.artefacts import METRICS, append_curve_row, protocol, update_status, write_metrics

log = logging.getLogger(__name__)


@torch.no_grad()
def critic_logits(pl_module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """D's logits in eval mode (running BatchNorm statistics), for samplers that read D."""
    d = pl_module.discriminator
    was_training = d.training
    d.eval()
    try:
        return d(images, labels)
    finally:
        d.train(was_training)


class Metrics(L.Callback):
    """Classifier-feature metrics (gan/metrics/scores.py) of the sampling generator during training.

    Every `every_n_epochs` epochs, `n` samples are scored against `n` held-out real images and
    logged under `val/` (so `ModelCheckpoint(monitor="val/fid")` can keep the best). At the end,
    `n_final` samples are scored and written to `<run dir>/metrics.json`. Off (with one log line)
    for datasets without a metric classifier, e.g. data=fake or data=folder."""

    def __init__(self, dataset: str | None, every_n_epochs: int | None = 1, n: int = 2000,
                 n_final: int = 10_000, root: str | None = None, seed: int = 0,
                 every_n_images: int | None = None, max_fid: float | None = None,
                 min_classes_covered: float | None = None, sampler: Plain | None = None):
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
        self._final: dict[str, float] = {}
        # how G is sampled for every evaluation (`+sampler=`, conf/sampler/; plain z by default)
        self.sampler = sampler if sampler is not None else Plain()
        self._images_bucket = 0
        if not self.enabled:
            log.info("metrics off: no metric classifier for data=%s (have: %s)", dataset,
                     ", ".join(DATASETS))

    def _score(self, pl_module, n: int) -> dict[str, float]:
        from gan.metrics.scores import compute_metrics

        # Pseudo-labels (a trick's `label_prior`) are drawn at their data frequency and are not
        # classes: label metrics score only a G that was told the classes.
        prior = getattr(pl_module, "label_prior", None)
        labels = sampling_labels(n, pl_module.hparams.num_classes, prior, self.seed)
        labels = labels.to(pl_module.device)
        fakes = self.sampler.draw(pl_module.sample, n, pl_module.latent_dim, labels, self.seed,
                                  critic=partial(critic_logits, pl_module))
        # A conditional G is scored on the labels it was asked for, too.
        asked = labels if is_conditional(pl_module.generator) and prior is None else None
        try:
            return compute_metrics(fakes, self.dataset, n=n, root=self.root,
                                   seed=self.seed, labels=asked)
        except ValueError as err:  # NaN samples: the loss check owns divergence, not metrics
            log.warning("metrics skipped at G step %d: %s", pl_module.g_step, err)
            return {}

    def _evaluate(self, trainer, pl_module) -> None:
        with paused(trainer):  # evaluation is not training: budget=time does not count it
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
        from gan.core.progress import progress

        append_curve_row(trainer.default_root_dir, {
            **progress(trainer, pl_module), "n": n,
            **{f"val/{k}": float(v) for k, v in values.items()}})

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

    @property
    def final(self) -> dict[str, float]:
        """The final metrics (`val/<name>`) once training ended; {} before, or when metrics are
        off. What `gan.runs.wiring.objective` returns to a sweeper."""
        return dict(self._final)

    def on_train_end(self, trainer, pl_module):
        if not self.enabled or not trainer.is_global_zero:
            return
        with paused(trainer):
            self._final_metrics(trainer, pl_module)

    def _final_metrics(self, trainer, pl_module) -> None:
        self._final = {f"val/{k}": float(v)
                       for k, v in self._score(pl_module, self.n_final).items()}
        reason = garbage_reason(self._final, self.max_fid, self.min_classes_covered)
        if reason is not None:
            log.warning("run marked diverged: %s; %s", reason, ADVICE)
            update_status(trainer.default_root_dir, status="diverged", reason=reason)
        if not self._final:
            return
        from gan.metrics.classifier import extractor_id

        stamp = protocol(self.dataset, extractor_id(self.dataset), self.n_final, "test",
                         sampler_name(pl_module), self.seed,
                         self.sampler.describe())
        write_metrics(Path(trainer.default_root_dir) / METRICS, self._final, stamp,
                      dataset=self.dataset, g_step=pl_module.g_step)
        self._curve_row(trainer, pl_module, {k[4:]: v for k, v in self._final.items()},
                        self.n_final)
        log.info("final metrics (n=%d vs test split): %s", self.n_final,
                 ", ".join(f"{k}={v:.4g}" for k, v in self._final.items()))


def sampler_name(pl_module) -> str:
    """What drew the scored images: the trick that swaps the sampling generator (`ema`), or
    `generator`."""
    swaps = [type(t).__name__.lower() for t in pl_module.tricks
             if t.sampling_generator(pl_module.generator) is not pl_module.generator]
    return "+".join(swaps) or "generator"


def final_metrics(trainer) -> dict[str, float]:
    """The final metrics (`val/<name>`) of the trainer's Metrics callback; {} without one."""
    out: dict[str, float] = {}
    for callback in trainer.callbacks:
        if isinstance(callback, Metrics):
            out.update(callback.final)
    return out
