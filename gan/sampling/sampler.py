"""A trained GAN restored from a checkpoint: the `gan` family of the ImageModel contract
(gan/io/image_model.py), what `load_image_model` returns for every gan.train checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from gan.core.calibration import calibration_refusal
from gan.core.drawing import is_conditional
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
from gan.io.image_model import CKPT_KEY
from gan.io.spec import ImageSpec, LabelSpace
from gan.sampling.posthoc import Plain

PRIOR = "trick_state.self_cond.prior"  # a pseudo-label trick's label frequencies


class Sampler:
    """A generator restored from a training checkpoint: an `ImageModel` (`spec`, `draw`,
    `describe`, plus `latent_dim`, `decode`, `critic` and `export_module`), and callable as
    `sampler(n) -> images`."""

    def __init__(self, ckpt_path: str | Path, device: str = "cpu", ckpt: dict | None = None):
        path = Path(ckpt_path)
        ckpt = ckpt if ckpt is not None else load_checkpoint(path)
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
        self.label_prior = ckpt["state_dict"].get(PRIOR)
        self.device = torch.device(device)
        self.step = (ckpt.get(CKPT_KEY) or {}).get("describe", {}).get(
            "step", (ckpt.get("gan_counters") or {}).get("g_step"))
        # how it is drawn: the run's `sampler=` (plain when it had none); `with_sampler` swaps
        sampler_cfg = self.config.get("sampler")
        self.posthoc = build(sampler_cfg) if sampler_cfg else Plain()

    @classmethod
    def from_checkpoint(cls, ckpt: dict, path: Path, device: str = "cpu") -> Sampler:
        """The `gan` family's loader (gan.io.image_model.FAMILIES)."""
        return cls(path, device, ckpt)

    # ---- the ImageModel contract ----------------------------------------------------------

    @property
    def spec(self) -> ImageSpec:
        if self.label_prior is not None:
            labels = LabelSpace("clusters", len(self.label_prior),
                                tuple(self.label_prior.double().tolist()))
        elif is_conditional(self.generator):
            labels = LabelSpace("classes", int(self.num_classes))
        else:
            labels = LabelSpace()
        return ImageSpec.of(self.img_shape, labels)

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    def with_sampler(self, posthoc: Plain | None) -> Sampler:
        """Draw with `posthoc` from now on (`gan.generate sampler=drs`); None keeps the run's.
        A sampler that reads D as a calibrated logit is refused for a D that is not one
        (gan/core/calibration.py): never DRS on raw scores."""
        if posthoc is not None:
            why = calibration_refusal(self.config, sampler=posthoc, sampler_name=posthoc.name)
            if why is not None:  # e.g. DRS on a hinge-trained D
                raise ValueError(why)
            self.posthoc = posthoc
        return self

    def describe(self) -> dict:
        return {"family": "gan", "draws_with": self.kind, "sampler": self.posthoc.describe(),
                "step": self.step}

    @torch.no_grad()
    def draw(self, n: int, labels: torch.Tensor | None = None, seed: int = 0,
             batch_size: int = 1000) -> torch.Tensor:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if labels is None:
            labels = self.spec.labels.sample(n, seed)
        return self.posthoc.draw(self.generator, n, self.latent_dim, labels.to(self.device),
                                 seed, critic=self.critic, batch_size=batch_size)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            labels = self.spec.labels.cycled(len(z))
        return self.generator(z.to(self.device), labels.to(self.device)).clamp(-1, 1).cpu()

    def export_module(self) -> torch.nn.Module:
        return self.generator

    @torch.no_grad()
    def critic(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """D's logits, D rebuilt from the checkpoint on first use (post-hoc samplers such as
        discriminator rejection sampling read them)."""
        if self._discriminator is None:
            d = build(self.config.model.discriminator, img_shape=self.img_shape,
                      num_classes=self.num_classes)
            d.load_state_dict(part_weights(self._state, DISCRIMINATOR))
            self._discriminator = d.to(self.device).eval()
        return self._discriminator(images, labels)

    # ---- as before the contract: `sampler(n, label)` -------------------------------------

    @torch.no_grad()
    def __call__(self, n: int, label: int | None = None, batch_size: int = 1000,
                 seed: int = 0, posthoc: Plain | None = None) -> torch.Tensor:
        """n images (all of class `label` when given), by `posthoc` (the run's by default)."""
        if label is not None and not is_conditional(self.generator):
            raise ValueError("label= needs a conditional checkpoint (trained with "
                             "model.conditional=true)")
        if label is not None and not 0 <= label < self.num_classes:
            raise ValueError(f"label={label} is outside 0..{self.num_classes - 1}")
        self.with_sampler(posthoc)
        labels = torch.full((n,), label) if label is not None else None
        return self.draw(n, labels, seed, batch_size)
