"""A trained generator from a checkpoint, ready to draw: what generate, evaluate, project and
export share."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from gan.core.calibration import calibration_refusal
from gan.core.drawing import is_conditional, sampling_labels
from gan.core.posthoc import Plain
from gan.io.checkpoint import (
    DISCRIMINATOR,
    EMA,
    generator_weights,
    load_checkpoint,
    mismatch_error,
    part_weights,
    shape_errors,
)
from gan.io.config import build


class Sampler:
    """A generator restored from a training checkpoint, callable as `sampler(n) -> images`."""

    def __init__(self, ckpt_path: str | Path, device: str = "cpu"):
        path = Path(ckpt_path)
        ckpt = load_checkpoint(path)
        hparams = ckpt["hyper_parameters"]
        self.config = OmegaConf.create(hparams["config"])
        self.img_shape = tuple(hparams["img_shape"])
        self.num_classes = hparams["num_classes"]
        self.generator = build(self.config.model.generator, img_shape=self.img_shape,
                               num_classes=self.num_classes)
        weights = generator_weights(ckpt["state_dict"])
        self.kind = "ema" if part_weights(ckpt["state_dict"], EMA) else "generator"
        errors = shape_errors("generator", weights, self.generator.state_dict())
        if errors:
            raise mismatch_error(path, "ckpt_path", hparams["config"], hparams["config"], errors)
        self.generator.load_state_dict(weights)
        self.generator.to(device).eval()
        self._state, self._discriminator = ckpt["state_dict"], None
        # a pseudo-label trick's label frequencies (self-conditioning): labels drawn from them
        self.label_prior = ckpt["state_dict"].get("label_prior")
        self.device = torch.device(device)

    def critic(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """D's logits, D rebuilt from the checkpoint on first use (post-hoc samplers such as
        discriminator rejection sampling read them)."""
        if self._discriminator is None:
            d = build(self.config.model.discriminator, img_shape=self.img_shape,
                      num_classes=self.num_classes)
            d.load_state_dict(part_weights(self._state, DISCRIMINATOR))
            self._discriminator = d.to(self.device).eval()
        return self._discriminator(images, labels)

    @torch.no_grad()
    def __call__(self, n: int, label: int | None = None, batch_size: int = 1000,
                 seed: int = 0, posthoc: Plain | None = None) -> torch.Tensor:
        """n images, drawn by the post-hoc sampler `posthoc` (plain z ~ N(0, I) by default)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if label is not None and not is_conditional(self.generator):
            raise ValueError("label= needs a conditional checkpoint (trained with "
                             "model.conditional=true)")
        if label is not None and not 0 <= label < self.num_classes:
            raise ValueError(f"label={label} is outside 0..{self.num_classes - 1}")
        labels = (torch.full((n,), label) if label is not None
                  else sampling_labels(n, self.num_classes, self.label_prior, seed))
        posthoc = posthoc if posthoc is not None else Plain()
        why = calibration_refusal(self.config, sampler=posthoc, sampler_name=posthoc.name)
        if why is not None:  # e.g. DRS on a hinge-trained D: never on raw scores
            raise ValueError(why)
        return posthoc.draw(self.generator, n, self.generator.latent_dim, labels.to(self.device),
                            seed, critic=self.critic, batch_size=batch_size)
