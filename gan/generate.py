"""Sample a trained generator: `python -m gan.generate ckpt_path=<file> n=64 [out=grid.png]`.

`out=*.png` (or .jpg) writes a grid; `out=*.pt` writes one float tensor (N, C, H, W) in [-1, 1],
the format `gan.evaluate` scores. `interpolate=K` writes latent walks instead
(gan/interpolation.py): `out` gets K slerp strips between seeded pairs of z, and for a
conditional generator `<out>_class_sweep.png` shows K seeded z each written as every class.
Needs only the checkpoint: the generator is rebuilt from the resolved config the checkpoint
carries, on the CPU unless `device=` says otherwise.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from torchvision.utils import save_image

from gan.core.drawing import is_conditional, to_grid
from gan.io.config import CONF_DIR, build
from gan.io.files import atomic_write
from gan.sampling.sampler import Sampler
from gan.sampling.walks import class_sweeps, slerp_strips

log = logging.getLogger(__name__)


def write(images: torch.Tensor, out: Path, nrow: int) -> None:
    suffix = out.suffix.lower()
    if suffix == ".pt":
        atomic_write(out, lambda tmp: torch.save(images, tmp))
    elif suffix in (".png", ".jpg", ".jpeg"):
        atomic_write(out, lambda tmp: save_image(to_grid(images, nrow), tmp, format=suffix[1:]))
    else:
        raise ValueError(f"out={out}: use a .png/.jpg (grid) or .pt (tensor) file name")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="generate")
def main(cfg: DictConfig) -> str:
    if cfg.ckpt_path is None:
        raise ValueError("ckpt_path=<file.ckpt> is required")
    sampler = Sampler(cfg.ckpt_path, cfg.device)
    out = Path(cfg.out)
    if cfg.interpolate:
        return interpolate(sampler, cfg, out)
    posthoc = build(cfg.sampler)
    images = sampler(cfg.n, cfg.label, cfg.batch_size, cfg.seed, posthoc=posthoc)
    write(images, out, cfg.nrow)
    log.info("wrote %s images of shape %s to %s (sampler: %s)", len(images),
             tuple(images.shape[1:]), out, posthoc.describe())
    return str(out)


def interpolate(sampler: Sampler, cfg: DictConfig, out: Path) -> str:
    if cfg.interpolate < 1 or cfg.interpolate_steps < 2:
        raise ValueError(f"interpolate={cfg.interpolate} must be >= 1 and interpolate_steps="
                         f"{cfg.interpolate_steps} >= 2")
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ValueError(f"out={out}: interpolate= writes an image; use a .png/.jpg file name")
    generator, device = sampler.generator, sampler.device
    conditional = is_conditional(generator)

    def sample(z, labels):
        return generator(z, labels).clamp(-1, 1)

    strips = slerp_strips(sample, generator.latent_dim, sampler.num_classes, conditional,
                          cfg.interpolate, cfg.interpolate_steps, cfg.seed, device)
    write(strips.cpu(), out, cfg.interpolate_steps)
    log.info("wrote %d slerp strips of %d steps to %s", cfg.interpolate, cfg.interpolate_steps,
             out)
    if conditional:
        sweep = out.with_name(f"{out.stem}_class_sweep{out.suffix}")
        images = class_sweeps(sample, generator.latent_dim, sampler.num_classes,
                              cfg.interpolate, cfg.seed, device)
        write(images.cpu(), sweep, sampler.num_classes)
        log.info("wrote %d class sweeps to %s", cfg.interpolate, sweep)
    return str(out)


if __name__ == "__main__":
    main()
