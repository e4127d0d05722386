"""Sample a trained generator: `python -m gan.generate ckpt_path=<file> n=64 [out=grid.png]`.

`out=*.png` (or .jpg) writes a grid; `out=*.pt` writes one float tensor (N, C, H, W) in [-1, 1],
the format `gan.evaluate` scores. `interpolate=K` writes latent walks instead
(gan/sampling/walks.py): `out` gets K slerp strips between seeded pairs of z, and for a
conditional generator `<out>_class_sweep.png` shows K seeded z each written as every class.
Needs only the checkpoint: the generator is rebuilt from the resolved config the checkpoint
carries, on the CPU unless `device=` says otherwise.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig
from torchvision.utils import save_image

from gan.core.drawing import is_conditional, to_grid
from gan.io.config import build
from gan.io.errors import UsageError, entry_point
from gan.io.files import atomic_write, check_output
from gan.io.keys import device, integer
from gan.sampling.sampler import Sampler
from gan.sampling.walks import class_sweeps, slerp_strips

log = logging.getLogger(__name__)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def write(images: torch.Tensor, out: Path, nrow: int) -> None:
    suffix = out.suffix.lower()
    if suffix == ".pt":
        atomic_write(out, lambda tmp: torch.save(images, tmp))
    else:
        fmt = "jpeg" if suffix == ".jpg" else suffix[1:]
        atomic_write(out, lambda tmp: save_image(to_grid(images, nrow), tmp, format=fmt))


def check(cfg: DictConfig) -> Path:
    """Every key a run reads, refused in one line before the checkpoint is read."""
    if cfg.ckpt_path is None:
        raise UsageError("ckpt_path=<file.ckpt> is required")
    integer(cfg.n, "n", low=1)
    integer(cfg.batch_size, "batch_size", low=1)
    integer(cfg.nrow, "nrow", low=1)
    integer(cfg.seed, "seed", low=0)
    integer(cfg.label, "label", low=0, optional=True)
    integer(cfg.interpolate, "interpolate", low=0)
    integer(cfg.interpolate_steps, "interpolate_steps", low=2)
    device(cfg.device)
    suffixes = IMAGE_SUFFIXES if cfg.interpolate else (*IMAGE_SUFFIXES, ".pt")
    out = check_output(cfg.out, "out", suffixes)
    if cfg.interpolate:  # the class sweep beside it, when G is conditional
        check_output(out.with_name(f"{out.stem}_class_sweep{out.suffix}"), "out", suffixes)
    return out


def generate(cfg: DictConfig) -> str:
    out = check(cfg)
    sampler = Sampler(cfg.ckpt_path, cfg.device)
    if cfg.interpolate:
        return interpolate(sampler, cfg, out)
    posthoc = build(cfg.sampler)
    images = sampler(cfg.n, cfg.label, cfg.batch_size, cfg.seed, posthoc=posthoc)
    write(images, out, cfg.nrow)
    log.info("wrote %s images of shape %s to %s (sampler: %s)", len(images),
             tuple(images.shape[1:]), out, posthoc.describe())
    return str(out)


def interpolate(sampler: Sampler, cfg: DictConfig, out: Path) -> str:
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


main = entry_point("generate", generate, "generate", check=check)


if __name__ == "__main__":
    main()
