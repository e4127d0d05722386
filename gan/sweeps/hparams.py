"""Each run's swept keys with its final metrics: TensorBoard's HParams records, so the HPARAMS
tab of `tensorboard --logdir <sweep dir>` lists the jobs of a sweep side by side and sorts them,
and the same params and `final/*` metrics to every other tracker (MLflow, W&B, CSV)."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import OmegaConf
from torch.utils.tensorboard.summary import hparams

from gan.io.artefacts import read_metrics
from gan.runs.trackers import job_overrides

TRAIN_KEYS = ("train/d_loss", "train/g_loss")  # last values: metrics where there is no classifier


def override_params(overrides: list[str], config: dict) -> dict[str, float | int | str | bool]:
    """`key=value` overrides as hparams: the resolved value where the key is a config value
    (`optim.lr_g=1e-3` -> 0.001), else the option chosen (`loss=hinge` -> "hinge")."""
    cfg = OmegaConf.create(config)
    params: dict = {}
    for override in overrides:
        key, _, raw = override.lstrip("+~").partition("=")
        if key.startswith("hydra.") or key in ("ckpt_path", "init_from"):
            continue
        value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
        if not isinstance(value, (int, float, str, bool)):
            value = raw  # a group choice, or a list/dict: its text
        params[key] = value
    params.setdefault("seed", config.get("seed"))
    return params


class HParams(L.Callback):
    """At the end of training (after the Metrics callback wrote the final metrics), writes the
    hparams plugin's session records with `final/<metric>` scalars at the last G step to
    TensorBoard, and the same params and metrics to the other loggers."""

    def on_train_end(self, trainer, pl_module):
        if not trainer.loggers or not trainer.is_global_zero:
            return
        # metrics.json: the Metrics callback wrote it in its on_train_end, before this one's
        final = {f"val/{k}": v for k, v in read_metrics(trainer.default_root_dir).items()}
        for key in TRAIN_KEYS:
            if key in trainer.callback_metrics:
                final[key] = float(trainer.callback_metrics[key])
        metrics = {"final/" + key.split("/", 1)[-1]: value for key, value in final.items()}
        params = override_params(job_overrides(), pl_module.hparams.get("config") or {})
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                tensorboard_hparams(logger.experiment, params, metrics, pl_module.g_step)
            else:
                logger.log_hyperparams(params)
                logger.log_metrics(metrics, step=pl_module.g_step)
                logger.save()


def tensorboard_hparams(writer, params: dict, metrics: dict, step: int) -> None:
    for summary in hparams(params, metrics):
        writer.file_writer.add_summary(summary)
    for tag, value in metrics.items():
        writer.add_scalar(tag, value, step)
    writer.flush()
