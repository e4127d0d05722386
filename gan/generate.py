"""Sample a trained generator: `python -m gan.generate ckpt_path=<file> n=64 [out=grid.png]`.

`out=*.png` (or .jpg) writes a grid; `out=*.pt` writes one float tensor (N, C, H, W) in [-1, 1],
the format `gan.evaluate` scores. `interpolate=K` writes latent walks instead
(gan/sampling/walks.py): `out` gets K slerp strips between seeded pairs of z, and for a
conditional generator `<out>_class_sweep.png` shows K seeded z each written as every class.
Needs only the checkpoint: the generator is rebuilt from the resolved config the checkpoint
carries, on the CPU unless `device=` says otherwise.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig
from torchvision.utils import save_image

from gan.cli.runner import entry_point
from gan.core.drawing import to_grid
from gan.io.config import build
from gan.io.files import atomic_write, check_output
from gan.io.image_model import ImageModel, load_image_model
from gan.io.keys import device, integer
from gan.io.usage import UsageError
from gan.sampling.walks import walk_grids

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
    model = load_image_model(cfg.ckpt_path, cfg.device)
    if cfg.interpolate:
        return interpolate(model, cfg, out)
    posthoc = build(cfg.sampler)
    if hasattr(model, "with_sampler"):  # a family with post-hoc samplers (the GAN's)
        model.with_sampler(posthoc)
    labels = model.spec.labels
    if cfg.label is not None and labels.kind == "none":
        raise UsageError("label= needs a conditional checkpoint (trained with "
                         "model.conditional=true)")
    if cfg.label is not None and not 0 <= cfg.label < labels.k:
        raise UsageError(f"label={cfg.label} is outside 0..{labels.k - 1}")
    asked = None if cfg.label is None else torch.full((cfg.n,), cfg.label)
    # in chunks of batch_size where the family draws in chunks (memory, not the result)
    chunked = "batch_size" in inspect.signature(model.draw).parameters
    images = model.draw(cfg.n, asked, seed=cfg.seed,
                        **({"batch_size": cfg.batch_size} if chunked else {}))
    write(images, out, cfg.nrow)
    log.info("wrote %s images of shape %s to %s (%s)", len(images), tuple(images.shape[1:]),
             out, model.describe())
    return str(out)


def interpolate(model: ImageModel, cfg: DictConfig, out: Path) -> str:
    grids = walk_grids(model, cfg.interpolate, cfg.interpolate_steps, cfg.seed)
    if grids is None:
        raise UsageError(f"interpolate= needs a model with a latent space; this "
                         f"{model.describe().get('family', 'model')} has none")
    images, nrow = grids["interpolation"]
    write(images, out, nrow)
    log.info("wrote %d slerp strips of %d steps to %s", cfg.interpolate, cfg.interpolate_steps,
             out)
    if "class_sweep" in grids:
        sweep = out.with_name(f"{out.stem}_class_sweep{out.suffix}")
        images, nrow = grids["class_sweep"]
        write(images, sweep, nrow)
        log.info("wrote %d class sweeps to %s", cfg.interpolate, sweep)
    return str(out)


main = entry_point("generate", generate, "generate", check=check)


if __name__ == "__main__":
    main()
