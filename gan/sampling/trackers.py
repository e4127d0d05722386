"""One image to every tracker a run logs to: TensorBoard's `add_image`, MLflow's `log_image`
(an artefact under `images/`, with its step), W&B's `log_image`; a CSV log takes no images.
Lightning's loggers log scalars and hparams to all of them, but images each their own way."""

from __future__ import annotations

import torch
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger


def log_image(trainer, tag: str, grid: torch.Tensor, step: int) -> None:
    """`grid`: one (C, H, W) image in [0, 1] (gan.core.drawing.to_grid), logged as `tag` at G
    step `step` to each of the trainer's loggers that takes images."""
    pixels = None  # (H, W, C) uint8, made once for the trackers that want numpy
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, grid, step)
            continue
        if not isinstance(logger, (MLFlowLogger, WandbLogger)):
            continue
        if pixels is None:
            pixels = grid.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
        if isinstance(logger, MLFlowLogger):
            logger.experiment.log_image(logger.run_id, pixels, key=tag, step=step)
        else:
            logger.log_image(key=tag, images=[pixels], step=step)
